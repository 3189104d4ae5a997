"""The per-endpoint policy map: keys like Cilium's, lookup with Cilium's precedence.

Key: (direction, peer identity, protocol, port, port prefix length); identity 0 is any peer,
protocol 0 any protocol. Semantics of pkg/policy/mapstate.go + bpf lookup (semantics §10):
after insertion, a deny covering a key removes every allow it covers, so a lookup is denied
if any deny entry of the peer or of identity 0 covers (proto, port); otherwise the most
specific allow of the peer and of identity 0 are compared: the longer port prefix wins, a
tie goes to the peer's own entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ciliary.policy.ports import PROTO_ANY, PortPrefix
from ciliary.policy.rules import RuleOrigin

WILDCARD_IDENTITY = 0

# Hubble's policy match types (pkg/monitor/api).
MATCH_NONE = "none"
MATCH_L3_ONLY = "L3_ONLY"
MATCH_L3_L4 = "L3_L4"
MATCH_L4_ONLY = "L4_ONLY"
MATCH_ALL = "ALL"
MATCH_L3_PROTO = "L3_PROTO"
MATCH_PROTO_ONLY = "PROTO_ONLY"


@dataclass(frozen=True, order=True)
class PolicyKey:
    direction: str
    identity: int
    port: PortPrefix

    def __str__(self) -> str:
        ident = "ANY" if self.identity == WILDCARD_IDENTITY else str(self.identity)
        return f"{self.direction} identity={ident} {self.port}"


@dataclass(frozen=True)
class L7Contribution:
    """What one allow rule contributes to a key: its L7 rules (None: L3/L4 only)."""

    origin: RuleOrigin | None
    peer: str  # the peer selector as written (Cilium keeps L7 rules per selector)
    rules: object | None  # ciliary.model.cilium.L7Rules


@dataclass
class MapEntry:
    key: PolicyKey
    deny: bool
    origins: list[RuleOrigin] = field(default_factory=list)
    auth: str | None = None
    contributions: list[L7Contribution] = field(default_factory=list)

    @property
    def redirect(self) -> bool:
        """A proxy redirect: some rule for this key carries L7 rules (redirect beats none)."""
        return any(c.rules is not None for c in self.contributions)

    @property
    def match_type(self) -> str:
        wild = self.key.identity == WILDCARD_IDENTITY
        p = self.key.port
        if p.proto == PROTO_ANY:
            return MATCH_ALL if wild else MATCH_L3_ONLY
        if p.prefix == 0:
            return MATCH_PROTO_ONLY if wild else MATCH_L3_PROTO
        return MATCH_L4_ONLY if wild else MATCH_L3_L4


@dataclass(frozen=True)
class Lookup:
    """Result of one policy-map lookup; `entry` None means no entry covered the key."""

    entry: MapEntry | None

    @property
    def allowed(self) -> bool:
        return self.entry is not None and not self.entry.deny

    @property
    def denied(self) -> bool:
        return self.entry is not None and self.entry.deny


_NO_ENTRY = Lookup(None)


class _RuleEntry:
    """One (peer identities, port prefix) of one rule: the unexpanded form of many keys.

    `ids` is the selector cache's shared frozenset (None: the wildcard identity 0), so a
    rule selecting thousands of identities costs one reference, not thousands of keys.
    """

    __slots__ = ("auth", "contribution", "deny", "ids", "origin", "port")

    def __init__(
        self, ids: frozenset[int] | None, port: PortPrefix, deny: bool, origin: RuleOrigin | None,
        auth: str | None, contribution: L7Contribution | None,
    ) -> None:
        self.ids = ids
        self.port = port
        self.deny = deny
        self.origin = origin
        self.auth = auth
        self.contribution = contribution

    def selects(self, identity: int) -> bool:
        return self.ids is None or identity in self.ids


class PolicyMap:
    """The policy map of one endpoint in one direction.

    Stored as rule entries over shared identity sets and indexed by protocol and port;
    `entries()` expands them into Cilium's keys (direction, identity, protocol, port/prefix).
    Lookups give the same answer as the expanded map (semantics §10.4) and are memoised.
    """

    __slots__ = ("_by_port", "_cache", "_count", "_cov", "_ranges", "direction")

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self._by_port: dict[tuple[int, int], list[_RuleEntry]] = {}  # exact (proto, port)
        self._ranges: dict[int, list[_RuleEntry]] = {}  # proto -> prefixes < 16 (proto 0: any)
        self._cache: dict[int, Lookup] = {}
        self._cov: dict[tuple[int, int], list[_RuleEntry]] = {}  # (proto, port) -> covering
        self._count = 0

    def insert(
        self,
        identity: int,
        port: PortPrefix,
        deny: bool,
        origin: RuleOrigin | None,
        auth: str | None = None,
        l7: object | None = None,
        peer: str = "",
    ) -> None:
        """One key (used for single identities: wildcard, localhost, named ports)."""
        ids = None if identity == WILDCARD_IDENTITY else frozenset((identity,))
        self.insert_many(ids, port, deny, origin, auth, l7, peer)

    def insert_many(
        self,
        ids: frozenset[int] | None,
        port: PortPrefix,
        deny: bool,
        origin: RuleOrigin | None,
        auth: str | None = None,
        l7: object | None = None,
        peer: str = "",
    ) -> None:
        """Keys for every identity in `ids` (None: the wildcard identity) on `port`."""
        contribution = None if deny else L7Contribution(origin, peer, l7)
        entry = _RuleEntry(ids, port, deny, origin, auth, contribution)
        if port.prefix == 16:
            self._by_port.setdefault((port.proto, port.port), []).append(entry)
        else:
            lst = self._ranges.setdefault(port.proto, [])
            lst.append(entry)
            lst.sort(key=lambda e: e.port.prefix, reverse=True)
        self._count += 1
        self._cache.clear()
        self._cov.clear()

    def _covering(self, proto: int, port: int) -> list[_RuleEntry]:
        """Rule entries whose port prefix covers (proto, port), most specific first (the
        same for every identity, so kept per port)."""
        hit = self._cov.get((proto, port))
        if hit is not None:
            return hit
        out = list(self._by_port.get((proto, port), ()))
        for e in self._ranges.get(proto, ()):
            if e.port.covers(proto, port):
                out.append(e)
        out.extend(self._ranges.get(PROTO_ANY, ()))
        if len(self._cov) < 65_536:
            self._cov[(proto, port)] = out
        return out

    def _merged(self, identity: int, port: PortPrefix, deny: bool, entries: list[_RuleEntry]) -> MapEntry:
        """The map entry of key (identity, port): every rule entry for it merged like Cilium."""
        own = identity != WILDCARD_IDENTITY
        m = MapEntry(PolicyKey(self.direction, identity, port), deny)
        for e in entries:
            if e.port != port or e.deny != deny or (e.ids is None) == own:
                continue
            if own and e.ids is not None and identity not in e.ids:
                continue
            if e.origin is not None and e.origin not in m.origins:
                m.origins.append(e.origin)
            if not deny:
                if e.auth and (m.auth is None or e.auth > m.auth):
                    m.auth = e.auth
                if e.contribution is not None and e.contribution not in m.contributions:
                    m.contributions.append(e.contribution)
        return m

    def lookup(self, identity: int, proto: int, port: int) -> Lookup:
        key = (identity << 24) | (proto << 16) | port  # an int hashes faster than a tuple
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = self._lookup(identity, proto, port)
        if len(self._cache) < 200_000:
            self._cache[key] = result
        return result

    def _lookup(self, identity: int, proto: int, port: int) -> Lookup:
        covering = self._covering(proto, port)
        deny_own = deny_any = allow_own = allow_any = None
        for e in covering:
            if e.ids is None:
                if e.deny:
                    deny_any = deny_any or e
                else:
                    allow_any = allow_any or e
            elif identity in e.ids:
                if e.deny:
                    deny_own = deny_own or e
                else:
                    allow_own = allow_own or e
        # A deny covering the key removed every allow it covers (mapstate insertion rules).
        if deny_own is not None or deny_any is not None:
            if deny_own is not None and (deny_any is None or deny_own.port.specificity >= deny_any.port.specificity):
                return Lookup(self._merged(identity, deny_own.port, True, covering))
            assert deny_any is not None
            return Lookup(self._merged(WILDCARD_IDENTITY, deny_any.port, True, covering))
        if allow_own is not None and (allow_any is None or allow_own.port.specificity >= allow_any.port.specificity):
            return Lookup(self._merged(identity, allow_own.port, False, covering))
        if allow_any is not None:
            return Lookup(self._merged(WILDCARD_IDENTITY, allow_any.port, False, covering))
        return _NO_ENTRY

    def l7_contributions(self, identity: int, proto: int, port: int) -> list[L7Contribution]:
        """Every allow rule covering (identity, proto, port), own and wildcard-peer (§6.3):
        the proxy checks a request against all of them; one without L7 lets all through."""
        out: list[L7Contribution] = []
        for e in self._covering(proto, port):
            if not e.deny and e.contribution is not None and e.selects(identity) and e.contribution not in out:
                out.append(e.contribution)
        return out

    def _all(self) -> list[_RuleEntry]:
        return [e for lst in self._by_port.values() for e in lst] + [e for lst in self._ranges.values() for e in lst]

    def entries(self) -> list[MapEntry]:
        """The expanded map: one entry per Cilium key (can be large; for display and tests)."""
        rules = self._all()
        keys: set[tuple[int, PortPrefix, bool]] = set()
        for e in rules:
            for ident in (e.ids if e.ids is not None else (WILDCARD_IDENTITY,)):
                keys.add((ident, e.port, e.deny))
        out = [self._merged(i, p, d, rules) for i, p, d in keys]
        out.sort(key=lambda e: (e.key.identity, e.key.port, e.deny))
        return out

    def key_count(self) -> int:
        """Number of Cilium keys the map holds, without expanding it."""
        seen: dict[tuple[PortPrefix, bool], set[int]] = {}
        for e in self._all():
            s = seen.setdefault((e.port, e.deny), set())
            s.update(e.ids if e.ids is not None else (WILDCARD_IDENTITY,))
        return sum(len(v) for v in seen.values())

    def __len__(self) -> int:
        return self.key_count()
