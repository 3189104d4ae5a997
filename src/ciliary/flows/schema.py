"""The shape of Hubble's JSON: every message's fields in proto declaration order, with types.

protojson writes fields in declaration order (not tag order) under their proto names, omits
defaults, spells enums by name and 64-bit integers as strings. This table drives three things:

* `canonicalize` turns the other spellings protojson (and old Hubble releases) produce into that
  canonical form: lowerCamel JSON names (`nodeName`, `isReply`, `sourcePort`), enum numbers,
  64-bit integers as numbers, and the Go-struct encoding of pre-0.6 Hubble (`{"seconds":..,
  "nanos":..}` timestamps, `{"value": true}` wrappers, `{"Protocol": {"TCP": ..}}` oneofs).
  Unknown fields are kept, in place.
* `order_fields` sorts a hand-built flow's keys into declaration order, so that what we write
  is byte-for-byte what Hubble writes.
* `validate` checks types (what protojson's strict unmarshal would reject).

Declaration orders follow Cilium v1.19 (`api/v1/flow/flow.proto`, `api/v1/observer`).

Contracts: `canonicalize` and `order_fields` never change their input: they return new
dicts (for the sub-messages they descend into too) and share the values they do not
rewrite. `validate` only reads. `MESSAGES` and the tables derived from it are constants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import IntEnum
from typing import Any, Final

from ciliary.flows.enums import (
    AuthType,
    DebugCapturePoint,
    DropReason,
    FlowType,
    FlowVerdict,
    IPVersion,
    L7FlowType,
    LostEventSource,
    SocketTranslationPoint,
    TraceObservationPoint,
    TraceReason,
    TrafficDirection,
)

# Field kinds.
STR: Final = "str"
U32: Final = "u32"
I32: Final = "i32"
U64: Final = "u64"  # JSON string (protojson), number accepted
BOOL: Final = "bool"
TS: Final = "ts"  # google.protobuf.Timestamp
WBOOL: Final = "wbool"  # google.protobuf.BoolValue
WI32: Final = "wi32"  # google.protobuf.Int32Value
RSTR: Final = "rstr"
ANY: Final = "any"  # google.protobuf.Any or a message this table does not describe
ENUM_ANY: Final = "enum?"  # an enum whose values are not tabled here

# A field spec: a kind, or ("msg" | "rmsg", message name), or ("enum", enum class).
FieldSpec = str | tuple[str, str] | tuple[str, type[IntEnum]]


def _msg(name: str) -> tuple[str, str]:
    return ("msg", name)


def _rmsg(name: str) -> tuple[str, str]:
    return ("rmsg", name)


def _enum(cls: type[IntEnum]) -> tuple[str, type[IntEnum]]:
    return ("enum", cls)


MESSAGES: Final[dict[str, dict[str, FieldSpec]]] = {
    "Flow": {
        "time": TS,
        "uuid": STR,
        "emitter": _msg("Emitter"),
        "verdict": _enum(FlowVerdict),
        "drop_reason": U32,
        "auth_type": _enum(AuthType),
        "ethernet": _msg("Ethernet"),
        "IP": _msg("IP"),
        "l4": _msg("Layer4"),
        "tunnel": _msg("Tunnel"),
        "source": _msg("Endpoint"),
        "destination": _msg("Endpoint"),
        "Type": _enum(FlowType),
        "node_name": STR,
        "node_labels": RSTR,
        "source_names": RSTR,
        "destination_names": RSTR,
        "l7": _msg("Layer7"),
        "reply": BOOL,
        "event_type": _msg("CiliumEventType"),
        "source_service": _msg("Service"),
        "destination_service": _msg("Service"),
        "traffic_direction": _enum(TrafficDirection),
        "policy_match_type": U32,
        "trace_observation_point": _enum(TraceObservationPoint),
        "trace_reason": _enum(TraceReason),
        "file": _msg("FileInfo"),
        "ip_trace_id": _msg("IPTraceID"),
        "drop_reason_desc": _enum(DropReason),
        "is_reply": WBOOL,
        "debug_capture_point": _enum(DebugCapturePoint),
        "interface": _msg("NetworkInterface"),
        "proxy_port": U32,
        "trace_context": _msg("TraceContext"),
        "sock_xlate_point": _enum(SocketTranslationPoint),
        "socket_cookie": U64,
        "cgroup_id": U64,
        "Summary": STR,
        "extensions": ANY,
        "egress_allowed_by": _rmsg("Policy"),
        "ingress_allowed_by": _rmsg("Policy"),
        "egress_denied_by": _rmsg("Policy"),
        "ingress_denied_by": _rmsg("Policy"),
        "policy_log": RSTR,
        "aggregate": _msg("Aggregate"),
    },
    "Emitter": {"name": STR, "version": STR},
    "Ethernet": {"source": STR, "destination": STR},
    "IP": {
        "source": STR,
        "source_xlated": STR,
        "destination": STR,
        "ipVersion": _enum(IPVersion),
        "encrypted": BOOL,
    },
    "Layer4": {
        "TCP": _msg("TCP"),
        "UDP": _msg("UDP"),
        "ICMPv4": _msg("ICMPv4"),
        "ICMPv6": _msg("ICMPv6"),
        "SCTP": _msg("SCTP"),
        "VRRP": _msg("VRRP"),
        "IGMP": _msg("IGMP"),
    },
    "TCP": {"source_port": U32, "destination_port": U32, "flags": _msg("TCPFlags")},
    "TCPFlags": {
        "FIN": BOOL,
        "SYN": BOOL,
        "RST": BOOL,
        "PSH": BOOL,
        "ACK": BOOL,
        "URG": BOOL,
        "ECE": BOOL,
        "CWR": BOOL,
        "NS": BOOL,
    },
    "UDP": {"source_port": U32, "destination_port": U32},
    "SCTP": {"source_port": U32, "destination_port": U32},
    "ICMPv4": {"type": U32, "code": U32},
    "ICMPv6": {"type": U32, "code": U32},
    "VRRP": {"type": U32, "vrid": U32, "priority": U32},
    "IGMP": {"type": U32, "group_address": STR},
    "Tunnel": {"protocol": ENUM_ANY, "IP": _msg("IP"), "l4": _msg("Layer4"), "vni": U32},
    "Endpoint": {
        "ID": U32,
        "identity": U32,
        "cluster_name": STR,
        "namespace": STR,
        "labels": RSTR,
        "pod_name": STR,
        "workloads": _rmsg("Workload"),
    },
    "Workload": {"name": STR, "kind": STR},
    "Layer7": {
        "type": _enum(L7FlowType),
        "latency_ns": U64,
        "dns": _msg("DNS"),
        "http": _msg("HTTP"),
        "kafka": _msg("Kafka"),
    },
    "DNS": {
        "query": STR,
        "ips": RSTR,
        "ttl": U32,
        "cnames": RSTR,
        "observation_source": STR,
        "rcode": U32,
        "qtypes": RSTR,
        "rrtypes": RSTR,
    },
    "HTTP": {
        "code": U32,
        "method": STR,
        "url": STR,
        "protocol": STR,
        "headers": _rmsg("HTTPHeader"),
    },
    "HTTPHeader": {"key": STR, "value": STR},
    "Kafka": {
        "error_code": I32,
        "api_version": I32,
        "api_key": STR,
        "correlation_id": I32,
        "topic": STR,
    },
    "CiliumEventType": {"type": I32, "sub_type": I32},
    "Service": {"name": STR, "namespace": STR},
    "FileInfo": {"name": STR, "line": U32},
    "IPTraceID": {"trace_id": U64, "ip_option_type": U32},
    "NetworkInterface": {"index": U32, "name": STR},
    "TraceContext": {"parent": _msg("TraceParent")},
    "TraceParent": {"trace_id": STR},
    "Policy": {
        "name": STR,
        "namespace": STR,
        "labels": RSTR,
        "revision": U64,
        "kind": STR,
    },
    "Aggregate": {
        "ingress_flow_count": U32,
        "egress_flow_count": U32,
        "unknown_direction_flow_count": U32,
    },
    # observer.GetFlowsResponse / observer.ExportEvent (the line envelope).
    "Envelope": {
        "flow": _msg("Flow"),
        "node_status": ANY,
        "lost_events": _msg("LostEvent"),
        "agent_event": ANY,
        "debug_event": ANY,
        "node_name": STR,
        "time": TS,
    },
    "LostEvent": {
        "source": _enum(LostEventSource),
        "num_events_lost": U64,
        "cpu": WI32,
        "first": TS,
        "last": TS,
    },
}

# Old Hubble (Go encoding/json of the generated structs) wraps oneofs in their Go field name.
_ONEOF_WRAPPERS: Final[dict[str, dict[str, str]]] = {
    "Layer4": {"Protocol": ""},
    "Layer7": {"Record": ""},
}
# ... and names the oneof members by their Go field names.
_GO_ONEOF_MEMBERS: Final[dict[str, dict[str, str]]] = {
    "Layer7": {"Dns": "dns", "Http": "http", "Kafka": "kafka"},
}


def json_name(proto_name: str) -> str:
    """protojson's lowerCamel JSON name of a field (`node_name` -> `nodeName`)."""
    out: list[str] = []
    upper = False
    for ch in proto_name:
        if ch == "_":
            upper = True
        elif upper:
            out.append(ch.upper())
            upper = False
        else:
            out.append(ch)
    return "".join(out)


# Per message: accepted spelling -> proto name (identity entries included).
_ALIASES: Final[dict[str, dict[str, str]]] = {}
for _m, _fields in MESSAGES.items():
    _alias = {name: name for name in _fields}
    for _name in _fields:
        _alias.setdefault(json_name(_name), _name)
    _alias.update(_GO_ONEOF_MEMBERS.get(_m, {}))
    _ALIASES[_m] = _alias
# Declaration position of every field, for ordering.
_POSITIONS: Final[dict[str, dict[str, int]]] = {
    m: {name: i for i, name in enumerate(fields)} for m, fields in MESSAGES.items()
}

FLOW_FIELDS: Final[frozenset[str]] = frozenset(MESSAGES["Flow"])
ENVELOPE_EVENT_KEYS: Final[tuple[str, ...]] = (
    "node_status",
    "lost_events",
    "agent_event",
    "debug_event",
    "nodeStatus",
    "lostEvents",
    "agentEvent",
    "debugEvent",
)
# Keys that only a Flow has (not the envelope): their presence marks a bare (legacy) flow.
BARE_FLOW_MARKERS: Final[frozenset[str]] = frozenset(
    {a for a in _ALIASES["Flow"] if _ALIASES["Flow"][a] not in ("time", "node_name")}
)


def _format_ts_parts(seconds: int, nanos: int) -> str:
    from ciliary.flows.gotime import format_rfc3339_proto

    return format_rfc3339_proto(seconds * 1_000_000_000 + nanos)


def _canon_value(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(spec, tuple):
        kind, arg = spec
        if kind == "msg" and isinstance(value, dict) and isinstance(arg, str):
            return canonicalize(value, arg)
        if kind == "rmsg" and isinstance(value, list) and isinstance(arg, str):
            return [canonicalize(v, arg) if isinstance(v, dict) else v for v in value]
        if kind == "enum" and isinstance(value, int) and not isinstance(value, bool):
            assert not isinstance(arg, str)
            try:
                return arg(value).name
            except ValueError:
                return value
        return value
    if spec == TS and isinstance(value, dict):
        try:
            return _format_ts_parts(int(value.get("seconds", 0)), int(value.get("nanos", 0)))
        except (TypeError, ValueError):
            return value
    if spec in (WBOOL, WI32) and isinstance(value, dict) and "value" in value:
        return value["value"] if spec == WI32 else bool(value["value"])
    if spec == U64 and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def canonicalize(obj: Mapping[str, Any], message: str = "Flow") -> dict[str, Any]:
    """`obj` in protojson's canonical spelling (proto names, enum names, u64 strings).

    Keys keep their order; unknown keys are kept as they are. Returns a new dict.
    """
    specs = MESSAGES.get(message)
    if specs is None:
        return dict(obj)
    aliases = _ALIASES[message]
    wrappers = _ONEOF_WRAPPERS.get(message, {})
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key in wrappers and isinstance(value, dict):
            # Go-struct oneof wrapper: {"Protocol": {"TCP": {...}}} -> {"TCP": {...}}
            for inner_key, inner in canonicalize(value, message).items():
                out[inner_key] = inner
            continue
        name = aliases.get(key)
        if name is None:
            out[key] = value
            continue
        out[name] = _canon_value(specs[name], value)
    return out


def needs_canonicalization(flow: Mapping[str, Any]) -> bool:
    """Cheap test: does this flow use a non-canonical spelling (camelCase, numbers, Go JSON)?

    It looks at top-level markers only: every encoder that spells nested fields differently
    also spells `event_type`/`node_name`/`is_reply` or the timestamp differently.
    """
    if "eventType" in flow or "nodeName" in flow or "isReply" in flow:
        return True
    t = flow.get("time")
    if t is not None and type(t) is not str:
        return True
    v = flow.get("verdict")
    return v is not None and type(v) is not str


def order_fields(obj: Mapping[str, Any], message: str = "Flow") -> dict[str, Any]:
    """A copy of `obj` (canonical spelling) with keys in declaration order, recursively.

    Unknown keys follow the known ones in their original order.
    """
    specs = MESSAGES.get(message)
    if specs is None:
        return dict(obj)
    pos = _POSITIONS[message]
    n = len(pos)
    keys = sorted(obj, key=lambda k: (pos.get(k, n), 0))
    out: dict[str, Any] = {}
    for k in keys:
        v = obj[k]
        spec = specs.get(k)
        if isinstance(spec, tuple) and isinstance(spec[1], str):
            if spec[0] == "msg" and isinstance(v, dict):
                v = order_fields(v, spec[1])
            elif spec[0] == "rmsg" and isinstance(v, list):
                v = [order_fields(x, spec[1]) if isinstance(x, dict) else x for x in v]
        out[k] = v
    return out


_TS_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})\Z"
)
_UINT_RE: Final = re.compile(r"\d+\Z")
_INT_RE: Final = re.compile(r"-?\d+\Z")


def _check_int(value: Any, lo: int, hi: int) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return lo <= value <= hi
    if isinstance(value, float):
        return value.is_integer() and lo <= value <= hi
    if isinstance(value, str) and _INT_RE.match(value):
        return lo <= int(value) <= hi
    return False


def _check(spec: FieldSpec, value: Any, path: str, errors: list[str]) -> None:
    if value is None:
        return
    if isinstance(spec, tuple):
        kind, arg = spec
        if kind == "msg":
            if not isinstance(value, dict):
                errors.append(f"{path}: expected an object, got {type(value).__name__}")
            elif isinstance(arg, str):
                _validate(value, arg, path, errors)
        elif kind == "rmsg":
            if not isinstance(value, list):
                errors.append(f"{path}: expected a list, got {type(value).__name__}")
            else:
                for i, item in enumerate(value):
                    if not isinstance(item, dict):
                        errors.append(f"{path}[{i}]: expected an object")
                    elif isinstance(arg, str):
                        _validate(item, arg, f"{path}[{i}]", errors)
        elif kind == "enum" and (isinstance(value, bool) or not isinstance(value, str | int)):
            errors.append(f"{path}: expected an enum name or number")
        return
    ok = True
    if spec == STR:
        ok = isinstance(value, str)
    elif spec == U32:
        ok = _check_int(value, 0, 2**32 - 1)
    elif spec == I32:
        ok = _check_int(value, -(2**31), 2**31 - 1)
    elif spec == U64:
        ok = _check_int(value, 0, 2**64 - 1)
    elif spec in (BOOL, WBOOL):
        ok = isinstance(value, bool)
    elif spec == WI32:
        ok = _check_int(value, -(2**31), 2**31 - 1)
    elif spec == TS:
        ok = isinstance(value, str) and _TS_RE.match(value) is not None
        if ok:
            from ciliary.flows.gotime import parse_rfc3339_ns

            ok = parse_rfc3339_ns(value) is not None
    elif spec == RSTR:
        ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
    elif spec == ANY:
        ok = isinstance(value, dict)
    elif spec == ENUM_ANY:
        ok = isinstance(value, str | int) and not isinstance(value, bool)
    if not ok:
        errors.append(f"{path}: invalid value {value!r} for a {spec} field")


def _validate(obj: Mapping[str, Any], message: str, path: str, errors: list[str]) -> None:
    specs = MESSAGES[message]
    for key, value in obj.items():
        spec = specs.get(key)
        if spec is None:
            continue  # unknown fields are tolerated (hubble retries with DiscardUnknown)
        _check(spec, value, f"{path}.{key}" if path else key, errors)


def validate(obj: Mapping[str, Any], message: str = "Flow") -> list[str]:
    """Type errors in a canonical `message` object (empty list when it is well formed)."""
    errors: list[str] = []
    _validate(obj, message, "", errors)
    return errors
