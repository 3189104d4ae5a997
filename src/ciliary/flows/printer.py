"""`hubble observe` output formats: compact, dict, table, json/jsonpb.

Follows hubble/pkg/printer/printer.go (v1.19). The compact line is

    <TIME>[ [<node>]]: <SRC> <SRC_ID> <ARROW> <DST> <DST_ID> <TYPE> <VERDICT> (<SUMMARY>)

* TIME: the flow's `time` in the `--time-format` layout (default StampMilli, UTC), `N/A` if
  absent. ` [node]` only with `--print-node-name`.
* SRC/DST: without IP translation (`--numeric`), the IP; with it, `namespace/pod` if the pod is
  known, else `namespace/service`, else the comma-joined DNS names, else the IP. A service's
  namespace replaces the endpoint's (as hubble does). A non-zero TCP/UDP/SCTP port is appended
  as `:port` (`[ipv6]:port`). A flow without `IP` shows its MAC addresses.
* SRC_ID/DST_ID: `(ID:n)`, or `(name)` for reserved identities (0 is `(unknown)`).
* ARROW: `->`, `<-` for replies (source and destination swapped), `<>` when `is_reply` is absent.
* TYPE: L7 `http-request`, `dns-response proxy`, ...; trace: observation point; drop: the
  datapath's drop string; policy verdict: `policy-verdict:<match> <DIRECTION>`; trace-sock:
  `pre-xlate-fwd`...; capture: the capture point; otherwise `UNKNOWN`.
* VERDICT: `ALLOWED`/`DENIED`/`AUDITED` on policy-verdict events, else the verdict name.
* SUMMARY: `Summary`, prefixed by `IP Trace ID: n; ` and suffixed by `; Auth: X`.

Like hubble's terminal escaper, ESC becomes `^[` and CR `\\r` in text output. Lines are
returned without their trailing newline.

Contracts: formatting only reads the flow; a `Printer` keeps its options, a count and, for
`table`, the rows it has not printed yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from ciliary.flows.codec import go_json
from ciliary.flows.enums import (
    DROP_REASON_STRINGS,
    MESSAGE_TYPE_CAPTURE,
    MESSAGE_TYPE_DROP,
    MESSAGE_TYPE_POLICY_VERDICT,
    MESSAGE_TYPE_TRACE,
    MESSAGE_TYPE_TRACE_SOCK,
    POLICY_MATCH_TYPE_NAMES,
    RESERVED_IDENTITY_NAMES,
    TRACE_POINT_NAMES,
)
from ciliary.flows.gotime import format_flow_time, time_formatter
from ciliary.flows.model import Flow

JSON = dict[str, Any]
OUTPUT_FORMATS: Final = ("compact", "dict", "json", "jsonpb", "table", "tab")

DICT_SEPARATOR: Final = "------------"

_XLATE_NAMES: Final[dict[str | int, str]] = {
    "SOCK_XLATE_POINT_POST_DIRECTION_FWD": "post-xlate-fwd",
    "SOCK_XLATE_POINT_POST_DIRECTION_REV": "post-xlate-rev",
    "SOCK_XLATE_POINT_PRE_DIRECTION_FWD": "pre-xlate-fwd",
    "SOCK_XLATE_POINT_PRE_DIRECTION_REV": "pre-xlate-rev",
    1: "pre-xlate-fwd",
    2: "post-xlate-fwd",
    3: "pre-xlate-rev",
    4: "post-xlate-rev",
}


@dataclass(frozen=True)
class PrinterOptions:
    """Formatting flags: `--print-node-name`, `--time-format`, `--numeric`/`--ip-translation`."""

    print_node_name: bool = False
    time_format: str = "StampMilli"
    ip_translation: bool = True


def escape_terminal(text: str) -> str:
    """hubble's terminalEscaper: neutralise ESC and CR."""
    if "\x1b" in text or "\r" in text:
        return text.replace("\x1b", "^[").replace("\r", "\\r")
    return text


@lru_cache(maxsize=65536)
def _go_path_join(a: str, b: str) -> str:
    """Go path.Join(a, b): join the non-empty elements with '/', then path.Clean."""
    joined = "/".join(p for p in (a, b) if p)
    if not joined:
        return ""
    return _go_path_clean(joined)


def _go_path_clean(path: str) -> str:
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _ports(f: JSON) -> tuple[str, str]:
    l4 = f.get("l4")
    if type(l4) is dict:
        for proto in ("TCP", "UDP", "SCTP"):
            p = l4.get(proto)
            if type(p) is dict:
                return str(p.get("source_port", 0)), str(p.get("destination_port", 0))
    return "", ""


def _host(ip: Any, port: str, ep: Any, svc: Any, names: Any, translate: bool) -> str:
    """hubble Hostname() for one side of the flow."""
    host: str = ip if isinstance(ip, str) else ""
    if translate:
        ns = pod = name = ""
        if type(ep) is dict:
            ns = ep.get("namespace") or ""
            pod = ep.get("pod_name") or ""
        if type(svc) is dict:
            # A matched service's namespace replaces the endpoint's, even for a pod.
            ns = svc.get("namespace") or ""
            name = svc.get("name") or ""
        if pod:
            host = _go_path_join(ns, pod)
        elif name:
            host = _go_path_join(ns, name)
        elif names:
            host = ",".join(names)
    if port and port != "0":
        if ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return host


def _s(d: Any, key: str) -> str:
    if type(d) is not dict:
        return ""
    v = d.get(key)
    return v if isinstance(v, str) else ""


def host_names(f: JSON, translate: bool = True) -> tuple[str, str]:
    """hubble GetHostNames: the SOURCE and DESTINATION columns."""
    ip = f.get("IP")
    if type(ip) is not dict:
        eth = f.get("ethernet")
        if type(eth) is dict:
            return _s(eth, "source"), _s(eth, "destination")
        return "", ""
    sport, dport = _ports(f)
    return (
        _host(
            ip.get("source"),
            sport,
            f.get("source"),
            f.get("source_service"),
            f.get("source_names"),
            translate,
        ),
        _host(
            ip.get("destination"),
            dport,
            f.get("destination"),
            f.get("destination_service"),
            f.get("destination_names"),
            translate,
        ),
    )


def format_identity(identity: int) -> str:
    name = RESERVED_IDENTITY_NAMES.get(identity)
    if name is not None:
        return f"({name})"
    return f"(ID:{identity})"


def _identity(ep: Any) -> int:
    if type(ep) is not dict:
        return 0
    v = ep.get("identity", 0)
    return v if type(v) is int else int(v or 0)


def _enum_text(value: Any, default: str) -> str:
    if value is None:
        return default
    return str(value)


def flow_type(f: JSON) -> str:
    """hubble GetFlowType: the TYPE column."""
    l7 = f.get("l7")
    if type(l7) is dict:
        proto = "l7"
        l7type = _enum_text(l7.get("type"), "UNKNOWN_L7_TYPE").lower()
        if type(l7.get("http")) is dict:
            proto = "http"
        elif type(l7.get("dns")) is dict:
            proto = "dns"
            l7type += " " + _s(l7["dns"], "observation_source")
        elif type(l7.get("kafka")) is dict:
            proto = "kafka"
        return f"{proto}-{l7type}"
    ev = f.get("event_type")
    typ = ev.get("type", 0) if type(ev) is dict else 0
    sub = ev.get("sub_type", 0) if type(ev) is dict else 0
    if typ == MESSAGE_TYPE_TRACE:
        point = sub & 0xFF
        return TRACE_POINT_NAMES.get(point, str(point))
    if typ == MESSAGE_TYPE_DROP:
        reason = sub & 0xFF
        return DROP_REASON_STRINGS.get(reason, str(reason))
    if typ == MESSAGE_TYPE_POLICY_VERDICT:
        match = POLICY_MATCH_TYPE_NAMES.get(f.get("policy_match_type", 0), "unknown")
        direction = _enum_text(f.get("traffic_direction"), "TRAFFIC_DIRECTION_UNKNOWN")
        return f"policy-verdict:{match} {direction}"
    if typ == MESSAGE_TYPE_CAPTURE:
        return _enum_text(f.get("debug_capture_point"), "DBG_CAPTURE_POINT_UNKNOWN")
    if typ == MESSAGE_TYPE_TRACE_SOCK:
        point = f.get("sock_xlate_point")
        name = _XLATE_NAMES.get(point) if isinstance(point, str | int) else None
        return name if name is not None else _enum_text(point, "SOCK_XLATE_POINT_UNKNOWN")
    return "UNKNOWN"


def verdict_text(f: JSON) -> str:
    """hubble getVerdict: ALLOWED/DENIED/AUDITED on policy verdicts, else the verdict name."""
    verdict = _enum_text(f.get("verdict"), "VERDICT_UNKNOWN")
    ev = f.get("event_type")
    if type(ev) is dict and ev.get("type") == MESSAGE_TYPE_POLICY_VERDICT:
        if verdict in ("FORWARDED", "REDIRECTED"):
            return "ALLOWED"
        if verdict in ("DROPPED", "ERROR"):
            return "DENIED"
        if verdict == "AUDIT":
            return "AUDITED"
    return verdict


def summary_text(f: JSON) -> str:
    """hubble getSummary: Summary with the IP trace id prefix and the auth suffix."""
    out = _s(f, "Summary")
    trace = f.get("ip_trace_id")
    if type(trace) is dict:
        try:
            tid = int(trace.get("trace_id", 0) or 0)
        except (TypeError, ValueError):
            tid = 0
        if tid > 0:
            out = f"IP Trace ID: {tid}; {out}"
    auth = f.get("auth_type")
    if auth not in (None, "DISABLED", 0):
        out = f"{out}; Auth: {auth}"
    return out


class Printer:
    """Formats flows in one of hubble's output formats, streaming (`table` buffers rows, like
    hubble's tabwriter, and emits them from `finish`)."""

    def __init__(self, output: str = "compact", options: PrinterOptions | None = None) -> None:
        if output not in OUTPUT_FORMATS:
            raise ValueError(f"invalid output format: {output}")
        self.output = output
        self.options = options or PrinterOptions()
        self._time = time_formatter(self.options.time_format)
        self._translate = self.options.ip_translation
        self._node = self.options.print_node_name
        self._count = 0
        self._rows: list[list[str]] = []

    def _ts(self, f: JSON) -> str:
        return format_flow_time(f.get("time"), self._time)

    def compact(self, f: JSON) -> str:
        """The compact line of a flow dict."""
        src, dst = host_names(f, self._translate)
        src_id = format_identity(_identity(f.get("source")))
        dst_id = format_identity(_identity(f.get("destination")))
        reply = f.get("is_reply")
        if reply is None:
            arrow = "<>"
        elif reply is True:
            src, dst = dst, src
            src_id, dst_id = dst_id, src_id
            arrow = "<-"
        else:
            arrow = "->"
        node = f" [{_s(f, 'node_name')}]" if self._node else ""
        return escape_terminal(
            f"{self._ts(f)}{node}: {src} {src_id} {arrow} {dst} {dst_id} "
            f"{flow_type(f)} {verdict_text(f)} ({summary_text(f)})"
        )

    def dict_lines(self, f: JSON) -> list[str]:
        src, dst = host_names(f, self._translate)
        lines = [f"  TIMESTAMP: {self._ts(f)}"]
        if self._node:
            lines.append(f"       NODE: {_s(f, 'node_name')}")
        lines += [
            f"     SOURCE: {src}",
            f"DESTINATION: {dst}",
            f"       TYPE: {flow_type(f)}",
            f"    VERDICT: {verdict_text(f)}",
            f"    SUMMARY: {summary_text(f)}",
        ]
        return [escape_terminal(line) for line in lines]

    def table_row(self, f: JSON) -> list[str]:
        src, dst = host_names(f, self._translate)
        row = [self._ts(f)]
        if self._node:
            row.append(_s(f, "node_name"))
        row += [src, dst, flow_type(f), verdict_text(f), summary_text(f)]
        return [escape_terminal(c) for c in row]

    def format(self, flow: JSON | Flow, envelope: JSON | None = None) -> list[str]:
        """Output lines for one flow (possibly none, for `table` until `finish`)."""
        if isinstance(flow, Flow):
            f, env = flow.raw, flow.envelope
        else:
            f = flow
            env = envelope if envelope is not None else Flow(flow).envelope
        out = self.output
        self._count += 1
        if out == "compact":
            return [self.compact(f)]
        if out in ("json", "jsonpb"):
            return [go_json(env).decode()]
        if out == "dict":
            lines = self.dict_lines(f)
            return [DICT_SEPARATOR, *lines] if self._count > 1 else lines
        self._rows.append(self.table_row(f))
        return []

    def finish(self) -> list[str]:
        """Remaining output (the table, aligned like Go's tabwriter(minwidth 2, padding 3))."""
        if self.output not in ("table", "tab") or not self._rows:
            return []
        header = ["TIMESTAMP", *(["NODE"] if self._node else []), "SOURCE", "DESTINATION"]
        header += ["TYPE", "VERDICT", "SUMMARY"]
        rows = [header, *self._rows]
        self._rows = []
        return list(tabwrite(rows))


def tabwrite(rows: list[list[str]], minwidth: int = 2, padding: int = 3) -> Iterator[str]:
    """Go text/tabwriter (AlignLeft, padchar ' '): every cell but the last is padded to its
    column's width (widest cell + padding, at least minwidth)."""
    ncols = max(len(r) for r in rows)
    widths = [minwidth] * ncols
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell) + padding)
    for r in rows:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])]
        parts.append(r[-1] if r else "")
        yield "".join(parts)


def compact_line(flow: Flow | JSON, options: PrinterOptions | None = None) -> str:
    """The `hubble observe -o compact` line of one flow."""
    f = flow.raw if isinstance(flow, Flow) else flow
    return Printer("compact", options).compact(f)
