"""Valid policies load (and only load whole); edge cases Cilium/Kubernetes accept."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ciliary.model.cilium import CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy
from ciliary.model.errors import LoadError
from ciliary.model.files import read_documents
from ciliary.model.k8s import NetworkPolicy
from ciliary.model.loader import load_policies
from ciliary.model.options import ValidationOptions
from ciliary.model.source import parse_text

VALID = Path(__file__).parent / "data" / "valid"
ALL_FLAGS = ValidationOptions(enable_node_selector_labels=True, enable_extended_ip_protocols=True)


def load(text: str, options: ValidationOptions | None = None) -> int:
    return len(load_policies(parse_text(textwrap.dedent(text), "ok.yaml"), options))


def test_valid_fixtures_load() -> None:
    result = load_policies(read_documents([VALID]), ALL_FLAGS)
    refs = {str(p.ref) for p in result.policies}
    assert refs == {
        "CiliumNetworkPolicy shop/full",
        "CiliumClusterwideNetworkPolicy cluster-full",
        "CiliumNetworkPolicy streaming/legacy-l7",
        "NetworkPolicy shop/knp-full",
        "CiliumNetworkPolicy shop/from-snapshot",
        "NetworkPolicy shop/being-deleted",
        "CiliumClusterwideNetworkPolicy cluster-from-snapshot",
    }
    kinds = {type(p.obj) for p in result.policies}
    assert kinds == {CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, NetworkPolicy}


def test_fixture_needing_flags_is_rejected_without_them() -> None:
    with pytest.raises(LoadError) as err:
        load_policies(read_documents([VALID / "ccnp-full.yaml"]))
    messages = {i.message.split(" (")[0] for i in err.value.issues}
    assert any("enable-node-selector-labels" in m for m in messages)
    assert any(m.startswith('invalid protocol "VRRP"') for m in messages)


def test_values_are_kept() -> None:
    result = load_policies(read_documents([VALID / "cnp-full.yaml"]))
    [policy] = result.policies
    assert isinstance(policy.obj, CiliumNetworkPolicy)
    spec = policy.obj.spec
    assert spec is not None and spec.ingress is not None
    tls = spec.ingress[0].to_ports[0].terminating_tls if spec.ingress[0].to_ports else None
    assert tls is not None and tls.secret.name == "backend-tls"
    assert policy.obj.specs is not None
    egress = policy.obj.specs[0].egress
    assert egress is not None and egress[1].to_ports is not None
    listener = egress[1].to_ports[0].listener
    assert listener is not None and listener.priority == 10


# Accepted by the newest Cilium / Kubernetes although they look suspicious.
ACCEPTED = {
    # rule_validation.go: ToServices may be combined with ToPorts since the newest releases.
    "to-services-with-to-ports": """
        spec:
          endpointSelector: {}
          egress:
          - toServices: [{k8sService: {serviceName: db, namespace: data}}]
            toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
        """,
    # Cilium CIDRs may have host bits set; an except may equal the allowed prefix.
    "cidr-host-bits-and-equal-except": """
        spec:
          endpointSelector: {}
          egress:
          - toCIDRSet: [{cidr: 10.1.2.3/8, except: [10.0.0.0/8]}]
        """,
    # Port names are IANA service names, case-insensitive in Cilium ("0x50" is a name too);
    # Go's ParseUint accepts digit separators.
    "port-names-and-numbers": """
        spec:
          endpointSelector: {}
          ingress:
          - toPorts: [{ports: [{port: HTTP-Alt}, {port: "0x50"}, {port: "1_000"}, {port: "0"}, {port: "65535"}]}]
        """,
    # DNS L7 rules are allowed on host egress (newest rule_validation.go).
    "host-egress-dns": """
        kind: CiliumClusterwideNetworkPolicy
        spec:
          nodeSelector: {}
          egress:
          - toPorts:
            - ports: [{port: "53", protocol: ANY}]
              rules: {dns: [{matchPattern: "*"}]}
        """,
    # l7proto without l7 entries is not an L7 rule (L7Rules.IsEmpty), so UDP is fine.
    "l7proto-alone": """
        spec:
          endpointSelector: {}
          ingress:
          - toPorts: [{ports: [{port: "5000", protocol: UDP}], rules: {l7proto: custom}}]
        """,
    # Kafka API keys are matched case-insensitively; apiVersion "+5" parses as 5.
    "kafka-api-key-case": """
        spec:
          endpointSelector: {}
          ingress:
          - toPorts:
            - ports: [{port: "9092", protocol: TCP}]
              rules: {kafka: [{apiKey: FETCH, apiVersion: "+5", topic: "a\\\\b"}]}
        """,
    # An L7 rule on several ports, HTTP with an empty rule and a port range.
    "http-port-range": """
        spec:
          endpointSelector: {}
          ingress:
          - toPorts:
            - ports: [{port: "8000", endPort: 8080, protocol: TCP}, {port: http, protocol: TCP}]
              rules: {http: [{}]}
        """,
    # ICMP types as numeric strings and names of the right family.
    "icmp-types": """
        spec:
          endpointSelector: {}
          ingress:
          - icmps: [{fields: [{type: "0"}, {type: "255"}, {family: IPv6, type: NeighborSolicitation}]}]
        """,
    # `specs: []` is a policy without rules (has(self.specs) holds).
    "empty-specs": """
        spec: null
        specs: []
        """,
    # A 32-character log value and fully qualified selector keys.
    "log-and-keys": """
        spec:
          endpointSelector:
            matchLabels:
              "k8s:app.kubernetes.io/name": web
              "reserved:host": ""
              "$world": ""
          ingress: [{}]
          log: {value: "0123456789abcdef0123456789abcdef"}
        """,
}


@pytest.mark.parametrize("body", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_cilium_accepts(body: str) -> None:
    body = textwrap.dedent(body).lstrip("\n")
    kind = "CiliumNetworkPolicy"
    if body.startswith("kind: "):
        kind, body = body.split("\n", 1)[0][6:], body.split("\n", 1)[1]
    meta = (
        "metadata: {name: ok, namespace: ns}"
        if kind == "CiliumNetworkPolicy"
        else "metadata: {name: ok}"
    )
    assert load(f"apiVersion: cilium.io/v2\nkind: {kind}\n{meta}\n{body}") == 1


def test_network_policy_edge_cases_accepted() -> None:
    # The API server only rejects more than two policyTypes; a duplicate pair passes.
    assert (
        load("""
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: np, namespace: ns}
        spec:
          podSelector: {}
          policyTypes: [Ingress, Ingress]
          ingress:
          - ports: [{port: 65535, endPort: 65535}, {port: a-1}]
            from: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
        """)
        == 1
    )


TWO_DOCS = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: good, namespace: ns}
spec: {endpointSelector: {}, ingress: [{}]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: bad, namespace: ns}
spec:
  endpointSelector: {}
  egress: [{toPorts: [{ports: [{port: "99999"}]}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: also-good, namespace: ns}
spec: {podSelector: {}}
"""


def test_one_bad_document_loads_nothing() -> None:
    docs = parse_text(TWO_DOCS, "multi.yaml")
    with pytest.raises(LoadError) as err:
        load_policies(docs)
    [issue] = err.value.issues
    assert (issue.document, issue.line, issue.field) == (
        1,
        11,
        "spec.egress[0].toPorts[0].ports[0].port",
    )
    assert issue.object == "CiliumNetworkPolicy ns/bad"
    # Without the bad document everything else loads.
    assert len(load_policies([d for d in docs if d.index != 1])) == 2


def test_bad_list_item_is_located_with_items_prefix() -> None:
    text = """\
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: a, namespace: ns}
  spec: {podSelector: {}}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: b, namespace: ns}
  spec:
    podSelector: {}
    ingress: [{ports: [{port: 0}]}]
"""
    with pytest.raises(LoadError) as err:
        load_policies(parse_text(text, "list.yaml"))
    [issue] = err.value.issues
    assert (issue.field, issue.line) == ("items[1].spec.ingress[0].ports[0].port", 13)


def test_every_problem_of_an_object_is_reported() -> None:
    text = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: ns}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [bogus]
  egress:
  - toCIDR: [1.2.3.4]
"""
    with pytest.raises(LoadError) as err:
        load_policies(parse_text(text, "two.yaml"))
    assert [(i.field, i.line) for i in err.value.issues] == [
        ("spec.ingress[0].fromEntities[0]", 7),
        ("spec.egress[0].toCIDR[0]", 9),
    ]


def _many_policies(n: int) -> str:
    out = []
    for i in range(n):
        out.append(f"""\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: p{i}, namespace: ns{i % 50}}}
spec:
  endpointSelector: {{matchLabels: {{app: a{i}, "k8s:tier": web}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: b{i % 7}}}}}]
    toPorts:
    - ports: [{{port: "{8000 + i % 100}", protocol: TCP}}]
      rules: {{http: [{{method: GET, path: "/api/v{i % 3}/.*"}}, {{method: POST, path: /submit}}]}}
  egress:
  - toCIDRSet: [{{cidr: 10.{i % 250}.0.0/16, except: [10.{i % 250}.1.0/24]}}]
  - toFQDNs: [{{matchPattern: "*.svc{i % 9}.example.com"}}]
    toPorts: [{{ports: [{{port: "443"}}]}}]
  - toEndpoints: [{{matchLabels: {{"k8s:io.kubernetes.pod.namespace": kube-system}}}}]
    toPorts:
    - ports: [{{port: "53", protocol: ANY}}]
      rules: {{dns: [{{matchPattern: "*"}}]}}
""")
    return "---\n".join(out)


def test_loading_2000_policies() -> None:
    # Speed is bench/engine.py's to measure (policy_validate), not a test's.
    docs = parse_text(_many_policies(2000), "many.yaml")
    result = load_policies(docs)
    assert len(result) == 2000
