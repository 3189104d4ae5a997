"""Policy maps -> nftables: the ruleset one node's datapath enforces.

The engine's compiled policy maps (the ones `trace`, `replay` and `lint` read) become the
elements of a fixed set of nftables sets; the chains (see `ruleset.py`) look them up in an
order that gives Cilium's precedence (semantics §10.4, datapath-findings §2):

* identity: `ipcache_cidr` (policy CIDRs flattened into disjoint ranges, longest prefix
  wins) then `ipcache_ep` (exact addresses: pods, nodes), world when neither has the
  address;
* per direction: a deny of the peer or of any peer (identity 0) on the packet's protocol
  and port drops with POLICY_DENY (181), whatever the allows say; otherwise an allow of the
  peer or of any peer lets it through; otherwise default deny drops with POLICY_DENIED
  (133), or, for a direction selected only by `enableDefaultDeny: false` rules, allows;
* endpoints whose direction is not enforced are in no set and pass;
* audit mode: a would-be drop is logged as AUDIT and passes.

Set shapes (the first field is the local endpoint's address, so all endpoints share one set
per shape; port and ICMP type ranges are merged so no two elements of a set overlap, which
nft's pipapo sets require):

    {dir}_{deny|allow}             address . identity . protocol . port        (L3/L4, hash)
    {dir}_{deny|allow}_range       address . identity . protocol . port-range  (L3/L4, pipapo)
    {dir}_{deny|allow}_l4          address . protocol . port                   (any peer, hash)
    {dir}_{deny|allow}_l4_range    address . protocol . port-range             (any peer, pipapo)
    {dir}_{deny|allow}_icmp        address . identity . icmp-type-range
    {dir}_{deny|allow}_icmp4       address . icmp-type-range                   (any peer)
    {dir}_{deny|allow}_l3          address . identity                          (every protocol)
    {dir}_{deny|allow}_all         address                                     (any peer, everything)

A merged range of one port goes to the hash set, a wider one to the `_range` set. The bulk of
a policy map is single ports (one element per peer identity and port), and a hash lookup,
insert or delete costs the same at any size, where a pipapo set pays per element on every
new connection's lookup and on every change (bench/datapath.py: +100 us per connection and
~40 ms per delete with 10k elements in one pipapo set).

Contracts:
* `compile_node` is a pure function of the engine and the node: the same inputs give the
  same `NodeState`, element for element. It reads the engine through public accessors only.
* IPv4 only (the lab's topology); IPv6 entries are counted in `NodeState.skipped`.
* L7 rules are allowed at L3/L4 here (their proxies are a later part); authentication
  (`authentication.mode`) is not enforced by the datapath: both are counted in `skipped`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise

from ciliary.cluster.endpoints import Endpoint
from ciliary.policy.engine import DirectionPolicy, PolicyEngine, node_name
from ciliary.policy.mapstate import WILDCARD_IDENTITY, MapRule
from ciliary.policy.ports import (
    PROTO_ANY,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_SCTP,
    PROTO_TCP,
    PROTO_UDP,
    PortPrefix,
)
from ciliary.policy.rules import EGRESS, INGRESS

DIRECTIONS = (INGRESS, EGRESS)
SHORT = {INGRESS: "in", EGRESS: "eg"}
PORT_PROTOS = (PROTO_TCP, PROTO_UDP, PROTO_SCTP)
MAX_IDENTITY = (1 << 31) - 1  # the mark's top bit is the proxy's (datapath-findings §4)

Range = tuple[int, int]
Key = tuple[object, ...]


@dataclass(frozen=True)
class SetDecl:
    """One nftables set or map: key field types, data type (maps), interval flag."""

    name: str
    key: tuple[str, ...]
    data: str | None = None
    interval: bool = False
    timeout: bool = False

    @property
    def nft(self) -> str:
        kind = "map" if self.data else "set"
        typ = " . ".join(self.key) + (f" : {self.data}" if self.data else "")
        flags = [f for f, on in (("interval", self.interval), ("timeout", self.timeout)) if on]
        flag_text = f" flags {', '.join(flags)};" if flags else ""
        return f"{kind} {self.name} {{ type {typ};{flag_text} }}"


def _policy_sets(d: str) -> list[SetDecl]:
    out = []
    for verdict in ("deny", "allow"):
        base = f"{d}_{verdict}"
        out += [
            SetDecl(base, ("ipv4_addr", "mark", "inet_proto", "inet_service")),
            SetDecl(f"{base}_range", ("ipv4_addr", "mark", "inet_proto", "inet_service"), interval=True),
            SetDecl(f"{base}_l4", ("ipv4_addr", "inet_proto", "inet_service")),
            SetDecl(f"{base}_l4_range", ("ipv4_addr", "inet_proto", "inet_service"), interval=True),
            SetDecl(f"{base}_icmp", ("ipv4_addr", "mark", "icmp_type"), interval=True),
            SetDecl(f"{base}_icmp4", ("ipv4_addr", "icmp_type"), interval=True),
            SetDecl(f"{base}_l3", ("ipv4_addr", "mark")),
            SetDecl(f"{base}_all", ("ipv4_addr",)),
        ]
    return out


SETS: tuple[SetDecl, ...] = (
    SetDecl("ipcache_cidr", ("ipv4_addr",), "mark", interval=True),
    SetDecl("ipcache_ep", ("ipv4_addr",), "mark"),
    SetDecl("local_eps", ("ipv4_addr",)),  # local pods and the node's own addresses
    SetDecl("cluster_eps", ("ipv4_addr",)),  # every pod and node address of the cluster
    *(SetDecl(f"{SHORT[d]}_{what}", ("ipv4_addr",)) for d in DIRECTIONS for what in ("enforced", "default_deny", "audit")),
    *(s for d in DIRECTIONS for s in _policy_sets(SHORT[d])),
)
SETS_BY_NAME = {s.name: s for s in SETS}


@dataclass
class NodeState:
    """What one node's datapath holds: set name -> elements (key, or key -> data)."""

    node: str
    addresses: tuple[str, ...]  # the node's own IPv4 addresses
    world_identity: int
    elements: dict[str, dict[Key, int | None]] = field(default_factory=lambda: {s.name: {} for s in SETS})
    endpoints: dict[str, str] = field(default_factory=dict)  # address -> endpoint key (local)
    skipped: dict[str, int] = field(default_factory=dict)  # what the datapath does not enforce

    def add(self, set_name: str, key: Key, data: int | None = None) -> None:
        self.elements[set_name][key] = data

    def skip(self, what: str, n: int = 1) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + n

    def size(self) -> int:
        return sum(len(v) for v in self.elements.values())


def _ipv4(ip: str) -> bool:
    return ipaddress.ip_address(ip).version == 4


def _ip_text(n: int) -> str:
    return str(ipaddress.IPv4Address(n))


def flatten_prefixes(prefixes: Iterable[tuple[ipaddress.IPv4Network, int]]) -> list[tuple[Range, int]]:
    """Prefixes (nested or disjoint, as prefixes are) -> disjoint address ranges, each with
    the value of the longest prefix covering it; adjacent ranges with one value merged."""
    nets = sorted(prefixes, key=lambda p: (int(p[0].network_address), p[0].prefixlen))
    if not nets:
        return []
    bounds = sorted({int(n.network_address) for n, _ in nets} | {int(n.broadcast_address) + 1 for n, _ in nets})
    out: list[tuple[Range, int]] = []
    for lo, nxt in pairwise(bounds):
        best: tuple[int, int] | None = None  # (prefix length, value)
        for n, v in nets:
            start = int(n.network_address)
            if start > lo:
                break
            if lo <= int(n.broadcast_address) and (best is None or n.prefixlen > best[0]):
                best = (n.prefixlen, v)
        if best is None:
            continue
        hi = nxt - 1
        if out and out[-1][1] == best[1] and out[-1][0][1] + 1 == lo:
            out[-1] = ((out[-1][0][0], hi), best[1])
        else:
            out.append(((lo, hi), best[1]))
    return out


def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    out: list[Range] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _port_range(p: PortPrefix) -> Range:
    if p.prefix == 0:
        return (0, 65535)
    return (p.port, p.end)


def _icmp_range(p: PortPrefix) -> Range:
    if p.prefix == 0:
        return (0, 255)
    return (p.port, min(p.end, 255))


# The port sets with a `_range` partner: one-port elements here, wider ranges there.
SPLIT = frozenset(s.name.removesuffix("_range") for s in SETS if s.name.endswith("_range"))


class _Ranges:
    """Elements whose last field is a range, collected then merged per key prefix; for the
    port sets, a one-port range goes to the hash set and a wider one to its `_range` set."""

    def __init__(self) -> None:
        self.by: dict[tuple[str, Key], list[Range]] = {}

    def add(self, set_name: str, prefix: Key, r: Range) -> None:
        self.by.setdefault((set_name, prefix), []).append(r)

    def emit(self, state: NodeState) -> None:
        for (set_name, prefix), ranges in self.by.items():
            split = set_name in SPLIT
            for r in merge_ranges(ranges):
                if split and r[0] == r[1]:
                    state.add(set_name, (*prefix, r[0]))
                elif split:
                    state.add(f"{set_name}_range", (*prefix, r))
                else:
                    state.add(set_name, (*prefix, r))


def _direction_elements(state: NodeState, ip: str, d: str, dp: DirectionPolicy, ranges: _Ranges) -> None:
    s = SHORT[d]
    for rule in dp.policy_map.rules():
        _rule_elements(state, ip, s, rule, ranges)


def _rule_elements(state: NodeState, ip: str, s: str, rule: MapRule, ranges: _Ranges) -> None:
    verdict = "deny" if rule.deny else "allow"
    base = f"{s}_{verdict}"
    if not rule.deny and rule.l7 is not None:
        state.skip("l7 rules (allowed at L3/L4)")
    if not rule.deny and rule.auth in ("required", "test-always-fail"):
        state.skip("authentication")
    ids: Iterable[int] | None = None if rule.ids is None else sorted(rule.ids)
    if ids is not None:
        ids = [i for i in ids if i != WILDCARD_IDENTITY and i <= MAX_IDENTITY]
    p = rule.port
    if p.proto == PROTO_ICMPV6:
        state.skip("ICMPv6 entries")
        return
    if p.proto == PROTO_ANY:
        if ids is None:
            state.add(f"{base}_all", (ip,))
        else:
            for i in ids:
                state.add(f"{base}_l3", (ip, i))
        return
    if p.proto == PROTO_ICMP:
        r = _icmp_range(p)
        if ids is None:
            ranges.add(f"{base}_icmp4", (ip,), r)
        else:
            for i in ids:
                ranges.add(f"{base}_icmp", (ip, i), r)
        return
    r = _port_range(p)
    if ids is None:
        ranges.add(f"{base}_l4", (ip, p.proto), r)
    else:
        for i in ids:
            ranges.add(base, (ip, i, p.proto), r)


def local_endpoints(engine: PolicyEngine, node: str) -> list[Endpoint]:
    """The endpoints this node enforces for: its pods and its host endpoint."""
    out = [ep for ep in engine.endpoints if node_name(ep) == node]
    return sorted(out, key=lambda ep: ep.key)


def compile_node(engine: PolicyEngine, node: str) -> NodeState:
    cache = engine.ipcache(node)
    node_obj = engine.cluster.node(node)
    addresses = tuple(ip for ip in (node_obj.ips if node_obj else ()) if _ipv4(ip))
    # Addresses no entry covers are world (/0 is never an entry: it is that fallback).
    state = NodeState(node, addresses, engine.allocator.world(4).id)
    # ipcache: exact addresses, and flattened policy CIDRs.
    cidrs: list[tuple[ipaddress.IPv4Network, int]] = []
    for e in cache.entries():
        if e.prefix.version != 4:
            state.skip("IPv6 ipcache entries")
            continue
        if e.prefix.prefixlen == 32:
            state.add("ipcache_ep", (str(e.prefix.network_address),), e.identity.id)
        else:
            assert isinstance(e.prefix, ipaddress.IPv4Network)
            cidrs.append((e.prefix, e.identity.id))
    for (lo, hi), ident in flatten_prefixes(cidrs):
        state.add("ipcache_cidr", ((_ip_text(lo), _ip_text(hi)),), ident)
    for ep in engine.endpoints:
        for ip in ep.ips:
            if _ipv4(ip):
                state.add("cluster_eps", (ip,))
    for node_entry in engine.cluster.nodes:
        for ip in node_entry.ips:
            if _ipv4(ip):
                state.add("cluster_eps", (ip,))
    ranges = _Ranges()
    config = engine.config
    for ep in local_endpoints(engine, node):
        ips = [ip for ip in ep.ips if _ipv4(ip)]
        if not ips:
            continue
        pol = engine.policy(ep)
        audit = config.audit_for(ep.key)
        for ip in ips:
            state.add("local_eps", (ip,))
            state.endpoints[ip] = ep.key
            for d in DIRECTIONS:
                dp = pol.direction(d)
                if not dp.enforced:
                    continue
                s = SHORT[d]
                state.add(f"{s}_enforced", (ip,))
                if dp.default_deny:
                    state.add(f"{s}_default_deny", (ip,))
                if audit:
                    state.add(f"{s}_audit", (ip,))
                _direction_elements(state, ip, d, dp, ranges)
    ranges.emit(state)
    return state


@dataclass
class SetChange:
    set: str
    add: dict[Key, int | None]
    delete: list[Key]


def diff(old: NodeState | None, new: NodeState) -> list[SetChange]:
    """What turns the datapath's `old` elements into `new`'s, per set (deletes first, so
    a range that changes shape never overlaps its old self)."""
    out = []
    for decl in SETS:
        want = new.elements[decl.name]
        have = old.elements[decl.name] if old is not None else {}
        delete = [k for k, v in have.items() if k not in want or want[k] != v]
        add = {k: v for k, v in want.items() if k not in have or have[k] != v}
        if add or delete:
            out.append(SetChange(decl.name, add, delete))
    return out


def _in_range(key: Key, prefix: Key, value: int) -> bool:
    r = key[-1]
    lo, hi = r if isinstance(r, tuple) else (r, r)  # the kernel lists a one-value range as the value
    return key[:-1] == prefix and int(lo) <= value <= int(hi)


def _port_hit(el: dict[str, dict[Key, int | None]], b: str, prefix: Key, port: int) -> bool:
    return (*prefix, port) in el[b] or any(_in_range(k, prefix, port) for k in el[f"{b}_range"])


def evaluate(state: NodeState, direction: str, local_ip: str, peer_identity: int, proto: int, port: int) -> str:
    """What the chains of `ruleset.py` decide for one new packet, computed from the sets:
    "pass" (not enforced), "allow", "deny" (181), "denied" (133), or "allow-no-default-deny".
    The plain reading of the datapath, used as the oracle of the compiled elements."""
    s = SHORT[direction]
    el = state.elements
    if (local_ip,) not in el[f"{s}_enforced"]:
        return "pass"
    for verdict in ("deny", "allow"):
        b = f"{s}_{verdict}"
        hit = False
        if proto in PORT_PROTOS:
            hit = _port_hit(el, b, (local_ip, peer_identity, proto), port) or _port_hit(el, f"{b}_l4", (local_ip, proto), port)
        elif proto == PROTO_ICMP:
            hit = any(_in_range(k, (local_ip, peer_identity), port) for k in el[f"{b}_icmp"]) or any(
                _in_range(k, (local_ip,), port) for k in el[f"{b}_icmp4"])
        hit = hit or (local_ip, peer_identity) in el[f"{b}_l3"] or (local_ip,) in el[f"{b}_all"]
        if hit:
            return verdict
    if (local_ip,) not in el[f"{s}_default_deny"]:
        return "allow-no-default-deny"
    return "denied"
