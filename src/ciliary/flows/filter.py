"""The `hubble observe` filter flags, and the FlowFilters they make, as hubble's cmd/observe
does it (flows.go declares the flags, flows_filter.go's filterTracker builds the filters).

Rules and contracts:

* `FilterFlags` holds the filter flags of one list, 1:1 with the CLI (`--pod`, `--to-ip`,
  `--verdict`, ...). `ObserveOptions` (workflows/observe.py) has two of them: the plain flags
  and the `--not` ones (hubble puts every flag preceded by `--not` into one denylist tracker).
* `build_flow_filters(flags)` is pure (it reads the flags, returns new FlowFilters) and follows
  the filterTracker: "either side" flags (`--pod`, `--ip`, `--label`, `--namespace`, ...)
  split into a source-side filter and a destination-side filter (ORed); every other flag is
  copied into both; identical halves collapse into one. Each flag fills the filters by its
  row of `_FLAG_TABLE`; `--namespace` is applied last, to the pod/service values. Conflicting
  flags and bad values raise `FilterError` with hubble's messages. The two halves share the
  parsed values (dicts included): treat them as immutable.
* `matcher_from_flags` is the whole command line (flags, `--not` flags, `--allowlist`,
  `--denylist`) as one `FlowMatcher`.

The FlowFilter message is `flows.flowfilter`; what its fields match and how filters combine
are `flows.predicates` and `flows.matcher`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final

from ciliary.flows.enums import (
    AGENT_EVENT_SUBTYPES,
    MESSAGE_TYPE_AGENT,
    MESSAGE_TYPE_NAMES,
    MESSAGE_TYPE_TRACE,
    RESERVED_IDENTITY_IDS,
    TRACE_POINT_NAMES,
    DropReason,
    FlowVerdict,
)
from ciliary.flows.flowfilter import JSON, FilterError, FlowFilter
from ciliary.flows.matcher import FlowMatcher

__all__ = [
    "FilterError",  # re-exported: tests/test_flows_observe.py imports it from here
    "FilterFlags",
    "build_flow_filters",
    "matcher_from_flags",
    "parse_event_type",
    "parse_identity",
    "parse_tcp_flags",
    "parse_workload",
]


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


def _check_namespaces(flags: FilterFlags, ff: FlowFilter) -> None:
    """hubble's namespace checks of one half: a `ns/name` value must lie in the namespaces."""
    _ns_conflicts(flags.namespace, ff.source_pod)
    _ns_conflicts(flags.namespace, ff.source_service)
    _ns_conflicts(flags.namespace, ff.destination_pod)
    _ns_conflicts(flags.namespace, ff.destination_service)
    _ns_conflicts(flags.from_namespace, ff.source_pod)
    _ns_conflicts(flags.from_namespace, ff.source_service)
    _ns_conflicts(flags.to_namespace, ff.destination_pod)
    _ns_conflicts(flags.to_namespace, ff.destination_service)
    _inconsistent_namespaces(ff.source_pod, ff.source_service)
    _inconsistent_namespaces(ff.destination_pod, ff.destination_service)


def _apply_namespaces(flags: FilterFlags, left: FlowFilter, right: FlowFilter) -> None:
    """The `--namespace` flags, after every other flag (`--namespace` is either-side)."""
    if flags.to_namespace:
        _apply_dst_ns(left, flags.to_namespace)
        _apply_dst_ns(right, flags.to_namespace)
    if flags.from_namespace:
        _apply_src_ns(left, flags.from_namespace)
        _apply_src_ns(right, flags.from_namespace)
    if flags.namespace:
        _apply_src_ns(left, flags.namespace)
        _apply_dst_ns(right, flags.namespace)


# ---- flag values -> FlowFilter values ---------------------------------------------------------


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


def _parse_ip_trace_id(value: str) -> int:
    if value == "0":
        raise FilterError("invalid --ip-trace-id value; must be greater than 0")
    if not value.isdigit() or int(value) > 2**64 - 1:
        raise FilterError(f"invalid --ip-trace-id value: {value!r}")
    return int(value)


def _parse_verdict(value: str) -> str:
    if value not in FlowVerdict.__members__:
        raise FilterError(f"invalid --verdict value: {value}")
    return value


def _parse_drop_reason_desc(value: str) -> str:
    if not value:
        raise FilterError("empty --drop-reason-desc value")
    if value not in DropReason.__members__:
        raise FilterError(f"invalid --drop-reason-desc value: {value}")
    return value


def _parse_http_header(value: str) -> JSON:
    key, sep, val = value.partition(":")
    if not sep:
        raise FilterError(f'invalid http-header value "{value}", expected name:value')
    return {"key": key, "value": val}


def _parse_traffic_direction(value: str) -> str:
    td = value.lower()
    if td not in ("ingress", "egress"):
        raise FilterError(f"{td}: invalid traffic direction, expected ingress or egress")
    return td.upper()


def _parse_interface(value: str) -> JSON:
    return {"name": value}


# ---- flags -> FlowFilters ---------------------------------------------------------------------

_Parse = Callable[[Any], Any] | None

# Which FlowFilter field each flag fills: (flag, side, field, parse), applied in this order
# (which fixes the order of a field's values and which bad value is reported first). Side "" fills `field` of both halves; "from"/"to" fill
# `source_<field>`/`destination_<field>` of both; "either" fills the left half's source_ field
# and the right half's destination_ one. `parse` turns one value (True for a boolean flag)
# into the FlowFilter's value, raising FilterError; None keeps the text.
_FLAG_TABLE: Final[tuple[tuple[str, str, str, _Parse], ...]] = (
    ("uuid", "", "uuid", None),
    ("fqdn", "either", "fqdn", None),
    ("from_fqdn", "from", "fqdn", None),
    ("to_fqdn", "to", "fqdn", None),
    ("pod", "either", "pod", None),
    ("from_pod", "from", "pod", None),
    ("to_pod", "to", "pod", None),
    ("from_ip", "from", "ip", None),
    ("snat_ip", "from", "ip_xlated", None),
    ("ip", "either", "ip", None),
    ("to_ip", "to", "ip", None),
    ("ipv4", "", "ip_version", lambda _: "IPv4"),
    ("ipv6", "", "ip_version", lambda _: "IPv6"),
    ("ip_version", "", "ip_version", _ip_version),
    ("label", "either", "label", None),
    ("from_label", "from", "label", None),
    ("to_label", "to", "label", None),
    ("service", "either", "service", None),
    ("from_service", "from", "service", None),
    ("to_service", "to", "service", None),
    ("port", "either", "port", None),
    ("from_port", "from", "port", None),
    ("to_port", "to", "port", None),
    ("trace_id", "", "trace_id", None),
    ("ip_trace_id", "", "ip_trace_id", _parse_ip_trace_id),
    ("verdict", "", "verdict", _parse_verdict),
    ("drop_reason_desc", "", "drop_reason_desc", _parse_drop_reason_desc),
    ("http_status", "", "http_status_code", None),
    ("http_method", "", "http_method", None),
    ("http_path", "", "http_path", None),
    ("http_url", "", "http_url", None),
    ("http_header", "", "http_header", _parse_http_header),
    ("type", "", "event_type", parse_event_type),
    ("protocol", "", "protocol", None),
    ("workload", "either", "workload", parse_workload),
    ("from_workload", "from", "workload", parse_workload),
    ("to_workload", "to", "workload", parse_workload),
    ("identity", "either", "identity", parse_identity),
    ("from_identity", "from", "identity", parse_identity),
    ("to_identity", "to", "identity", parse_identity),
    ("node_name", "", "node_name", None),
    ("node_label", "", "node_labels", None),
    ("cluster", "either", "cluster_name", None),
    ("from_cluster", "from", "cluster_name", None),
    ("to_cluster", "to", "cluster_name", None),
    ("tcp_flags", "", "tcp_flags", parse_tcp_flags),
    ("traffic_direction", "", "traffic_direction", _parse_traffic_direction),
    ("cel_expression", "", "cel_expression", None),
    ("interface", "", "interface", _parse_interface),
    ("encrypted", "", "encrypted", lambda _: True),
    ("unencrypted", "", "encrypted", lambda _: False),
    ("reply", "", "reply", _parse_bool),
)
_NAMESPACE_FLAGS: Final = ("namespace", "from_namespace", "to_namespace")
_SIDE_FIELDS: Final = {
    "": ("{}", "{}"),
    "from": ("source_{}", "source_{}"),
    "to": ("destination_{}", "destination_{}"),
    "either": ("source_{}", "destination_{}"),
}
_BOOL_FLAGS: Final = frozenset(f.name for f in fields(FilterFlags) if f.type == "bool")


def _resolve(row: tuple[str, str, str, _Parse]) -> tuple[str, bool, str, str, _Parse]:
    """(flag, is boolean, left half's field, right half's field, parse) of a table row."""
    flag, side, name, parse = row
    left, right = (template.format(name) for template in _SIDE_FIELDS[side])
    return flag, flag in _BOOL_FLAGS, left, right, parse


_FLAG_ROWS: Final = tuple(_resolve(row) for row in _FLAG_TABLE)
# Every flag has one row (the namespace flags are applied apart) and every row names real
# fields: a new flag cannot be ignored silently.
assert sorted([r[0] for r in _FLAG_TABLE] + list(_NAMESPACE_FLAGS)) == sorted(_FLAG_FIELDS)
assert {f for r in _FLAG_ROWS for f in r[2:4]} <= {f.name for f in fields(FlowFilter)}


def build_flow_filters(flags: FilterFlags) -> list[FlowFilter]:
    """The FlowFilters hubble's filterTracker makes of one list of flags ([] when empty)."""
    changed = flags.changed()
    if not changed:
        return []
    _check_conflicts(changed)
    left, right = FlowFilter(), FlowFilter()
    for flag, is_bool, left_field, right_field, parse in _FLAG_ROWS:
        given = getattr(flags, flag)
        if not given:
            continue
        texts = [given] if is_bool else given
        values = list(texts) if parse is None else [parse(v) for v in texts]
        getattr(left, left_field).extend(values)
        getattr(right, right_field).extend(values)
    for ff in (left, right):
        _check_namespaces(flags, ff)
    _apply_namespaces(flags, left, right)
    if left == right:
        return [left]
    return [left, right]


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
