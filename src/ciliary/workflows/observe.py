"""`ciliary observe FILE... [filter flags] [-o FORMAT]`: `hubble observe --input-file`, offline.

Reads Hubble flow files (JSON lines; `-` is stdin) as a stream, keeps the flows that pass the
time window and the filters, and renders them in one of hubble's output formats:

    run = observe(["flows.jsonl"], ObserveOptions(filters=FilterFlags(namespace=["shop"])))
    for line in run:          # output lines, without newline
        print(line)
    run.counts                # flows read, matched, non-flow lines skipped, bad lines

Semantics follow hubble's IOReaderObserver: `--since/--until` compare the response time (the
envelope's `time`, else the flow's; a line without one counts as the Unix epoch), then the
allow/deny filters apply, then `--first N` (stop after N) or `--last N` (keep the last N;
they are printed at the end). Without `--first/--last` every matching flow is printed, as
hubble does for `--input-file`.

With `--follow` (`-f`; one FILE) observe then keeps reading the lines appended to the file,
`tail -F` style, and prints those that match as they come, until `stop` is set:

    stop = threading.Event()
    for line in observe(["flows.jsonl"], ObserveOptions(follow=True, last=5), stop=stop):
        print(line, flush=True)   # another thread (or a signal handler) calls stop.set()

The file is polled (every `poll_interval`, 0.2 s), a partial last line is held until its
newline arrives, and when the file is replaced by a new one of the same name (the flow
exporter's and the agent's rotation rename it to `FILE.1`) the rest of the old file is read
and the new one followed from its start; a file truncated in place is read again from its
start. `--last N` applies to what the file holds when observe starts; `--until` is ignored,
as hubble ignores it with `--follow`; `--first` and `-o table` are refused, as hubble does.

`parse_observe_args(argv)` parses hubble-style arguments, including the order-sensitive
`--not` (it negates the next filter flag only), for a CLI to hand over unparsed arguments.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from ciliary.flows.codec import (
    STDIN,
    BadLine,
    FlowReadError,
    OnBadLine,
    ReadStats,
    display_name,
    iter_raw,
    read_flow,
)
from ciliary.flows.filter import FilterFlags, build_flow_filters
from ciliary.flows.flowfilter import FilterError, FlowFilter
from ciliary.flows.gotime import NS, TIME_FORMAT_NAMES, parse_rfc3339_ns, parse_time_arg
from ciliary.flows.matcher import FlowMatcher
from ciliary.flows.printer import OUTPUT_FORMATS, Printer, PrinterOptions

JSON = dict[str, Any]
LAST_MAX: Final = 1_000_000
POLL_INTERVAL: Final = 0.2  # seconds between polls of a followed file
# What stops `observe --follow`: an Event (waits wake up when it is set) or a predicate.
StopSignal = threading.Event | Callable[[], bool]

__all__ = [
    "ObserveCounts",
    "ObserveOptions",
    "ObserveRequest",
    "ObserveRun",
    "StopSignal",
    "flow_selector",
    "observe",
    "parse_observe_args",
    "raw_filters",
    "raw_filters_yaml",
    "run_observe_cli",
]


@dataclass
class ObserveOptions:
    """Everything `hubble observe` takes besides the input files and the output format."""

    filters: FilterFlags = field(default_factory=FilterFlags)
    # Flags given after `--not` (hubble's denylist tracker).
    exclude: FilterFlags = field(default_factory=FilterFlags)
    allowlist: list[str] = field(default_factory=list)  # raw FlowFilter JSON
    denylist: list[str] = field(default_factory=list)
    since: str | None = None  # Go duration before `now`, or absolute time
    until: str | None = None
    first: int = 0
    last: int = 0
    all: bool = False
    follow: bool = False  # then keep reading the (one) file as it grows: `observe(stop=...)`
    print_node_name: bool = False
    time_format: str = "StampMilli"
    ip_translation: bool = True  # --numeric sets False
    strict: bool = False  # a bad line raises FlowReadError (file:line)
    validate: bool = False  # type-check every flow (implied by strict)


@dataclass
class ObserveCounts:
    files: int = 0
    flows_read: int = 0
    matched: int = 0  # passed the time window and the filters
    printed: int = 0  # flows rendered (differs from matched with --first/--last)
    outside_window: int = 0  # dropped by --since/--until
    skipped_non_flow: int = 0
    non_flow_kinds: dict[str, int] = field(default_factory=dict)
    bad_lines: int = 0
    bad_line_reports: list[BadLine] = field(default_factory=list)  # the first 1000


class ObserveRun(Iterator[str]):
    """The output lines of one observe; `counts` is complete once iteration has finished."""

    def __init__(self, gen: Iterator[str], counts: ObserveCounts) -> None:
        self._gen = gen
        self.counts = counts

    def __iter__(self) -> ObserveRun:
        return self

    def __next__(self) -> str:
        return next(self._gen)


def _now_ns(now: datetime | int | float | None) -> int:
    if now is None:
        return time.time_ns()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("`now` must be timezone-aware")
        return int(now.timestamp()) * NS + now.microsecond * 1000
    if isinstance(now, float):
        return int(now * NS)
    return int(now)


def _matcher(options: ObserveOptions) -> FlowMatcher:
    allow = build_flow_filters(options.filters)
    deny = build_flow_filters(options.exclude)
    for text in options.allowlist:
        try:
            allow.extend(FlowFilter.from_json(text))
        except FilterError as exc:
            raise FilterError(f"invalid --allowlist flag: {exc}") from None
    for text in options.denylist:
        try:
            deny.extend(FlowFilter.from_json(text))
        except FilterError as exc:
            raise FilterError(f"invalid --denylist flag: {exc}") from None
    return FlowMatcher(allow, deny)


def raw_filters(options: ObserveOptions) -> tuple[list[FlowFilter], list[FlowFilter]]:
    """(allowlist, denylist) FlowFilters, as `hubble observe --print-raw-filters` shows them."""
    m = _matcher(options)
    return m.allow, m.deny


def raw_filters_yaml(options: ObserveOptions) -> str:
    """What `hubble observe --print-raw-filters` prints (YAML of FlowFilter JSON strings)."""
    allow, deny = raw_filters(options)
    out: list[str] = []
    for key, filters in (("allowlist", allow), ("denylist", deny)):
        if filters:
            out.append(f"{key}:")
            out += ["    - '" + f.to_json().replace("'", "''") + "'" for f in filters]
    return "".join(line + "\n" for line in out) if out else "{}\n"


def _check_selection(options: ObserveOptions) -> None:
    if options.first < 0 or options.last < 0:
        raise ValueError("--first and --last must not be negative")
    if options.first and options.last:
        raise ValueError("cannot set both --first and --last")
    if options.first and options.all:
        raise ValueError("cannot set both --first and --all")
    if options.last and options.all:
        raise ValueError("cannot set both --last and --all")
    if options.last > LAST_MAX:
        raise ValueError(f"--last must be <= 1_000_000, got {options.last}")


_FLOW_ERRORS: Final = (TypeError, ValueError, AttributeError, KeyError, IndexError)


def flow_selector(
    options: ObserveOptions, now: datetime | int | float | None = None
) -> Callable[[JSON], bool] | None:
    """observe's `--since/--until` window and filters (flags, `--not` flags, `--allowlist`,
    `--denylist`) as one predicate on a flow dict, for commands that read flows as observe
    does without printing them (`connections`, `generate`); None when nothing filters.

    `--first/--last` and the output options are not applied. The window compares the flow's
    own `time` (hubble compares the envelope's, which its files write equal to it; a flow
    without one counts as the Unix epoch). Bad options raise FilterError/ValueError as in
    `observe`; the predicate raises one of TypeError, ValueError, AttributeError, KeyError,
    IndexError on a flow it cannot read, which observe reports as a bad line. `--follow` is
    refused (ValueError): these commands read the files to their end."""
    if options.follow:
        raise ValueError("--follow is only for observe: this command reads the files to their end")
    matcher = _matcher(options)
    pred: Callable[[JSON], bool] | None = None if matcher.is_trivial else matcher.predicate
    now_ns = _now_ns(now)
    since = parse_time_arg(options.since, now_ns) if options.since else None
    until = parse_time_arg(options.until, now_ns) if options.until else None
    if since is None and until is None:
        return pred

    def selected(f: JSON) -> bool:
        t = _response_time_ns(f, None)
        if (since is not None and t < since) or (until is not None and t > until):
            return False
        return pred is None or pred(f)

    return selected


def observe(
    paths: Sequence[str | Path],
    options: ObserveOptions | None = None,
    output: str = "compact",
    now: datetime | int | float | None = None,
    *,
    on_bad: OnBadLine | None = None,
    stop: StopSignal | None = None,
    on_idle: Callable[[], None] | None = None,
    poll_interval: float = POLL_INTERVAL,
) -> ObserveRun:
    """Filter and render the flows of `paths` (`-` = stdin) like `hubble observe`.

    Options are checked here (raising FilterError/ValueError with hubble's messages); the
    files are read lazily while the returned `ObserveRun` is iterated. `now` (aware datetime,
    Unix seconds as float, or nanoseconds as int; default: the clock) anchors relative
    `--since/--until`. `on_bad` is called for each bad line as it is met (lines are also
    counted and the first 1000 kept in `counts.bad_line_reports`); with `options.strict` the
    first bad line raises `FlowReadError` during iteration instead.

    With `options.follow`, `paths` is one file, followed as it grows (module docstring)
    until `stop` is set (an Event, or a predicate polled at least every `poll_interval`
    seconds; without one, until the iteration is abandoned). Iteration blocks while the file
    does not grow; `on_idle` is called each time everything there is has been yielded (a
    CLI flushes its output there). `counts` is brought up to date whenever it idles.
    """
    opts = options if options is not None else ObserveOptions()
    if output not in OUTPUT_FORMATS:
        raise ValueError(f"invalid output format: {output}")
    _check_selection(opts)
    matcher = _matcher(opts)
    now_ns = _now_ns(now)
    since = parse_time_arg(opts.since, now_ns) if opts.since else None
    until = parse_time_arg(opts.until, now_ns) if opts.until else None
    printer = Printer(
        output,
        PrinterOptions(
            print_node_name=opts.print_node_name,
            time_format=opts.time_format,
            ip_translation=opts.ip_translation,
        ),
    )
    counts = ObserveCounts()
    if opts.follow:
        path = _check_follow(paths, opts, output)
        stopped, wait = _stop_fns(stop)
        follow = _Follow(stopped, wait, min(max(poll_interval, 0.001), POLL_INTERVAL), on_idle)
        gen = _run_follow(path, opts, matcher, printer, since, counts, on_bad, follow)
    else:
        gen = _run(list(paths), opts, matcher, printer, since, until, counts, on_bad)
    return ObserveRun(gen, counts)


def _response_time_ns(f: JSON, env: JSON | None) -> int:
    t = env.get("time") if env is not None else None
    if t is None:
        t = f.get("time")
    if t is None:
        return 0
    if not isinstance(t, str):
        raise ValueError(f"invalid timestamp {t!r}")
    ns = parse_rfc3339_ns(t)
    if ns is None:
        raise ValueError(f"invalid timestamp {t!r}")
    return ns


class _Tally:
    """The read statistics of one run plus the flows that failed after being read (bad in
    processing), mirrored into the public `ObserveCounts` by `sync`."""

    def __init__(self, counts: ObserveCounts, strict: bool, on_bad: OnBadLine | None) -> None:
        self.stats = ReadStats()
        self.counts = counts
        self.strict = strict
        self.on_bad = on_bad
        self.proc_bad = 0  # read as flows by the codec, so subtracted from flows_read

    def bad(self, path: str, lineno: int, exc: Exception) -> None:
        self.proc_bad += 1
        reason = f"invalid flow: {exc}"
        if self.strict:
            raise FlowReadError(path, lineno, reason) from exc
        b = BadLine(path, lineno, reason)
        self.stats.add_bad(b)
        if self.on_bad is not None:
            self.on_bad(b)

    def sync(self) -> None:
        stats, counts = self.stats, self.counts
        counts.flows_read = stats.flows - self.proc_bad
        counts.skipped_non_flow = stats.non_flow
        counts.non_flow_kinds = dict(stats.non_flow_kinds)
        counts.bad_lines = stats.bad
        counts.bad_line_reports = list(stats.bad_lines)


_Kept = tuple[JSON, JSON | None, str, int]  # flow, envelope, file name, line number


def _replay_last(
    last: deque[_Kept], fmt: Callable[[JSON, JSON | None], list[str]], tally: _Tally
) -> Iterator[str]:
    # `--last N`: the kept flows are rendered only now; a render failure unmatches the flow.
    counts = tally.counts
    for f, env, name, lineno in last:
        try:
            lines = fmt(f, env)
        except _FLOW_ERRORS as exc:
            counts.matched -= 1
            tally.bad(name, lineno, exc)
            continue
        counts.printed += 1
        yield from lines


def _run(
    paths: list[str | Path],
    opts: ObserveOptions,
    matcher: FlowMatcher,
    printer: Printer,
    since: int | None,
    until: int | None,
    counts: ObserveCounts,
    on_bad: OnBadLine | None,
) -> Iterator[str]:
    # The per-flow loop is the hot path: everything it touches is bound to a local first.
    tally = _Tally(counts, opts.strict, on_bad)
    stats = tally.stats
    strict = opts.strict
    pred: Callable[[JSON], bool] | None = None if matcher.is_trivial else matcher.predicate
    window = since is not None or until is not None
    first = opts.first
    last: deque[_Kept] | None = deque(maxlen=opts.last) if opts.last else None
    fmt = printer.format
    try:
        for path in paths:
            counts.files += 1
            name = display_name(path) if not isinstance(path, Path) else str(path)
            reader = iter_raw(
                path, stats, strict=strict, validate=opts.validate, on_bad=on_bad, name=name
            )
            for f, env, lineno in reader:
                try:
                    if window:
                        t = _response_time_ns(f, env)
                        if (since is not None and t < since) or (until is not None and t > until):
                            counts.outside_window += 1
                            continue
                    if pred is not None and not pred(f):
                        continue
                    if last is not None:
                        counts.matched += 1
                        last.append((f, env, name, lineno))
                        continue
                    lines = fmt(f, env)
                except _FLOW_ERRORS as exc:
                    tally.bad(name, lineno, exc)
                    continue
                counts.matched += 1
                counts.printed += 1
                yield from lines
                if first and counts.printed >= first:
                    break
            reader.close()
            if first and counts.printed >= first:
                break
        if last is not None:
            yield from _replay_last(last, fmt, tally)
        yield from printer.finish()
    finally:
        tally.sync()


# ---- --follow ----------------------------------------------------------------------------------


def _check_follow(paths: Sequence[str | Path], opts: ObserveOptions, output: str) -> Path:
    """The one file `--follow` reads; ValueError (hubble's words where it has them) if the
    request cannot be followed."""
    if opts.first:
        raise ValueError("cannot set both --first and --follow")
    if output in ("table", "tab"):
        raise ValueError("table output format is not compatible with follow mode")
    if len(paths) != 1:
        raise ValueError(f"--follow follows one FILE, got {len(paths)}")
    path = paths[0]
    if isinstance(path, str) and path == STDIN:
        raise ValueError("--follow needs a FILE: stdin is read as it comes without it")
    if Path(path).suffix == ".gz":
        raise ValueError(f"--follow cannot follow a compressed file: {path}")
    return Path(path)


def _stop_fns(stop: StopSignal | None) -> tuple[Callable[[], bool], Callable[[float], object]]:
    """(is it stopped?, wait up to N seconds) of a stop signal."""
    if stop is None:
        return (lambda: False), time.sleep
    if isinstance(stop, threading.Event):
        return stop.is_set, stop.wait
    return stop, time.sleep


@dataclass(frozen=True)
class _Follow:
    stopped: Callable[[], bool]
    wait: Callable[[float], object]
    poll: float
    on_idle: Callable[[], None] | None


_CHUNK: Final = 1 << 16
_BOM: Final = b"\xef\xbb\xbf"


def _file_id(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _tail_lines(path: Path, follow: _Follow) -> Generator[tuple[int, bytes] | None, None, None]:
    """(line number, line without its newline) of every complete line of `path`, then of the
    lines appended to it, across rotations; None each time it has caught up with the file
    (before it waits). Ends when `follow.stopped()` says so at such a point. A leading BOM is
    dropped; line numbers start again at 1 in a new file."""
    f = path.open("rb", buffering=0)
    try:
        ident = _file_id(os.fstat(f.fileno()))
        pending, lineno, pos = b"", 0, 0
        while True:
            data = f.read(_CHUNK)
            if data:
                pos += len(data)
                *complete, pending = (pending + data).split(b"\n")
                for line in complete:
                    lineno += 1
                    yield lineno, line.removeprefix(_BOM) if lineno == 1 else line
                continue
            yield None
            if follow.stopped():
                return
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None  # mid-rotation: the new file is not there yet
            if st is not None and _file_id(st) != ident:
                # Replaced: finish the old file (a last line without newline included).
                while data := f.read(_CHUNK):
                    pending += data
                *complete, pending = pending.split(b"\n")
                for line in [*complete, pending] if pending else complete:
                    lineno += 1
                    yield lineno, line.removeprefix(_BOM) if lineno == 1 else line
                f.close()
                f = path.open("rb", buffering=0)
                ident = _file_id(os.fstat(f.fileno()))
                pending, lineno, pos = b"", 0, 0
            elif st is not None and st.st_size < pos:
                # Truncated in place (copytruncate): read it again from the start.
                f.seek(0)
                pending, lineno, pos = b"", 0, 0
            else:
                follow.wait(follow.poll)
    finally:
        f.close()


def _run_follow(
    path: Path,
    opts: ObserveOptions,
    matcher: FlowMatcher,
    printer: Printer,
    since: int | None,
    counts: ObserveCounts,
    on_bad: OnBadLine | None,
    follow: _Follow,
) -> Iterator[str]:
    tally = _Tally(counts, opts.strict, on_bad)
    stats = tally.stats
    strict, validate = opts.strict, opts.validate
    pred: Callable[[JSON], bool] | None = None if matcher.is_trivial else matcher.predicate
    # `--last N` keeps the last N of what the file holds now; later flows print as they come.
    last: deque[_Kept] | None = deque(maxlen=opts.last) if opts.last else None
    fmt = printer.format
    name = str(path)
    stopped = follow.stopped
    counts.files = 1
    try:
        with contextlib.closing(_tail_lines(path, follow)) as reader:
            for item in reader:
                if stopped():
                    break
                if item is None:
                    if last is not None:
                        yield from _replay_last(last, fmt, tally)
                        last = None
                    tally.sync()
                    if follow.on_idle is not None:
                        follow.on_idle()
                    continue
                lineno, line = item
                if line.strip():
                    stats.lines += 1
                got = read_flow(line, lineno, name, stats, strict, validate, on_bad)
                if got is None:
                    continue
                stats.flows += 1
                f, env = got
                try:
                    if since is not None and _response_time_ns(f, env) < since:
                        counts.outside_window += 1
                        continue
                    if pred is not None and not pred(f):
                        continue
                    if last is not None:
                        counts.matched += 1
                        last.append((f, env, name, lineno))
                        continue
                    lines = fmt(f, env)
                except _FLOW_ERRORS as exc:
                    tally.bad(name, lineno, exc)
                    continue
                counts.matched += 1
                counts.printed += 1
                yield from lines
        yield from printer.finish()
    finally:
        tally.sync()


def run_observe_cli(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    """`ciliary observe FILE... [flags]` end to end: parse hubble-style `argv`, print the
    output lines to `out`, warnings (`file:line: reason` per bad line, then a summary) and
    errors to `err`. Returns the exit code: 0, or 1 on bad arguments, unreadable files or a
    bad line under `--strict`. With no FILE it reads stdin (`-`). With `--follow` it runs
    until SIGINT or SIGTERM (then 0), flushing `out` whenever it waits for the file."""

    def warn(bad: BadLine) -> None:
        err.write(f"warning: {bad}\n")

    stop = threading.Event()
    try:
        req = parse_observe_args(argv)
        if req.print_raw_filters:
            out.write(raw_filters_yaml(req.options))
            return 0
        run = observe(
            req.paths or ["-"],
            req.options,
            req.output,
            on_bad=warn,
            stop=stop,
            on_idle=out.flush,
        )
        with _stopped_by_signals(stop, enabled=req.options.follow):
            write = out.write
            for line in run:
                write(line)
                write("\n")
    except (ValueError, OSError) as exc:
        err.write(f"error: {exc}\n")
        return 1
    c = run.counts
    if c.bad_lines:
        err.write(
            f"warning: skipped {c.bad_lines} bad line(s); {c.flows_read} flows read, "
            f"{c.matched} matched\n"
        )
    return 0


@contextlib.contextmanager
def _stopped_by_signals(stop: threading.Event, *, enabled: bool) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` instead of ending the process, while inside (only in
    the main thread, where Python runs signal handlers, and only when `enabled`)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---- hubble-style argument parsing -------------------------------------------------------------


@dataclass
class ObserveRequest:
    paths: list[str]
    options: ObserveOptions
    output: str = "compact"
    print_raw_filters: bool = False


_SHORT: Final[dict[str, str]] = {
    "-f": "follow",
    "-n": "namespace",
    "-l": "label",
    "-t": "type",
    "-4": "ipv4",
    "-6": "ipv6",
    "-o": "output",
    "-A": "all-namespaces",
}
_FILTER_BOOL: Final = frozenset({"ipv4", "ipv6", "encrypted", "unencrypted"})
_FILTER_VALUE: Final = frozenset(
    f.name.replace("_", "-")
    for f in fields(FilterFlags)
    if f.name.replace("_", "-") not in _FILTER_BOOL
)
_OPTION_VALUE: Final = frozenset(
    {"since", "until", "first", "last", "output", "time-format", "allowlist", "denylist"}
)
# Boolean option flags that set the ObserveOptions field of that name; `--numeric` (the
# negation of --ip-translation) and `--print-raw-filters` (a request field) are set by hand.
_SWITCH_FIELD: Final = {
    "all": "all",
    "follow": "follow",
    "print-node-name": "print_node_name",
    "ip-translation": "ip_translation",
    "strict": "strict",
    "validate": "validate",
}
_OPTION_BOOL: Final = frozenset({*_SWITCH_FIELD, "numeric", "print-raw-filters"})
_UNSUPPORTED: Final = frozenset(
    {"all-namespaces", "from-all-namespaces", "to-all-namespaces", "field-mask"}
)


def _to_bool(flag: str, text: str | None) -> bool:
    if text is None:
        return True
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise ValueError(f"invalid argument {text!r} for --{flag}")


def _to_int(flag: str, text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"invalid argument {text!r} for --{flag}")
    return int(text)


def _flag(arg: str) -> tuple[str, str | None]:
    """(long name, inline value or None) of `--name[=v]` or a short form `-n[=]v`."""
    inline: str | None = None
    if arg.startswith("--"):
        name, eq, value = arg[2:].partition("=")
        inline = value if eq else None
    elif arg[:2] in _SHORT:
        name = _SHORT[arg[:2]]
        if len(arg) > 2:
            inline = arg[2:].removeprefix("=")
    else:
        raise ValueError(f"unknown shorthand flag: {arg!r}")
    if name in _UNSUPPORTED:
        raise ValueError(f"--{name} is not supported")
    return name, inline


def _value(args: Iterator[str], flag: str, inline: str | None) -> str:
    # The inline value, else the next argument (consumed from the shared iterator).
    if inline is not None:
        return inline
    value = next(args, None)
    if value is None:
        raise ValueError(f"flag needs an argument: --{flag}")
    return value


def _add_filter(target: FilterFlags, name: str, inline: str | None, args: Iterator[str]) -> None:
    if name in _FILTER_BOOL:
        # hubble's --ipv4/--ipv6 ignore a value; only --(un)encrypted parse one.
        on = _to_bool(name, inline) if name in ("encrypted", "unencrypted") else True
        target.add(name, on)
    else:
        target.add(name, _value(args, name, inline))


def _set_option(req: ObserveRequest, name: str, value: str) -> None:
    """Apply one of the `_OPTION_VALUE` flags."""
    opts = req.options
    if name == "since":
        opts.since = value
    elif name == "until":
        opts.until = value
    elif name == "first":
        opts.first = _to_int(name, value)
    elif name == "last":
        opts.last = _to_int(name, value)
    elif name == "output":
        if value not in OUTPUT_FORMATS and value != "JSON":
            raise ValueError(f"invalid output format: {value}")
        req.output = "json" if value == "JSON" else value
    elif name == "time-format":
        opts.time_format = value
    elif name == "allowlist":
        opts.allowlist.append(value)
    elif name == "denylist":
        opts.denylist.append(value)


def _set_switch(req: ObserveRequest, name: str, on: bool) -> None:
    """Apply one of the `_OPTION_BOOL` flags."""
    if name == "print-raw-filters":
        req.print_raw_filters = on
    elif name == "numeric":
        req.options.ip_translation = not on
    else:
        setattr(req.options, _SWITCH_FIELD[name], on)


def parse_observe_args(argv: Sequence[str]) -> ObserveRequest:
    """Parse `FILE... [flags]` the way `hubble observe` parses its flags.

    `--not` puts the next filter flag (only that one) into the denylist. Accepts
    `--flag value`, `--flag=value`, the short forms `-n -l -t -4 -6 -o`, and `--` to end the
    flags. Raises ValueError (FilterError for filter flags) on bad arguments.
    """
    req = ObserveRequest([], ObserveOptions())
    negate = False
    args = iter(list(argv))  # one cursor: flags that take a value consume the next argument
    for arg in args:
        if arg == "--":
            req.paths.extend(args)
            break
        if arg == "-" or not arg.startswith("-"):
            req.paths.append(arg)
            continue
        name, inline = _flag(arg)
        if name == "not":
            if negate:
                raise FilterError("consecutive --not statements")
            negate = True
        elif name in _FILTER_VALUE or name in _FILTER_BOOL:
            opts = req.options
            _add_filter(opts.exclude if negate else opts.filters, name, inline, args)
            negate = False
        elif negate:
            raise FilterError(f"--not must be followed by a filter flag, got --{name}")
        elif name in _OPTION_VALUE:
            _set_option(req, name, _value(args, name, inline))
        elif name in _OPTION_BOOL:
            _set_switch(req, name, _to_bool(name, inline))
        else:
            raise ValueError(f"unknown flag: --{name}")
    if negate:
        raise FilterError("trailing --not found in the arguments")
    return req


TIME_FORMATS: Final = TIME_FORMAT_NAMES
