"""Labels, label sets and the identity labels Cilium derives from a pod."""

from __future__ import annotations

import pytest

from ciliary.identity.labels import Label, LabelSet
from ciliary.identity.podlabels import is_identity_relevant, pod_identity_labels


def test_label_parse_and_print() -> None:
    assert Label.parse("k8s:app=foo") == Label("k8s", "app", "foo")
    assert Label.parse("app=foo") == Label("any", "app", "foo")
    assert Label.parse("app=foo", default_source="k8s") == Label("k8s", "app", "foo")
    assert Label.parse("$host") == Label("reserved", "host")
    assert Label.parse("k8s:a=b=c").value == "b=c"
    assert Label.parse("app=a:b") == Label("any", "app", "a:b")
    assert str(Label("reserved", "host")) == "reserved:host"
    assert str(Label("k8s", "app", "frontend")) == "k8s:app=frontend"
    assert Label.parse("cidr:2001-db8--/32") == Label.parse("cidr:2001:db8::/32") == Label("cidr", "2001:db8::/32")


def test_label_set_is_canonical_and_hashable() -> None:
    a = LabelSet.from_strings(["k8s:b=2", "k8s:a=1", "reserved:host"])
    b = LabelSet([Label("reserved", "host"), Label("k8s", "a", "1"), Label("k8s", "b", "2"), Label("k8s", "a", "1")])
    assert a == b and hash(a) == hash(b)
    assert a.to_strings() == ["k8s:a=1", "k8s:b=2", "reserved:host"]
    assert Label("k8s", "a", "1") in a and Label("k8s", "a", "2") not in a
    assert a.get("k8s", "a") == "1" and a.get("container", "a") is None
    assert a.values_for_key("a") == ("1",)
    assert len({a, b}) == 1


def test_label_set_rejects_conflicting_values() -> None:
    with pytest.raises(ValueError, match="conflicting"):
        LabelSet([Label("k8s", "app", "a"), Label("k8s", "app", "b")])


def test_pod_identity_labels_like_cilium() -> None:
    labels = pod_identity_labels(
        {"app": "frontend", "pod-template-hash": "7d9f8b"},
        "shop",
        {"kubernetes.io/metadata.name": "shop", "team": "retail"},
        service_account="frontend",
        cluster_name="prod",
    )
    assert labels.to_strings() == [
        "k8s:app=frontend",
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
        "k8s:io.cilium.k8s.namespace.labels.team=retail",
        "k8s:io.cilium.k8s.policy.cluster=prod",
        "k8s:io.cilium.k8s.policy.serviceaccount=frontend",
        "k8s:io.kubernetes.pod.namespace=shop",
    ]


def test_controller_generated_labels_do_not_split_identities() -> None:
    noisy = {
        "app": "db",
        "pod-template-hash": "x",
        "controller-revision-hash": "y",
        "pod-template-generation": "3",
        "statefulset.kubernetes.io/pod-name": "db-0",
        "apps.kubernetes.io/pod-index": "0",
        "batch.kubernetes.io/job-completion-index": "0",
        "batch.kubernetes.io/controller-uid": "u",
        "controller-uid": "u",
        "kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "k8s.io/foo": "bar",
        "io.kubernetes.container.name": "x",
        "annotation.foo": "x",
        "etcd_node": "x",
    }
    a = pod_identity_labels(noisy, "db", {})
    b = pod_identity_labels({"app": "db"}, "db", {})
    assert a == b


def test_labels_cilium_keeps() -> None:
    for key in (
        "app.kubernetes.io/name",  # explicitly included
        "job-name",  # not excluded by default: each Job has its own identity
        "batch.kubernetes.io/job-name",
        "helm.sh/chart",
        "topology.kubernetes.io/zone",  # `!kubernetes\.io` only matches at the start
        "io.cilium.k8s.policy.serviceaccount",
    ):
        assert is_identity_relevant("k8s", key), key


def test_pod_cannot_forge_cilium_owned_labels() -> None:
    labels = pod_identity_labels(
        {"io.cilium.k8s.policy.serviceaccount": "admin", "io.kubernetes.pod.namespace": "kube-system"},
        "shop",
        {},
        service_account="web",
    )
    assert labels.get("k8s", "io.cilium.k8s.policy.serviceaccount") == "web"
    assert labels.get("k8s", "io.kubernetes.pod.namespace") == "shop"


def test_namespace_labels_go_through_the_filter() -> None:
    labels = pod_identity_labels({}, "shop", {"beta.kubernetes.io/x": "1", "team": "a"})
    assert labels.get("k8s", "io.cilium.k8s.namespace.labels.team") == "a"
    assert not labels.has("k8s", "io.cilium.k8s.namespace.labels.beta.kubernetes.io/x")


def test_no_service_account_label_when_pod_has_none() -> None:
    labels = pod_identity_labels({"app": "x"}, "shop", {}, service_account=None)
    assert not labels.has("k8s", "io.cilium.k8s.policy.serviceaccount")
