"""The per-endpoint policy map: keys like Cilium's, lookup with Cilium's precedence.

Key: (direction, peer identity, protocol, port, port prefix length); identity 0 is any peer,
protocol 0 any protocol. Semantics of pkg/policy/mapstate.go + bpf lookup (semantics §10):
after insertion, a deny covering a key removes every allow it covers, so a lookup is denied
if any deny entry of the peer or of identity 0 covers (proto, port); otherwise the most
specific allow of the peer and of identity 0 are compared: the longer port prefix wins, a
tie goes to the peer's own entry.

Contracts:
* The engine fills a `PolicyMap` while compiling (`insert`, `insert_many`); once its
  `DirectionPolicy` is handed out it is read-only. Every insert clears the memos.
* Lookups are memoised (`BoundedCache`, keyed by identity, protocol and port packed into
  one int; port views by protocol and port): answers worked out again from the rule
  entries, so forgetting one changes no answer.
* `Lookup`s, `MapEntry`s and their `origins` and `contributions` lists are shared by
  every caller and memo hit: read-only. An `L7Contribution` compares by identity, so
  compiled L7 matchers can be keyed by it.
* Rule entries hold the selector cache's identity frozensets by reference, never copied.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from ciliary.cache import BoundedCache
from ciliary.model.cilium import L7Rules
from ciliary.model.policy import PolicyRef
from ciliary.policy.ports import PROTO_ANY, PortPrefix, port_max
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


class MapRule(NamedTuple):
    """One rule's contribution to a map, unexpanded: the identities (None: any peer), the
    port prefix, and what the rule says for them (for analyses such as lint)."""

    ids: frozenset[int] | None
    port: PortPrefix
    deny: bool
    origin: RuleOrigin | None
    l7: L7Rules | None
    auth: str | None


class PolicyKey(NamedTuple):
    # A NamedTuple: one is made per looked-up identity, and a tuple is built far faster.
    direction: str
    identity: int
    port: PortPrefix

    def __str__(self) -> str:
        ident = "ANY" if self.identity == WILDCARD_IDENTITY else str(self.identity)
        return f"{self.direction} identity={ident} {self.port}"


@dataclass(frozen=True, eq=False)
class L7Contribution:
    """What one allow rule contributes to a key: its L7 rules (None: L3/L4 only).

    Compared and hashed by identity, so whoever compiles the rules can key its compiled
    matcher by the contribution; `same_as` is the comparison by content."""

    origin: RuleOrigin | None
    peer: str  # the peer selector as written (Cilium keeps L7 rules per selector)
    rules: L7Rules | None

    def same_as(self, other: L7Contribution) -> bool:
        return self.origin == other.origin and self.peer == other.peer and self.rules == other.rules


def _has(contributions: list[L7Contribution], c: L7Contribution) -> bool:
    return any(x is c or x.same_as(c) for x in contributions)


class MapEntry(msgspec.Struct):
    # A msgspec Struct: entries are made per looked-up identity, and its constructor is C.
    key: PolicyKey
    deny: bool
    origins: list[RuleOrigin] = msgspec.field(default_factory=list)
    auth: str | None = None
    contributions: list[L7Contribution] = msgspec.field(default_factory=list)
    refs: tuple[PolicyRef, ...] = ()  # the policies of `origins`, sorted (Hubble's *_by lists)
    # A proxy redirect: some rule for this key carries L7 rules (redirect beats none).
    redirect: bool = False

    @property
    def match_type(self) -> str:
        wild = self.key.identity == WILDCARD_IDENTITY
        p = self.key.port
        if p.proto == PROTO_ANY:
            return MATCH_ALL if wild else MATCH_L3_ONLY
        if p.prefix == 0:
            return MATCH_PROTO_ONLY if wild else MATCH_L3_PROTO
        return MATCH_L4_ONLY if wild else MATCH_L3_L4


class Lookup(NamedTuple):
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

    __slots__ = ("auth", "contribution", "deny", "ids", "origin", "pkey", "port", "spec")

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
        self.spec = (32 if port.proto != PROTO_ANY else 0) + port.prefix  # PortPrefix.specificity as one int
        self.pkey = (port.proto << 24) | (port.port << 8) | port.prefix  # compares faster than PortPrefix

    def selects(self, identity: int) -> bool:
        return self.ids is None or identity in self.ids


def _merge(m: MapEntry, entries: list[_RuleEntry]) -> MapEntry:
    """Merge rule entries of one key into its map entry like Cilium: origins and L7
    contributions collected, the strongest auth requirement kept."""
    for e in entries:
        if e.origin is not None and e.origin not in m.origins:
            m.origins.append(e.origin)
        if not m.deny:
            if e.auth and (m.auth is None or e.auth > m.auth):
                m.auth = e.auth
            if e.contribution is not None and not _has(m.contributions, e.contribution):
                m.contributions.append(e.contribution)
    origins = m.origins
    # Most keys have one origin: no set and sort for them.
    m.refs = tuple(sorted({o.ref for o in origins})) if len(origins) > 1 else tuple(o.ref for o in origins)
    m.redirect = any(c.rules is not None for c in m.contributions)
    return m


def _keyed(t: MapEntry, direction: str, identity: int) -> Lookup:
    """The peer's own map entry made from a merged template (shared origins and L7)."""
    return Lookup(MapEntry(PolicyKey(direction, identity, t.key.port), t.deny, t.origins, t.auth, t.contributions, t.refs, t.redirect))


class _PortView:
    """Everything one (protocol, port) needs for a lookup, computed once per port.

    The wildcard-peer entries covering the port give the same answer to every identity, so
    it is made once (`wild`). The peer's own entries become one scan list in precedence
    order (denies, then allows unless a wildcard deny already covers the port, each most
    specific first): the first item selecting the identity decides, and whether it beats
    the wildcard answer (more specific, or as specific: the peer's own key wins) is known in
    advance. An own key made by one rule entry has its merged entry ready; only keys that
    several rule entries share are merged per identity.
    """

    __slots__ = ("_own", "covering", "scan", "templates", "wild")

    def __init__(self, direction: str, covering: list[_RuleEntry]) -> None:
        self.covering = covering
        wild_deny = next((e for e in covering if e.ids is None and e.deny), None)
        wild_allow = next((e for e in covering if e.ids is None and not e.deny), None)
        best = wild_deny or wild_allow
        if best is None:
            self.wild = _NO_ENTRY
        else:
            same = [e for e in covering if e.ids is None and e.pkey == best.pkey and e.deny == best.deny]
            self.wild = Lookup(_merge(MapEntry(PolicyKey(direction, WILDCARD_IDENTITY, best.port), best.deny), same))
        own = [e for e in covering if e.ids is not None and e.deny]
        if wild_deny is None:
            own += [e for e in covering if e.ids is not None and not e.deny]
        # (ids, index, beats the wildcard answer, merged entry if the key has one rule entry)
        self.scan: list[tuple[frozenset[int], int, bool, MapEntry | None]] = []
        per_key: dict[tuple[int, bool], int] = {}
        for e in own:
            per_key[(e.pkey, e.deny)] = per_key.get((e.pkey, e.deny), 0) + 1
        for i, e in enumerate(own):
            assert e.ids is not None
            wild = wild_deny if e.deny else wild_allow
            wins = wild is None or e.spec >= wild.spec
            single = None
            if wins and per_key[(e.pkey, e.deny)] == 1:
                single = _merge(MapEntry(PolicyKey(direction, WILDCARD_IDENTITY, e.port), e.deny), [e])
            self.scan.append((e.ids, i, wins, single))
        self._own = own
        self.templates: BoundedCache[tuple[_RuleEntry, ...], MapEntry] = BoundedCache(4096)

    def own(self, direction: str, identity: int, i: int) -> Lookup:
        """The peer's key that own entry i (its first in precedence) is on, with every own
        rule entry of that port and kind that selects the peer merged into it."""
        own = self._own
        best = own[i]
        pkey, deny = best.pkey, best.deny
        # Entries of one port prefix and kind are adjacent (ordered by specificity).
        same = [best]
        for j in range(i + 1, len(own)):
            e = own[j]
            if e.pkey != pkey or e.deny != deny:
                break
            if e.ids is not None and identity in e.ids:
                same.append(e)
        sig = tuple(same)
        t = self.templates.get(sig)
        if t is None:
            t = self.templates.put(sig, _merge(MapEntry(PolicyKey(direction, WILDCARD_IDENTITY, best.port), deny), list(sig)))
        return _keyed(t, direction, identity)


class PolicyMap:
    """The policy map of one endpoint in one direction.

    Stored as rule entries over shared identity sets and indexed by protocol and port;
    `entries()` expands them into Cilium's keys (direction, identity, protocol, port/prefix).
    Lookups give the same answer as the expanded map (semantics §10.4) and are memoised.
    """

    __slots__ = ("_bounds", "_by_port", "_cache", "_count", "_l7", "_ranges", "_segments", "_selecting", "_views", "direction")

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self._by_port: dict[tuple[int, int], list[_RuleEntry]] = {}  # exact (proto, port)
        self._ranges: dict[int, list[_RuleEntry]] = {}  # proto -> prefixes < 16 (proto 0: any)
        # Memos, keyed by (identity << 24 | proto << 16 | port) or (proto << 16 | port).
        self._cache: BoundedCache[int, Lookup] = BoundedCache(200_000)
        self._views: BoundedCache[int, _PortView] = BoundedCache(65_536)  # a port's view
        self._l7: BoundedCache[int, tuple[L7Contribution, ...]] = BoundedCache(200_000)
        # proto -> (segment starts, views): ports between range boundaries share a view
        self._segments: dict[int, tuple[list[int], list[_PortView | None]]] = {}
        self._bounds: dict[int, tuple[int, ...]] = {}  # proto -> port_bounds(proto)
        self._selecting: dict[int, tuple[int, ...]] | None = None  # identity -> signature()
        self._count = 0

    def insert(
        self,
        identity: int,
        port: PortPrefix,
        deny: bool,
        origin: RuleOrigin | None,
        auth: str | None = None,
        l7: L7Rules | None = None,
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
        l7: L7Rules | None = None,
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
        self._views.clear()
        self._l7.clear()
        self._segments.clear()
        self._bounds.clear()
        self._selecting = None

    def _view(self, proto: int, port: int) -> _PortView:
        """The rule entries covering (proto, port), most specific first, and their split.

        Ports without entries of their own share the view of the port-range segment they
        fall in (ports between two range bounds are covered by the same ranges), so a lookup
        on a new port of a wide range builds nothing."""
        pp = (proto << 16) | port
        view = self._views.get(pp)
        if view is not None:
            return view
        segs = self._segments.get(proto)
        if segs is None:
            bounds = {0}
            for e in self._ranges.get(proto, ()):
                bounds.add(e.port.port)
                if e.port.end < 65535:
                    bounds.add(e.port.end + 1)
            segs = self._segments[proto] = (sorted(bounds), [None] * len(bounds))
        starts, seg_views = segs
        i = bisect_right(starts, port) - 1
        seg = seg_views[i]
        if seg is None:
            first = starts[i]
            out = [e for e in self._ranges.get(proto, ()) if e.port.covers(proto, first)]
            out.extend(self._ranges.get(PROTO_ANY, ()))
            seg = seg_views[i] = _PortView(self.direction, out)
        exact = self._by_port.get((proto, port))
        view = _PortView(self.direction, exact + seg.covering) if exact else seg
        return self._views.put(pp, view)

    def port_bounds(self, proto: int) -> tuple[int, ...]:
        """Where a lookup's answer can change along `proto`'s ports (ICMP: types): the
        sorted starts of the intervals whose every port is covered by the same rule
        entries, 0 first. Every identity's lookup is constant on each interval."""
        hit = self._bounds.get(proto)
        if hit is not None:
            return hit
        top = port_max(proto)
        bounds = {0}
        for p, port in self._by_port:
            if p == proto:
                bounds.add(port)
                bounds.add(port + 1)
        for e in self._ranges.get(proto, ()):
            bounds.add(e.port.port)
            bounds.add(e.port.end + 1)
        out = self._bounds[proto] = tuple(sorted(b for b in bounds if b <= top))
        return out

    def signature(self, identity: int) -> tuple[int, ...]:
        """Which rule entries of own identities select `identity` (indexes into the map's
        entries). Identities with one signature get the same answer from every lookup:
        the wildcard entries are everyone's, and the own entries decide by membership."""
        sel = self._selecting
        if sel is None:
            acc: dict[int, list[int]] = {}
            for i, e in enumerate(self._all()):
                if e.ids is not None:
                    for ident in e.ids:
                        acc.setdefault(ident, []).append(i)
            sel = self._selecting = {k: tuple(v) for k, v in acc.items()}
        return sel.get(identity, ())

    def _covering(self, proto: int, port: int) -> list[_RuleEntry]:
        return self._view(proto, port).covering

    def _merged(self, identity: int, port: PortPrefix, deny: bool, entries: list[_RuleEntry]) -> MapEntry:
        """The map entry of key (identity, port): every rule entry for it merged like Cilium."""
        own = identity != WILDCARD_IDENTITY
        same = [
            e for e in entries
            if e.port == port and e.deny == deny and (e.ids is not None) == own and (not own or identity in (e.ids or ()))
        ]
        return _merge(MapEntry(PolicyKey(self.direction, identity, port), deny), same)

    def lookup(self, identity: int, proto: int, port: int) -> Lookup:
        key = (identity << 24) | (proto << 16) | port  # an int hashes faster than a tuple
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        pp = (proto << 16) | port
        view = self._views.get(pp)
        if view is None:
            view = self._view(proto, port)
        result = view.wild
        for ids, i, wins, single in view.scan:
            if identity in ids:
                if wins:
                    if single is not None:
                        result = _keyed(single, self.direction, identity)
                    else:
                        result = view.own(self.direction, identity, i)
                break
        return self._cache.put(key, result)

    def l7_contributions(self, identity: int, proto: int, port: int) -> tuple[L7Contribution, ...]:
        """Every allow rule covering (identity, proto, port), own and wildcard-peer (§6.3):
        the proxy checks a request against all of them; one without L7 lets all through.
        (Memoised: the proxy asks for every request of a connection.)"""
        key = (identity << 24) | (proto << 16) | port
        hit = self._l7.get(key)
        if hit is not None:
            return hit
        out: list[L7Contribution] = []
        for e in self._covering(proto, port):
            if not e.deny and e.contribution is not None and e.selects(identity) and not _has(out, e.contribution):
                out.append(e.contribution)
        return self._l7.put(key, tuple(out))

    def rules(self) -> list[MapRule]:
        """Every rule entry of the map, in insertion order per port (read-only views)."""
        return [
            MapRule(e.ids, e.port, e.deny, e.origin, e.contribution.rules if e.contribution else None, e.auth)
            for e in self._all()
        ]

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
