"""Direction semantics and default deny (cilium-semantics.md §3), enforcement modes,
allow-localhost, and host / remote-node / kube-apiserver identities by node placement.

Cluster: tests/engine_helpers.py (node-1 runs the kube-apiserver; app/client, app/local,
other/client on node-1; app/server, other/server, other/db on node-2).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ciliary.verdict.decide import decide
from ciliary.verdict.types import Connection, FlowPeer
from engine_helpers import (
    DENIED,
    DENY,
    DROPPED,
    EGRESS,
    FORWARDED,
    FWD,
    INGRESS,
    NODE1_IP,
    NODE2_IP,
    POLICY_DENIED,
    WORLD_IP,
    ccnp,
    cnp,
    engine,
    make_cluster,
    outcome,
    parse_l4,
    refs,
    short,
    verdict,
)

SERVER_IN_FROM_CLIENT = cnp("ingress-only", """
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
""")


# --- §3.1 per-direction enforcement ---------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "l4", "expected"),
    [
        # ingress section flips ingress of app/server to default deny (§3.1)
        ("app/client", "app/server", "8080/TCP", (FORWARDED, None, INGRESS)),
        ("other/client", "app/server", "8080/TCP", (DROPPED, POLICY_DENIED, INGRESS)),
        ("app/client", "app/server", "9090/TCP", (DROPPED, POLICY_DENIED, INGRESS)),
        (WORLD_IP, "app/server", "8080/TCP", (DROPPED, POLICY_DENIED, INGRESS)),
        # ...but leaves its egress open (§3.1: each direction has its own posture)
        ("app/server", WORLD_IP, "443/TCP", (FORWARDED, None, EGRESS)),
        ("app/server", "other/client", "5000/UDP", (FORWARDED, None, INGRESS)),
        # pods not selected are untouched
        ("other/client", "other/server", "8081/TCP", (FORWARDED, None, INGRESS)),
    ],
)
def test_ingress_only_policy_flips_only_ingress(src: str, dst: str, l4: str, expected: tuple[str, str | None, str]) -> None:
    e = engine(SERVER_IN_FROM_CLIENT)
    assert outcome(verdict(e, src, dst, l4)) == expected


def test_ingress_only_policy_reports_policy_and_enforcement() -> None:
    e = engine(SERVER_IN_FROM_CLIENT)
    v = verdict(e, "app/client", "app/server", "8080/TCP")
    assert refs(v.ingress.allowed_by) == ["CiliumNetworkPolicy app/ingress-only"]  # Hubble ingress_allowed_by
    assert v.ingress.enforced and v.ingress.default_deny
    v = verdict(e, "app/server", WORLD_IP, "443/TCP")
    assert not v.egress.enforced  # §0 step 1: no egress rule selects app/server -> not enforced


@pytest.mark.parametrize(
    ("section", "expect_client", "expect_world"),
    [
        # `ingress: [{}]`: one element that selects nothing -> default deny (§3.3 first row)
        ("ingress: [{}]", DENIED, DENIED),
        # `ingress: []`: no element, no rule -> no effect (§3.1 last bullet); a rule needs some
        # non-empty section (rule_validation.go), hence the egress allow-all
        ("ingress: []\negress: [{toEntities: [all]}]", FWD, FWD),
        # `fromEndpoints: []` selects nothing but the element exists -> flips (§3.3, newest)
        ("ingress: [{fromEndpoints: []}]", DENIED, DENIED),
        ("ingress: [{fromEndpoints: [], toPorts: [{ports: [{port: '8080'}]}]}]", DENIED, DENIED),
        ("ingress: [{fromCIDR: []}]", DENIED, DENIED),
        ("ingress: [{fromEntities: []}]", DENIED, DENIED),
        # `ingressDeny` alone flips to default deny (§3.1, rule_validation.go Sanitize)
        ("ingressDeny: [{fromEndpoints: [{matchLabels: {app: nobody}}]}]", DENIED, DENIED),
        # `{toPorts}` without a peer = any peer, world included (§3.3/§3.4)
        ("ingress: [{toPorts: [{ports: [{port: '8080', protocol: TCP}]}]}]", FWD, FWD),
        # `fromEndpoints: [{}]` in a CNP = same namespace pods only (§1.4.3)
        ("ingress: [{fromEndpoints: [{}]}]", FWD, DENIED),
        # `fromEntities: [all]` = everything (§2.2)
        ("ingress: [{fromEntities: [all]}]", FWD, FWD),
    ],
)
def test_empty_and_missing_peer_selectors(section: str, expect_client: tuple[str, str | None], expect_world: tuple[str, str | None]) -> None:
    e = engine(cnp("p", "endpointSelector: {matchLabels: {app: server}}\n" + section))
    assert short(verdict(e, "app/client", "app/server", "8080/TCP")) == expect_client
    assert short(verdict(e, WORLD_IP, "app/server", "8080/TCP")) == expect_world


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("egress: [{}]", (DROPPED, POLICY_DENIED, EGRESS)),  # §3.3: canonical egress default deny
        # §3.1: no element -> no effect (some section must be non-empty: rule_validation.go)
        ("egress: []\ningress: [{fromEntities: [all]}]", (FORWARDED, None, EGRESS)),
        ("egress: [{toEndpoints: []}]", (DROPPED, POLICY_DENIED, EGRESS)),  # seed 09-default-deny form
        ("egressDeny: [{toCIDR: [9.9.9.9/32]}]", (DROPPED, POLICY_DENIED, EGRESS)),  # deny-only flips
        ("egress: [{toPorts: [{ports: [{port: '443', protocol: TCP}]}]}]", (FORWARDED, None, EGRESS)),
        # §3.2 edge: enableDefaultDeny.egress=true with no egress element creates no egress rule
        ("enableDefaultDeny: {egress: true}\ningress: [{}]", (FORWARDED, None, EGRESS)),
    ],
)
def test_egress_sections(section: str, expected: tuple[str, str | None, str]) -> None:
    e = engine(cnp("p", "endpointSelector: {matchLabels: {app: client}}\n" + section))
    assert outcome(verdict(e, "app/client", WORLD_IP, "443/TCP")) == expected


def test_toports_without_peer_allows_every_peer_kind() -> None:
    # §3.4: "to any layer 3 destination" -- pods of any namespace, world, remote nodes
    e = engine(cnp("ports-only", """
endpointSelector: {matchLabels: {app: server}}
ingress:
- toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"""), allow_localhost="policy")
    for src in ("app/client", "other/client", WORLD_IP, "node/node-1", "node/node-2"):
        v = verdict(e, src, "app/server", "8080/TCP")
        assert outcome(v) == (FORWARDED, None, INGRESS), src
        assert v.policy_match_type == "L4_ONLY"  # wildcard identity + port (§9)
        assert short(verdict(e, src, "app/server", "8081/TCP")) == DENIED, src


# --- §3.2 enableDefaultDeny and enable-non-default-deny-policies --------------------------

NON_DEFAULT_DENY = cnp("audit-like", """
endpointSelector: {matchLabels: {app: server}}
enableDefaultDeny: {ingress: false}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
ingressDeny:
- fromEndpoints: [{matchLabels: {app: client, k8s:io.kubernetes.pod.namespace: other}}]
""")


@pytest.mark.parametrize(
    ("src", "l4", "with_flag", "without_flag"),
    [
        ("app/client", "8080/TCP", FWD, FWD),  # explicit allow either way
        ("app/client", "9090/TCP", FWD, DENIED),  # unmatched: synthetic allow-all only with the flag
        (WORLD_IP, "8080/TCP", FWD, DENIED),
        ("other/client", "8080/TCP", DENY, DENY),  # denies act in both cases (§3.2)
    ],
)
def test_enable_default_deny_false(src: str, l4: str, with_flag: tuple[str, str | None], without_flag: tuple[str, str | None]) -> None:
    # §3.2: enableDefaultDeny.ingress=false -> only denies act; enable-non-default-deny-policies=false
    # -> every rule is default deny (utils.evaluateDefaultDenyForRule)
    assert short(verdict(engine(NON_DEFAULT_DENY), src, "app/server", l4)) == with_flag
    e = engine(NON_DEFAULT_DENY, enable_non_default_deny_policies=False)
    assert short(verdict(e, src, "app/server", l4)) == without_flag


def test_enable_default_deny_false_loses_to_any_default_deny_rule() -> None:
    # §3.2: "If any selecting rule has default deny (explicit or computed true), default deny wins"
    other = cnp("plain", """
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEndpoints: [{matchLabels: {app: local}}]
""")
    e = engine(NON_DEFAULT_DENY, other)
    assert short(verdict(e, WORLD_IP, "app/server", "8080/TCP")) == DENIED
    assert short(verdict(e, "app/local", "app/server", "7/TCP")) == FWD


# --- §3.6 enable-policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "l4", "expected"),
    [
        ("app/client", "app/server", "8080/TCP", (DROPPED, POLICY_DENIED, EGRESS)),  # both sides default deny
        (WORLD_IP, "app/server", "8080/TCP", (DROPPED, POLICY_DENIED, INGRESS)),
        ("app/client", WORLD_IP, "443/TCP", (DROPPED, POLICY_DENIED, EGRESS)),
        ("node/node-2", "app/server", "8080/TCP", (FORWARDED, None, INGRESS)),  # allow-localhost still applies (§3.8)
    ],
)
def test_enable_policy_always_without_any_policy(src: str, dst: str, l4: str, expected: tuple[str, str | None, str]) -> None:
    # §3.6: always -> every endpoint default deny in both directions even without rules
    assert outcome(verdict(engine(enable_policy="always"), src, dst, l4)) == expected


def test_enable_policy_always_with_allows_on_both_sides() -> None:
    e = engine(
        cnp("out", "endpointSelector: {matchLabels: {app: client}}\negress: [{toEndpoints: [{matchLabels: {app: server}}]}]"),
        cnp("in", "endpointSelector: {matchLabels: {app: server}}\ningress: [{fromEndpoints: [{matchLabels: {app: client}}]}]"),
        enable_policy="always",
    )
    v = verdict(e, "app/client", "app/server", "8080/TCP")
    assert outcome(v) == (FORWARDED, None, INGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy app/out"]
    assert refs(v.ingress.allowed_by) == ["CiliumNetworkPolicy app/in"]
    # policy must allow on both sides (layer3.rst): app/local has no egress allow
    assert outcome(verdict(e, "app/local", "app/server", "8080/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)


def test_enable_policy_never_ignores_even_denies() -> None:
    # §3.6: never -> nothing enforced, even deny rules
    deny = cnp("deny", "endpointSelector: {}\ningressDeny: [{fromEntities: [all]}]\negressDeny: [{toEntities: [all]}]")
    assert outcome(verdict(engine(deny), "app/client", "app/server", "8080/TCP")) == (DROPPED, "POLICY_DENY", EGRESS)
    e = engine(deny, enable_policy="never")
    v = verdict(e, "app/client", "app/server", "8080/TCP")
    assert outcome(v) == (FORWARDED, None, INGRESS)
    assert not v.egress.enforced and not v.ingress.enforced


# --- §3.7 init endpoints -------------------------------------------------------------------------

INIT_POLICY = ccnp("init-dns", """
endpointSelector: {matchLabels: {"reserved:init": ""}}
egress:
- toPorts: [{ports: [{port: "53", protocol: UDP}]}]
""")


@pytest.mark.parametrize(
    ("texts", "l4", "expected"),
    [
        ((), "8080/TCP", (DROPPED, POLICY_DENIED, EGRESS)),  # init: default deny even with no rule
        ((INIT_POLICY,), "53/UDP", (FORWARDED, None, EGRESS)),  # only rules selecting reserved:init allow
        ((INIT_POLICY,), "8080/TCP", (DROPPED, POLICY_DENIED, EGRESS)),
    ],
)
def test_init_endpoint_is_default_deny(texts: tuple[str, ...], l4: str, expected: tuple[str, str | None, str]) -> None:
    # §3.7 (pkg/policy/repository.go): reserved:init -> enforced with default deny both ways.
    # A pod whose labels are not known yet; built by swapping in identity 5.
    e = engine(*texts)
    ep = e.endpoint("app/client")
    assert ep is not None
    init = e.allocator.reserved(5)
    init_ep = replace(ep, identity=init, labels=init.labels)
    dst = e.endpoint("app/server")
    assert dst is not None
    proto, port = parse_l4(l4)
    v = decide(e, Connection(FlowPeer(ep.ips[0], init_ep), FlowPeer(dst.ips[0], dst), proto, port))
    assert outcome(v) == expected


# --- §3.8 allow-localhost ----------------------------------------------------------------------

DENY_ALL_INGRESS = cnp("lockdown", "endpointSelector: {}\ningress: [{}]")


@pytest.mark.parametrize(
    ("allow_localhost", "src", "dst", "expected"),
    [
        # auto (Kubernetes mode) = always: the local node reaches its pods under default deny
        ("auto", "node/node-2", "app/server", FWD),
        ("always", "node/node-1", "app/local", FWD),
        ("always", NODE2_IP, "app/server", FWD),
        # ...but only the local node: another node is remote-node/kube-apiserver, not host
        ("always", "node/node-1", "app/server", DENIED),
        ("always", "node/node-2", "app/client", DENIED),
        # policy: host -> pod is subject to policy
        ("policy", "node/node-2", "app/server", DENIED),
        ("policy", "node/node-1", "app/local", DENIED),
    ],
)
def test_allow_localhost(allow_localhost: str, src: str, dst: str, expected: tuple[str, str | None]) -> None:
    # §3.8 (pkg/policy/mapstate.go determineAllowLocalhostIngress)
    e = engine(DENY_ALL_INGRESS, allow_localhost=allow_localhost)
    v = verdict(e, src, dst, "8080/TCP")
    assert short(v) == expected
    assert v.traffic_direction == INGRESS


def test_allow_localhost_policy_host_allowed_by_host_entity() -> None:
    # §3.8: with allow-localhost=policy, the host needs an explicit allow (fromEntities: [host])
    e = engine(DENY_ALL_INGRESS, cnp("probes", "endpointSelector: {}\ningress: [{fromEntities: [host]}]"), allow_localhost="policy")
    v = verdict(e, "node/node-2", "app/server", "8080/TCP")
    assert outcome(v) == (FORWARDED, None, INGRESS)
    assert refs(v.ingress.allowed_by) == ["CiliumNetworkPolicy app/probes"]
    assert short(verdict(e, "node/node-1", "app/server", "8080/TCP")) == DENIED  # remote node is not host


# --- host / remote-node / kube-apiserver by node placement (§2.1, §2.2) --------------------------


@pytest.mark.parametrize(
    ("src", "dst", "src_id", "dst_id"),
    [
        ("app/client", NODE1_IP, None, 1),  # own node: host
        ("app/client", NODE2_IP, None, 6),  # other node: remote-node
        ("app/server", NODE2_IP, None, 1),
        ("app/server", NODE1_IP, None, 7),  # other node running the apiserver: kube-apiserver (7)
        ("node/node-1", "app/local", 1, None),
        ("node/node-2", "app/client", 6, None),
        ("node/node-1", "app/server", 7, None),
        ("app/client", WORLD_IP, None, 2),
    ],
)
def test_node_identity_depends_on_placement(src: str, dst: str, src_id: int | None, dst_id: int | None) -> None:
    # §2.1: identity 1 is the local node; every other node is remote-node (6) or kube-apiserver (7)
    v = verdict(engine(), src, dst, "22/TCP")
    if src_id is not None:
        assert v.src_identity is not None and v.src_identity.id == src_id
    if dst_id is not None:
        assert v.dst_identity is not None and v.dst_identity.id == dst_id


@pytest.mark.parametrize(
    ("entity", "src", "dst", "expected"),
    [
        ("host", "app/client", NODE1_IP, FWD),
        ("host", "app/client", NODE2_IP, DENIED),
        ("host", "app/server", NODE2_IP, FWD),
        ("host", "app/server", NODE1_IP, DENIED),
        ("remote-node", "app/client", NODE2_IP, FWD),
        ("remote-node", "app/client", NODE1_IP, DENIED),
        ("remote-node", "app/server", NODE1_IP, FWD),  # identity 7 also carries reserved:remote-node
        # kube-apiserver: identity 7 from another node, or the host itself where it runs
        ("kube-apiserver", "app/server", NODE1_IP, FWD),
        ("kube-apiserver", "app/client", NODE1_IP, FWD),
        ("kube-apiserver", "app/client", NODE2_IP, DENIED),
        ("kube-apiserver", "app/server", NODE2_IP, DENIED),
    ],
)
def test_node_entities_by_placement(entity: str, src: str, dst: str, expected: tuple[str, str | None]) -> None:
    # §2.2 entity table; the peer identity is decided by the source's node (ipcache per node)
    e = engine(cnp("to-entity", f"endpointSelector: {{}}\negress: [{{toEntities: [{entity}]}}]"))
    v = verdict(e, src, dst, "6443/TCP")
    assert short(v) == expected
    if expected == DENIED:
        assert v.traffic_direction == EGRESS
    else:
        assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy app/to-entity"]


def test_kube_apiserver_outside_the_cluster_is_not_a_node() -> None:
    # §2.1: with the apiserver outside the cluster, node IPs are plain host/remote-node
    cl = make_cluster(apiserver=("203.0.113.10",))
    e = engine(cnp("api", "endpointSelector: {}\negress: [{toEntities: [kube-apiserver]}]"), cluster=cl)
    assert short(verdict(e, "app/client", NODE1_IP, "443/TCP")) == DENIED  # node-1 is just host now
    assert short(verdict(e, "app/client", WORLD_IP, "443/TCP")) == DENIED


@pytest.mark.parametrize("peer", ["toEntities: [kube-apiserver]", "toEntities: [world]", "toCIDR: [203.0.113.0/24]"])
def test_kube_apiserver_outside_the_cluster_is_selectable(peer: str) -> None:
    # regression: the external apiserver identity used to be allocated after the selector index was built
    # §2.1/ipcache (pkg/ipcache/metadata.go resolveIdentity, labels.LabelKubeAPIServerExt): an
    # apiserver address outside the cluster gets kube-apiserver + world + its cidr label, so the
    # kube-apiserver entity, the world entity and a covering CIDR all select it (layer3.rst)
    cl = make_cluster(apiserver=("203.0.113.10",))
    e = engine(cnp("api", f"endpointSelector: {{}}\negress: [{{{peer}}}]"), cluster=cl)
    v = verdict(e, "app/client", "203.0.113.10", "443/TCP")
    assert outcome(v) == (FORWARDED, None, EGRESS)
    assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy app/api"]


# --- Hubble: which side reports a forwarded flow ---------------------------------------------------


@pytest.mark.parametrize("dst", ["app/server", NODE2_IP])
def test_forwarded_flow_reported_by_the_enforced_side(dst: str) -> None:
    # Cilium emits policy verdicts only for enforced directions (pkg/endpoint GetPolicyVerdictLogFilter)
    e = engine(cnp("out", "endpointSelector: {matchLabels: {app: client}}\negress: [{toEntities: [cluster]}]"))
    v = verdict(e, "app/client", dst, "8080/TCP")
    assert v.verdict == FORWARDED
    assert (v.traffic_direction, v.policy_match_type) == (EGRESS, "L3_ONLY")
