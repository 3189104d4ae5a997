"""The command-line contract other tools drive: exit codes, JSON keys, output formats, and
the agent-options file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ciliary.cli import app
from ciliary.model.errors import LoadError
from ciliary.model.source import parse_text
from ciliary.policy.config import config_from_document, parse_duration

SEED = Path(__file__).parent.parent / "examples" / "seed"
CLUSTER = str(SEED / "cluster.yaml")
POLICIES = str(SEED / "policies")
FRONTEND = "shop/frontend-7d9c5b8f6-k2x4p"
BACKEND = "shop/backend-5f6d8c9b7-xz91c"
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout


def test_validate_exit_codes_and_json_issues(tmp_path: Path) -> None:
    assert run("validate", POLICIES) [0] == 0
    code, out = run("validate", POLICIES, "-o", "json")
    assert code == 0 and orjson.loads(out) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x, namespace: shop}\n"
                   "spec:\n  endpointSelector: {}\n  egress:\n  - toFQDN: [{matchName: a.com}]\n")
    code, out = run("validate", str(bad), "-o", "json")
    assert code == 1
    [issue] = orjson.loads(out)
    assert set(issue) == {"file", "line", "document", "object", "field", "message"}
    assert issue["field"] == "spec.egress[0].toFQDN" and issue["line"] == 7
    assert 'did you mean "toFQDNs"' in issue["message"]


def test_identities_json_lists_shared_identities() -> None:
    code, out = run("identities", "--cluster", CLUSTER, "-o", "json")
    assert code == 0
    rows = orjson.loads(out)
    assert [r["id"] for r in rows][:3] == [1, 2, 3]
    frontend = [r for r in rows if any(e.startswith("shop/frontend-") for e in r["endpoints"])]
    assert len(frontend) == 1 and len(frontend[0]["endpoints"]) == 2  # two replicas, one identity
    assert "k8s:io.kubernetes.pod.namespace=shop" in frontend[0]["labels"]


def test_trace_json_contract_and_exit_codes() -> None:
    code, out = run("trace", "--cluster", CLUSTER, "--policies", POLICIES, "--src", FRONTEND,
                    "--dst", BACKEND, "--dport", "8080/TCP", "-o", "json")
    assert code == 1  # dropped
    v = orjson.loads(out)
    assert (v["verdict"], v["drop_reason_desc"], v["traffic_direction"]) == ("DROPPED", "POLICY_DENIED", "EGRESS")
    for side in ("egress", "ingress"):
        assert {"enforced", "verdict", "matched_entry", "policies"} <= set(v[side])
    assert v["egress"]["enforced"] is True
    code, out = run("trace", "--cluster", CLUSTER, "--policies", POLICIES, "--src", "monitoring/prometheus-0",
                    "--dst", BACKEND, "--dport", "9090/TCP", "-o", "json")
    v = orjson.loads(out)
    assert code == 0 and v["verdict"] == "FORWARDED" and v["policy_match_type"] == "L3_L4"
    assert v["ingress_allowed_by"] == [{"kind": "CiliumNetworkPolicy", "namespace": "shop", "name": "allow-from-monitoring"}]


def test_trace_audit_mode_flag_turns_the_drop_into_audit() -> None:
    code, out = run("trace", "--cluster", CLUSTER, "--policies", POLICIES, "--src", FRONTEND,
                    "--dst", BACKEND, "--dport", "8080/TCP", "--audit-mode", "-o", "json")
    v = orjson.loads(out)
    assert code == 0 and v["verdict"] == "AUDIT" and v["drop_reason_desc"] is None


def test_trace_rejects_bad_usage() -> None:
    assert run("trace", "--cluster", CLUSTER, "--src", FRONTEND, "--dst", BACKEND)[0] == 2  # no --dport/--icmp
    assert run("trace", "--cluster", CLUSTER, "--src", FRONTEND, "--dst", BACKEND, "--dport", "70000/TCP")[0] == 2
    assert run("trace", "--cluster", CLUSTER, "--src", "shop/nope", "--dst", BACKEND, "--dport", "80")[0] == 2


def test_config_file_and_flags(tmp_path: Path) -> None:
    never = tmp_path / "agent.yaml"
    never.write_text("enable-policy: never\n")
    args = ["trace", "--cluster", CLUSTER, "--policies", POLICIES, "--src", FRONTEND, "--dst", BACKEND, "--dport", "8080/TCP", "-o", "json"]
    code, out = run(*args, "--config", str(never))
    assert code == 0 and orjson.loads(out)["verdict"] == "FORWARDED"
    # A flag wins over the file.
    code, out = run(*args, "--config", str(never), "--enable-policy", "default")
    assert code == 1
    typo = tmp_path / "typo.yaml"
    typo.write_text("enable-polcy: never\n")
    code, out = run(*args, "--config", str(typo))
    assert code == 1 and 'did you mean \\"enable-policy\\"' in out


def test_config_map_values_are_strings_and_other_keys_are_kept() -> None:
    doc = parse_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config}\ndata:\n"
        "  policy-audit-mode: \"true\"\n  tofqdns-min-ttl: \"3600\"\n"
        "  tofqdns-idle-connection-grace-period: 5m\n  tunnel-protocol: vxlan\n", "cm.yaml")[0]
    cfg = config_from_document(doc)
    assert cfg.policy_audit_mode is True and cfg.tofqdns_min_ttl == 3600
    assert cfg.tofqdns_idle_connection_grace_period == 300.0 and cfg.extra == {"tunnel-protocol": "vxlan"}
    with pytest.raises(LoadError) as e:
        config_from_document(parse_text("enable-policy: sometimes\n", "a.yaml")[0])
    assert e.value.issues[0].field == "enable-policy" and e.value.issues[0].line == 1


@pytest.mark.parametrize(("text", "seconds"), [("0s", 0.0), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25), ("12", 12.0), ("soon", None)])
def test_go_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_matrix_outputs() -> None:
    base = ["matrix", "--cluster", CLUSTER, "--policies", POLICIES, "--dport", "9090/TCP", "-n", "shop", "-n", "monitoring"]
    code, out = run(*base, "-o", "json")
    m = orjson.loads(out)
    assert code == 0 and m["probes"][0]["matrix"]["monitoring/prometheus-0"][BACKEND] == "FORWARDED"
    assert m["probes"][0]["matrix"][FRONTEND][BACKEND] == "DROPPED"
    code, out = run(*base, "-o", "csv")
    assert out.splitlines()[0] == "port,protocol,source,destination,verdict,drop_reason_desc,traffic_direction"
    assert f"9090,TCP,monitoring/prometheus-0,{BACKEND},FORWARDED,," in out
    code, out = run(*base, "-o", "dot")
    assert f'"monitoring/prometheus-0" -> "{BACKEND}";' in out and f'"{FRONTEND}" -> "{BACKEND}"' not in out
    code, out = run(*base)
    assert "Reachability matrix for 9090/TCP" in out


def test_observe_help_and_filter() -> None:
    code, out = run("observe", "--help")
    assert code == 0 and "--not" in out
    code, out = run("observe", str(SEED / "flows.json"), "--namespace", "payments", "--to-port", "8443", "--last", "1")
    assert code == 0 and len(out.splitlines()) == 1 and "payments/pg-gateway" in out and ":8443" in out


def test_error_messages_print_the_input_as_data_not_markup(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x, namespace: shop}\n"
                   "spec:\n  endpointSelector: {}\n  '[red]oops': 1\n  egress: [{}]\n")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1 and 'unknown field "[red]oops"' in res.stderr
