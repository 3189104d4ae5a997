"""The seed article's default-deny rollout, end to end, offline:

stage 1 observe the flows -> stage 2 author allow policies (examples/seed/rollout) ->
stage 3 replay with default deny in audit mode: AUDIT only for the traffic left out ->
diff: the same traffic shows as newly denied, and the diff gates (exit 1).
"""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from ciliary.cli import app
from ciliary.policy.config import AgentConfig
from ciliary.workflows.diff import diff_policies
from ciliary.workflows.engine import build_engine
from ciliary.workflows.observe import ObserveOptions, observe
from ciliary.workflows.replay import ReplayReport, replay

SEED = Path(__file__).parent.parent / "examples" / "seed"
CLUSTER = SEED / "cluster.yaml"
FLOWS = SEED / "flows.json"
ALLOW = SEED / "rollout" / "payments-allow.yaml"
DENY = SEED / "policies" / "09-default-deny.yaml"
BATCH = ("payments/payments-api", "shop/backend", "8080/TCP")


def _payments_flows() -> list[dict[str, object]]:
    opts = ObserveOptions()
    opts.filters.namespace = ["payments"]
    return [orjson.loads(line) for line in observe([FLOWS], opts, "json", now=0.0)]


def test_stage1_observe_finds_the_payments_traffic_including_the_nightly_batch() -> None:
    flows = _payments_flows()
    pods = {(f["flow"]["source"].get("pod_name", "")[:12], f["flow"]["destination"].get("pod_name", "")[:12]) for f in flows}
    assert ("payments-api", "backend-5f6d") in pods  # the batch ran once
    assert ("payments-api", "pg-gateway-7") in pods
    assert all("payments" in (f["flow"]["source"].get("namespace"), f["flow"]["destination"].get("namespace")) for f in flows)


def test_stage2_allow_policies_block_nothing() -> None:
    engine = build_engine(CLUSTER, [ALLOW], AgentConfig())
    rep = ReplayReport()
    predicted = [rf.predicted for rf in replay(engine, [FLOWS], report=rep)]
    assert "DROPPED" not in predicted and rep.stats.flows == len(predicted) > 600


def test_stage3_audit_shows_only_the_traffic_left_out() -> None:
    engine = build_engine(CLUSTER, [ALLOW, DENY], AgentConfig(policy_audit_mode=True))
    rep = ReplayReport()
    flows = list(replay(engine, [FLOWS], report=rep))
    audited = [rf for rf in flows if rf.predicted == "AUDIT"]
    assert len(audited) == 1 and "DROPPED" not in rep.by_verdict
    assert [g.key for g in rep.audit_groups.values()] == [BATCH]
    group = next(iter(rep.audit_groups.values()))
    assert group.reason == "POLICY_DENIED" and group.direction == "EGRESS"
    assert group.policies == {"CiliumNetworkPolicy payments/default-deny"}
    # The output flow keeps the recorded verdict beside the prediction.
    assert audited[0].flow["recorded_verdict"] == "FORWARDED" and audited[0].flow["verdict"] == "AUDIT"


def test_stage4_enforcing_drops_exactly_what_stage3_audited() -> None:
    audit = build_engine(CLUSTER, [ALLOW, DENY], AgentConfig(policy_audit_mode=True))
    enforce = build_engine(CLUSTER, [ALLOW, DENY], AgentConfig())
    a = list(replay(audit, [FLOWS]))
    e = list(replay(enforce, [FLOWS]))
    audited = [i for i, rf in enumerate(a) if rf.predicted == "AUDIT"]
    dropped = [i for i, rf in enumerate(e) if rf.predicted == "DROPPED"]
    # Enforced, the dropped connection's reply never happens: replay marks it DROPPED too.
    assert dropped == [*audited, audited[0] + 1] and e[audited[0] + 1].flow["is_reply"] is True


def test_diff_shows_the_batch_as_newly_denied_and_gates() -> None:
    old = build_engine(CLUSTER, [ALLOW], AgentConfig())
    new = build_engine(CLUSTER, [ALLOW, DENY], AgentConfig())
    rep = diff_policies(old, new, [FLOWS])
    assert BATCH in {(c.source, c.destination, c.port) for c in rep.newly_denied}
    assert not rep.newly_allowed
    assert [(c.source, c.destination, c.port, c.old, c.new) for c in rep.regressions] == [(*BATCH, "FORWARDED", "DROPPED")]
    md = rep.markdown()
    assert "1 observed flow(s) would be dropped" in md and "`payments/payments-api` | `shop/backend` | 8080/TCP" in md


def test_diff_cli_exit_codes() -> None:
    runner = CliRunner()
    base = ["diff", "--cluster", str(CLUSTER), "--old", str(ALLOW), "--flows", str(FLOWS)]
    gated = runner.invoke(app, [*base, "--new", str(ALLOW), "--new", str(DENY), "-o", "json"])
    assert gated.exit_code == 1, gated.output
    same = runner.invoke(app, [*base, "--new", str(ALLOW), "-o", "json"])
    assert same.exit_code == 0, same.output
    assert orjson.loads(same.stdout)["regressions"] == 0
