"""Selectors: namespace scoping (§1.4), entities (§2.2), CIDR (§2.4/§2.5), KNP translation
(§1.3) and toServices (§11.1).

Cluster: tests/engine_helpers.py. Ingress tests use `allow_localhost="policy"` where the host
is probed, so the automatic localhost allow (§3.8) does not hide the selector under test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from engine_helpers import (
    DENIED,
    DROPPED,
    EGRESS,
    FORWARDED,
    FWD,
    INGRESS,
    NODE1_IP,
    NODE2_IP,
    POLICY_DENIED,
    STD_PODS,
    WORLD_IP,
    ccnp,
    cnp,
    engine,
    knp,
    make_cluster,
    outcome,
    refs,
    short,
    verdict,
)

# Sources probing app/server (node-2) ingress: same-namespace pod, other-namespace pod, world,
# the local host (node-2, identity 1) and a remote node (node-1 runs the apiserver: identity 7).
SOURCES = ["app/client", "other/client", WORLD_IP, "node/node-2", "node/node-1"]


def _ingress_row(e: object, port: str = "8080/TCP") -> list[bool]:
    return [verdict(e, s, "app/server", port).verdict == FORWARDED for s in SOURCES]  # type: ignore[arg-type]


# --- §1.4 namespace scoping; the sources a peer selector admits -------------------------------


def _server_from(peer: str, kind: Callable[[str, str], str] = cnp) -> str:
    """Policy "p" selecting app/server with one ingress element, `peer`."""
    return kind("p", "endpointSelector: {matchLabels: {app: server}}\ningress: [{" + peer + "}]")


KNP_NAMESPACE_NOT_IN = knp("k", "podSelector: {matchLabels: {app: server}}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: team, operator: NotIn, values: [b]}]}}]}]")


@pytest.mark.parametrize(
    ("policy", "config", "row"),
    [
        # CNP fromEndpoints [{}] = same-namespace pods only (§1.4.3)
        pytest.param(_server_from("fromEndpoints: [{}]"), {}, [True, False, False, False, False],
                     id="cnp-from-endpoints-empty"),
        # CCNP fromEndpoints [{}] = all pods of all namespaces, not world/host/remote-node (§1.4.3)
        pytest.param(_server_from("fromEndpoints: [{}]", ccnp), {}, [True, True, False, False, False],
                     id="ccnp-from-endpoints-empty"),
        # explicit namespace key: cross-namespace (§1.4.3 "already constrains ... untouched")
        pytest.param(_server_from("fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: other}}]"), {},
                     [False, True, False, False, False], id="cnp-explicit-namespace"),
        # `any:` source namespace key also counts (§1.4.3)
        pytest.param(_server_from("fromEndpoints: [{matchLabels: {io.kubernetes.pod.namespace: other}}]"), {},
                     [False, True, False, False, False], id="cnp-explicit-namespace-any-source"),
        # namespace-label selector in a CNP: no namespace injection (newest getEndpointSelector, Open q. 2)
        pytest.param(_server_from("fromEndpoints: [{matchLabels: {io.cilium.k8s.namespace.labels.team: b}}]"), {},
                     [False, True, False, False, False], id="cnp-namespace-label"),
        pytest.param(_server_from("fromEndpoints: [{matchExpressions: [{key: io.cilium.k8s.namespace.labels.team, operator: In, values: [a, b]}]}]"), {},
                     [True, True, False, False, False], id="cnp-namespace-label-expression"),
        # plain label in a CNP gets the policy namespace: other/client (app=client) is excluded
        pytest.param(_server_from("fromEndpoints: [{matchLabels: {app: client}}]"), {}, [True, False, False, False, False],
                     id="cnp-plain-label"),
        # ...in a CCNP it gets "namespace exists": both clients
        pytest.param(_server_from("fromEndpoints: [{matchLabels: {app: client}}]", ccnp), {}, [True, True, False, False, False],
                     id="ccnp-plain-label"),
        # reserved: keys are left untouched (§1.4.3)
        pytest.param(_server_from("fromEndpoints: [{matchLabels: {'reserved:world': ''}}]"), {},
                     [False, False, True, False, False], id="cnp-reserved-label"),
        # §1.4.4: fromEntities [all] is everything (fromEndpoints [{}]: same-namespace pods, above)
        pytest.param(_server_from("fromEntities: [all]"), {}, [True, True, True, True, True], id="cnp-from-entities-all"),
        # §2.4: fromCIDR never selects pods (nor nodes)
        pytest.param(_server_from("fromCIDR: [0.0.0.0/0]"), {}, [False, False, True, False, False], id="cnp-from-cidr-all"),
        # NotIn-only namespace selectors: policy-default-local-cluster (default since 1.19,
        # upgrade.rst) adds io.cilium.k8s.policy.cluster=<local>, so only local-cluster pods
        pytest.param(KNP_NAMESPACE_NOT_IN, {}, [True, False, False, False, False], id="knp-namespace-notin"),
        pytest.param(_server_from("fromEndpoints: [{matchExpressions: [{key: k8s:io.kubernetes.pod.namespace, operator: NotIn, values: [other]}]}]"), {},
                     [True, False, False, False, False], id="cnp-namespace-notin"),
        # policy-default-local-cluster=false (pre-1.19 default): no cluster filter, so a NotIn-only
        # namespace selector also matches identities without namespace labels (world, nodes)
        pytest.param(KNP_NAMESPACE_NOT_IN, {"policy_default_local_cluster": False}, [True, False, True, True, True],
                     id="knp-namespace-notin-without-policy-default-local-cluster"),
    ],
)
def test_ingress_sources_selected_by_peer(policy: str, config: dict[str, Any], row: list[bool]) -> None:
    # SOURCES that reach app/server:8080 when only `policy` selects it
    e = engine(policy, allow_localhost="policy", **config)
    assert _ingress_row(e) == row


def test_cnp_subject_cannot_leave_its_namespace() -> None:
    # §1.4.1: the policy namespace replaces a user-supplied namespace in endpointSelector
    e = engine(cnp("p", """
endpointSelector: {matchLabels: {app: server, k8s:io.kubernetes.pod.namespace: other}}
ingress: [{}]
"""))
    assert outcome(verdict(e, "app/client", "app/server", "8080/TCP")) == (DROPPED, POLICY_DENIED, INGRESS)
    assert short(verdict(e, "other/client", "other/server", "8081/TCP")) == FWD


def test_ccnp_empty_subject_selects_all_namespaces_not_host() -> None:
    # §1.4.2: CCNP endpointSelector {} selects pods of every namespace (never the host endpoint)
    e = engine(ccnp("p", "endpointSelector: {}\ningress: [{}]"))
    for dst in ("app/server", "other/server", "other/db"):
        assert short(verdict(e, "app/client", dst, "8080/TCP")) == DENIED, dst
    v = verdict(e, "app/client", NODE2_IP, "22/TCP")  # host endpoint: not selected (host firewall off)
    assert v.verdict == FORWARDED


def test_cnp_empty_subject_is_its_namespace() -> None:
    # §1.4.1: endpointSelector {} in a CNP = all pods of that namespace only
    e = engine(cnp("p", "endpointSelector: {}\ningress: [{}]", ns="other"))
    assert short(verdict(e, "app/client", "other/server", "8081/TCP")) == DENIED
    assert short(verdict(e, "other/client", "app/server", "8080/TCP")) == FWD


# --- §2.2 entities -------------------------------------------------------------------------------

# Egress of app/client (node-1) to: same-ns pod, other-ns pod, own node (host, also the
# apiserver), other node (remote-node), world.
ENTITY_DSTS = ["app/server", "other/server", NODE1_IP, NODE2_IP, WORLD_IP]


@pytest.mark.parametrize(
    ("entity", "row"),
    [
        ("cluster", [True, True, True, True, False]),  # pods + host + remote-node, not world
        ("all", [True, True, True, True, True]),  # wildcard, world included
        ("world", [False, False, False, False, True]),
        ("host", [False, False, True, False, False]),
        ("remote-node", [False, False, False, True, False]),
        ("kube-apiserver", [False, False, True, False, False]),  # apiserver runs on node-1 (host)
        ("health", [False, False, False, False, False]),
        ("none", [False, False, False, False, False]),
    ],
)
def test_entities(entity: str, row: list[bool]) -> None:
    # §2.2 entity table; entities are never namespace-scoped (§1.4.4)
    e = engine(cnp("p", f"endpointSelector: {{matchLabels: {{app: client}}}}\negress: [{{toEntities: [{entity}]}}]"))
    got = []
    for dst in ENTITY_DSTS:
        v = verdict(e, "app/client", dst, "8080/TCP")
        if v.verdict != FORWARDED:
            assert outcome(v) == (DROPPED, POLICY_DENIED, EGRESS), dst
        got.append(v.verdict == FORWARDED)
    assert got == row


def test_world_entity_matches_cidr_identities() -> None:
    # §2.2: CIDR identities carry the world label, so `world` still matches an IP that a CIDR
    # rule elsewhere turned into a CIDR identity
    e = engine(cnp("p", """
endpointSelector: {matchLabels: {app: client}}
egress:
- toEntities: [world]
- toCIDR: [1.2.3.0/24]
  toPorts: [{ports: [{port: "53", protocol: UDP}]}]
"""))
    v = verdict(e, "app/client", WORLD_IP, "443/TCP")
    assert outcome(v) == (FORWARDED, None, EGRESS)
    assert v.dst_identity is not None and v.dst_identity.id != 2  # a CIDR identity, not plain world


# --- §2.4/§2.5 CIDR ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "dst", "expected"),
    [
        # pod IPs never match CIDR selectors (§2.4, layer3.rst)
        ("toCIDR: [10.0.0.0/8]", "app/server", DENIED),
        ("toCIDR: [10.0.0.0/8]", "10.99.0.1", FWD),
        ("toCIDR: [0.0.0.0/0]", "app/server", DENIED),
        ("toCIDR: [0.0.0.0/0]", WORLD_IP, FWD),  # /0 is the world identity (§2.5)
        ("toCIDR: [1.2.3.4/32]", WORLD_IP, FWD),
        ("toCIDR: [1.2.3.4/32]", "1.2.3.5", DENIED),
        # node IPs are remote-node/host, not CIDR (default policy-cidr-match-mode)
        ("toCIDR: [172.18.0.0/16]", NODE2_IP, DENIED),
        ("toCIDR: [172.18.0.0/16]", NODE1_IP, DENIED),
        ("toCIDR: [172.18.0.0/16]", "172.18.9.9", FWD),
        # except carves a hole (§2.5)
        ("toCIDRSet: [{cidr: 1.0.0.0/8, except: [1.2.0.0/16]}]", "1.1.1.1", FWD),
        ("toCIDRSet: [{cidr: 1.0.0.0/8, except: [1.2.0.0/16]}]", WORLD_IP, DENIED),
        ("toCIDRSet: [{cidr: 1.0.0.0/8, except: [1.2.0.0/16]}]", "2.0.0.1", DENIED),
        # IPv6
        ("toCIDR: ['2001:db8::/32']", "2001:db8::1", FWD),
        ("toCIDR: ['2001:db8::/32']", "2001:db9::1", DENIED),
    ],
)
def test_cidr_selectors(peer: str, dst: str, expected: tuple[str, str | None]) -> None:
    e = engine(cnp("p", f"endpointSelector: {{matchLabels: {{app: client}}}}\negress: [{{{peer}}}]"))
    v = verdict(e, "app/client", dst, "443/TCP")
    assert short(v) == expected
    if expected == FWD:
        assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy app/p"]


@pytest.mark.parametrize(
    ("src", "dst", "default", "nodes"),
    [
        ("app/client", NODE2_IP, DENIED, FWD),  # remote node selectable by CIDR only in nodes mode
        ("app/client", "172.18.9.9", FWD, FWD),
        ("app/client", "app/server", DENIED, DENIED),  # pods still never
    ],
)
def test_policy_cidr_match_mode_nodes(src: str, dst: str, default: tuple[str, str | None], nodes: tuple[str, str | None]) -> None:
    # §2.4 / layer3.rst "Selecting nodes with CIDR / ipBlock"
    p = cnp("p", "endpointSelector: {}\negress: [{toCIDR: [172.18.0.0/16, 10.0.0.0/8]}]")
    assert short(verdict(engine(p), src, dst, "22/TCP")) == default
    assert short(verdict(engine(p, policy_cidr_match_mode="nodes"), src, dst, "22/TCP")) == nodes


def test_policy_cidr_match_mode_nodes_selects_own_node() -> None:
    # The local node's addresses' cidr: labels join the host identity (pkg/node/manager
    # nodeIdentityLabels, pkg/ipcache/metadata.go resolveIdentity): a CIDR rule covering the
    # pod's own node selects identity 1 in nodes mode, and only then. The host's ingress is
    # not enforced (no host firewall), so the egress side reports the verdict.
    p = cnp("p", "endpointSelector: {}\negress: [{toCIDR: [172.18.0.0/16]}]")
    e = engine(p, policy_cidr_match_mode="nodes")
    v = verdict(e, "app/client", NODE1_IP, "22/TCP")
    assert outcome(v) == (FORWARDED, None, EGRESS)
    assert v.dst_identity is not None and v.dst_identity.id == 1
    assert f"cidr:{NODE1_IP}/32" in v.dst_identity.labels.to_strings()
    assert outcome(verdict(engine(p), "app/client", NODE1_IP, "22/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)


def test_policy_cidr_match_mode_nodes_keeps_kube_apiserver() -> None:
    # pkg/ipcache/metadata.go resolveIdentity: the apiserver label stays merged on the node prefix
    p = cnp("p", "endpointSelector: {}\negress: [{toEntities: [kube-apiserver]}]")
    assert short(verdict(engine(p), "app/server", NODE1_IP, "6443/TCP")) == FWD
    v = verdict(engine(p, policy_cidr_match_mode="nodes"), "app/server", NODE1_IP, "6443/TCP")
    assert short(v) == FWD


def test_cidr_except_with_nested_cidr_identity() -> None:
    # §2.4: an IP in the except range is not selected even when a longer policy prefix
    # (another rule's /24) gives it its own CIDR identity
    e = engine(cnp("p", """
endpointSelector: {matchLabels: {app: client}}
egress:
- toCIDRSet: [{cidr: 20.0.0.0/8, except: [20.1.0.0/16]}]
- toCIDR: [20.1.1.0/24]
  toPorts: [{ports: [{port: "53", protocol: UDP}]}]
"""))
    assert short(verdict(e, "app/client", "20.2.0.1", "443/TCP")) == FWD
    assert short(verdict(e, "app/client", "20.1.1.5", "443/TCP")) == DENIED
    assert short(verdict(e, "app/client", "20.1.1.5", "53/UDP")) == FWD


# --- §1.3 Kubernetes NetworkPolicy ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "ingress_row", "egress_world"),
    [
        # policyTypes [Egress], no egress rules: all egress denied, ingress untouched
        ("podSelector: {matchLabels: {app: server}}\npolicyTypes: [Egress]", [True, True, True, True, True], DENIED),
        # no policyTypes, no ingress rules: ingress default deny
        ("podSelector: {matchLabels: {app: server}}", [False, False, False, False, False], FWD),
        # policyTypes [Ingress, Egress], nothing: both denied
        ("podSelector: {matchLabels: {app: server}}\npolicyTypes: [Ingress, Egress]", [False, False, False, False, False], DENIED),
        # egress rules, no policyTypes: egress enforced (API server defaulting) and ingress denied
        ("podSelector: {matchLabels: {app: server}}\negress: [{to: [{ipBlock: {cidr: 1.0.0.0/8}}]}]", [False, False, False, False, False], FWD),
        # ingress with `from` omitted: every source, world included
        ("podSelector: {matchLabels: {app: server}}\ningress: [{}]", [True, True, True, True, True], FWD),
        ("podSelector: {matchLabels: {app: server}}\ningress: [{from: []}]", [True, True, True, True, True], FWD),
        # podSelector peer: same namespace
        ("podSelector: {matchLabels: {app: server}}\ningress: [{from: [{podSelector: {}}]}]", [True, False, False, False, False], FWD),
        # namespaceSelector {}: every pod of every namespace, no reserved identities
        ("podSelector: {matchLabels: {app: server}}\ningress: [{from: [{namespaceSelector: {}}]}]", [True, True, False, False, False], FWD),
        # namespaceSelector by label
        ("podSelector: {matchLabels: {app: server}}\ningress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}]}]", [False, True, False, False, False], FWD),
        # namespaceSelector AND podSelector in one peer
        ("podSelector: {matchLabels: {app: server}}\ningress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}]}]", [False, False, False, False, False], FWD),
        # ipBlock never selects pods or nodes (policy.rst #9209)
        ("podSelector: {matchLabels: {app: server}}\ningress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]", [False, False, True, False, False], FWD),
        ("podSelector: {matchLabels: {app: server}}\ningress: [{from: [{ipBlock: {cidr: 1.0.0.0/8, except: [1.2.3.0/24]}}]}]", [False, False, False, False, False], FWD),
    ],
)
def test_knp_translation(spec: str, ingress_row: list[bool], egress_world: tuple[str, str | None]) -> None:
    # §1.3 (pkg/k8s/network_policy.go ParseNetworkPolicy)
    e = engine(knp("k", spec), allow_localhost="policy")
    assert _ingress_row(e) == ingress_row
    assert short(verdict(e, "app/server", WORLD_IP, "443/TCP")) == egress_world


def test_agent_cluster_name_is_the_pods_cluster_label() -> None:
    p = cnp("p", "endpointSelector: {matchLabels: {app: client}}\negress: [{toEntities: [cluster]}, {toEndpoints: [{matchLabels: {app: server}}]}]")
    for name in ("default", "prod"):
        v = verdict(engine(p, cluster_name=name), "app/client", "app/server", "8080/TCP")
        assert outcome(v) == (FORWARDED, None, EGRESS), name


def test_knp_namespace_selector_matches_pods_in_selected_namespace_only() -> None:
    # §1.3: namespaceSelector AND podSelector in one peer; allowed_by names the KNP
    e = engine(knp("k", """
podSelector: {matchLabels: {app: server}}
ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}, podSelector: {matchLabels: {app: db}}}]}]
"""))
    v = verdict(e, "other/db", "app/server", "8080/TCP")
    assert outcome(v) == (FORWARDED, None, INGRESS)
    assert refs(v.ingress.allowed_by) == ["NetworkPolicy app/k"]
    assert short(verdict(e, "other/client", "app/server", "8080/TCP")) == DENIED


@pytest.mark.parametrize(
    ("ports", "l4", "expected"),
    [
        ("[{port: 8080}]", "8080/TCP", FWD),  # protocol defaults to TCP
        ("[{port: 8080}]", "8080/UDP", DENIED),
        ("[{protocol: UDP}]", "5353/UDP", FWD),  # port omitted = all ports of the protocol
        ("[{protocol: UDP}]", "5353/TCP", DENIED),
        ("[{port: 8000, endPort: 8100}]", "8000/TCP", FWD),  # endPort range
        ("[{port: 8000, endPort: 8100}]", "8100/TCP", FWD),
        ("[{port: 8000, endPort: 8100}]", "8101/TCP", DENIED),
        ("[{port: 8000, endPort: 8100}]", "7999/TCP", DENIED),
        ("[{port: http}]", "8080/TCP", FWD),  # named port: the subject's container port
        ("[{port: http}]", "8081/TCP", DENIED),
        ("[{port: 53, protocol: SCTP}]", "53/SCTP", FWD),
        ("[{port: 53, protocol: SCTP}]", "53/UDP", DENIED),
        ("[]", "1/UDP", FWD),  # empty ports list = every port (L3 only)
    ],
)
def test_knp_ports(ports: str, l4: str, expected: tuple[str, str | None]) -> None:
    # §1.3 parsePorts: default TCP, missing port = "0", endPort copied, string = named port
    e = engine(knp("k", f"podSelector: {{matchLabels: {{app: server}}}}\ningress: [{{ports: {ports}}}]"))
    assert short(verdict(e, "app/client", "app/server", l4)) == expected


@pytest.mark.parametrize(
    ("spec", "allowed", "denied"),
    [
        pytest.param("""
podSelector: {matchLabels: {app: server}}
policyTypes: [Egress]
ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
egress: [{}]
""", ("app/client", "app/server", "8080/TCP"), ("other/client", "app/server", "8080/TCP", INGRESS),
            id="egress-only-still-translates-ingress"),
        pytest.param("""
podSelector: {matchLabels: {app: server}}
policyTypes: [Ingress]
ingress: [{}]
egress: [{to: [{podSelector: {matchLabels: {app: client}}}]}]
""", ("app/server", "app/client", "8080/TCP"), ("app/server", WORLD_IP, "443/TCP", EGRESS),
            id="ingress-only-still-translates-egress"),
    ],
)
def test_knp_policy_types_do_not_drop_the_other_direction_rules(
    spec: str, allowed: tuple[str, str, str], denied: tuple[str, str, str, str]
) -> None:
    # pkg/k8s/network_policy.go ParseNetworkPolicy translates every ingress and egress
    # element; policyTypes only adds default deny
    e = engine(knp("k", spec))
    assert short(verdict(e, *allowed)) == FWD
    src, dst, l4, direction = denied
    assert outcome(verdict(e, src, dst, l4)) == (DROPPED, POLICY_DENIED, direction)


# --- §11.1 toServices --------------------------------------------------------------------------------

SERVICES = yaml.safe_load("""
- apiVersion: v1
  kind: Service
  metadata: {name: server-svc, namespace: app}
  spec:
    selector: {app: server}
    clusterIP: 10.96.0.10
    ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
- apiVersion: v1
  kind: Service
  metadata: {name: ext-db, namespace: app}
  spec:
    clusterIP: 10.96.0.11
    ports: [{name: pg, port: 5432, protocol: TCP}]
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: ext-db-1, namespace: app, labels: {kubernetes.io/service-name: ext-db}}
  addressType: IPv4
  endpoints: [{addresses: [192.0.2.10]}]
  ports: [{name: pg, port: 5432, protocol: TCP}]
""")


@pytest.mark.parametrize(
    ("service", "dst", "port", "expected"),
    [
        # a service with a selector becomes that pod selector in the service's namespace
        ("server-svc", "app/server", "8080/TCP", FWD),
        ("server-svc", "other/server", "8081/TCP", DENIED),
        ("server-svc", "app/local", "8080/TCP", DENIED),
        # a service without selector becomes CIDRs of its EndpointSlice addresses
        ("ext-db", "192.0.2.10", "5432/TCP", FWD),
        ("ext-db", "192.0.2.11", "5432/TCP", DENIED),
        ("missing", "app/server", "8080/TCP", DENIED),  # unknown service selects nothing
    ],
)
def test_to_services(service: str, dst: str, port: str, expected: tuple[str, str | None]) -> None:
    # §11.1 (layer3.rst "Services based"); L4 policy applies to backend ports (§4.5)
    cl = make_cluster(extra=SERVICES)
    e = engine(cnp("p", f"""
endpointSelector: {{matchLabels: {{app: client}}}}
egress: [{{toServices: [{{k8sService: {{serviceName: {service}, namespace: app}}}}]}}]
"""), cluster=cl)
    v = verdict(e, "app/client", dst, port)
    assert short(v) == expected
    if expected == FWD:
        assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy app/p"]
    else:
        assert v.traffic_direction == EGRESS


def test_make_cluster_custom_namespaces() -> None:
    # helper sanity: namespace labels reach the pod identity (io.cilium.k8s.namespace.labels.*)
    cl = make_cluster({"x": {"tier": "gold"}}, {"x/a": STD_PODS["app/client"]})
    e = engine(cnp("p", "endpointSelector: {}\negress: [{toEndpoints: [{matchLabels: {io.cilium.k8s.namespace.labels.tier: gold}}]}]", ns="x"), cluster=cl)
    assert short(verdict(e, "x/a", "x/a", "80/TCP")) == FWD
