"""`ciliary connections FLOWS... [--cluster FILE] [filters] [-o FORMAT]`: the observed
communication map, the seed article's stage 1 (`hubble observe -o json | jq ... | sort |
uniq -c`), by workload rather than by label set:

    report = connections(["flows.json"], PeerResolver(), keep=flow_selector(options))
    for row in report.rows:   # flows descending, then source, destination, port, L7
        print(row.flows, row.source, row.destination, row.port_label, row.l7)

Rules:
* Rows come from `ciliary.flows.observed.observations`, one per (source, destination,
  protocol and port, L7 summary). Every observation is a flow of its row: repeats of a
  connection and the replies folded into it count too, as `uniq -c` counts lines.
* Source: the workload `ns/name`, the entity, or the address. Destination: the workload
  (kind `workload`), the entity (`entity`), for a world address whose DNS names are known
  one row per name `fqdn:NAME` (`fqdn`; a flow to an address with two names counts in both
  rows, once in `flows`), else `cidr:IP/32` (`/128`; `cidr`). A side that cannot be named is
  `unresolved:POD-OR-ADDRESS` (`unresolved`), its reason kept in `unresolved`.
* L7: `HTTP METHOD PATH` (`l7.paths.display_path`: query dropped, identifier segments named),
  `Kafka API-KEY TOPIC`, `DNS NAME`; empty for L3/L4 flows.
* Filters are observe's, applied by `flow_selector` before a flow becomes an observation.
* Memory grows with the rows (plus the peers and DNS answers observations keep), never with
  the number of flows: each observation updates its row in place.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, NamedTuple, TextIO

import orjson

from ciliary.cache import BoundedCache
from ciliary.cluster.loader import read_cluster
from ciliary.flows.codec import BadLine, FlowReadError, OnBadLine, ReadStats
from ciliary.flows.observed import (
    ENTITY,
    POD,
    WORLD,
    Observation,
    ObservedPeer,
    PeerResolver,
    observations,
)
from ciliary.l7.http import HTTPRequest
from ciliary.l7.kafka import KafkaRequest, kafka_api_key_name
from ciliary.l7.paths import display_path
from ciliary.model.errors import LoadError
from ciliary.model.loader import load_policies
from ciliary.policy.config import AgentConfig
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP
from ciliary.verdict.types import DNSQuery, L7Request
from ciliary.workflows.observe import ObserveOptions, flow_selector, parse_observe_args

JSON = dict[str, Any]

__all__ = [
    "FORMATS",
    "ConnectionMap",
    "ConnectionsReport",
    "ConnectionsRequest",
    "Row",
    "connections",
    "l7_summary",
    "parse_connections_args",
    "render",
    "run_connections_cli",
    "snapshot_engine",
]

# Side kinds of a row (a world source keeps its bare address: kind `world`).
WORKLOAD, FQDN, CIDR, UNRESOLVED = "workload", "fqdn", "cidr", "unresolved"
FORMATS: Final = ("text", "json", "csv", "md", "dot")
PROGRESS_EVERY: Final = 200_000
PROTOCOLS: Final = {PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_SCTP: "SCTP",
                    PROTO_ICMP: "ICMPv4", PROTO_ICMPV6: "ICMPv6"}
_LABELS_MAX = 100_000  # peers whose row labels are remembered
_UNRESOLVED_SHOWN = 50  # unresolved sides listed by the text and markdown summaries


# ---- naming -------------------------------------------------------------------------------

@lru_cache(maxsize=65_536)
def _http_summary(method: str, path: str) -> str:
    return f"HTTP {method} {display_path(path)}"


def l7_summary(request: L7Request | None) -> str:
    """`HTTP GET /api/{n}`, `Kafka produce orders`, `DNS example.com`; "" for none."""
    if request is None:
        return ""
    if isinstance(request, HTTPRequest):
        return _http_summary(request.method.upper(), request.path)
    if isinstance(request, KafkaRequest):
        topics = " ".join(request.topics)
        return f"Kafka {kafka_api_key_name(request.api_key)} {topics}".rstrip()
    if isinstance(request, DNSQuery):
        return f"DNS {request.qname.rstrip('.').lower()}"
    return ""


def port_label(proto: int, port: int) -> str:
    """`443/TCP`, `53/UDP`, `ICMPv4 type 8` (the port of an ICMP row is its type)."""
    name = PROTOCOLS.get(proto, str(proto))
    return f"{name} type {port}" if proto in (PROTO_ICMP, PROTO_ICMPV6) else f"{port}/{name}"


def side_label(peer: ObservedPeer, source: bool) -> tuple[str, str]:
    """(label, kind) of a row's side (see the module's rules)."""
    if peer.kind == POD:
        return str(peer), WORKLOAD
    if peer.kind == ENTITY:
        return peer.entity, ENTITY
    if peer.kind == WORLD:
        if source:
            return peer.ip, WORLD
        return f"cidr:{peer.ip}/{128 if ':' in peer.ip else 32}", CIDR
    return f"unresolved:{peer.pod or peer.ip or '?'}", UNRESOLVED


# ---- the map ------------------------------------------------------------------------------


class Row:
    """One line of the map, updated in place by each of its flows."""

    __slots__ = ("destination", "destination_kind", "first", "first_text", "flows", "l7",
                 "last", "last_text", "port", "proto", "source", "source_kind", "verdicts")

    def __init__(self, src: tuple[str, str], dst: tuple[str, str], proto: int, port: int, l7: str) -> None:
        self.source, self.source_kind = src
        self.destination, self.destination_kind = dst
        self.proto, self.port, self.l7 = proto, port, l7
        self.flows = 0
        self.verdicts: dict[str, int] = {}
        self.first: float | None = None
        self.last: float | None = None
        self.first_text = self.last_text = ""

    def add(self, verdict: str, t: float | None, text: str) -> None:
        self.flows += 1
        v = self.verdicts
        v[verdict] = v.get(verdict, 0) + 1
        if t is not None:
            if self.first is None or t < self.first:
                self.first, self.first_text = t, text
            if self.last is None or t > self.last:
                self.last, self.last_text = t, text

    @property
    def protocol(self) -> str:
        return PROTOCOLS.get(self.proto, str(self.proto))

    @property
    def port_label(self) -> str:
        return port_label(self.proto, self.port)

    def verdict_counts(self) -> list[tuple[str, int]]:
        """(verdict, flows), most flows first."""
        return sorted(self.verdicts.items(), key=lambda kv: (-kv[1], kv[0]))

    def verdict_text(self) -> str:
        return " ".join(f"{k}:{n}" for k, n in self.verdict_counts())

    def sort_key(self) -> tuple[int, str, str, int, int, str]:
        return (-self.flows, self.source, self.destination, self.proto, self.port, self.l7)

    def as_dict(self) -> JSON:
        return {
            "source": self.source, "source_kind": self.source_kind,
            "destination": self.destination, "destination_kind": self.destination_kind,
            "port": self.port, "protocol": self.protocol, "l7": self.l7, "flows": self.flows,
            "first_seen": self.first_text or None, "last_seen": self.last_text or None,
            "verdicts": dict(self.verdict_counts()),
        }


class UnresolvedSide(NamedTuple):
    side: str  # unresolved:POD-OR-ADDRESS
    reason: str
    flows: int


@dataclass
class ConnectionsReport:
    rows: list[Row]  # sorted (Row.sort_key)
    flows: int  # observations counted (a flow in two FQDN rows counts once)
    unresolved: list[UnresolvedSide]
    stats: ReadStats = field(default_factory=ReadStats)

    def as_dict(self) -> JSON:
        return {
            "rows": [r.as_dict() for r in self.rows],
            "flows": self.flows,
            "connections": len(self.rows),
            "flows_read": self.stats.flows,
            "skipped_non_flow": self.stats.non_flow,
            "bad_lines": self.stats.bad,
            "unresolved": [u._asdict() for u in self.unresolved],
        }


class ConnectionMap:
    """Observations folded into rows as they come."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, int, int, str], Row] = {}
        self.flows = 0
        # Row labels of the peers met, per side (a world source and destination differ).
        self._src: BoundedCache[ObservedPeer, tuple[str, str]] = BoundedCache(_LABELS_MAX)
        self._dst: BoundedCache[ObservedPeer, tuple[str, str]] = BoundedCache(_LABELS_MAX)
        self._unresolved: dict[str, list[Any]] = {}  # side -> [reason, flows]

    def add(self, ob: Observation) -> None:
        self.flows += 1
        src = self._src.get(ob.src) or self._src.put(ob.src, side_label(ob.src, True))
        dst = self._dst.get(ob.dst) or self._dst.put(ob.dst, side_label(ob.dst, False))
        if src[1] == UNRESOLVED:
            self._note_unresolved(src[0], ob.src)
        if dst[1] == UNRESOLVED:
            self._note_unresolved(dst[0], ob.dst)
        req = ob.request
        l7 = "" if req is None else l7_summary(req)
        if ob.names and dst[1] == CIDR:
            for name in ob.names:
                self._count(src, ("fqdn:" + name, FQDN), ob, l7)
        else:
            self._count(src, dst, ob, l7)

    def _count(self, src: tuple[str, str], dst: tuple[str, str], ob: Observation, l7: str) -> None:
        key = (src[0], dst[0], ob.proto, ob.port, l7)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = Row(src, dst, ob.proto, ob.port, l7)
        row.add(ob.verdict or "VERDICT_UNKNOWN", ob.time, ob.time_text)

    def _note_unresolved(self, side: str, peer: ObservedPeer) -> None:
        entry = self._unresolved.get(side)
        if entry is None:
            entry = self._unresolved[side] = [peer.why, 0]
        entry[1] += 1

    def report(self, stats: ReadStats) -> ConnectionsReport:
        rows = sorted(self.rows.values(), key=Row.sort_key)
        unresolved = sorted(
            (UnresolvedSide(side, why, n) for side, (why, n) in self._unresolved.items()),
            key=lambda u: (-u.flows, u.side),
        )
        return ConnectionsReport(rows, self.flows, unresolved, stats)


def connections(
    sources: Iterable[str | Path],
    resolver: PeerResolver,
    *,
    keep: Callable[[JSON], bool] | None = None,
    strict: bool = False,
    on_bad: OnBadLine | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConnectionsReport:
    """The map of the flows of `sources` (`-` is stdin), filtered by `keep` (see
    `flow_selector`). `progress(n)` hears every PROGRESS_EVERY flows counted. Raises OSError
    for an unreadable file, FlowReadError for a bad line under `strict`."""
    stats = ReadStats()
    cmap = ConnectionMap()
    add = cmap.add
    obs = observations(sources, stats, resolver, keep=keep, strict=strict, on_bad=on_bad)
    for n, ob in enumerate(obs, 1):
        add(ob)
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(n)
    return cmap.report(stats)


def snapshot_engine(cluster: str | os.PathLike[str]) -> PolicyEngine:
    """An engine of a cluster snapshot's pods, nodes and identities, to name flow sides.
    The snapshot's policies are left out: they do not change who talked to whom, and an
    invalid one must not stop the map. Raises LoadError."""
    return PolicyEngine(read_cluster([cluster]), load_policies([]), AgentConfig())


# ---- output -------------------------------------------------------------------------------


def _seconds(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary(report: ConnectionsReport) -> list[str]:
    s = report.stats
    lines = [
        f"{report.flows} flow(s) in {len(report.rows)} connection(s); {s.flows} flow(s) read, "
        f"{s.non_flow} non-flow line(s) skipped, {s.bad} bad line(s), "
        f"{len(report.unresolved)} unresolved side(s)"
    ]
    for u in report.unresolved[:_UNRESOLVED_SHOWN]:
        lines.append(f"  {u.side} ({u.flows} flow(s)): {u.reason}")
    if len(report.unresolved) > _UNRESOLVED_SHOWN:
        lines.append(f"  ... and {len(report.unresolved) - _UNRESOLVED_SHOWN} more (-o json lists all)")
    return lines


_HEADER: Final = ("FLOWS", "SOURCE", "DESTINATION", "PORT", "L7", "VERDICTS", "FIRST SEEN", "LAST SEEN")


def render_text(report: ConnectionsReport) -> str:
    table = [_HEADER] + [
        (str(r.flows), r.source, r.destination, r.port_label, r.l7 or "-", r.verdict_text(),
         _seconds(r.first), _seconds(r.last))
        for r in report.rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]
    out = []
    for row in table:
        cells = [row[0].rjust(widths[0])] + [c.ljust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        out.append("  ".join(cells).rstrip())
    if not report.rows:
        out = ["no connections"]
    return "\n".join([*out, "", *_summary(report)]) + "\n"


CSV_FIELDS: Final = ("source", "source_kind", "destination", "destination_kind", "port",
                     "protocol", "l7", "flows", "first_seen", "last_seen", "verdicts")


def write_csv(report: ConnectionsReport, out: TextIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in report.rows:
        w.writerow((r.source, r.source_kind, r.destination, r.destination_kind, r.port,
                    r.protocol, r.l7, r.flows, r.first_text, r.last_text, r.verdict_text()))


def _md_code(text: str) -> str:
    if not text:
        return ""
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def render_md(report: ConnectionsReport) -> str:
    lines = [
        "| Flows | Source | Destination | Port | L7 | Verdicts | First seen | Last seen |",
        "|---:|---|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        lines.append(
            f"| {r.flows} | {_md_code(r.source)} | {_md_code(r.destination)} | {r.port_label} "
            f"| {_md_code(r.l7)} | {r.verdict_text()} | {_seconds(r.first)} | {_seconds(r.last)} |"
        )
    summary = _summary(report)
    return "\n".join([*lines, "", summary[0], *(f"- {x.strip()}" for x in summary[1:])]) + "\n"


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_DOT_SHAPES: Final = {WORKLOAD: "box", ENTITY: "hexagon", WORLD: "ellipse", FQDN: "ellipse",
                      CIDR: "ellipse", UNRESOLVED: "box"}


def render_dot(report: ConnectionsReport) -> str:
    """A graphviz digraph: a node per side, an edge per (source, destination) labelled with
    its ports and flows; red when a flow on it was DROPPED, else orange when one was AUDIT."""
    nodes: dict[str, str] = {}
    edges: dict[tuple[str, str], dict[str, int]] = {}
    verdicts: dict[tuple[str, str], set[str]] = {}
    for r in sorted(report.rows, key=lambda r: (r.source, r.destination, r.proto, r.port)):
        nodes.setdefault(r.source, r.source_kind)
        nodes.setdefault(r.destination, r.destination_kind)
        ports = edges.setdefault((r.source, r.destination), {})
        ports[r.port_label] = ports.get(r.port_label, 0) + r.flows
        verdicts.setdefault((r.source, r.destination), set()).update(r.verdicts)
    out = ["digraph connections {", "  rankdir=LR;", '  node [fontname="Helvetica"];',
           '  edge [fontname="Helvetica", fontsize=10];']
    for name, kind in sorted(nodes.items()):
        style = ", style=dashed" if kind == UNRESOLVED else ""
        out.append(f"  {_dot_id(name)} [shape={_DOT_SHAPES.get(kind, 'box')}{style}];")
    for (src, dst), ports in edges.items():
        label = "\\n".join(f"{p} ({n})" for p, n in ports.items())
        seen = verdicts[src, dst]
        color = "red" if "DROPPED" in seen else "orange" if "AUDIT" in seen else ""
        attrs = f', color={color}, fontcolor={color}' if color else ""
        out.append(f'  {_dot_id(src)} -> {_dot_id(dst)} [label="{label}"{attrs}];')
    out.append("}")
    return "\n".join(out) + "\n"


def render(report: ConnectionsReport, output: str, out: TextIO) -> None:
    """Write the report in one of FORMATS."""
    if output == "json":
        out.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    elif output == "csv":
        write_csv(report, out)
    elif output == "md":
        out.write(render_md(report))
    elif output == "dot":
        out.write(render_dot(report))
    else:
        out.write(render_text(report))


# ---- the command line ---------------------------------------------------------------------


@dataclass
class ConnectionsRequest:
    paths: list[str]
    options: ObserveOptions
    output: str = "text"
    cluster: str | None = None


# observe's flags that select or print flows one by one: no meaning for a map of all of them.
_REJECTED: Final = {
    "first": "a map counts every matching flow; select a time window with --since/--until",
    "last": "a map counts every matching flow; select a time window with --since/--until",
    "all": "a map counts every matching flow",
    "print-node-name": "it is an observe output option", "time-format": "it is an observe output option",
    "numeric": "it is an observe output option", "ip-translation": "it is an observe output option",
    "print-raw-filters": "it is an observe output option",
    "validate": "use --strict to stop at the first bad line",
}


def _own_flag(arg: str) -> tuple[str, str | None] | None:
    """("cluster" | "output" | "flow-cluster", inline value) of one of connections' flags."""
    for name, forms in (("cluster", ("--cluster",)), ("output", ("--output", "-o")),
                        ("flow-cluster", ("--flow-cluster",))):
        for form in forms:
            if arg == form:
                return name, None
            if arg.startswith(form + "="):
                return name, arg[len(form) + 1:]
    if arg.startswith("-o") and not arg.startswith("--"):  # -ojson, as pflag reads it
        return "output", arg[2:]
    return None


def parse_connections_args(argv: Sequence[str]) -> ConnectionsRequest:
    """`FILE... [--cluster FILE] [-o FORMAT] [observe's filter flags]`. `--cluster` and
    `-o/--output` are connections' own (so hubble's `--cluster NAME` filter is spelt
    `--flow-cluster NAME` here); everything else goes to `parse_observe_args`, unchanged in
    order, so `--not` negates the flag after it as in hubble. Raises ValueError."""
    rest: list[str] = []
    cluster: str | None = None
    output = "text"
    args = iter(argv)
    for arg in args:
        if arg == "--":
            rest += [arg, *args]
            break
        own = _own_flag(arg)
        if own is None:
            name = arg[2:].partition("=")[0] if arg.startswith("--") else ""
            if name in _REJECTED:
                raise ValueError(f"--{name} is not supported by connections: {_REJECTED[name]}")
            rest.append(arg)
            continue
        flag, value = own
        if rest and rest[-1] == "--not" and flag != "flow-cluster":
            hint = " (hubble's cluster filter is --flow-cluster here)" if flag == "cluster" else ""
            raise ValueError(f"--not must be followed by a filter flag, got --{flag}{hint}")
        if value is None:
            value = next(args, None)
            if value is None:
                raise ValueError(f"flag needs an argument: --{flag}")
        if flag == "flow-cluster":
            rest += ["--cluster", value]
        elif flag == "cluster":
            if cluster is not None:
                raise ValueError("--cluster given more than once")
            cluster = value
        else:
            if value not in FORMATS:
                raise ValueError(f"invalid output format: {value!r} (want one of {', '.join(FORMATS)})")
            output = value
    req = parse_observe_args(rest)
    return ConnectionsRequest(req.paths, req.options, output, cluster)


def _check_readable(paths: Sequence[str]) -> None:
    # Before the snapshot is built (seconds for a big cluster), not after.
    for p in paths:
        if p != "-":
            with open(p, "rb"):
                pass


def run_connections_cli(
    argv: Sequence[str], out: TextIO, err: TextIO, now: datetime | int | float | None = None
) -> int:
    """`ciliary connections` end to end: the report on `out`, warnings (`file:line: reason`
    per bad line), progress and errors on `err`. Returns 0, or 1 on bad arguments, an
    unreadable file, a cluster snapshot that does not load, or a bad line under --strict
    (nothing is written to `out` then). With no FILE it reads stdin."""

    def warn(bad: BadLine) -> None:
        err.write(f"warning: {bad}\n")

    def progress(n: int) -> None:
        err.write(f"... {n} flows\n")
        err.flush()

    try:
        req = parse_connections_args(argv)
        keep = flow_selector(req.options, now)
        paths = req.paths or ["-"]
        _check_readable(paths)
        resolver = PeerResolver(snapshot_engine(req.cluster) if req.cluster else None)
        report = connections(paths, resolver, keep=keep, strict=req.options.strict,
                             on_bad=warn, progress=progress)
    except LoadError as exc:
        for issue in exc.issues:
            err.write(f"error: {issue}\n")
        return 1
    except FlowReadError as exc:
        err.write(f"error: {exc}\n")
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        err.write(f"error: cannot read {where}{exc.strerror or exc}\n")
        return 1
    except (ValueError, EOFError) as exc:
        err.write(f"error: {exc}\n")
        return 1
    render(report, req.output, out)
    if report.stats.bad:
        err.write(f"warning: skipped {report.stats.bad} bad line(s)\n")
    return 0
