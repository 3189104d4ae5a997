"""IP -> identity lookups (longest prefix match) as seen from one node."""

from __future__ import annotations

from ciliary.identity.allocator import IdentityAllocator
from ciliary.identity.ipcache import IPCache
from ciliary.identity.podlabels import pod_identity_labels


def make() -> tuple[IdentityAllocator, IPCache]:
    alloc = IdentityAllocator()
    return alloc, IPCache(alloc)


def test_pod_ip_and_world_fallback() -> None:
    alloc, ipc = make()
    pod = alloc.allocate(pod_identity_labels({"app": "web"}, "shop", {}))
    ipc.add_pod_ip("10.244.1.5", pod)
    assert ipc.lookup("10.244.1.5") == pod
    assert ipc.lookup("10.244.1.6").id == 2
    assert ipc.lookup("8.8.8.8").id == 2


def test_node_is_host_on_the_observer_and_remote_node_elsewhere() -> None:
    _, ipc = make()
    ipc.add_node_ip("172.18.0.2", local=True)
    ipc.add_node_ip("172.18.0.3", local=False)
    assert ipc.lookup("172.18.0.2").id == 1
    assert ipc.lookup("172.18.0.3").id == 6


def test_kube_apiserver_on_remote_local_and_external() -> None:
    alloc, ipc = make()
    ipc.add_node_ip("172.18.0.3", local=False)
    ipc.add_kube_apiserver_ip("172.18.0.3")
    remote = ipc.lookup("172.18.0.3")
    assert remote.id == 7
    assert remote.labels.to_strings() == ["reserved:kube-apiserver", "reserved:remote-node"]

    ipc.add_kube_apiserver_ip("172.18.0.2")  # order does not matter
    ipc.add_node_ip("172.18.0.2", local=True)
    local = ipc.lookup("172.18.0.2")
    assert local.id == 1
    assert local.labels.to_strings() == ["reserved:host", "reserved:kube-apiserver"]
    assert ipc.host_identity == local
    assert alloc.host.labels.to_strings() == ["reserved:host"]

    ipc.add_kube_apiserver_ip("34.1.2.3")  # managed control plane outside the cluster
    ext = ipc.lookup("34.1.2.3")
    assert ext.is_local
    assert ext.labels.to_strings() == ["cidr:34.1.2.3/32", "reserved:kube-apiserver", "reserved:world"]


def test_longest_prefix_wins_between_cidrs() -> None:
    _, ipc = make()
    wide = ipc.add_cidr("10.0.0.0/8")
    narrow = ipc.add_cidr("10.1.2.0/24")
    host = ipc.add_cidr("10.1.2.3/32")
    assert ipc.lookup("10.1.2.3") == host
    assert ipc.lookup("10.1.2.4") == narrow
    assert ipc.lookup("10.9.9.9") == wide
    assert ipc.lookup("11.0.0.1").id == 2
    entry = ipc.lookup_entry("10.1.2.4")
    assert entry is not None and str(entry.prefix) == "10.1.2.0/24"


def test_pods_and_nodes_never_become_cidr_identities() -> None:
    alloc, ipc = make()
    pod = alloc.allocate(pod_identity_labels({"app": "web"}, "shop", {}))
    ipc.add_pod_ip("10.244.1.5", pod)
    ipc.add_node_ip("10.244.0.1", local=False)
    ipc.add_cidr("10.244.1.5/32")
    ipc.add_cidr("10.244.0.1/32")
    ipc.add_cidr("10.244.0.0/16")
    assert ipc.lookup("10.244.1.5") == pod
    assert ipc.lookup("10.244.0.1").id == 6
    assert ipc.lookup("10.244.9.9").labels.to_strings() == ["cidr:10.244.0.0/16", "reserved:world"]


def test_ipv6_lookups() -> None:
    alloc = IdentityAllocator(dual_stack=True)
    ipc = IPCache(alloc)
    pod = alloc.allocate(pod_identity_labels({"app": "web"}, "shop", {}))
    ipc.add_pod_ip("fd00:10:244::5", pod)
    net = ipc.add_cidr("2001:db8::/32")
    assert ipc.lookup("fd00:10:244:0::5") == pod  # any spelling of the address
    assert ipc.lookup("2001:db8:1::1") == net
    assert ipc.lookup("2001:db9::1").id == 10
    assert ipc.lookup("1.1.1.1").id == 9


def test_a_write_changes_the_answer_for_addresses_looked_up_before() -> None:
    # Lookups are memoised by address text; every write must be seen by the next lookup.
    alloc, ipc = make()
    assert ipc.lookup("203.0.113.7").id == 2
    cidr = ipc.add_cidr("203.0.113.0/24")
    assert ipc.lookup("203.0.113.7") == cidr
    pod = alloc.allocate(pod_identity_labels({"app": "web"}, "shop", {}))
    ipc.add_pod_ip("203.0.113.7", pod)
    assert ipc.lookup("203.0.113.7") == pod
    ipc.add_node_ip("203.0.113.8", local=True)
    assert ipc.lookup("203.0.113.8").id == 1
    ipc.add_kube_apiserver_ip("203.0.113.8")  # the local host identity gains kube-apiserver
    assert "reserved:kube-apiserver" in ipc.lookup("203.0.113.8").labels.to_strings()
