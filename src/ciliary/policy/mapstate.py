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


class PolicyMap:
    """Entries of one endpoint in one direction, indexed by peer identity."""

    __slots__ = ("_allow", "_cache", "_deny", "direction")

    def __init__(self, direction: str) -> None:
        self.direction = direction
        # identity -> entries ordered most specific first
        self._allow: dict[int, list[MapEntry]] = {}
        self._deny: dict[int, list[MapEntry]] = {}
        self._cache: dict[tuple[int, int, int], Lookup] = {}

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
        table = self._deny if deny else self._allow
        entries = table.setdefault(identity, [])
        for e in entries:
            if e.key.port == port:
                break
        else:
            e = MapEntry(PolicyKey(self.direction, identity, port), deny)
            entries.append(e)
            entries.sort(key=lambda x: x.key.port.specificity, reverse=True)
        if origin is not None and origin not in e.origins:
            e.origins.append(origin)
        if not deny:
            # Merge like Cilium: explicit auth wins; L7 rules are kept per rule and selector.
            if auth and (e.auth is None or auth > e.auth):
                e.auth = auth
            c = L7Contribution(origin, peer, l7)
            if c not in e.contributions:
                e.contributions.append(c)
        self._cache.clear()

    def l7_contributions(self, identity: int, proto: int, port: int) -> list[L7Contribution]:
        """Every allow rule covering (identity, proto, port), own and wildcard-peer (§6.3):
        the proxy checks a request against all of them; one without L7 lets all through."""
        out: list[L7Contribution] = []
        for ident in ((identity, WILDCARD_IDENTITY) if identity else (WILDCARD_IDENTITY,)):
            for e in self._allow.get(ident, ()):
                if e.key.port.covers(proto, port):
                    out.extend(e.contributions)
        return out

    def entries(self) -> list[MapEntry]:
        out = [e for es in self._deny.values() for e in es] + [e for es in self._allow.values() for e in es]
        out.sort(key=lambda e: (e.key.identity, e.key.port, e.deny))
        return out

    def __len__(self) -> int:
        return sum(len(v) for v in self._allow.values()) + sum(len(v) for v in self._deny.values())

    @staticmethod
    def _first(entries: list[MapEntry] | None, proto: int, port: int) -> MapEntry | None:
        if entries:
            for e in entries:
                if e.key.port.covers(proto, port):
                    return e
        return None

    def lookup(self, identity: int, proto: int, port: int) -> Lookup:
        key = (identity, proto, port)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = self._lookup(identity, proto, port)
        if len(self._cache) < 1_000_000:
            self._cache[key] = result
        return result

    def _lookup(self, identity: int, proto: int, port: int) -> Lookup:
        deny_own = self._first(self._deny.get(identity), proto, port) if identity else None
        deny_any = self._first(self._deny.get(WILDCARD_IDENTITY), proto, port)
        if deny_own is not None and deny_any is not None:
            return Lookup(deny_own if deny_own.key.port.specificity >= deny_any.key.port.specificity else deny_any)
        if deny_own is not None or deny_any is not None:
            return Lookup(deny_own or deny_any)
        own = self._first(self._allow.get(identity), proto, port) if identity else None
        anyp = self._first(self._allow.get(WILDCARD_IDENTITY), proto, port)
        if own and anyp:
            return Lookup(own if own.key.port.specificity >= anyp.key.port.specificity else anyp)
        if own or anyp:
            return Lookup(own or anyp)
        return _NO_ENTRY
