"""Endpoints, shared identities, the cluster ipcache and `ciliary identities`."""

from __future__ import annotations

from pathlib import Path

from ciliary.cluster.endpoints import ClusterIdentities
from ciliary.cluster.loader import read_cluster
from ciliary.workflows.identities import list_identities

DATA = Path(__file__).parent / "data" / "cluster"


def test_replicas_share_an_identity_and_namespaces_split_them() -> None:
    ci = ClusterIdentities.build(read_cluster([DATA / "snapshot.yaml"]))
    a = ci.endpoint("shop/frontend-7d9f8b-abcde")
    b = ci.endpoint("shop/frontend-7d9f8b-fghij")
    other = ci.endpoint("staging/frontend-1")
    backend = ci.endpoint("shop/backend-0")
    assert a is not None and b is not None and other is not None and backend is not None
    assert a.identity == b.identity  # pod-template-hash is not identity-relevant
    assert a.identity != other.identity  # same pod labels, other namespace
    assert a.identity.id >= 256
    assert "k8s:statefulset.kubernetes.io/pod-name=backend-0" not in backend.labels.to_strings()
    # Host-network and finished pods are not endpoints.
    assert ci.endpoint("kube-system/kube-proxy-x1") is None
    assert ci.endpoint("shop/migrate-abcde") is None


def test_host_endpoints_carry_node_labels() -> None:
    ci = ClusterIdentities.build(read_cluster([DATA / "snapshot.yaml"]))
    cp = ci.endpoint("node/control-plane")
    assert cp is not None and cp.is_host and cp.identity.id == 1
    assert "k8s:node-role.kubernetes.io/control-plane" in cp.labels.to_strings()
    # The apiserver runs there, so this node's own view of identity 1 says so.
    assert cp.identity.labels.to_strings() == ["reserved:host", "reserved:kube-apiserver"]
    worker = ci.endpoint("node/worker")
    assert worker is not None and worker.identity.labels.to_strings() == ["reserved:host"]


def test_cluster_ipcache_from_each_node() -> None:
    ci = ClusterIdentities.build(read_cluster([DATA / "snapshot.yaml"]))
    fe = ci.endpoint("shop/frontend-7d9f8b-abcde")
    assert fe is not None
    from_worker = ci.ipcache("worker", cidrs=["10.0.0.0/8"])
    assert from_worker.lookup("10.244.1.10") == fe.identity
    assert from_worker.lookup("172.18.0.3").id == 1
    assert from_worker.lookup("172.18.0.2").id == 7  # remote node running the apiserver
    assert from_worker.lookup("10.1.1.1").labels.to_strings() == ["cidr:10.0.0.0/8", "reserved:world"]
    from_cp = ci.ipcache("control-plane")
    assert from_cp.lookup("172.18.0.2").labels.to_strings() == ["reserved:host", "reserved:kube-apiserver"]
    assert from_cp.lookup("172.18.0.3").id == 6
    assert from_cp.lookup("1.1.1.1").id == 2


def test_identity_numbers_are_stable_across_loads() -> None:
    a = list_identities(read_cluster([DATA / "snapshot.yaml"]))
    b = list_identities(read_cluster([DATA / "snapshot.yaml"]))
    assert [r.as_dict() for r in a] == [r.as_dict() for r in b]


def test_list_identities_rows() -> None:
    rows = list_identities(read_cluster([DATA / "snapshot.yaml"]))
    ids = [r.id for r in rows]
    assert ids == sorted(ids) and ids[:10] == list(range(1, 11))
    by_id = {r.id: r for r in rows}
    assert by_id[1].labels == ["reserved:host"]
    assert by_id[1].endpoints == ["node/control-plane", "node/worker", "kube-system/kube-proxy-x1"]
    assert by_id[7].labels == ["reserved:kube-apiserver", "reserved:remote-node"] and by_id[7].endpoints == []
    pods = [r for r in rows if r.id >= 256]
    assert [r.endpoints for r in pods] == [
        ["shop/backend-0"],
        ["shop/frontend-7d9f8b-abcde", "shop/frontend-7d9f8b-fghij"],
        ["staging/frontend-1"],
    ]
    assert "k8s:io.cilium.k8s.policy.serviceaccount=frontend" in pods[1].labels
    assert pods[1].as_dict()["id"] == pods[1].id
