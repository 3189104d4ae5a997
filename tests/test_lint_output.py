"""`ciliary lint` as CI drives it: exit codes, text/JSON/SARIF output, --select/--ignore,
inline suppression, bad input; the seed's pitfalls caught and its policies without false
alarms."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import orjson
import pytest
from typer.testing import CliRunner

from ciliary.cli import app
from ciliary.workflows.lint import CHECKS

ROOT = Path(__file__).parent.parent
LINT = ROOT / "examples" / "lint"
SEED = ROOT / "examples" / "seed"
CLUSTER = str(LINT / "cluster.yaml")
SARIF_SCHEMA = json.loads((Path(__file__).parent / "data" / "schemas" / "sarif-schema-2.1.0.json").read_text())
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["lint", *args])
    return res.exit_code, res.stdout, res.stderr


def findings(*args: str) -> list[dict[str, object]]:
    code, out, _ = run(*args, "-o", "json", "--fail-on", "never")
    assert code == 0, out
    return list(orjson.loads(out)["findings"])


# -- the pitfalls ----------------------------------------------------------------------------

PITFALLS = [
    ("pitfall-1-fqdn-without-dns.yaml", (), "CIL001"),
    ("pitfall-2-rotating-fqdn.yaml", ("--flows", str(LINT / "flows.jsonl")), "CIL002"),
    ("pitfall-3-system-namespaces.yaml", (), "CIL003"),
    ("pitfall-4-probes.yaml", ("--config", str(LINT / "agent-localhost-policy.yaml")), "CIL004"),
    ("pitfall-6-label-typo.yaml", (), "CIL005"),
    ("pitfall-6-label-typo.yaml", (), "CIL006"),
    ("pitfall-7-l7-everywhere.yaml", (), "CIL007"),
    ("pitfall-7-l7-everywhere.yaml", (), "CIL008"),
    ("first-incident-dns-cut.yaml", ("--flows", str(LINT / "flows.jsonl")), "CIL010"),
    ("deny-only.yaml", (), "CIL011"),
]


@pytest.mark.parametrize(("file", "extra", "check"), PITFALLS, ids=[f"{c}-{f}" for f, _, c in PITFALLS])
def test_each_pitfall_is_caught(file: str, extra: tuple[str, ...], check: str) -> None:
    found = findings("--cluster", CLUSTER, "--policies", str(LINT / file), *extra)
    assert check in {f["id"] for f in found}
    f = next(f for f in found if f["id"] == check)
    assert f["file"] == str(LINT / file) and isinstance(f["line"], int) and f["hint"]


def test_pitfall_5_only_new_connections_break_is_shown_by_diff_flows() -> None:
    """A runtime effect: `diff --flows` lists the observed flows the new policy would drop
    (established connections keep working in conntrack until they close)."""
    res = runner.invoke(app, [
        "diff", "--cluster", str(SEED / "cluster.yaml"),
        "--old", str(SEED / "rollout" / "payments-allow.yaml"),
        "--new", str(SEED / "rollout" / "payments-allow.yaml"), "--new", str(SEED / "policies" / "09-default-deny.yaml"),
        "--flows", str(SEED / "flows.json"), "-o", "json",
    ])
    assert res.exit_code == 1
    doc = orjson.loads(res.stdout)
    assert doc["regressions"] >= 1
    assert any(c["old"] == "FORWARDED" and c["new"] == "DROPPED" and c["source"] == "payments/payments-api"
               for c in doc["flow_changes"])


def test_seed_policies_have_no_false_alarm_errors() -> None:
    """The seed's twelve policies on its snapshot: the one error is real. 04 is made of an
    egressDeny rule only, which turns shop's egress to default deny (Cilium's Sanitize:
    enableDefaultDeny defaults to "has an egress or egressDeny element"), so all of shop's
    egress is dropped, not only the metadata endpoint."""
    found = findings("--cluster", str(SEED / "cluster.yaml"), "--policies", str(SEED / "policies"))
    errors = [(Path(str(f["file"])).name, f["id"]) for f in found if f["severity"] == "error"]
    assert errors == [("04-deny-metadata-endpoint.yaml", "CIL011")]
    ids = {(Path(str(f["file"])).name, f["id"]) for f in found}
    assert ("06-kafka-topic-policy.yaml", "CIL016") in ids  # Kafka rules are deprecated
    assert ("11-host-fw-control-plane.yaml", "CIL003") in ids  # a host policy: roll out last


# -- exit codes and formats ------------------------------------------------------------------

def test_exit_codes_follow_fail_on() -> None:
    args = ("--cluster", CLUSTER, "--policies", str(LINT / "pitfall-2-rotating-fqdn.yaml"), "--flows", str(LINT / "flows.jsonl"))
    assert run(*args)[0] == 0  # a warning only
    assert run(*args, "--fail-on", "warning")[0] == 1
    assert run(*args, "--fail-on", "info")[0] == 1
    deny = ("--cluster", CLUSTER, "--policies", str(LINT / "deny-only.yaml"))
    assert run(*deny)[0] == 1
    assert run(*deny, "--fail-on", "never")[0] == 0


def test_text_output_grouped_per_file() -> None:
    code, out, _ = run("--cluster", CLUSTER, "--policies", str(LINT / "deny-only.yaml"), "--policies", str(LINT / "pitfall-3-system-namespaces.yaml"))
    assert code == 1
    lines = out.splitlines()
    assert f"{LINT / 'deny-only.yaml'}:" in lines
    assert any(ln.strip().startswith("11 CIL011 error") for ln in lines)
    assert any(ln.strip().startswith("fix: ") for ln in lines)
    assert lines[-1].startswith("2 findings: 2 errors")


def test_json_keys() -> None:
    code, out, _ = run("--cluster", CLUSTER, "--policies", str(LINT / "deny-only.yaml"), "-o", "json")
    assert code == 1
    doc = orjson.loads(out)
    assert set(doc) >= {"findings", "summary", "notes", "checks"}
    [f] = doc["findings"]
    assert set(f) >= {"id", "name", "severity", "policy", "field", "file", "line", "message", "hint", "endpoints"}
    assert f["policy"] == {"kind": "CiliumNetworkPolicy", "namespace": "shop", "name": "deny-metadata"}
    assert f["field"] == "spec.egressDeny[0]" and f["line"] == 11
    assert doc["summary"]["error"] == 1


def test_sarif_validates_against_the_sarif_2_1_0_schema() -> None:
    code, out, _ = run("--cluster", str(SEED / "cluster.yaml"), "--policies", str(SEED / "policies"), "-o", "sarif")
    assert code == 1
    doc = orjson.loads(out)
    jsonschema.validate(doc, SARIF_SCHEMA)
    run_ = doc["runs"][0]
    assert [r["id"] for r in run_["tool"]["driver"]["rules"]] == [c.id for c in CHECKS]
    levels = {r["ruleId"]: r["level"] for r in run_["results"]}
    assert levels["CIL011"] == "error" and levels["CIL006"] == "note"
    res = next(r for r in run_["results"] if r["ruleId"] == "CIL011")
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("04-deny-metadata-endpoint.yaml") and loc["region"]["startLine"] == 9
    assert "Fix:" in res["message"]["text"]


def test_sarif_of_a_clean_run_validates_too(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text((LINT / "deny-only.yaml").read_text() + "  egress:\n    - toEntities: [all]\n")
    code, out, _ = run("--cluster", CLUSTER, "--policies", str(ok), "-o", "sarif", "--select", "CIL011")
    assert code == 0
    doc = orjson.loads(out)
    jsonschema.validate(doc, SARIF_SCHEMA)
    assert doc["runs"][0]["results"] == []


# -- choosing checks -------------------------------------------------------------------------

def test_select_and_ignore() -> None:
    args = ("--cluster", CLUSTER, "--policies", str(LINT / "pitfall-7-l7-everywhere.yaml"))
    assert {f["id"] for f in findings(*args, "--select", "CIL007")} == {"CIL007"}
    assert {f["id"] for f in findings(*args, "--select", "l7-sprayed,CIL008")} == {"CIL007", "CIL008"}
    assert "CIL008" not in {f["id"] for f in findings(*args, "--ignore", "CIL008")}


def test_unknown_check_id_is_a_usage_error() -> None:
    code, _, err = run("--cluster", CLUSTER, "--select", "CIL999")
    assert code == 2 and "unknown lint check 'CIL999'" in err


def test_list_checks() -> None:
    res = runner.invoke(app, ["lint", "--list", "-o", "json"])
    assert res.exit_code == 0
    assert [c["id"] for c in orjson.loads(res.stdout)] == [f"CIL{n:03d}" for n in range(1, 18)]


# -- inline suppression ----------------------------------------------------------------------

def _copy(tmp_path: Path, name: str, edit: tuple[str, str] | None = None) -> Path:
    dst = tmp_path / name
    shutil.copy(LINT / name, dst)
    if edit is not None:
        text = dst.read_text()
        assert edit[0] in text
        dst.write_text(text.replace(edit[0], edit[1], 1))
    return dst


@pytest.mark.parametrize(("old", "new"), [
    ("    - toCIDR:\n", "    - toCIDR:  # ciliary: ignore[CIL011]\n"),  # the finding's line
    ("  egressDeny:\n", "  egressDeny:  # ciliary: ignore[CIL011]\n"),  # an enclosing node
    ("  name: deny-metadata\n", "  name: deny-metadata  # ciliary: ignore[CIL011, CIL009]\n"),  # the policy
    ("    - toCIDR:\n", "    # ciliary: ignore[CIL011]\n    - toCIDR:\n"),  # alone on the line above
    ("    - toCIDR:\n", "    - toCIDR:  # ciliary: ignore\n"),  # every check
], ids=["line", "section", "policy", "above", "bare"])
def test_inline_ignore(tmp_path: Path, old: str, new: str) -> None:
    f = _copy(tmp_path, "deny-only.yaml", (old, new))
    code, out, _ = run("--cluster", CLUSTER, "--policies", str(f), "-o", "json")
    doc = orjson.loads(out)
    assert code == 0 and doc["findings"] == [] and doc["summary"]["suppressed"] == 1


def test_inline_ignore_of_another_check_keeps_the_finding(tmp_path: Path) -> None:
    f = _copy(tmp_path, "deny-only.yaml", ("    - toCIDR:\n", "    - toCIDR:  # ciliary: ignore[CIL005]\n"))
    code, out, _ = run("--cluster", CLUSTER, "--policies", str(f), "-o", "json")
    assert code == 1 and [x["id"] for x in orjson.loads(out)["findings"]] == ["CIL011"]


def test_inline_ignore_with_an_unknown_id_is_noted(tmp_path: Path) -> None:
    f = _copy(tmp_path, "deny-only.yaml", ("    - toCIDR:\n", "    - toCIDR:  # ciliary: ignore[CIL011, CIL0XX]\n"))
    code, out, _ = run("--cluster", CLUSTER, "--policies", str(f), "-o", "json")
    doc = orjson.loads(out)
    assert code == 0 and any("unknown check 'CIL0XX'" in n for n in doc["notes"])


# -- bad input -------------------------------------------------------------------------------

def test_bad_policy_file_exits_2_naming_the_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x, namespace: shop}\n"
                   "spec:\n  endpointSelector: {}\n  egress:\n  - toFQDN: [{matchName: a.com}]\n")
    code, _, err = run("--cluster", CLUSTER, "--policies", str(bad))
    assert code == 2 and f"{bad}:7" in err and 'unknown field "toFQDN"' in err


def test_missing_cluster_or_flows_exit_2(tmp_path: Path) -> None:
    assert run("--policies", str(LINT / "deny-only.yaml"))[0] == 2
    code, _, err = run("--cluster", CLUSTER, "--flows", str(tmp_path / "none.jsonl"))
    assert code == 2 and "no such flow file" in err


def test_truncated_flows_under_strict_exit_2(tmp_path: Path) -> None:
    flows = tmp_path / "f.jsonl"
    flows.write_text((LINT / "flows.jsonl").read_text()[:-40])
    code, _, err = run("--cluster", CLUSTER, "--policies", str(LINT / "deny-only.yaml"), "--flows", str(flows), "--strict")
    assert code == 2 and str(flows) in err
