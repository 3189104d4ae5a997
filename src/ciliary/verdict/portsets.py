"""Allowed port sets between endpoints, decided per side: connectivity over every port at
the scale of thousands of pods.

A new connection is allowed on a port when neither side drops it: the source's egress,
then the destination's ingress (`decide`; AUDIT and REDIRECTED pass at L3/L4). One side's
answer depends on its endpoint's compiled policy (the decider's policy number, audit mode
included), on the peer only through which of the map's own-identity rule entries select
the peer's identity (`PolicyMap.signature`), and along the ports only between the map's
`port_bounds`. So a side's allowed set is worked out once per (policy number, direction,
signature), with `decide_side` (the plain definition) at the start of each interval, and a
pair's set is the intersection of its two sides', memoised per pair of distinct side sets.

Contracts: `PortSets.allowed` equals the allowed intervals of `Decider.decide_port_set`
for the same endpoints (tests compare them), port 0 left out. Hosts (seen differently from
each node) go through the decider. Returned sets are shared: read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ciliary.cluster.endpoints import Endpoint
from ciliary.identity.allocator import Identity
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_ICMP, port_max
from ciliary.policy.rules import EGRESS, INGRESS
from ciliary.verdict.decide import decide_side, endpoint_peer
from ciliary.verdict.decider import PORT_SET_PROTOS, Decider, PortInterval
from ciliary.verdict.types import DROPPED

Ranges = tuple[tuple[int, int], ...]
Allowed = dict[int, Ranges]  # protocol -> allowed port ranges (ICMP: types), merged, sorted


def _add(out: dict[int, list[tuple[int, int]]], proto: int, lo: int, hi: int) -> None:
    if proto != PROTO_ICMP:
        lo = max(lo, 1)  # no connection has port 0
    if lo > hi:
        return
    lst = out.setdefault(proto, [])
    if lst and lst[-1][1] + 1 == lo:
        lst[-1] = (lst[-1][0], hi)
    else:
        lst.append((lo, hi))


def allowed_ports(intervals: Iterable[PortInterval]) -> Allowed:
    """The allowed intervals per protocol, adjacent ones merged; port 0 left out."""
    out: dict[int, list[tuple[int, int]]] = {}
    for iv in intervals:
        if iv.allowed:
            _add(out, iv.proto, iv.lo, iv.hi)
    return {p: tuple(r) for p, r in out.items()}


def intersect(a: Allowed, b: Allowed) -> Allowed:
    out: Allowed = {}
    for proto in sorted(a.keys() & b.keys()):
        got: list[tuple[int, int]] = []
        ra, rb = a[proto], b[proto]
        i = j = 0
        while i < len(ra) and j < len(rb):
            lo, hi = max(ra[i][0], rb[j][0]), min(ra[i][1], rb[j][1])
            if lo <= hi:
                got.append((lo, hi))
            if ra[i][1] < rb[j][1]:
                i += 1
            else:
                j += 1
        if got:
            out[proto] = tuple(got)
    return out


class PortSets:
    """Allowed port sets of endpoint pairs on one engine (see the module docstring)."""

    def __init__(self, engine: PolicyEngine, decider: Decider | None = None, protos: tuple[int, ...] = PORT_SET_PROTOS) -> None:
        self.engine = engine
        self.decider = decider or Decider(engine)
        self.protos = protos
        self._sides: dict[tuple[int, str, tuple[int, ...]], int] = {}
        self._sets: list[Allowed] = []
        self._interned: dict[tuple[tuple[int, Ranges], ...], int] = {}
        self._pairs: dict[tuple[int, int], Allowed] = {}
        # endpoint key -> (the endpoint, its identity, policy number, its ingress map's signature)
        self._info: dict[str, tuple[Endpoint, int, int, Callable[[int], tuple[int, ...]]]] = {}

    def _intern(self, allowed: Allowed) -> int:
        key = tuple(sorted(allowed.items()))
        n = self._interned.get(key)
        if n is None:
            n = self._interned[key] = len(self._sets)
            self._sets.append(allowed)
        return n

    def side(self, ep: Endpoint, direction: str, peer: Identity) -> int:
        """The number of `ep`'s allowed set in `direction` toward identity `peer`."""
        pm = self.engine.policy(ep).direction(direction).policy_map
        return self._side(ep, direction, peer, (self.decider.policy_number(ep), direction, pm.signature(peer.id)))

    def _side(self, ep: Endpoint, direction: str, peer: Identity, key: tuple[int, str, tuple[int, ...]]) -> int:
        n = self._sides.get(key)
        if n is None:
            engine = self.engine
            pm = engine.policy(ep).direction(direction).policy_map
            out: dict[int, list[tuple[int, int]]] = {}
            for proto in self.protos:
                bounds = pm.port_bounds(proto)
                last = len(bounds) - 1
                for i, lo in enumerate(bounds):
                    hi = bounds[i + 1] - 1 if i < last else port_max(proto)
                    if decide_side(engine, ep, direction, peer, proto, lo).verdict != DROPPED:
                        _add(out, proto, lo, hi)
            n = self._sides[key] = self._intern({p: tuple(r) for p, r in out.items()})
        return n

    def allowed(self, src: Endpoint, dst: Endpoint) -> Allowed:
        """What `src` may open to `dst`, over every port of `protos`."""
        return self.allowed_row(src, [dst])[0]

    def allowed_row(self, src: Endpoint, dsts: list[Endpoint]) -> list[Allowed]:
        """`allowed(src, d)` for every d of `dsts`, with the source's lookups hoisted."""
        if src.is_host or not src.ips:
            return [self._by_decider(src, d) for d in dsts]
        engine, numbers = self.engine, self.decider.policy_number
        pol_s = numbers(src)
        egress_sig = engine.policy(src).direction(EGRESS).policy_map.signature
        src_id = src.identity
        sides, pairs, sets, info = self._sides, self._pairs, self._sets, self._info
        out: list[Allowed] = []
        for d in dsts:
            if d.is_host or not d.ips:
                out.append(self._by_decider(src, d))
                continue
            di = info.get(d.key)
            if di is None or di[0] is not d:
                di = info[d.key] = (d, d.identity.id, numbers(d), engine.policy(d).direction(INGRESS).policy_map.signature)
            ek = (pol_s, EGRESS, egress_sig(di[1]))
            e = sides.get(ek)
            if e is None:
                e = self._side(src, EGRESS, d.identity, ek)
            ik = (di[2], INGRESS, di[3](src_id.id))
            i = sides.get(ik)
            if i is None:
                i = self._side(d, INGRESS, src_id, ik)
            hit = pairs.get((e, i))
            if hit is None:
                hit = pairs[(e, i)] = intersect(sets[e], sets[i])
            out.append(hit)
        return out

    def _by_decider(self, src: Endpoint, dst: Endpoint) -> Allowed:
        d = self.decider
        return allowed_ports(d.decide_port_set(d.pair(endpoint_peer(src), endpoint_peer(dst)), self.protos))
