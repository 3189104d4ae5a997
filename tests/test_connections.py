"""`ciliary connections`: the observed communication map (rows, filters, outputs, errors,
memory by rows), the L7 path collapsing, observe's flow selector, and the observation fixes
it relies on (ICMP replies, DNS names kept under filters, unreadable flows as bad lines)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from ciliary import cli
from ciliary.flows.observed import PeerResolver
from ciliary.l7.paths import display_path
from ciliary.workflows import connections as conn_mod
from ciliary.workflows.connections import (
    CSV_FIELDS,
    connections,
    l7_summary,
    run_connections_cli,
)
from ciliary.workflows.observe import (
    ObserveOptions,
    flow_selector,
    observe,
    parse_observe_args,
)

ROOT = Path(__file__).parent.parent
SEED_FLOWS = str(ROOT / "examples" / "seed" / "flows.json")
SEED_CLUSTER = str(ROOT / "examples" / "seed" / "cluster.yaml")
SAMPLES = str(ROOT / "tests" / "data" / "flows" / "hand-written-samples.jsonl")
SEED_LINES = Path(SEED_FLOWS).read_bytes().splitlines()

JSON = dict[str, Any]


def run(*args: str, now: datetime | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_connections_cli(list(args), out, err, now=now)
    return code, out.getvalue(), err.getvalue()


def report(*args: str, now: datetime | None = None) -> JSON:
    code, out, err = run(*args, "-o", "json", now=now)
    assert code == 0, err
    result: JSON = orjson.loads(out)
    return result


def rows(*args: str, now: datetime | None = None) -> list[JSON]:
    result: list[JSON] = report(*args, now=now)["rows"]
    return result


def find(rs: list[JSON], src: str, dst: str, port: int, l7: str = "") -> JSON:
    [hit] = [r for r in rs if (r["source"], r["destination"], r["port"], r["l7"]) == (src, dst, port, l7)]
    return hit


def keys(rs: list[JSON]) -> list[tuple[str, str, int, str, str]]:
    return [(r["source"], r["destination"], r["port"], r["protocol"], r["l7"]) for r in rs]


STRIPE = {
    "source": "payments/pg-gateway", "source_kind": "workload",
    "destination": "fqdn:api.stripe.com", "destination_kind": "fqdn",
    "port": 443, "protocol": "TCP", "l7": "", "flows": 24,
    "first_seen": "2026-03-31T23:33:26.333832740Z", "last_seen": "2026-04-01T22:33:26.794885158Z",
    "verdicts": {"FORWARDED": 24},
}


# ---- rows -----------------------------------------------------------------------------------


def test_seed_map_stripe_row_and_totals() -> None:
    r = report(SEED_FLOWS)
    assert find(r["rows"], "payments/pg-gateway", "fqdn:api.stripe.com", 443) == STRIPE
    # 650 flows, 48 of them DNS responses: learned, not connections.
    assert (r["flows"], r["flows_read"], r["connections"], r["bad_lines"]) == (602, 650, 16, 0)
    assert r["unresolved"] == []
    assert sum(x["flows"] for x in r["rows"]) == 602  # no address with two names here
    first = r["rows"][0]
    assert first["flows"] == 48 and all(x["flows"] <= 48 for x in r["rows"])


def test_seed_dns_and_http_rows() -> None:
    rs = rows(SEED_FLOWS)
    dns = find(rs, "payments/pg-gateway", "kube-system/kube-dns", 53, "DNS api.stripe.com")
    assert (dns["protocol"], dns["flows"], dns["destination_kind"]) == ("UDP", 24, "workload")
    assert find(rs, "payments/payments-api", "kube-system/kube-dns", 53,
                "DNS pg-gateway.payments.svc.cluster.local")["flows"] == 24
    # 24 different order ids, one row; the L3/L4 flows of the connection have their own.
    assert find(rs, "shop/frontend", "shop/order-api", 8080, "HTTP GET /api/v1/orders/{n}")["flows"] == 24
    assert find(rs, "shop/frontend", "shop/order-api", 8080)["flows"] == 48


def test_cluster_snapshot_gives_the_same_map_and_names_unlabelled_pods(tmp_path: Path) -> None:
    assert rows(SEED_FLOWS, "--cluster", SEED_CLUSTER) == rows(SEED_FLOWS)
    # pg-gateway's flows without labels: unresolved on their own, its workload with the snapshot.
    stripped = []
    for line in SEED_LINES:
        obj = orjson.loads(line)
        for side in ("source", "destination"):
            if obj["flow"][side].get("pod_name", "").startswith("pg-gateway-"):
                obj["flow"][side]["labels"] = []
        stripped.append(orjson.dumps(obj))
    path = tmp_path / "nolabels.json"
    path.write_bytes(b"\n".join(stripped) + b"\n")
    bare = report(str(path))
    pod = "unresolved:payments/pg-gateway-7b9f8d6c5-r3k8d"
    assert bare["unresolved"] == [{"side": pod, "flows": 24 + 24 + 48,
                                   "reason": "pod payments/pg-gateway-7b9f8d6c5-r3k8d: the flow carries no labels"}]
    row = find(bare["rows"], pod, "fqdn:api.stripe.com", 443)
    assert (row["source_kind"], row["flows"]) == ("unresolved", 24)
    assert find(bare["rows"], "payments/payments-api", pod, 8443)["destination_kind"] == "unresolved"
    code, out, _ = run(str(path))
    assert code == 0 and f"{pod} (96 flow(s)): pod payments/pg-gateway" in out
    with_cluster = report(str(path), "--cluster", SEED_CLUSTER)
    assert with_cluster["unresolved"] == []
    assert find(with_cluster["rows"], "payments/pg-gateway", "fqdn:api.stripe.com", 443) == STRIPE


def test_samples_entities_addresses_icmp_kafka_and_http() -> None:
    rs = rows(SAMPLES)
    host = find(rs, "host", "shop/frontend", 8080)
    assert (host["source_kind"], host["flows"], host["verdicts"]) == ("entity", 1, {"FORWARDED": 1})
    assert find(rs, "remote-node", "shop/catalog", 8080)["source_kind"] == "entity"
    api = find(rs, "cert-manager/cert-manager-controller", "kube-apiserver", 443)
    assert api["destination_kind"] == "entity"
    assert find(rs, "192.0.2.44", "shop/frontend", 8080)["source_kind"] == "world"
    ntp = find(rs, "shop/cart", "cidr:192.0.2.123/32", 123)
    assert (ntp["destination_kind"], ntp["protocol"]) == ("cidr", "UDP")
    icmp = find(rs, "shop/frontend", "shop/cart", 8)
    assert (icmp["protocol"], icmp["flows"]) == ("ICMPv4", 1)
    assert find(rs, "shop/orders-api", "streaming/kafka-broker", 9092, "Kafka produce orders")["flows"] == 1
    # the query string is dropped
    assert find(rs, "shop/frontend", "shop/catalog", 8080, "HTTP GET /api/products")["flows"] == 1
    stripe = find(rs, "shop/frontend", "fqdn:api.stripe.com", 443)
    assert stripe["verdicts"] == {"AUDIT": 1, "FORWARDED": 1}
    assert find(rs, "shop/reporting", "payments/payments-api", 8443)["verdicts"] == {"DROPPED": 3}


# ---- filters ----------------------------------------------------------------------------------


def _touches(r: JSON, ns: str) -> bool:
    return any(r[k].startswith(ns + "/") or r[k].startswith(f"unresolved:{ns}/") for k in ("source", "destination"))


def test_namespace_filter_keeps_the_rows_touching_it() -> None:
    every = rows(SEED_FLOWS)
    payments = rows(SEED_FLOWS, "--namespace", "payments")
    assert payments == [r for r in every if _touches(r, "payments")]
    assert len(payments) == 6 and find(payments, "payments/pg-gateway", "fqdn:api.stripe.com", 443) == STRIPE


def test_not_namespace_and_verdict() -> None:
    every = rows(SEED_FLOWS)
    rest = rows(SEED_FLOWS, "--not", "--namespace", "kube-system")
    assert rest == [r for r in every if not _touches(r, "kube-system")] and len(rest) == 14
    dropped = rows(SAMPLES, "--verdict", "DROPPED")
    assert keys(dropped) == [
        ("shop/reporting", "payments/payments-api", 8443, "TCP", ""),
        ("shop/reporting", "cidr:203.0.113.50/32", 25, "TCP", ""),
        ("shop/frontend", "shop/catalog", 8080, "TCP", "HTTP DELETE /api/products/{n}"),
        ("shop/orders-api", "streaming/kafka-broker", 9092, "TCP", "Kafka produce payments-ledger"),
    ]
    assert all(set(r["verdicts"]) == {"DROPPED"} for r in dropped)


def test_since_until_window() -> None:
    window = ("--since", "2026-04-01T00:00:00Z", "--until", "2026-04-01T01:00:00Z")
    r = report(SEED_FLOWS, *window)
    assert (r["flows"], r["connections"]) == (25, 15)
    for x in r["rows"]:
        assert "2026-04-01T00:00:00Z" <= x["first_seen"] <= x["last_seen"] <= "2026-04-01T01:00:00Z"
    # relative times anchor at `now`, as in observe
    now = datetime(2026, 4, 1, 1, 0, tzinfo=UTC)
    assert rows(SEED_FLOWS, "--since", "1h", "--until", "0s", now=now) == r["rows"]
    assert report(SEED_FLOWS, "--until", "2020-01-01T00:00:00Z")["rows"] == []


def test_filters_do_not_lose_dns_names() -> None:
    # The DNS answers are not on port 443 nor in the window, yet they name the address.
    late = rows(SEED_FLOWS, "--to-port", "443", "--since", "2026-04-01T12:00:00Z")
    assert keys(late) == [("payments/pg-gateway", "fqdn:api.stripe.com", 443, "TCP", "")]
    assert late[0]["flows"] == 11


def test_flow_cluster_is_hubbles_cluster_filter() -> None:
    assert report(SAMPLES, "--flow-cluster", "prod-east") == report(SAMPLES)  # every sample's
    assert report(SAMPLES, "--flow-cluster", "elsewhere")["rows"] == []
    assert report(SAMPLES, "--not", "--flow-cluster", "prod-east")["rows"] == []


@pytest.mark.parametrize("args", [
    ["--namespace", "shop"], ["--verdict", "DROPPED"], ["--not", "--namespace", "kube-system"],
    ["--to-port", "443", "--protocol", "tcp"], ["--since", "2026-03-14T09:12:05Z"],
    ["--allowlist", '{"source_pod":["shop/"]}'], ["-t", "l7"],
])
def test_flow_selector_selects_what_observe_prints(args: list[str]) -> None:
    now = datetime(2026, 3, 14, 10, tzinfo=UTC)
    req = parse_observe_args([SAMPLES, *args, "-o", "json"])
    printed = [orjson.loads(x)["flow"]["uuid"] for x in observe(req.paths, req.options, req.output, now=now)]
    keep = flow_selector(req.options, now)
    assert keep is not None
    flows = [orjson.loads(line)["flow"] for line in Path(SAMPLES).read_bytes().splitlines()]
    assert [f["uuid"] for f in flows if keep(f)] == printed


def test_flow_selector_is_none_without_filters() -> None:
    assert flow_selector(ObserveOptions()) is None
    assert flow_selector(parse_observe_args(["--since", "1h"]).options) is not None


# ---- outputs ------------------------------------------------------------------------------------


def test_json_keys() -> None:
    r = report(SEED_FLOWS)
    assert set(r) == {"rows", "flows", "connections", "flows_read", "skipped_non_flow", "bad_lines", "unresolved"}
    assert all(list(x) == list(STRIPE) for x in r["rows"])


def test_csv_output() -> None:
    code, out, _ = run(SEED_FLOWS, "-o", "csv")
    assert code == 0
    reader = csv.DictReader(io.StringIO(out))
    assert tuple(reader.fieldnames or ()) == CSV_FIELDS
    got = list(reader)
    assert len(got) == 16
    [stripe] = [x for x in got if x["destination"] == "fqdn:api.stripe.com"]
    assert stripe == {k: str(v) if k != "verdicts" else "FORWARDED:24" for k, v in STRIPE.items()}
    code, out, _ = run(SAMPLES, "-o", "csv")
    [mixed] = [x for x in csv.DictReader(io.StringIO(out)) if x["destination"] == "fqdn:api.stripe.com"]
    assert mixed["verdicts"] == "AUDIT:1 FORWARDED:1"


def test_markdown_output() -> None:
    code, out, _ = run(SEED_FLOWS, "-o", "md")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "| Flows | Source | Destination | Port | L7 | Verdicts | First seen | Last seen |"
    assert lines[1].startswith("|---:|")
    assert ("| 24 | `payments/pg-gateway` | `fqdn:api.stripe.com` | 443/TCP |  | FORWARDED:24 "
            "| 2026-03-31T23:33:26Z | 2026-04-01T22:33:26Z |") in lines
    assert len([x for x in lines if x.startswith("| ")]) == 1 + 16
    assert any(x.startswith("602 flow(s) in 16 connection(s)") for x in lines)


def test_dot_output() -> None:
    code, out, _ = run(SAMPLES, "-o", "dot")
    assert code == 0 and out.startswith("digraph connections {") and out.rstrip().endswith("}")
    assert '"shop/frontend" -> "shop/cart" [label="ICMPv4 type 8 (1)\\n8080/TCP (6)"];' in out
    assert '"shop/reporting" -> "payments/payments-api" [label="8443/TCP (3)", color=red, fontcolor=red];' in out
    assert '"shop/catalog" -> "shop/inventory" [label="9000/TCP (1)", color=orange, fontcolor=orange];' in out
    assert '"host" [shape=hexagon];' in out
    edges = [x for x in out.splitlines() if " -> " in x]
    assert len(edges) == len({(r["source"], r["destination"]) for r in rows(SAMPLES)}) == 17


def test_text_output() -> None:
    code, out, err = run(SEED_FLOWS)
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0].split() == ["FLOWS", "SOURCE", "DESTINATION", "PORT", "L7", "VERDICTS", "FIRST", "SEEN", "LAST", "SEEN"]
    [stripe] = [x for x in lines if "fqdn:api.stripe.com" in x]
    assert stripe.split() == ["24", "payments/pg-gateway", "fqdn:api.stripe.com", "443/TCP", "-", "FORWARDED:24",
                              "2026-03-31T23:33:26Z", "2026-04-01T22:33:26Z"]
    assert lines[-1] == ("602 flow(s) in 16 connection(s); 650 flow(s) read, 0 non-flow line(s) skipped, "
                         "0 bad line(s), 0 unresolved side(s)")
    code, out, _ = run(SEED_FLOWS, "--namespace", "nowhere")
    assert code == 0 and out.startswith("no connections\n")


def test_cli_command_and_help() -> None:
    runner = CliRunner()
    res = runner.invoke(cli.app, ["connections", "--help"])
    assert res.exit_code == 0 and "--cluster FILE" in res.stdout and "--flow-cluster" in res.stdout
    res = runner.invoke(cli.app, ["connections", SEED_FLOWS, "--namespace", "payments", "-o", "json"])
    assert res.exit_code == 0
    assert find(orjson.loads(res.stdout)["rows"], "payments/pg-gateway", "fqdn:api.stripe.com", 443) == STRIPE
    res = runner.invoke(cli.app, ["connections", "missing.json"])
    assert res.exit_code == 1 and res.stdout == ""


# ---- memory and progress ------------------------------------------------------------------------


def test_rows_grow_with_distinct_rows_not_flows(tmp_path: Path) -> None:
    block = b"\n".join(SEED_LINES) + b"\n"
    small, big = tmp_path / "small.json", tmp_path / "big.json"
    small.write_bytes(block)
    big.write_bytes(block * 77)  # 50,050 flows
    a = connections([str(small)], PeerResolver())
    b = connections([str(big)], PeerResolver())
    assert (b.stats.flows, a.flows * 77) == (50_050, b.flows)
    assert len(a.rows) == len(b.rows) == 16
    assert [(r.source, r.destination, r.port, r.l7) for r in a.rows] == [
        (r.source, r.destination, r.port, r.l7) for r in b.rows]
    assert [r.flows * 77 for r in a.rows] == [r.flows for r in b.rows]
    assert [r.first_text for r in a.rows] == [r.first_text for r in b.rows]


def test_progress_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conn_mod, "PROGRESS_EVERY", 200)
    code, out, err = run(SEED_FLOWS, "-o", "json")
    assert code == 0 and orjson.loads(out)["flows"] == 602
    assert err.splitlines() == ["... 200 flows", "... 400 flows", "... 600 flows"]


# ---- errors and bad lines ------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["missing.json"], "error: cannot read missing.json: No such file or directory"),
    ([SEED_FLOWS, "--cluster", "missing.yaml"], "missing.yaml"),
    ([SEED_FLOWS, "--bogus"], "error: unknown flag: --bogus"),
    ([SEED_FLOWS, "--verdict", "NOPE"], "invalid --verdict value: NOPE"),
    ([SEED_FLOWS, "--since", "yesterday"], "yesterday"),
    ([SEED_FLOWS, "--first", "3"], "--first is not supported by connections"),
    ([SEED_FLOWS, "--time-format", "StampMilli"], "--time-format is not supported"),
    ([SEED_FLOWS, "-o", "compact"], "invalid output format: 'compact'"),
    ([SEED_FLOWS, "--cluster"], "flag needs an argument: --cluster"),
    ([SEED_FLOWS, "--not", "--cluster", SEED_CLUSTER], "--not must be followed by a filter flag, got --cluster"),
    ([SEED_FLOWS, "--not", "-o", "json"], "--not must be followed by a filter flag, got --output"),
    ([SEED_FLOWS, "--cluster", SEED_CLUSTER, "--cluster", SEED_CLUSTER], "--cluster given more than once"),
])
def test_errors_exit_1_with_a_message_and_no_output(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert (code, out) == (1, "")
    assert message in err


def test_bad_cluster_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text("kind: List\nitems: [\n")
    code, out, err = run(SEED_FLOWS, "--cluster", str(bad))
    assert (code, out) == (1, "")
    assert f"{bad}:" in err and "malformed YAML" in err


def test_bad_lines_warn_and_strict_stops(tmp_path: Path) -> None:
    path = tmp_path / "flows.json"
    path.write_bytes(b"\n".join([*SEED_LINES[:10], b"{not json", *SEED_LINES[10:]]) + b"\n")
    code, out, err = run(str(path), "-o", "json")
    assert code == 0 and orjson.loads(out)["bad_lines"] == 1 and orjson.loads(out)["flows_read"] == 650
    assert f"warning: {path}:11: invalid JSON" in err and "skipped 1 bad line(s)" in err
    code, out, err = run(str(path), "--strict")
    assert (code, out) == (1, "") and f"error: {path}:11:" in err


def test_a_flow_the_filters_cannot_read_is_a_bad_line(tmp_path: Path) -> None:
    obj = orjson.loads(SEED_LINES[0])
    obj["flow"]["time"] = "garbage"
    path = tmp_path / "flows.json"
    path.write_bytes(b"\n".join([orjson.dumps(obj), *SEED_LINES[1:]]) + b"\n")
    r = report(str(path), "--since", "2026-01-01T00:00:00Z")
    assert (r["bad_lines"], r["flows_read"], r["flows"]) == (1, 649, 601)
    code, out, err = run(str(path), "--since", "2026-01-01T00:00:00Z", "--strict")
    assert (code, out) == (1, "") and f"error: {path}:1:" in err  # the strict reader checks types first


# ---- observation details --------------------------------------------------------------------------


def test_icmp_echo_reply_folds_into_its_request(tmp_path: Path) -> None:
    req = orjson.loads(SEED_LINES[0])  # shop/frontend -> shop/backend
    f = req["flow"]
    f["l4"] = {"ICMPv4": {"type": 8}}
    rep = orjson.loads(SEED_LINES[0])
    g = rep["flow"]
    g["l4"] = {"ICMPv4": {}}  # echo reply: type 0, omitted as Hubble does
    g["is_reply"] = True
    g["IP"] = {"source": f["IP"]["destination"], "destination": f["IP"]["source"], "ipVersion": "IPv4"}
    g["source"], g["destination"] = f["destination"], f["source"]
    path = tmp_path / "icmp.json"
    path.write_bytes(orjson.dumps(req) + b"\n" + orjson.dumps(rep) + b"\n")
    rs = rows(str(path))
    assert keys(rs) == [("shop/frontend", "shop/backend", 8, "ICMPv4", "")]
    assert rs[0]["flows"] == 2


def test_an_address_with_two_names_is_in_both_rows_and_counted_once(tmp_path: Path) -> None:
    answer = next(orjson.loads(x) for x in SEED_LINES if b'"RESPONSE"' in x and b"api.stripe.com" in x)
    other = orjson.loads(orjson.dumps(answer))
    other["flow"]["l7"]["dns"]["query"] = "files.stripe.com."
    tcp = next(x for x in SEED_LINES if b'"destination":"54.187.10.20"' in x)
    path = tmp_path / "names.json"
    path.write_bytes(b"\n".join([orjson.dumps(answer), orjson.dumps(other), tcp]) + b"\n")
    r = report(str(path))
    assert keys(r["rows"]) == [("payments/pg-gateway", "fqdn:api.stripe.com", 443, "TCP", ""),
                               ("payments/pg-gateway", "fqdn:files.stripe.com", 443, "TCP", "")]
    assert r["flows"] == 1 and [x["flows"] for x in r["rows"]] == [1, 1]


def test_unnamed_world_address_is_a_cidr_row(tmp_path: Path) -> None:
    v6 = orjson.loads(next(x for x in SEED_LINES if b'"destination":"54.187.10.20"' in x))
    v6["flow"]["IP"] = {"source": "fd00::14", "destination": "2001:db8::1", "ipVersion": "IPv6"}
    path = tmp_path / "v6.json"
    path.write_bytes(orjson.dumps(v6) + b"\n")
    [row] = rows(str(path))
    assert (row["destination"], row["destination_kind"]) == ("cidr:2001:db8::1/128", "cidr")


# ---- L7 summaries -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "collapsed"), [
    ("/", "/"),
    ("", ""),
    ("/api/v1/orders", "/api/v1/orders"),
    ("/api/v1/orders/1234", "/api/v1/orders/{n}"),
    ("/api/v1/orders/1234/items/7", "/api/v1/orders/{n}/items/{n}"),
    ("/users/3f0b6a52-8c1e-4f0d-9b7a-5d2c6e1f8a90/cart", "/users/{uuid}/cart"),
    ("/users/3F0B6A52-8C1E-4F0D-9B7A-5D2C6E1F8A90", "/users/{uuid}"),
    ("/blobs/4bf92f3577b34da6a3ce929d0e0e4736", "/blobs/{hex}"),
    ("/commits/0123456789abcdef0123456789abcdef01234567", "/commits/{hex}"),
    ("/objects/5f2b1c9e", "/objects/{hex}"),  # 8 hex digits, letters and digits both
    ("/deadbeef/facade", "/deadbeef/facade"),  # words spelt in a-f stay
    ("/v1/payments/ab12-cd", "/v1/payments/ab12-cd"),
    ("/api/products?category=shoes&page=2", "/api/products"),
    ("/docs/page#section-3", "/docs/page"),
    ("/api/v2/", "/api/v2/"),
    ("/x/\u0661\u0662", "/x/\u0661\u0662"),  # non-ASCII digits are not ids
    ("/orders/12a", "/orders/12a"),
])
def test_routes_name_identifier_segments(path: str, collapsed: str) -> None:
    assert display_path(path) == collapsed


def test_l7_summaries() -> None:
    from ciliary.l7.http import HTTPRequest
    from ciliary.l7.kafka import KafkaRequest
    from ciliary.verdict.types import DNSQuery

    assert l7_summary(None) == ""
    assert l7_summary(HTTPRequest("get", "/a/1?b=2")) == "HTTP GET /a/{n}"
    assert l7_summary(KafkaRequest(1, 11, "c", ("orders",))) == "Kafka fetch orders"
    assert l7_summary(KafkaRequest(3, 9)) == "Kafka metadata"
    assert l7_summary(DNSQuery("API.Stripe.com.")) == "DNS api.stripe.com"
