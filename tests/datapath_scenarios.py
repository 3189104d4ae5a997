"""A generated cluster for the datapath's differential tests: 3 nodes, 4 namespaces, 32 pods
and 40+ policies (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, NetworkPolicy) using
what the L3/L4 datapath must get right: default deny per direction, deny precedence, CIDR
with except, entities (world, host, cluster), named ports, port ranges, ICMP, a policy with
`enableDefaultDeny: false`, and audit mode for one namespace. Deterministic (fixed seed).

`write(directory)` writes cluster.yaml, policies.yaml and agent.yaml and returns their paths.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

SEED = 20261204
NODES = [("node-a", "172.30.0.1"), ("node-b", "172.30.0.2"), ("node-c", "172.30.0.3")]
NAMESPACES = {"alpha": "a", "beta": "b", "gamma": "g", "ops": "o"}
APPS = ["web", "api", "db", "worker"]
# container ports every pod serves: (name, port, protocol)
PORTS = [("http", 8080, "TCP"), ("metrics", 9090, "TCP"), ("rpc", 8443, "TCP"), ("stats", 5353, "UDP")]
WORLD_CIDR = "203.0.113.0/24"
WORLD_EXCEPT = "203.0.113.128/25"
WORLD_IN = "203.0.113.10"  # inside the CIDR, outside the except
WORLD_EXCEPTED = "203.0.113.200"  # inside the except
AUDITED_NAMESPACE = "ops"


def _pods() -> list[dict[str, Any]]:
    out = []
    n = 0
    for ns, short in NAMESPACES.items():
        for app in APPS:
            for r in range(2):
                node, _ = NODES[n % len(NODES)]
                ip = f"10.77.{n // 200}.{10 + n % 200}"
                out.append({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"{app}-{short}{r}", "namespace": ns,
                                 "labels": {"app": app, "tier": "front" if app in ("web", "api") else "back"}},
                    "spec": {"nodeName": node, "containers": [{"name": "main", "image": "x",
                             "ports": [{"name": p, "containerPort": port, "protocol": proto} for p, port, proto in PORTS]}]},
                    "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
                })
                n += 1
    return out


def cluster() -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for ns in NAMESPACES:
        items.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": ns, "labels": {"kubernetes.io/metadata.name": ns, "team": ns if ns != "ops" else "platform"}}})
    for name, ip in NODES:
        items.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                      "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
    items += _pods()
    return {"apiVersion": "v1", "kind": "List", "items": items}


def _cnp(name: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _ports(*ps: tuple[str, str] | tuple[str, str, int]) -> list[dict[str, Any]]:
    out = []
    for p in ps:
        d: dict[str, Any] = {"port": p[0], "protocol": p[1]}
        if len(p) > 2:
            d["endPort"] = p[2]  # type: ignore[misc]
        out.append(d)
    return [{"ports": out}]


def policies() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    out: list[dict[str, Any]] = []
    for ns in NAMESPACES:
        # The db: ingress only from api on 8443 (named port "rpc" once, the number once).
        out.append(_cnp("db-ingress", ns, {
            "endpointSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "api"}}], "toPorts": _ports(("rpc", "TCP") if ns != "beta" else ("8443", "TCP"))}],
        }))
        # The api: from web on a port range, from anyone in the namespace on metrics, ICMP echo from web.
        out.append(_cnp("api-ingress", ns, {
            "endpointSelector": {"matchLabels": {"app": "api"}},
            "ingress": [
                {"fromEndpoints": [{"matchLabels": {"app": "web"}}], "toPorts": _ports(("8000", "TCP", 8100))},
                {"fromEndpoints": [{}], "toPorts": _ports(("9090", "TCP"))},
                {"fromEndpoints": [{"matchLabels": {"app": "web"}}], "icmps": [{"fields": [{"type": 8, "family": "IPv4"}]}]},
            ],
        }))
        # Deny precedence: workers may never reach the api's metrics, even from inside.
        out.append(_cnp("api-deny-workers", ns, {
            "endpointSelector": {"matchLabels": {"app": "api"}},
            "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "worker"}}], "toPorts": _ports(("9090", "TCP"))}],
        }))
        # Workers' egress: the db on any port, the world CIDR except a range, UDP stats anywhere.
        out.append(_cnp("worker-egress", ns, {
            "endpointSelector": {"matchLabels": {"app": "worker"}},
            "egress": [
                {"toEndpoints": [{"matchLabels": {"app": "db"}}]},
                {"toCIDRSet": [{"cidr": WORLD_CIDR, "except": [WORLD_EXCEPT]}], "toPorts": _ports(("80", "TCP"), ("443", "TCP"))},
                {"toPorts": _ports(("5353", "UDP"))},
                {"toEndpoints": [{"matchLabels": {"app": "api"}}], "toPorts": _ports(("9090", "TCP"))},
            ],
        }))
        # The web tier: open to the cluster on http, to the host (probes) on every port.
        out.append(_cnp("web-ingress", ns, {
            "endpointSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {"fromEntities": ["cluster"], "toPorts": _ports(("http", "TCP"))},
                {"fromEntities": ["host"]},
            ],
        }))
        # enableDefaultDeny false: deny one port on the web tier without closing the rest.
        out.append(_cnp("web-no-stats", ns, {
            "endpointSelector": {"matchLabels": {"app": "web"}},
            "enableDefaultDeny": {"egress": False},
            "egressDeny": [{"toPorts": _ports(("5353", "UDP"))}],
        }))
        # ICMP echo to the db from the workers only; the workers' metrics from the api.
        out.append(_cnp("db-icmp-from-workers", ns, {
            "endpointSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "worker"}}], "icmps": [{"fields": [{"type": "EchoRequest"}]}]}],
        }))
        out.append(_cnp("worker-metrics-from-api", ns, {
            "endpointSelector": {"matchLabels": {"app": "worker"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "api"}}], "toPorts": _ports(("metrics", "TCP"))}],
        }))
        # A random extra allow per namespace, so the set is not hand-shaped everywhere.
        a, b = rng.sample(APPS, 2)
        port = rng.choice(["8080", "9090", "8443"])
        out.append(_cnp(f"extra-{a}-to-{b}", ns, {
            "endpointSelector": {"matchLabels": {"app": b}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": a}}], "toPorts": _ports((port, "TCP"))}],
        }))
    # Across namespaces: alpha's web may call beta's api over http and the range.
    out.append(_cnp("beta-api-from-alpha", "beta", {
        "endpointSelector": {"matchLabels": {"app": "api"}},
        "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "alpha", "app": "web"}}],
                     "toPorts": _ports(("8080", "TCP"), ("8000", "TCP", 8100))}],
    }))
    # Kubernetes NetworkPolicies: gamma's workers accept metrics from the ops namespace only.
    for ns in ("gamma", "ops"):
        out.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "workers-from-ops", "namespace": ns},
                    "spec": {"podSelector": {"matchLabels": {"app": "worker"}}, "policyTypes": ["Ingress"],
                             "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "platform"}}}],
                                          "ports": [{"port": 9090, "protocol": "TCP"}, {"port": "stats", "protocol": "UDP"}]}]}})
    # Clusterwide: nobody reaches the excepted world range on 443; the dbs talk to nobody.
    out.append({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "no-excepted-443"},
                "spec": {"endpointSelector": {}, "enableDefaultDeny": {"egress": False},
                         "egressDeny": [{"toCIDR": [WORLD_EXCEPTED + "/32"], "toPorts": _ports(("443", "TCP"))}]}})
    out.append({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "db-egress-closed"},
                "spec": {"endpointSelector": {"matchLabels": {"app": "db"}}, "egress": [{}]}})
    out.append({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "ops-from-world-icmp"},
                "spec": {"endpointSelector": {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "ops"}},
                         "ingress": [{"fromEntities": ["world"], "icmps": [{"fields": [{"type": 8, "family": "IPv4"}]}]},
                                     {"fromEntities": ["cluster"], "toPorts": _ports(("9090", "TCP"))}]}})
    return out


def agent_config() -> dict[str, Any]:
    return {"audit-mode-endpoints": f"{AUDITED_NAMESPACE}/db-*"}


def write(directory: Path) -> tuple[Path, Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    c, p, a = directory / "cluster.yaml", directory / "policies.yaml", directory / "agent.yaml"
    c.write_text(yaml.safe_dump(cluster(), sort_keys=False))
    p.write_text(yaml.safe_dump_all(policies(), sort_keys=False))
    a.write_text(yaml.safe_dump(agent_config()))
    return c, p, a


PROBE_PORTS = [(6, 8080), (6, 8050), (6, 9090), (6, 8443), (17, 5353), (1, 8)]  # (proto, port or ICMP type)
