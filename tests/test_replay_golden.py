"""Replay's decisions on every reference flow file, pinned: any change to what replay
decides or writes (the `-o json` line, byte for byte) shows here, flow by flow.

The golden files were written by the replay that was on main before the decision logic
moved into `verdict/` (issue 10), and written again once on purpose since: flows of older
captures without `is_reply` became replies where conntrack would make them one (issue 11;
only such flows changed, 8 to 9 per configuration). Regenerate only on purpose, with
`CILIARY_WRITE_GOLDEN=1 pytest tests/test_replay_golden.py`, and review the diff.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from ciliary.policy.config import AgentConfig
from ciliary.workflows.engine import build_engine
from ciliary.workflows.replay import ReplayReport, replay

HERE = Path(__file__).parent
SEED = HERE.parent / "examples" / "seed"
CLUSTER = SEED / "cluster.yaml"
GOLDEN = HERE / "data" / "replay-golden"
FLOW_FILES = sorted([SEED / "flows.json", *(HERE / "data" / "flows").rglob("*.json*")])
ALL_SEED = sorted((SEED / "policies").glob("*.yaml"))
TIGHT = [SEED / "rollout" / "payments-allow.yaml", SEED / "policies" / "09-default-deny.yaml", SEED / "policies" / "02-allow-frontend-to-backend.yaml"]
BOOKINFO = [HERE / "data" / "policies" / "golden-bookinfo.yaml"]

CONFIGS: dict[str, tuple[list[Path], AgentConfig]] = {
    "tight": (TIGHT, AgentConfig()),
    "default-deny": ([SEED / "policies" / "09-default-deny.yaml"], AgentConfig()),
    "seed-all": (ALL_SEED, AgentConfig()),
    "seed-all-audit": (ALL_SEED, AgentConfig(policy_audit_mode=True, tofqdns_idle_connection_grace_period=5.0)),
    "seed-all-per-endpoint-audit": (ALL_SEED, AgentConfig(audit_mode_endpoints=("shop/*",), tofqdns_endpoint_max_ip_per_hostname=1)),
    # The captures' pods carry io.cilium.k8s.policy.cluster=kind-kind.
    "bookinfo": (BOOKINFO, AgentConfig(cluster_name="kind-kind", tofqdns_min_ttl=30, tofqdns_idle_connection_grace_period=5.0)),
    "bookinfo-seed": ([*BOOKINFO, *ALL_SEED], AgentConfig(cluster_name="kind-kind", tofqdns_dns_reject_response_code="nameError")),
    "bookinfo-other-cluster": (BOOKINFO, AgentConfig()),
    "never": ([], AgentConfig(enable_policy="never")),
}
_WRITTEN = ("verdict", "drop_reason_desc", "drop_reason", "traffic_direction", "policy_match_type",
            "egress_allowed_by", "ingress_allowed_by", "egress_denied_by", "ingress_denied_by")


def _record(rf: Any) -> str:
    """One flow's decision as a line: where, what replay predicted and why, the fields it
    wrote, and a digest of the whole `-o json` line."""
    line = rf.json_line()
    f = orjson.loads(line)["flow"]
    written = {k: f[k] for k in _WRITTEN if k in f}
    l7 = f.get("l7") or {}
    where = f"{Path(rf.file).name}:{rf.line}"
    digest = hashlib.sha256(line).hexdigest()[:16]
    return " ".join([where, rf.recorded or "-", rf.predicted, repr(rf.reason), str(l7.get("type", "-")),
                     orjson.dumps(written, option=orjson.OPT_SORT_KEYS).decode(), digest])


def _run(name: str) -> tuple[list[str], dict[str, Any]]:
    policies, config = CONFIGS[name]
    engine = build_engine(CLUSTER, policies, config)
    rep = ReplayReport()
    lines = [_record(rf) for rf in replay(engine, FLOW_FILES, report=rep)]
    summary = rep.summary()
    summary["changed_flows"] = [rf.describe() for rf in rep.changed]
    root = str(HERE.parent) + "/"
    return lines, orjson.loads(orjson.dumps(summary).decode().replace(root, ""))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_replay_decisions_match_the_golden_file(name: str) -> None:
    lines, summary = _run(name)
    path = GOLDEN / f"{name}.txt.gz"
    text = "\n".join([orjson.dumps(summary, option=orjson.OPT_SORT_KEYS).decode(), *lines]) + "\n"
    if os.environ.get("CILIARY_WRITE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    want = gzip.decompress(path.read_bytes()).decode().splitlines()
    got = text.splitlines()
    assert got[0] == want[0], "replay summary changed"
    assert len(got) == len(want)
    diffs = [(w, g) for w, g in zip(want[1:], got[1:], strict=True) if w != g]
    assert not diffs, f"{len(diffs)} flow decision(s) changed; first:\n  was {diffs[0][0]}\n  now {diffs[0][1]}"
    assert len(lines) > 2500
