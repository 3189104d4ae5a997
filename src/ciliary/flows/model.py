"""The Hubble `Flow` (`api/v1/flow/flow.proto`) as slotted, typed views over its JSON.

A `Flow` wraps the decoded protojson dict; it does not copy or convert it. Fields are tables of
typed read-only attributes (`ciliary.flows._fields`) that read the JSON on demand with protobuf
getter semantics: an absent scalar is its zero value, an absent enum is its 0 name
(`VERDICT_UNKNOWN`), an absent message is None, a sub-message is a fresh view per access. The
few fields that are not plain reads are properties. Enum-valued fields return the protojson
name (the proto enum name, e.g. `"DROPPED"`); the `IntEnum` classes in `ciliary.flows.enums`
convert to numbers. 64-bit integers (JSON strings) are returned as int.

Because the dict is kept as it is, unknown fields (from newer Hubble releases) and the key order
survive: writing a flow that was read gives back the same JSON. The envelope a flow was read
with (`{"flow": ..., "node_name": ..., "time": ...}`) is kept too.

Contracts: a `Flow` and its views share one dict and never write to it. `raw` and
`to_dict` return that dict itself, so a caller that changes it changes the flow (copy
first). `Flow(d)` trusts `d` to be canonical protojson; `Flow.from_dict` and `Flow.build`
canonicalize.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ciliary.flows import schema
from ciliary.flows._fields import (
    as_int,
    bool_field,
    enum_field,
    int_field,
    msg_field,
    msgs_field,
    str_field,
    strs_field,
)
from ciliary.flows.enums import (
    AuthType,
    DebugCapturePoint,
    DropReason,
    FlowType,
    FlowVerdict,
    IPVersion,
    L7FlowType,
    SocketTranslationPoint,
    TraceObservationPoint,
    TraceReason,
    TrafficDirection,
)
from ciliary.flows.gotime import NS, parse_rfc3339_ns

JSON = dict[str, Any]

__all__ = [
    "DNS",
    "HTTP",
    "IGMP",
    "IP",
    "SCTP",
    "TCP",
    "UDP",
    "VRRP",
    "Aggregate",
    "CiliumEventType",
    "Emitter",
    "Ethernet",
    "FileInfo",
    "Flow",
    "FlowEndpoint",
    "FlowService",
    "HTTPHeader",
    "ICMPv4",
    "ICMPv6",
    "IPTraceID",
    "Kafka",
    "Layer4",
    "Layer7",
    "NetworkInterface",
    "Policy",
    "TCPFlags",
    "TraceContext",
    "Tunnel",
    "Workload",
]


class Message:
    """A view over one protojson object. Equality is equality of the JSON."""

    __slots__ = ("_d",)  # the object the `_fields` attributes of subclasses read

    def __init__(self, data: JSON) -> None:
        self._d = data

    @property
    def raw(self) -> JSON:
        """The underlying JSON object (not a copy)."""
        return self._d

    def to_dict(self) -> JSON:
        return self._d

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and type(other) is type(self) and self._d == other._d

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._d!r})"


class Emitter(Message):
    __slots__ = ()

    name = str_field("name")
    version = str_field("version")


class Ethernet(Message):
    __slots__ = ()

    source = str_field("source")
    destination = str_field("destination")


class IP(Message):
    __slots__ = ()

    source = str_field("source")
    source_xlated = str_field("source_xlated")
    destination = str_field("destination")
    ip_version = enum_field(
        "ipVersion", IPVersion, "`IPv4`, `IPv6` or `IP_NOT_USED` (JSON key `ipVersion`)."
    )
    encrypted = bool_field("encrypted")


class TCPFlags(Message):
    __slots__ = ()

    FIN = bool_field("FIN")
    SYN = bool_field("SYN")
    RST = bool_field("RST")
    PSH = bool_field("PSH")
    ACK = bool_field("ACK")
    URG = bool_field("URG")
    ECE = bool_field("ECE")
    CWR = bool_field("CWR")
    NS = bool_field("NS")


class _Ports(Message):
    __slots__ = ()

    source_port = int_field("source_port")
    destination_port = int_field("destination_port")


class TCP(_Ports):
    __slots__ = ()

    flags = msg_field("flags", TCPFlags)


class UDP(_Ports):
    __slots__ = ()


class SCTP(_Ports):
    __slots__ = ()


class _ICMP(Message):
    __slots__ = ()

    type = int_field("type")
    code = int_field("code")


class ICMPv4(_ICMP):
    __slots__ = ()


class ICMPv6(_ICMP):
    __slots__ = ()


class VRRP(Message):
    __slots__ = ()

    type = int_field("type")
    vrid = int_field("vrid")
    priority = int_field("priority")


class IGMP(Message):
    __slots__ = ()

    type = int_field("type")
    group_address = str_field("group_address")


_L4_CLASSES: dict[str, type[Message]] = {
    "TCP": TCP,
    "UDP": UDP,
    "ICMPv4": ICMPv4,
    "ICMPv6": ICMPv6,
    "SCTP": SCTP,
    "VRRP": VRRP,
    "IGMP": IGMP,
}


class Layer4(Message):
    """The `l4` oneof: exactly one of TCP, UDP, ICMPv4, ICMPv6, SCTP, VRRP, IGMP."""

    __slots__ = ()

    @property
    def protocol(self) -> str:
        """Which member is set (`"TCP"`, ...), or "" when none is."""
        for name in _L4_CLASSES:
            if isinstance(self._d.get(name), dict):
                return name
        return ""

    # Each right-hand name is still the module's class here (the attribute is bound after).
    TCP = msg_field("TCP", TCP)
    UDP = msg_field("UDP", UDP)
    SCTP = msg_field("SCTP", SCTP)
    ICMPv4 = msg_field("ICMPv4", ICMPv4)
    ICMPv6 = msg_field("ICMPv6", ICMPv6)
    VRRP = msg_field("VRRP", VRRP)
    IGMP = msg_field("IGMP", IGMP)

    def ports(self) -> tuple[int, int] | None:
        """(source, destination) port for TCP/UDP/SCTP, else None."""
        for name in ("TCP", "UDP", "SCTP"):
            d = self._d.get(name)
            if isinstance(d, dict):
                return as_int(d.get("source_port")), as_int(d.get("destination_port"))
        return None


class Tunnel(Message):
    __slots__ = ()

    @property
    def protocol(self) -> str:
        v = self._d.get("protocol")
        return str(v) if v is not None else "UNKNOWN"

    ip = msg_field("IP", IP)
    l4 = msg_field("l4", Layer4)
    vni = int_field("vni")


class Workload(Message):
    __slots__ = ()

    name = str_field("name")
    kind = str_field("kind")


class FlowEndpoint(Message):
    """Hubble's flow.Endpoint: one side of a flow as Hubble recorded it (not a managed
    `ciliary.cluster.endpoints.Endpoint`)."""

    __slots__ = ()

    ID = int_field("ID")
    identity = int_field("identity")
    cluster_name = str_field("cluster_name")
    namespace = str_field("namespace")
    labels = strs_field("labels")
    pod_name = str_field("pod_name")
    workloads = msgs_field("workloads", Workload)


class HTTPHeader(Message):
    __slots__ = ()

    key = str_field("key")
    value = str_field("value")


class HTTP(Message):
    __slots__ = ()

    code = int_field("code")
    method = str_field("method")
    url = str_field("url")
    protocol = str_field("protocol")
    headers = msgs_field("headers", HTTPHeader)


class DNS(Message):
    __slots__ = ()

    query = str_field("query")
    ips = strs_field("ips")
    ttl = int_field("ttl")
    cnames = strs_field("cnames")
    observation_source = str_field("observation_source")
    rcode = int_field("rcode")
    qtypes = strs_field("qtypes")
    rrtypes = strs_field("rrtypes")


class Kafka(Message):
    __slots__ = ()

    error_code = int_field("error_code")
    api_version = int_field("api_version")
    api_key = str_field("api_key")
    correlation_id = int_field("correlation_id")
    topic = str_field("topic")


class Layer7(Message):
    __slots__ = ()

    type = enum_field("type", L7FlowType, "`REQUEST`, `RESPONSE`, `SAMPLE` or `UNKNOWN_L7_TYPE`.")
    latency_ns = int_field("latency_ns")

    @property
    def record(self) -> str:
        """Which record is set: `"dns"`, `"http"`, `"kafka"` or ""."""
        for name in ("dns", "http", "kafka"):
            if isinstance(self._d.get(name), dict):
                return name
        return ""

    dns = msg_field("dns", DNS)
    http = msg_field("http", HTTP)
    kafka = msg_field("kafka", Kafka)


class CiliumEventType(Message):
    __slots__ = ()

    type = int_field("type")
    sub_type = int_field("sub_type")


class FlowService(Message):
    __slots__ = ()

    name = str_field("name")
    namespace = str_field("namespace")


class FileInfo(Message):
    __slots__ = ()

    name = str_field("name")
    line = int_field("line")


class IPTraceID(Message):
    __slots__ = ()

    trace_id = int_field("trace_id")
    ip_option_type = int_field("ip_option_type")


class NetworkInterface(Message):
    __slots__ = ()

    index = int_field("index")
    name = str_field("name")


class TraceContext(Message):
    __slots__ = ()

    @property
    def parent_trace_id(self) -> str:
        """`parent.trace_id` (the W3C trace id, hex)."""
        parent = self._d.get("parent")
        tid = parent.get("trace_id") if isinstance(parent, dict) else None
        return tid if isinstance(tid, str) else ""


class Policy(Message):
    __slots__ = ()

    name = str_field("name")
    namespace = str_field("namespace")
    labels = strs_field("labels")
    revision = int_field("revision")
    kind = str_field("kind")


class Aggregate(Message):
    __slots__ = ()

    ingress_flow_count = int_field("ingress_flow_count")
    egress_flow_count = int_field("egress_flow_count")
    unknown_direction_flow_count = int_field("unknown_direction_flow_count")


# ---- Flow ------------------------------------------------------------------------------------


class Flow:
    """One Hubble flow. `Flow(d)` trusts `d` to be canonical protojson; `Flow.from_dict`
    canonicalizes other spellings (camelCase names, enum numbers, old Go-struct JSON).

    `envelope` is the `GetFlowsResponse`/`ExportEvent` object the flow was read from (its
    `flow` member is this flow's dict), or None for a bare flow.
    """

    __slots__ = ("_d", "_e")

    def __init__(self, data: JSON, envelope: JSON | None = None) -> None:
        self._d = data  # the slot the `_fields` attributes read, as in Message
        self._e = envelope

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flow:
        """A flow from a bare Flow object or an envelope, in any spelling protojson reads."""
        if "flow" in data and isinstance(data["flow"], dict):
            env = dict(data)
            if schema.needs_canonicalization(data["flow"]) or "nodeName" in env:
                env = schema.canonicalize(data, "Envelope")
            return cls(env["flow"], env)
        flow = dict(data)
        if schema.needs_canonicalization(flow):
            flow = schema.canonicalize(flow, "Flow")
        return cls(flow)

    @classmethod
    def build(cls, data: Mapping[str, Any]) -> Flow:
        """A new flow from hand-written fields: canonicalized and put in declaration order,
        so that it serialises exactly as Hubble would write it."""
        return cls(schema.order_fields(schema.canonicalize(data, "Flow"), "Flow"))

    # -- raw access ---------------------------------------------------------------------------

    @property
    def raw(self) -> JSON:
        """The flow's JSON object (not a copy)."""
        return self._d

    def to_dict(self) -> JSON:
        return self._d

    @property
    def envelope(self) -> JSON:
        """The envelope to write: the one read, or `{"flow", "node_name", "time"}` built like
        `hubble observe -o json` does (GetFlowsResponse with the flow's node name and time)."""
        if self._e is not None and self._e.get("flow") is self._d:
            return self._e
        env: JSON = {"flow": self._d}
        node = self._d.get("node_name")
        if node:
            env["node_name"] = node
        t = self._d.get("time")
        if t is not None:
            env["time"] = t
        return env

    @property
    def has_envelope(self) -> bool:
        """Whether the flow was read from (or given) an envelope."""
        return self._e is not None

    @property
    def unknown_fields(self) -> JSON:
        """Top-level fields this model does not know (kept verbatim when written)."""
        return {k: v for k, v in self._d.items() if k not in schema.FLOW_FIELDS}

    def validate(self) -> list[str]:
        """Type errors of the flow (what protojson's strict unmarshal would reject)."""
        return schema.validate(self._d, "Flow")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Flow) and self._d == other._d

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Flow(time={self.time!r}, verdict={self.verdict!r}, summary={self.summary!r})"

    # -- fields, in declaration order -----------------------------------------------------------

    @property
    def time(self) -> str | None:
        """The RFC 3339 timestamp as written, or None."""
        v = self._d.get("time")
        return v if isinstance(v, str) else None

    @property
    def time_ns(self) -> int | None:
        """Nanoseconds since the Unix epoch, or None (absent or invalid)."""
        t = self.time
        return parse_rfc3339_ns(t) if t is not None else None

    @property
    def timestamp(self) -> datetime | None:
        """The time as an aware UTC datetime (truncated to microseconds), or None."""
        ns = self.time_ns
        if ns is None:
            return None
        secs, rem = divmod(ns, NS)
        return datetime.fromtimestamp(secs, UTC).replace(microsecond=rem // 1000)

    uuid = str_field("uuid")
    emitter = msg_field("emitter", Emitter)
    verdict = enum_field("verdict", FlowVerdict)
    drop_reason = int_field("drop_reason")
    auth_type = enum_field("auth_type", AuthType)
    ethernet = msg_field("ethernet", Ethernet)
    ip = msg_field("IP", IP, "The `IP` field.")
    l4 = msg_field("l4", Layer4)
    tunnel = msg_field("tunnel", Tunnel)
    source = msg_field("source", FlowEndpoint)
    destination = msg_field("destination", FlowEndpoint)
    type = enum_field(
        "Type", FlowType, "The `Type` field: `L3_L4`, `L7`, `SOCK` or `UNKNOWN_TYPE`."
    )
    node_name = str_field("node_name")
    node_labels = strs_field("node_labels")
    source_names = strs_field("source_names")
    destination_names = strs_field("destination_names")
    l7 = msg_field("l7", Layer7)
    reply = bool_field("reply", "Deprecated `reply` (use `is_reply`).")
    event_type = msg_field("event_type", CiliumEventType)
    source_service = msg_field("source_service", FlowService)
    destination_service = msg_field("destination_service", FlowService)
    traffic_direction = enum_field("traffic_direction", TrafficDirection)
    policy_match_type = int_field("policy_match_type")
    trace_observation_point = enum_field("trace_observation_point", TraceObservationPoint)
    trace_reason = enum_field("trace_reason", TraceReason)
    file = msg_field("file", FileInfo)
    ip_trace_id = msg_field("ip_trace_id", IPTraceID)
    drop_reason_desc = enum_field("drop_reason_desc", DropReason)

    @property
    def is_reply(self) -> bool | None:
        """True/False when known, None when absent (drops, old captures)."""
        v = self._d.get("is_reply")
        return v if isinstance(v, bool) else None

    debug_capture_point = enum_field("debug_capture_point", DebugCapturePoint)
    interface = msg_field("interface", NetworkInterface)
    proxy_port = int_field("proxy_port")
    trace_context = msg_field("trace_context", TraceContext)
    sock_xlate_point = enum_field("sock_xlate_point", SocketTranslationPoint)
    socket_cookie = int_field("socket_cookie")
    cgroup_id = int_field("cgroup_id")
    summary = str_field("Summary", "The deprecated `Summary` text (still what hubble prints).")

    @property
    def extensions(self) -> JSON | None:
        v = self._d.get("extensions")  # a google.protobuf.Any: its JSON, not a view
        return v if isinstance(v, dict) else None

    egress_allowed_by = msgs_field("egress_allowed_by", Policy)
    ingress_allowed_by = msgs_field("ingress_allowed_by", Policy)
    egress_denied_by = msgs_field("egress_denied_by", Policy)
    ingress_denied_by = msgs_field("ingress_denied_by", Policy)
    policy_log = strs_field("policy_log")
    aggregate = msg_field("aggregate", Aggregate)
