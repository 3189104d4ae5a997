"""The observe workflow: time windows, --first/--last, counts, bad lines, stdin, arguments."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from ciliary.flows.codec import FlowReadError
from ciliary.flows.filter import FilterError, FilterFlags
from ciliary.flows.gotime import parse_go_duration, parse_rfc3339_ns, parse_time_arg
from ciliary.workflows.observe import (
    ObserveOptions,
    observe,
    parse_observe_args,
    raw_filters_yaml,
    run_observe_cli,
)

DATA = Path(__file__).parent / "data" / "flows"
SAMPLES = DATA / "hand-written-samples.jsonl"
UUIDS = [orjson.loads(line)["flow"]["uuid"] for line in SAMPLES.read_bytes().splitlines()]
NOW = datetime(2026, 3, 14, 9, 12, 8, tzinfo=UTC)


def run_lines(*args: str, now: datetime = NOW) -> list[int]:
    """Sample line numbers printed by `observe SAMPLES <args> -o json`."""
    req = parse_observe_args([str(SAMPLES), *args, "-o", "json"])
    return [
        UUIDS.index(orjson.loads(x)["flow"]["uuid"]) + 1
        for x in observe(req.paths, req.options, req.output, now=now)
    ]


def test_all_flows_by_default() -> None:
    run = observe([SAMPLES])
    lines = list(run)
    assert lines == (DATA / "hand-written-samples.compact.txt").read_text().splitlines()
    c = run.counts
    assert (c.files, c.flows_read, c.matched, c.printed, c.bad_lines) == (1, 41, 41, 41, 0)


def test_since_until_absolute_and_relative() -> None:
    assert run_lines("--since", "2026-03-14T09:12:07Z") == list(range(29, 42))
    assert run_lines("--until", "2026-03-14T09:12:03.5Z") == list(range(1, 12))
    assert run_lines("--since", "1s") == list(range(29, 42))  # now - 1s = 09:12:07
    assert run_lines("--since", "1m", "--until", "4.5s") == list(range(1, 12))
    assert run_lines("--since", "2026-03-14") == list(range(1, 42))
    assert run_lines("--until", "1h") == []
    assert run_lines("--since", "Sat, 14 Mar 2026 09:12:07 +0000") == list(range(29, 42))
    assert run_lines("--since", "2026-03-14T10:12:07+01:00") == list(range(29, 42))


def test_window_counts_and_now_forms() -> None:
    opts = ObserveOptions(since="1s")
    run = observe([SAMPLES], opts, now=int(NOW.timestamp()) * 1_000_000_000)
    assert len(list(run)) == 13 and run.counts.outside_window == 28
    run = observe([SAMPLES], opts, now=NOW.timestamp())
    assert len(list(run)) == 13


def test_first_and_last() -> None:
    assert run_lines("--first", "3") == [1, 2, 3]
    assert run_lines("--last", "2") == [40, 41]
    assert run_lines("--verdict", "DROPPED", "--last", "2") == [28, 36]
    assert run_lines("--verdict", "DROPPED", "--first", "2") == [13, 14]
    run = observe([SAMPLES], ObserveOptions(first=2))
    assert len(list(run)) == 2 and run.counts.flows_read == 2  # reading stops early
    run = observe([SAMPLES], ObserveOptions(last=3, filters=FilterFlags(verdict=["AUDIT"])))
    assert len(list(run)) == 2 and run.counts.matched == 2 and run.counts.flows_read == 41
    table = list(observe([SAMPLES], ObserveOptions(first=2), "table"))
    assert len(table) == 3 and table[0].startswith("TIMESTAMP")


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (ObserveOptions(first=1, last=1), "cannot set both --first and --last"),
        (ObserveOptions(first=1, all=True), "cannot set both --first and --all"),
        (ObserveOptions(last=1, all=True), "cannot set both --last and --all"),
        (ObserveOptions(last=1_000_001), "--last must be <= 1_000_000"),
        (ObserveOptions(since="last tuesday"), "failed to convert"),
        (ObserveOptions(filters=FilterFlags(verdict=["nope"])), "invalid --verdict"),
    ],
)
def test_invalid_options_raise_at_call(opts: ObserveOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        observe([SAMPLES], opts)


def test_bad_lines_counted_reported_and_strict(tmp_path: Path) -> None:
    lines = SAMPLES.read_bytes().splitlines(keepends=True)
    broken = orjson.loads(lines[2])
    broken["flow"]["time"] = 12  # caught while the flow is processed
    path = tmp_path / "f.jsonl"
    path.write_bytes(
        lines[0]
        + b"garbage\n"
        + orjson.dumps(broken)
        + b"\n"
        + b'{"lost_events":{"num_events_lost":"1"}}\n'
        + lines[1]
    )
    seen: list[str] = []
    run = observe([path], on_bad=lambda b: seen.append(str(b)))
    out = list(run)
    c = run.counts
    assert len(out) == 2
    assert (c.flows_read, c.matched, c.bad_lines, c.skipped_non_flow) == (2, 2, 2, 1)
    assert c.non_flow_kinds == {"lost_events": 1}
    assert [(b.line, b.path) for b in c.bad_line_reports] == [(2, str(path)), (3, str(path))]
    assert seen[0].startswith(f"{path}:2: invalid JSON") and seen[1].startswith(
        f"{path}:3: invalid flow"
    )
    with pytest.raises(FlowReadError, match=rf"^{path}:2: "):
        list(observe([path], ObserveOptions(strict=True)))
    # a bad line the filters drop before touching the broken field is not noticed leniently
    run = observe([path], ObserveOptions(filters=FilterFlags(verdict=["DROPPED"])))
    assert list(run) == [] and run.counts.bad_lines == 1


def test_stdin_and_several_files(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeStdin:
        buffer = io.BytesIO(SAMPLES.read_bytes())

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    run = observe(["-", SAMPLES], ObserveOptions(filters=FilterFlags(verdict=["AUDIT"])))
    assert len(list(run)) == 4 and run.counts.files == 2 and run.counts.flows_read == 82


def test_parse_observe_args() -> None:
    req = parse_observe_args(
        [
            "a.jsonl",
            "-n",
            "shop",
            "--not",
            "--verdict=DROPPED",
            "--to-port",
            "80",
            "-4",
            "--since",
            "5m",
            "--last=10",
            "-o",
            "dict",
            "--print-node-name",
            "--numeric",
            "--time-format",
            "RFC3339",
            "--strict",
            "b.jsonl",
            "--",
            "--odd-name",
        ]
    )
    assert req.paths == ["a.jsonl", "b.jsonl", "--odd-name"]
    o = req.options
    assert o.filters.namespace == ["shop"] and o.filters.to_port == ["80"] and o.filters.ipv4
    assert o.exclude.verdict == ["DROPPED"] and o.exclude.namespace == []
    assert (o.since, o.last, o.print_node_name, o.ip_translation, o.time_format, o.strict) == (
        "5m",
        10,
        True,
        False,
        "RFC3339",
        True,
    )
    assert req.output == "dict"
    with pytest.raises(FilterError, match="trailing --not"):
        parse_observe_args(["--not"])
    with pytest.raises(ValueError, match="unknown flag"):
        parse_observe_args(["--bogus"])
    with pytest.raises(ValueError, match="flag needs an argument"):
        parse_observe_args(["--verdict"])
    with pytest.raises(ValueError, match="invalid output format"):
        parse_observe_args(["-o", "yaml"])
    with pytest.raises(ValueError, match="not supported"):
        parse_observe_args(["-A"])


def test_go_time_helpers() -> None:
    assert parse_go_duration("1h2m3.5s") == (3600 + 120 + 3) * 10**9 + 500_000_000
    assert parse_go_duration("300ms") == 300_000_000
    assert parse_go_duration("-1.5h") == -5400 * 10**9
    assert parse_go_duration("0") == 0
    assert parse_go_duration("10") is None and parse_go_duration("1d") is None
    assert parse_rfc3339_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_rfc3339_ns("1970-01-01T01:00:00+01:00") == 0
    assert parse_rfc3339_ns("2026-02-30T00:00:00Z") is None
    assert parse_time_arg("2026-03-14T09Z", 0) == parse_rfc3339_ns("2026-03-14T09:00:00Z")
    assert parse_time_arg("2026-03-14T09:12Z", 0) == parse_rfc3339_ns("2026-03-14T09:12:00Z")


def test_print_raw_filters_yaml() -> None:
    req = parse_observe_args(["--verdict", "DROPPED", "--not", "--namespace", "kube-system"])
    assert req.print_raw_filters is False
    assert raw_filters_yaml(req.options) == (
        "allowlist:\n"
        """    - '{"verdict":["DROPPED"]}'\n"""
        "denylist:\n"
        """    - '{"source_pod":["kube-system/"]}'\n"""
        """    - '{"destination_pod":["kube-system/"]}'\n"""
    )
    assert raw_filters_yaml(ObserveOptions()) == "{}\n"


def test_run_observe_cli(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_observe_cli([str(SAMPLES), "--to-fqdn", "*.com", "--first", "1"], out, err) == 0
    assert (
        out.getvalue()
        == (DATA / "hand-written-samples.compact.txt").read_text().splitlines()[3] + "\n"
    )
    assert err.getvalue() == ""
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"nope\n" + SAMPLES.read_bytes())
    out, err = io.StringIO(), io.StringIO()
    assert run_observe_cli([str(bad), "-o", "json"], out, err) == 0
    assert len(out.getvalue().splitlines()) == 41
    assert err.getvalue().startswith(f"warning: {bad}:1: invalid JSON")
    assert "skipped 1 bad line(s); 41 flows read, 41 matched" in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert run_observe_cli([str(bad), "--strict"], out, err) == 1
    assert err.getvalue().startswith(f"error: {bad}:1: ")
    out, err = io.StringIO(), io.StringIO()
    assert run_observe_cli([str(tmp_path / "missing.jsonl")], out, err) == 1
    assert run_observe_cli(["--print-raw-filters", "--verdict", "AUDIT"], out, err) == 0
    assert out.getvalue().endswith("""allowlist:\n    - '{"verdict":["AUDIT"]}'\n""")
