"""Reading and writing Hubble flow files (JSON lines), streaming.

Accepted, line by line (one JSON object per line):

* `hubble observe -o json` / `-o jsonpb` and the flow exporter's files: the envelope
  `{"flow": {...}, "node_name": "...", "time": "..."}` (GetFlowsResponse / ExportEvent);
* bare Flow objects (`HUBBLE_COMPAT=legacy-json-output`, other tools);
* other spellings protojson reads (lowerCamel names, enum numbers) and the Go-struct JSON of
  pre-0.6 Hubble; these are canonicalized on read (see `schema.canonicalize`);
* gzip-compressed files (`*.gz`, as the exporter's rotation writes them) and `-` for stdin.

Lines that are events but not flows (`node_status`, `lost_events`, `agent_event`,
`debug_event`, or an empty response) are skipped and counted. A line that is not a JSON object,
or whose `flow` is not an object, is bad: it is reported with file and line number, skipped and
counted, or with `strict=True` raises `FlowReadError` naming `file:line`. With `validate=True`
(implied by `strict`) every flow's field types are checked too, as protojson would.

Writing produces the same shape, serialised like Hubble (Go's `json.Encoder` over protojson,
which escapes `&`, `<`, `>`, U+2028 and U+2029): a file read and written back is identical.

Contracts:
* Reading streams one line at a time, in file order. A reader yields the decoded line
  itself when it is canonical, else a canonicalized copy, and keeps no reference to it: the
  consumer owns the dict, and `Flow` wraps it without copying.
* `ReadStats` is updated as lines are consumed; its totals are final once the generator
  ends (exhausted or closed).
"""

from __future__ import annotations

import gzip
import itertools
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeVar, cast

import orjson

from ciliary.flows import schema
from ciliary.flows.model import Flow

JSON = dict[str, Any]
PathLike = str | Path

STDIN: Final = "-"
MAX_REPORTED_BAD_LINES: Final = 1000


class FlowReadError(ValueError):
    """A bad line in strict mode. `str(err)` is `file:line: reason`."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BadLine:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(slots=True)
class ReadStats:
    """Counts of one read (shared across files when passed to several reads)."""

    lines: int = 0  # non-blank lines (flows + non_flow + bad)
    blank: int = 0
    flows: int = 0
    non_flow: int = 0  # skipped events that are not flows
    non_flow_kinds: dict[str, int] = field(default_factory=dict)
    bad: int = 0
    # The first MAX_REPORTED_BAD_LINES bad lines (all are counted in `bad`).
    bad_lines: list[BadLine] = field(default_factory=list)

    def add_bad(self, bad: BadLine) -> None:
        self.bad += 1
        if len(self.bad_lines) < MAX_REPORTED_BAD_LINES:
            self.bad_lines.append(bad)


OnBadLine = Callable[[BadLine], None]
T = TypeVar("T")

_loads = orjson.loads
_BOM: Final = b"\xef\xbb\xbf"


def display_name(source: PathLike | IO[bytes]) -> str:
    if isinstance(source, Path):
        return str(source)
    if isinstance(source, str):
        return "<stdin>" if source == STDIN else source
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


def _open(source: PathLike) -> IO[bytes]:
    if isinstance(source, str) and source == STDIN:
        return sys.stdin.buffer
    path = Path(source)
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb", buffering=1 << 20)


def _event_kind(env: JSON) -> str | None:
    """The kind of a non-flow envelope, or None if `env` is a bare flow."""
    for key in schema.ENVELOPE_EVENT_KEYS:
        if key in env:
            return key if "_" in key else _snake(key)
    if not schema.BARE_FLOW_MARKERS.isdisjoint(env):
        return None
    return "empty" if set(env) <= {"node_name", "time", "nodeName", "flow"} else "unknown"


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _triple(flow: JSON, env: JSON | None, lineno: int) -> tuple[JSON, JSON | None, int]:
    return flow, env, lineno


def iter_raw(
    source: PathLike | IO[bytes],
    stats: ReadStats,
    *,
    strict: bool = False,
    validate: bool = False,
    on_bad: OnBadLine | None = None,
    name: str | None = None,
) -> Generator[tuple[JSON, JSON | None, int], None, None]:
    """Stream `(flow, envelope_or_None, line_number)` of canonical flow dicts.

    The low-level reader behind `read_flows`; `observe` uses it to avoid wrapping flows that
    its filters reject. `stats` is updated as lines are consumed.
    """
    return map_raw(source, stats, _triple, strict=strict, validate=validate, on_bad=on_bad, name=name)


def map_raw(
    source: PathLike | IO[bytes],
    stats: ReadStats,
    fn: Callable[[JSON, JSON | None, int], T],
    *,
    strict: bool = False,
    validate: bool = False,
    on_bad: OnBadLine | None = None,
    name: str | None = None,
) -> Generator[T, None, None]:
    """`iter_raw` with `fn(flow, envelope_or_None, line_number)` applied to every flow in
    the reading loop itself (a streaming consumer saves a generator level per flow)."""
    path = name if name is not None else display_name(source)
    validate = validate or strict
    # Hot counters live in locals and are written back when the generator ends.
    lineno = flows = 0
    blank0 = stats.blank
    with numbered_lines(source) as lines:
        try:
            for lineno, line in lines:
                got = read_flow(line, lineno, path, stats, strict, validate, on_bad)
                if got is not None:
                    flows += 1
                    yield fn(got[0], got[1], lineno)
        finally:
            stats.flows += flows
            stats.lines += lineno - (stats.blank - blank0)


def read_flow(
    line: bytes, lineno: int, path: str, stats: ReadStats, strict: bool, validate: bool,
    on_bad: OnBadLine | None,
) -> tuple[JSON, JSON | None] | None:
    """One line by the full reader: (canonical flow, envelope or None), or None when the line
    is blank, not a flow (counted in `stats`) or bad (reported)."""
    try:
        obj = _loads(line)
    except orjson.JSONDecodeError:
        obj = _INVALID
    if type(obj) is dict and not validate:
        flow = obj.get("flow")
        # Canonical protojson always has event_type, a string verdict and time.
        if (
            type(flow) is dict and "event_type" in flow
            and type(flow.get("verdict", "")) is str and type(flow.get("time", "")) is str
        ):
            return flow, obj
    return _full_line(obj, line, lineno, path, stats, strict, validate, on_bad)


_INVALID: Final = object()  # a line orjson could not decode


@contextmanager
def numbered_lines(source: PathLike | IO[bytes]) -> Iterator[Iterator[tuple[int, bytes]]]:
    """(line number, line) of a file, stdin or stream; a leading BOM is dropped."""
    if isinstance(source, str | Path):
        own, stream = True, _open(source)
    else:
        own, stream = False, source
    try:
        first = stream.readline()
        if first.startswith(_BOM):
            first = first[3:]
        yield enumerate(itertools.chain((first,), stream) if first else (), 1)
    finally:
        if own and stream is not sys.stdin.buffer:
            stream.close()


def _full_line(
    obj: Any, line: bytes, lineno: int, path: str, stats: ReadStats, strict: bool, validate: bool,
    on_bad: OnBadLine | None,
) -> tuple[JSON, JSON | None] | None:
    """A line off the fast path: (canonical flow, envelope or None), or None when the line is
    blank, not a flow (counted) or bad (reported)."""
    if obj is _INVALID:
        if not line.strip():
            stats.blank += 1
            return None
        try:
            _loads(line)
        except orjson.JSONDecodeError as exc:
            _bad(stats, path, lineno, f"invalid JSON: {exc}", strict, on_bad)
        return None
    if type(obj) is not dict:
        _bad(stats, path, lineno, "not a JSON object", strict, on_bad)
        return None
    flow = obj.get("flow")
    env: JSON | None = obj
    if flow is None:
        kind = _event_kind(obj)
        if kind is not None:
            stats.non_flow += 1
            stats.non_flow_kinds[kind] = stats.non_flow_kinds.get(kind, 0) + 1
            return None
        flow, env = obj, None
    elif type(flow) is not dict:
        _bad(stats, path, lineno, "`flow` is not a JSON object", strict, on_bad)
        return None
    if (
        "event_type" not in flow
        or type(flow.get("verdict", "")) is not str
        or type(flow.get("time", "")) is not str
    ) and (schema.needs_canonicalization(flow) or (env is not None and "nodeName" in env)):
        if env is None:
            flow = schema.canonicalize(flow, "Flow")
        else:
            env = schema.canonicalize(env, "Envelope")
            flow = env["flow"]
    if validate:
        errors = schema.validate(flow, "Flow")
        if errors:
            _bad(stats, path, lineno, "; ".join(errors[:3]), strict, on_bad)
            return None
    return flow, env


def _bad(
    stats: ReadStats,
    path: str,
    lineno: int,
    reason: str,
    strict: bool,
    on_bad: OnBadLine | None,
) -> None:
    if strict:
        raise FlowReadError(path, lineno, reason)
    bad = BadLine(path, lineno, reason)
    stats.add_bad(bad)
    if on_bad is not None:
        on_bad(bad)


def read_flows(
    sources: PathLike | IO[bytes] | Iterable[PathLike | IO[bytes]],
    *,
    strict: bool = False,
    validate: bool = False,
    stats: ReadStats | None = None,
    on_bad: OnBadLine | None = None,
) -> Iterator[Flow]:
    """Stream the flows of one or more files (`-` is stdin), in file order.

    Pass a `ReadStats` to get the counts (flows, skipped non-flow events, bad lines).
    """
    st = stats if stats is not None else ReadStats()
    items: Iterable[PathLike | IO[bytes]]
    if isinstance(sources, str | Path) or hasattr(sources, "read"):
        items = [cast(PathLike | IO[bytes], sources)]
    else:
        items = sources
    for src in items:
        for flow, env, _ in iter_raw(src, st, strict=strict, validate=validate, on_bad=on_bad):
            yield Flow(flow, env)


def parse_flow_line(line: bytes | str) -> Flow:
    """One JSON line (envelope or bare flow) as a Flow. Raises ValueError if it is not a flow."""
    try:
        obj = _loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if type(obj) is not dict:
        raise ValueError("not a JSON object")
    if obj.get("flow") is None and _event_kind(obj) is not None:
        raise ValueError("not a flow")
    if "flow" in obj and type(obj["flow"]) is not dict:
        raise ValueError("`flow` is not a JSON object")
    return Flow.from_dict(obj)


# ---- writing ---------------------------------------------------------------------------------

_dumps = orjson.dumps
_GO_ESCAPES: Final = (
    (b"&", b"\\u0026"),
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def go_json(obj: Any) -> bytes:
    """Compact JSON as Go's `json.Encoder` writes it (HTML-safe escaping), without newline."""
    out = _dumps(obj)
    if b"&" in out or b"<" in out or b">" in out or b"\xe2\x80" in out:
        for raw, esc in _GO_ESCAPES:
            out = out.replace(raw, esc)
    return out


Shape = Literal["auto", "envelope", "bare"]


def flow_line(flow: Flow, shape: Shape = "auto") -> bytes:
    """The JSON line of `flow` (with trailing newline).

    `auto` keeps the shape it was read in (envelope or bare); `envelope` always writes the
    `hubble observe -o json` envelope; `bare` writes the Flow object alone.
    """
    if shape == "bare" or (shape == "auto" and not flow.has_envelope):
        return go_json(flow.raw) + b"\n"
    return go_json(flow.envelope) + b"\n"


class FlowWriter:
    """Writes flows as JSON lines to a path (`-` for stdout, `*.gz` compressed) or stream."""

    def __init__(self, dest: PathLike | IO[bytes], shape: Shape = "auto") -> None:
        self._shape: Shape = shape
        self._own = True
        self._out: IO[bytes]
        if not isinstance(dest, str | Path):
            self._out, self._own = dest, False
        elif isinstance(dest, str) and dest == STDIN:
            self._out, self._own = sys.stdout.buffer, False
        elif Path(dest).suffix == ".gz":
            self._out = cast(IO[bytes], gzip.open(Path(dest), "wb"))  # noqa: SIM115
        else:
            self._out = Path(dest).open("wb")  # noqa: SIM115
        self.count = 0

    def write(self, flow: Flow) -> None:
        self._out.write(flow_line(flow, self._shape))
        self.count += 1

    def close(self) -> None:
        if self._own:
            self._out.close()
        else:
            self._out.flush()

    def __enter__(self) -> FlowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_flows(flows: Iterable[Flow], dest: PathLike | IO[bytes], shape: Shape = "auto") -> int:
    """Write `flows` (streaming) to `dest`; returns how many were written."""
    with FlowWriter(dest, shape) as w:
        for f in flows:
            w.write(f)
        return w.count
