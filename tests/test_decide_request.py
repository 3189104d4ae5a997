"""`decide_request`: the verdict of one request on a connection, from the connection's L3/L4
verdict (what replay reuses for every request), equals `decide` given the request."""

from __future__ import annotations

from typing import Any

import pytest

from ciliary.l7.http import HTTPRequest
from ciliary.l7.kafka import kafka_request
from ciliary.verdict.decide import DNSQuery, Flow, Verdict, decide, decide_request, resolve_peer
from engine_helpers import cnp, engine, l7_cnp, parse_l4

SERVER_HTTP = l7_cnp("server-http", "ingress", "8080/TCP", """
http: [{method: GET, path: "/public.*"}, {method: POST, path: /submit, headers: ["X-Token: abc"]}]
""")
CLIENT_HTTP_EGRESS = l7_cnp("client-http", "egress", "8080/TCP", "http: [{method: GET}]", subject="client", peer="server")
SERVER_DENY_LOCAL = cnp("server-deny-local", """
endpointSelector: {matchLabels: {app: server}}
ingressDeny: [{fromEndpoints: [{matchLabels: {app: local}}]}]
""")
CLIENT_DNS = l7_cnp("client-dns", "egress", "53/UDP", 'dns: [{matchPattern: "*.example.com"}]', subject="client", peer="server")
SERVER_KAFKA = l7_cnp("server-kafka", "ingress", "9092/TCP", "kafka: [{role: produce, topic: orders}]")

GET_PUBLIC = HTTPRequest("GET", "/public/x", "server", ())
GET_PRIVATE = HTTPRequest("GET", "/private", "server", ())
POST_OK = HTTPRequest("POST", "/submit", "server", (("X-Token", "abc"),))
POST_BAD = HTTPRequest("POST", "/submit", "server", (("X-Token", "nope"),))


def _summary(v: Verdict) -> tuple[Any, ...]:
    side = lambda s: (s.verdict, s.drop_reason_desc, s.redirected, s.reason, s.allowed_by, s.denied_by,  # noqa: E731
                      s.l7.as_dict() if s.l7 else None)
    return (v.verdict, v.drop_reason_desc, v.traffic_direction, v.policy_match_type, side(v.egress), side(v.ingress),
            v.l7.as_dict() if v.l7 else None)


@pytest.mark.parametrize(
    ("policies", "src", "l4", "requests"),
    [
        ((SERVER_HTTP,), "app/client", "8080/TCP", [GET_PUBLIC, GET_PRIVATE, POST_OK, POST_BAD]),
        ((SERVER_HTTP, CLIENT_HTTP_EGRESS), "app/client", "8080/TCP", [GET_PUBLIC, GET_PRIVATE, POST_OK, POST_BAD]),
        ((SERVER_HTTP, SERVER_DENY_LOCAL), "app/local", "8080/TCP", [GET_PUBLIC, POST_OK]),  # dropped at L3/L4
        ((SERVER_HTTP,), "other/client", "8080/TCP", [GET_PUBLIC]),  # not redirected: default deny
        ((CLIENT_DNS,), "app/client", "53/UDP", [DNSQuery("api.example.com"), DNSQuery("evil.org")]),
        ((SERVER_KAFKA,), "app/client", "9092/TCP", [kafka_request("produce", 0, topics=("orders",)), kafka_request("produce", 0, topics=("audit",))]),
    ],
)
def test_decide_request_equals_decide_with_the_request(
    policies: tuple[str, ...], src: str, l4: str, requests: list[Any]
) -> None:
    e = engine(*policies)
    proto, port = parse_l4(l4)
    s, d = resolve_peer(e, src), resolve_peer(e, "app/server")
    base = decide(e, Flow(s, d, proto, port))
    for req in requests:
        want = decide(e, Flow(s, d, proto, port, req))
        got = decide_request(e, base, req)
        assert _summary(got) == _summary(want), req
        assert got.flow.l7 == req


def test_decide_request_needs_a_verdict_decided_without_a_request() -> None:
    e = engine(SERVER_HTTP)
    s, d = resolve_peer(e, "app/client"), resolve_peer(e, "app/server")
    with pytest.raises(ValueError, match="without a request"):
        decide_request(e, decide(e, Flow(s, d, 6, 8080, GET_PUBLIC)), GET_PRIVATE)
