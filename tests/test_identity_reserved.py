"""Reserved identities, entities and identity allocation."""

from __future__ import annotations

import pytest

from ciliary.identity.allocator import IdentityAllocator
from ciliary.identity.entities import ENTITY_NAMES, UnknownEntityError, entity_selectors
from ciliary.identity.labels import LabelSet
from ciliary.identity.podlabels import pod_identity_labels
from ciliary.identity.reserved import RESERVED, RESERVED_BY_NAME


def test_reserved_numbers_match_cilium() -> None:
    expected = {
        "unknown": 0,
        "host": 1,
        "world": 2,
        "unmanaged": 3,
        "health": 4,
        "init": 5,
        "remote-node": 6,
        "kube-apiserver": 7,
        "ingress": 8,
        "world-ipv4": 9,
        "world-ipv6": 10,
    }
    assert {name: r.id for name, r in RESERVED_BY_NAME.items()} == expected
    assert RESERVED[1].labels.to_strings() == ["reserved:host"]
    assert RESERVED[7].labels.to_strings() == ["reserved:kube-apiserver", "reserved:remote-node"]


def _matches(entity: str, labels: LabelSet, cluster: str = "default") -> bool:
    return any(s.matches(labels) for s in entity_selectors(entity, cluster))


POD = pod_identity_labels({"app": "x"}, "shop", {}, cluster_name="default")
OTHER_CLUSTER_POD = pod_identity_labels({"app": "x"}, "shop", {}, cluster_name="east")
CIDR = LabelSet.from_strings(["cidr:8.8.8.8/32", "reserved:world"])


def test_cluster_entity() -> None:
    for num in (1, 3, 4, 5, 6, 7, 8):
        assert _matches("cluster", RESERVED[num].labels), num
    assert _matches("cluster", POD)
    assert not _matches("cluster", OTHER_CLUSTER_POD)
    assert _matches("cluster", OTHER_CLUSTER_POD, cluster="east")
    for num in (2, 9, 10):
        assert not _matches("cluster", RESERVED[num].labels), num
    assert not _matches("cluster", CIDR)


def test_all_and_world_entities() -> None:
    for labels in (POD, CIDR, RESERVED[2].labels, RESERVED[1].labels):
        assert _matches("all", labels)
    assert _matches("world", CIDR)
    assert _matches("world", RESERVED[9].labels) and _matches("world", RESERVED[10].labels)
    assert not _matches("world", POD)
    assert _matches("world-ipv4", RESERVED[9].labels) and not _matches("world-ipv4", RESERVED[10].labels)


def test_remote_node_entity_covers_kube_apiserver_identity() -> None:
    assert _matches("remote-node", RESERVED[7].labels)
    assert _matches("kube-apiserver", RESERVED[7].labels)
    assert not _matches("kube-apiserver", RESERVED[6].labels)
    assert not any(_matches("none", r.labels) for r in RESERVED.values() if r.id)


def test_entity_names_and_unknown_entity() -> None:
    assert {"all", "world", "cluster", "host", "remote-node", "kube-apiserver", "none"} <= ENTITY_NAMES
    with pytest.raises(UnknownEntityError, match="unsupported entity 'World'"):
        entity_selectors("World")


def test_allocator_numbers() -> None:
    alloc = IdentityAllocator()
    assert alloc.allocate(RESERVED[6].labels).id == 6
    b = pod_identity_labels({"app": "b"}, "shop", {})
    a = pod_identity_labels({"app": "a"}, "shop", {})
    ids = alloc.allocate_all([b, a, b])
    # Sorted by canonical string, not by input order; repeated sets share one identity.
    assert [i.id for i in ids] == [257, 256, 257]
    assert alloc.allocate(a).id == 256
    cidr = alloc.cidr_identity("10.0.0.0/24")
    assert cidr.id == 16777217 and cidr.labels.to_strings() == ["cidr:10.0.0.0/24", "reserved:world"]
    assert cidr.is_local and not cidr.is_reserved
    assert alloc.cidr_identity("10.0.0.5/24").id == 16777217  # same masked prefix
    assert alloc.cidr_identity("0.0.0.0/0").id == 2


def test_allocation_is_independent_of_input_order() -> None:
    sets = [pod_identity_labels({"app": str(i)}, "ns", {}) for i in range(20)]
    a = IdentityAllocator().allocate_all(sets)
    b = IdentityAllocator().allocate_all(list(reversed(sets)))
    assert {i.labels: i.id for i in a} == {i.labels: i.id for i in b}


def test_dual_stack_world_and_cidr_identities() -> None:
    alloc = IdentityAllocator(dual_stack=True)
    assert alloc.world(4).id == 9 and alloc.world(6).id == 10
    assert alloc.cidr_identity("2001:db8::/64").labels.to_strings() == ["cidr:2001:db8::/64", "reserved:world-ipv6"]
    assert IdentityAllocator().world(6).id == 2


def test_host_label_sets_are_identity_one() -> None:
    alloc = IdentityAllocator()
    extended = LabelSet.from_strings(["reserved:host", "reserved:kube-apiserver"])
    assert alloc.allocate(extended).id == 1
    assert alloc.host.labels.to_strings() == ["reserved:host"]  # the shared view is unchanged
