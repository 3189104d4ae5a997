"""Tiny fixture builder for the engine tests (tests/test_engine_*.py).

A cluster is described compactly in Python, rendered to the YAML `kubectl get -o yaml`
prints and loaded with `ciliary.cluster.loader.load_cluster`, so the tests go through the
same loader as users do. Policies are YAML strings. `verdict()` decides one flow.

The standard cluster (`std_cluster()`):

    node-1 172.18.0.2  (also runs the kube-apiserver: EndpointSlice default/kubernetes)
    node-2 172.18.0.3

    ns app   (team=a, env=prod)
      app/client   app=client  node-1 10.0.1.1
      app/local    app=local   node-1 10.0.1.2   ports http 8080/TCP
      app/server   app=server  node-2 10.0.2.1   ports http 8080/TCP, metrics 9090/TCP,
                                                       dns 53/UDP, dns-tcp 53/TCP
    ns other (team=b)
      other/client app=client  node-1 10.0.1.11
      other/server app=server  node-2 10.0.2.11  ports http 8081/TCP (same name, other number)
      other/db     app=db      node-2 10.0.2.12  ports pg 5432/TCP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ciliary.cluster.loader import load_cluster
from ciliary.cluster.model import Cluster
from ciliary.model.loader import load_policies
from ciliary.model.policy import PolicyRef, PolicySet
from ciliary.model.source import parse_text
from ciliary.policy.config import AgentConfig
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_ICMP, PROTO_ICMPV6, PROTO_NUMBERS
from ciliary.verdict.decide import resolve_peer
from ciliary.verdict.decider import Decider
from ciliary.verdict.types import Verdict

FORWARDED, DROPPED, AUDIT = "FORWARDED", "DROPPED", "AUDIT"
POLICY_DENIED, POLICY_DENY, AUTH_REQUIRED = "POLICY_DENIED", "POLICY_DENY", "AUTH_REQUIRED"
EGRESS, INGRESS = "EGRESS", "INGRESS"

NODE1_IP, NODE2_IP = "172.18.0.2", "172.18.0.3"
WORLD_IP = "1.2.3.4"


@dataclass
class P:
    """A pod: labels, one IP, node and named container ports {name: "8080/TCP"}."""

    labels: Mapping[str, str]
    ip: str
    node: str = "node-1"
    ports: Mapping[str, str] = field(default_factory=dict)
    sa: str = "default"
    host_network: bool = False


DEFAULT_NODES: dict[str, tuple[str, Mapping[str, str]]] = {
    "node-1": (NODE1_IP, {"kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/control-plane": ""}),
    "node-2": (NODE2_IP, {"kubernetes.io/hostname": "node-2"}),
}

STD_NAMESPACES: dict[str, Mapping[str, str]] = {
    "app": {"team": "a", "env": "prod"},
    "other": {"team": "b"},
}
STD_PODS: dict[str, P] = {
    "app/client": P({"app": "client"}, "10.0.1.1", "node-1"),
    "app/local": P({"app": "local"}, "10.0.1.2", "node-1", {"http": "8080/TCP"}),
    "app/server": P(
        {"app": "server"}, "10.0.2.1", "node-2",
        {"http": "8080/TCP", "metrics": "9090/TCP", "dns": "53/UDP", "dns-tcp": "53/TCP"},
    ),
    "other/client": P({"app": "client"}, "10.0.1.11", "node-1"),
    "other/server": P({"app": "server"}, "10.0.2.11", "node-2", {"http": "8081/TCP"}),
    "other/db": P({"app": "db"}, "10.0.2.12", "node-2", {"pg": "5432/TCP"}),
}


def cluster_yaml(
    namespaces: Mapping[str, Mapping[str, str]],
    pods: Mapping[str, P],
    nodes: Mapping[str, tuple[str, Mapping[str, str]]] = DEFAULT_NODES,
    apiserver: Sequence[str] = (NODE1_IP,),
    extra: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The cluster as a `kind: List`; `extra` objects (Services, EndpointSlices) are appended."""
    items: list[dict[str, Any]] = []
    for name, labels in namespaces.items():
        items.append({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}},
        })
    for name, (ip, labels) in nodes.items():
        items.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": dict(labels)},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]},
        })
    for key, p in pods.items():
        ns, name = key.split("/")
        ports = []
        for pname, spec in p.ports.items():
            num, _, proto = spec.partition("/")
            ports.append({"name": pname, "containerPort": int(num), "protocol": proto or "TCP"})
        container: dict[str, Any] = {"name": "main", "image": "busybox"}
        if ports:
            container["ports"] = ports
        spec_: dict[str, Any] = {"nodeName": p.node, "serviceAccountName": p.sa, "containers": [container]}
        if p.host_network:
            spec_["hostNetwork"] = True
        items.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": dict(p.labels)},
            "spec": spec_,
            "status": {"phase": "Running", "podIP": p.ip, "podIPs": [{"ip": p.ip}]},
        })
    if apiserver:
        items.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": list(apiserver), "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        })
    items.extend(dict(x) for x in extra)
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}, sort_keys=False)


def make_cluster(
    namespaces: Mapping[str, Mapping[str, str]] | None = None,
    pods: Mapping[str, P] | None = None,
    **kw: Any,
) -> Cluster:
    text = cluster_yaml(STD_NAMESPACES if namespaces is None else namespaces, STD_PODS if pods is None else pods, **kw)
    return load_cluster(parse_text(text, "cluster.yaml"))


_STD: Cluster | None = None


def std_cluster() -> Cluster:
    """The standard cluster above (loaded once; Cluster is not mutated by the engine)."""
    global _STD
    if _STD is None:
        _STD = make_cluster()
    return _STD


def policies(*texts: str) -> PolicySet:
    """Policies from YAML strings (each may hold several documents)."""
    docs = [d for i, t in enumerate(texts) for d in parse_text(t, f"policy-{i}.yaml")]
    return load_policies(docs)


def engine(*texts: str, cluster: Cluster | None = None, **config: Any) -> PolicyEngine:
    """An engine over `cluster` (default: the standard one) with AgentConfig(**config)."""
    return PolicyEngine(cluster or std_cluster(), policies(*texts), AgentConfig(**config))


def parse_l4(spec: str) -> tuple[int, int]:
    """`8080/TCP`, `53/UDP`, `8080` (TCP), `icmp:8`, `icmpv6:128` -> (protocol, port/type)."""
    if spec.startswith("icmpv6:"):
        return PROTO_ICMPV6, int(spec.split(":")[1])
    if spec.startswith("icmp:"):
        return PROTO_ICMP, int(spec.split(":")[1])
    port, _, proto = spec.partition("/")
    return PROTO_NUMBERS[(proto or "TCP").upper()], int(port)


def verdict(eng: PolicyEngine, src: str, dst: str, l4: str) -> Verdict:
    """Decide src -> dst (`ns/pod`, `node/NAME` or an IP) on `l4` (see parse_l4), as every
    workflow does: through a `Decider` (tests/test_decider.py checks it against `decide`)."""
    proto, port = parse_l4(l4)
    return Decider(eng).decide_connection(resolve_peer(eng, src), resolve_peer(eng, dst), proto, port).verdict


def outcome(v: Verdict) -> tuple[str, str | None, str]:
    """(verdict, drop reason, direction): what a user reads first in Hubble."""
    return v.verdict, v.drop_reason_desc, v.traffic_direction


# Shorthands for parametrize tables.
FWD = (FORWARDED, None)
DENIED = (DROPPED, POLICY_DENIED)
DENY = (DROPPED, POLICY_DENY)


def short(v: Verdict) -> tuple[str, str | None]:
    return v.verdict, v.drop_reason_desc


def refs(items: Sequence[PolicyRef]) -> list[str]:
    """PolicyRefs as `Kind ns/name` strings."""
    return [str(r) for r in items]


def cnp(name: str, spec: str, ns: str = "app") -> str:
    """A CiliumNetworkPolicy from an indented spec body."""
    body = "\n".join("  " + ln for ln in spec.strip("\n").splitlines())
    return f"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{body}\n"


def ccnp(name: str, spec: str) -> str:
    body = "\n".join("  " + ln for ln in spec.strip("\n").splitlines())
    return f"apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: {name}\nspec:\n{body}\n"


def knp(name: str, spec: str, ns: str = "app") -> str:
    body = "\n".join("  " + ln for ln in spec.strip("\n").splitlines())
    return f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{body}\n"


# --- Layer 7 (tests/test_engine_l7.py, test_engine_fqdn.py, test_seed_examples.py) ---------

REDIRECTED = "REDIRECTED"


def l7_cnp(name: str, direction: str, l4: str, rules: str, subject: str = "server", peer: str = "client") -> str:
    """A CNP in `app` giving app=`subject` one rule in `direction` (ingress/egress) with the
    pods app=`peer` on `l4` (`8080/TCP`), carrying the L7 `rules` (YAML under `rules:`)."""
    port, _, proto = l4.partition("/")
    peers = "fromEndpoints" if direction == "ingress" else "toEndpoints"
    body = "\n".join("      " + ln for ln in rules.strip("\n").splitlines())
    return cnp(name, f"""
endpointSelector: {{matchLabels: {{app: {subject}}}}}
{direction}:
- {peers}: [{{matchLabels: {{app: {peer}}}}}]
  toPorts:
  - ports: [{{port: "{port}", protocol: {proto}}}]
    rules:
{body}
""")


def l7_verdict(eng: PolicyEngine, src: str, dst: str, l4: str, request: Any) -> Verdict:
    """Decide src -> dst on `l4` for a connection carrying one L7 request
    (`HTTPRequest`, `KafkaRequest` or `DNSQuery`); `request=None` is the bare connection."""
    proto, port = parse_l4(l4)
    decider = Decider(eng)
    d = decider.decide_connection(resolve_peer(eng, src), resolve_peer(eng, dst), proto, port)
    return (d if request is None else decider.decide_request(d, request)).verdict


def l7_outcome(v: Verdict) -> tuple[str, str | None, str | None]:
    """(flow verdict, drop reason, the proxy's verdict or None when nothing reached a proxy)."""
    return v.verdict, v.drop_reason_desc, (v.l7.verdict if v.l7 is not None else None)
