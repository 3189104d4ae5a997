"""The Hubble `Flow` (`api/v1/flow/flow.proto`) as slotted, typed views over its JSON.

A `Flow` wraps the decoded protojson dict; it does not copy or convert it. Properties read the
fields on demand with protobuf getter semantics: an absent scalar is its zero value, an absent
enum is its 0 name (`VERDICT_UNKNOWN`), an absent message is None. Enum-valued properties
return the protojson name (the proto enum name, e.g. `"DROPPED"`); the `IntEnum` classes in
`ciliary.flows.enums` convert to numbers. 64-bit integers (JSON strings) are returned as int.

Because the dict is kept as it is, unknown fields (from newer Hubble releases) and the key order
survive: writing a flow that was read gives back the same JSON. The envelope a flow was read
with (`{"flow": ..., "node_name": ..., "time": ...}`) is kept too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from ciliary.flows import schema
from ciliary.flows.enums import (
    AuthType,
    DebugCapturePoint,
    DropReason,
    FlowType,
    IPVersion,
    L7FlowType,
    SocketTranslationPoint,
    TraceObservationPoint,
    TraceReason,
    TrafficDirection,
    Verdict,
    enum_name,
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
    "Endpoint",
    "Ethernet",
    "FileInfo",
    "Flow",
    "HTTPHeader",
    "ICMPv4",
    "ICMPv6",
    "IPTraceID",
    "Kafka",
    "Layer4",
    "Layer7",
    "NetworkInterface",
    "Policy",
    "Service",
    "TCPFlags",
    "TraceContext",
    "Tunnel",
    "Workload",
]


# ---- field readers (protobuf getter semantics over protojson values) -------------------------


def _str(d: Mapping[str, Any], key: str) -> str:
    v = d.get(key)
    return v if isinstance(v, str) else ""


def _int(d: Mapping[str, Any], key: str) -> int:
    v = d.get(key)
    if v is None or isinstance(v, bool):
        return 0
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return 0
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return 0


def _bool(d: Mapping[str, Any], key: str) -> bool:
    return d.get(key) is True


def _strs(d: Mapping[str, Any], key: str) -> list[str]:
    v = d.get(key)
    if not isinstance(v, list):
        return []
    return [x for x in v if isinstance(x, str)]


def _enum(d: Mapping[str, Any], key: str, enum: type[IntEnum]) -> str:
    v = d.get(key)
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return enum_name(enum, v)
    return enum(0).name


def _sub(d: Mapping[str, Any], key: str) -> JSON | None:
    v = d.get(key)
    return v if isinstance(v, dict) else None


def _subs(d: Mapping[str, Any], key: str) -> list[JSON]:
    v = d.get(key)
    if not isinstance(v, list):
        return []
    return [x for x in v if isinstance(x, dict)]


class Message:
    """A view over one protojson object. Equality is equality of the JSON."""

    __slots__ = ("_d",)

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

    @property
    def name(self) -> str:
        return _str(self._d, "name")

    @property
    def version(self) -> str:
        return _str(self._d, "version")


class Ethernet(Message):
    __slots__ = ()

    @property
    def source(self) -> str:
        return _str(self._d, "source")

    @property
    def destination(self) -> str:
        return _str(self._d, "destination")


class IP(Message):
    __slots__ = ()

    @property
    def source(self) -> str:
        return _str(self._d, "source")

    @property
    def source_xlated(self) -> str:
        return _str(self._d, "source_xlated")

    @property
    def destination(self) -> str:
        return _str(self._d, "destination")

    @property
    def ip_version(self) -> str:
        """`IPv4`, `IPv6` or `IP_NOT_USED` (JSON key `ipVersion`)."""
        return _enum(self._d, "ipVersion", IPVersion)

    @property
    def encrypted(self) -> bool:
        return _bool(self._d, "encrypted")


class TCPFlags(Message):
    __slots__ = ()

    ORDER = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")

    @property
    def FIN(self) -> bool:
        return _bool(self._d, "FIN")

    @property
    def SYN(self) -> bool:
        return _bool(self._d, "SYN")

    @property
    def RST(self) -> bool:
        return _bool(self._d, "RST")

    @property
    def PSH(self) -> bool:
        return _bool(self._d, "PSH")

    @property
    def ACK(self) -> bool:
        return _bool(self._d, "ACK")

    @property
    def URG(self) -> bool:
        return _bool(self._d, "URG")

    @property
    def ECE(self) -> bool:
        return _bool(self._d, "ECE")

    @property
    def CWR(self) -> bool:
        return _bool(self._d, "CWR")

    @property
    def NS(self) -> bool:
        return _bool(self._d, "NS")

    def set_flags(self) -> list[str]:
        """Names of the flags that are set, in proto order."""
        return [f for f in self.ORDER if self._d.get(f) is True]


class _Ports(Message):
    __slots__ = ()

    @property
    def source_port(self) -> int:
        return _int(self._d, "source_port")

    @property
    def destination_port(self) -> int:
        return _int(self._d, "destination_port")


class TCP(_Ports):
    __slots__ = ()

    @property
    def flags(self) -> TCPFlags | None:
        d = _sub(self._d, "flags")
        return TCPFlags(d) if d is not None else None


class UDP(_Ports):
    __slots__ = ()


class SCTP(_Ports):
    __slots__ = ()


class _ICMP(Message):
    __slots__ = ()

    @property
    def type(self) -> int:
        return _int(self._d, "type")

    @property
    def code(self) -> int:
        return _int(self._d, "code")


class ICMPv4(_ICMP):
    __slots__ = ()


class ICMPv6(_ICMP):
    __slots__ = ()


class VRRP(Message):
    __slots__ = ()

    @property
    def type(self) -> int:
        return _int(self._d, "type")

    @property
    def vrid(self) -> int:
        return _int(self._d, "vrid")

    @property
    def priority(self) -> int:
        return _int(self._d, "priority")


class IGMP(Message):
    __slots__ = ()

    @property
    def type(self) -> int:
        return _int(self._d, "type")

    @property
    def group_address(self) -> str:
        return _str(self._d, "group_address")


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

    @property
    def TCP(self) -> TCP | None:
        d = _sub(self._d, "TCP")
        return TCP(d) if d is not None else None

    @property
    def UDP(self) -> UDP | None:
        d = _sub(self._d, "UDP")
        return UDP(d) if d is not None else None

    @property
    def SCTP(self) -> SCTP | None:
        d = _sub(self._d, "SCTP")
        return SCTP(d) if d is not None else None

    @property
    def ICMPv4(self) -> ICMPv4 | None:
        d = _sub(self._d, "ICMPv4")
        return ICMPv4(d) if d is not None else None

    @property
    def ICMPv6(self) -> ICMPv6 | None:
        d = _sub(self._d, "ICMPv6")
        return ICMPv6(d) if d is not None else None

    @property
    def VRRP(self) -> VRRP | None:
        d = _sub(self._d, "VRRP")
        return VRRP(d) if d is not None else None

    @property
    def IGMP(self) -> IGMP | None:
        d = _sub(self._d, "IGMP")
        return IGMP(d) if d is not None else None

    def ports(self) -> tuple[int, int] | None:
        """(source, destination) port for TCP/UDP/SCTP, else None."""
        for name in ("TCP", "UDP", "SCTP"):
            d = _sub(self._d, name)
            if d is not None:
                return _int(d, "source_port"), _int(d, "destination_port")
        return None


class Tunnel(Message):
    __slots__ = ()

    @property
    def protocol(self) -> str:
        v = self._d.get("protocol")
        return str(v) if v is not None else "UNKNOWN"

    @property
    def ip(self) -> IP | None:
        d = _sub(self._d, "IP")
        return IP(d) if d is not None else None

    @property
    def l4(self) -> Layer4 | None:
        d = _sub(self._d, "l4")
        return Layer4(d) if d is not None else None

    @property
    def vni(self) -> int:
        return _int(self._d, "vni")


class Workload(Message):
    __slots__ = ()

    @property
    def name(self) -> str:
        return _str(self._d, "name")

    @property
    def kind(self) -> str:
        return _str(self._d, "kind")


class Endpoint(Message):
    __slots__ = ()

    @property
    def ID(self) -> int:
        return _int(self._d, "ID")

    @property
    def identity(self) -> int:
        return _int(self._d, "identity")

    @property
    def cluster_name(self) -> str:
        return _str(self._d, "cluster_name")

    @property
    def namespace(self) -> str:
        return _str(self._d, "namespace")

    @property
    def labels(self) -> list[str]:
        return _strs(self._d, "labels")

    @property
    def pod_name(self) -> str:
        return _str(self._d, "pod_name")

    @property
    def workloads(self) -> list[Workload]:
        return [Workload(w) for w in _subs(self._d, "workloads")]


class HTTPHeader(Message):
    __slots__ = ()

    @property
    def key(self) -> str:
        return _str(self._d, "key")

    @property
    def value(self) -> str:
        return _str(self._d, "value")


class HTTP(Message):
    __slots__ = ()

    @property
    def code(self) -> int:
        return _int(self._d, "code")

    @property
    def method(self) -> str:
        return _str(self._d, "method")

    @property
    def url(self) -> str:
        return _str(self._d, "url")

    @property
    def protocol(self) -> str:
        return _str(self._d, "protocol")

    @property
    def headers(self) -> list[HTTPHeader]:
        return [HTTPHeader(h) for h in _subs(self._d, "headers")]


class DNS(Message):
    __slots__ = ()

    @property
    def query(self) -> str:
        return _str(self._d, "query")

    @property
    def ips(self) -> list[str]:
        return _strs(self._d, "ips")

    @property
    def ttl(self) -> int:
        return _int(self._d, "ttl")

    @property
    def cnames(self) -> list[str]:
        return _strs(self._d, "cnames")

    @property
    def observation_source(self) -> str:
        return _str(self._d, "observation_source")

    @property
    def rcode(self) -> int:
        return _int(self._d, "rcode")

    @property
    def qtypes(self) -> list[str]:
        return _strs(self._d, "qtypes")

    @property
    def rrtypes(self) -> list[str]:
        return _strs(self._d, "rrtypes")


class Kafka(Message):
    __slots__ = ()

    @property
    def error_code(self) -> int:
        return _int(self._d, "error_code")

    @property
    def api_version(self) -> int:
        return _int(self._d, "api_version")

    @property
    def api_key(self) -> str:
        return _str(self._d, "api_key")

    @property
    def correlation_id(self) -> int:
        return _int(self._d, "correlation_id")

    @property
    def topic(self) -> str:
        return _str(self._d, "topic")


class Layer7(Message):
    __slots__ = ()

    @property
    def type(self) -> str:
        """`REQUEST`, `RESPONSE`, `SAMPLE` or `UNKNOWN_L7_TYPE`."""
        return _enum(self._d, "type", L7FlowType)

    @property
    def latency_ns(self) -> int:
        return _int(self._d, "latency_ns")

    @property
    def record(self) -> str:
        """Which record is set: `"dns"`, `"http"`, `"kafka"` or ""."""
        for name in ("dns", "http", "kafka"):
            if isinstance(self._d.get(name), dict):
                return name
        return ""

    @property
    def dns(self) -> DNS | None:
        d = _sub(self._d, "dns")
        return DNS(d) if d is not None else None

    @property
    def http(self) -> HTTP | None:
        d = _sub(self._d, "http")
        return HTTP(d) if d is not None else None

    @property
    def kafka(self) -> Kafka | None:
        d = _sub(self._d, "kafka")
        return Kafka(d) if d is not None else None


class CiliumEventType(Message):
    __slots__ = ()

    @property
    def type(self) -> int:
        return _int(self._d, "type")

    @property
    def sub_type(self) -> int:
        return _int(self._d, "sub_type")


class Service(Message):
    __slots__ = ()

    @property
    def name(self) -> str:
        return _str(self._d, "name")

    @property
    def namespace(self) -> str:
        return _str(self._d, "namespace")


class FileInfo(Message):
    __slots__ = ()

    @property
    def name(self) -> str:
        return _str(self._d, "name")

    @property
    def line(self) -> int:
        return _int(self._d, "line")


class IPTraceID(Message):
    __slots__ = ()

    @property
    def trace_id(self) -> int:
        return _int(self._d, "trace_id")

    @property
    def ip_option_type(self) -> int:
        return _int(self._d, "ip_option_type")


class NetworkInterface(Message):
    __slots__ = ()

    @property
    def index(self) -> int:
        return _int(self._d, "index")

    @property
    def name(self) -> str:
        return _str(self._d, "name")


class TraceContext(Message):
    __slots__ = ()

    @property
    def parent_trace_id(self) -> str:
        """`parent.trace_id` (the W3C trace id, hex)."""
        parent = _sub(self._d, "parent")
        return _str(parent, "trace_id") if parent is not None else ""


class Policy(Message):
    __slots__ = ()

    @property
    def name(self) -> str:
        return _str(self._d, "name")

    @property
    def namespace(self) -> str:
        return _str(self._d, "namespace")

    @property
    def labels(self) -> list[str]:
        return _strs(self._d, "labels")

    @property
    def revision(self) -> int:
        return _int(self._d, "revision")

    @property
    def kind(self) -> str:
        return _str(self._d, "kind")


class Aggregate(Message):
    __slots__ = ()

    @property
    def ingress_flow_count(self) -> int:
        return _int(self._d, "ingress_flow_count")

    @property
    def egress_flow_count(self) -> int:
        return _int(self._d, "egress_flow_count")

    @property
    def unknown_direction_flow_count(self) -> int:
        return _int(self._d, "unknown_direction_flow_count")


# ---- Flow ------------------------------------------------------------------------------------


class Flow:
    """One Hubble flow. `Flow(d)` trusts `d` to be canonical protojson; `Flow.from_dict`
    canonicalizes other spellings (camelCase names, enum numbers, old Go-struct JSON).

    `envelope` is the `GetFlowsResponse`/`ExportEvent` object the flow was read from (its
    `flow` member is this flow's dict), or None for a bare flow.
    """

    __slots__ = ("_e", "_f")

    def __init__(self, data: JSON, envelope: JSON | None = None) -> None:
        self._f = data
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
        return self._f

    def to_dict(self) -> JSON:
        return self._f

    @property
    def envelope(self) -> JSON:
        """The envelope to write: the one read, or `{"flow", "node_name", "time"}` built like
        `hubble observe -o json` does (GetFlowsResponse with the flow's node name and time)."""
        if self._e is not None and self._e.get("flow") is self._f:
            return self._e
        env: JSON = {"flow": self._f}
        node = self._f.get("node_name")
        if node:
            env["node_name"] = node
        t = self._f.get("time")
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
        return {k: v for k, v in self._f.items() if k not in schema.FLOW_FIELDS}

    def validate(self) -> list[str]:
        """Type errors of the flow (what protojson's strict unmarshal would reject)."""
        return schema.validate(self._f, "Flow")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Flow) and self._f == other._f

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Flow(time={self.time!r}, verdict={self.verdict!r}, summary={self.summary!r})"

    # -- fields, in declaration order -----------------------------------------------------------

    @property
    def time(self) -> str | None:
        """The RFC 3339 timestamp as written, or None."""
        v = self._f.get("time")
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

    @property
    def uuid(self) -> str:
        return _str(self._f, "uuid")

    @property
    def emitter(self) -> Emitter | None:
        d = _sub(self._f, "emitter")
        return Emitter(d) if d is not None else None

    @property
    def verdict(self) -> str:
        return _enum(self._f, "verdict", Verdict)

    @property
    def drop_reason(self) -> int:
        return _int(self._f, "drop_reason")

    @property
    def auth_type(self) -> str:
        return _enum(self._f, "auth_type", AuthType)

    @property
    def ethernet(self) -> Ethernet | None:
        d = _sub(self._f, "ethernet")
        return Ethernet(d) if d is not None else None

    @property
    def ip(self) -> IP | None:
        """The `IP` field."""
        d = _sub(self._f, "IP")
        return IP(d) if d is not None else None

    @property
    def l4(self) -> Layer4 | None:
        d = _sub(self._f, "l4")
        return Layer4(d) if d is not None else None

    @property
    def tunnel(self) -> Tunnel | None:
        d = _sub(self._f, "tunnel")
        return Tunnel(d) if d is not None else None

    @property
    def source(self) -> Endpoint | None:
        d = _sub(self._f, "source")
        return Endpoint(d) if d is not None else None

    @property
    def destination(self) -> Endpoint | None:
        d = _sub(self._f, "destination")
        return Endpoint(d) if d is not None else None

    @property
    def type(self) -> str:
        """The `Type` field: `L3_L4`, `L7`, `SOCK` or `UNKNOWN_TYPE`."""
        return _enum(self._f, "Type", FlowType)

    @property
    def node_name(self) -> str:
        return _str(self._f, "node_name")

    @property
    def node_labels(self) -> list[str]:
        return _strs(self._f, "node_labels")

    @property
    def source_names(self) -> list[str]:
        return _strs(self._f, "source_names")

    @property
    def destination_names(self) -> list[str]:
        return _strs(self._f, "destination_names")

    @property
    def l7(self) -> Layer7 | None:
        d = _sub(self._f, "l7")
        return Layer7(d) if d is not None else None

    @property
    def reply(self) -> bool:
        """Deprecated `reply` (use `is_reply`)."""
        return _bool(self._f, "reply")

    @property
    def event_type(self) -> CiliumEventType | None:
        d = _sub(self._f, "event_type")
        return CiliumEventType(d) if d is not None else None

    @property
    def source_service(self) -> Service | None:
        d = _sub(self._f, "source_service")
        return Service(d) if d is not None else None

    @property
    def destination_service(self) -> Service | None:
        d = _sub(self._f, "destination_service")
        return Service(d) if d is not None else None

    @property
    def traffic_direction(self) -> str:
        return _enum(self._f, "traffic_direction", TrafficDirection)

    @property
    def policy_match_type(self) -> int:
        return _int(self._f, "policy_match_type")

    @property
    def trace_observation_point(self) -> str:
        return _enum(self._f, "trace_observation_point", TraceObservationPoint)

    @property
    def trace_reason(self) -> str:
        return _enum(self._f, "trace_reason", TraceReason)

    @property
    def file(self) -> FileInfo | None:
        d = _sub(self._f, "file")
        return FileInfo(d) if d is not None else None

    @property
    def ip_trace_id(self) -> IPTraceID | None:
        d = _sub(self._f, "ip_trace_id")
        return IPTraceID(d) if d is not None else None

    @property
    def drop_reason_desc(self) -> str:
        return _enum(self._f, "drop_reason_desc", DropReason)

    @property
    def is_reply(self) -> bool | None:
        """True/False when known, None when absent (drops, old captures)."""
        v = self._f.get("is_reply")
        return v if isinstance(v, bool) else None

    @property
    def debug_capture_point(self) -> str:
        return _enum(self._f, "debug_capture_point", DebugCapturePoint)

    @property
    def interface(self) -> NetworkInterface | None:
        d = _sub(self._f, "interface")
        return NetworkInterface(d) if d is not None else None

    @property
    def proxy_port(self) -> int:
        return _int(self._f, "proxy_port")

    @property
    def trace_context(self) -> TraceContext | None:
        d = _sub(self._f, "trace_context")
        return TraceContext(d) if d is not None else None

    @property
    def sock_xlate_point(self) -> str:
        return _enum(self._f, "sock_xlate_point", SocketTranslationPoint)

    @property
    def socket_cookie(self) -> int:
        return _int(self._f, "socket_cookie")

    @property
    def cgroup_id(self) -> int:
        return _int(self._f, "cgroup_id")

    @property
    def summary(self) -> str:
        """The deprecated `Summary` text (still what hubble prints)."""
        return _str(self._f, "Summary")

    @property
    def extensions(self) -> JSON | None:
        return _sub(self._f, "extensions")

    @property
    def egress_allowed_by(self) -> list[Policy]:
        return [Policy(p) for p in _subs(self._f, "egress_allowed_by")]

    @property
    def ingress_allowed_by(self) -> list[Policy]:
        return [Policy(p) for p in _subs(self._f, "ingress_allowed_by")]

    @property
    def egress_denied_by(self) -> list[Policy]:
        return [Policy(p) for p in _subs(self._f, "egress_denied_by")]

    @property
    def ingress_denied_by(self) -> list[Policy]:
        return [Policy(p) for p in _subs(self._f, "ingress_denied_by")]

    @property
    def policy_log(self) -> list[str]:
        return _strs(self._f, "policy_log")

    @property
    def aggregate(self) -> Aggregate | None:
        d = _sub(self._f, "aggregate")
        return Aggregate(d) if d is not None else None
