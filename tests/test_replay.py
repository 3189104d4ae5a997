"""`ciliary replay`: predictions agree with `trace`, conntrack, bad input, output shape."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ciliary.cli import app
from ciliary.policy.config import AgentConfig
from ciliary.workflows.engine import build_engine
from ciliary.workflows.replay import ReplayReport, replay
from ciliary.workflows.trace import trace

SEED = Path(__file__).parent.parent / "examples" / "seed"
CLUSTER = SEED / "cluster.yaml"
FLOWS = SEED / "flows.json"
TIGHT = [SEED / "rollout" / "payments-allow.yaml", SEED / "policies" / "09-default-deny.yaml", SEED / "policies" / "02-allow-frontend-to-backend.yaml"]
PROTO = {"TCP": 6, "UDP": 17}


def _endpoint_name(side: dict[str, object], ip: str) -> str:
    if side.get("pod_name"):
        return f"{side['namespace']}/{side['pod_name']}"
    return ip


def test_replay_predicts_exactly_the_drops_trace_predicts() -> None:
    # The flows were recorded with no policy (all FORWARDED); replay them under a tightened
    # set and check every new connection against `trace` for the same connection.
    recorded = list(replay(build_engine(CLUSTER, [], AgentConfig(enable_policy="never")), [FLOWS]))
    assert {rf.predicted for rf in recorded} <= {"FORWARDED", "REDIRECTED"}
    engine = build_engine(CLUSTER, TIGHT, AgentConfig())
    fresh = build_engine(CLUSTER, TIGHT, AgentConfig())
    checked = drops = 0
    answers: dict[str, list[tuple[str, list[str]]]] = {}  # pod -> DNS answers seen so far
    for rf in replay(engine, [FLOWS]):
        f = rf.flow
        dns = (f.get("l7") or {}).get("dns")
        if dns and dns.get("ips"):
            answers.setdefault(_endpoint_name(f["destination"], ""), []).append((dns["query"].rstrip("."), dns["ips"]))
        if f.get("is_reply") or f.get("l7") or rf.reason != "decided":
            continue
        (proto, l4), = f["l4"].items()
        ips = f["IP"]
        src = _endpoint_name(f["source"], ips["source"])
        # trace gets the same DNS history through --resolve.
        v, _ = trace(fresh, src, _endpoint_name(f["destination"], ips["destination"]), PROTO[proto], l4["destination_port"], None, answers.get(src, []))
        assert (v.verdict == "DROPPED") == (rf.predicted == "DROPPED"), (rf.file, rf.line)
        assert v.drop_reason_desc == f.get("drop_reason_desc")
        checked += 1
        drops += rf.predicted == "DROPPED"
    assert checked > 100 and drops > 10


def test_replies_and_repeated_observations_follow_their_connection() -> None:
    engine = build_engine(CLUSTER, TIGHT, AgentConfig())
    flows = list(replay(engine, [FLOWS]))
    for a, b in pairwise(flows):
        if b.flow.get("is_reply") and not b.flow.get("l7") and not a.flow.get("l7") and a.flow["IP"]["source"] == b.flow["IP"]["destination"]:
            assert (a.predicted == "DROPPED") == (b.predicted == "DROPPED")
            assert b.reason == "follows its connection"


def test_output_flows_keep_input_order_and_recorded_verdict() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["replay", str(FLOWS), "--cluster", str(CLUSTER), *[x for p in TIGHT for x in ("--policies", str(p))], "-o", "json"])
    assert res.exit_code == 0, res.output
    lines = [orjson.loads(x) for x in res.stdout.splitlines()]
    src = [orjson.loads(x) for x in FLOWS.read_bytes().splitlines()]
    assert len(lines) == len(src)
    assert [x["flow"]["uuid"] for x in lines] == [x["flow"]["uuid"] for x in src]
    assert all(x["flow"]["recorded_verdict"] == y["flow"]["verdict"] for x, y in zip(lines, src, strict=True))
    dropped = [x["flow"] for x in lines if x["flow"]["verdict"] == "DROPPED" and not x["flow"].get("is_reply")]
    assert dropped and all(d["drop_reason_desc"] in ("POLICY_DENIED", "POLICY_DENY") for d in dropped)
    assert any(d.get("egress_denied_by") or d.get("traffic_direction") for d in dropped)


@pytest.fixture
def corrupt(tmp_path: Path) -> Path:
    lines = FLOWS.read_bytes().splitlines()[:10]
    lines.insert(3, b'{"flow": {"time": ')  # truncated JSON
    lines.insert(6, b'{"node_status": {"state": "NODE_CONNECTED"}}')  # not a flow: skipped, counted
    p = tmp_path / "corrupt.json"
    p.write_bytes(b"\n".join(lines) + b"\n")
    return p


def test_bad_lines_are_reported_with_file_and_line_and_skipped(corrupt: Path) -> None:
    engine = build_engine(CLUSTER, TIGHT, AgentConfig())
    rep = ReplayReport()
    out = list(replay(engine, [corrupt], report=rep))
    assert len(out) == 10 and rep.stats.bad == 1 and rep.stats.non_flow == 1
    assert str(rep.stats.bad_lines[0]).startswith(f"{corrupt}:4:")
    res = CliRunner().invoke(app, ["replay", str(corrupt), "--cluster", str(CLUSTER)])
    assert res.exit_code == 0 and "10 flows replayed (1 bad line(s) skipped, 1 non-flow line(s) skipped)" in res.stdout


def test_strict_stops_at_the_first_bad_line(corrupt: Path) -> None:
    res = CliRunner().invoke(app, ["replay", str(corrupt), "--cluster", str(CLUSTER), "--strict"])
    assert res.exit_code == 1
    assert f"{corrupt}:4:" in res.output


def test_a_flow_that_does_not_say_is_reply_is_one_when_conntrack_would_make_it_one(tmp_path: Path) -> None:
    # Older Hubble wrote no is_reply on trace events. A capture that begins mid-connection
    # shows the server's packets first: from its container port to the client's port.
    engine = build_engine(CLUSTER, TIGHT, AgentConfig())
    base = {"time": "2026-04-01T08:00:00.000000001Z", "verdict": "FORWARDED", "event_type": {"type": 4},
            "IP": {"source": "10.244.1.20", "destination": "10.244.2.10"},
            "source": {"namespace": "shop", "pod_name": "backend-5f6d8c9b7-xz91c"},
            "destination": {"namespace": "monitoring", "pod_name": "prometheus-0"}}
    server_first = {**base, "l4": {"TCP": {"source_port": 9090, "destination_port": 40100}}}
    client = {**base, "IP": {"source": "10.244.2.10", "destination": "10.244.1.20"},
              "source": base["destination"], "destination": base["source"],
              "l4": {"TCP": {"source_port": 40100, "destination_port": 9090}}}
    path = tmp_path / "old.json"
    path.write_bytes(b"".join(orjson.dumps({"flow": f}) + b"\n" for f in (server_first, client, server_first)))
    first, second, third = replay(engine, [path])
    # Under TIGHT prometheus may not reach backend:9090: the connection is dropped, and its
    # server's packets are replies that never happen; none is a new backend -> prometheus one.
    assert [(rf.predicted, rf.reason) for rf in (first, second, third)] == [
        ("DROPPED", "decided"), ("DROPPED", "follows its connection"), ("DROPPED", "follows its connection")]
    assert first.verdict is not None and str(first.verdict.connection.src) == "monitoring/prometheus-0"


def test_a_policy_verdict_event_reports_its_own_direction(tmp_path: Path) -> None:
    """Cilium emits a policy verdict per enforced direction, where that side decides: the
    source's node reports the egress verdict (here AUDIT: the source is in audit mode), the
    destination's node the ingress one (here a drop). Replay predicts each event at its own
    point; the connection's verdict (what diff counts) is the drop."""
    lint = Path(__file__).parent.parent / "examples" / "lint"
    pol = tmp_path / "p.yaml"
    pol.write_text(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: fe-out, namespace: shop}\n"
        "spec:\n  endpointSelector: {matchLabels: {app: frontend}}\n  egress:\n  - toEntities: [world]\n"
        "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: be-in, namespace: shop}\n"
        "spec:\n  endpointSelector: {matchLabels: {app: backend}}\n  ingress:\n  - fromEntities: [world]\n")
    engine = build_engine(lint / "cluster.yaml", [pol], AgentConfig().with_overrides(audit_mode_endpoints=("shop/frontend-*",)))
    base = {"IP": {"source": "10.10.1.21", "destination": "10.10.2.22", "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": 40000, "destination_port": 8080, "flags": {"SYN": True}}},
            "source": {"namespace": "shop", "pod_name": "frontend-1"}, "destination": {"namespace": "shop", "pod_name": "backend-1"},
            "Type": "L3_L4", "is_reply": False}
    flows = tmp_path / "f.jsonl"
    lines = [
        {**base, "verdict": "AUDIT", "traffic_direction": "EGRESS", "event_type": {"type": 5}},
        {**base, "verdict": "DROPPED", "drop_reason_desc": "POLICY_DENIED", "traffic_direction": "INGRESS", "event_type": {"type": 1, "sub_type": 133}},
        {**base, "l4": {"TCP": {"source_port": 40001, "destination_port": 8080}}, "verdict": "FORWARDED", "traffic_direction": "EGRESS", "event_type": {"type": 4}},
    ]
    flows.write_bytes(b"".join(orjson.dumps({"flow": f}) + b"\n" for f in lines))
    out = list(replay(engine, [str(flows)], report=ReplayReport()))
    assert [(r.predicted, r.connection) for r in out] == [("AUDIT", "DROPPED"), ("DROPPED", "DROPPED"), ("DROPPED", "DROPPED")]
    assert out[0].flow["traffic_direction"] == "EGRESS" and out[1].flow["traffic_direction"] == "INGRESS"
