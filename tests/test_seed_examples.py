"""The seed article's L7, Kafka, gRPC, toFQDNs and PCI examples (examples/seed/policies 05, 06,
07, 08, 12 on examples/seed/cluster.yaml), end to end through `trace()` as `ciliary trace`
runs them: for each, requests that must pass and requests that must not
(/work/shared/reference/seed-cilium-network-policy-in-practice.txt, "L7 Policy", "DNS-Based
Egress Policy", "Common Pitfalls", PCI example).

04-deny-metadata-endpoint.yaml has only `egressDeny`, which puts the egress of every `shop`
pod in default deny (cilium-semantics.md §3.1; ciliary reproduces Cilium, see
docs/semantics.md), so with the whole directory a shop -> shop request is DROPPED at egress
before any proxy sees it. `test_deny_metadata_endpoint_blocks_shop_egress` asserts exactly
that; every other test loads the directory without 04 so that the L7 verdicts are reached.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ciliary.l7.http import HTTPRequest, grpc_request
from ciliary.policy.config import AgentConfig
from ciliary.policy.engine import PolicyEngine
from ciliary.verdict.types import DNSQuery, L7Request, Verdict
from ciliary.workflows.engine import build_engine
from ciliary.workflows.trace import build_request, trace
from engine_helpers import (
    DROPPED,
    EGRESS,
    FORWARDED,
    INGRESS,
    POLICY_DENIED,
    REDIRECTED,
    l7_outcome,
    outcome,
    refs,
)

SEED = Path(__file__).resolve().parent.parent / "examples" / "seed"
CLUSTER = str(SEED / "cluster.yaml")
ALL_POLICIES = sorted((SEED / "policies").glob("*.yaml"))
WITHOUT_04 = [p for p in ALL_POLICIES if not p.name.startswith("04-")]

TCP, UDP = 6, 17

FRONTEND = "shop/frontend-7d9c5b8f6-k2x4p"
BACKEND = "shop/backend-5f6d8c9b7-xz91c"
ORDER_API = "shop/order-api-6c8d7f5b4-p7w2n"
INVENTORY = "shop/inventory-grpc-59b7c6d8f-h4t6v"
KAFKA = "streaming/kafka-0"
ORDER_SVC = "streaming/order-service-5c6d7e8f9-a1b2c"
SETTLEMENT = "streaming/settlement-service-6d7e8f9a1-d3e4f"
PG = "payments/pg-gateway-7b9f8d6c5-r3k8d"
PAYMENTS_API = "payments/payments-api-8c7d6b5f4-m2n9s"
COREDNS = "kube-system/coredns-5d78c9869d-7xk2p"  # the first kube-dns pod: `--resolve` uses it
CARD = "cde-payments/card-processor-6b7c8d9e0-c5v7b"
LEDGER = "cde-db/ledger-db-0"
API_GW = "gateway/api-gateway-8d9e0f1a2-g6h8j"
WIKI = "internal-tools/wiki-7f8e9d6c5-w8q2e"

STRIPE_IP, TOSS_IP, EVIL_IP, PGPROVIDER_IP = "54.187.216.72", "13.124.10.20", "66.66.66.66", "34.120.5.5"


def seed_engine(with_04: bool = False) -> PolicyEngine:
    """A fresh engine (toFQDNs tests learn names into it)."""
    return build_engine(CLUSTER, ALL_POLICIES if with_04 else WITHOUT_04, AgentConfig())


def run(e: PolicyEngine, src: str, dst: str, proto: int, port: int, request: L7Request | None = None) -> Verdict:
    v, observations = trace(e, src, dst, proto, port, request)
    assert observations == []
    return v


def l7_of(v: Verdict) -> tuple[str, int | None]:
    assert v.l7 is not None
    return v.l7.verdict, v.l7.http_status if v.l7.type == "http" else v.l7.kafka_error_code


# --- 04: the shop-wide egressDeny ------------------------------------------------------------------

def test_deny_metadata_endpoint_blocks_shop_egress() -> None:
    e = seed_engine(with_04=True)
    # the seed's own L7 example is unreachable: frontend's egress is default deny
    v = run(e, FRONTEND, ORDER_API, TCP, 8080, HTTPRequest("GET", "/api/v1/orders/42"))
    assert outcome(v) == (DROPPED, POLICY_DENIED, EGRESS)
    assert v.l7 is None and not v.egress.redirected
    assert v.egress.default_deny
    # ... and the only rule selecting it is 04's egressDeny
    assert v.egress.policy is not None
    assert [str(r.origin) for r in v.egress.policy.rules] == ["CiliumNetworkPolicy shop/deny-metadata-endpoint spec.egressDeny[0]"]
    v = run(e, ORDER_API, INVENTORY, TCP, 50051, grpc_request("inventory.InventoryService", "CheckStock"))
    assert outcome(v) == (DROPPED, POLICY_DENIED, EGRESS)
    # and the metadata endpoint itself is dropped by the deny rule (181)
    v = run(e, FRONTEND, "169.254.169.254", TCP, 80)
    assert outcome(v) == (DROPPED, "POLICY_DENY", EGRESS)
    assert refs(v.egress.denied_by) == ["CiliumNetworkPolicy shop/deny-metadata-endpoint"]
    # without 04 the same request reaches order-api's proxy
    v = run(seed_engine(), FRONTEND, ORDER_API, TCP, 8080, HTTPRequest("GET", "/api/v1/orders/42"))
    assert l7_outcome(v) == (REDIRECTED, None, FORWARDED)


# --- 05: HTTP method/path on order-api ---------------------------------------------------------------

# frontend -> order-api:8080 (method, path, allowed); test_l7_request_through_the_proxy
API_L7_REQUESTS = [
    ("GET", "/api/v1/orders/42", True),
    ("GET", "/api/v1/orders", True),
    ("POST", "/api/v1/orders", True),
    ("GET", "/healthz", True),
    # "DELETE, or the /admin path ... are rejected with HTTP 403"
    ("DELETE", "/api/v1/orders/42", False),
    ("GET", "/admin", False),
    # POST is allowed on the collection only (the path regex matches the whole path)
    ("POST", "/api/v1/orders/42", False),
    ("PUT", "/api/v1/orders/42", False),
    ("GET", "/healthz/live", False),
]


def test_api_l7_allow_other_clients_and_ports() -> None:
    e = seed_engine()
    # only frontend is selected: backend's request never reaches the proxy
    v = run(e, BACKEND, ORDER_API, TCP, 8080, HTTPRequest("GET", "/api/v1/orders/42"))
    assert outcome(v) == (DROPPED, POLICY_DENIED, INGRESS) and v.l7 is None
    # the second frontend replica (other node) is the same identity
    v = run(e, "shop/frontend-7d9c5b8f6-q8m3z", ORDER_API, TCP, 8080, HTTPRequest("GET", "/api/v1/orders/7"))
    assert l7_outcome(v) == (REDIRECTED, None, FORWARDED)
    # another port of order-api is not allowed at all
    assert outcome(run(e, FRONTEND, ORDER_API, TCP, 9090)) == (DROPPED, POLICY_DENIED, INGRESS)


# --- 06: Kafka topics ----------------------------------------------------------------------------

# -> kafka:9092 (src, role, apiKey, topics, allowed), API version 1
KAFKA_REQUESTS = [
    (ORDER_SVC, "produce", None, ["orders"], True),
    (ORDER_SVC, "produce", None, ["payments"], False),
    (ORDER_SVC, "produce", None, ["orders", "payments"], False),
    (ORDER_SVC, None, "metadata", ["orders"], True),  # part of the produce role
    (ORDER_SVC, "consume", None, ["orders"], False),  # fetch: not part of produce
    (SETTLEMENT, "consume", None, ["orders"], True),
    (SETTLEMENT, None, "offsetcommit", ["orders"], True),
    (SETTLEMENT, None, "joingroup", [], True),
    (SETTLEMENT, "consume", None, ["payments"], False),
    (SETTLEMENT, "produce", None, ["orders"], False),
]


def test_kafka_other_clients_are_dropped() -> None:
    v = run(seed_engine(), PAYMENTS_API, KAFKA, TCP, 9092, build_request(kafka_role="produce", kafka_topics=["orders"]))
    assert outcome(v) == (DROPPED, POLICY_DENIED, EGRESS)  # payments egress is default deny (09)
    v = run(seed_engine(), WIKI, KAFKA, TCP, 9092, build_request(kafka_role="produce", kafka_topics=["orders"]))
    assert outcome(v) == (DROPPED, POLICY_DENIED, INGRESS) and v.l7 is None


# --- 07: gRPC methods ----------------------------------------------------------------------------

# order-api -> inventory:50051, inventory.InventoryService (method, allowed)
GRPC_REQUESTS = [("CheckStock", True), ("ReserveStock", True), ("DeleteStock", False), ("CheckStockAll", False)]


def test_grpc_other_service_and_client() -> None:
    e = seed_engine()
    v = run(e, ORDER_API, INVENTORY, TCP, 50051, grpc_request("admin.AdminService", "CheckStock"))
    assert l7_of(v) == (DROPPED, 403)
    v = run(e, FRONTEND, INVENTORY, TCP, 50051, grpc_request("inventory.InventoryService", "CheckStock"))
    assert outcome(v) == (DROPPED, POLICY_DENIED, INGRESS)


# --- 08: toFQDNs for pg-gateway ------------------------------------------------------------------

def test_external_api_after_resolve() -> None:
    e = seed_engine()
    # `ciliary trace ... --resolve api.stripe.com=IP`: the lookup passes the DNS proxy first
    v, [obs] = trace(e, PG, STRIPE_IP, TCP, 443, None, [("api.stripe.com", [STRIPE_IP])])
    assert obs.learned
    assert obs.server == COREDNS
    assert obs.verdict.l7 is not None and obs.verdict.l7.dns_rcode == "NOERROR"
    assert outcome(v) == (FORWARDED, None, EGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy payments/allow-external-apis"]
    # only 443
    assert outcome(run(e, PG, STRIPE_IP, TCP, 80)) == (DROPPED, POLICY_DENIED, EGRESS)
    # the same address without the lookup (fresh engine): dropped
    assert outcome(run(seed_engine(), PG, STRIPE_IP, TCP, 443)) == (DROPPED, POLICY_DENIED, EGRESS)
    # an address never resolved: dropped
    assert outcome(run(e, PG, "54.187.216.73", TCP, 443)) == (DROPPED, POLICY_DENIED, EGRESS)


@pytest.mark.parametrize(
    ("name", "reachable"),
    [
        ("api.stripe.com", True),
        ("api.tosspayments.com", True),  # matchPattern "*.tosspayments.com"
        ("tosspayments.com", False),  # "*." needs a label in front
        ("a.b.tosspayments.com", False),  # "*" never spans a dot
        ("stripe.com", False),
        ("evil.com", False),
    ],
)
def test_external_api_names(name: str, reachable: bool) -> None:
    e = seed_engine()
    v, [obs] = trace(e, PG, TOSS_IP, TCP, 443, None, [(name, [TOSS_IP])])
    # the DNS rule is matchPattern "*": the proxy allows (and learns) every name ...
    assert obs.learned
    # ... but only names selected by toFQDNs become reachable ("*" in the DNS rule is not "*" in toFQDNs)
    assert outcome(v) == ((FORWARDED, None, EGRESS) if reachable else (DROPPED, POLICY_DENIED, EGRESS))


def test_dns_query_with_match_pattern_star() -> None:
    # the seed's DNS rule `matchPattern: "*"` allows every query: evil.com resolves (NOERROR) ...
    e = seed_engine()
    v = run(e, PG, COREDNS, UDP, 53, DNSQuery("evil.com"))
    assert (v.verdict, v.traffic_direction) == (REDIRECTED, EGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy payments/allow-external-apis"]
    assert v.l7 is not None and (v.l7.verdict, v.l7.dns_rcode) == (FORWARDED, "NOERROR")
    # ... and the connection to its address is still dropped
    v, _ = trace(e, PG, EVIL_IP, TCP, 443, None, [("evil.com", [EVIL_IP])])
    assert outcome(v) == (DROPPED, POLICY_DENIED, EGRESS)
    # DNS over TCP is not in the rule (53/UDP only)
    assert outcome(run(e, PG, COREDNS, TCP, 53, DNSQuery("api.stripe.com"))) == (DROPPED, POLICY_DENIED, EGRESS)


def test_pitfall_fqdn_without_dns_rule(tmp_path: Path) -> None:
    # the article's pitfall 1: 08 without its DNS block. pg-gateway's egress is default deny,
    # so the lookup is dropped, nothing is learned, and the connection is dropped
    doc = yaml.safe_load((SEED / "policies" / "08-allow-external-apis.yaml").read_text())
    doc["spec"]["egress"] = [r for r in doc["spec"]["egress"] if "toFQDNs" in r]
    broken = tmp_path / "08-without-dns.yaml"
    broken.write_text(yaml.safe_dump(doc))
    e = build_engine(CLUSTER, [*(p for p in WITHOUT_04 if not p.name.startswith("08-")), broken], AgentConfig())
    v, [obs] = trace(e, PG, STRIPE_IP, TCP, 443, None, [("api.stripe.com", [STRIPE_IP])])
    assert not obs.learned
    assert outcome(obs.verdict) == (DROPPED, POLICY_DENIED, EGRESS)
    assert outcome(v) == (DROPPED, POLICY_DENIED, EGRESS)
    # the same with the seed's 08 works
    v, [obs] = trace(seed_engine(), PG, STRIPE_IP, TCP, 443, None, [("api.stripe.com", [STRIPE_IP])])
    assert obs.learned and outcome(v) == (FORWARDED, None, EGRESS)


# --- 12: the PCI CDE lockdown ----------------------------------------------------------------------

# api-gateway -> card-processor:8443 (method, path, allowed)
CDE_REQUESTS = [
    ("POST", "/v1/payments", True),
    ("GET", "/v1/payments/3f2a-9c01", True),
    ("GET", "/v1/payments/XYZ", False),  # [0-9a-f-]+ only
    ("GET", "/v1/payments", False),
    ("GET", "/v1/payments/3f2a/refunds", False),
    ("DELETE", "/v1/payments/3f2a", False),
    ("POST", "/v1/payments/3f2a", False),
]


def test_cde_ingress_from_anyone_else_is_dropped() -> None:
    e = seed_engine()
    for src in (FRONTEND, PG, "monitoring/prometheus-0", "1.2.3.4"):
        v = run(e, src, CARD, TCP, 8443, HTTPRequest("POST", "/v1/payments"))
        assert v.verdict == DROPPED and v.l7 is None, src
    assert outcome(run(e, API_GW, CARD, TCP, 22)) == (DROPPED, POLICY_DENIED, INGRESS)


@pytest.mark.parametrize(
    ("qname", "allowed"),
    [
        ("api.pgprovider.com", True),
        ("ledger.internal.example.com", True),
        ("google.com", False),
        ("pgprovider.com", False),
        ("internal.example.com", False),
        ("a.b.internal.example.com", False),
    ],
)
def test_cde_dns(qname: str, allowed: bool) -> None:
    v = run(seed_engine(), CARD, COREDNS, UDP, 53, DNSQuery(qname))
    assert (v.verdict, v.traffic_direction) == (REDIRECTED, EGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy cde-payments/cde-lockdown"]
    assert v.l7 is not None
    assert (v.l7.verdict, v.l7.dns_rcode) == ((FORWARDED, "NOERROR") if allowed else (DROPPED, "REFUSED"))


def test_cde_egress_to_payment_provider() -> None:
    e = seed_engine()
    v, [obs] = trace(e, CARD, PGPROVIDER_IP, TCP, 443, None, [("api.pgprovider.com", [PGPROVIDER_IP])])
    assert obs.learned
    assert outcome(v) == (FORWARDED, None, EGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy cde-payments/cde-lockdown"]
    # google.com is REFUSED by the proxy, so its address is never learned
    v, [obs] = trace(e, CARD, "142.250.1.1", TCP, 443, None, [("google.com", ["142.250.1.1"])])
    assert not obs.learned
    assert obs.verdict.l7 is not None and obs.verdict.l7.dns_rcode == "REFUSED"
    assert outcome(v) == (DROPPED, POLICY_DENIED, EGRESS)
    # an internal name is resolvable but not a toFQDNs target
    v, [obs] = trace(e, CARD, "10.99.0.5", TCP, 443, None, [("vault.internal.example.com", ["10.99.0.5"])])
    assert obs.learned
    assert outcome(v) == (DROPPED, POLICY_DENIED, EGRESS)


def test_cde_egress_to_ledger_and_nothing_else() -> None:
    e = seed_engine()
    v = run(e, CARD, LEDGER, TCP, 5432)
    assert outcome(v) == (FORWARDED, None, EGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy cde-payments/cde-lockdown"]
    assert outcome(run(e, CARD, LEDGER, TCP, 22)) == (DROPPED, POLICY_DENIED, EGRESS)
    assert outcome(run(e, CARD, PAYMENTS_API, TCP, 8080)) == (DROPPED, POLICY_DENIED, EGRESS)
    assert outcome(run(e, CARD, "8.8.8.8", TCP, 443)) == (DROPPED, POLICY_DENIED, EGRESS)


# --- 05, 06, 07, 12: each request of the tables above through the proxy ---------------------------

FWD_L7 = (FORWARDED, None)
L7_CASES = [
    *(pytest.param(FRONTEND, ORDER_API, 8080, build_request(http=(method, path)),
                   "CiliumNetworkPolicy shop/api-l7-allow", FWD_L7 if ok else (DROPPED, 403),
                   id=f"05-{method}-{path}")
      for method, path, ok in API_L7_REQUESTS),
    *(pytest.param(src, KAFKA, 9092,
                   build_request(kafka_role=role, kafka_api_key_name=api_key, kafka_topics=topics, kafka_api_version=1),
                   "CiliumNetworkPolicy streaming/kafka-topic-policy", FWD_L7 if ok else (DROPPED, 29),
                   id=f"06-{src.split('/')[1].rsplit('-', 2)[0]}-{role or api_key}-{'+'.join(topics) or 'no-topic'}")
      for src, role, api_key, topics, ok in KAFKA_REQUESTS),
    *(pytest.param(ORDER_API, INVENTORY, 50051, grpc_request("inventory.InventoryService", method),
                   "CiliumNetworkPolicy shop/grpc-method-policy", FWD_L7 if ok else (DROPPED, 403),
                   id=f"07-{method}")
      for method, ok in GRPC_REQUESTS),
    *(pytest.param(API_GW, CARD, 8443, HTTPRequest(method, path),
                   "CiliumNetworkPolicy cde-payments/cde-lockdown", FWD_L7 if ok else (DROPPED, 403),
                   id=f"12-{method}-{path}")
      for method, path, ok in CDE_REQUESTS),
]


@pytest.mark.parametrize(("src", "dst", "port", "request_", "policy", "l7"), L7_CASES)
def test_l7_request_through_the_proxy(
    src: str, dst: str, port: int, request_: L7Request | None, policy: str, l7: tuple[str, int | None]
) -> None:
    v = run(seed_engine(), src, dst, TCP, port, request_)
    # the connection works (redirected to Envoy); the proxy forwards the request or denies it:
    # HTTP 403, or Kafka TOPIC_AUTHORIZATION_FAILED (29)
    assert (v.verdict, v.traffic_direction) == (REDIRECTED, INGRESS)
    assert refs(v.ingress.allowed_by) == [policy]
    assert l7_of(v) == l7
