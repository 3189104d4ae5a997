"""The cluster as the policy engine needs it: plain, immutable records plus lookups.

Contracts:
* `Namespace`, `Pod`, `Node`, `Service`, `ServicePort`, `ContainerPort` and
  `ServiceEndpoints` are frozen dataclasses, shared by everything built from a snapshot;
  the loader gives their label maps as read-only `MappingProxyType` views. `Namespace`,
  `Pod`, `Node` and `Service` hash by (namespace and) name only, as label maps are
  unhashable; equality still compares every field.
* `Cluster` itself is a plain dataclass: its lookups (`pod`, `pod_by_ip`, ...) are built
  at construction, so whoever changes its lists must call `reindex()`. The engine never
  changes a cluster; it copies one with `dataclasses.replace` to set the cluster name.
* `normalize_ip` is a pure function of its argument (`lru_cache`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from ciliary.model.source import Document


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)  # includes kubernetes.io/metadata.name
    implicit: bool = False  # referenced by an object but not declared in the input

    def __hash__(self) -> int:  # labels are a read-only dict view, which is unhashable
        return hash(("Namespace", self.name))


@dataclass(frozen=True, slots=True)
class ContainerPort:
    name: str  # lower-cased: named ports match case-insensitively
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    node_name: str | None = None
    ips: tuple[str, ...] = ()
    named_ports: tuple[ContainerPort, ...] = ()
    host_network: bool = False  # shares its node's IPs and host identity; not an endpoint
    synthetic: bool = False  # made from a workload's pod template (no Pod in the input)
    synthetic_ips: bool = False  # ips were assigned from pod_cidr (none in the input)
    phase: str | None = None  # status.phase if given
    owner: str | None = None  # "Deployment/frontend" for synthetic pods
    container_ports: tuple[ContainerPort, ...] = ()  # every declared port (name "" if none)
    # kubelet's probe targets (liveness/readiness/startup httpGet, tcpSocket, grpc); `name`
    # says which probe. Named probe ports are resolved against the container's ports.
    probe_ports: tuple[ContainerPort, ...] = ()
    # `namespace/name`, made once: verdicts and reports name pods by it.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.namespace}/{self.name}")

    def __hash__(self) -> int:  # labels are a read-only dict view, which is unhashable
        return hash(("Pod", self.namespace, self.name))

    @property
    def terminated(self) -> bool:
        """Succeeded/Failed pods hold no IP and are no endpoints (Cilium ignores them)."""
        return self.phase in ("Succeeded", "Failed")

    @property
    def is_endpoint(self) -> bool:
        """Whether Cilium manages this pod as an endpoint with its own identity."""
        return not self.host_network and not self.terminated

    def named_port(self, name: str, protocol: str | None = None) -> list[ContainerPort]:
        n = name.lower()
        return [p for p in self.named_ports if p.name == n and (protocol is None or p.protocol == protocol)]


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    internal_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()

    def __hash__(self) -> int:  # labels are a read-only dict view, which is unhashable
        return hash(("Node", self.name))

    @property
    def ips(self) -> tuple[str, ...]:
        """Every address Cilium puts in the ipcache for this node."""
        return (*self.internal_ips, *self.external_ips)


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    protocol: str = "TCP"
    target_port: int | str | None = None


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    namespace: str
    selector: Mapping[str, str] | None = None  # None: no selector (manual endpoints)
    ports: tuple[ServicePort, ...] = ()
    cluster_ips: tuple[str, ...] = ()
    type: str = "ClusterIP"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __hash__(self) -> int:  # the selector is a read-only dict view, which is unhashable
        return hash(("Service", self.namespace, self.name))


@dataclass(frozen=True, slots=True)
class ServiceEndpoints:
    """Backend addresses of a service, from one EndpointSlice or Endpoints object."""

    name: str  # object name (slice name, or the service name for Endpoints)
    namespace: str
    service_name: str
    kind: str  # "EndpointSlice" | "Endpoints"
    addresses: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()


@dataclass
class Cluster:
    """A loaded snapshot. Pods are sorted by namespace/name, nodes by name."""

    namespaces: dict[str, Namespace] = field(default_factory=dict)
    pods: list[Pod] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    endpoints: list[ServiceEndpoints] = field(default_factory=list)
    # Documents holding policy objects, unchanged (whole `kind: List` documents included)
    # so `load_policies(cluster.policy_documents)` reports the same paths and lines.
    policy_documents: list[Document] = field(default_factory=list)
    ignored_kinds: dict[str, int] = field(default_factory=dict)
    cluster_name: str = "default"
    pod_cidr: str = "10.244.0.0/16"

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the lookups; call after changing the lists."""
        self._pods = {p.key: p for p in self.pods}
        self._nodes = {n.name: n for n in self.nodes}
        self._services = {s.key: s for s in self.services}
        self._pod_by_ip: dict[str, Pod] = {}
        for p in self.pods:
            if p.is_endpoint:
                for ip in p.ips:
                    self._pod_by_ip[_norm(ip)] = p
        self._node_by_ip = {_norm(ip): n for n in self.nodes for ip in n.ips}

    # -- lookups ------------------------------------------------------------
    def pod(self, key: str) -> Pod | None:
        """Pod by `namespace/name`."""
        return self._pods.get(key)

    def node(self, name: str) -> Node | None:
        return self._nodes.get(name)

    def namespace(self, name: str) -> Namespace | None:
        return self.namespaces.get(name)

    def service(self, key: str) -> Service | None:
        """Service by `namespace/name`."""
        return self._services.get(key)

    def pod_by_ip(self, ip: str) -> Pod | None:
        """The endpoint pod owning `ip` (host-network and terminated pods excluded)."""
        return self._pod_by_ip.get(_norm(ip))

    def node_by_ip(self, ip: str) -> Node | None:
        return self._node_by_ip.get(_norm(ip))

    @property
    def kube_apiserver_ips(self) -> tuple[str, ...]:
        """Backends of service default/kubernetes: EndpointSlices if any, else Endpoints."""
        slices = [
            e for e in self.endpoints
            if e.namespace == "default" and e.service_name == "kubernetes" and e.kind == "EndpointSlice"
        ]
        chosen = slices or [
            e for e in self.endpoints
            if e.namespace == "default" and e.service_name == "kubernetes" and e.kind == "Endpoints"
        ]
        seen: dict[str, None] = {}
        for e in chosen:
            for a in e.addresses:
                seen.setdefault(a, None)
        return tuple(seen)


@lru_cache(maxsize=1 << 16)
def normalize_ip(ip: str) -> str | None:
    """Canonical text of an IP address (`fd00::0:1` -> `fd00::1`), None if invalid."""
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


def _norm(ip: str) -> str:
    return normalize_ip(ip) or ip
