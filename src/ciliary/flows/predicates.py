"""What each `FlowFilter` field matches: a predicate builder per field, following cilium's
pkg/hubble/filters (ip.go, k8s.go, fqdn.go, labels.go, port.go, http.go, ...).

Rules and contracts:

* `FIELD_COMPILERS` has one row per FlowFilter field but the unsupported `cel_expression`:
  (field, cost, build). `build(values)` validates the field's values (raising `FilterError`
  with hubble's message) and returns a predicate over a flow's JSON dict (`Flow.raw`). A new
  FlowFilter field without a row fails at import, so it cannot be ignored silently.
* Predicates are pure: they read the flow dict and never mutate it; a missing member counts
  as the proto's default (mostly: no match). They capture only what the builder computed,
  never changed afterwards, so one compiled predicate may be shared by any number of matchers.
* Predicates run once per flow per field: keep them cheap (local lookups, `type(x) is dict`
  checks, work moved to build time); the address cache (`_ip_ints`) is bounded.
* Combining predicates (AND within a filter, OR across filters, allow/deny) is
  `flows.matcher`'s job, not this module's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import fields
from functools import lru_cache
from typing import Any, Final

import re2

from ciliary.flows.flowfilter import JSON, FilterError, FlowFilter
from ciliary.flows.labelsel import LabelSelectorError, compile_selector, parse_labels

Predicate = Callable[[JSON], bool]


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
FIELD_COMPILERS: Final[tuple[tuple[str, int, Callable[[Any], Predicate]], ...]] = (
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
assert {name for name, _, _ in FIELD_COMPILERS} == {f.name for f in fields(FlowFilter)} - {
    "cel_expression"
}
