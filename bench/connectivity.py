"""Benchmark: `ciliary matrix` over all ports against network-config-analyzer (NCA) 2.1.0.

Run by `make bench` (`.venv/bin/python bench/connectivity.py`); `--small` runs only the two
smallest sizes (100 pods / 40 policies and 400 / 100, under a minute) for a quick check;
`--sizes 1000,2000` picks sizes by pod count. Not a test: nothing here asserts on timings, it
prints figures next to the targets.

The input is this bench's own seeded generator of Kubernetes NetworkPolicy clusters (not
bench/engine.py's, which is mostly Cilium policies): per size, namespaces (labels
kubernetes.io/metadata.name, team, env, ...) with Deployment-style workloads (pods owned by a
ReplicaSet, labels app/component/tier/team, nodeName, status.podIP, containers[].ports with
names such as http, grpc, tcp-8080, udp-8125 over TCP and UDP), written as one
`kubectl get namespaces,nodes,pods -A -o yaml` `kind: List` file (cluster.yaml), and a
directory of networking.k8s.io/v1 NetworkPolicy files, one multi-document file per namespace
(policies/). The policies mix default deny (ingress, or ingress and egress with a DNS
egress allow), ingress and egress rules with podSelector / namespaceSelector (matchLabels
and matchExpressions In, NotIn, Exists, DoesNotExist), ipBlock with except, numeric and
named ports, endPort ranges, TCP and UDP. ipBlocks stay outside the pod CIDR (10.244/16):
whether an ipBlock selects pod IPs is left to the implementation by the Kubernetes API (NCA:
never; Cilium: not by default), so the comparison keeps out of that corner. NCA reads the
same files: `--ns_list` and `--pod_list` both take the List (it picks its Namespaces and its
Pods), `--connectivity` the policies directory. `--keep DIR` keeps the files (and the
outputs of both tools) in DIR and reuses them on the next run with the same seed.

Sizes (pods / policies): 100 / 40, 400 / 100, 1,000 / 200 and 2,000 / 500 against NCA;
10,000 / 2,000 ciliary alone.

NCA runs from a throwaway venv, `~/.cache/ciliary-bench/nca-2.1.0` (`python3 -m venv` and
`pip install network-config-analyzer==2.1.0`, created on first use and reused; `--nca-venv
DIR` names another, `--no-nca` skips NCA; a failed install is reported and ciliary is
measured alone). Its command, one child per size, killed after `--nca-timeout` seconds:

    nca --connectivity policies/ --ns_list cluster.yaml --pod_list cluster.yaml \\
        --output_format txt_no_fw_rules

NCA computes the connectivity over all protocols and ports at once (hypercube sets). It keeps
at most two pods per equivalence class (same namespace, owner, labels and named ports) and
prints workloads ("deployments" endpoints, its default). Output format (txt_no_fw_rules),
on stdout after its warnings (`Warning: ...`, `policies/x.yaml:17:3: Warning: ...`) and a
`global: cluster has N unique endpoints, M namespaces` line: one line per connected pair and
group of connections, sorted,

    ns/rsname[ReplicaSet] => ns/rsname[ReplicaSet] : All connections
    ns/rsname[ReplicaSet] => 0.0.0.0-9.255.255.255 : {protocols:TCP,dst_ports:443}
    ns/a-5f6d8c9b7[ReplicaSet] => ns/b-7d9c5b8f6[ReplicaSet] : {protocols:TCP,dst_ports:30040-30060}
    ns/a-5f6d8c9b7[ReplicaSet] => ns/b-7d9c5b8f6[ReplicaSet] : {protocols:UDP,dst_ports:30000-30100}
    ns/pod[Pod] => ns/rsname[ReplicaSet] : All but {protocols:UDP,dst_ports:53}

(a pod owned by a ReplicaSet is printed as that ReplicaSet, an unowned pod as itself; IP
blocks as address ranges; a pair whose connections fall into several of NCA's cubes on
several lines, to be added up; no line for a pair with no connection, nor from a workload to
itself). Names are mapped back to the generator's workloads through aliases.json (every
pod, ReplicaSet and Deployment name of a workload); lines naming an IP block are left out.

ciliary, as a child measured like NCA (wall time and peak RSS, wait4):

    ciliary matrix --cluster cluster.yaml --policies policies/ --ports all -o connlist

(`--ports all`: every port any policy names, plus "any other port"; `-o connlist`: one line
per workload pair, `ns/name[Kind] => ns/name[Kind] : TCP 80,443, UDP 53` or `All
Connections`, which parses like NCA's lines). While that option does not exist yet (exit
status 2, "No such option"), the bench falls back to `ciliary matrix ... -o csv` with one
`--dport` per port the policies name (numbers, both ends of every endPort range, the
container ports behind every named port, and 65000 over TCP and UDP as "any other port"),
labelled "(fallback: per port)"; `--per-port` measures it even so. Its CSV holds pods x
pods rows per port, so the ports are split into as many children as keep each under 5M
cells (their wall times added, the largest peak RSS taken), and sizes above that per port
(10,000 pods) are skipped.
CILIARY_CACHE_DIR is a fresh directory per size: the first run parses the YAML and fills the
parsed-file cache ("cold", the figure compared with NCA, which has no cache); a second run
on the same cache is printed as the warm figure (in fallback mode only when it is one child).

Agreement (a figure, not a target; every size run against NCA up to `--agree-max-pods`,
default 2,000, and up to 1,000 pods with the fallback, whose CSV gets big): for every
ordered pair of distinct workloads, whether each tool reports any connection at all, the
counts of pairs agreeing and disagreeing, and a few disagreements of each kind; with
`-o connlist`, also whether the pairs connected in both have the same TCP, UDP and SCTP
ports (ICMP left out: NCA's "All connections" is every protocol, ciliary's every TCP, UDP,
SCTP port and ICMP type). The outputs are read by a child.

Targets (the issue's): at 1,000 / 200 and at 2,000 / 500, ciliary at least 100x faster than
NCA over all ports (wall time, cold cache) with peak RSS no more than 2x NCA's; 10,000 /
2,000 over all ports under 30 s and 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for benchkit (see its docstring)
from benchkit import (
    Target,
    cli,
    fmt_b,
    fmt_s,
    print_targets,
    print_wait4_note,
    run_measured,
    run_worker,
    workdir,
)

SEED = 20260315
NCA_VERSION = "2.1.0"
NCA_CMD_OUT = "txt_no_fw_rules"

TARGET_X = 100.0  # NCA wall / ciliary wall, at 1,000 / 200 and 2,000 / 500
TARGET_RSS_X = 2.0  # ciliary peak RSS / NCA peak RSS, same sizes
TARGET_LARGE_S = 30.0  # 10,000 / 2,000, ciliary alone
TARGET_LARGE_RSS = 2_000_000_000  # 2 GB

FALLBACK_CELLS = 5_000_000  # matrix cells (pods x pods x ports) per fallback child
OTHER_PORT = 65000  # the fallback's "any other port" probe
FALLBACK_AGREE_MAX_PODS = 1_000  # the fallback's CSV is reduced to pairs up to this size


@dataclass(frozen=True)
class Size:
    pods: int
    policies: int
    namespaces: int  # including kube-system, monitoring and ingress-nginx
    nodes: int
    nca: bool  # measured against NCA
    target: bool  # the NCA targets apply

    @property
    def name(self) -> str:
        return f"{self.pods:,} / {self.policies:,}"


SIZES = {s.pods: s for s in (
    Size(100, 40, 7, 3, True, False),
    Size(400, 100, 16, 4, True, False),
    Size(1_000, 200, 33, 10, True, True),
    Size(2_000, 500, 63, 20, True, True),
    Size(10_000, 2_000, 253, 100, False, False),
)}
SMALL = (100, 400)


# ----------------------------------------------------------------------------------------
# Generator

TEAMS = ["payments", "search", "identity", "media", "growth", "platform", "data", "ads"]
PRODUCTS = ["api", "web", "core", "jobs", "svc", "store", "sync", "portal", "feed", "edge"]
ENVS = ["prod", "staging", "dev"]
# app -> (tier, container ports (name, number, protocol)); "http" is 80 on the frontends and
# 8080 elsewhere, as in real clusters (a named port resolves per destination pod).
APPS: dict[str, tuple[str, list[tuple[str, int, str]]]] = {
    "frontend": ("web", [("http", 80, "TCP"), ("metrics", 9090, "TCP")]),
    "api": ("app", [("http", 8080, "TCP"), ("grpc", 9000, "TCP"), ("metrics", 9090, "TCP")]),
    "backend": ("app", [("tcp-8080", 8080, "TCP"), ("metrics", 9090, "TCP")]),
    "auth": ("app", [("https", 8443, "TCP"), ("grpc", 9000, "TCP")]),
    "worker": ("app", [("metrics", 9090, "TCP")]),
    "media": ("app", [("udp-30010", 30010, "UDP"), ("tcp-30050", 30050, "TCP")]),
    "search": ("app", [("http", 8080, "TCP"), ("tcp-9200", 9200, "TCP")]),
    "db": ("data", [("postgres", 5432, "TCP")]),
    "cache": ("data", [("redis", 6379, "TCP")]),
    "queue": ("data", [("amqp", 5672, "TCP"), ("udp-8125", 8125, "UDP")]),
    "batch": ("app", []),
}
REPLICAS = [1, 1, 2, 2, 3, 3, 4, 5, 6]
HEX = "0123456789abcdef"
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
TIMESTAMP = "2026-03-15T09:00:00Z"
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


@dataclass
class Workload:
    ns: str
    app: str  # the Deployment's name and its pods' `app` label
    component: str  # the APPS entry
    tier: str
    ports: list[tuple[str, int, str]]
    rs: str
    pods: list[str]


@dataclass
class Namespace:
    name: str
    team: str
    env: str
    labels: dict[str, str]
    workloads: list[Workload]


class Gen:
    def __init__(self, size: Size, seed: int) -> None:
        self.size = size
        self.rng = random.Random(f"{seed}/{size.pods}")
        self.objects: list[dict[str, Any]] = []
        self.namespaces: list[Namespace] = []
        self.nodes = [(f"worker-{k + 1}", f"172.18.{k // 200}.{k % 200 + 2}") for k in range(size.nodes)]
        self.node_next = [0] * size.nodes
        self.policies: list[dict[str, Any]] = []
        self.names: set[tuple[str, str]] = set()

    def suffix(self, n: int, alphabet: str = NAME_ALPHABET) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def namespace(self, name: str, team: str, env: str, extra: dict[str, str] | None = None) -> Namespace:
        labels = {"kubernetes.io/metadata.name": name, "team": team, "env": env, **(extra or {})}
        self.objects.append({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": name, "labels": labels, "creationTimestamp": TIMESTAMP},
                             "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        ns = Namespace(name, team, env, labels, [])
        self.namespaces.append(ns)
        return ns

    def workload(self, ns: Namespace, app: str, component: str, tier: str, replicas: int,
                 ports: list[tuple[str, int, str]], extra: dict[str, str] | None = None) -> Workload:
        rs = f"{app}-{self.suffix(10, HEX)}"
        labels = {"app": app, "component": component, "tier": tier, "team": ns.team,
                  "pod-template-hash": rs.rsplit("-", 1)[1], **(extra or {})}
        w = Workload(ns.name, app, component, tier, ports, rs, [])
        for _ in range(replicas):
            k = self.rng.randrange(len(self.nodes))
            node, host_ip = self.nodes[k]
            self.node_next[k] += 1
            ip = f"10.244.{k}.{self.node_next[k] + 1}" if self.node_next[k] < 250 else \
                f"10.245.{k}.{self.node_next[k] - 248}"
            name = f"{rs}-{self.suffix(5)}"
            container: dict[str, Any] = {"name": component, "image": f"registry.example.com/{ns.team}/{component}:1.0"}
            if ports:
                container["ports"] = [{"name": n, "containerPort": p, "protocol": pr} for n, p, pr in ports]
            self.objects.append({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns.name, "labels": labels, "creationTimestamp": TIMESTAMP,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                                  "controller": True}]},
                "spec": {"nodeName": node, "serviceAccountName": component, "containers": [container]},
                "status": {"phase": "Running", "hostIP": host_ip, "podIP": ip, "podIPs": [{"ip": ip}]},
            })
            w.pods.append(name)
        ns.workloads.append(w)
        return w

    def generate(self) -> None:
        size, rng = self.size, self.rng
        for node, ip in self.nodes:
            self.objects.append({"apiVersion": "v1", "kind": "Node",
                                 "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
                                 "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
        ks = self.namespace("kube-system", "platform", "prod")
        self.workload(ks, "kube-dns", "kube-dns", "system", 2,
                      [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")], {"k8s-app": "kube-dns"})
        mon = self.namespace("monitoring", "platform", "prod", {"purpose": "monitoring"})
        self.workload(mon, "prometheus", "prometheus", "system", 1, [("web", 9090, "TCP")])
        ing = self.namespace("ingress-nginx", "platform", "prod", {"purpose": "ingress"})
        self.workload(ing, "ingress-nginx", "ingress-nginx", "system", 2, [("http", 80, "TCP"), ("https", 443, "TCP")])
        n_app = size.namespaces - 3
        left = size.pods - 5
        used: set[str] = set()
        for i in range(n_app):
            team, env = rng.choice(TEAMS), rng.choice(ENVS)
            name = f"{team}-{rng.choice(PRODUCTS)}-{env}"
            while name in used:
                name = f"{team}-{rng.choice(PRODUCTS)}-{env}-{self.suffix(3)}"
            used.add(name)
            extra = {}
            if rng.random() < 0.15:
                extra["compliance"] = "pci"
            if rng.random() < 0.3:
                extra["istio-injection"] = "enabled"
            ns = self.namespace(name, team, env, extra)
            quota = left // (n_app - i)
            left -= quota
            catalog = list(APPS)
            rng.shuffle(catalog)
            k = 0
            while quota > 0:
                component = catalog[k % len(catalog)]
                app = component if k < len(catalog) else f"{component}-{k // len(catalog) + 1}"
                k += 1
                tier, ports = APPS[component]
                replicas = min(rng.choice(REPLICAS), quota)
                quota -= replicas
                extra = {"restricted": "true"} if tier == "data" and rng.random() < 0.3 else None
                self.workload(ns, app, component, tier, replicas, ports, extra)
        self.gen_policies()

    # -- policies ----------------------------------------------------------------------
    def knp(self, ns: Namespace, base: str, spec: dict[str, Any]) -> None:
        name = base
        while (ns.name, name) in self.names:
            name = f"{base}-{self.suffix(4)}"
        self.names.add((ns.name, name))
        self.policies.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                              "metadata": {"name": name, "namespace": ns.name}, "spec": spec})

    def pick(self, ns: Namespace, tiers: tuple[str, ...] | None = None, ported: bool = False) -> Workload | None:
        ws = [w for w in ns.workloads if (tiers is None or w.tier in tiers) and (w.ports or not ported)]
        return self.rng.choice(ws) if ws else None

    def port_of(self, w: Workload) -> dict[str, Any]:
        """One of `w`'s container ports, by name or by number."""
        name, number, proto = self.rng.choice(w.ports)
        port: dict[str, Any] = {"port": name if self.rng.random() < 0.5 else number}
        if proto != "TCP" or self.rng.random() < 0.5:
            port["protocol"] = proto
        return port

    def other_ns(self, ns: Namespace, same_team: bool = False) -> Namespace:
        apps = [n for n in self.namespaces[3:] if n is not ns and (not same_team or n.team == ns.team)]
        return self.rng.choice(apps or self.namespaces[3:])

    def gen_policies(self) -> None:
        rng = self.rng
        apps = self.namespaces[3:]
        budget = self.size.policies
        ing = self.namespaces[2]
        self.knp(ing, "allow-web", {
            "podSelector": {"matchLabels": {"app": "ingress-nginx"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE}}],
                         "ports": [{"port": 80}, {"port": "https", "protocol": "TCP"}]},
                        {"from": [{"namespaceSelector": {"matchLabels": {"purpose": "monitoring"}}}]}]})
        for ns in apps:
            if len(self.policies) >= budget:
                break
            r = rng.random()
            if r < 0.35:
                self.knp(ns, "default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]})
            elif r < 0.5:
                self.knp(ns, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
                if len(self.policies) < budget:
                    self.knp(ns, "allow-dns", {
                        "podSelector": {}, "policyTypes": ["Egress"],
                        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": "dns-tcp", "protocol": "TCP"}]}]})
        templates = [
            (self.p_same_ns, 2), (self.p_a_to_b, 6), (self.p_from_team, 3), (self.p_monitoring, 3),
            (self.p_from_ingress, 2), (self.p_egress_data, 3), (self.p_egress_external, 2), (self.p_ingress_cidr, 2),
            (self.p_port_range, 2), (self.p_range_egress, 2), (self.p_cross_ns, 3), (self.p_egress_team, 1),
            (self.p_restricted, 2), (self.p_udp, 1),
        ]
        fns = [f for f, _ in templates]
        weights = [w for _, w in templates]
        tries = 0
        while len(self.policies) < budget and tries < budget * 50:
            tries += 1
            ns = rng.choice(apps)
            rng.choices(fns, weights)[0](ns)

    def p_same_ns(self, ns: Namespace) -> None:
        self.knp(ns, "allow-same-namespace", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})

    def p_a_to_b(self, ns: Namespace) -> None:
        dst, src = self.pick(ns, ported=True), self.pick(ns)
        if dst is None or src is None or dst is src:
            return
        ports = [self.port_of(dst) for _ in range(self.rng.choice([1, 1, 2]))]
        peer: dict[str, Any] = {"podSelector": {"matchLabels": {"app": src.app}}}
        if self.rng.random() < 0.3:
            peer = {"podSelector": {"matchExpressions": [{"key": "component", "operator": "In",
                                                            "values": sorted({src.component, "worker"})}]}}
        self.knp(ns, f"allow-{src.app}-to-{dst.app}", {
            "podSelector": {"matchLabels": {"app": dst.app}},
            "ingress": [{"from": [peer], "ports": ports}]})

    def p_from_team(self, ns: Namespace) -> None:
        self.knp(ns, "allow-from-team", {
            "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["app", "web"]}]},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": ns.team}},
                                   "podSelector": {"matchExpressions": [
                                       {"key": "component", "operator": "NotIn", "values": ["db", "cache"]}]}}],
                         "ports": [{"port": 8080}, {"port": "grpc"}, {"port": "http"}]}]})

    def p_monitoring(self, ns: Namespace) -> None:
        self.knp(ns, "allow-prometheus", {
            "podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
            "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["monitoring"]}]},
                "podSelector": {"matchLabels": {"app": "prometheus"}}}],
                "ports": [{"port": "metrics"}, {"port": 9090, "protocol": "TCP"}]}]})

    def p_from_ingress(self, ns: Namespace) -> None:
        w = self.pick(ns, ("web",))
        if w is None:
            return
        self.knp(ns, f"allow-ingress-to-{w.app}", {
            "podSelector": {"matchLabels": {"app": w.app}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"purpose": "ingress"}}}],
                         "ports": [{"port": "http"}, {"port": 443, "protocol": "TCP"}]}]})

    def p_egress_data(self, ns: Namespace) -> None:
        w = self.pick(ns, ("app",))
        if w is None:
            return
        self.knp(ns, f"{w.app}-egress-data", {
            "podSelector": {"matchLabels": {"app": w.app}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"component": "db"}}}], "ports": [{"port": 5432}]},
                       {"to": [{"podSelector": {"matchLabels": {"component": "cache"}}}],
                        "ports": [{"port": "redis", "protocol": "TCP"}]},
                       {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                        "ports": [{"port": 53, "protocol": "UDP"}]}]})

    def p_egress_external(self, ns: Namespace) -> None:
        w = self.pick(ns, ("app", "web"))
        if w is None:
            return
        self.knp(ns, f"{w.app}-egress-external", {
            "podSelector": {"matchLabels": {"app": w.app}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [*PRIVATE, "169.254.169.254/32"]}}],
                        "ports": [{"port": 443, "protocol": "TCP"}]},
                       {"to": [{"podSelector": {}}]}]})

    def p_ingress_cidr(self, ns: Namespace) -> None:
        w = self.pick(ns, ported=True)
        if w is None:
            return
        self.knp(ns, f"{w.app}-from-partners", {
            "podSelector": {"matchLabels": {"app": w.app}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}},
                                  {"ipBlock": {"cidr": "198.51.100.0/24"}}],
                         "ports": [self.port_of(w)]}]})

    def p_port_range(self, ns: Namespace) -> None:
        self.knp(ns, "allow-media-range", {
            "podSelector": {"matchLabels": {"component": "media"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]}]}}],
                "ports": [{"port": 30000, "endPort": 30100, "protocol": "UDP"},
                          {"port": 30040, "endPort": 30060, "protocol": "TCP"}]}]})

    def p_range_egress(self, ns: Namespace) -> None:
        self.knp(ns, "app-egress-data-range", {
            "podSelector": {"matchLabels": {"tier": "app"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"tier": "data"}}}],
                        "ports": [{"port": 5000, "endPort": 6500, "protocol": "TCP"}]},
                       {"to": [{"podSelector": {}}]}]})

    def p_cross_ns(self, ns: Namespace) -> None:
        w = self.pick(ns, ("app", "data"), ported=True)
        if w is None:
            return
        other = self.other_ns(ns)
        src = self.pick(other, ("app", "web"))
        if src is None:
            return
        self.knp(ns, f"allow-{other.name}-to-{w.app}", {
            "podSelector": {"matchLabels": {"app": w.app}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": other.name}},
                                   "podSelector": {"matchLabels": {"app": src.app}}}],
                         "ports": [self.port_of(w)]}]})

    def p_egress_team(self, ns: Namespace) -> None:
        self.knp(ns, "egress-team-only", {
            "podSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["data"]}]},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": ns.team}}},
                               {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]}]})

    def p_restricted(self, ns: Namespace) -> None:
        self.knp(ns, "restricted-data", {
            "podSelector": {"matchExpressions": [{"key": "restricted", "operator": "Exists"}]},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchExpressions": [
                {"key": "restricted", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "In", "values": ["app"]}]}}]}]})

    def p_udp(self, ns: Namespace) -> None:
        self.knp(ns, "allow-statsd", {
            "podSelector": {"matchLabels": {"component": "queue"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": ns.team}}}],
                         "ports": [{"port": "udp-8125", "protocol": "UDP"}, {"port": 5672}]}]})


def _dump(obj: Any, f: Any, all_docs: bool = False) -> None:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    if all_docs:
        yaml.dump_all(obj, f, Dumper=dumper, sort_keys=False, default_flow_style=False)
    else:
        yaml.dump(obj, f, Dumper=dumper, sort_keys=False, default_flow_style=False)


def fallback_probes(gen: Gen) -> list[str]:
    """The `--dport`s of the fallback: every port the policies name (numbers, both ends of
    every endPort range, the container ports behind every named port) and OTHER_PORT."""
    by_name: dict[tuple[str, str], set[int]] = {}
    for ns in gen.namespaces:
        for w in ns.workloads:
            for n, p, pr in w.ports:
                by_name.setdefault((n, pr), set()).add(p)
    probes: set[tuple[int, str]] = {(OTHER_PORT, "TCP"), (OTHER_PORT, "UDP")}
    for pol in gen.policies:
        for direction in ("ingress", "egress"):
            for rule in pol["spec"].get(direction, []):
                for p in rule.get("ports", []):
                    proto = p.get("protocol", "TCP")
                    port = p.get("port")
                    if isinstance(port, int):
                        probes.add((port, proto))
                        if "endPort" in p:
                            probes.add((p["endPort"], proto))
                    elif isinstance(port, str):
                        probes.update((n, proto) for n in by_name.get((port, proto), ()))
    return [f"{p}/{pr}" for p, pr in sorted(probes)]


def write_files(size: Size, seed: int, d: Path) -> dict[str, Any]:
    gen = Gen(size, seed)
    gen.generate()
    cluster = d / "cluster.yaml"
    with cluster.open("w") as f:
        f.write("# kubectl get namespaces,nodes,pods -A -o yaml\n")
        _dump({"apiVersion": "v1", "kind": "List", "items": gen.objects, "metadata": {"resourceVersion": ""}}, f)
    pol_dir = d / "policies"
    shutil.rmtree(pol_dir, ignore_errors=True)
    pol_dir.mkdir()
    by_ns: dict[str, list[dict[str, Any]]] = {}
    for p in gen.policies:
        by_ns.setdefault(p["metadata"]["namespace"], []).append(p)
    for ns_name, pols in by_ns.items():
        with (pol_dir / f"{ns_name}.yaml").open("w") as f:
            _dump(pols, f, all_docs=True)
    aliases: dict[str, str] = {}
    workloads = 0
    for ns in gen.namespaces:
        for w in ns.workloads:
            wid = f"{ns.name}/{w.app}"
            workloads += 1
            aliases[wid] = wid
            aliases[f"{ns.name}/{w.rs}"] = wid
            for p in w.pods:
                aliases[f"{ns.name}/{p}"] = wid
    (d / "aliases.json").write_text(json.dumps(aliases))
    kinds = Counter(o["kind"] for o in gen.objects)
    features = Counter()
    for p in gen.policies:
        spec = p["spec"]
        if not spec.get("podSelector") and not spec.get("ingress") and not spec.get("egress"):
            features["default deny"] += 1
        text = json.dumps(spec)
        for key, label in (("ipBlock", "ipBlock"), ("except", "except"), ("endPort", "endPort"),
                           ("matchExpressions", "matchExpressions"), ('"UDP"', "UDP")):
            if key in text:
                features[label] += 1
        if re.search(r'"port": "[a-z]', text):
            features["named ports"] += 1
    return {"cluster": str(cluster), "policies": str(pol_dir), "aliases": str(d / "aliases.json"),
            "pods": kinds["Pod"], "namespaces": kinds["Namespace"], "nodes": kinds["Node"],
            "policy_count": len(gen.policies), "workloads": workloads, "features": dict(features),
            "probes": fallback_probes(gen), "cluster_bytes": cluster.stat().st_size,
            "policy_bytes": sum(f.stat().st_size for f in pol_dir.iterdir())}


# ----------------------------------------------------------------------------------------
# Children


def worker_generate(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    meta = write_files(SIZES[int(args.size)], args.seed, d)
    meta["params"] = {"size": int(args.size), "seed": args.seed}
    meta["seconds"] = time.perf_counter() - t0
    (d / "meta.json").write_text(json.dumps(meta, indent=1))
    return {"seconds": meta["seconds"]}


LINE = re.compile(r"^(\S+) => (\S+) : (.*)$")
PROTOS = ("TCP", "UDP", "SCTP")  # the protocols the exact comparison looks at (ICMP left out)
FULL = ((1, 65535),)
Conns = tuple[tuple[tuple[int, int], ...], ...]  # allowed port ranges per PROTOS entry


def _ranges(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if part:
            lo, _, hi = part.partition("-")
            out.append((int(lo), int(hi or lo)))
    return out


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    out, nxt = [], 1
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= 65535:
        out.append((nxt, 65535))
    return tuple(out)


def _union(a: Conns, b: Conns) -> Conns:
    return tuple(_merge([*ra, *rb]) for ra, rb in zip(a, b, strict=True))


def parse_conns(text: str) -> Conns:
    """A connections string of either tool as allowed port ranges per PROTOS entry.

    NCA (txt_no_fw_rules): `All connections` (every protocol and port), else cubes
    `{protocols:TCP, UDP,dst_ports:53,8000-8099},{...}` (a cube without protocols is every
    protocol, one without dst_ports every port), possibly as `All but {...}` (the
    complement). ciliary (connlist): `All Connections` (every TCP, UDP and SCTP port and
    every ICMP type), else `TCP 80,443, UDP 53` (a protocol alone: all its ports)."""
    t = text.strip()
    if t.lower() == "all connections":
        return (FULL,) * len(PROTOS)
    if "{" in t:
        neg = t.startswith("All but ")
        acc: dict[str, list[tuple[int, int]]] = {p: [] for p in PROTOS}
        for cube in re.findall(r"\{([^}]*)\}", t):
            items = dict(re.findall(r"(\w+):(.*?)(?=,\w+:|$)", cube))
            protos = [x.strip() for x in items["protocols"].split(",")] if "protocols" in items else list(PROTOS)
            ports = _ranges(items["dst_ports"]) if "dst_ports" in items else list(FULL)
            for proto in protos:
                if proto in acc:
                    acc[proto].extend(ports)
        merged = tuple(_merge(acc[p]) for p in PROTOS)
        return tuple(_complement(r) for r in merged) if neg else merged
    acc = {p: [] for p in PROTOS}
    for part in re.split(r",\s+(?=[A-Z])", t):
        name, _, ports = part.strip().partition(" ")
        if name in acc:
            acc[name].extend(_ranges(ports) if ports else list(FULL))
    return tuple(_merge(acc[p]) for p in PROTOS)


def show_conns(c: Conns) -> str:
    if all(r == FULL for r in c):
        return "all"
    parts = [f"{p} " + ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in r)
             for p, r in zip(PROTOS, c, strict=True) if r]
    return ", ".join(parts) or "none"


def read_pairs(path: str, aliases: dict[str, str]) -> tuple[dict[tuple[str, str], Conns], int, int]:
    """The connected workload pairs of a `src => dst : conns` file (NCA's txt_no_fw_rules, or
    ciliary's connlist; other lines, such as NCA's warnings, are skipped): {(src, dst):
    connections}, the count of lines left out (an endpoint that is no workload: an IP block,
    or a name the aliases lack) and of pairs on several lines (their connections are
    added up: NCA prints a pair once per group of connections it shares with other pairs,
    e.g. its TCP ports on one line and its UDP ports on another). A `[Kind]` or `(Kind)`
    suffix is dropped before the alias lookup."""
    pairs: dict[tuple[str, str], Conns] = {}
    skipped = repeated = 0
    suffix = re.compile(r"[\[(][^\])]*[\])]$")
    with open(path) as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            src = aliases.get(suffix.sub("", m.group(1)))
            dst = aliases.get(suffix.sub("", m.group(2)))
            if src is None or dst is None:
                skipped += 1
                continue
            if src == dst:
                continue
            conns = parse_conns(m.group(3))
            if (src, dst) in pairs:
                repeated += 1
                conns = _union(pairs[(src, dst)], conns)
            pairs[(src, dst)] = conns
    return pairs, skipped, repeated


def worker_reduce(args: argparse.Namespace) -> dict[str, Any]:
    """The workload pairs with any allowed cell in a fallback `matrix -o csv` file, appended
    to the JSON list in args.out."""
    aliases: dict[str, str] = json.loads(Path(args.aliases).read_text())
    out = Path(args.out)
    pairs: set[tuple[str, str]] = {tuple(p) for p in json.loads(out.read_text())} if out.exists() else set()
    rows = 0
    with open(args.file) as f:
        next(f, None)
        for line in f:
            rows += 1
            _, _, src, dst, verdict, _ = line.split(",", 5)
            if verdict == "DROPPED":
                continue
            s, d = aliases[src], aliases[dst]
            if s != d:
                pairs.add((s, d))
    out.write_text(json.dumps(sorted(pairs)))
    return {"rows": rows, "pairs": len(pairs)}


def worker_agree(args: argparse.Namespace) -> dict[str, Any]:
    aliases: dict[str, str] = json.loads(Path(args.aliases).read_text())
    nca, nca_skipped, nca_repeated = read_pairs(args.nca, aliases)
    exact = bool(args.connlist)
    if exact:
        cil, cil_skipped, cil_repeated = read_pairs(args.connlist, aliases)
    else:  # the fallback's reduced pairs: connected or not, no port sets
        cil = {tuple(p): () for p in json.loads(Path(args.pairs).read_text())}
        cil_skipped = cil_repeated = 0
    workloads = len(set(aliases.values()))
    both = nca.keys() & cil.keys()
    only_nca = sorted(nca.keys() - cil.keys())
    only_cil = sorted(cil.keys() - nca.keys())
    rng = random.Random(0)

    def some(keys: list[Any]) -> list[Any]:
        return sorted(rng.sample(keys, min(3, len(keys))))

    res: dict[str, Any] = {
        "pairs": workloads * (workloads - 1), "both": len(both), "only_nca": len(only_nca), "only_ciliary": len(only_cil),
        "nca_connected": len(nca), "ciliary_connected": len(cil), "nca_skipped": nca_skipped,
        "ciliary_skipped": cil_skipped, "nca_repeated": nca_repeated, "ciliary_repeated": cil_repeated,
        "examples_only_nca": [f"{' => '.join(p)} (NCA: {show_conns(nca[p])})" for p in some(only_nca)],
        "examples_only_ciliary": [f"{' => '.join(p)}" + (f" (ciliary: {show_conns(cil[p])})" if exact else "")
                                  for p in some(only_cil)],
    }
    if exact:
        differ = sorted(p for p in both if nca[p] != cil[p])
        res["same_conns"] = len(both) - len(differ)
        res["examples_conns_differ"] = [f"{' => '.join(p)}: NCA {show_conns(nca[p])}; ciliary {show_conns(cil[p])}"
                                        for p in some(differ)]
        res["conns_differ"] = len(differ)
    return res


WORKERS = {"generate": worker_generate, "reduce": worker_reduce, "agree": worker_agree}


def child(worker: str, **kw: str) -> dict[str, Any]:
    res, wall, rss = run_worker(__file__, worker, [a for k, v in kw.items() for a in (f"--{k}", v)])
    res["wall"], res["maxrss"] = wall, rss
    return res


def prepare(d: Path, size: Size, seed: int) -> dict[str, Any]:
    """One size's files: reused from a kept dir made with the same parameters, else generated
    in a child (so that this process, whose peak every measured child inherits, stays small)."""
    meta_path = d / "meta.json"
    params = {"size": size.pods, "seed": seed}
    if meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if meta.get("params") == params and all(Path(meta[k]).exists() for k in ("cluster", "policies", "aliases")):
            meta["reused"] = True
            return meta
        meta_path.unlink()
    child("generate", dir=str(d), size=str(size.pods), seed=str(seed))
    meta = json.loads(meta_path.read_text())
    meta["reused"] = False
    return meta


# ----------------------------------------------------------------------------------------
# NCA


def nca_venv_default() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ciliary-bench" / f"nca-{NCA_VERSION}"


def ensure_nca(venv: Path) -> tuple[str | None, str]:
    """NCA's executable in `venv`, creating the venv and installing NCA there if need be;
    (path or None, what happened)."""
    nca = venv / "bin" / "nca"
    if nca.exists():
        p = subprocess.run([str(nca), "--version"], capture_output=True, text=True)
        if p.returncode == 0 and NCA_VERSION in p.stdout:
            return str(nca), f"{p.stdout.strip()} (venv {venv}, reused)"
    t0 = time.perf_counter()
    python = shutil.which("python3") or sys.executable
    print(f"installing network-config-analyzer=={NCA_VERSION} into {venv} ...", flush=True)
    steps = [[python, "-m", "venv", "--clear", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              f"network-config-analyzer=={NCA_VERSION}"]]
    for cmd in steps:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"`{' '.join(cmd[:4])} ...` failed: {e}"
        if p.returncode != 0:
            tail = "\n    ".join((p.stderr or p.stdout).strip().splitlines()[-8:])
            return None, f"`{' '.join(cmd[:4])} ...` exited {p.returncode}:\n    {tail}"
    p = subprocess.run([str(nca), "--version"], capture_output=True, text=True)
    if p.returncode != 0:
        return None, f"nca --version exited {p.returncode}: {p.stderr.strip()[-500:]}"
    return str(nca), f"{p.stdout.strip()} (venv {venv}, installed in {fmt_s(time.perf_counter() - t0)})"


def run_limited(cmd: list[str], stdout: Any, timeout: float) -> tuple[str, float, int, int, bool]:
    """As benchkit.run_measured with stdout to a file, but killed after `timeout` seconds;
    (stderr, wall, exit status, peak RSS bytes, timed out). The wait polls every 10 ms."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=stdout, stderr=err)
        timed_out = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                p.kill()
                timed_out = True
                _, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        rss = ru.ru_maxrss if sys.platform == "darwin" else ru.ru_maxrss * 1024
        return err.read().decode(errors="replace"), wall, p.returncode, rss, timed_out


def run_nca(nca: str, meta: dict[str, Any], out: Path, timeout: float) -> dict[str, Any]:
    cmd = [nca, "--connectivity", meta["policies"], "--ns_list", meta["cluster"], "--pod_list", meta["cluster"],
           "--output_format", NCA_CMD_OUT]
    with out.open("wb") as f:
        err, wall, rc, rss, timed_out = run_limited(cmd, f, timeout)
    res: dict[str, Any] = {"wall": wall, "maxrss": rss, "rc": rc, "timed_out": timed_out}
    # nca's exit status packs 4 * query not executed + 2 * expected-output mismatch + the
    # query's result bit (nca_cli._compute_return_value); 7 is an exception. A connectivity
    # query's result bit is 0, so any non-zero status, a traceback or no output is a failure.
    if timed_out:
        res["error"] = f"killed after {fmt_s(timeout)} (--nca-timeout)"
    elif rc != 0 or "Traceback" in err or not out.stat().st_size:
        res["error"] = f"exit {rc}: {err.strip()[-1500:]}"
    return res


# ----------------------------------------------------------------------------------------
# ciliary


class Ciliary:
    """ciliary's side: `--ports all -o connlist` once it exists, else the per-port fallback."""

    def __init__(self, fallback: bool | None = None) -> None:
        self.fallback = fallback  # None: unknown until the first run

    def env(self, cache: Path) -> dict[str, str]:
        env = {**os.environ, "CILIARY_CACHE_DIR": str(cache)}
        env.pop("CILIARY_NO_CACHE", None)
        return env

    def run(self, meta: dict[str, Any], cache: Path, out: Path | None, pairs: Path | None) -> dict[str, Any]:
        """One measured run: {wall, maxrss, children} or {error}. `out`: where connlist goes
        (else /dev/null); `pairs`: where the fallback's reduced pairs go (else none kept)."""
        base = [cli(), "matrix", "--cluster", meta["cluster"], "--policies", meta["policies"]]
        env = self.env(cache)
        if self.fallback is not True:
            with (out.open("wb") if out else open(os.devnull, "wb")) as f:
                _, err, wall, rc, rss = run_measured([*base, "--ports", "all", "-o", "connlist"], stdout=f, env=env)
            if rc == 2 and ("No such option" in err or "Invalid value" in err):
                self.fallback = True
                shutil.rmtree(cache, ignore_errors=True)  # that run may have filled the cache: start cold again
            elif rc != 0:
                return {"error": f"exit {rc}: {err.strip()[-1500:]}"}
            else:
                self.fallback = False
                return {"wall": wall, "maxrss": rss, "children": 1}
        pods = meta["pods"]
        if pods * pods > FALLBACK_CELLS:
            return {"error": f"skipped: the fallback's CSV would hold {pods * pods:,} rows per port "
                             "(needs `--ports all -o connlist`)"}
        probes = meta["probes"]
        per_child = max(1, FALLBACK_CELLS // (pods * pods))
        chunks = [probes[i:i + per_child] for i in range(0, len(probes), per_child)]
        wall_sum, rss_max = 0.0, 0
        if pairs is not None:
            pairs.unlink(missing_ok=True)
        csv_file = cache.parent / "fallback.csv"
        for chunk in chunks:
            cmd = [*base, *(a for p in chunk for a in ("--dport", p)), "-o", "csv"]
            with (csv_file.open("wb") if pairs is not None else open(os.devnull, "wb")) as f:
                _, err, wall, rc, rss = run_measured(cmd, stdout=f, env=env)
            if rc != 0:
                return {"error": f"exit {rc}: {err.strip()[-1500:]}"}
            wall_sum += wall
            rss_max = max(rss_max, rss)
            if pairs is not None:
                child("reduce", file=str(csv_file), aliases=meta["aliases"], out=str(pairs))
                csv_file.unlink()
        return {"wall": wall_sum, "maxrss": rss_max, "children": len(chunks), "probes": len(probes)}


# ----------------------------------------------------------------------------------------
# Report


def ratio(a: float, b: float) -> str:
    return f"{a / b:,.1f}x" if b else "-"


def measure(size: Size, meta: dict[str, Any], d: Path, nca: str | None, cil: Ciliary,
            args: argparse.Namespace) -> dict[str, Any]:
    feats = ", ".join(f"{k} {v}" for k, v in sorted(meta["features"].items()))
    print(f"\n== {size.name}: {meta['pods']:,} pods in {meta['workloads']:,} workloads, {meta['namespaces']} namespaces, "
          f"{meta['nodes']} nodes; {meta['policy_count']:,} NetworkPolicies (policies with {feats}); "
          f"cluster.yaml {fmt_b(meta['cluster_bytes'], kib=True)}, policies/ {fmt_b(meta['policy_bytes'], kib=True)}",
          flush=True)
    row: dict[str, Any] = {"size": size}
    agree_wanted = size.pods <= args.agree_max_pods
    nca_out = d / "nca.txt"
    if nca and size.nca:
        r = run_nca(nca, meta, nca_out, args.nca_timeout)
        row["nca"] = r
        if "error" in r:
            print(f"  NCA failed: {r['error']}", flush=True)
        else:
            lines = sum(1 for _ in nca_out.open())
            print(f"  {'NCA --connectivity':<40} {fmt_s(r['wall']):>9}  maxrss {fmt_b(r['maxrss']):>9}  "
                  f"({lines:,} lines of {NCA_CMD_OUT})", flush=True)
    cache = d / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    nca_ok = "nca" in row and "error" not in row["nca"]
    conn_out = d / "ciliary-connlist.txt"
    pairs_out = d / "ciliary-pairs.json"
    # the fallback's pairs are collected (its CSV written and reduced) up to 1,000 pods only
    collect = agree_wanted and nca_ok and size.pods <= FALLBACK_AGREE_MAX_PODS
    r = cil.run(meta, cache, conn_out, pairs_out if collect else None)
    row["ciliary"] = r
    mode = "(fallback: per port)" if cil.fallback else ""
    row["mode"] = mode
    label = "ciliary matrix -o csv" if cil.fallback else "ciliary matrix --ports all"
    if "error" in r:
        print(f"  ciliary: {r['error']}", flush=True)
        return row
    how = (f"{r['probes']} ports in {r['children']} child{'ren' if r['children'] > 1 else ''}, walls added"
           if cil.fallback else "connlist")
    print(f"  {label + ', cold cache':<40} {fmt_s(r['wall']):>9}  maxrss {fmt_b(r['maxrss']):>9}  ({how})", flush=True)
    if not cil.fallback or r["children"] == 1:
        w = cil.run(meta, cache, None, None)
        if "error" not in w:
            row["warm"] = w
            print(f"  {label + ', warm cache':<40} {fmt_s(w['wall']):>9}  maxrss {fmt_b(w['maxrss']):>9}  "
                  "(second run, same parse cache)", flush=True)
    if agree_wanted and nca_ok and (collect or not cil.fallback):
        kw = {"nca": str(nca_out), "aliases": meta["aliases"]}
        if cil.fallback:
            kw["pairs"] = str(pairs_out)
        else:
            kw["connlist"] = str(conn_out)
        a = child("agree", **kw)
        row["agree"] = a
        agree = a["pairs"] - a["only_nca"] - a["only_ciliary"]
        print(f"  agreement over {a['pairs']:,} ordered workload pairs (any connection at all): {agree:,} agree "
              f"({a['both']:,} connected in both), {a['only_nca'] + a['only_ciliary']:,} disagree "
              f"({a['only_nca']:,} connected only per NCA, {a['only_ciliary']:,} only per ciliary); "
              f"lines naming no workload (IP blocks): NCA {a['nca_skipped']:,}, ciliary {a['ciliary_skipped']:,}",
              flush=True)
        for ex in a["examples_only_nca"]:
            print(f"    only NCA:     {ex}", flush=True)
        for ex in a["examples_only_ciliary"]:
            print(f"    only ciliary: {ex}", flush=True)
        if a["nca_repeated"] or a["ciliary_repeated"]:
            print(f"  workload pairs on several lines (connections added up): NCA {a['nca_repeated']:,}, "
                  f"ciliary {a['ciliary_repeated']:,}", flush=True)
        if "same_conns" in a:
            print(f"  of the {a['both']:,} pairs connected in both, {a['same_conns']:,} have the same TCP/UDP/SCTP "
                  f"ports in both, {a['conns_differ']:,} differ", flush=True)
            for ex in a["examples_conns_differ"]:
                print(f"    {ex}", flush=True)
    elif agree_wanted and nca and size.nca:
        why = "NCA failed" if not nca_ok else f"the fallback's outputs are compared up to {FALLBACK_AGREE_MAX_PODS:,} pods"
        print(f"  agreement: not computed ({why})", flush=True)
    return row


def report(rows: list[dict[str, Any]]) -> list[Target]:
    print("\n== per size (ciliary: cold cache; x wall = NCA / ciliary, x RSS = ciliary / NCA)")
    head = (f"  {'pods / policies':<16} {'NCA wall':>9} {'NCA RSS':>9} {'ciliary wall':>12} {'ciliary RSS':>11} "
            f"{'warm wall':>9} {'x wall':>8} {'x RSS':>6}")
    print(head)
    targets: list[Target] = []
    for row in rows:
        size: Size = row["size"]
        n = row.get("nca") or {}
        c = row.get("ciliary") or {}
        w = row.get("warm") or {}
        n_ok, c_ok = n and "error" not in n, c and "error" not in c
        cells = [fmt_s(n["wall"]) if n_ok else ("failed" if n else "-"), fmt_b(n["maxrss"]) if n_ok else "-",
                 fmt_s(c["wall"]) if c_ok else "failed", fmt_b(c["maxrss"]) if c_ok else "-",
                 fmt_s(w["wall"]) if w else "-",
                 ratio(n["wall"], c["wall"]) if n_ok and c_ok else "-",
                 ratio(c["maxrss"], n["maxrss"]) if n_ok and c_ok else "-"]
        print(f"  {size.name:<16} {cells[0]:>9} {cells[1]:>9} {cells[2]:>12} {cells[3]:>11} {cells[4]:>9} "
              f"{cells[5]:>8} {cells[6]:>6} {row.get('mode', '')}".rstrip())
        mode = f" {row['mode']}" if row.get("mode") else ""
        if size.nca:
            xw = n["wall"] / c["wall"] if n_ok and c_ok else None
            xr = c["maxrss"] / n["maxrss"] if n_ok and c_ok else None
            t = size.target
            targets.append((f"{size.name}: wall NCA / ciliary{mode}", f">= {TARGET_X:.0f}x" if t else "",
                            f"{xw:,.1f}x" if xw is not None else "n/a",
                            (xw >= TARGET_X) if (t and xw is not None) else (False if t else None)))
            targets.append((f"{size.name}: peak RSS ciliary / NCA{mode}", f"<= {TARGET_RSS_X:.0f}x" if t else "",
                            f"{xr:.2f}x" if xr is not None else "n/a",
                            (xr <= TARGET_RSS_X) if (t and xr is not None) else (False if t else None)))
        else:
            targets.append((f"{size.name}: ciliary wall{mode}", f"< {TARGET_LARGE_S:.0f} s",
                            fmt_s(c["wall"]) if c_ok else "n/a", (c["wall"] < TARGET_LARGE_S) if c_ok else False))
            targets.append((f"{size.name}: ciliary peak RSS{mode}", "< 2 GB",
                            fmt_b(c["maxrss"]) if c_ok else "n/a",
                            (c["maxrss"] < TARGET_LARGE_RSS) if c_ok else False))
        if "agree" in row:
            a = row["agree"]
            dis = a["only_nca"] + a["only_ciliary"]
            targets.append((f"{size.name}: workload pairs NCA and ciliary disagree on{mode}", "",
                            f"{dis:,} of {a['pairs']:,}", None))
    return targets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="only 100 / 40 and 400 / 100 (under a minute)")
    ap.add_argument("--sizes", help=f"comma-separated pod counts of the sizes to run (of {', '.join(map(str, SIZES))})")
    ap.add_argument("--seed", type=int, default=SEED, help="generator seed")
    ap.add_argument("--keep", metavar="DIR", help="write the generated files and outputs to DIR and keep them")
    ap.add_argument("--no-nca", action="store_true", help="measure ciliary alone")
    ap.add_argument("--nca-venv", metavar="DIR", help=f"NCA's venv (default {nca_venv_default()})")
    ap.add_argument("--nca-timeout", type=float, default=900.0, help="seconds before an NCA run is killed")
    ap.add_argument("--per-port", action="store_true", help="measure the per-port `-o csv` fallback instead")
    ap.add_argument("--agree-max-pods", type=int, default=2_000, help="compare outputs up to this many pods")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    for hidden in ("dir", "size", "file", "aliases", "out", "nca", "connlist", "pairs"):
        ap.add_argument(f"--{hidden}", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:  # a child: imports only what it needs
        print(json.dumps(WORKERS[args.worker](args)))
        return 0

    if args.sizes:
        try:
            sizes = [SIZES[int(s.replace(",", "").replace("_", ""))] for s in args.sizes.split(",") if s]
        except (KeyError, ValueError):
            ap.error(f"--sizes takes pod counts among {', '.join(map(str, SIZES))}")
    else:
        sizes = [SIZES[p] for p in (SMALL if args.small else SIZES)]
    nca: str | None = None
    if args.no_nca:
        nca_note = "not run (--no-nca)"
    elif not any(s.nca for s in sizes):
        nca_note = "not needed for these sizes"
    else:
        nca, nca_note = ensure_nca(Path(args.nca_venv) if args.nca_venv else nca_venv_default())
        if nca is None:
            nca_note = f"unavailable, measuring ciliary alone: {nca_note}"
    print(f"ciliary vs network-config-analyzer connectivity benchmark (python {sys.version.split()[0]}, "
          f"seed {args.seed}, {os.cpu_count()} CPUs); NCA: {nca_note}", flush=True)
    t_all = time.perf_counter()
    cil = Ciliary(True if args.per_port else None)
    rows: list[dict[str, Any]] = []
    with workdir(args.keep, "ciliary-bench-connectivity-") as tmp:
        print(f"files in {tmp}", flush=True)
        for size in sizes:
            d = tmp / str(size.pods)
            t0 = time.perf_counter()
            meta = prepare(d, size, args.seed)
            how = "reused the files of a previous run" if meta["reused"] else \
                f"generated in {fmt_s(time.perf_counter() - t0)}"
            print(f"\n[{size.name}] {how}; measuring ...", flush=True)
            rows.append(measure(size, meta, d, nca, cil, args))
        targets = report(rows)
        print_targets(targets, target_width=7, value_width=14)
        print_wait4_note(t_all)
    return 0


if __name__ == "__main__":
    sys.exit(main())
