"""Loading cluster snapshots and manifest directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ciliary.cluster.loader import load_cluster, read_cluster
from ciliary.model.errors import LoadError
from ciliary.model.source import parse_text

DATA = Path(__file__).parent / "data" / "cluster"


def test_v1_list_snapshot() -> None:
    c = read_cluster([DATA / "snapshot.yaml"])
    assert [p.key for p in c.pods] == [
        "kube-system/kube-proxy-x1",
        "shop/backend-0",
        "shop/frontend-7d9f8b-abcde",
        "shop/frontend-7d9f8b-fghij",
        "shop/migrate-abcde",
        "staging/frontend-1",
    ]
    fe = c.pod("shop/frontend-7d9f8b-abcde")
    assert fe is not None
    assert fe.ips == ("10.244.1.10",) and fe.service_account == "frontend" and fe.node_name == "worker"
    assert [(p.name, p.port, p.protocol) for p in fe.named_ports] == [("http", 8080, "TCP")]
    assert fe.named_port("HTTP")[0].port == 8080
    # Namespaces: declared ones keep their labels; referenced ones are created.
    assert c.namespaces["shop"].labels["team"] == "retail"
    assert c.namespaces["default"].labels == {"kubernetes.io/metadata.name": "default"}
    assert c.namespaces["staging"].implicit and c.namespaces["kube-system"].implicit
    assert [n.name for n in c.nodes] == ["control-plane", "worker"]
    assert c.node("worker") is not None and c.node("worker").internal_ips == ("172.18.0.3",)  # type: ignore[union-attr]
    assert c.kube_apiserver_ips == ("172.18.0.2",)
    assert c.service("default/kubernetes") is not None
    assert c.ignored_kinds == {"ConfigMap": 1}
    assert len(c.policy_documents) == 1 and c.policy_documents[0].value["kind"] == "List"


def test_ip_lookups_skip_host_network_and_finished_pods() -> None:
    c = read_cluster([DATA / "snapshot.yaml"])
    hostnet = c.pod("kube-system/kube-proxy-x1")
    assert hostnet is not None and hostnet.host_network and not hostnet.is_endpoint
    assert c.node_by_ip("172.18.0.3") is c.node("worker")
    assert c.pod_by_ip("172.18.0.3") is None
    # A Succeeded pod's IP was reused by a running pod: the running one owns it.
    assert c.pod_by_ip("10.244.1.10") is c.pod("shop/frontend-7d9f8b-abcde")


def test_pod_without_ip_gets_a_synthetic_one_that_avoids_real_ips() -> None:
    c = read_cluster([DATA / "snapshot.yaml"])
    pending = c.pod("staging/frontend-1")
    assert pending is not None and pending.synthetic_ips
    assert pending.ips == ("10.244.0.1",)
    text = (DATA / "snapshot.yaml").read_text().replace("podIP: 10.244.1.20", "podIP: 10.244.0.1")
    c2 = load_cluster(parse_text(text, "x.yaml"))
    moved = c2.pod("staging/frontend-1")
    assert moved is not None and moved.ips == ("10.244.0.2",)


def test_json_snapshot_gives_the_same_cluster(tmp_path: Path) -> None:
    data = yaml.safe_load((DATA / "snapshot.yaml").read_text())
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(data, indent=2))
    a = read_cluster([DATA / "snapshot.yaml"])
    b = read_cluster([path])
    assert a.pods == b.pods and a.nodes == b.nodes and a.namespaces == b.namespaces


def test_directory_with_deployment_only_gets_synthetic_pods() -> None:
    c = read_cluster([DATA / "gitops"])
    pods = c.pods
    assert len(pods) == 2
    assert all(p.synthetic and p.owner == "Deployment/web" for p in pods)
    assert pods[0].name.startswith("web-") and pods[0].name.endswith("-0")
    assert pods[0].labels == {"app": "web"} and pods[0].service_account == "web"
    assert [p.ips for p in pods] == [("10.244.0.1",), ("10.244.0.2",)]
    assert pods[0].named_ports[0].name == "http"
    # Deterministic: the same input gives the same names and IPs.
    again = read_cluster([DATA / "gitops"])
    assert [(p.name, p.ips) for p in again.pods] == [(p.name, p.ips) for p in pods]
    assert c.ignored_kinds == {"(no kind)": 1}
    assert [d.value["kind"] for d in c.policy_documents] == ["CiliumNetworkPolicy"]
    assert c.namespaces["shop"].labels == {"team": "retail", "kubernetes.io/metadata.name": "shop"}


def test_workloads_are_not_expanded_when_the_namespace_has_pods() -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web}]}
---
apiVersion: v1
kind: Pod
metadata: {name: real, namespace: shop}
spec: {containers: [{name: x}]}
status: {podIP: 10.244.3.3}
"""
    c = load_cluster(parse_text(text, "in.yaml"))
    assert [p.name for p in c.pods] == ["real"]


def test_daemonset_runs_on_every_matching_node_and_replicas_are_capped() -> None:
    text = """
apiVersion: v1
kind: Node
metadata: {name: a, labels: {role: edge}}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: b}
status: {addresses: [{type: InternalIP, address: 192.168.0.2}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: mon}
spec:
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {role: edge}
      containers: [{name: a}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs, namespace: mon}
spec:
  template:
    metadata: {labels: {app: logs}}
    spec: {containers: [{name: a}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: mon}
spec:
  replicas: 50
  template:
    metadata: {labels: {app: big}}
    spec: {containers: [{name: a}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup, namespace: mon}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: backup}}
        spec: {containers: [{name: a}]}
"""
    c = load_cluster(parse_text(text, "in.yaml"))
    by_owner: dict[str, list[str | None]] = {}
    for p in c.pods:
        assert p.owner is not None
        by_owner.setdefault(p.owner, []).append(p.node_name)
    assert by_owner["DaemonSet/agent"] == ["a"]
    assert sorted(n or "" for n in by_owner["DaemonSet/logs"]) == ["a", "b"]
    assert len(by_owner["Deployment/big"]) == 3
    assert len(by_owner["CronJob/backup"]) == 1
    backup = next(p for p in c.pods if p.owner == "CronJob/backup")
    assert backup.labels["app"] == "backup" and backup.labels["job-name"].startswith("backup-")


def test_malformed_objects_raise_located_errors() -> None:
    text = """apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata:
    namespace: shop
  spec: {}
- apiVersion: v1
  kind: Pod
  metadata:
    name: frontend
    namespace: shop
    labels:
      app: frontend
      version: 2
- apiVersion: v1
  kind: Pod
  metadata:
    name: backend
    namespace: shop
    labels: [a, b]
  status:
    podIP: 10.0.0.300
"""
    with pytest.raises(LoadError) as e:
        load_cluster(parse_text(text, "snap.yaml"))
    issues = {(i.field, i.object, i.line): i.message for i in e.value.issues}
    assert issues[("items[0].metadata.name", "Pod in namespace shop", 6)].startswith("name must be a non-empty string")
    assert issues[("items[1].metadata.labels.version", "Pod shop/frontend", 16)] == (
        'label values must be strings, got integer 2 (quote it: "2")'
    )
    assert issues[("items[2].metadata.labels", "Pod shop/backend", 22)].startswith("labels must be a map of strings")
    assert issues[("items[2].status.podIP", "Pod shop/backend", 24)] == "'10.0.0.300' is not an IP address"
    assert all(i.file == "snap.yaml" and i.document == 0 for i in e.value.issues)


def test_duplicate_objects_are_errors() -> None:
    text = """apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
"""
    with pytest.raises(LoadError, match="defined twice"):
        load_cluster(parse_text(text, "in.yaml"))


def test_same_kind_name_from_other_api_group_is_ignored() -> None:
    text = """apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: apps}
spec: {template: {spec: {containers: [{image: x}]}}}
"""
    c = load_cluster(parse_text(text, "in.yaml"))
    assert c.services == [] and c.ignored_kinds == {"Service": 1}


def test_invalid_pod_cidr() -> None:
    with pytest.raises(ValueError, match="invalid pod CIDR"):
        load_cluster([], pod_cidr="10.0.0.0/33")


def test_probe_ports_and_container_ports_are_read() -> None:
    """kubelet's probe targets (lint's CIL004): httpGet/tcpSocket/grpc ports, named ones
    resolved against the container's ports; exec probes and odd shapes are skipped."""
    text = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers:
    - name: main
      ports:
        - {containerPort: 8080, name: http}
        - {containerPort: 9090}
      readinessProbe: {httpGet: {path: /healthz, port: http}}
      livenessProbe: {tcpSocket: {port: 9090}}
      startupProbe: {exec: {command: [true]}}
    - name: side
      ports: [{containerPort: 50051, name: grpc}]
      livenessProbe: {grpc: {port: 50051}}
      readinessProbe: {httpGet: {port: nosuchname}}
status: {podIP: 10.0.0.5}
"""
    pod = load_cluster(parse_text(text, "c.yaml")).pods[0]
    assert [(p.name, p.port) for p in pod.probe_ports] == [("liveness", 9090), ("readiness", 8080), ("liveness", 50051)]
    assert [(p.name, p.port) for p in pod.container_ports] == [("http", 8080), ("", 9090), ("grpc", 50051)]
    assert [p.name for p in pod.named_ports] == ["http", "grpc"]
