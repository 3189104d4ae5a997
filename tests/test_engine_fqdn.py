"""`toFQDNs` (cilium-semantics.md §7): a connection is allowed only to IPs the DNS proxy learned
from an allowed answer. Answers are replayed with `observe_dns_answer`, which sends the query
through the source's DNS policy exactly as the datapath would; only a redirected query that
the proxy allows feeds the FQDN cache.

Cluster: the standard one (tests/engine_helpers.py) plus kube-system/coredns (k8s-app=kube-dns)
on node-1. app/client, app/local and other/client are on node-1, app/server on node-2.
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ciliary.cluster.model import Cluster
from ciliary.l7.http import HTTPRequest
from ciliary.policy.engine import PolicyEngine, node_name
from ciliary.verdict.decide import DNSObservation, decide_side, observe_dns_answer, resolve_peer
from ciliary.verdict.types import SideVerdict
from engine_helpers import (
    DROPPED,
    EGRESS,
    FORWARDED,
    POLICY_DENIED,
    REDIRECTED,
    STD_NAMESPACES,
    STD_PODS,
    P,
    cnp,
    engine,
    l7_verdict,
    make_cluster,
    outcome,
    parse_l4,
    refs,
    verdict,
)

CLIENT, LOCAL, SERVER = "app/client", "app/local", "app/server"
DNS_POD = "kube-system/coredns"
API_IP, API_IP2, API_IP3 = "203.0.113.10", "203.0.113.11", "203.0.113.12"
CDN_IP, OTHER_IP = "198.51.100.7", "198.51.100.99"


@cache
def dns_cluster() -> Cluster:
    return make_cluster(
        {**STD_NAMESPACES, "kube-system": {}},
        {**STD_PODS, DNS_POD: P({"k8s-app": "kube-dns"}, "10.0.1.53", "node-1", {"dns": "53/UDP"})},
    )


def fqdn_engine(*texts: str, **config: object) -> PolicyEngine:
    """A fresh engine (the FQDN cache is state: every test starts empty)."""
    return engine(*texts, cluster=dns_cluster(), **config)


TO_KUBE_DNS = "toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}]"
FQDN_RULE = """
- toFQDNs:
  - matchName: api.example.com
  - matchPattern: "*.cdn.example.com"
  - matchName: db.example.com
  toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"""
# DNS via the proxy; the proxy allows one label under example.com (and example.com itself)
CLIENT_FQDN = cnp("client-fqdn", f"""
endpointSelector: {{matchLabels: {{app: client}}}}
egress:
- {TO_KUBE_DNS}
  toPorts:
  - ports: [{{port: "53", protocol: UDP}}]
    rules:
      dns:
      - matchPattern: "*.example.com"
      - matchName: example.com
      - matchName: x.cdn.example.com
{FQDN_RULE}""")


def learn(e: PolicyEngine, src: str, name: str, ips: list[str], ttl: int = 3600, now: float | None = None) -> DNSObservation:
    return observe_dns_answer(e, resolve_peer(e, src), name, ips, ttl=ttl, now=now)


def egress_at(e: PolicyEngine, src: str, ip: str, l4: str, now: float) -> SideVerdict:
    """The source's egress verdict for a new connection to `ip` at time `now` (seconds; the
    FQDN cache is time-aware only through the destination's identity)."""
    ep = e.endpoint_of_pod(src)
    assert ep is not None
    proto, port = parse_l4(l4)
    return decide_side(e, ep, "egress", e.identity_of_ip(ip, node_name(ep), now), proto, port)


# --- the basic mechanism ------------------------------------------------------------------------------

def test_connection_allowed_only_to_learned_ips() -> None:
    e = fqdn_engine(CLIENT_FQDN)
    # before any DNS answer the name selects nothing
    assert outcome(verdict(e, CLIENT, API_IP, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)
    obs = learn(e, CLIENT, "api.example.com", [API_IP])
    assert obs.learned
    # the DNS query itself went through the proxy and was allowed
    assert obs.verdict.verdict == REDIRECTED
    assert obs.verdict.l7 is not None and (obs.verdict.l7.verdict, obs.verdict.l7.dns_rcode) == (FORWARDED, "NOERROR")
    v = verdict(e, CLIENT, API_IP, "443/TCP")
    assert outcome(v) == (FORWARDED, None, EGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy app/client-fqdn"]
    assert v.dst_identity is not None and "fqdn:api.example.com" in v.dst_identity.labels.to_strings()
    # only the port of the toFQDNs rule
    assert outcome(verdict(e, CLIENT, API_IP, "80/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)
    # an IP never seen in an allowed answer stays default deny
    assert outcome(verdict(e, CLIENT, OTHER_IP, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)


def test_all_ips_of_an_answer_are_learned() -> None:
    e = fqdn_engine(CLIENT_FQDN)
    learn(e, CLIENT, "api.example.com", [API_IP, API_IP2])
    for ip in (API_IP, API_IP2):
        assert outcome(verdict(e, CLIENT, ip, "443/TCP")) == (FORWARDED, None, EGRESS), ip
    assert outcome(verdict(e, CLIENT, API_IP3, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)


@pytest.mark.parametrize(
    ("name", "dns_allowed", "reachable"),
    [
        ("api.example.com", True, True),  # matchName
        ("API.example.com.", True, True),  # the same name (case-insensitive, FQDN form)
        ("x.cdn.example.com", True, True),  # matchPattern *.cdn.example.com
        # *.cdn.example.com needs exactly one label in front: cdn.example.com is not selected
        ("cdn.example.com", True, False),
        # selected by neither toFQDNs selector although the proxy allowed the lookup
        ("www.example.com", True, False),
        ("example.com", True, False),
    ],
)
def test_match_name_and_pattern(name: str, dns_allowed: bool, reachable: bool) -> None:
    e = fqdn_engine(CLIENT_FQDN)
    obs = learn(e, CLIENT, name, [CDN_IP])
    assert obs.learned == dns_allowed
    want = (FORWARDED, None, EGRESS) if reachable else (DROPPED, POLICY_DENIED, EGRESS)
    assert outcome(verdict(e, CLIENT, CDN_IP, "443/TCP")) == want


def test_dns_proxy_refusing_the_name_learns_nothing() -> None:
    # a.cdn.example.com is selected by toFQDNs (*.cdn.example.com) but the DNS rules allow only
    # one label under example.com: the proxy answers REFUSED, no IP is learned
    e = fqdn_engine(CLIENT_FQDN)
    obs = learn(e, CLIENT, "a.cdn.example.com", [CDN_IP])
    assert not obs.learned
    assert obs.verdict.verdict == REDIRECTED
    assert obs.verdict.l7 is not None and (obs.verdict.l7.verdict, obs.verdict.l7.dns_rcode) == (DROPPED, "REFUSED")
    assert outcome(verdict(e, CLIENT, CDN_IP, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)


def test_dns_proxy_refusing_with_name_error() -> None:
    e = fqdn_engine(CLIENT_FQDN, tofqdns_dns_reject_response_code="nameError")
    obs = learn(e, CLIENT, "evil.org", [OTHER_IP])
    assert not obs.learned
    assert obs.verdict.l7 is not None and obs.verdict.l7.dns_rcode == "NXDOMAIN"


# --- the seed article's pitfall 1: toFQDNs without the DNS rule -----------------------------------------

FQDN_ONLY = cnp("client-fqdn-only", f"endpointSelector: {{matchLabels: {{app: client}}}}\negress:{FQDN_RULE}")
DNS_L4_ONLY = cnp("client-dns-l4", f"""
endpointSelector: {{matchLabels: {{app: client}}}}
egress:
- {TO_KUBE_DNS}
  toPorts: [{{ports: [{{port: "53", protocol: UDP}}]}}]
""")


def test_fqdn_without_dns_rule_dns_itself_is_dropped() -> None:
    # egress default deny and no DNS allow: the lookup is dropped, nothing is learned, and the
    # connection to the (externally resolved) IP is dropped as well
    e = fqdn_engine(FQDN_ONLY)
    obs = learn(e, CLIENT, "api.example.com", [API_IP])
    assert not obs.learned
    assert outcome(obs.verdict) == (DROPPED, POLICY_DENIED, EGRESS)
    assert outcome(verdict(e, CLIENT, API_IP, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)


def test_fqdn_with_dns_allowed_but_not_redirected() -> None:
    # "DNS works but the connection is refused": port 53 is allowed at L4 only, the query is
    # never seen by the DNS proxy, nothing is learned
    e = fqdn_engine(FQDN_ONLY, DNS_L4_ONLY)
    obs = learn(e, CLIENT, "api.example.com", [API_IP])
    assert outcome(obs.verdict) == (FORWARDED, None, EGRESS)
    assert not obs.verdict.egress.redirected
    assert not obs.learned
    assert outcome(verdict(e, CLIENT, API_IP, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)
    # adding the DNS rule fixes it
    e = fqdn_engine(FQDN_ONLY, CLIENT_FQDN)
    assert learn(e, CLIENT, "api.example.com", [API_IP]).learned
    assert outcome(verdict(e, CLIENT, API_IP, "443/TCP")) == (FORWARDED, None, EGRESS)


# --- TTL and the agent's FQDN options -------------------------------------------------------------------

def test_ttl_expiry() -> None:
    e = fqdn_engine(CLIENT_FQDN)
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=60, now=0.0)
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 30.0).verdict == FORWARDED
    late = egress_at(e, CLIENT, API_IP, "443/TCP", 120.0)
    assert (late.verdict, late.drop_reason_desc) == (DROPPED, POLICY_DENIED)
    # a new answer renews it
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=60, now=100.0)
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 120.0).verdict == FORWARDED


def test_min_ttl_raises_short_ttls() -> None:
    e = fqdn_engine(CLIENT_FQDN, tofqdns_min_ttl=3600)
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=5, now=0.0)
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 120.0).verdict == FORWARDED
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 3601.0).verdict == DROPPED
    # a TTL above the minimum is kept
    e = fqdn_engine(CLIENT_FQDN, tofqdns_min_ttl=60)
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=600, now=0.0)
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 300.0).verdict == FORWARDED


def test_max_ip_per_hostname_evicts_the_oldest() -> None:
    # pkg/fqdn/cache.go cleanupOverLimitEntries: over the limit, the entries expiring first go
    e = fqdn_engine(CLIENT_FQDN, tofqdns_endpoint_max_ip_per_hostname=2)
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=300, now=0.0)
    learn(e, CLIENT, "api.example.com", [API_IP2], ttl=300, now=10.0)
    learn(e, CLIENT, "api.example.com", [API_IP3], ttl=300, now=20.0)
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 30.0).verdict == DROPPED
    assert egress_at(e, CLIENT, API_IP2, "443/TCP", 30.0).verdict == FORWARDED
    assert egress_at(e, CLIENT, API_IP3, "443/TCP", 30.0).verdict == FORWARDED
    # the limit is per name
    learn(e, CLIENT, "x.cdn.example.com", [CDN_IP], ttl=300, now=25.0)
    assert egress_at(e, CLIENT, CDN_IP, "443/TCP", 30.0).verdict == FORWARDED


def test_idle_connection_grace_period_does_not_outlive_its_window() -> None:
    e = fqdn_engine(CLIENT_FQDN, tofqdns_idle_connection_grace_period=300.0)
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=60, now=0.0)
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 30.0).verdict == FORWARDED
    # expired (60 s) and past any grace period (60 + 300 s): gone in every case
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 400.0).verdict == DROPPED


def test_idle_connection_grace_period_needs_a_connection() -> None:
    e = fqdn_engine(CLIENT_FQDN, tofqdns_idle_connection_grace_period=300.0)
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=60, now=0.0)
    # Cilium keeps an expired IP only while a connection to it is alive (pkg/fqdn/cache.go
    # isConnectionAlive; the CT GC marks IPs alive until gcStart + grace period).
    # The pod never connected to API_IP: after the TTL the name is gone despite the grace period.
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 120.0).verdict == DROPPED


def test_idle_connection_grace_period_keeps_a_connected_ip() -> None:
    e = fqdn_engine(CLIENT_FQDN, tofqdns_idle_connection_grace_period=300.0)
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=60, now=0.0)
    ep = e.endpoint(CLIENT)
    assert ep is not None
    e.fqdn_cache(ep).mark_connection(API_IP, 50.0)  # a connection while the name was valid
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 120.0).verdict == FORWARDED  # within 50 + 300
    assert egress_at(e, CLIENT, API_IP, "443/TCP", 400.0).verdict == DROPPED


# --- identities of learned IPs ----------------------------------------------------------------------

def test_pod_ip_resolved_via_dns_keeps_its_pod_identity() -> None:
    # pkg/fqdn doc: "toFQDNs cannot handle in-cluster IPs"; the ipcache keeps the pod's identity
    e = fqdn_engine(CLIENT_FQDN)
    db_ip = "10.0.2.12"  # other/db
    assert learn(e, CLIENT, "db.example.com", [db_ip]).learned
    ident = e.identity_of_ip(db_ip, "node-1")
    assert "k8s:app=db" in ident.labels.to_strings()
    assert not any(lb.startswith("fqdn:") for lb in ident.labels.to_strings())
    v = verdict(e, CLIENT, db_ip, "443/TCP")
    assert outcome(v) == (DROPPED, POLICY_DENIED, EGRESS)
    assert v.dst_identity is not None and v.dst_identity.id == ident.id


CIDR_80 = cnp("client-cidr", """
endpointSelector: {matchLabels: {app: client}}
egress:
- toCIDR: [203.0.113.0/24]
  toPorts: [{ports: [{port: "80", protocol: TCP}]}]
""")


def test_learned_ip_still_matches_cidr_rules() -> None:
    # the FQDN identity also carries cidr: labels (pkg/labels GetCIDRLabels), so toCIDR keeps working
    e = fqdn_engine(CLIENT_FQDN, CIDR_80)
    learn(e, CLIENT, "api.example.com", [API_IP])
    v80 = verdict(e, CLIENT, API_IP, "80/TCP")
    assert outcome(v80) == (FORWARDED, None, EGRESS)
    assert refs(v80.egress.allowed_by) == ["CiliumNetworkPolicy app/client-cidr"]
    v443 = verdict(e, CLIENT, API_IP, "443/TCP")
    assert outcome(v443) == (FORWARDED, None, EGRESS)
    assert refs(v443.egress.allowed_by) == ["CiliumNetworkPolicy app/client-fqdn"]
    # an address in the CIDR that was never learned: only the CIDR rule applies
    assert outcome(verdict(e, CLIENT, API_IP2, "80/TCP")) == (FORWARDED, None, EGRESS)
    assert outcome(verdict(e, CLIENT, API_IP2, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)


LOCAL_FQDN_ONLY = cnp("local-fqdn", f"endpointSelector: {{matchLabels: {{app: local}}}}\negress:{FQDN_RULE}")
SERVER_FQDN_ONLY = cnp("server-fqdn", f"endpointSelector: {{matchLabels: {{app: server}}}}\negress:{FQDN_RULE}")


def test_answers_count_for_every_endpoint_on_the_node() -> None:
    # pkg/fqdn doc: "DNS data is tracked per-endpoint but collected globally in each cilium-agent
    # when calculating policy" -- the learned IP's fqdn identity lives in the node's ipcache, so
    # app/local (same node as app/client, no DNS rule of its own) may connect too; app/server on
    # node-2 may not: its agent never saw the answer
    e = fqdn_engine(CLIENT_FQDN, LOCAL_FQDN_ONLY, SERVER_FQDN_ONLY)
    assert outcome(verdict(e, LOCAL, API_IP, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)
    learn(e, CLIENT, "api.example.com", [API_IP])
    v = verdict(e, LOCAL, API_IP, "443/TCP")
    assert outcome(v) == (FORWARDED, None, EGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy app/local-fqdn"]
    assert outcome(verdict(e, SERVER, API_IP, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)
    # app/local's own cache is empty: the per-endpoint cache and the node's selectors differ
    assert e.fqdn_caches.get("app/local") is None


def test_answer_learned_on_another_node_does_not_count() -> None:
    e = fqdn_engine(CLIENT_FQDN, SERVER_FQDN_ONLY, cnp("server-dns", f"""
endpointSelector: {{matchLabels: {{app: server}}}}
egress:
- {TO_KUBE_DNS}
  toPorts:
  - ports: [{{port: "53", protocol: UDP}}]
    rules:
      dns: [{{matchPattern: "*"}}]
"""))
    assert learn(e, SERVER, "api.example.com", [API_IP]).learned
    assert outcome(verdict(e, SERVER, API_IP, "443/TCP")) == (FORWARDED, None, EGRESS)
    assert outcome(verdict(e, CLIENT, API_IP, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)


# --- toFQDNs with L7 on the port ---------------------------------------------------------------------

def test_fqdn_with_http_rules() -> None:
    e = fqdn_engine(cnp("client-fqdn-http", f"""
endpointSelector: {{matchLabels: {{app: client}}}}
egress:
- {TO_KUBE_DNS}
  toPorts:
  - ports: [{{port: "53", protocol: UDP}}]
    rules:
      dns: [{{matchName: api.example.com}}]
- toFQDNs: [{{matchName: api.example.com}}]
  toPorts:
  - ports: [{{port: "80", protocol: TCP}}]
    rules:
      http: [{{method: GET, path: "/v1/.*"}}]
"""))
    learn(e, CLIENT, "api.example.com", [API_IP])
    ok = l7_verdict(e, CLIENT, API_IP, "80/TCP", HTTPRequest("GET", "/v1/status", "api.example.com"))
    assert (ok.verdict, ok.traffic_direction) == (REDIRECTED, EGRESS)
    assert ok.l7 is not None and ok.l7.verdict == FORWARDED
    bad = l7_verdict(e, CLIENT, API_IP, "80/TCP", HTTPRequest("POST", "/v1/status", "api.example.com"))
    assert bad.l7 is not None and (bad.l7.verdict, bad.l7.http_status) == (DROPPED, 403)



def test_match_pattern_star_selects_learned_ips_only() -> None:
    # §7: `matchPattern: "*"` in toFQDNs selects every IP learned from DNS, not every address
    e = fqdn_engine(cnp("client-any-name", f"""
endpointSelector: {{matchLabels: {{app: client}}}}
egress:
- {TO_KUBE_DNS}
  toPorts:
  - ports: [{{port: "53", protocol: UDP}}]
    rules:
      dns: [{{matchPattern: "*"}}]
- toFQDNs: [{{matchPattern: "*"}}]
  toPorts: [{{ports: [{{port: "443", protocol: TCP}}]}}]
"""))
    assert learn(e, CLIENT, "anything.example.net", [OTHER_IP]).learned
    assert outcome(verdict(e, CLIENT, OTHER_IP, "443/TCP")) == (FORWARDED, None, EGRESS)
    assert outcome(verdict(e, CLIENT, API_IP, "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)


# --- identities learned after policies were compiled ---------------------------------------------------

LOCAL_CIDR = cnp("local-cidr", """
endpointSelector: {matchLabels: {app: local}}
egress:
- toCIDR: [203.0.113.0/24]
  toPorts: [{ports: [{port: "443", protocol: TCP}]}]
""")
SERVER_FROM_CLIENT = cnp("server-from-client", """
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
""")


def test_policies_compiled_before_an_answer_select_the_new_fqdn_identity() -> None:
    # app/local's toCIDR covers API_IP. Once app/client (same node) learns api.example.com,
    # the node's ipcache gives API_IP a new identity (fqdn + cidr labels): local's policy,
    # compiled before, must select it too, while policies that cannot select it stay as built.
    e = fqdn_engine(CLIENT_FQDN, LOCAL_CIDR, SERVER_FROM_CLIENT)
    assert outcome(verdict(e, LOCAL, API_IP, "443/TCP")) == (FORWARDED, None, EGRESS)
    server = e.endpoint_of_pod(SERVER)
    assert server is not None
    server_policy = e.policy(server)
    assert learn(e, CLIENT, "api.example.com", [API_IP]).learned
    v = verdict(e, LOCAL, API_IP, "443/TCP")
    assert v.dst_identity is not None and "fqdn:api.example.com" in v.dst_identity.labels.to_strings()
    assert outcome(v) == (FORWARDED, None, EGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy app/local-cidr"]
    assert outcome(verdict(e, CLIENT, API_IP, "443/TCP")) == (FORWARDED, None, EGRESS)
    assert e.policy(server) is server_policy


# --- the memoised identity of a learned IP ---------------------------------------------------------

_NAMES = ["api.example.com", "db.example.com", "a.cdn.example.com"]
_IPS = [API_IP, API_IP2, API_IP3]
_op = st.one_of(
    st.tuples(st.just("learn"), st.sampled_from([CLIENT, LOCAL]), st.sampled_from(_NAMES),
              st.lists(st.sampled_from(_IPS), min_size=1, max_size=3, unique=True), st.integers(0, 60)),
    st.tuples(st.just("mark"), st.sampled_from([CLIENT, LOCAL]), st.sampled_from(_IPS)),
    st.tuples(st.just("wait"),),
)


def _assert_memo_agrees(e: PolicyEngine, now: float) -> None:
    where = [(ip, node) for node in ("node-1", "node-2", None) for ip in _IPS]
    memoised = [e.identity_of_ip(ip, node, now) for ip, node in where]
    e._fqdn_memo.clear()  # lookups without the memo
    assert [e.identity_of_ip(ip, node, now) for ip, node in where] == memoised, now


def test_memoised_fqdn_identity_after_expiry_and_relearning() -> None:
    e = fqdn_engine(CLIENT_FQDN)
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=10, now=0.0)
    assert e.identity_of_ip(API_IP, "node-1", 5.0).labels.has_source("fqdn")
    assert not e.identity_of_ip(API_IP, "node-1", 20.0).labels.has_source("fqdn")  # lapsed
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=10, now=25.0)  # learned again
    assert e.identity_of_ip(API_IP, "node-1", 26.0).labels.has_source("fqdn")
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=1, now=27.0)  # a shorter TTL
    assert not e.identity_of_ip(API_IP, "node-1", 30.0).labels.has_source("fqdn")


def test_memoised_fqdn_identity_after_eviction_and_a_connection() -> None:
    e = fqdn_engine(CLIENT_FQDN, tofqdns_endpoint_max_ip_per_hostname=1, tofqdns_idle_connection_grace_period=30.0)
    learn(e, CLIENT, "api.example.com", [API_IP], ttl=10, now=0.0)
    assert e.identity_of_ip(API_IP, "node-1", 1.0).labels.has_source("fqdn")
    learn(e, CLIENT, "api.example.com", [API_IP2], ttl=10, now=2.0)  # evicts API_IP
    assert not e.identity_of_ip(API_IP, "node-1", 3.0).labels.has_source("fqdn")
    assert not e.identity_of_ip(API_IP2, "node-1", 15.0).labels.has_source("fqdn")  # lapsed
    ep = e.endpoint_of_pod(CLIENT)
    assert ep is not None
    e.fqdn_cache(ep).mark_connection(API_IP2, 16.0)  # within the grace period from now on
    assert e.identity_of_ip(API_IP2, "node-1", 17.0).labels.has_source("fqdn")


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(st.tuples(_op, st.floats(0, 40)), min_size=1, max_size=25),
       grace=st.sampled_from([0.0, 30.0]), max_ips=st.sampled_from([1, 1000]))
def test_memoised_fqdn_identity_equals_a_fresh_lookup(ops: list[tuple[tuple[object, ...], float]], grace: float, max_ips: int) -> None:
    # Learning, re-learning (longer, shorter, after expiry), evictions and connection marks
    # at times that mostly advance but sometimes step back: after each, the memoised answer
    # for every address and node is what a lookup without the memo gives.
    e = fqdn_engine(CLIENT_FQDN, tofqdns_idle_connection_grace_period=grace, tofqdns_endpoint_max_ip_per_hostname=max_ips)
    now = 0.0
    for op, step in ops:
        now += step - 5.0  # up to 5 s back in time
        if op[0] == "learn":
            _, pod, name, ips, ttl = op
            learn(e, str(pod), str(name), list(ips), ttl=int(ttl), now=now)  # type: ignore[call-overload]
        elif op[0] == "mark":
            ep = e.endpoint_of_pod(str(op[1]))
            assert ep is not None
            e.fqdn_cache(ep).mark_connection(str(op[2]), now)
        _assert_memo_agrees(e, now)
