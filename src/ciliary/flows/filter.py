"""`hubble observe` filters, with hubble's semantics.

Three layers, as in hubble:

1. `FilterFlags` holds the filter flags of one list, 1:1 with the CLI (`--pod`, `--to-ip`,
   `--verdict`, ...). `ObserveOptions` (workflows/observe.py) has two of them: the plain flags
   and the `--not` ones (hubble puts every flag preceded by `--not` into one denylist tracker).
2. `build_flow_filters(flags)` turns one `FilterFlags` into `FlowFilter`s exactly as hubble's
   filterTracker does (hubble/cmd/observe/flows_filter.go): "either side" flags (`--pod`,
   `--ip`, `--label`, `--namespace`, ...) split into a source-side filter and a
   destination-side filter (ORed); every other flag is copied into both; identical halves
   collapse into one. `--namespace` is applied last, to the pod/service values. Conflicting
   flags are rejected with hubble's messages.
3. `FlowMatcher(allow, deny)` compiles `FlowFilter`s (pkg/hubble/filters): inside one
   FlowFilter every set field must match (AND) and any value of a field may match (OR); a flow
   passes iff it matches one allowlist filter (or there is none) and no denylist filter. Each
   field compiles by its row of `_COMPILERS` (field, cost, builder of its predicate).

`FlowFilter` is also the JSON of `--allowlist/--denylist` and of the flow exporter's
allowList/denyList (proto field names), parsed by `FlowFilter.from_json`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, Final

import orjson
import re2

from ciliary.flows.enums import (
    AGENT_EVENT_SUBTYPES,
    MESSAGE_TYPE_ACCESS_LOG,
    MESSAGE_TYPE_AGENT,
    MESSAGE_TYPE_NAMES,
    MESSAGE_TYPE_TRACE,
    RESERVED_IDENTITY_IDS,
    TRACE_POINT_NAMES,
    DropReason,
    FlowVerdict,
    IPVersion,
    TrafficDirection,
)
from ciliary.flows.labelsel import LabelSelectorError, compile_selector, parse_labels

JSON = dict[str, Any]
Predicate = Callable[[JSON], bool]


class FilterError(ValueError):
    """An invalid filter flag or FlowFilter (message as hubble words it)."""


# ---- FlowFilter ------------------------------------------------------------------------------


@dataclass(eq=True, repr=False)
class FlowFilter:
    """`flow.FlowFilter`: every set field must match; any value of a field may match.

    Field names and JSON are the proto's. Enum-valued lists hold enum names; message-valued
    lists hold their JSON objects (`{"name", "kind"}` workloads, `{"type", "match_sub_type",
    "sub_type"}` event types, `{"key", "value"}` headers, `{"SYN": true, ...}` TCP flags,
    `{"name", "index"}` interfaces).
    """

    uuid: list[str] = field(default_factory=list)
    source_ip: list[str] = field(default_factory=list)
    source_ip_xlated: list[str] = field(default_factory=list)
    source_pod: list[str] = field(default_factory=list)
    source_fqdn: list[str] = field(default_factory=list)
    source_label: list[str] = field(default_factory=list)
    source_service: list[str] = field(default_factory=list)
    source_workload: list[JSON] = field(default_factory=list)
    source_cluster_name: list[str] = field(default_factory=list)
    destination_ip: list[str] = field(default_factory=list)
    destination_pod: list[str] = field(default_factory=list)
    destination_fqdn: list[str] = field(default_factory=list)
    destination_label: list[str] = field(default_factory=list)
    destination_service: list[str] = field(default_factory=list)
    destination_workload: list[JSON] = field(default_factory=list)
    destination_cluster_name: list[str] = field(default_factory=list)
    traffic_direction: list[str] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)
    drop_reason_desc: list[str] = field(default_factory=list)
    interface: list[JSON] = field(default_factory=list)
    event_type: list[JSON] = field(default_factory=list)
    http_status_code: list[str] = field(default_factory=list)
    protocol: list[str] = field(default_factory=list)
    source_port: list[str] = field(default_factory=list)
    destination_port: list[str] = field(default_factory=list)
    reply: list[bool] = field(default_factory=list)
    dns_query: list[str] = field(default_factory=list)
    source_identity: list[int] = field(default_factory=list)
    destination_identity: list[int] = field(default_factory=list)
    http_method: list[str] = field(default_factory=list)
    http_path: list[str] = field(default_factory=list)
    http_url: list[str] = field(default_factory=list)
    http_header: list[JSON] = field(default_factory=list)
    tcp_flags: list[JSON] = field(default_factory=list)
    node_name: list[str] = field(default_factory=list)
    node_labels: list[str] = field(default_factory=list)
    ip_version: list[str] = field(default_factory=list)
    trace_id: list[str] = field(default_factory=list)
    encrypted: list[bool] = field(default_factory=list)
    ip_trace_id: list[int] = field(default_factory=list)
    cel_expression: list[str] = field(default_factory=list)  # experimental.cel_expression

    def __repr__(self) -> str:
        return f"FlowFilter({self.to_json()})"

    def to_dict(self) -> JSON:
        """protojson of the filter (set fields only), as `--print-raw-filters` shows it."""
        out: JSON = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if not value:
                continue
            if f.name == "cel_expression":
                out["experimental"] = {"cel_expression": list(value)}
            elif f.name == "ip_trace_id":
                out[f.name] = [str(v) for v in value]
            else:
                out[f.name] = list(value)
        return out

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict()).decode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowFilter:
        """From protojson (proto or lowerCamel names; enum names or numbers)."""
        known = {f.name for f in fields(cls)}
        camel = {_camel(n): n for n in known}
        ff = cls()
        for key, value in data.items():
            if key == "experimental":
                if isinstance(value, Mapping):
                    cel = value.get("cel_expression", value.get("celExpression", []))
                    ff.cel_expression = _as_list(cel, key)
                continue
            name = key if key in known else camel.get(key)
            if name is None:
                raise FilterError(f"unknown FlowFilter field {key!r}")
            items = _as_list(value, key)
            enum = _ENUM_FIELDS.get(name)
            if enum is not None:
                items = [_enum_value_name(enum, v, name) for v in items]
            elif name in ("source_identity", "destination_identity", "ip_trace_id"):
                items = [_uint(v, name) for v in items]
            setattr(ff, name, items)
        return ff

    @classmethod
    def from_json(cls, text: str | bytes) -> list[FlowFilter]:
        """One or more FlowFilter JSON objects (concatenated, like hubble's decoder reads)."""
        out: list[FlowFilter] = []
        data = text.decode() if isinstance(text, bytes) else text
        dec_pos = 0
        import json

        decoder = json.JSONDecoder()
        while True:
            while dec_pos < len(data) and data[dec_pos].isspace():
                dec_pos += 1
            if dec_pos >= len(data):
                break
            try:
                obj, dec_pos = decoder.raw_decode(data, dec_pos)
            except json.JSONDecodeError as exc:
                raise FilterError(f"failed to decode {data!r}: {exc}") from None
            if not isinstance(obj, dict):
                raise FilterError(f"failed to decode {data!r}: not a JSON object")
            out.append(cls.from_dict(obj))
        return out


_ENUM_FIELDS: Final[dict[str, type[Any]]] = {
    "verdict": FlowVerdict,
    "traffic_direction": TrafficDirection,
    "drop_reason_desc": DropReason,
    "ip_version": IPVersion,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _as_list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FilterError(f"FlowFilter field {key!r} must be a list")
    return list(value)


def _enum_value_name(enum: type[Any], value: Any, key: str) -> str:
    if isinstance(value, str) and value in enum.__members__:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(enum(value).name)
        except ValueError:
            pass
    raise FilterError(f"invalid value {value!r} for FlowFilter field {key!r}")


def _uint(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise FilterError(f"invalid value {value!r} for FlowFilter field {key!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise FilterError(f"invalid value {value!r} for FlowFilter field {key!r}")


# ---- hubble CLI flags -> FlowFilters ----------------------------------------------------------


@dataclass
class FilterFlags:
    """The filter flags of one list (the allowlist, or the `--not` denylist), 1:1 with
    `hubble observe`. Each list holds the values of repeated flags, in order."""

    uuid: list[str] = field(default_factory=list)
    node_name: list[str] = field(default_factory=list)
    node_label: list[str] = field(default_factory=list)
    cluster: list[str] = field(default_factory=list)
    from_cluster: list[str] = field(default_factory=list)
    to_cluster: list[str] = field(default_factory=list)
    protocol: list[str] = field(default_factory=list)
    tcp_flags: list[str] = field(default_factory=list)
    type: list[str] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)
    drop_reason_desc: list[str] = field(default_factory=list)
    http_status: list[str] = field(default_factory=list)
    http_method: list[str] = field(default_factory=list)
    http_path: list[str] = field(default_factory=list)
    http_url: list[str] = field(default_factory=list)
    http_header: list[str] = field(default_factory=list)
    trace_id: list[str] = field(default_factory=list)
    ip_trace_id: list[str] = field(default_factory=list)
    fqdn: list[str] = field(default_factory=list)
    from_fqdn: list[str] = field(default_factory=list)
    to_fqdn: list[str] = field(default_factory=list)
    ip: list[str] = field(default_factory=list)
    from_ip: list[str] = field(default_factory=list)
    to_ip: list[str] = field(default_factory=list)
    snat_ip: list[str] = field(default_factory=list)
    ipv4: bool = False
    ipv6: bool = False
    ip_version: list[str] = field(default_factory=list)
    pod: list[str] = field(default_factory=list)
    from_pod: list[str] = field(default_factory=list)
    to_pod: list[str] = field(default_factory=list)
    namespace: list[str] = field(default_factory=list)
    from_namespace: list[str] = field(default_factory=list)
    to_namespace: list[str] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    from_label: list[str] = field(default_factory=list)
    to_label: list[str] = field(default_factory=list)
    service: list[str] = field(default_factory=list)
    from_service: list[str] = field(default_factory=list)
    to_service: list[str] = field(default_factory=list)
    port: list[str] = field(default_factory=list)
    from_port: list[str] = field(default_factory=list)
    to_port: list[str] = field(default_factory=list)
    workload: list[str] = field(default_factory=list)
    from_workload: list[str] = field(default_factory=list)
    to_workload: list[str] = field(default_factory=list)
    identity: list[str] = field(default_factory=list)
    from_identity: list[str] = field(default_factory=list)
    to_identity: list[str] = field(default_factory=list)
    traffic_direction: list[str] = field(default_factory=list)
    interface: list[str] = field(default_factory=list)
    encrypted: bool = False
    unencrypted: bool = False
    cel_expression: list[str] = field(default_factory=list)
    # Not a hubble CLI flag: FlowFilter.reply ("true"/"false"), reachable in hubble only
    # through --allowlist/--denylist. Offered here because flows read from files often need it.
    reply: list[str] = field(default_factory=list)

    def changed(self) -> list[str]:
        """CLI names (`from-pod`, ...) of the flags that are set."""
        return [f.name.replace("_", "-") for f in fields(self) if getattr(self, f.name)]

    def is_empty(self) -> bool:
        return not self.changed()

    def add(self, flag: str, value: str | bool = True) -> None:
        """Record one occurrence of `--flag value` (flag without dashes; `-n` style aliases are
        resolved by the caller)."""
        name = flag.replace("-", "_")
        if name not in _FLAG_FIELDS:
            raise FilterError(f"unknown filter flag --{flag}")
        current = getattr(self, name)
        if isinstance(current, bool):
            setattr(self, name, bool(value) if not isinstance(value, str) else _parse_bool(value))
        else:
            current.append(str(value))


_FLAG_FIELDS: Final = frozenset(f.name for f in fields(FilterFlags))


_BOOLS: Final = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


def _parse_bool(text: str) -> bool:
    """`1`, `t`, `true` or `0`, `f`, `false`, in any case."""
    value = _BOOLS.get(text.lower())
    if value is None:
        raise FilterError(f"invalid boolean value {text!r}")
    return value


# hubble's newFlowFilter conflicts (flags of one group cannot be combined with each other).
_CONFLICTS: Final[tuple[tuple[str, ...], ...]] = (
    ("from-fqdn", "from-ip", "ip", "fqdn", "from-namespace", "namespace"),
    ("from-fqdn", "from-ip", "ip", "fqdn", "from-pod", "pod"),
    ("to-fqdn", "to-ip", "ip", "fqdn", "to-namespace", "namespace"),
    ("to-fqdn", "to-ip", "ip", "fqdn", "to-pod", "pod"),
    ("to-pod", "namespace"),
    ("from-pod", "namespace"),
    ("to-service", "namespace"),
    ("from-service", "namespace"),
    ("label", "from-label"),
    ("label", "to-label"),
    ("service", "from-service"),
    ("service", "to-service"),
    ("port", "to-port"),
    ("port", "from-port"),
    ("identity", "to-identity"),
    ("identity", "from-identity"),
    ("workload", "to-workload"),
    ("workload", "from-workload"),
    ("encrypted", "unencrypted"),
)


def _check_conflicts(changed: Sequence[str]) -> None:
    present = set(changed)
    for group in _CONFLICTS:
        hit = [f for f in group if f in present]
        if len(hit) > 1:
            raise FilterError(f"filters --{hit[0]} and --{hit[1]} cannot be combined")


def _namespace_from_name(name: str) -> str:
    parts = name.split("/")
    return parts[0] if len(parts) > 1 else ""


def _ns_conflicts(nss: Sequence[str], names: Sequence[str]) -> None:
    for ns in nss:
        for name in names:
            nn = _namespace_from_name(name)
            if nn and nn != ns:
                raise FilterError(f'namespace conflict: "{ns}" does not contain "{name}"')


def _inconsistent_namespaces(pods: Sequence[str], services: Sequence[str]) -> None:
    for pod in pods:
        pod_ns = _namespace_from_name(pod)
        if not pod_ns:
            continue
        for svc in services:
            if _namespace_from_name(svc) != pod_ns:
                raise FilterError(f'namespace of service "{svc}" conflict with pod "{pod_ns}"')


def _add_namespaces(values: list[str], nss: Sequence[str]) -> list[str]:
    if not nss or not values:
        return values
    out: list[str] = []
    for v in values:
        if "/" in v:
            out.append(v)
            continue
        out.extend(f"{ns}/{v}" for ns in nss)
    return out


def _apply_src_ns(ff: FlowFilter, nss: Sequence[str]) -> None:
    if not ff.source_pod and not ff.source_service:
        ff.source_pod = [""]
    ff.source_pod = _add_namespaces(ff.source_pod, nss)
    ff.source_service = _add_namespaces(ff.source_service, nss)


def _apply_dst_ns(ff: FlowFilter, nss: Sequence[str]) -> None:
    if not ff.destination_pod and not ff.destination_service:
        ff.destination_pod = [""]
    ff.destination_pod = _add_namespaces(ff.destination_pod, nss)
    ff.destination_service = _add_namespaces(ff.destination_service, nss)


_TCP_FLAG_NAMES: Final = ("SYN", "FIN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")


def parse_tcp_flags(value: str) -> JSON:
    """`syn,ack` -> {"SYN": true, "ACK": true} (hubble parseTCPFlags)."""
    out: JSON = {}
    for part in value.split(","):
        up = part.upper()
        if up not in _TCP_FLAG_NAMES:
            raise FilterError(f"unknown tcp flag: {part}")
        out[up] = True
    return out


def parse_event_type(value: str) -> JSON:
    """`trace:to-endpoint`, `drop`, `4:3`, `agent:policy-updated` -> EventTypeFilter JSON."""
    name, sep, sub = value.partition(":")
    typ = MESSAGE_TYPE_NAMES.get(name)
    if typ is None:
        if not name.isdigit() or int(name) > 2**32 - 1:
            raise FilterError(
                f"unable to parse type '{name}', not a known type name and unable to parse "
                "as numeric value"
            )
        typ = int(name)
        if typ > 2**31 - 1:
            typ -= 2**32  # int32(uint32) as hubble converts it
    out: JSON = {"type": typ}
    if sep:
        sub_type: int | None = None
        if typ == MESSAGE_TYPE_TRACE:
            for k, v in TRACE_POINT_NAMES.items():
                if v == sub:
                    sub_type = k
        elif typ == MESSAGE_TYPE_AGENT:
            sub_type = AGENT_EVENT_SUBTYPES.get(sub)
        if sub_type is None:
            if not sub.isdigit() or int(sub) > 2**32 - 1:
                raise FilterError(
                    f"unable to parse event sub-type '{sub}', not a known sub-type name and "
                    "unable to parse as numeric value"
                )
            sub_type = int(sub)
            if sub_type > 2**31 - 1:
                sub_type -= 2**32
        out["match_sub_type"] = True
        out["sub_type"] = sub_type
    return out


def parse_workload(value: str) -> JSON:
    """`[kind/]name` -> Workload JSON (hubble parseWorkload)."""
    if not value:
        return {}
    kind, sep, name = value.partition("/")
    if not sep:
        return {"name": value}
    out: JSON = {}
    if name:
        out["name"] = name
    if kind:
        out["kind"] = kind
    return out


def parse_identity(value: str) -> int:
    """A numeric identity or a reserved identity name (`world`, `host`, ...)."""
    if value in RESERVED_IDENTITY_IDS:
        return RESERVED_IDENTITY_IDS[value]
    if value.isdigit() and int(value) <= 2**32 - 1:
        return int(value)
    raise FilterError(
        "invalid security identity, expected one of "
        f"[{' '.join(RESERVED_IDENTITY_IDS)}] or a numeric value"
    )


def _ip_version(value: str) -> str:
    low = value.lower()
    if low in ("4", "v4", "ipv4", "ip4"):
        return "IPv4"
    if low in ("6", "v6", "ipv6", "ip6"):
        return "IPv6"
    return "IP_NOT_USED"


def build_flow_filters(flags: FilterFlags) -> list[FlowFilter]:
    """The FlowFilters hubble's filterTracker makes of one list of flags ([] when empty)."""
    changed = flags.changed()
    if not changed:
        return []
    _check_conflicts(changed)
    left, right = FlowFilter(), FlowFilter()

    def both(attr: str, values: Iterable[Any]) -> None:
        vals = list(values)
        getattr(left, attr).extend(vals)
        getattr(right, attr).extend(vals)

    def split(src_attr: str, dst_attr: str, values: Iterable[Any]) -> None:
        vals = list(values)
        getattr(left, src_attr).extend(vals)
        getattr(right, dst_attr).extend(vals)

    f = flags
    both("uuid", f.uuid)
    split("source_fqdn", "destination_fqdn", f.fqdn)
    both("source_fqdn", f.from_fqdn)
    both("destination_fqdn", f.to_fqdn)
    split("source_pod", "destination_pod", f.pod)
    both("source_pod", f.from_pod)
    both("destination_pod", f.to_pod)
    both("source_ip", f.from_ip)
    both("source_ip_xlated", f.snat_ip)
    split("source_ip", "destination_ip", f.ip)
    both("destination_ip", f.to_ip)
    if f.ipv4:
        both("ip_version", ["IPv4"])
    if f.ipv6:
        both("ip_version", ["IPv6"])
    both("ip_version", [_ip_version(v) for v in f.ip_version])
    split("source_label", "destination_label", f.label)
    both("source_label", f.from_label)
    both("destination_label", f.to_label)
    split("source_service", "destination_service", f.service)
    both("source_service", f.from_service)
    both("destination_service", f.to_service)
    split("source_port", "destination_port", f.port)
    both("source_port", f.from_port)
    both("destination_port", f.to_port)
    both("trace_id", f.trace_id)
    for v in f.ip_trace_id:
        if v == "0":
            raise FilterError("invalid --ip-trace-id value; must be greater than 0")
        if not v.isdigit() or int(v) > 2**64 - 1:
            raise FilterError(f"invalid --ip-trace-id value: {v!r}")
        both("ip_trace_id", [int(v)])
    for v in f.verdict:
        if v not in FlowVerdict.__members__:
            raise FilterError(f"invalid --verdict value: {v}")
        both("verdict", [v])
    for v in f.drop_reason_desc:
        if not v:
            raise FilterError("empty --drop-reason-desc value")
        if v not in DropReason.__members__:
            raise FilterError(f"invalid --drop-reason-desc value: {v}")
        both("drop_reason_desc", [v])
    both("http_status_code", f.http_status)
    both("http_method", f.http_method)
    both("http_path", f.http_path)
    both("http_url", f.http_url)
    for v in f.http_header:
        key, sep, val = v.partition(":")
        if not sep:
            raise FilterError(f'invalid http-header value "{v}", expected name:value')
        both("http_header", [{"key": key, "value": val}])
    both("event_type", [parse_event_type(v) for v in f.type])
    both("protocol", f.protocol)
    split("source_workload", "destination_workload", [parse_workload(v) for v in f.workload])
    both("source_workload", [parse_workload(v) for v in f.from_workload])
    both("destination_workload", [parse_workload(v) for v in f.to_workload])
    split("source_identity", "destination_identity", [parse_identity(v) for v in f.identity])
    both("source_identity", [parse_identity(v) for v in f.from_identity])
    both("destination_identity", [parse_identity(v) for v in f.to_identity])
    both("node_name", f.node_name)
    both("node_labels", f.node_label)
    split("source_cluster_name", "destination_cluster_name", f.cluster)
    both("source_cluster_name", f.from_cluster)
    both("destination_cluster_name", f.to_cluster)
    both("tcp_flags", [parse_tcp_flags(v) for v in f.tcp_flags])
    for v in f.traffic_direction:
        td = v.lower()
        if td not in ("ingress", "egress"):
            raise FilterError(f"{td}: invalid traffic direction, expected ingress or egress")
        both("traffic_direction", [td.upper()])
    both("cel_expression", f.cel_expression)
    both("interface", [{"name": v} for v in f.interface])
    if f.encrypted:
        both("encrypted", [True])
    if f.unencrypted:
        both("encrypted", [False])
    both("reply", [_parse_bool(v) for v in f.reply])

    for ff in (left, right):
        _ns_conflicts(f.namespace, ff.source_pod)
        _ns_conflicts(f.namespace, ff.source_service)
        _ns_conflicts(f.namespace, ff.destination_pod)
        _ns_conflicts(f.namespace, ff.destination_service)
        _ns_conflicts(f.from_namespace, ff.source_pod)
        _ns_conflicts(f.from_namespace, ff.source_service)
        _ns_conflicts(f.to_namespace, ff.destination_pod)
        _ns_conflicts(f.to_namespace, ff.destination_service)
        _inconsistent_namespaces(ff.source_pod, ff.source_service)
        _inconsistent_namespaces(ff.destination_pod, ff.destination_service)

    if f.to_namespace:
        _apply_dst_ns(left, f.to_namespace)
        _apply_dst_ns(right, f.to_namespace)
    if f.from_namespace:
        _apply_src_ns(left, f.from_namespace)
        _apply_src_ns(right, f.from_namespace)
    if f.namespace:
        _apply_src_ns(left, f.namespace)
        _apply_dst_ns(right, f.namespace)
    if left == right:
        return [left]
    return [left, right]


# ---- compiling FlowFilters -------------------------------------------------------------------


@dataclass(frozen=True)
class _Pred:
    cost: int
    key: tuple[Any, ...]
    fn: Predicate


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def parse_namespace_name(name: str) -> tuple[str, str]:
    """hubble k8s.ParseNamespaceName: `ns/name`; without a namespace, `default`."""
    parts = name.split("/")
    ns = parts[0]
    if len(parts) > 1:
        return ns, parts[1]
    if ns == "":
        return "", ""
    return "default", ns


def _namespaced_pred(names: Sequence[str], member: str, name_key: str) -> Predicate:
    filters: list[tuple[str, str]] = []
    for n in names:
        ns, prefix = parse_namespace_name(n)
        if not ns and not prefix:
            raise FilterError(f'invalid filter, must be [namespace/][<name>], got "{n}"')
        filters.append((ns, prefix))
    if all(not prefix for _, prefix in filters):
        nss = frozenset(ns for ns, _ in filters)

        def ns_only(f: JSON) -> bool:
            ep = f.get(member)
            return type(ep) is dict and ep.get("namespace") in nss

        return ns_only

    def pred(f: JSON) -> bool:
        ep = f.get(member)
        if type(ep) is not dict:
            return False
        ev_ns = ep.get("namespace") or ""
        ev_name = ep.get(name_key) or ""
        if not ev_ns and not ev_name:
            return False
        return any(
            ns == ev_ns and (not prefix or ev_name.startswith(prefix)) for ns, prefix in filters
        )

    return pred


@lru_cache(maxsize=65536)
def _ip_ints(text: str) -> tuple[int | None, int | None]:
    """(IPv4 value or None, IPv6/IPv4-mapped value or None) of an address, as Go compares."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None, None
    if isinstance(addr, ipaddress.IPv4Address):
        v4 = int(addr)
        return v4, (0xFFFF << 32) | v4
    mapped = addr.ipv4_mapped
    return (int(mapped) if mapped is not None else None), int(addr)


def _ip_pred(values: Sequence[str], field_name: str) -> Predicate:
    addrs: set[str] = set()
    nets: list[tuple[int, int, int]] = []  # (version, network, mask)
    for v in values:
        if "/" in v:
            try:
                net = ipaddress.ip_network(v, strict=False)
            except ValueError:
                raise FilterError(f'invalid CIDR in filter: "{v}"') from None
            nets.append((net.version, int(net.network_address), int(net.netmask)))
        else:
            try:
                ipaddress.ip_address(v)
            except ValueError:
                raise FilterError(f'invalid IP address in filter: "{v}"') from None
            addrs.add(v)

    def pred(f: JSON) -> bool:
        ip = f.get("IP")
        if type(ip) is not dict:
            return False
        ev = ip.get(field_name)
        if not ev:
            return False
        if ev in addrs:
            return True
        if nets:
            v4, v6 = _ip_ints(ev)
            for version, net, mask in nets:
                value = v4 if version == 4 else v6
                if value is not None and value & mask == net:
                    return True
        return False

    return pred


def _fqdn_regex(pattern: str) -> str:
    """hubble appendFQDNPatternRegexp: `*` matches `[-.0-9a-z]*` (it crosses dots)."""
    p = pattern.strip()
    if p.endswith("."):
        p = p[:-1]
    p = p.lower()
    if not p:
        raise FilterError("empty pattern")
    if p.endswith("."):
        raise FilterError("multiple trailing dots in pattern")
    out: list[str] = []
    for ch in p:
        if ch == ".":
            out.append(r"\.")
        elif ch == "*":
            out.append(r"[-.0-9a-z]*")
        elif ch == "-" or ch == "_" or "0" <= ch <= "9" or "a" <= ch <= "z":
            out.append(ch)
        else:
            raise FilterError(f"{ch!r}: invalid rune in pattern")
    return "".join(out)


_FQDN_ANY: Final = r"(?:[-0-9_a-z]+(?:\.[-0-9_a-z]+)*)"


def _fqdn_pred(patterns: Sequence[str], field_name: str) -> Predicate:
    rx = re.compile("(?:" + "|".join(_fqdn_regex(p) for p in patterns) + ")")
    full = rx.fullmatch

    def pred(f: JSON) -> bool:
        names = f.get(field_name)
        if not names:
            return False
        return any(isinstance(n, str) and full(n) is not None for n in names)

    return pred


def _node_name_regex(pattern: str) -> str:
    if not pattern:
        raise FilterError("empty pattern")
    elems = pattern.split("/")
    if len(elems) == 1:
        cluster, node = "", elems[0]
    elif len(elems) == 2:
        cluster, node = elems
    else:
        raise FilterError("too many slashes in pattern")
    c = _fqdn_regex(cluster) if cluster else _FQDN_ANY
    n = _fqdn_regex(node) if node else _FQDN_ANY
    return f"{c}/{n}"


def _node_name_pred(patterns: Sequence[str]) -> Predicate:
    rx = re.compile("(?:" + "|".join(_node_name_regex(p) for p in patterns) + ")")
    full = rx.fullmatch

    def pred(f: JSON) -> bool:
        name = f.get("node_name")
        if not name or not isinstance(name, str):
            return False
        if "/" not in name:
            name = "default/" + name  # ciliumDefaults.ClusterName
        return full(name) is not None

    return pred


def _label_pred(selectors: Sequence[str], getter: Callable[[JSON], Any]) -> Predicate:
    try:
        matchers = [compile_selector(s) for s in selectors]
    except LabelSelectorError as exc:
        raise FilterError(str(exc)) from None

    def pred(f: JSON) -> bool:
        labels = parse_labels(getter(f))
        return any(m(labels) for m in matchers)

    return pred


def _endpoint_labels(member: str) -> Callable[[JSON], Any]:
    def get(f: JSON) -> Any:
        ep = f.get(member)
        return ep.get("labels") if type(ep) is dict else None

    return get


def _port_of(f: JSON, key: str) -> int | None:
    l4 = f.get("l4")
    if type(l4) is not dict:
        return None
    for proto in ("TCP", "UDP", "SCTP"):
        p = l4.get(proto)
        if type(p) is dict:
            return int(p.get(key) or 0) & 0xFFFF
    return None


def _port_pred(values: Sequence[str], key: str) -> Predicate:
    ports: set[int] = set()
    for v in values:
        if not v.isdigit() or not v.isascii() or int(v) > 65535:
            raise FilterError(f'invalid port "{v}": invalid syntax or out of range')
        ports.add(int(v))

    def pred(f: JSON) -> bool:
        p = _port_of(f, key)
        return p is not None and p in ports

    return pred


_L4_PROTOCOLS: Final = {
    "tcp": ("TCP",),
    "udp": ("UDP",),
    "sctp": ("SCTP",),
    "icmp": ("ICMPv4", "ICMPv6"),
    "icmpv4": ("ICMPv4",),
    "icmpv6": ("ICMPv6",),
    "vrrp": ("VRRP",),
    "igmp": ("IGMP",),
}
_L7_PROTOCOLS: Final = ("dns", "http", "kafka")


def _protocol_pred(values: Sequence[str]) -> Predicate:
    l4: set[str] = set()
    l7: set[str] = set()
    for v in values:
        p = v.lower()
        if p in _L4_PROTOCOLS:
            l4.update(_L4_PROTOCOLS[p])
        elif p in _L7_PROTOCOLS:
            l7.add(p)
        else:
            raise FilterError(f'unknown protocol: "{v}"')

    def pred(f: JSON) -> bool:
        if l4:
            d = f.get("l4")
            if type(d) is dict and any(type(d.get(k)) is dict for k in l4):
                return True
        if l7:
            d = f.get("l7")
            if type(d) is dict and any(type(d.get(k)) is dict for k in l7):
                return True
        return False

    return pred


def _enum_pred(key: str, default: str, values: Sequence[str]) -> Predicate:
    allowed = frozenset(values)
    if len(allowed) == 1 and default not in allowed:
        (only,) = allowed
        return lambda f: f.get(key) == only
    return lambda f: f.get(key, default) in allowed


def _sub_enum_pred(member: str, key: str, default: str, values: Sequence[str]) -> Predicate:
    allowed = frozenset(values)

    def pred(f: JSON) -> bool:
        d = f.get(member)
        v = d.get(key, default) if type(d) is dict else default
        return v in allowed

    return pred


def _event_type_pred(types: Sequence[JSON]) -> Predicate:
    specs = [
        (int(t.get("type", 0) or 0), bool(t.get("match_sub_type")), int(t.get("sub_type", 0) or 0))
        for t in types
    ]

    def pred(f: JSON) -> bool:
        ev = f.get("event_type")
        if type(ev) is not dict:
            return False
        et = ev.get("type", 0)
        st = ev.get("sub_type", 0)
        for typ, match_sub, sub in specs:
            if typ != 0 and et != typ:
                continue
            if match_sub and st != sub:
                continue
            return True
        return False

    return pred


def _http(f: JSON) -> JSON | None:
    l7 = f.get("l7")
    if type(l7) is not dict:
        return None
    h = l7.get("http")
    return h if type(h) is dict else None


_HTTP_STATUS_FULL: Final = re.compile(r"[1-5][0-9]{2}\Z")
_HTTP_STATUS_PREFIX: Final = re.compile(r"[1-5][0-9]?\+\Z")


def _http_status_pred(values: Sequence[str]) -> Predicate:
    full: set[str] = set()
    prefixes: list[str] = []
    for v in values:
        if _HTTP_STATUS_FULL.match(v):
            full.add(v)
        elif _HTTP_STATUS_PREFIX.match(v):
            prefixes.append(v[:-1])
        else:
            raise FilterError(f'invalid http status code filter: invalid status code prefix: "{v}"')
    pfx = tuple(prefixes)

    def pred(f: JSON) -> bool:
        h = _http(f)
        if h is None:
            return False
        code = h.get("code") or 0
        if not code:
            return False
        text = f"{code:03d}"
        return text in full or (bool(pfx) and text.startswith(pfx))

    return pred


def _http_method_pred(values: Sequence[str]) -> Predicate:
    methods = frozenset(v.lower() for v in values)

    def pred(f: JSON) -> bool:
        h = _http(f)
        if h is None:
            return False
        m = h.get("method")
        return bool(m) and isinstance(m, str) and m.lower() in methods

    return pred


def _re2_search(patterns: Sequence[str], what: str) -> list[Callable[[str], Any]]:
    out: list[Callable[[str], Any]] = []
    for p in patterns:
        try:
            out.append(re2.compile(p).search)
        except re2.error as exc:
            raise FilterError(f"invalid {what} filter: {p}: {exc}") from None
    return out


_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_BAD_ESCAPE_RE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")


def request_uri_path(url: str) -> str | None:
    """The decoded path of Go's url.ParseRequestURI(url), or None if Go rejects the URL."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return None
    rest = url
    if not url.startswith("/"):
        m = _SCHEME_RE.match(url)
        if m is None:
            return None
        rest = url[m.end() :]
        if not rest.startswith("/"):
            return ""  # opaque URL (`mailto:x`): no path
        if rest.startswith("//"):
            authority_end = len(rest)
            for sep in ("/", "?"):
                i = rest.find(sep, 2)
                if i >= 0:
                    authority_end = min(authority_end, i)
            rest = rest[authority_end:]
    path = rest.split("?", 1)[0]
    if _BAD_ESCAPE_RE.search(path):
        return None
    from urllib.parse import unquote

    return unquote(path, errors="surrogateescape")


def _http_url_pred(
    patterns: Sequence[str], what: str, to_text: Callable[[str], str | None] | None
) -> Predicate:
    """A pattern finds the HTTP URL, or `to_text(url)` (None: no match) when given."""
    searches = _re2_search(patterns, what)

    def pred(f: JSON) -> bool:
        h = _http(f)
        if h is None:
            return False
        url = h.get("url")
        if not url or not isinstance(url, str):
            return False
        text = url if to_text is None else to_text(url)
        if text is None:
            return False
        return any(s(text) is not None for s in searches)

    return pred


def _http_header_pred(headers: Sequence[JSON]) -> Predicate:
    wanted = frozenset((h.get("key", ""), h.get("value", "")) for h in headers)

    def pred(f: JSON) -> bool:
        h = _http(f)
        if h is None:
            return False
        hs = h.get("headers")
        if not hs:
            return False
        return any(type(x) is dict and (x.get("key", ""), x.get("value", "")) in wanted for x in hs)

    return pred


def _dns_query_pred(patterns: Sequence[str]) -> Predicate:
    searches = _re2_search(patterns, "DNS query")

    def pred(f: JSON) -> bool:
        l7 = f.get("l7")
        if type(l7) is not dict:
            return False
        dns = l7.get("dns")
        if type(dns) is not dict:
            return False
        q = dns.get("query", "")
        return any(s(q) is not None for s in searches)

    return pred


def _endpoint_key_pred(values: Sequence[Any], member: str, key: str, default: Any) -> Predicate:
    """`f[member][key]` (default when absent) is one of values; False without the member."""
    allowed = frozenset(values)

    def pred(f: JSON) -> bool:
        ep = f.get(member)
        return type(ep) is dict and ep.get(key, default) in allowed

    return pred


def _workload_pred(workloads: Sequence[JSON], member: str) -> Predicate:
    wf = [(w.get("name", ""), w.get("kind", "")) for w in workloads]

    def pred(f: JSON) -> bool:
        ep = f.get(member)
        if type(ep) is not dict:
            return False
        for w in ep.get("workloads") or ():
            if type(w) is not dict:
                continue
            name, kind = w.get("name", ""), w.get("kind", "")
            for fname, fkind in wf:
                if (not fname or fname == name) and (not fkind or fkind == kind):
                    return True
        return False

    return pred


def _cluster_pred(names: Sequence[str], member: str) -> Predicate:
    if "" in names:
        raise FilterError("invalid filter, name must not be empty")
    return _endpoint_key_pred(names, member, "cluster_name", "")


def _tcp_flags_pred(flag_sets: Sequence[JSON]) -> Predicate:
    required = [tuple(k for k, v in fs.items() if v is True) for fs in flag_sets]

    def pred(f: JSON) -> bool:
        l4 = f.get("l4")
        if type(l4) is not dict:
            return False
        tcp = l4.get("TCP")
        if type(tcp) is not dict:
            return False
        flags = tcp.get("flags")
        if type(flags) is not dict:
            return False
        return any(all(flags.get(k) is True for k in req) for req in required)

    return pred


def _reply_pred(values: Sequence[bool]) -> Predicate:
    allowed = frozenset(values)

    def pred(f: JSON) -> bool:
        r = f.get("is_reply")
        if r is None and f.get("verdict") != "DROPPED":
            return False
        return (r is True) in allowed

    return pred


def _interface_pred(ifaces: Sequence[JSON]) -> Predicate:
    wanted = [(int(i.get("index", 0) or 0), i.get("name", "") or "") for i in ifaces]

    def pred(f: JSON) -> bool:
        iface = f.get("interface")
        if type(iface) is not dict:
            return False
        idx, name = iface.get("index", 0), iface.get("name", "")
        return any((not wi or wi == idx) and (not wn or wn == name) for wi, wn in wanted)

    return pred


def _ip_trace_id_pred(ids: Sequence[int]) -> Predicate:
    allowed = frozenset(ids)

    def pred(f: JSON) -> bool:
        t = f.get("ip_trace_id")
        if type(t) is not dict:
            return False
        v = t.get("trace_id", 0)
        try:
            return int(v) in allowed
        except (TypeError, ValueError):
            return False

    return pred


def _trace_id_pred(ids: Sequence[str]) -> Predicate:
    allowed = frozenset(ids)

    def pred(f: JSON) -> bool:
        tc = f.get("trace_context")
        parent = tc.get("parent") if type(tc) is dict else None
        tid = parent.get("trace_id", "") if type(parent) is dict else ""
        return tid in allowed

    return pred


def _encrypted_pred(values: Sequence[bool]) -> Predicate:
    allowed = frozenset(values)

    def pred(f: JSON) -> bool:
        ip = f.get("IP")
        enc = ip.get("encrypted") is True if type(ip) is dict else False
        return enc in allowed

    return pred


def _uuid_pred(values: Sequence[str]) -> Predicate:
    allowed = frozenset(values)
    return lambda f: f.get("uuid", "") in allowed


# How each FlowFilter field compiles: (field, cost, build), build making the predicate from the
# field's values. Cheaper predicates run first (ties keep this order, as do FilterErrors when
# several fields are invalid); sides share a builder with the flow member as a parameter.
_COMPILERS: Final[tuple[tuple[str, int, Callable[[Any], Predicate]], ...]] = (
    ("uuid", 1, _uuid_pred),
    ("event_type", 1, _event_type_pred),
    ("verdict", 1, lambda v: _enum_pred("verdict", "VERDICT_UNKNOWN", v)),
    ("drop_reason_desc", 1, lambda v: _enum_pred("drop_reason_desc", "DROP_REASON_UNKNOWN", v)),
    (
        "traffic_direction",
        1,
        lambda v: _enum_pred("traffic_direction", "TRAFFIC_DIRECTION_UNKNOWN", v),
    ),
    ("reply", 1, _reply_pred),
    ("source_identity", 2, lambda v: _endpoint_key_pred(v, "source", "identity", 0)),
    ("destination_identity", 2, lambda v: _endpoint_key_pred(v, "destination", "identity", 0)),
    ("protocol", 2, _protocol_pred),
    ("source_ip", 3, lambda v: _ip_pred(v, "source")),
    ("source_ip_xlated", 3, lambda v: _ip_pred(v, "source_xlated")),
    ("destination_ip", 3, lambda v: _ip_pred(v, "destination")),
    ("source_pod", 2, lambda v: _namespaced_pred(v, "source", "pod_name")),
    ("destination_pod", 2, lambda v: _namespaced_pred(v, "destination", "pod_name")),
    ("source_workload", 3, lambda v: _workload_pred(v, "source")),
    ("destination_workload", 3, lambda v: _workload_pred(v, "destination")),
    ("source_service", 2, lambda v: _namespaced_pred(v, "source_service", "name")),
    ("destination_service", 2, lambda v: _namespaced_pred(v, "destination_service", "name")),
    ("source_fqdn", 4, lambda v: _fqdn_pred(v, "source_names")),
    ("destination_fqdn", 4, lambda v: _fqdn_pred(v, "destination_names")),
    ("source_label", 6, lambda v: _label_pred(v, _endpoint_labels("source"))),
    ("destination_label", 6, lambda v: _label_pred(v, _endpoint_labels("destination"))),
    ("node_labels", 6, lambda v: _label_pred(v, lambda f: f.get("node_labels"))),
    ("source_port", 2, lambda v: _port_pred(v, "source_port")),
    ("destination_port", 2, lambda v: _port_pred(v, "destination_port")),
    ("http_status_code", 3, _http_status_pred),
    ("http_method", 3, _http_method_pred),
    ("http_path", 6, lambda v: _http_url_pred(v, "http path", request_uri_path)),
    ("http_url", 6, lambda v: _http_url_pred(v, "http url", None)),
    ("http_header", 3, _http_header_pred),
    ("dns_query", 6, _dns_query_pred),
    ("tcp_flags", 2, _tcp_flags_pred),
    ("node_name", 4, _node_name_pred),
    ("ip_version", 1, lambda v: _sub_enum_pred("IP", "ipVersion", "IP_NOT_USED", v)),
    ("trace_id", 2, _trace_id_pred),
    ("encrypted", 1, _encrypted_pred),
    ("interface", 2, _interface_pred),
    ("ip_trace_id", 2, _ip_trace_id_pred),
    ("source_cluster_name", 2, lambda v: _cluster_pred(v, "source")),
    ("destination_cluster_name", 2, lambda v: _cluster_pred(v, "destination")),
)
# Every field but the rejected cel_expression has a row: a new field cannot be ignored silently.
assert {name for name, _, _ in _COMPILERS} == {f.name for f in fields(FlowFilter)} - {
    "cel_expression"
}

_HTTP_FIELDS: Final = ("http_status_code", "http_method", "http_path", "http_url", "http_header")


def _check_supported(ff: FlowFilter) -> None:
    """hubble's checks of a whole FlowFilter, before any field is compiled."""
    if ff.cel_expression:
        raise FilterError("--cel-expression filters are not supported")
    if (
        any(getattr(ff, name) for name in _HTTP_FIELDS)
        and ff.event_type
        and not any(int(t.get("type", 0) or 0) == MESSAGE_TYPE_ACCESS_LOG for t in ff.event_type)
    ):
        raise FilterError(
            "filtering by http fields requires the event type filter to only match 'l7' events"
        )


def compile_flow_filter(ff: FlowFilter) -> list[_Pred]:
    """The predicates of one FlowFilter (all must hold). Raises FilterError like hubble."""
    _check_supported(ff)
    preds = [
        _Pred(cost, (name, _freeze(values)), build(values))
        for name, cost, build in _COMPILERS
        if (values := getattr(ff, name))
    ]
    preds.sort(key=lambda p: p.cost)
    return preds


def _join(fns: Sequence[Predicate], every: bool) -> Predicate:
    """AND (`every`) or OR of predicates; up to three are unrolled, as the hot path calls the
    result once per flow."""
    if not fns:
        return lambda f: every
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return (lambda f: a(f) and b(f)) if every else (lambda f: a(f) or b(f))
    if len(fns) == 3:
        a, b, c = fns
        return (lambda f: a(f) and b(f) and c(f)) if every else (lambda f: a(f) or b(f) or c(f))
    tup = tuple(fns)
    if every:
        return lambda f: all(p(f) for p in tup)
    return lambda f: any(p(f) for p in tup)


def _all(fns: Sequence[Predicate]) -> Predicate:
    return _join(fns, every=True)


def _any(fns: Sequence[Predicate]) -> Predicate:
    return _join(fns, every=False)


def _match_one(compiled: list[list[_Pred]]) -> Predicate:
    """OR of ANDs, with conjuncts common to every filter hoisted out (evaluated once)."""
    if not compiled:
        return lambda f: True
    common_keys = set.intersection(*({p.key for p in preds} for preds in compiled))
    common: dict[tuple[Any, ...], _Pred] = {}
    residual: list[list[_Pred]] = []
    for preds in compiled:
        rest = []
        for p in preds:
            if p.key in common_keys:
                common.setdefault(p.key, p)
            else:
                rest.append(p)
        residual.append(rest)
    head = [p.fn for p in sorted(common.values(), key=lambda p: p.cost)]
    if any(not r for r in residual):
        return _all(head)
    alternatives = [_all([p.fn for p in r]) for r in residual]
    return _all([*head, _any(alternatives)])


class FlowMatcher:
    """`filters.Apply(allow, deny)`: matches one allowlist filter (or none given) and no
    denylist filter. Call it on a flow's JSON dict (`Flow.raw`) or a `Flow`."""

    __slots__ = ("_fn", "allow", "deny")

    def __init__(self, allow: Sequence[FlowFilter] = (), deny: Sequence[FlowFilter] = ()) -> None:
        self.allow = list(allow)
        self.deny = list(deny)
        allow_fn = _match_one([compile_flow_filter(ff) for ff in self.allow])
        deny_compiled = [compile_flow_filter(ff) for ff in self.deny]
        if not self.allow and not deny_compiled:
            self._fn: Predicate = lambda f: True
        elif not deny_compiled:
            self._fn = allow_fn
        else:
            deny_fn = _any([_all([p.fn for p in preds]) for preds in deny_compiled])
            if not self.allow:
                self._fn = lambda f: not deny_fn(f)
            else:
                self._fn = lambda f: allow_fn(f) and not deny_fn(f)

    @property
    def predicate(self) -> Predicate:
        """The compiled predicate over flow dicts (the fastest way to call the matcher)."""
        return self._fn

    def __call__(self, flow: JSON | Any) -> bool:
        raw = flow if isinstance(flow, dict) else flow.raw
        return self._fn(raw)

    @property
    def is_trivial(self) -> bool:
        return not self.allow and not self.deny


def matcher_from_flags(
    include: FilterFlags | None = None,
    exclude: FilterFlags | None = None,
    allowlist: Sequence[str] = (),
    denylist: Sequence[str] = (),
) -> FlowMatcher:
    """The matcher of `hubble observe [flags] [--not flag]... [--allowlist J] [--denylist J]`."""
    allow = build_flow_filters(include) if include is not None else []
    deny = build_flow_filters(exclude) if exclude is not None else []
    for text in allowlist:
        allow.extend(FlowFilter.from_json(text))
    for text in denylist:
        deny.extend(FlowFilter.from_json(text))
    return FlowMatcher(allow, deny)
