"""Datapath verdict events -> Hubble flows, in the shape `hubble observe -o json` prints.

An event is what one NFLOG message says (`ruleset.py`): DROP or AUDIT with a direction and
a drop reason, or ALLOW with a direction, for the first packet of a connection, plus the
packet's addresses and ports and the node that saw it. The verdict comes from the kernel;
the agent fills in what Cilium's agent fills in from its own state: the endpoints (labels,
namespace, pod) and identities from the node's ipcache, and, for allowed and audited
connections, the policy match type and the policies that allowed it, looked up in the same
policy maps the kernel's sets were made from.

Contracts:
* `flow_of` is a pure function of the event and the engine (it asks a `Decider`, which
  caches); the flow it returns is new.
* Drops are `event_type` 1 (drop notify, `sub_type` = reason); allowed and audited
  connections are policy-verdict events (`event_type` 5), like Cilium's.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from ciliary.flows.gotime import format_rfc3339_proto
from ciliary.identity.allocator import Identity
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_ICMP, PROTO_SCTP, PROTO_TCP, PROTO_UDP
from ciliary.verdict.decider import Decider
from ciliary.verdict.types import MATCH_TYPE_CODES, FlowPeer

REASONS = {133: "POLICY_DENIED", 181: "POLICY_DENY", 189: "AUTH_REQUIRED"}
TCP_FLAG_ORDER = ("SYN", "ACK", "RST", "FIN", "PSH", "URG", "ECE", "CWR", "NS")
ICMP_NAMES = {0: "EchoReply", 3: "DestinationUnreachable", 8: "EchoRequest", 11: "TimeExceeded"}


@dataclass(frozen=True)
class VerdictEvent:
    action: str  # DROP | AUDIT | ALLOW
    direction: str  # ingress | egress
    reason: int  # 0 for ALLOW
    node: str
    src: str
    dst: str
    proto: int
    sport: int = 0
    dport: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    tcp_flags: tuple[str, ...] = ()
    time_ns: int = 0
    mark: int = 0  # the remote identity the chains computed


def parse_prefix(prefix: str) -> tuple[str, str, int] | None:
    """`DROP egress 133` -> ("DROP", "egress", 133); None for another log's prefix."""
    parts = prefix.split()
    if len(parts) < 2 or parts[0] not in ("DROP", "AUDIT", "ALLOW") or parts[1] not in ("ingress", "egress"):
        return None
    reason = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
    return parts[0], parts[1], reason


def _endpoint(engine: PolicyEngine, ip: str, node: str) -> tuple[dict[str, Any], Identity]:
    ep = engine.endpoint_by_ip(ip)
    ident = engine.identity_of_ip(ip, node) if ep is None or ep.is_host else ep.identity
    out: dict[str, Any] = {"identity": ident.id}
    if ep is not None and ep.pod is not None:
        out["cluster_name"] = engine.config.cluster_name
        out["namespace"] = ep.pod.namespace
        out["labels"] = ident.labels.to_strings()
        out["pod_name"] = ep.pod.name
    else:
        out["labels"] = ident.labels.to_strings()
    return out, ident


def _l4(e: VerdictEvent) -> tuple[dict[str, Any], str]:
    if e.proto in (PROTO_TCP, PROTO_UDP, PROTO_SCTP):
        name = {PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_SCTP: "SCTP"}[e.proto]
        body: dict[str, Any] = {"source_port": e.sport, "destination_port": e.dport}
        summary = name
        if e.proto == PROTO_TCP:
            flags = [f for f in TCP_FLAG_ORDER if f in e.tcp_flags]
            body["flags"] = {f: True for f in flags}
            summary = "TCP Flags: " + ", ".join(flags)
        return {name: body}, summary
    if e.proto == PROTO_ICMP:
        return {"ICMPv4": {"type": e.icmp_type, "code": e.icmp_code}}, f"ICMPv4 {ICMP_NAMES.get(e.icmp_type, e.icmp_type)}"
    return {}, f"IP protocol {e.proto}"


def flow_of(e: VerdictEvent, engine: PolicyEngine, decider: Decider, *, enforced: bool = True) -> dict[str, Any]:
    """The Hubble flow (the `flow` object of a `hubble observe -o json` line) of one event.
    An ALLOW of a direction the endpoint does not enforce is a trace event (Cilium emits
    policy verdicts only for enforced directions), at `to-endpoint` or `to-stack`."""
    node = e.node
    src, _ = _endpoint(engine, e.src, node)
    dst, _ = _endpoint(engine, e.dst, node)
    l4, summary = _l4(e)
    ns = e.time_ns or time.time_ns()
    flow: dict[str, Any] = {
        "time": format_rfc3339_proto(ns),
        "uuid": str(uuid.uuid4()),
        "emitter": {"name": "ciliary", "version": "agent"},
        "IP": {"source": e.src, "destination": e.dst, "ipVersion": "IPv4"},
        "l4": l4,
        "source": src,
        "destination": dst,
        "Type": "L3_L4",
        "node_name": node,
        "traffic_direction": e.direction.upper(),
        "Summary": summary,
    }
    if e.action == "DROP":
        flow["verdict"] = "DROPPED"
        flow["drop_reason"] = e.reason
        flow["drop_reason_desc"] = REASONS.get(e.reason, str(e.reason))
        flow["event_type"] = {"type": 1, "sub_type": e.reason}
        return flow
    flow["verdict"] = "AUDIT" if e.action == "AUDIT" else "FORWARDED"
    flow["is_reply"] = False
    if e.action == "ALLOW" and not enforced:
        point = ("TO_ENDPOINT", 0) if e.direction == "ingress" else ("TO_STACK", 3)
        flow["event_type"] = {"type": 4, "sub_type": point[1]}
        flow["trace_observation_point"] = point[0]
        return flow
    flow["event_type"] = {"type": 5}
    port = e.dport if e.proto != PROTO_ICMP else e.icmp_type
    src_ep = engine.endpoint_by_ip(e.src)
    dst_ep = engine.endpoint_by_ip(e.dst)
    try:
        v = decider.decide_connection(FlowPeer(e.src, src_ep), FlowPeer(e.dst, dst_ep), e.proto, port).verdict
    except ValueError:
        return flow
    flow["policy_match_type"] = MATCH_TYPE_CODES.get(v.policy_match_type, 0)
    for side, key in ((v.egress, "egress_allowed_by"), (v.ingress, "ingress_allowed_by")):
        if side.allowed_by:
            flow[key] = [{"kind": r.kind, "namespace": r.namespace, "name": r.name} for r in side.allowed_by]
    return flow


def export_line(flow: dict[str, Any]) -> dict[str, Any]:
    """The exporter's envelope: `{"flow": ..., "node_name": ..., "time": ...}`."""
    return {"flow": flow, "node_name": flow["node_name"], "time": flow["time"]}
