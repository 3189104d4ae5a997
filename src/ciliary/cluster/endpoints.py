"""Endpoints, identities and the ipcache of a loaded cluster.

An endpoint is what Cilium manages and enforces policy on: every running pod that does
not use the host network, plus one host endpoint per node (identity 1, selected only by
`nodeSelector` host policies). Pods with the same identity labels share one identity.

Contracts:
* An `Endpoint` is frozen and shared by the engine, verdicts and reports; its `key`
  (`namespace/pod`, or `node/NAME` for a host) names it everywhere.
* `build_endpoints` allocates in the allocator it is given, in sorted label-set order.
  `ClusterIdentities.build` makes a fresh allocator on each call, `ipcache()` a fresh
  ipcache on each call (the engine keeps one per observing node).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ciliary.cluster.model import Cluster, ContainerPort, Node, Pod
from ciliary.identity.allocator import Identity, IdentityAllocator
from ciliary.identity.ipcache import IPCache
from ciliary.identity.labels import SOURCE_K8S, Label, LabelSet
from ciliary.identity.podlabels import pod_identity_labels
from ciliary.identity.reserved import NAME_KUBE_APISERVER


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A managed endpoint: a pod (`pod` set) or a node's host endpoint (`pod` None)."""

    pod: Pod | None
    node: Node | None
    identity: Identity
    labels: LabelSet  # what subject selectors match: identity labels (+ node labels for hosts)
    # `namespace/pod`, or `node/<name>` for a host endpoint (made once).
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = self.pod.key if self.pod is not None else f"node/{self.node.name}" if self.node is not None else "node/?"
        object.__setattr__(self, "key", key)

    @property
    def is_host(self) -> bool:
        return self.pod is None

    @property
    def namespace(self) -> str | None:
        return self.pod.namespace if self.pod is not None else None

    @property
    def ips(self) -> tuple[str, ...]:
        if self.pod is not None:
            return self.pod.ips
        return self.node.ips if self.node is not None else ()

    @property
    def named_ports(self) -> tuple[ContainerPort, ...]:
        return self.pod.named_ports if self.pod is not None else ()


def pod_labels(cluster: Cluster, pod: Pod) -> LabelSet:
    """Identity labels of a pod in `cluster` (namespace labels, cluster name included)."""
    ns = cluster.namespace(pod.namespace)
    ns_labels = ns.labels if ns is not None else {"kubernetes.io/metadata.name": pod.namespace}
    return pod_identity_labels(pod.labels, pod.namespace, ns_labels, pod.service_account, cluster.cluster_name)


def build_endpoints(cluster: Cluster, allocator: IdentityAllocator) -> list[Endpoint]:
    """One endpoint per pod Cilium manages, sorted by namespace/name.

    Identities are allocated in sorted order of their label sets, so the same snapshot
    always gets the same numbers. Host-network and Succeeded/Failed pods are skipped.
    """
    pods = [p for p in cluster.pods if p.is_endpoint]
    label_sets = [pod_labels(cluster, p) for p in pods]
    identities = allocator.allocate_all(label_sets)
    return [
        Endpoint(p, cluster.node(p.node_name) if p.node_name else None, ident, ident.labels)
        for p, ident in zip(pods, identities, strict=True)
    ]


def host_endpoint(node: Node, allocator: IdentityAllocator, *, kube_apiserver: bool = False) -> Endpoint:
    """The host endpoint of `node`: identity 1; its labels add `k8s:` node labels, which
    is what CCNP `nodeSelector` matches (identity 1 itself stays reserved-only)."""
    ident = allocator.host_with([Label.reserved(NAME_KUBE_APISERVER)]) if kube_apiserver else allocator.host
    labels = ident.labels.union(Label(SOURCE_K8S, k, v) for k, v in node.labels.items())
    return Endpoint(None, node, ident, labels)


def build_ipcache(
    cluster: Cluster,
    allocator: IdentityAllocator,
    endpoints: Iterable[Endpoint],
    *,
    observer_node: str | None = None,
    cidrs: Iterable[str] = (),
) -> IPCache:
    """The ipcache as agent on `observer_node` sees it (None: every node is remote).

    `cidrs` are the prefixes policies reference; they get CIDR identities.
    """
    ipc = IPCache(allocator)
    for prefix in cidrs:
        ipc.add_cidr(prefix)
    for node in cluster.nodes:
        for ip in node.ips:
            ipc.add_node_ip(ip, local=node.name == observer_node)
    for ip in cluster.kube_apiserver_ips:
        ipc.add_kube_apiserver_ip(ip)
    for ep in endpoints:
        if ep.pod is not None:
            for ip in ep.pod.ips:
                ipc.add_pod_ip(ip, ep.identity)
    return ipc


@dataclass
class ClusterIdentities:
    """Everything identity-related about a cluster, computed once."""

    cluster: Cluster
    allocator: IdentityAllocator
    endpoints: list[Endpoint]
    host_endpoints: list[Endpoint] = field(default_factory=list)

    @classmethod
    def build(cls, cluster: Cluster, *, dual_stack: bool | None = None) -> ClusterIdentities:
        """`dual_stack=None` turns dual-stack world identities (9/10) on when the pods use
        both IPv4 and IPv6 addresses."""
        if dual_stack is None:
            versions = {":" in ip for p in cluster.pods for ip in p.ips}
            dual_stack = len(versions) == 2
        allocator = IdentityAllocator(dual_stack=dual_stack)
        endpoints = build_endpoints(cluster, allocator)
        apiserver = set(cluster.kube_apiserver_ips)
        hosts = [
            host_endpoint(n, allocator, kube_apiserver=bool(apiserver & set(n.ips))) for n in cluster.nodes
        ]
        return cls(cluster, allocator, endpoints, hosts)

    def ipcache(self, observer_node: str | None = None, cidrs: Iterable[str] = ()) -> IPCache:
        return build_ipcache(self.cluster, self.allocator, self.endpoints, observer_node=observer_node, cidrs=cidrs)

    def __post_init__(self) -> None:
        self._by_key = {ep.key: ep for ep in (*self.endpoints, *self.host_endpoints)}

    def endpoint(self, key: str) -> Endpoint | None:
        """Endpoint by `namespace/pod` or `node/<name>`."""
        return self._by_key.get(key)

    def host_network_pods(self) -> list[Pod]:
        return [p for p in self.cluster.pods if p.host_network and not p.terminated]
