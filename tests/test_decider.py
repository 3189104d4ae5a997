"""The `Decider` (what every workflow asks) decides exactly as the plain functions of
`ciliary.verdict.decide` do, while sharing decisions by key: connections, requests on them,
and DNS answers learned in time order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ciliary.cluster.loader import read_cluster
from ciliary.l7.http import HTTPRequest
from ciliary.l7.kafka import kafka_request
from ciliary.model.files import read_documents
from ciliary.model.loader import load_policies
from ciliary.policy.config import AgentConfig
from ciliary.policy.engine import PolicyEngine
from ciliary.verdict.decide import decide, decide_request, observe_dns_answer, resolve_peer
from ciliary.verdict.decider import Decider
from ciliary.verdict.types import Connection, DNSQuery, Verdict
from ciliary.workflows.matrix import Probe, compute_matrix
from engine_helpers import P, cnp, engine, l7_cnp, make_cluster, parse_l4

SEED = Path(__file__).parent.parent / "examples" / "seed"

SERVER_HTTP = l7_cnp("server-http", "ingress", "8080/TCP", """
http: [{method: GET, path: "/public.*"}, {method: POST, path: /submit, headers: ["X-Token: abc"]}]
""")
SERVER_HTTP_NO_HEADERS = l7_cnp("server-http", "ingress", "8080/TCP", 'http: [{method: GET, path: "/public.*"}]')
CLIENT_HTTP_EGRESS = l7_cnp("client-http", "egress", "8080/TCP", "http: [{method: GET}]", subject="client", peer="server")
SERVER_DENY_LOCAL = cnp("server-deny-local", """
endpointSelector: {matchLabels: {app: server}}
ingressDeny: [{fromEndpoints: [{matchLabels: {app: local}}]}]
""")
CLIENT_DNS = l7_cnp("client-dns", "egress", "53/UDP", 'dns: [{matchPattern: "*.example.com"}]', subject="client", peer="server")
SERVER_KAFKA = l7_cnp("server-kafka", "ingress", "9092/TCP", "kafka: [{role: produce, topic: orders}]")

GET_PUBLIC = HTTPRequest("GET", "/public/x", "server", ())
GET_PUBLIC_TRACED = HTTPRequest("GET", "/public/x", "server", (("X-Request-Id", "42"),))
GET_PRIVATE = HTTPRequest("GET", "/private", "server", ())
POST_OK = HTTPRequest("POST", "/submit", "server", (("X-Token", "abc"),))
POST_BAD = HTTPRequest("POST", "/submit", "server", (("X-Token", "nope"),))


def summary(v: Verdict) -> tuple[Any, ...]:
    """Everything a verdict says, but which connection and endpoint it was decided for
    first (a shared decision names those)."""
    def side(s: Any) -> tuple[Any, ...]:
        return (s.applies, s.verdict, s.drop_reason_desc, s.redirected, s.reason, s.allowed_by, s.denied_by,
                s.audited_drop_reason, s.match_type, s.peer_identity, s.l7.as_dict() if s.l7 else None)
    return (v.verdict, v.predicted, v.drop_reason_desc, v.traffic_direction, v.policy_match_type, side(v.egress),
            side(v.ingress), v.src_identity, v.dst_identity, v.l7.as_dict() if v.l7 else None, v.hubble_fields())


REQUEST_CASES = [
    ((SERVER_HTTP,), "app/client", "8080/TCP", [GET_PUBLIC, GET_PRIVATE, POST_OK, POST_BAD]),
    ((SERVER_HTTP, CLIENT_HTTP_EGRESS), "app/client", "8080/TCP", [GET_PUBLIC, GET_PRIVATE, POST_OK, POST_BAD]),
    ((SERVER_HTTP, SERVER_DENY_LOCAL), "app/local", "8080/TCP", [GET_PUBLIC, POST_OK]),  # dropped at L3/L4
    ((SERVER_HTTP,), "other/client", "8080/TCP", [GET_PUBLIC]),  # not redirected: default deny
    ((CLIENT_DNS,), "app/client", "53/UDP", [DNSQuery("api.example.com"), DNSQuery("evil.org")]),
    ((SERVER_KAFKA,), "app/client", "9092/TCP", [kafka_request("produce", 0, topics=("orders",)), kafka_request("produce", 0, topics=("audit",))]),
]


@pytest.mark.parametrize(("policies", "src", "l4", "requests"), REQUEST_CASES)
def test_a_request_is_decided_as_decide_with_the_request_would(
    policies: tuple[str, ...], src: str, l4: str, requests: list[Any]
) -> None:
    e = engine(*policies)
    decider = Decider(e)
    proto, port = parse_l4(l4)
    s, d = resolve_peer(e, src), resolve_peer(e, "app/server")
    base = decide(e, Connection(s, d, proto, port))
    connection = decider.decide_connection(s, d, proto, port)
    assert summary(connection.verdict) == summary(base)
    for req in requests * 2:  # the second time from the request cache
        want = decide(e, Connection(s, d, proto, port, req))
        plain = decide_request(e, base, req)
        assert summary(plain) == summary(want), req
        assert plain.connection.l7 == req
        assert summary(decider.decide_request(connection, req).verdict) == summary(want), req


def test_decide_request_needs_a_verdict_decided_without_a_request() -> None:
    e = engine(SERVER_HTTP)
    s, d = resolve_peer(e, "app/client"), resolve_peer(e, "app/server")
    with pytest.raises(ValueError, match="without a request"):
        decide_request(e, decide(e, Connection(s, d, 6, 8080, GET_PUBLIC)), GET_PRIVATE)


def test_connections_with_one_key_share_one_decision() -> None:
    # app/client and other/client differ in namespace, so in identity; two pods of one
    # identity and policy share it.
    e = engine(SERVER_HTTP)
    decider = Decider(e)
    server = resolve_peer(e, "app/server")
    a = decider.decide_connection(resolve_peer(e, "app/client"), server, 6, 8080)
    assert decider.decide_connection(resolve_peer(e, "app/client"), server, 6, 8080) is a
    assert decider.decide_connection(resolve_peer(e, "app/client"), server, 6, 9090) is not a
    b = decider.decide_connection(resolve_peer(e, "other/client"), server, 6, 8080)
    assert b is not a and b.key != a.key and a.key is not None
    assert a.key.dst_identity == b.key.dst_identity and a.key.src_identity != b.key.src_identity


def test_http_requests_share_a_decision_only_when_no_rule_reads_headers() -> None:
    e = engine(SERVER_HTTP_NO_HEADERS)
    decider = Decider(e)
    c = decider.decide_connection(resolve_peer(e, "app/client"), resolve_peer(e, "app/server"), 6, 8080)
    assert decider.decide_request(c, GET_PUBLIC) is decider.decide_request(c, GET_PUBLIC_TRACED)
    # With a header rule on the way, requests that differ only in headers are judged apart.
    e = engine(SERVER_HTTP)
    decider = Decider(e)
    c = decider.decide_connection(resolve_peer(e, "app/client"), resolve_peer(e, "app/server"), 6, 8080)
    ok, bad = decider.decide_request(c, POST_OK), decider.decide_request(c, POST_BAD)
    assert ok is not bad and ok.predicted == "REDIRECTED" and bad.predicted == "DROPPED"


def test_a_request_that_changes_nothing_at_l3_l4_shares_its_connections_fields() -> None:
    e = engine(SERVER_HTTP)
    decider = Decider(e)
    c = decider.decide_connection(resolve_peer(e, "app/client"), resolve_peer(e, "app/server"), 6, 8080)
    for req in (GET_PUBLIC, GET_PRIVATE):  # allowed and denied by the proxy alike
        r = decider.decide_request(c, req)
        assert r.fields_of is c and r.hubble_fields() is c.hubble_fields()


def test_deciding_writes_nothing_to_the_engine() -> None:
    e = engine(CLIENT_DNS)
    decider = Decider(e)
    pair = decider.pair(resolve_peer(e, "app/client"), resolve_peer(e, "app/server"))
    q = decider.decide_query(pair, 17, 53, "api.example.com")
    assert q.predicted == "REDIRECTED" and not e.has_learned_names
    assert decider.learn_dns_answer(q, pair.src, "api.example.com", ["192.0.2.7"], 60, None)[0]
    assert e.has_learned_names
    refused = decider.decide_query(pair, 17, 53, "evil.org")
    assert refused.predicted == "DROPPED"
    learned, why = decider.learn_dns_answer(refused, pair.src, "evil.org", ["192.0.2.8"], 60, None)
    assert not learned and why == "the DNS proxy refused the query (REFUSED)"


def test_an_address_named_by_a_learned_answer_gets_a_new_key() -> None:
    e = PolicyEngine(_SEED_CLUSTER, _SEED_POLICIES, _CONFIG)
    decider = Decider(e)
    gw, stripe = resolve_peer(e, "payments/pg-gateway-7b9f8d6c5-r3k8d"), resolve_peer(e, "54.187.10.20")
    before = decider.decide_connection(gw, stripe, 6, 443, 1000.0)
    assert before.predicted == "DROPPED"
    assert decider.observe_dns_answer(gw, "api.stripe.com", ["54.187.10.20"], ttl=60, now=1000.0).learned
    during = decider.decide_connection(gw, stripe, 6, 443, 1030.0)
    assert during.predicted == "FORWARDED" and during.key != before.key
    assert [str(r) for r in during.verdict.egress.allowed_by] == ["CiliumNetworkPolicy payments/allow-external-apis"]
    # The name expires with its TTL; no connection keeps it past the grace period.
    assert decider.decide_connection(gw, stripe, 6, 443, 1100.0) is before


# -- property: a stream of DNS answers and connections, plain vs decider -------------------

_SEED_CLUSTER = read_cluster([SEED / "cluster.yaml"])
_SEED_POLICIES = load_policies(read_documents(sorted((SEED / "policies").glob("*.yaml"))))
_CONFIG = AgentConfig(tofqdns_idle_connection_grace_period=5.0, enable_host_firewall=True, allow_localhost="policy")
_ALL_PODS = sorted(ep.key for ep in PolicyEngine(_SEED_CLUSTER, _SEED_POLICIES, _CONFIG).endpoints)
# pg-gateway may reach api.stripe.com and *.tosspayments.com once it looked them up; the
# others: plain pods, a host, the metadata endpoint's denier.
_PODS = ["payments/pg-gateway-7b9f8d6c5-r3k8d", "payments/pg-gateway-7b9f8d6c5-r3k8d",
         "shop/frontend-7d9c5b8f6-k2x4p", "shop/backend-5f6d8c9b7-xz91c", "node/worker-1"]
_ADDRESSES = ["54.187.10.20", "54.187.10.21", "169.254.169.254", "8.8.8.8"]
_NAMES = ["api.stripe.com", "x.tosspayments.com", "evil.example.org"]

_connect = st.tuples(
    st.just("connect"), st.sampled_from(_PODS), st.sampled_from(_ADDRESSES + _PODS),
    st.sampled_from([(6, 443), (6, 443), (6, 8080), (17, 53), (1, 8)]),
)
_event = st.one_of(
    st.tuples(st.just("dns"), st.sampled_from(_PODS[:3]), st.sampled_from(_NAMES),
              st.lists(st.sampled_from(_ADDRESSES[:2]), min_size=1, max_size=2), st.sampled_from([1, 5, 60])),
    _connect, _connect,
    st.tuples(st.just("connect"), st.just(_PODS[0]), st.sampled_from(_ADDRESSES[:2]), st.just((6, 443))),
    st.tuples(st.just("connect"), st.sampled_from(_ALL_PODS), st.sampled_from(_ALL_PODS), st.just((6, 8080))),
    st.tuples(st.just("wait"), st.sampled_from([0.5, 3.0, 30.0])),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_event, min_size=1, max_size=25), st.sampled_from([4, 1 << 16]))
def test_a_decider_decides_every_stream_as_the_plain_functions_do(events: list[tuple[Any, ...]], cache: int) -> None:
    plain = PolicyEngine(_SEED_CLUSTER, _SEED_POLICIES, _CONFIG)
    cached = PolicyEngine(_SEED_CLUSTER, _SEED_POLICIES, _CONFIG)
    decider = Decider(cached, cache_size=cache)
    now = 1000.0
    for ev in events:
        if ev[0] == "wait":
            now += ev[1]
        elif ev[0] == "dns":
            _, pod, name, ips, ttl = ev
            want = observe_dns_answer(plain, resolve_peer(plain, pod), name, ips, ttl=ttl, now=now)
            got = decider.observe_dns_answer(resolve_peer(cached, pod), name, ips, ttl=ttl, now=now)
            assert (got.learned, got.reason) == (want.learned, want.reason)
            assert summary(got.verdict) == summary(want.verdict)
        else:
            _, src, dst, (proto, port) = ev
            s, d = resolve_peer(plain, src), resolve_peer(plain, dst)
            want = decide(plain, Connection(s, d, proto, port, None, now))
            pair = decider.pair(resolve_peer(cached, src), resolve_peer(cached, dst))
            got = decider.decide_pair(pair, proto, port, now)
            assert summary(got.verdict) == summary(want), (src, dst, proto, port, now)
            # The live connection keeps its FQDN names through the grace period, in both.
            if d.endpoint is None and s.endpoint is not None and d.ip and want.predicted != "DROPPED":
                plain.mark_fqdn_connection(s.endpoint, d.ip, now)
            decider.note_connection(pair, got, now)


def test_pods_alike_keep_apart_pods_whose_audit_mode_differs() -> None:
    # Two replicas share an identity and a compiled policy; per-endpoint audit mode is on
    # for one of them only, so the matrix (which decides once per group) must keep them apart.
    pods = {
        "app/client": P({"app": "client"}, "10.0.1.1"),
        "app/server-a": P({"app": "server"}, "10.0.2.1", "node-2", {"http": "8080/TCP"}),
        "app/server-b": P({"app": "server"}, "10.0.2.2", "node-2", {"http": "8080/TCP"}),
    }
    e = engine(cnp("deny-all-in", "endpointSelector: {matchLabels: {app: server}}\ningress: [{}]"),
               cluster=make_cluster(pods=pods), audit_mode_endpoints=("app/server-b",))
    decider = Decider(e)
    eps = sorted(e.pod_endpoints, key=lambda ep: ep.key)
    assert [[ep.key for ep in g] for g in decider.pods_alike(eps)] == [["app/client"], ["app/server-a"], ["app/server-b"]]
    m = compute_matrix(e, [Probe(6, 8080)], eps)
    assert m.cell(Probe(6, 8080), "app/client", "app/server-a").verdict == "DROPPED"
    assert m.cell(Probe(6, 8080), "app/client", "app/server-b").verdict == "AUDIT"
    # Without the audit difference, the replicas are one group.
    e = engine(cnp("deny-all-in", "endpointSelector: {matchLabels: {app: server}}\ningress: [{}]"), cluster=make_cluster(pods=pods))
    assert len(Decider(e).pods_alike(sorted(e.pod_endpoints, key=lambda ep: ep.key))) == 2
