"""Replay's fast reader (a msgspec decoder of the fields a decision reads) decides exactly
as the full reader does, and hands it every line it cannot take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from ciliary.flows.codec import FlowReadError, ReadStats
from ciliary.flows.head import HEAD_DECODER, FlowHead, head_from_dict, read_flow_lines
from ciliary.policy.config import AgentConfig
from ciliary.workflows.engine import build_engine
from ciliary.workflows.replay import ReplayReport, replay

HERE = Path(__file__).parent
SEED = HERE.parent / "examples" / "seed"
CLUSTER = SEED / "cluster.yaml"
TIGHT = [SEED / "rollout" / "payments-allow.yaml", SEED / "policies" / "09-default-deny.yaml", SEED / "policies" / "02-allow-frontend-to-backend.yaml"]
FLOW_FILES = sorted([SEED / "flows.json", *(HERE / "data" / "flows").rglob("*.json*")])


def _plain(head: FlowHead) -> dict[str, Any]:
    """A head as plain data, its raw label and workload lists decoded."""
    bare = msgspec.structs.replace(head, source=None, destination=None, destination_names=msgspec.Raw(b"null"))
    d: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(bare))
    for side, h in (("source", head.source), ("destination", head.destination)):
        d[side] = None if h is None else {
            "identity": h.identity, "namespace": h.namespace, "pod_name": h.pod_name,
            "labels": h.label_list(), "workloads": h.workload_list(),
        }
    d["destination_names"] = head.destination_name_list()
    return d


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.name)
def test_head_decoder_reads_what_the_full_reader_reads(path: Path) -> None:
    taken = 0
    for line in path.read_bytes().splitlines():
        try:
            env = HEAD_DECODER.decode(line)
        except msgspec.DecodeError:
            continue
        if env.flow is None or env.flow.event_type is None:
            continue
        assert _plain(env.flow) == _plain(head_from_dict(orjson.loads(line)["flow"]))
        taken += 1
    assert taken > 0


def _run(paths: list[Path], policies: list[Path], fast: bool = True) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    engine = build_engine(CLUSTER, policies, AgentConfig())
    rep = ReplayReport()
    out = [(rf.predicted, rf.reason, rf.line, rf.flow) for rf in replay(engine, paths, report=rep, fast=fast)]
    return out, rep.summary()


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.name)
def test_the_fast_reader_yields_what_the_plain_reader_yields(path: Path) -> None:
    fast_stats, plain_stats = ReadStats(), ReadStats()
    fast = list(read_flow_lines(path, fast_stats))
    plain = list(read_flow_lines(path, plain_stats, fast=False))
    assert [(x.lineno, _plain(x.head), x.flow()) for x in fast] == [(x.lineno, _plain(x.head), x.flow()) for x in plain]
    assert fast_stats == plain_stats and fast_stats.flows == len(fast) > 0
    assert all(x.line is None and x.full is not None for x in plain)
    assert sum(x.line is not None for x in fast) > len(fast) // 2


@pytest.mark.parametrize("policies", [TIGHT, [SEED / "policies" / "09-default-deny.yaml"]], ids=["tight", "default-deny"])
def test_replay_decides_alike_through_either_reader(policies: list[Path]) -> None:
    fast = _run(FLOW_FILES, policies)
    full = _run(FLOW_FILES, policies, fast=False)
    assert fast[1] == full[1]
    assert len(fast[0]) == len(full[0]) > 1000
    assert fast[0] == full[0]
    assert fast[1]["by_predicted_verdict"].get("DROPPED", 0) > 10


def _line(**over: Any) -> bytes:
    flow: dict[str, Any] = {
        "time": "2026-04-01T08:00:00.000000001Z", "verdict": "FORWARDED",
        "IP": {"source": "10.0.1.10", "destination": "10.0.2.20", "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 40000, "destination_port": 8080}},
        "source": {"namespace": "shop", "pod_name": "frontend-0", "labels": ["k8s:app=frontend"]},
        "destination": {"namespace": "shop", "pod_name": "backend-0", "labels": ["k8s:app=backend"]},
        "Type": "L3_L4", "event_type": {"type": 4}, "traffic_direction": "INGRESS",
    }
    flow.update(over)
    return orjson.dumps({"flow": flow, "node_name": "kind-worker"})


def test_lines_the_fast_reader_declines_take_the_full_reader(tmp_path: Path) -> None:
    camel = orjson.loads(_line())
    camel["flow"]["l4"] = {"TCP": {"sourcePort": 40001, "destinationPort": 8080}}
    del camel["flow"]["event_type"]
    camel["flow"]["eventType"] = {"type": 4}
    lines = [
        _line(),
        _line(Summary="caf\u00e9 \u2014 non-ASCII"),  # msgspec would not check skipped UTF-8
        orjson.dumps(camel),  # lowerCamel: canonicalized by the full reader
        _line(verdict=2),  # an enum number
        b"",
        b'{"node_status": {"state_change": "NODE_CONNECTED"}}',
        b'{"flow": {"verdict": "FORWARDED", "IP": ',  # truncated
        _line(l4={"TCP": {"source_port": "x", "destination_port": 8080}}),  # wrong type
    ]
    path = tmp_path / "mixed.json"
    path.write_bytes(b"\n".join(lines) + b"\n")
    fast = _run([path], TIGHT)
    assert fast[1]["flows"] == 5 and fast[1]["bad_lines"] == 1 and fast[1]["skipped_non_flow_lines"] == 1
    [report] = fast[1]["bad_line_reports"]
    assert report.startswith(f"{path}:7: invalid JSON: unexpected end of data")
    by_line = {line: (predicted, flow) for predicted, _, line, flow in fast[0]}
    assert sorted(by_line) == [1, 2, 3, 4, 8]
    assert by_line[2][1]["Summary"] == "caf\u00e9 \u2014 non-ASCII"
    assert by_line[3][1]["l4"]["TCP"]["source_port"] == 40001 and by_line[3][0] == by_line[1][0]
    assert by_line[4][1]["recorded_verdict"] == "DROPPED"  # enum 2, canonicalized


def test_a_number_beyond_a_double_in_an_unread_field_still_gives_its_flow(tmp_path: Path) -> None:
    # orjson refuses 1e400; the fast reader does not read the field, and the output flow
    # is then made by Python's json, which reads it as infinity.
    path = tmp_path / "big.json"
    path.write_bytes(_line(Summary="x").replace(b'"Summary":"x"', b'"Summary":1e400') + b"\n")
    [(_, reason, _, flow)], summary = _run([path], TIGHT)
    assert summary["bad_lines"] == 0 and reason == "decided"
    assert flow["Summary"] == float("inf") and flow["recorded_verdict"] == "FORWARDED"


@pytest.mark.parametrize("policies", [TIGHT, []], ids=["tight", "none"])
def test_json_lines_are_the_output_flows(policies: list[Path]) -> None:
    # Flows replay changes nothing in but recorded_verdict are written from their input
    # line; the others are encoded again. Both must be the output flow, keys in order.
    engine = build_engine(CLUSTER, policies, AgentConfig())
    lines = [(rf.json_line(), rf) for rf in replay(engine, FLOW_FILES)]
    spliced = 0
    for line, rf in lines:
        assert line.endswith(b"}\n") and line.count(b"\n") == 1
        got = orjson.loads(line)
        assert got == {"flow": rf.flow}
        assert list(got["flow"]) == list(rf.flow)
        spliced += rf.decision is None and rf.override is None
    assert 100 < spliced < len(lines)


def test_json_line_of_a_replayed_file_keeps_one_recorded_verdict(tmp_path: Path) -> None:
    # Replaying replay's own output: the old recorded_verdict is replaced, not repeated.
    first = tmp_path / "first.json"
    engine = build_engine(CLUSTER, TIGHT, AgentConfig())
    first.write_bytes(b"".join(rf.json_line() for rf in replay(engine, [SEED / "flows.json"])))
    again = list(replay(build_engine(CLUSTER, TIGHT, AgentConfig()), [first]))
    for rf in again:
        line = rf.json_line()
        assert line.count(b'"recorded_verdict"') == 1
        assert orjson.loads(line)["flow"]["recorded_verdict"] == rf.recorded


def test_json_lines_escape_like_hubble(tmp_path: Path) -> None:
    # Go's encoder writes &, < and > as \u0026, \u003c, \u003e; so does replay, whether it
    # writes the input line's flow object or encodes the flow again.
    flow = orjson.loads(_line(Summary="a&b <c>"))
    path = tmp_path / "esc.json"
    path.write_bytes(orjson.dumps(flow).replace(b"&", b"\\u0026").replace(b"<", b"\\u003c").replace(b">", b"\\u003e") + b"\n")
    path.write_bytes(path.read_bytes() + path.read_bytes())  # the second follows the first
    first, second = replay(build_engine(CLUSTER, TIGHT, AgentConfig()), [path])
    assert first.decision is not None and second.decision is None and second.override is None
    for rf in (first, second):
        line = rf.json_line()
        assert b"a\\u0026b \\u003cc\\u003e" in line and b"&" not in line
        assert orjson.loads(line)["flow"]["Summary"] == "a&b <c>"


def test_json_line_cuts_the_flow_object_only_out_of_hubbles_exact_envelope(tmp_path: Path) -> None:
    # Each pair: the first line is decided, the second follows it and is written from its
    # input line; envelopes of another shape take msgspec to find the flow object.
    flow = orjson.loads(_line())["flow"]
    envelopes = [
        {"flow": flow, "node_name": "kind-worker", "time": "2026-04-01T08:00:00.000000001Z"},
        {"flow": flow, "node_name": 'kind-"worker"', "time": "2026-04-01T08:00:00.000000001Z"},
        {"node_name": "kind-worker", "flow": flow, "time": "2026-04-01T08:00:00.000000001Z"},
        {"flow": {**flow, "destination": {**flow["destination"], "x": {"node_name": "y"}}}, "node_name": "n", "time": "t"},
        {"flow": flow},
        # a flow whose node_name follows an object field, in an envelope without one
        {"flow": {**{k: v for k, v in flow.items() if k not in ("Type", "event_type", "traffic_direction")},
                  "node_name": "x", "time": "t", "event_type": {"type": 4}}},
        {"x": 1, "flow": flow, "node_name": "n", "time": "t"},
    ]
    for i, env in enumerate(envelopes):
        path = tmp_path / f"env{i}.json"
        line = orjson.dumps(env) + b"\n"
        path.write_bytes(line + line)
        _, second = replay(build_engine(CLUSTER, TIGHT, AgentConfig()), [path])
        assert second.decision is None and second.override is None
        got = orjson.loads(second.json_line())
        assert got == {"flow": {**env["flow"], "recorded_verdict": "FORWARDED"}}, i
        assert list(got["flow"]) == [*env["flow"], "recorded_verdict"]


def test_strict_checks_every_line_in_full(tmp_path: Path) -> None:
    # A field of the wrong type that replay never reads: the fast reader would take the
    # line, --strict type-checks every flow and stops there.
    path = tmp_path / "typed.json"
    path.write_bytes(_line() + b"\n" + _line(Summary=5) + b"\n")
    assert [rf.line for rf in replay(build_engine(CLUSTER, TIGHT, AgentConfig()), [path])] == [1, 2]
    with pytest.raises(FlowReadError, match=rf"{path}:2: "):
        list(replay(build_engine(CLUSTER, TIGHT, AgentConfig()), [path], strict=True))


def test_output_flows_never_change_the_input(tmp_path: Path) -> None:
    # Every line through the full reader: the output flow is a new dict, the input's stays.
    engine = build_engine(CLUSTER, TIGHT, AgentConfig())
    for rf in replay(engine, [SEED / "flows.json"], fast=False):
        full = rf.source.full
        assert full is not None
        before = orjson.dumps(full)
        out = rf.flow
        assert out is not full and "recorded_verdict" in out and "recorded_verdict" not in full
        assert orjson.dumps(full) == before
