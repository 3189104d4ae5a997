"""Layer 7 through the engine (cilium-semantics.md §6; §3.8 and §5 for what happens before a
redirect): the flow verdict a user sees in Hubble (REDIRECTED / DROPPED / FORWARDED), the
proxy's verdict for the request (403, Kafka error 29, DNS REFUSED / NXDOMAIN) and the policy
that decided it. The matchers themselves are tested in tests/test_l7_*.py; here every rule
goes through policy loading, the policy map and `decide()`.

Standard cluster (tests/engine_helpers.py): app/client, app/local (node-1), app/server
(node-2) in `app`; other/client (node-1), other/server, other/db (node-2) in `other`.
"""

from __future__ import annotations

from functools import cache

import pytest

from ciliary.l7.http import HTTPRequest, grpc_request
from ciliary.l7.kafka import kafka_request
from ciliary.model.errors import LoadError
from ciliary.model.loader import load_policies
from ciliary.model.options import ValidationOptions
from ciliary.model.source import parse_text
from ciliary.policy.engine import PolicyEngine
from ciliary.verdict.types import DNSQuery
from engine_helpers import (
    DROPPED,
    EGRESS,
    FORWARDED,
    INGRESS,
    NODE1_IP,
    POLICY_DENIED,
    POLICY_DENY,
    REDIRECTED,
    ccnp,
    cnp,
    engine,
    l7_outcome,
    l7_verdict,
    outcome,
    refs,
    verdict,
)

CLIENT, LOCAL, SERVER = "app/client", "app/local", "app/server"
OTHER_CLIENT = "other/client"


def get(path: str, host: str = "", headers: tuple[tuple[str, str], ...] = ()) -> HTTPRequest:
    return HTTPRequest("GET", path, host, headers)


# --- §6.2 HTTP: method / path / host are whole-value RE2 matches --------------------------------------

HTTP_RULES = cnp("server-http", r"""
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts:
  - ports: [{port: "8080", protocol: TCP}]
    rules:
      http:
      - {method: GET, path: /public}
      - {method: POST, path: "/api/v[0-9]+/items"}
      - {method: GET, path: "/admin/.*", host: "admin\\.example\\.com"}
      - {method: PUT, path: /upload, headers: ["X-Token: s3cret", "X-Trace"]}
      - {path: "/anything/.*"}
""")


@cache
def http_engine() -> PolicyEngine:
    return engine(HTTP_RULES)


@pytest.mark.parametrize(
    ("request_", "allowed"),
    [
        (get("/public"), True),
        # the regex must match the whole :path (Envoy safe_regex): /public is not a prefix rule
        (get("/public/x"), False),
        (get("/publicity"), False),
        (get("/x/public"), False),
        # :method is matched as sent, case-sensitively, and is also a whole-value regex
        (HTTPRequest("get", "/public"), False),
        (HTTPRequest("HEAD", "/public"), False),
        (HTTPRequest("POST", "/public"), False),
        (HTTPRequest("POST", "/api/v1/items"), True),
        (HTTPRequest("POST", "/api/v42/items"), True),
        (HTTPRequest("POST", "/api/v1/items/3"), False),
        (HTTPRequest("POST", "/api/vX/items"), False),
        (HTTPRequest("GET", "/api/v1/items"), False),
        # host is a whole-value regex over :authority, which carries a port if the client sent one
        (get("/admin/users", host="admin.example.com"), True),
        (get("/admin/users", host="www.example.com"), False),
        (get("/admin/users", host="admin.example.com:8080"), False),
        (get("/admin/users"), False),
        # headers: "Name: value" is an exact value, "Name" only presence; names are case-insensitive
        (HTTPRequest("PUT", "/upload", "", (("X-Token", "s3cret"), ("X-Trace", "1"))), True),
        (HTTPRequest("PUT", "/upload", "", (("x-token", "s3cret"), ("x-trace", ""))), True),
        (HTTPRequest("PUT", "/upload", "", (("X-Token", "s3cret"),)), False),
        (HTTPRequest("PUT", "/upload", "", (("X-Token", "S3CRET"), ("X-Trace", "1"))), False),
        (HTTPRequest("PUT", "/upload", "", (("X-Trace", "1"),)), False),
        # an empty field is no constraint: any method
        (HTTPRequest("DELETE", "/anything/1"), True),
        (HTTPRequest("PATCH", "/anything/"), True),
        (HTTPRequest("PATCH", "/anything"), False),
    ],
)
def test_http_rule_fields(request_: HTTPRequest, allowed: bool) -> None:
    v = l7_verdict(http_engine(), CLIENT, SERVER, "8080/TCP", request_)
    # the connection is always handed to the proxy; the request is judged there
    assert (v.verdict, v.drop_reason_desc, v.traffic_direction) == (REDIRECTED, None, INGRESS)
    assert v.ingress.redirected
    assert refs(v.ingress.allowed_by) == ["CiliumNetworkPolicy app/server-http"]
    assert v.l7 is not None and v.l7.type == "http" and v.l7.direction == INGRESS.lower()
    if allowed:
        assert (v.l7.verdict, v.l7.http_status) == (FORWARDED, None)
        assert refs(v.l7.allowed_by) == ["CiliumNetworkPolicy app/server-http"]
    else:
        # Cilium's proxy answers 403 "Access denied"; Hubble shows the L7 flow as DROPPED
        assert (v.l7.verdict, v.l7.http_status) == (DROPPED, 403)
        assert v.l7.allowed_by == []


def test_http_port_without_request_and_unselected_peer() -> None:
    e = http_engine()
    # the bare connection (no request yet) is REDIRECTED; nothing is judged at L7
    assert l7_outcome(l7_verdict(e, CLIENT, SERVER, "8080/TCP", None)) == (REDIRECTED, None, None)
    # a peer the rule does not select never reaches the proxy: L3/L4 default deny
    v = l7_verdict(e, LOCAL, SERVER, "8080/TCP", get("/public"))
    assert outcome(v) == (DROPPED, POLICY_DENIED, INGRESS)
    assert v.l7 is None
    # other ports of the same peer are not allowed by an L7 rule on 8080
    assert outcome(verdict(e, CLIENT, SERVER, "9090/TCP")) == (DROPPED, POLICY_DENIED, INGRESS)


# --- §6.2 headerMatches and mismatch actions ------------------------------------------------------------

HEADER_MATCHES = cnp("server-headermatches", """
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts:
  - ports: [{port: "8080", protocol: TCP}]
    rules:
      http:
      - {path: /fail, headerMatches: [{name: X-Env, value: prod}]}
      - {path: /log, headerMatches: [{name: X-Env, value: prod, mismatch: LOG}]}
      - {path: /add, headerMatches: [{name: X-Env, value: prod, mismatch: ADD}]}
      - {path: /delete, headerMatches: [{name: X-Env, value: prod, mismatch: DELETE}]}
      - {path: /replace, headerMatches: [{name: X-Env, value: prod, mismatch: REPLACE}]}
      - {path: /present, headerMatches: [{name: X-Present}]}
""")


@pytest.mark.parametrize(
    ("path", "headers", "allowed"),
    [
        # no mismatch action: a wrong or missing value fails the rule -> 403
        ("/fail", (("X-Env", "prod"),), True),
        ("/fail", (("X-Env", "dev"),), False),
        ("/fail", (), False),
        # LOG / ADD / DELETE / REPLACE: the rule still matches (the header is logged or edited)
        *[(p, h, True) for p in ("/log", "/add", "/delete", "/replace") for h in ((("X-Env", "prod"),), (("X-Env", "dev"),), ())],
        # no value: presence only
        ("/present", (("X-Present", "anything"),), True),
        ("/present", (), False),
    ],
)
def test_http_header_matches(path: str, headers: tuple[tuple[str, str], ...], allowed: bool) -> None:
    v = l7_verdict(engine(HEADER_MATCHES), CLIENT, SERVER, "8080/TCP", get(path, headers=headers))
    assert l7_outcome(v) == (REDIRECTED, None, FORWARDED if allowed else DROPPED)
    assert v.l7 is not None and v.l7.http_status == (None if allowed else 403)


# --- §6.2 gRPC: POST /package.Service/Method ----------------------------------------------------------

GRPC = cnp("server-grpc", """
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts:
  - ports: [{port: "50051", protocol: TCP}]
    rules:
      http:
      - {method: POST, path: /shop.Catalog/GetItem}
      - {method: POST, path: "/shop.Catalog/List.*"}
""")


@pytest.mark.parametrize(
    ("request_", "allowed"),
    [
        (grpc_request("shop.Catalog", "GetItem"), True),
        (grpc_request("shop.Catalog", "ListItems"), True),
        (grpc_request("shop.Catalog", "DeleteItem"), False),
        (grpc_request("shop.Admin", "GetItem"), False),
        # a gRPC path is still a whole-value match: another package with the same suffix fails
        (grpc_request("evil.shop.Catalog", "GetItem"), False),
        # the same path with another HTTP method is not a gRPC call and does not match
        (HTTPRequest("GET", "/shop.Catalog/GetItem"), False),
    ],
)
def test_grpc_methods(request_: HTTPRequest, allowed: bool) -> None:
    v = l7_verdict(engine(GRPC), CLIENT, SERVER, "50051/TCP", request_)
    assert l7_outcome(v) == (REDIRECTED, None, FORWARDED if allowed else DROPPED)
    assert v.l7 is not None and v.l7.http_status == (None if allowed else 403)
    if allowed:
        assert refs(v.l7.allowed_by) == ["CiliumNetworkPolicy app/server-grpc"]


# --- §6.3 merging of L7 rules on one port -------------------------------------------------------------

def _server_in(name: str, peer: str, http: str | None, port: str | None = "8080") -> str:
    """An ingress CNP on app=server with one element: `peer` (a YAML `fromX: [...]` line, or
    "" for no peer field), ports (None: L3 only) and HTTP rules (None: L3/L4 only)."""
    lines = [peer] if peer else []
    if port is not None:
        lines += ["toPorts:", f'- ports: [{{port: "{port}", protocol: TCP}}]']
        if http is not None:
            lines += ["  rules:", f"    http: {http}"]
    element = "\n".join(("- " if i == 0 else "  ") + ln for i, ln in enumerate(lines))
    return cnp(name, f"endpointSelector: {{matchLabels: {{app: server}}}}\ningress:\n{element}")


FROM_CLIENT = "fromEndpoints: [{matchLabels: {app: client}}]"
FROM_LOCAL = "fromEndpoints: [{matchLabels: {app: local}}]"
FROM_APP_NS = "fromEndpoints: [{}]"  # every pod of `app` (client and local)


def test_same_selector_two_rules_union_of_l7_rules() -> None:
    # same peer selector, same port, two policies: the HTTP rule lists are concatenated
    e = engine(
        _server_in("get-a", FROM_CLIENT, "[{method: GET, path: /a}]"),
        _server_in("get-b", FROM_CLIENT, "[{method: GET, path: /b}]"),
    )
    va = l7_verdict(e, CLIENT, SERVER, "8080/TCP", get("/a"))
    vb = l7_verdict(e, CLIENT, SERVER, "8080/TCP", get("/b"))
    vc = l7_verdict(e, CLIENT, SERVER, "8080/TCP", get("/c"))
    assert [l7_outcome(v) for v in (va, vb, vc)] == [
        (REDIRECTED, None, FORWARDED), (REDIRECTED, None, FORWARDED), (REDIRECTED, None, DROPPED),
    ]
    assert va.l7 is not None and refs(va.l7.allowed_by) == ["CiliumNetworkPolicy app/get-a"]
    assert vb.l7 is not None and refs(vb.l7.allowed_by) == ["CiliumNetworkPolicy app/get-b"]
    assert vc.l7 is not None and vc.l7.http_status == 403
    # the L3/L4 entry is shared: both policies allowed the redirected connection
    assert refs(vc.ingress.allowed_by) == ["CiliumNetworkPolicy app/get-a", "CiliumNetworkPolicy app/get-b"]


@pytest.mark.parametrize(
    ("shadow", "why"),
    [
        # same peer, same port, no L7 rules: an allow-all L7 rule is merged in (l4_filter_test.go
        # TestMergeAllowAllL3AndShadowedL7: "all traffic is allowed at L7, but still redirected")
        (_server_in("l4-only", FROM_CLIENT, None), "same selector, L3/L4 allow on the port"),
        # an L3-only allow for the peer on every port: the proxy also checks the port-0 rules
        (_server_in("l3-only", FROM_CLIENT, None, port=None), "L3-only allow for the peer, all ports"),
        # a wildcard-peer L4 allow on the port (l4_filter_test.go case 7: "traffic to A goes via proxy")
        (_server_in("any-peer", "", None), "wildcard-peer L4 allow on the port"),
        # another selector that also selects the client, without L7 rules
        (_server_in("whole-ns", FROM_APP_NS, None), "another selector covering the peer"),
    ],
)
def test_l3_l4_allow_shadows_l7_rules_but_still_redirects(shadow: str, why: str) -> None:
    e = engine(_server_in("l7", FROM_CLIENT, "[{method: GET, path: /a}]"), shadow)
    for req in (get("/a"), get("/b"), HTTPRequest("DELETE", "/anything")):
        v = l7_verdict(e, CLIENT, SERVER, "8080/TCP", req)
        assert l7_outcome(v) == (REDIRECTED, None, FORWARDED), (why, req)
        assert v.l7 is not None and v.l7.http_status is None


def test_wildcard_peer_l4_allow_other_peers_are_not_redirected() -> None:
    # wildcard-peer L4 allow + L7 rule for client: local is allowed by the L4 rule only, its
    # entry carries no redirect (l4_filter_test.go case 7: only traffic from A goes via proxy)
    e = engine(_server_in("l7", FROM_CLIENT, "[{method: GET, path: /a}]"), _server_in("any-peer", "", None))
    v = l7_verdict(e, LOCAL, SERVER, "8080/TCP", get("/b"))
    assert l7_outcome(v) == (FORWARDED, None, None)
    assert refs(v.ingress.allowed_by) == ["CiliumNetworkPolicy app/any-peer"]


def test_different_selectors_keep_separate_l7_rule_lists() -> None:
    # X=client may GET /a, Y=local may GET /b: a request is checked only against the rules of
    # the selectors that select its source
    e = engine(
        _server_in("client-a", FROM_CLIENT, "[{method: GET, path: /a}]"),
        _server_in("local-b", FROM_LOCAL, "[{method: GET, path: /b}]"),
    )
    cases = {
        (CLIENT, "/a"): FORWARDED, (CLIENT, "/b"): DROPPED,
        (LOCAL, "/b"): FORWARDED, (LOCAL, "/a"): DROPPED,
    }
    for (src, path), want in cases.items():
        v = l7_verdict(e, src, SERVER, "8080/TCP", get(path))
        assert l7_outcome(v) == (REDIRECTED, None, want), (src, path)
    v = l7_verdict(e, LOCAL, SERVER, "8080/TCP", get("/b"))
    assert v.l7 is not None and refs(v.l7.allowed_by) == ["CiliumNetworkPolicy app/local-b"]
    # other/client is selected by neither: dropped at L3/L4 before any proxy
    assert l7_outcome(l7_verdict(e, OTHER_CLIENT, SERVER, "8080/TCP", get("/a"))) == (DROPPED, POLICY_DENIED, None)


def test_two_selectors_covering_the_same_peer_are_or_ed() -> None:
    # client is selected by both selectors: it may use the rules of either
    e = engine(
        _server_in("client-a", FROM_CLIENT, "[{method: GET, path: /a}]"),
        _server_in("ns-b", FROM_APP_NS, "[{method: GET, path: /b}]"),
    )
    for path, want in (("/a", FORWARDED), ("/b", FORWARDED), ("/c", DROPPED)):
        assert l7_outcome(l7_verdict(e, CLIENT, SERVER, "8080/TCP", get(path))) == (REDIRECTED, None, want), path
    # local only by the namespace-wide one
    for path, want in (("/a", DROPPED), ("/b", FORWARDED)):
        assert l7_outcome(l7_verdict(e, LOCAL, SERVER, "8080/TCP", get(path))) == (REDIRECTED, None, want), path


# --- §6.3 / §5: deny rules are decided before any redirect ----------------------------------------------

DENY_PORT = cnp("deny-8080", """
endpointSelector: {matchLabels: {app: server}}
ingressDeny:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
""")
DENY_PEER = cnp("deny-client", """
endpointSelector: {matchLabels: {app: server}}
ingressDeny:
- fromEndpoints: [{matchLabels: {app: client}}]
""")
DENY_PORT_ANY_PEER = cnp("deny-8080-all", """
endpointSelector: {matchLabels: {app: server}}
ingressDeny:
- toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
""")


@pytest.mark.parametrize(
    ("deny", "name"),
    [(DENY_PORT, "deny-8080"), (DENY_PEER, "deny-client"), (DENY_PORT_ANY_PEER, "deny-8080-all")],
)
def test_deny_on_the_port_drops_before_the_proxy(deny: str, name: str) -> None:
    e = engine(_server_in("l7", FROM_CLIENT, "[{method: GET, path: /a}]"), deny)
    v = l7_verdict(e, CLIENT, SERVER, "8080/TCP", get("/a"))
    # packets dropped with 181 at L3/L4: no 403, no L7 flow, not redirected
    assert outcome(v) == (DROPPED, POLICY_DENY, INGRESS)
    assert v.l7 is None and not v.ingress.redirected
    assert refs(v.ingress.denied_by) == [f"CiliumNetworkPolicy app/{name}"]
    assert refs(v.ingress.allowed_by) == []


def test_deny_for_another_peer_or_port_leaves_the_redirect() -> None:
    e = engine(
        _server_in("l7", FROM_CLIENT, "[{method: GET, path: /a}]"),
        cnp("deny-local", "endpointSelector: {matchLabels: {app: server}}\ningressDeny:\n- fromEndpoints: [{matchLabels: {app: local}}]"),
        cnp("deny-9090", 'endpointSelector: {matchLabels: {app: server}}\ningressDeny:\n- toPorts: [{ports: [{port: "9090", protocol: TCP}]}]'),
    )
    assert l7_outcome(l7_verdict(e, CLIENT, SERVER, "8080/TCP", get("/a"))) == (REDIRECTED, None, FORWARDED)
    assert l7_outcome(l7_verdict(e, CLIENT, SERVER, "8080/TCP", get("/b"))) == (REDIRECTED, None, DROPPED)
    assert l7_outcome(l7_verdict(e, LOCAL, SERVER, "8080/TCP", get("/a"))) == (DROPPED, POLICY_DENY, None)


# deny.rst truth table (cilium-semantics.md §5): server allows {HTTP on 80, L4 80/TCP, L4 81/TCP,
# L3 from client}. The L3 and L4 allows shadow the HTTP rule, so every request passes (redirected).
DENY_RST_ALLOWS = [
    _server_in("http-80", FROM_CLIENT, "[{method: GET, path: /public}]", port="80"),
    _server_in("l4-80", FROM_CLIENT, None, port="80"),
    _server_in("l4-81", FROM_CLIENT, None, port="81"),
    _server_in("l3", FROM_CLIENT, None, port=None),
]
DENY_L4_80 = cnp("deny-l4-80", 'endpointSelector: {matchLabels: {app: server}}\ningressDeny:\n- toPorts: [{ports: [{port: "80", protocol: TCP}]}]')
DENY_L3 = cnp("deny-l3", "endpointSelector: {matchLabels: {app: server}}\ningressDeny:\n- fromEndpoints: [{matchLabels: {app: client}}]")
R80 = (REDIRECTED, None, FORWARDED)  # redirected, and /private passes too (shadowed)
F, D = (FORWARDED, None, None), (DROPPED, POLICY_DENY, None)


@pytest.mark.parametrize(
    ("denies", "port80", "port81", "ping"),
    [
        ((), R80, F, F),
        ((DENY_L4_80,), D, F, F),
        ((DENY_L3,), D, D, D),
        ((DENY_L4_80, DENY_L3), D, D, D),
    ],
)
def test_deny_rst_truth_table(denies: tuple[str, ...], port80: tuple[str, str | None, str | None], port81: tuple[str, str | None, str | None], ping: tuple[str, str | None, str | None]) -> None:
    e = engine(*DENY_RST_ALLOWS, *denies)
    assert l7_outcome(l7_verdict(e, CLIENT, SERVER, "80/TCP", get("/private"))) == port80
    assert l7_outcome(l7_verdict(e, CLIENT, SERVER, "81/TCP", None)) == port81
    assert l7_outcome(l7_verdict(e, CLIENT, SERVER, "icmp:8", None)) == ping


def test_only_deny_l4_80_and_no_allows_denies_everything() -> None:
    e = engine(DENY_L4_80)
    assert outcome(verdict(e, CLIENT, SERVER, "80/TCP")) == (DROPPED, POLICY_DENY, INGRESS)
    assert outcome(verdict(e, CLIENT, SERVER, "81/TCP")) == (DROPPED, POLICY_DENIED, INGRESS)


# --- §3.8 localhost and L7 -----------------------------------------------------------------------------

def test_local_host_on_an_l7_port() -> None:
    # an L7 rule for a wildcard peer also selects the host: it becomes allow-all L7 for the host
    # (still redirected); an L7 rule for other peers does not touch the allow-localhost entry
    wild = engine(_server_in("l7-any", "", "[{method: GET, path: /a}]"))
    v = l7_verdict(wild, "node/node-2", SERVER, "8080/TCP", get("/healthz"))
    assert l7_outcome(v) == (REDIRECTED, None, FORWARDED)
    # and a pod is still restricted by the same rule
    assert l7_outcome(l7_verdict(wild, CLIENT, SERVER, "8080/TCP", get("/healthz"))) == (REDIRECTED, None, DROPPED)
    only_client = engine(_server_in("l7", FROM_CLIENT, "[{method: GET, path: /a}]"))
    v = l7_verdict(only_client, "node/node-2", SERVER, "8080/TCP", get("/healthz"))
    assert l7_outcome(v) == (FORWARDED, None, None)
    # another node is remote-node, not the local host: default deny
    v = l7_verdict(only_client, NODE1_IP, SERVER, "8080/TCP", get("/healthz"))
    assert l7_outcome(v) == (DROPPED, POLICY_DENIED, None)


# --- ingress and egress L7 -----------------------------------------------------------------------------

EGRESS_HTTP = cnp("client-egress-http", """
endpointSelector: {matchLabels: {app: client}}
egress:
- toEndpoints: [{matchLabels: {app: server}}]
  toPorts:
  - ports: [{port: "8080", protocol: TCP}]
    rules:
      http:
      - {method: GET, path: /a}
      - {method: GET, path: /b}
""")
INGRESS_HTTP = _server_in("server-ingress-http", FROM_CLIENT, "[{method: GET, path: /a}, {method: GET, path: /c}]")


def test_egress_l7_only() -> None:
    e = engine(EGRESS_HTTP)
    v = l7_verdict(e, CLIENT, SERVER, "8080/TCP", get("/a"))
    assert (v.verdict, v.traffic_direction) == (REDIRECTED, EGRESS)
    assert v.l7 is not None and (v.l7.verdict, v.l7.direction) == (FORWARDED, "egress")
    assert refs(v.l7.allowed_by) == ["CiliumNetworkPolicy app/client-egress-http"]
    v = l7_verdict(e, CLIENT, SERVER, "8080/TCP", get("/c"))
    assert v.l7 is not None and (v.l7.verdict, v.l7.http_status, v.l7.direction) == (DROPPED, 403, "egress")
    # egress to another destination is default deny at L3/L4
    assert outcome(verdict(e, CLIENT, "other/server", "8081/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)


@pytest.mark.parametrize(
    ("path", "l7", "decided_by"),
    [
        ("/a", FORWARDED, None),  # both proxies allow
        ("/b", DROPPED, "ingress"),  # the egress proxy allows, the server's proxy answers 403
        ("/c", DROPPED, "egress"),  # the egress proxy answers 403; the request never reaches the server
    ],
)
def test_egress_and_ingress_l7_both_apply(path: str, l7: str, decided_by: str | None) -> None:
    v = l7_verdict(engine(EGRESS_HTTP, INGRESS_HTTP), CLIENT, SERVER, "8080/TCP", get(path))
    assert v.verdict == REDIRECTED
    assert v.egress.redirected
    assert v.l7 is not None and v.l7.verdict == l7
    if decided_by is not None:
        assert (v.l7.direction, v.l7.http_status) == (decided_by, 403)
    if decided_by == "egress":
        assert v.ingress.l7 is None  # not reached
    else:
        assert v.ingress.redirected and v.ingress.l7 is not None


# --- enable-l7-proxy=false ----------------------------------------------------------------------------

NO_PROXY_MSG = "L7 policy is not supported since L7 proxy is not enabled"


def test_l7_proxy_disabled_rejects_l7_policies() -> None:
    # rule_validation.go IngressRule/EgressRule Validate: with --enable-l7-proxy=false every
    # policy carrying L7 rules (HTTP, Kafka, DNS) is rejected, so it is never imported
    for text in (HTTP_RULES, EGRESS_HTTP, DNS_RULES):
        with pytest.raises(LoadError) as exc:
            load_policies(parse_text(text, "p.yaml"), ValidationOptions(enable_l7_proxy=False))
        assert NO_PROXY_MSG in str(exc.value)
    # without L7 the policy is fine
    load_policies(parse_text(_server_in("l4", FROM_CLIENT, None), "p.yaml"), ValidationOptions(enable_l7_proxy=False))


def test_l7_proxy_disabled_never_redirects() -> None:
    e = engine(HTTP_RULES, EGRESS_HTTP, enable_l7_proxy=False)
    for req in (get("/public"), get("/private"), None):
        v = l7_verdict(e, CLIENT, SERVER, "8080/TCP", req)
        assert l7_outcome(v) == (FORWARDED, None, None)
        assert not v.egress.redirected and not v.ingress.redirected


def test_l7_proxy_disabled_engine_ignores_the_rejected_policy() -> None:
    e = engine(HTTP_RULES, enable_l7_proxy=False)
    # app/server then has no policy at all: ingress not enforced
    assert outcome(verdict(e, LOCAL, SERVER, "8080/TCP")) == outcome(verdict(engine(enable_l7_proxy=False), LOCAL, SERVER, "8080/TCP"))
    assert outcome(verdict(e, LOCAL, SERVER, "8080/TCP"))[0] == FORWARDED


# --- §6.4 Kafka ----------------------------------------------------------------------------------------

KAFKA = cnp("kafka-acl", """
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts:
  - ports: [{port: "9092", protocol: TCP}]
    rules:
      kafka:
      - {role: produce, topic: orders}
      - {role: produce, topic: audit}
      - {apiKey: fetch, topic: invoices, clientID: billing}
      - {apiKey: createtopics}
- fromEndpoints: [{matchLabels: {app: local}}]
  toPorts:
  - ports: [{port: "9092", protocol: TCP}]
    rules:
      kafka:
      - {role: consume, topic: orders}
""")


@cache
def kafka_engine() -> PolicyEngine:
    return engine(KAFKA)


@pytest.mark.parametrize(
    ("src", "api_key", "topics", "client_id", "allowed"),
    [
        # role produce = apiKeys produce, metadata, apiversions
        (CLIENT, "produce", ["orders"], "", True),
        (CLIENT, "produce", ["audit"], "", True),
        (CLIENT, "produce", ["payments"], "", False),
        # every topic of a request must be allowed (by some rule)
        (CLIENT, "produce", ["orders", "audit"], "", True),
        (CLIENT, "produce", ["orders", "payments"], "", False),
        (CLIENT, "metadata", ["orders"], "", True),
        (CLIENT, "apiversions", [], "", True),
        # not part of the produce role
        (CLIENT, "fetch", ["orders"], "", False),
        (CLIENT, "offsetcommit", ["orders"], "", False),
        (CLIENT, "joingroup", [], "", False),
        # apiKey + topic + clientID: all must match
        (CLIENT, "fetch", ["invoices"], "billing", True),
        (CLIENT, "fetch", ["invoices"], "reporting", False),
        (CLIENT, "fetch", ["invoices"], "", False),
        # apiKey without topic: any topic
        (CLIENT, "createtopics", ["anything"], "", True),
        (CLIENT, "deletetopics", ["anything"], "", False),
        # role consume = fetch, offsets, metadata, offsetcommit, offsetfetch, findcoordinator,
        # joingroup, heartbeat, leavegroup, syncgroup, apiversions
        (LOCAL, "fetch", ["orders"], "", True),
        (LOCAL, "offsets", ["orders"], "", True),
        (LOCAL, "offsetcommit", ["orders"], "", True),
        (LOCAL, "offsetfetch", ["orders"], "", True),
        (LOCAL, "metadata", ["orders"], "", True),
        # group requests carry no topic: the topic constraint does not apply to them
        (LOCAL, "joingroup", [], "", True),
        (LOCAL, "heartbeat", [], "", True),
        (LOCAL, "syncgroup", [], "", True),
        (LOCAL, "leavegroup", [], "", True),
        (LOCAL, "findcoordinator", [], "", True),
        (LOCAL, "fetch", ["payments"], "", False),
        (LOCAL, "fetch", ["orders", "payments"], "", False),
        (LOCAL, "produce", ["orders"], "", False),
        # the client's rules do not apply to local (separate selectors)
        (LOCAL, "createtopics", ["anything"], "", False),
    ],
)
def test_kafka_rules(src: str, api_key: str, topics: list[str], client_id: str, allowed: bool) -> None:
    v = l7_verdict(kafka_engine(), src, SERVER, "9092/TCP", kafka_request(api_key, 1, client_id, topics))
    assert l7_outcome(v) == (REDIRECTED, None, FORWARDED if allowed else DROPPED)
    assert v.l7 is not None and v.l7.type == "kafka"
    # a denied request gets TOPIC_AUTHORIZATION_FAILED (29)
    assert v.l7.kafka_error_code == (None if allowed else 29)
    if allowed:
        assert refs(v.l7.allowed_by) == ["CiliumNetworkPolicy app/kafka-acl"]


def test_kafka_unselected_peer_is_dropped_at_l4() -> None:
    v = l7_verdict(kafka_engine(), OTHER_CLIENT, SERVER, "9092/TCP", kafka_request("produce", 1, "", ["orders"]))
    assert l7_outcome(v) == (DROPPED, POLICY_DENIED, None)


# --- §6.5 DNS rules on egress port 53 -----------------------------------------------------------------

DNS_RULES = cnp("client-dns", """
endpointSelector: {matchLabels: {app: client}}
egress:
- toEndpoints: [{matchLabels: {app: server}}]
  toPorts:
  - ports: [{port: "53", protocol: UDP}]
    rules:
      dns:
      - matchName: api.example.com
      - matchPattern: "*.example.org"
""")


@pytest.mark.parametrize(
    ("qname", "allowed"),
    [
        ("api.example.com", True),
        ("api.example.com.", True),
        ("API.Example.COM", True),  # names are case-insensitive
        ("www.api.example.com", False),
        ("example.com", False),
        ("x.example.org", True),
        ("x-1_y.example.org.", True),
        ("example.org", False),  # "*." needs a label before the suffix
        ("a.b.example.org", False),  # "*" never spans a dot
        ("evil.com", False),
    ],
)
@pytest.mark.parametrize("reject", ["refused", "nameError"])
def test_dns_rules(qname: str, allowed: bool, reject: str) -> None:
    e = engine(DNS_RULES, tofqdns_dns_reject_response_code=reject)
    v = l7_verdict(e, CLIENT, SERVER, "53/UDP", DNSQuery(qname))
    assert (v.verdict, v.traffic_direction) == (REDIRECTED, EGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy app/client-dns"]
    assert v.l7 is not None and (v.l7.type, v.l7.direction) == ("dns", "egress")
    if allowed:
        assert (v.l7.verdict, v.l7.dns_rcode) == (FORWARDED, "NOERROR")
    else:
        # REFUSED by default, NXDOMAIN with --tofqdns-dns-reject-response-code=nameError
        assert (v.l7.verdict, v.l7.dns_rcode) == (DROPPED, "REFUSED" if reject == "refused" else "NXDOMAIN")


def test_dns_rules_only_on_their_port_and_protocol() -> None:
    e = engine(DNS_RULES)
    # DNS over TCP is not allowed by a UDP rule: dropped at L3/L4, no DNS verdict
    v = l7_verdict(e, CLIENT, SERVER, "53/TCP", DNSQuery("api.example.com"))
    assert l7_outcome(v) == (DROPPED, POLICY_DENIED, None)
    assert v.traffic_direction == EGRESS
    # another DNS server is not selected
    assert l7_outcome(l7_verdict(e, CLIENT, "other/server", "53/UDP", DNSQuery("api.example.com"))) == (DROPPED, POLICY_DENIED, None)


def test_dns_rules_of_two_policies_are_merged() -> None:
    e = engine(DNS_RULES, ccnp("all-pods-dns", """
endpointSelector: {matchLabels: {app: client}}
egress:
- toEndpoints: [{matchLabels: {app: server, k8s:io.kubernetes.pod.namespace: app}}]
  toPorts:
  - ports: [{port: "53", protocol: UDP}]
    rules:
      dns: [{matchName: extra.example.net}]
"""))
    for qname, want in (("api.example.com", FORWARDED), ("extra.example.net", FORWARDED), ("evil.com", DROPPED)):
        assert l7_outcome(l7_verdict(e, CLIENT, SERVER, "53/UDP", DNSQuery(qname))) == (REDIRECTED, None, want), qname
    v = l7_verdict(e, CLIENT, SERVER, "53/UDP", DNSQuery("extra.example.net"))
    assert v.l7 is not None and refs(v.l7.allowed_by) == ["CiliumClusterwideNetworkPolicy all-pods-dns"]
