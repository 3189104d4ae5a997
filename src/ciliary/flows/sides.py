"""The two sides of a recorded flow, as the rest of ciliary names them: the workload a side
belongs to, the port a flow goes to, the request its L7 record carries, and the peer
(endpoint or address) a policy decision is about.

Rules: a side with a namespace and pod name is that pod when the cluster snapshot has it,
else the pod at that address, else a pod the engine makes from the labels the flow carries
(`PolicyEngine.endpoint_from_flow`); a side without a pod is the endpoint at its address
(a node's host endpoint, or a pod), else just the address. `FlowPeers` memoises all of it
per (namespace, pod, address); the memo never changes an answer.
The one write to the engine is for pods the snapshot lacks: `endpoint_from_flow` allocates
their identity, once per pod.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ciliary.cache import BoundedCache
from ciliary.cluster.endpoints import Endpoint
from ciliary.flows.head import EndpointHead
from ciliary.l7.http import HTTPRequest
from ciliary.l7.kafka import KafkaRequest, kafka_api_key, kafka_api_key_name
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_SCTP, PROTO_TCP, PROTO_UDP
from ciliary.verdict.decider import Decider, PeerPair
from ciliary.verdict.types import DNSQuery, FlowPeer, L7Request

JSON = dict[str, Any]
_PROTO_NAMES = {PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_SCTP: "SCTP"}


def port_label(f: JSON) -> str:
    """`8080/TCP`, or `ICMPv4 type 8`, of a flow's destination."""
    l4 = f.get("l4") or {}
    for name in ("TCP", "UDP", "SCTP"):
        if isinstance(l4.get(name), dict):
            return f"{l4[name].get('destination_port', 0)}/{name}"
    for name in ("ICMPv4", "ICMPv6"):
        if isinstance(l4.get(name), dict):
            return f"{name} type {l4[name].get('type', 0)}"
    return "?"


def workload_of_flow_side(side: JSON | None, ip: str | None) -> str:
    """`ns/workload` (Hubble's workload, else the pod), a reserved entity, or the address."""
    side = side or {}
    ns = side.get("namespace")
    wl = side.get("workloads")
    if ns and isinstance(wl, list) and wl and isinstance(wl[0], dict) and wl[0].get("name"):
        return f"{ns}/{wl[0]['name']}"
    if ns and side.get("pod_name"):
        return f"{ns}/{side['pod_name']}"
    labels = side.get("labels") or []
    reserved = [s.split(":", 1)[1] for s in labels if isinstance(s, str) and s.startswith("reserved:")]
    return reserved[0] if reserved else (ip or "?")


def workload_of_head(side: EndpointHead | None, ip: str) -> str:
    """`workload_of_flow_side` of a flow head's side (its lists decoded only if read)."""
    if side is None:
        return workload_of_flow_side(None, ip or None)
    ns, pod = side.namespace, side.pod_name
    return workload_of_flow_side({
        "namespace": ns, "pod_name": pod,
        "workloads": side.workload_list() if ns else None,
        "labels": side.label_list() if not (ns and pod) else None,
    }, ip or None)


def l7_request(l7: JSON) -> L7Request | None:
    """The request an L7 flow record carries (HTTP, Kafka or a DNS query); None for a
    response or a record without one."""
    if l7.get("type") not in ("REQUEST", None):
        return None
    if isinstance(l7.get("http"), dict):
        h = l7["http"]
        url = str(h.get("url") or "")
        path, host = url, ""
        if "://" in url:
            rest = url.split("://", 1)[1]
            host, _, tail = rest.partition("/")
            path = "/" + tail
        headers_list = []
        for x in h.get("headers") or ():
            if type(x) is dict:
                k, v = x.get("key", ""), x.get("value", "")
                headers_list.append((k if type(k) is str else str(k), v if type(v) is str else str(v)))
        return HTTPRequest(str(h.get("method") or "GET"), path or "/", host, tuple(headers_list))
    if isinstance(l7.get("kafka"), dict):
        k = l7["kafka"]
        try:
            key = kafka_api_key(k.get("api_key") or "produce")
        except (KeyError, ValueError):
            return None
        topic = k.get("topic")
        return KafkaRequest(key, int(k.get("api_version") or 0), str(k.get("correlation_id") or ""), (topic,) if topic else ())
    if isinstance(l7.get("dns"), dict):
        q = l7["dns"].get("query")
        return DNSQuery(str(q)) if q else None
    return None


def peer_of_side(engine: PolicyEngine, side: EndpointHead | None, ip: str | None) -> FlowPeer:
    """The peer a flow side stands for (see the module's rules)."""
    ns, pod = (side.namespace, side.pod_name) if side is not None else ("", "")
    if ns and pod:
        ep = engine.endpoint_of_pod(f"{ns}/{pod}")
        if ep is not None:
            return FlowPeer(ip or (ep.ips[0] if ep.ips else None), ep)
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            ip = None
    if ip:
        ep = engine.endpoint_by_ip(ip)
        if ep is not None and not (ns and pod and not ep.is_host):
            return FlowPeer(ip, ep)
    if side is not None and ns and pod:
        labels = [s for s in side.label_list() if isinstance(s, str)]
        return FlowPeer(ip, engine.endpoint_from_flow(ns, pod, labels, ip))
    return FlowPeer(ip, None)


class FlowPeers:
    """Flow sides to peers and (source, destination) to `PeerPair`s, memoised."""

    __slots__ = ("_pairs", "_peers", "decider")

    def __init__(self, decider: Decider, maxsize: int = 200_000) -> None:
        self.decider = decider
        self._peers: BoundedCache[tuple[str, str, str], FlowPeer] = BoundedCache(maxsize)
        self._pairs: BoundedCache[tuple[Any, ...], PeerPair] = BoundedCache(maxsize)

    def peer(self, side: EndpointHead | None, ip: str) -> FlowPeer:
        k = (side.namespace, side.pod_name, ip) if side is not None else ("", "", ip)
        p = self._peers.get(k)
        if p is None:
            p = self._peers.put(k, peer_of_side(self.decider.engine, side, ip or None))
        return p

    def pair(self, src: EndpointHead | None, src_ip: str, dst: EndpointHead | None, dst_ip: str) -> PeerPair:
        """The pair of a connection from side `src` (at `src_ip`) to side `dst`."""
        k = (
            (src.namespace, src.pod_name) if src is not None else None, src_ip,
            (dst.namespace, dst.pod_name) if dst is not None else None, dst_ip,
        )
        hit = self._pairs.get(k)
        if hit is None:
            hit = self._pairs.put(k, self.decider.pair(self.peer(src, src_ip), self.peer(dst, dst_ip)))
        return hit


def describe_request(req: L7Request) -> str:
    """`HTTP GET /path`, `Kafka produce orders`, `DNS api.example.com`: a request for people."""
    if type(req) is DNSQuery:
        return f"DNS {req.qname.rstrip('.')}"
    if type(req) is HTTPRequest:
        return f"HTTP {req.method} {req.path}"
    assert type(req) is KafkaRequest
    return f"Kafka {kafka_api_key_name(req.api_key)} {','.join(req.topics)}".rstrip()


def serves(ep: Endpoint | None, proto: int, port: int) -> bool:
    """Whether an endpoint listens on (proto, port): one of its pod's container ports."""
    name = _PROTO_NAMES.get(proto)
    return ep is not None and name is not None and any(
        cp.port == port and cp.protocol.upper() == name for cp in ep.named_ports
    )


def unmarked_reply(reverse_known: bool, forward_known: bool, src_serves: bool, dst_serves: bool) -> bool:
    """Whether a flow that does not say `is_reply` (captures of older Hubble) is a reply, as
    conntrack would have it: the reverse of a known connection is; the forward of one is not;
    of a connection begun before the capture, a flow leaving a port its source serves on for
    one its destination does not serve is."""
    if reverse_known:
        return True
    if forward_known:
        return False
    return src_serves and not dst_serves
