"""What recorded flows say about who talks to whom: `Observation`s, the input of policy
authoring (`ciliary connections`, `ciliary generate`).

An observation is one connection (or one L7 request on one) in its own direction: source
and destination as a policy names them (`ObservedPeer`: a workload, an entity, a world
address), protocol and port, the request it carries, the DNS names its source resolved the
destination address from, and the verdict and drop reason recorded.

Rules:
* A reply (`is_reply`) is folded into its connection: its sides swap and its port is its
  source port (an ICMP reply's, the request type it answers: echo reply 0 is echo 8);
  `reply` says so. Observations of an L3/L4 connection after the first (other
  observation points, later packets) carry `repeat`; L7 requests never repeat.
* Kept: trace (4), policy-verdict (5), drop (1) and L7 (129) events, and flows that do not
  say (old captures). Drops other than the policy's (POLICY_DENIED, POLICY_DENY, or an L7
  request the proxy denied) are not connections a policy decides, nor is health traffic
  (`reserved:health` on either side): both are left out. DNS responses are not connections either: their answers are learned,
  per source pod, in time order, and name the world addresses of later observations.
* A side with a namespace and pod name is that pod's workload: from the cluster snapshot
  when one is given (and has the pod), else from the labels the flow carries; a pod with
  neither is `unresolved`, with the reason, never guessed. Other sides are what the
  snapshot's ipcache makes of the address as the other side's node sees it (a pod, the
  host, a remote node, the apiserver), else the entity their reserved labels name; what is
  left is a world address.
* Old captures write the deprecated `reply` instead of `is_reply`; a flow that says
  neither is a reply when its reverse 5-tuple is a
  known connection (as conntrack has it), or, for a connection begun before the capture,
  when it leaves a container port of its source for a port its destination does not serve.
* `keep(flow)` (observe's filters) selects which flows become observations; it is asked only
  about flows that may become ones, so DNS answers are learned whatever it says (a window or a port
  filter must not lose the names of the addresses it keeps). A flow it cannot read (it
  raises, as observe's filters do on a malformed field) is a bad line, as in observe.

Memory grows with distinct sides, DNS answers and the connection table (bounded), never
with the number of flows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from ciliary.cache import BoundedCache
from ciliary.cluster.endpoints import Endpoint
from ciliary.cluster.workloads import Workload, pod_labels_of_flow, workload_of
from ciliary.flows.codec import BadLine, FlowReadError, OnBadLine, ReadStats, display_name
from ciliary.flows.head import (
    EndpointHead,
    FlowHead,
    FlowLine,
    flow_seconds,
    layer4_of,
    map_flow_lines,
)
from ciliary.flows.sides import l7_request, serves, unmarked_reply
from ciliary.policy.engine import PolicyEngine, node_name
from ciliary.policy.ports import PROTO_ICMP, PROTO_ICMPV6
from ciliary.verdict.types import L7Request

JSON = dict[str, Any]

POD, ENTITY, WORLD, UNRESOLVED = "pod", "entity", "world", "unresolved"
KEPT_EVENTS = frozenset({0, 1, 4, 5, 129})  # unknown, drop, trace, policy verdict, L7
POLICY_DROPS = frozenset({"POLICY_DENIED", "POLICY_DENY"})
# When a side carries several reserved labels, the entity that names it best.
_ENTITY_ORDER = ("kube-apiserver", "host", "remote-node", "ingress", "health", "init", "unmanaged")
_CONNECTIONS = 500_000  # connections remembered to tell repeats apart (like conntrack)
# The request type an ICMP reply answers (echo, timestamp, information, address mask; v6 echo).
_ICMP_REQUEST = {(PROTO_ICMP, 0): 8, (PROTO_ICMP, 14): 13, (PROTO_ICMP, 16): 15,
                 (PROTO_ICMP, 18): 17, (PROTO_ICMPV6, 129): 128}
# What a `keep` predicate raises on a flow it cannot read (observe's `_FLOW_ERRORS`).
_KEEP_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError)


# cache_hash: peers are memoised (PeerResolver) and looked up by, per flow, in connections'
# row labels: each is hashed once, not once per flow.
class ObservedPeer(msgspec.Struct, frozen=True, gc=False, cache_hash=True):
    """One side of an observation, as a policy would name it."""

    kind: str  # pod | entity | world | unresolved
    workload: Workload | None = None  # pods
    pod: str = ""  # namespace/name of a pod
    entity: str = ""  # host, remote-node, kube-apiserver, ingress, ... (entities)
    ip: str = ""  # the address (world, entities, and pods when known)
    why: str = ""  # unresolved: why

    def __str__(self) -> str:
        if self.kind == POD and self.workload is not None:
            return self.workload.key
        if self.kind == ENTITY:
            return self.entity
        return self.ip or self.pod or "?"


class Observation(msgspec.Struct, gc=False):
    src: ObservedPeer
    dst: ObservedPeer
    proto: int
    port: int  # destination port, or ICMP type
    request: L7Request | None  # the L7 request the flow records
    names: tuple[str, ...]  # DNS names the source resolved to a world destination's address
    verdict: str
    drop_reason: str
    event: int  # the monitor event type (0: not recorded)
    time: float | None
    time_text: str
    file: str
    line: int
    reply: bool = False  # folded from a reply of the connection
    repeat: bool = False  # the connection (5-tuple) was observed before
    answered: bool = False  # `names` include one a DNS answer in the flows gave the source

    @property
    def denied(self) -> bool:
        """Dropped by an explicit deny rule: never to be allowed."""
        return self.drop_reason == "POLICY_DENY"


def _entity_of(labels: Iterable[object]) -> str | None:
    """The entity a side's reserved labels name (`world` for world and CIDR identities)."""
    reserved = {s[9:] for s in labels if isinstance(s, str) and s.startswith("reserved:")}
    for name in _ENTITY_ORDER:
        if name in reserved:
            return name
    if reserved & {"world", "world-ipv4", "world-ipv6"} or any(
        isinstance(s, str) and s.startswith(("cidr:", "fqdn:")) for s in labels
    ):
        return "world"
    return None


class PeerResolver:
    """Flow sides to `ObservedPeer`s, with a cluster snapshot's engine or without one."""

    def __init__(self, engine: PolicyEngine | None = None, maxsize: int = 200_000) -> None:
        self.engine = engine
        self._memo: BoundedCache[tuple[Any, ...], ObservedPeer] = BoundedCache(maxsize)

    def peer(self, side: EndpointHead | None, ip: str, other: EndpointHead | None) -> ObservedPeer:
        """`side` at address `ip`; `other` is the flow's other side (whose node sees it)."""
        if side is None:
            key: tuple[Any, ...] = ("", "", ip, b"", self._node_of(other))
        elif side.namespace and side.pod_name:
            key = (side.namespace, side.pod_name, ip)
        else:
            key = ("", "", ip, bytes(side.labels), self._node_of(other))
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo.put(key, self._resolve(side, ip, key[-1] if len(key) == 5 else None))
        return hit

    def endpoint(self, side: EndpointHead | None, ip: str) -> Endpoint | None:
        """The snapshot's endpoint at this side (by pod, else by address), if any."""
        engine = self.engine
        if engine is None:
            return None
        ep = None
        if side is not None and side.namespace and side.pod_name:
            ep = engine.endpoint_of_pod(f"{side.namespace}/{side.pod_name}")
        return ep if ep is not None or not ip else engine.endpoint_by_ip(ip)

    def _node_of(self, side: EndpointHead | None) -> str | None:
        if self.engine is None or side is None or not (side.namespace and side.pod_name):
            return None
        ep = self.engine.endpoint_of_pod(f"{side.namespace}/{side.pod_name}")
        return node_name(ep) if ep is not None else None

    def _resolve(self, side: EndpointHead | None, ip: str, observer: str | None) -> ObservedPeer:
        engine = self.engine
        labels = side.label_list() if side is not None else []
        if side is not None and side.namespace and side.pod_name:
            key = f"{side.namespace}/{side.pod_name}"
            ep = engine.endpoint_of_pod(key) if engine is not None else None
            if ep is not None and ep.pod is not None and not ep.is_host:
                return self._pod(key, side.namespace, dict(ep.pod.labels), ip)
            entity = _entity_of(labels)
            if ep is not None and ep.is_host:  # a host-network pod is its node
                return ObservedPeer(ENTITY, entity=entity if entity in ("host", "remote-node") else "host", ip=ip)
            own = pod_labels_of_flow(labels)
            if own:
                return self._pod(key, side.namespace, own, ip)
            why = "not in the cluster snapshot, and the flow carries no labels" if engine is not None else "the flow carries no labels"
            return ObservedPeer(UNRESOLVED, pod=key, ip=ip, why=f"pod {key}: {why}")
        if engine is not None and ip:
            # The snapshot's view first: it is what the policies are decided against.
            ep = engine.endpoint_by_ip(ip)
            if ep is not None and ep.pod is not None:
                return self._pod(ep.key, ep.pod.namespace, dict(ep.pod.labels), ip)
            try:
                known = _entity_of(engine.identity_of_ip(ip, observer).labels.to_strings())
            except ValueError:
                known = None
            if known is not None and known != "world":
                return ObservedPeer(ENTITY, entity=known, ip=ip)
        entity = _entity_of(labels)  # what the datapath that recorded the flow saw
        if entity is not None and entity != "world":
            return ObservedPeer(ENTITY, entity=entity, ip=ip)
        if not ip:
            return ObservedPeer(UNRESOLVED, why="no address and no pod")
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return ObservedPeer(UNRESOLVED, ip=ip, why=f"{ip!r} is not an address")
        return ObservedPeer(WORLD, ip=ip)

    @staticmethod
    def _pod(key: str, namespace: str, labels: dict[str, str], ip: str) -> ObservedPeer:
        w = workload_of(namespace, labels)
        if w is None:
            return ObservedPeer(UNRESOLVED, pod=key, ip=ip, why=f"pod {key} has no labels to select it by")
        return ObservedPeer(POD, workload=w, pod=key, ip=ip)


class _Reader:
    """The state of one pass over flows: learned DNS answers and known connections."""

    def __init__(
        self, resolver: PeerResolver, keep: Callable[[JSON], bool] | None, stats: ReadStats,
        strict: bool, on_bad: OnBadLine | None,
    ) -> None:
        self.resolver = resolver
        self.keep = keep
        self.stats = stats
        self.strict = strict
        self.on_bad = on_bad
        self.file = ""
        self.name = ""  # the file as bad lines name it (`<stdin>` for `-`)
        self.answers: dict[str, dict[str, set[str]]] = {}  # client pod -> address -> names
        # connection -> whether it was observed in its own direction (False: replies only)
        self.seen: BoundedCache[tuple[int, str, int, str, int], bool] = BoundedCache(_CONNECTIONS)

    def one(self, fl: FlowLine) -> Observation | None:
        f = fl.head
        event = f.event_type.type if f.event_type is not None else 0
        if event not in KEPT_EVENTS:
            return None
        # A drop the policy did not make is no connection to allow; an L7 record dropped
        # (the proxy denied the request) carries no drop reason.
        if f.verdict == "DROPPED" and f.drop_reason_desc not in POLICY_DROPS and f.l7 is None:
            return None
        t = layer4_of(f.l4)
        ips = f.IP
        if t is None or ips is None:
            return None
        proto, sport, dport = t
        sip, dip = ips.source, ips.destination
        l7 = f.l7
        if l7 is not None and l7.get("type") == "RESPONSE" and isinstance(l7.get("dns"), dict):
            self.learn(f, l7["dns"])
            return None
        said = f.replying
        reply = said is True or (said is None and l7 is None and self.unmarked_reply(f, proto, sip, sport, dip, dport))
        if l7 is not None and reply:
            return None  # an L7 response: its request was the observation
        if self.keep is not None and not self.selected(fl):
            return None
        if reply and (proto, dport) in _ICMP_REQUEST:
            # conntrack keys an ICMP reply as its request: (type, 0) in its own direction
            sport, dport = _ICMP_REQUEST[proto, dport], 0
        if reply:
            src_side, dst_side, sip, dip, port = f.destination, f.source, dip, sip, sport
        else:
            src_side, dst_side, port = f.source, f.destination, dport
        r = self.resolver
        src, dst = r.peer(src_side, sip, dst_side), r.peer(dst_side, dip, src_side)
        if "health" in (src.entity, dst.entity):
            return None
        request = l7_request(l7) if l7 is not None else None
        repeat = False
        if request is None:
            # True once the connection was observed in its own direction: only such an
            # observation is its first (a reply seen first does not make the next a repeat).
            conn = (proto, sip, sport, dip, dport) if not reply else (proto, sip, dport, dip, sport)
            if reply:
                if conn not in self.seen:
                    self.seen.put(conn, False)
            else:
                repeat = self.seen.get(conn) is True
                if not repeat:
                    self.seen.put(conn, True)
        names: tuple[str, ...] = ()
        answered = False
        if dst.kind == WORLD:
            learned = self.answers.get(src.pod, {}).get(dip, set()) if src.pod else set()
            answered = bool(learned)
            recorded = f.destination_name_list() if not reply else []
            names = tuple(sorted(learned | {n.rstrip(".").lower() for n in recorded}))
        return Observation(
            src, dst, proto, port, request, names, f.verdict, f.drop_reason_desc, event,
            flow_seconds(f.time), f.time, self.file, fl.lineno, reply, repeat, answered,
        )

    def unmarked_reply(self, f: FlowHead, proto: int, sip: str, sport: int, dip: str, dport: int) -> bool:
        """A flow of an old capture (no `is_reply`) that is a reply (`sides.unmarked_reply`)."""
        seen, r = self.seen, self.resolver
        return unmarked_reply(
            (proto, dip, dport, sip, sport) in seen, (proto, sip, sport, dip, dport) in seen,
            serves(r.endpoint(f.source, sip), proto, sport), serves(r.endpoint(f.destination, dip), proto, dport),
        )

    def selected(self, fl: FlowLine) -> bool:
        assert self.keep is not None
        try:
            return self.keep(fl.flow())
        except _KEEP_ERRORS as exc:
            reason = f"invalid flow: {exc}"
            if self.strict:
                raise FlowReadError(self.name, fl.lineno, reason) from exc
            bad = BadLine(self.name, fl.lineno, reason)
            self.stats.add_bad(bad)
            self.stats.flows -= 1  # read as a flow, and now a bad line (observe counts so)
            if self.on_bad is not None:
                self.on_bad(bad)
            return False

    def learn(self, f: FlowHead, dns: JSON) -> None:
        client = f.destination
        query = dns.get("query")
        if client is None or not client.pod_name or not isinstance(query, str):
            return
        by_ip = self.answers.setdefault(f"{client.namespace}/{client.pod_name}", {})
        name = query.rstrip(".").lower()
        for ip in dns.get("ips") or ():
            if isinstance(ip, str):
                by_ip.setdefault(ip, set()).add(name)


def observations(
    sources: Iterable[str | Path],
    stats: ReadStats,
    resolver: PeerResolver,
    *,
    keep: Callable[[JSON], bool] | None = None,
    strict: bool = False,
    on_bad: OnBadLine | None = None,
) -> Iterator[Observation]:
    """Every observation of the flows of `sources`, in input order (see the module's rules).
    `keep(flow)` selects flows by their whole dict (observe's filters); without it only the
    fields the observations need are decoded."""
    reader = _Reader(resolver, keep, stats, strict, on_bad)
    for src in sources:
        reader.file = str(src)
        reader.name = display_name(src)
        for ob in map_flow_lines(reader.one, src, stats, strict=strict, on_bad=on_bad):
            if ob is not None:
                yield ob
