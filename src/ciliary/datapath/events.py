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
* `FlowMaker` is `flow_of` for one engine and decider at the agent's event rate: the same
  flows, key for key and in the same order (the uuid is random in both), with memos of what
  depends only on the engine: the endpoint of an (address, node), the policies that allowed
  a (source, destination, protocol, port), the text of a second. A new engine needs a new
  maker. While DNS names are learned (`engine.has_learned_names`: identities then change
  with time) it asks the engine every time. `flow_of` stays the plain version and the
  tests' oracle.
* Drops are `event_type` 1 (drop notify, `sub_type` = reason); allowed and audited
  connections are policy-verdict events (`event_type` 5), like Cilium's.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ciliary.cache import BoundedCache
from ciliary.datapath.nflog import tcp_flag_names
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


@lru_cache(maxsize=256)  # the ruleset's prefixes: a handful
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


# -- at the agent's event rate -------------------------------------------------------------

_NS = 1_000_000_000
_UUID_VERSION = bytes((b & 0x0F) | 0x40 for b in range(256))  # byte 6: version 4
_UUID_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))  # byte 8: RFC 4122 variant
_L4_NAMES = {PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_SCTP: "SCTP"}
_DIRECTIONS = {"ingress": "INGRESS", "egress": "EGRESS"}
_TRACE_POINTS = {"ingress": ("TO_ENDPOINT", 0), "egress": ("TO_STACK", 3)}
# The policies of an allowed connection: (match type code, egress, ingress), each side's
# rules as (kind, namespace, name); None when the Decider could not decide it.
_Allowed = tuple[int, tuple[tuple[str, str, str], ...], tuple[tuple[str, str, str], ...]] | None
_MISSING: Any = object()


def uuid4_texts(n: int) -> list[str]:
    """`n` random version-4 UUIDs spelled as `str(uuid.uuid4())`, from one `os.urandom`
    call (the same bits `uuid.uuid4` sets: version 4, RFC 4122 variant)."""
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = raw[6::16].translate(_UUID_VERSION)
    raw[8::16] = raw[8::16].translate(_UUID_VARIANT)
    h = raw.hex()
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
            for i in range(0, 32 * n, 32)]  # fmt: skip


class FlowMaker:
    """`flow_of` for one engine and decider, with memos (see the module's contracts).

    `flow` takes an event's fields one by one (the agent's path, without building a
    `VerdictEvent`); `tcp_flags` may be letters (`PacketHead.tcp_flags`, "SA") or names
    (`VerdictEvent.tcp_flags`). Every flow is new: memoized parts are copied."""

    def __init__(self, engine: PolicyEngine, decider: Decider, *, maxsize: int = 1 << 14) -> None:
        self.engine, self.decider = engine, decider
        self._endpoints: BoundedCache[tuple[str, str], dict[str, Any]] = BoundedCache(maxsize)
        self._allowed: BoundedCache[tuple[str, str, int, int], _Allowed] = BoundedCache(maxsize)
        self._tcp: dict[str | tuple[str, ...], tuple[tuple[str, ...], str]] = {}
        self._uuids: list[str] = []
        self._second: int | None = None
        self._base = ""

    def time_text(self, ns: int) -> str:
        """`format_rfc3339_proto(ns)`, the date and time worked out once per second."""
        sec, nanos = divmod(ns, _NS)
        if sec != self._second:
            self._base = format_rfc3339_proto(sec * _NS)[:-1]
            self._second = sec
        if nanos == 0:
            return self._base + "Z"
        if nanos % 1_000_000 == 0:
            return f"{self._base}.{nanos // 1_000_000:03d}Z"
        if nanos % 1000 == 0:
            return f"{self._base}.{nanos // 1000:06d}Z"
        return f"{self._base}.{nanos:09d}Z"

    def uuid(self) -> str:
        if not self._uuids:
            self._uuids = uuid4_texts(256)
        return self._uuids.pop()

    def endpoint(self, ip: str, node: str) -> dict[str, Any]:
        """The `source`/`destination` object of `ip` seen from `node` (a new dict)."""
        if self.engine.has_learned_names:
            return _endpoint(self.engine, ip, node)[0]
        memo = self._endpoints.get((ip, node))
        if memo is None:
            memo = self._endpoints.put((ip, node), _endpoint(self.engine, ip, node)[0])
        return {**memo, "labels": memo["labels"][:]}

    def _tcp_flags(self, flags: str | tuple[str, ...]) -> tuple[tuple[str, ...], str]:
        memo = self._tcp.get(flags)
        if memo is None:
            names = tcp_flag_names(flags) if isinstance(flags, str) else flags
            ordered = tuple(f for f in TCP_FLAG_ORDER if f in names)
            memo = (ordered, "TCP Flags: " + ", ".join(ordered))
            if len(self._tcp) < 1024:
                self._tcp[flags] = memo
        return memo

    def _decide(self, src: str, dst: str, proto: int, port: int) -> _Allowed:
        engine = self.engine
        try:
            v = self.decider.decide_connection(FlowPeer(src, engine.endpoint_by_ip(src)),
                                               FlowPeer(dst, engine.endpoint_by_ip(dst)), proto, port).verdict  # fmt: skip
        except ValueError:
            return None
        return (MATCH_TYPE_CODES.get(v.policy_match_type, 0),
                tuple((r.kind, r.namespace, r.name) for r in v.egress.allowed_by),
                tuple((r.kind, r.namespace, r.name) for r in v.ingress.allowed_by))  # fmt: skip

    def flow(
        self, action: str, direction: str, reason: int, node: str, src: str, dst: str, proto: int,
        sport: int = 0, dport: int = 0, icmp_type: int = 0, icmp_code: int = 0,
        tcp_flags: str | tuple[str, ...] = (), time_ns: int = 0, *, enforced: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """`flow_of(VerdictEvent(action, ...), engine, decider, enforced=enforced)`."""
        l4: dict[str, Any]
        name = _L4_NAMES.get(proto)
        if name is not None:
            if proto == PROTO_TCP:
                flags, summary = self._tcp_flags(tcp_flags)
                l4 = {name: {"source_port": sport, "destination_port": dport, "flags": dict.fromkeys(flags, True)}}
            else:
                l4, summary = {name: {"source_port": sport, "destination_port": dport}}, name
        elif proto == PROTO_ICMP:
            l4 = {"ICMPv4": {"type": icmp_type, "code": icmp_code}}
            summary = f"ICMPv4 {ICMP_NAMES.get(icmp_type, icmp_type)}"
        else:
            l4, summary = {}, f"IP protocol {proto}"
        if self.engine.has_learned_names:
            s = d = None
        else:  # the memos' copies, inline (endpoint() on a miss)
            s, d = self._endpoints.get((src, node)), self._endpoints.get((dst, node))
        flow: dict[str, Any] = {
            "time": self.time_text(time_ns or time.time_ns()),
            "uuid": self._uuids.pop() if self._uuids else self.uuid(),
            "emitter": {"name": "ciliary", "version": "agent"},
            "IP": {"source": src, "destination": dst, "ipVersion": "IPv4"},
            "l4": l4,
            "source": {**s, "labels": s["labels"][:]} if s is not None else self.endpoint(src, node),
            "destination": {**d, "labels": d["labels"][:]} if d is not None else self.endpoint(dst, node),
            "Type": "L3_L4",
            "node_name": node,
            "traffic_direction": _DIRECTIONS.get(direction) or direction.upper(),
            "Summary": summary,
        }
        if action == "DROP":
            flow["verdict"] = "DROPPED"
            flow["drop_reason"] = reason
            flow["drop_reason_desc"] = REASONS.get(reason, str(reason))
            flow["event_type"] = {"type": 1, "sub_type": reason}
            return flow
        flow["verdict"] = "AUDIT" if action == "AUDIT" else "FORWARDED"
        flow["is_reply"] = False
        if action == "ALLOW" and not enforced:
            point = _TRACE_POINTS.get(direction, ("TO_STACK", 3))
            flow["event_type"] = {"type": 4, "sub_type": point[1]}
            flow["trace_observation_point"] = point[0]
            return flow
        flow["event_type"] = {"type": 5}
        port = dport if proto != PROTO_ICMP else icmp_type
        if self.engine.has_learned_names:
            allowed = self._decide(src, dst, proto, port)
        else:
            key = (src, dst, proto, port)
            allowed = self._allowed.get(key, _MISSING)
            if allowed is _MISSING:
                allowed = self._allowed.put(key, self._decide(src, dst, proto, port))
        if allowed is None:
            return flow
        flow["policy_match_type"] = allowed[0]
        if allowed[1]:
            flow["egress_allowed_by"] = [{"kind": k, "namespace": n, "name": m} for k, n, m in allowed[1]]
        if allowed[2]:
            flow["ingress_allowed_by"] = [{"kind": k, "namespace": n, "name": m} for k, n, m in allowed[2]]
        return flow

    def flow_of(self, e: VerdictEvent, *, enforced: bool = True) -> dict[str, Any]:
        """`flow_of(e, engine, decider, enforced=enforced)`."""
        return self.flow(e.action, e.direction, e.reason, e.node, e.src, e.dst, e.proto, e.sport, e.dport,
                         e.icmp_type, e.icmp_code, e.tcp_flags, e.time_ns, enforced=enforced)  # fmt: skip
