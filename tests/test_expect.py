"""`ciliary test`: expectations files as CI tests. The PCI example passes and catches a
one-line policy change; every `expect` kind, drop reason and proxy status is checked both
ways; truth tables fail cell by cell; JUnit XML and `-o json` have the shape CI reads; bad
input exits 2 with one located error and runs nothing."""

from __future__ import annotations

import shutil
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from ciliary.cli import app

ROOT = Path(__file__).parent.parent
PCI = ROOT / "examples" / "pci"
SEED = ROOT / "examples" / "seed"
GATEWAY = "gateway/api-gateway-7d9f"
CARD = "cde-payments/card-processor-6b7c"
LEDGER = "cde-db/ledger-db-0"
FRONTEND = "shop/frontend-5c8d"
DNS = "kube-system/coredns-5d78"
runner = CliRunner()


def run(*args: str | Path) -> Result:
    return runner.invoke(app, ["test", *map(str, args)])


def run_json(*args: str | Path) -> tuple[int, dict[str, Any]]:
    res = run(*args, "-o", "json")
    return res.exit_code, orjson.loads(res.stdout)


def pci_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "pci"
    shutil.copytree(PCI, dst)
    return dst


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {path}"
    path.write_text(text.replace(old, new))


def expectations(tmp_path: Path, body: str, head: str | None = None, name: str = "t.yaml") -> Path:
    """An expectations file on the PCI cluster and policies, with `body` after the header."""
    if head is None:
        head = f"cluster: {PCI / 'cluster.yaml'}\npolicies: [{PCI / 'policies'}]\n"
    path = tmp_path / name
    path.write_text(head + textwrap.dedent(body))
    return path


def one_case(tmp_path: Path, case: str, options: str = "") -> tuple[int, dict[str, Any]]:
    """Run a file with the single case `case` (YAML mapping lines); its JSON result."""
    body = (f"options:\n{textwrap.indent(textwrap.dedent(options), '  ')}" if options else "")
    body += "cases:\n  - name: the case\n" + textwrap.indent(textwrap.dedent(case), "    ")
    code, out = run_json(expectations(tmp_path, body))
    [result] = out["cases"]
    assert result["name"] == "the case"
    return code, result


# -- the PCI example ----------------------------------------------------------------------


def test_pci_example_passes_every_case() -> None:
    code, out = run_json(PCI / "expectations.yaml")
    assert code == 0
    assert out["failed"] == 0 and out["passed"] == len(out["cases"]) == 25
    assert all(c["passed"] for c in out["cases"])
    by_name = {c["name"]: c for c in out["cases"]}
    assert by_name["gateway may create a payment"]["got"] == "redirected"
    assert by_name["gateway may not delete a payment"]["got_l7_status"] == "403"
    assert by_name["the cloud metadata endpoint is denied"]["got_reason"] == "POLICY_DENY"
    assert by_name["other names do not resolve"]["got_l7_status"] == "REFUSED"
    # `resolve` stays with its case: the same address without it is still denied
    assert by_name["the payment provider is reachable once resolved"]["got"] == "allowed"
    assert by_name["the same address without the DNS answer is denied"]["got"] == "denied"


def test_pci_example_text_output_lists_cases_and_summary() -> None:
    res = run(PCI / "expectations.yaml")
    assert res.exit_code == 0
    assert "PASS" in res.stdout and "FAIL" not in res.stdout
    assert "gateway may create a payment" in res.stdout
    assert res.stdout.rstrip().endswith("25 passed, 0 failed")


def test_a_one_character_path_change_fails_the_payment_case_with_the_trace(tmp_path: Path) -> None:
    pci = pci_copy(tmp_path)
    edit(pci / "policies" / "cde-lockdown.yaml", "path: /v1/payments\n", "path: /v1/payment\n")
    res = run(pci / "expectations.yaml")
    assert res.exit_code == 1
    out = res.stdout
    assert f"FAIL {pci / 'expectations.yaml'}:9  gateway may create a payment" in out
    assert "expected: redirected" in out and "got:      denied (REDIRECTED; http proxy DROPPED 403)" in out
    # the trace explains it: the rule that matched, and the proxy's answer
    assert "CiliumNetworkPolicy cde-payments/cde-lockdown spec.ingress[0]" in out
    assert "L7 verdict (http): DROPPED (HTTP 403 Access denied)" in out
    assert out.rstrip().endswith("24 passed, 1 failed")


def test_a_port_change_fails_exactly_the_cases_that_use_it(tmp_path: Path) -> None:
    pci = pci_copy(tmp_path)
    edit(pci / "policies" / "cde-lockdown.yaml", 'port: "5432"', 'port: "5433"')
    code, out = run_json(pci / "expectations.yaml")
    assert code == 1
    failed = {c["name"] for c in out["cases"] if not c["passed"]}
    # 5433 is now allowed at egress, but the ledger DB's own ingress policy still drops it
    assert failed == {
        "card processor reaches the ledger DB",
        f"ledger DB: {CARD} -> {LEDGER} 5432/TCP",
    }
    [case] = [c for c in out["cases"] if c["name"] == "card processor reaches the ledger DB"]
    assert case["got"] == "denied" and case["traffic_direction"] == "EGRESS"
    assert "expected allowed, got denied" in case["message"]
    assert "Final verdict: DROPPED (POLICY_DENIED, EGRESS)" in case["trace"]


# -- expect kinds, reasons, proxy statuses --------------------------------------------------

EXPECT_CASES = [
    # (case, passes, got)
    (f"from: {GATEWAY}\nto: {FRONTEND}\nport: 8080/TCP\nexpect: allowed\n", True, "allowed"),
    (f"from: {FRONTEND}\nto: {CARD}\nport: 8443/TCP\nexpect: allowed\n", False, "denied"),
    # `allowed` is satisfied through the proxy too; `redirected` only through it
    (f"from: {GATEWAY}\nto: {CARD}\nport: 8443/TCP\nhttp: {{method: POST, path: /v1/payments}}\nexpect: allowed\n", True, "redirected"),
    (f"from: {GATEWAY}\nto: {CARD}\nport: 8443/TCP\nexpect: redirected\n", True, "redirected"),
    (f"from: {GATEWAY}\nto: {FRONTEND}\nport: 8080/TCP\nexpect: redirected\n", False, "allowed"),
    (f"from: {FRONTEND}\nto: {CARD}\nport: 8443/TCP\nexpect: denied\n", True, "denied"),
    (f"from: {GATEWAY}\nto: {FRONTEND}\nport: 8080/TCP\nexpect: denied\n", False, "allowed"),
    # refused by the proxy is denied, and not redirected
    (f"from: {GATEWAY}\nto: {CARD}\nport: 8443/TCP\nhttp: {{method: GET, path: /v1/admin}}\nexpect: denied\n", True, "denied"),
    (f"from: {GATEWAY}\nto: {CARD}\nport: 8443/TCP\nhttp: {{method: GET, path: /v1/admin}}\nexpect: redirected\n", False, "denied"),
    (f"from: {FRONTEND}\nto: {CARD}\nport: 8443/TCP\nexpect: audit\n", False, "denied"),
    (f"from: {GATEWAY}\nto: {CARD}\nicmp: EchoRequest\nexpect: denied\n", True, "denied"),
]


@pytest.mark.parametrize(("case", "passes", "got"), EXPECT_CASES)
def test_each_expect_kind_passes_and_fails(tmp_path: Path, case: str, passes: bool, got: str) -> None:
    code, result = one_case(tmp_path, case)
    assert (code, result["passed"], result["got"]) == (0 if passes else 1, passes, got)
    assert (result["message"] is None) == passes


def test_audit_mode_from_the_files_options(tmp_path: Path) -> None:
    audit = "policy-audit-mode: true\n"
    code, r = one_case(tmp_path, f"from: {FRONTEND}\nto: {CARD}\nport: 8443/TCP\nexpect: audit\nreason: POLICY_DENIED\n", audit)
    assert (code, r["passed"], r["verdict"], r["got_reason"]) == (0, True, "AUDIT", "POLICY_DENIED")
    code, r = one_case(tmp_path, f"from: {FRONTEND}\nto: {CARD}\nport: 8443/TCP\nexpect: denied\n", audit)
    assert (code, r["got"]) == (1, "audit")
    code, r = one_case(tmp_path, f"from: {GATEWAY}\nto: {FRONTEND}\nport: 8080/TCP\nexpect: audit\n", audit)
    assert (code, r["got"]) == (1, "allowed")


METADATA = f"from: {CARD}\nto: 169.254.169.254\nport: 80/TCP\nexpect: denied\n"


@pytest.mark.parametrize(("reason", "passes"), [
    ("POLICY_DENY", True), ("policy_deny", True), ("181", True), ("Policy denied by denylist", True),
    ("POLICY_DENIED", False), ("AUTH_REQUIRED", False),
])
def test_reason_matches_the_drop_reason_by_name_number_or_description(tmp_path: Path, reason: str, passes: bool) -> None:
    code, r = one_case(tmp_path, METADATA + f"reason: {reason}\n")
    assert (code, r["passed"], r["got"]) == (0 if passes else 1, passes, "denied")
    if not passes:
        assert r["message"] == f"expected drop reason {r['reason']}, got POLICY_DENY"


def test_reason_of_a_proxy_refusal_is_none(tmp_path: Path) -> None:
    code, r = one_case(tmp_path, f"from: {GATEWAY}\nto: {CARD}\nport: 8443/TCP\n"
                                 "http: {method: GET, path: /v1/admin}\nexpect: denied\nreason: POLICY_DENIED\n")
    assert code == 1 and r["got"] == "denied"
    assert "expected drop reason POLICY_DENIED, got none (the L7 proxy refused the request" in r["message"]


def test_l7_status_of_http_dns_and_kafka(tmp_path: Path) -> None:
    http = f"from: {GATEWAY}\nto: {CARD}\nport: 8443/TCP\n"
    code, r = one_case(tmp_path, http + "http: {method: DELETE, path: /v1/payments/ab12}\nexpect: denied\nl7_status: 403\n")
    assert (code, r["passed"]) == (0, True)
    code, r = one_case(tmp_path, http + "http: {method: POST, path: /v1/payments}\nexpect: allowed\nl7_status: 403\n")
    assert code == 1 and r["got"] == "redirected"
    assert r["message"] == "expected L7 status 403, got http proxy FORWARDED (no status: the request went through)"
    dns = f"from: {CARD}\nto: {DNS}\ndns: {{query: evil.example.org}}\nexpect: denied\n"
    code, r = one_case(tmp_path, dns + "l7_status: NXDOMAIN\n")
    assert code == 1 and r["got_l7_status"] == "REFUSED"
    # the agent option changes the DNS proxy's answer
    code, r = one_case(tmp_path, dns + "l7_status: nxdomain\n", "tofqdns-dns-reject-response-code: nameError\n")
    assert (code, r["passed"], r["got_l7_status"]) == (0, True, "NXDOMAIN")
    # dropped before any proxy: no status to compare
    code, r = one_case(tmp_path, f"from: {FRONTEND}\nto: {CARD}\nport: 8443/TCP\n"
                                 "http: {method: POST, path: /v1/payments}\nexpect: denied\nl7_status: 403\n")
    assert code == 1 and "dropped before any proxy" in r["message"]


def test_kafka_requests_on_the_seed_cluster(tmp_path: Path) -> None:
    head = f"cluster: {SEED / 'cluster.yaml'}\npolicies: {SEED / 'policies'}\n"
    body = """\
    cases:
      - name: produce orders
        from: streaming/order-service-5c6d7e8f9-a1b2c
        to: streaming/kafka-0
        port: 9092/TCP
        kafka: {role: produce, topic: orders}
        expect: redirected
      - name: produce payments
        from: streaming/order-service-5c6d7e8f9-a1b2c
        to: streaming/kafka-0
        port: 9092/TCP
        kafka: {api_key: produce, topics: [payments], api_version: 3}
        expect: denied
        l7_status: 29
      - name: fetch as the producer
        from: streaming/order-service-5c6d7e8f9-a1b2c
        to: streaming/kafka-0
        port: 9092/TCP
        kafka: {api_key: 1, topics: [orders]}
        expect: allowed
    """
    code, out = run_json(expectations(tmp_path, body, head))
    assert code == 1
    got = {c["name"]: (c["passed"], c["got"], c["got_l7_status"]) for c in out["cases"]}
    assert got == {
        "produce orders": (True, "redirected", None),
        "produce payments": (True, "denied", "29"),
        "fetch as the producer": (False, "denied", "29"),
    }


# -- truth tables ---------------------------------------------------------------------------

TABLE = f"""\
tables:
  - name: api
    port: 8443/TCP
    grid: |
      -          {GATEWAY}  {CARD}  {FRONTEND}
      {GATEWAY}  .  R  .
      {CARD}  X  X  X
      {FRONTEND}  .  {{cell}}  .
"""


def test_truth_table_passes_cell_by_cell(tmp_path: Path) -> None:
    code, out = run_json(expectations(tmp_path, TABLE.format(cell="X")))
    assert code == 0 and out["passed"] == 9
    names = [c["name"] for c in out["cases"]]
    assert f"api: {GATEWAY} -> {CARD} 8443/TCP" in names
    assert {c["table"] for c in out["cases"]} == {"api"}


@pytest.mark.parametrize(("cell", "got"), [(".", "denied"), ("A", "denied"), ("R", "denied")])
def test_truth_table_fails_exactly_the_wrong_cell_at_its_row(tmp_path: Path, cell: str, got: str) -> None:
    path = expectations(tmp_path, TABLE.format(cell=cell))
    code, out = run_json(path)
    assert code == 1
    [bad] = [c for c in out["cases"] if not c["passed"]]
    assert bad["name"] == f"api: {FRONTEND} -> {CARD} 8443/TCP" and bad["got"] == got
    row = line_of(path, FRONTEND)
    assert bad["line"] == row
    res = run(path)
    assert f"FAIL {path}:{row}  api: {FRONTEND} -> {CARD} 8443/TCP" in res.stdout


def test_an_icmp_table(tmp_path: Path) -> None:
    body = f"tables:\n  - name: ping\n    icmp: EchoRequest\n    grid: |\n      - {CARD}\n      {GATEWAY} X\n      {FRONTEND} X\n"
    code, out = run_json(expectations(tmp_path, body))
    assert code == 0 and [c["name"] for c in out["cases"]] == [
        f"ping: {GATEWAY} -> {CARD} icmp 8", f"ping: {FRONTEND} -> {CARD} icmp 8"]


# -- JUnit and JSON -----------------------------------------------------------------------


def test_junit_xml_has_one_suite_per_file_with_counts_and_failure_messages(tmp_path: Path) -> None:
    pci = pci_copy(tmp_path)
    edit(pci / "policies" / "cde-lockdown.yaml", "path: /v1/payments\n", "path: /v1/payment\n")
    other = expectations(tmp_path, TABLE.format(cell="X"))
    report = tmp_path / "junit.xml"
    res = run(pci / "expectations.yaml", other, "--junit", report)
    assert res.exit_code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("34", "1", "0")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(pci / "expectations.yaml"), str(other)]
    assert [(s.get("tests"), s.get("failures"), s.get("skipped")) for s in suites] == [("25", "1", "0"), ("9", "0", "0")]
    for s in suites:
        assert float(s.get("time", "x")) >= 0
        assert all(tc.get("classname") and tc.get("name") and tc.get("time") for tc in s.findall("testcase"))
    failing = [tc for tc in suites[0].findall("testcase") if tc.find("failure") is not None]
    assert [tc.get("name") for tc in failing] == ["gateway may create a payment"]
    assert failing[0].get("line") == "9"
    failure = failing[0].find("failure")
    assert failure is not None
    assert failure.get("message") == "expected redirected, got denied (REDIRECTED; http proxy DROPPED 403)"
    assert "L7 verdict (http): DROPPED (HTTP 403 Access denied)" in (failure.text or "")


def test_json_keys() -> None:
    code, out = run_json(PCI / "expectations.yaml")
    assert code == 0
    assert set(out) >= {"files", "cases", "passed", "failed"}
    assert out["files"] == [str(PCI / "expectations.yaml")]
    for c in out["cases"]:
        assert set(c) >= {"file", "line", "name", "expect", "got", "passed", "reason", "l7_status", "message"}
    first = out["cases"][0]
    assert (first["line"], first["expect"], first["reason"], first["l7_status"]) == (9, "redirected", None, None)


# -- bad input ------------------------------------------------------------------------------

CASE = {"name": "bad one", "from": GATEWAY, "to": CARD, "port": "8443/TCP", "expect": "allowed"}


def bad_case(**replace: str | None) -> str:
    """A file's `cases` with one case: CASE with keys replaced, added, or removed (None)."""
    keys = {**CASE, **replace}
    lines = [f"{k}: {v}" for k, v in keys.items() if v is not None]
    return "cases:\n" + "".join(("  - " if i == 0 else "    ") + line + "\n" for i, line in enumerate(lines))


def line_of(path: Path, start: str) -> int:
    """The line number of the first line of `path` that starts (after indentation) with `start`."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip().startswith(start))


BAD = [
    # (body, line, message part)
    ("clusterr: x\n" + bad_case(), 3, 'unknown key "clusterr" (did you mean "cluster"?)'),
    (bad_case(**{"from": "gateway/api-gateway-7d9x"}), 5, "no pod or node 'gateway/api-gateway-7d9x' in the cluster"),
    (bad_case(to="node/workr-1"), 6, "did you mean 'node/worker-1'?"),
    (bad_case(to=None), 4, "missing required key: to"),
    (bad_case(name=None), 4, "missing required key: name"),
    (bad_case(expect=None), 4, "missing required key: expect"),
    (bad_case(expect="allow"), 8, "unknown expect 'allow': use one of allowed, denied, audit, redirected"),
    (bad_case(icmp="EchoRequest"), 9, "give port or icmp, not both"),
    (bad_case(port="80/HTTP"), 7, "unsupported protocol 'HTTP'"),
    (bad_case(port="0/TCP"), 7, "port must be a number from 1 to 65535"),
    (bad_case(port=None), 4, "missing port (PORT/PROTO, e.g. 8443/TCP) or icmp"),
    (bad_case(http="{method: GET, path: /}", dns="{query: a.com}"), 10, "give one L7 request (http, dns or kafka), not http and dns"),
    (bad_case(http="{method: GET}"), 9, 'missing "path"'),
    (bad_case(reason="POLICY_DENIED"), 9, "reason is the drop reason of a denied or audited flow; this case expects allowed"),
    (bad_case(expect="denied", reason="DENIED"), 9, "unknown drop reason 'DENIED'"),
    (bad_case(l7_status="403"), 9, "l7_status is the proxy's answer to a request"),
    (bad_case(resolve="{api.pgprovider.com: [not-an-ip]}"), 9, "not an IP address"),
    (bad_case(**{"from": "203.0.113.9"}, resolve="{a.com: [1.2.3.4]}"), 9, "resolve needs a pod or node as the source"),
    (bad_case(htpp="{}"), 9, 'unknown key "htpp" (did you mean "http"?)'),
]


@pytest.mark.parametrize(("body", "line", "message"), BAD)
def test_bad_cases_exit_2_with_file_line_and_case(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = expectations(tmp_path, body)
    report = tmp_path / "junit.xml"
    res = run(path, "--junit", report)
    assert res.exit_code == 2
    assert res.stdout == "" and not report.exists()  # nothing was run
    [error, summary] = res.stderr.strip().splitlines()
    assert error.startswith(f"error: {path}:{line}")
    assert message in error
    if "clusterr" not in body:
        assert 'case "bad one"' in error or "name" in message
    assert summary == "1 error; nothing run"


def test_a_case_without_a_name_is_named_by_its_index(tmp_path: Path) -> None:
    res = run(expectations(tmp_path, bad_case(name=None)))
    assert res.exit_code == 2 and "cases[0]: missing required key: name" in res.stderr


def test_bad_policy_path_and_bad_grids(tmp_path: Path) -> None:
    head = f"cluster: {PCI / 'cluster.yaml'}\npolicies: [{PCI / 'policies'}, nope/]\n"
    res = run(expectations(tmp_path, bad_case(), head))
    assert res.exit_code == 2
    assert f"{tmp_path / 't.yaml'}:2: policies[1]: no such file or directory: {tmp_path / 'nope'}" in res.stderr
    ragged = f"tables:\n  - name: g\n    port: 80\n    grid: |\n      - {CARD} {GATEWAY}\n      {GATEWAY} . X\n      {CARD} .\n"
    res = run(path := expectations(tmp_path, ragged))
    assert res.exit_code == 2
    row = line_of(path, f"{CARD} .")
    assert f'{path}:{row}, table "g": tables[0].grid: row {CARD} has 1 cell(s), the header has 2 destination(s)' in res.stderr
    cell = f"tables:\n  - name: g\n    port: 80\n    grid: |\n      - {CARD}\n      {GATEWAY} Y\n"
    res = run(path := expectations(tmp_path, cell))
    assert res.exit_code == 2 and f"{path}:{line_of(path, GATEWAY)}" in res.stderr and "bad cell 'Y' in row" in res.stderr
    unknown = f"tables:\n  - name: g\n    port: 80\n    grid: |\n      - {CARD}\n      shop/frontend-5c8e X\n"
    res = run(path := expectations(tmp_path, unknown))
    assert res.exit_code == 2
    assert f"{path}:{line_of(path, 'shop/')}" in res.stderr and "row shop/frontend-5c8e: no pod or node" in res.stderr
    assert f"did you mean '{FRONTEND}'?" in res.stderr


def test_malformed_yaml_and_unknown_agent_options(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("cluster: x\ncases: [\n")
    res = run(path)
    assert res.exit_code == 2 and f"error: {path}:3: malformed YAML" in res.stderr
    code, out = run_json(path)
    assert code == 2 and out["errors"][0]["line"] == 3
    res = run(expectations(tmp_path, "options:\n  policy-audit-mod: true\n" + bad_case()))
    assert res.exit_code == 2
    assert 'options.policy-audit-mod: unknown agent option "policy-audit-mod" (did you mean "policy-audit-mode"?)' in res.stderr


def test_policy_load_errors_exit_2_and_nothing_runs_for_any_file(tmp_path: Path) -> None:
    bad_policy = tmp_path / "bad-policy.yaml"
    bad_policy.write_text("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x, namespace: shop}\n"
                          "spec:\n  endpointSelector: {}\n  egress:\n  - toFQDN: [{matchName: a.com}]\n")
    head = f"cluster: {PCI / 'cluster.yaml'}\npolicies: [{bad_policy}]\n"
    res = run(PCI / "expectations.yaml", expectations(tmp_path, bad_case(), head))
    assert res.exit_code == 2 and res.stdout == ""
    assert f"error: {bad_policy}:7" in res.stderr and 'unknown field "toFQDN"' in res.stderr
    assert run(tmp_path / "missing.yaml").exit_code == 2


def test_options_win_over_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text("policy-audit-mode: true\n")
    head = f"cluster: {PCI / 'cluster.yaml'}\npolicies: [{PCI / 'policies'}]\nconfig: agent.yaml\n"
    case = f"cases:\n  - name: c\n    from: {FRONTEND}\n    to: {CARD}\n    port: 8443/TCP\n    expect: audit\n"
    code, out = run_json(expectations(tmp_path, case, head))
    assert (code, out["cases"][0]["got"]) == (0, "audit")
    code, out = run_json(expectations(tmp_path, case, head + "options: {policy-audit-mode: false}\n"))
    assert (code, out["cases"][0]["got"]) == (1, "denied")
