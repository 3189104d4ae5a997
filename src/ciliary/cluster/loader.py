"""Documents -> Cluster.

Accepts what `kubectl get namespaces,pods,nodes,services,endpointslices,... -A -o yaml`
prints (a `kind: List`), the same as JSON, multi-document YAML, or a directory of
manifests (GitOps). Policy objects are set aside untouched in `policy_documents`;
other kinds are counted in `ignored_kinds`.

A namespace with workloads but no Pods gets synthetic pods made from the pod templates,
so manifests alone can be analysed. Pods without IPs get deterministic addresses from
`pod_cidr` that avoid every address in the snapshot.

Malformed cluster objects raise LoadError listing every problem, located by file, line
and a path from the document root (`items[3].metadata.labels` inside a List).

Contracts:
* All-or-nothing, like the policy loader: a `Cluster` is returned complete or not at all.
  Besides `LoadError`, ValueError is raised for a bad `pod_cidr` or one too small for the
  pods that need addresses.
* Documents are read, never changed; objects are identified by (kind, namespace, name),
  and a second object under one identity is an error.
* Deterministic: synthetic pod names, their nodes and assigned addresses come from hashes
  of the workload and from sorted orders, never from randomness or the clock, so one input
  always gives the same cluster.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from ciliary.cluster.model import (
    Cluster,
    ContainerPort,
    Namespace,
    Node,
    Pod,
    Service,
    ServiceEndpoints,
    ServicePort,
    normalize_ip,
)
from ciliary.identity.podlabels import namespace_labels_with_name
from ciliary.model.errors import LoadError, Path, ValidationIssue, format_path, type_name
from ciliary.model.files import read_documents
from ciliary.model.source import Document

DEFAULT_POD_CIDR: Final = "10.244.0.0/16"
MAX_SYNTHETIC_REPLICAS: Final = 3  # enough to show replicas sharing one identity

# kind -> accepted API groups ("" is the core group).
CLUSTER_KINDS: Final[dict[str, tuple[str, ...]]] = {
    "Namespace": ("",),
    "Pod": ("",),
    "Node": ("",),
    "Service": ("",),
    "Endpoints": ("",),
    "EndpointSlice": ("discovery.k8s.io",),
    "Deployment": ("apps", "extensions"),
    "StatefulSet": ("apps",),
    "DaemonSet": ("apps", "extensions"),
    "ReplicaSet": ("apps", "extensions"),
    "Job": ("batch",),
    "CronJob": ("batch",),
}
WORKLOAD_KINDS: Final = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})
POLICY_KINDS: Final = frozenset(
    {
        "CiliumNetworkPolicy",
        "CiliumClusterwideNetworkPolicy",
        "NetworkPolicy",
        "ClusterNetworkPolicy",
        "AdminNetworkPolicy",
        "BaselineAdminNetworkPolicy",
        "CiliumCIDRGroup",
    }
)
_POLICY_GROUPS: Final = frozenset({"cilium.io", "networking.k8s.io", "policy.networking.k8s.io"})
_CLUSTER_SCOPED: Final = frozenset({"Namespace", "Node"})
# Alphabet of Kubernetes' generated name suffixes (k8s.io/apimachinery rand.SafeEncodeString).
_NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"


def read_cluster(
    paths: Iterable[str | os.PathLike[str]],
    *,
    pod_cidr: str = DEFAULT_POD_CIDR,
    cluster_name: str = "default",
) -> Cluster:
    """Cluster from files/directories; LoadError lists every problem."""
    return load_cluster(read_documents(paths), pod_cidr=pod_cidr, cluster_name=cluster_name)


def load_cluster(
    documents: Iterable[Document],
    *,
    pod_cidr: str = DEFAULT_POD_CIDR,
    cluster_name: str = "default",
) -> Cluster:
    """Cluster from parsed documents; LoadError lists every problem, nothing half-loaded."""
    try:
        cidr = ipaddress.ip_network(pod_cidr, strict=False)
    except ValueError as e:
        raise ValueError(f"invalid pod CIDR {pod_cidr!r}: {e}") from None
    b = _Builder()
    for doc in documents:
        b.add_document(doc)
    if b.issues:
        raise LoadError(b.issues)
    return b.finish(cidr, cluster_name)


# ---------------------------------------------------------------------------
# Internals


@dataclass
class _Where:
    """Where an object sits: its document and the path of the object inside it."""

    doc: Document
    prefix: Path
    label: str

    def at(self, *path: str | int) -> Path:
        return (*self.prefix, *path)


@dataclass
class _PodTemplate:
    labels: Mapping[str, str]
    service_account: str
    node_name: str | None
    host_network: bool
    named_ports: tuple[ContainerPort, ...]
    node_selector: Mapping[str, str]
    container_ports: tuple[ContainerPort, ...] = ()
    probe_ports: tuple[ContainerPort, ...] = ()


@dataclass
class _Workload:
    kind: str
    name: str
    namespace: str
    replicas: int
    template: _PodTemplate
    owned: bool  # controlled by another workload (ReplicaSet of a Deployment, ...)


@dataclass
class _Builder:
    issues: list[ValidationIssue] = field(default_factory=list)
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    pods: list[Pod] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    endpoints: list[ServiceEndpoints] = field(default_factory=list)
    workloads: list[_Workload] = field(default_factory=list)
    policy_documents: list[Document] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)
    seen: dict[tuple[str, str, str], str] = field(default_factory=dict)
    referenced_namespaces: set[str] = field(default_factory=set)

    # -- diagnostics ----------------------------------------------------------
    def issue(self, w: _Where, path: Path, message: str) -> None:
        full = w.at(*path)
        self.issues.append(
            ValidationIssue(w.doc.file, w.doc.line_of(full), w.doc.index, w.label, format_path(full), message)
        )

    # -- dispatch ---------------------------------------------------------------
    def add_document(self, doc: Document) -> None:
        has_policy = False
        for prefix, value in _objects(doc.value, ()):
            if not isinstance(value, dict):
                self._ignore("(not an object)")
                continue
            kind = value.get("kind")
            if not isinstance(kind, str) or not kind:
                self._ignore("(no kind)")
                continue
            api = value.get("apiVersion")
            group = api.rpartition("/")[0] if isinstance(api, str) and "/" in api else ""
            if _is_policy(kind, group):
                has_policy = True
                continue
            groups = CLUSTER_KINDS.get(kind)
            if groups is None or group not in groups:
                self._ignore(kind)
                continue
            self._object(doc, prefix, kind, value)
        if has_policy:
            self.policy_documents.append(doc)

    def _ignore(self, kind: str) -> None:
        self.ignored[kind] = self.ignored.get(kind, 0) + 1

    def _object(self, doc: Document, prefix: Path, kind: str, obj: dict[str, Any]) -> None:
        w = _Where(doc, prefix, kind)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            self.issue(w, ("metadata",), "metadata must be an object with a name")
            return
        name = meta.get("name")
        namespace: str | None = None
        if kind not in _CLUSTER_SCOPED:
            ns = meta.get("namespace")
            if ns is None or ns == "":
                ns = "default"  # what `kubectl apply` uses without a namespace
            if not isinstance(ns, str):
                self.issue(w, ("metadata", "namespace"), f"namespace must be a string, got {type_name(ns)} {_show(ns)}")
                return
            namespace = ns
        if not isinstance(name, str) or not name:
            if namespace is not None:
                w.label = f"{kind} in namespace {namespace}"
            self.issue(w, ("metadata", "name"), f"name must be a non-empty string, got {_show(name)}")
            return
        w.label = f"{kind} {namespace}/{name}" if namespace is not None else f"{kind} {name}"
        ident = (kind, namespace or "", name)
        where = f"{doc.file}, document {doc.index}"
        if ident in self.seen:
            self.issue(w, ("metadata", "name"), f"{w.label} is defined twice (first in {self.seen[ident]})")
            return
        self.seen[ident] = where
        labels = self._labels(w, ("metadata", "labels"), meta.get("labels"))
        if namespace is not None:
            self.referenced_namespaces.add(namespace)
        handler = getattr(self, f"_{kind.lower()}")
        handler(w, obj, name, namespace, labels)

    # -- field helpers ------------------------------------------------------------
    def _labels(self, w: _Where, path: Path, value: Any) -> Mapping[str, str]:
        if value is None:
            return MappingProxyType({})
        if not isinstance(value, dict):
            self.issue(w, path, f"labels must be a map of strings, got {type_name(value)}")
            return MappingProxyType({})
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(v, str):
                hint = f' (quote it: "{_show(v)}")' if isinstance(v, bool | int | float) else ""
                self.issue(w, (*path, k), f"label values must be strings, got {type_name(v)} {_show(v)}{hint}")
                continue
            out[str(k)] = v
        return MappingProxyType(out)

    def _mapping(self, w: _Where, path: Path, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.issue(w, path, f"must be an object, got {type_name(value)}")
            return {}
        return value

    def _list(self, w: _Where, path: Path, value: Any) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.issue(w, path, f"must be a list, got {type_name(value)}")
            return []
        return value

    def _str(self, w: _Where, path: Path, value: Any, default: str | None = None) -> str | None:
        if value is None:
            return default
        if not isinstance(value, str):
            self.issue(w, path, f"must be a string, got {type_name(value)} {_show(value)}")
            return default
        return value

    def _ip(self, w: _Where, path: Path, value: Any) -> str | None:
        if not isinstance(value, str):
            self.issue(w, path, f"must be an IP address, got {type_name(value)} {_show(value)}")
            return None
        ip = normalize_ip(value)
        if ip is None:
            self.issue(w, path, f"{value!r} is not an IP address")
        return ip

    def _port_number(self, w: _Where, path: Path, value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.issue(w, path, f"must be a port number 1-65535, got {_show(value)}")
            return None
        return value

    def _protocol(self, w: _Where, path: Path, value: Any) -> str:
        proto = self._str(w, path, value, "TCP") or "TCP"
        if proto not in ("TCP", "UDP", "SCTP"):
            self.issue(w, path, f"protocol must be TCP, UDP or SCTP, got {proto!r}")
        return proto

    def _pod_template(self, w: _Where, spec_path: Path, spec_value: Any, labels: Mapping[str, str]) -> _PodTemplate:
        spec = self._mapping(w, spec_path, spec_value)
        sa_key = "serviceAccountName" if "serviceAccountName" in spec else "serviceAccount"
        # The API server fills in "default" when a pod names no service account.
        sa = self._str(w, (*spec_path, sa_key), spec.get(sa_key), "default") or "default"
        node_name = self._str(w, (*spec_path, "nodeName"), spec.get("nodeName"))
        host_network = spec.get("hostNetwork", False)
        if not isinstance(host_network, bool):
            self.issue(w, (*spec_path, "hostNetwork"), f"must be a boolean, got {_show(host_network)}")
            host_network = False
        ports: list[ContainerPort] = []
        every: list[ContainerPort] = []
        probes: list[ContainerPort] = []
        for ci, c in enumerate(self._list(w, (*spec_path, "containers"), spec.get("containers"))):
            cpath = (*spec_path, "containers", ci)
            container = self._mapping(w, cpath, c)
            mine: list[ContainerPort] = []
            for pi, p in enumerate(self._list(w, (*cpath, "ports"), container.get("ports"))):
                ppath = (*cpath, "ports", pi)
                port = self._mapping(w, ppath, p)
                number = self._port_number(w, (*ppath, "containerPort"), port.get("containerPort"))
                pname = self._str(w, (*ppath, "name"), port.get("name"))
                proto = self._protocol(w, (*ppath, "protocol"), port.get("protocol"))
                if number is not None:
                    mine.append(ContainerPort((pname or "").lower(), number, proto))
                    if pname:
                        ports.append(ContainerPort(pname.lower(), number, proto))
            every.extend(mine)
            probes.extend(_probe_ports(container, mine))
        node_selector = self._labels(w, (*spec_path, "nodeSelector"), spec.get("nodeSelector"))
        return _PodTemplate(labels, sa, node_name, host_network, tuple(ports), node_selector, tuple(every), tuple(probes))

    # -- kinds ----------------------------------------------------------------------
    def _namespace(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        self.namespaces[name] = Namespace(name, MappingProxyType(namespace_labels_with_name(name, labels)))

    def _pod(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        assert ns is not None
        t = self._pod_template(w, ("spec",), obj.get("spec"), labels)
        status = self._mapping(w, ("status",), obj.get("status"))
        ips: list[str] = []
        pod_ips = self._list(w, ("status", "podIPs"), status.get("podIPs"))
        for i, entry in enumerate(pod_ips):
            e = self._mapping(w, ("status", "podIPs", i), entry)
            ip = self._ip(w, ("status", "podIPs", i, "ip"), e.get("ip"))
            if ip is not None and ip not in ips:
                ips.append(ip)
        if not pod_ips and status.get("podIP") not in (None, ""):
            ip = self._ip(w, ("status", "podIP"), status.get("podIP"))
            if ip is not None:
                ips.append(ip)
        phase = self._str(w, ("status", "phase"), status.get("phase"))
        self.pods.append(
            Pod(
                name,
                ns,
                labels,
                t.service_account,
                t.node_name,
                tuple(ips),
                t.named_ports,
                t.host_network,
                phase=phase,
                container_ports=t.container_ports,
                probe_ports=t.probe_ports,
            )
        )

    def _node(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        status = self._mapping(w, ("status",), obj.get("status"))
        internal: list[str] = []
        external: list[str] = []
        for i, a in enumerate(self._list(w, ("status", "addresses"), status.get("addresses"))):
            entry = self._mapping(w, ("status", "addresses", i), a)
            kind = entry.get("type")
            if kind not in ("InternalIP", "ExternalIP"):
                continue  # Hostname, InternalDNS, ...
            ip = self._ip(w, ("status", "addresses", i, "address"), entry.get("address"))
            target = internal if kind == "InternalIP" else external
            if ip is not None and ip not in target:
                target.append(ip)
        self.nodes.append(Node(name, labels, tuple(internal), tuple(external)))

    def _service(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        assert ns is not None
        spec = self._mapping(w, ("spec",), obj.get("spec"))
        selector = (
            self._labels(w, ("spec", "selector"), spec.get("selector")) if spec.get("selector") is not None else None
        )
        ports = self._service_ports(w, ("spec", "ports"), spec.get("ports"), service=True)
        ips: list[str] = []
        if spec.get("clusterIPs") is not None:
            for i, v in enumerate(self._list(w, ("spec", "clusterIPs"), spec.get("clusterIPs"))):
                if v in ("None", ""):
                    continue  # headless
                ip = self._ip(w, ("spec", "clusterIPs", i), v)
                if ip is not None:
                    ips.append(ip)
        elif spec.get("clusterIP") not in (None, "", "None"):
            ip = self._ip(w, ("spec", "clusterIP"), spec.get("clusterIP"))
            if ip is not None:
                ips.append(ip)
        stype = self._str(w, ("spec", "type"), spec.get("type"), "ClusterIP") or "ClusterIP"
        self.services.append(Service(name, ns, selector, ports, tuple(ips), stype))

    def _service_ports(self, w: _Where, path: Path, value: Any, *, service: bool) -> tuple[ServicePort, ...]:
        out: list[ServicePort] = []
        for i, p in enumerate(self._list(w, path, value)):
            ppath = (*path, i)
            port = self._mapping(w, ppath, p)
            number = self._port_number(w, (*ppath, "port"), port.get("port"))
            pname = self._str(w, (*ppath, "name"), port.get("name"), "") or ""
            proto = self._protocol(w, (*ppath, "protocol"), port.get("protocol"))
            target: int | str | None = None
            if service:
                raw = port.get("targetPort")
                if isinstance(raw, int | str) and not isinstance(raw, bool):
                    target = raw
                elif raw is not None:
                    self.issue(w, (*ppath, "targetPort"), f"must be a port number or name, got {_show(raw)}")
            if number is not None:
                out.append(ServicePort(pname, number, proto, target))
        return tuple(out)

    def _endpoints(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        assert ns is not None
        addrs: list[str] = []
        ports: list[ServicePort] = []
        for si, s in enumerate(self._list(w, ("subsets",), obj.get("subsets"))):
            spath: Path = ("subsets", si)
            subset = self._mapping(w, spath, s)
            for ai, a in enumerate(self._list(w, (*spath, "addresses"), subset.get("addresses"))):
                entry = self._mapping(w, (*spath, "addresses", ai), a)
                ip = self._ip(w, (*spath, "addresses", ai, "ip"), entry.get("ip"))
                if ip is not None and ip not in addrs:
                    addrs.append(ip)
            ports.extend(self._service_ports(w, (*spath, "ports"), subset.get("ports"), service=False))
        self.endpoints.append(ServiceEndpoints(name, ns, name, "Endpoints", tuple(addrs), tuple(ports)))

    def _endpointslice(
        self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]
    ) -> None:
        assert ns is not None
        if obj.get("addressType") == "FQDN":
            return  # names, not addresses
        service = labels.get("kubernetes.io/service-name", "")
        addrs: list[str] = []
        for ei, e in enumerate(self._list(w, ("endpoints",), obj.get("endpoints"))):
            epath: Path = ("endpoints", ei)
            entry = self._mapping(w, epath, e)
            conditions = entry.get("conditions")
            if isinstance(conditions, dict) and conditions.get("ready") is False:
                continue  # not a backend right now
            for ai, a in enumerate(self._list(w, (*epath, "addresses"), entry.get("addresses"))):
                ip = self._ip(w, (*epath, "addresses", ai), a)
                if ip is not None and ip not in addrs:
                    addrs.append(ip)
        ports = self._service_ports_slice(w, obj.get("ports"))
        self.endpoints.append(ServiceEndpoints(name, ns, service, "EndpointSlice", tuple(addrs), ports))

    def _service_ports_slice(self, w: _Where, value: Any) -> tuple[ServicePort, ...]:
        out: list[ServicePort] = []
        for i, p in enumerate(self._list(w, ("ports",), value)):
            port = self._mapping(w, ("ports", i), p)
            raw = port.get("port")
            if raw is None:
                continue  # "all ports"
            number = self._port_number(w, ("ports", i, "port"), raw)
            pname = self._str(w, ("ports", i, "name"), port.get("name"), "") or ""
            proto = self._protocol(w, ("ports", i, "protocol"), port.get("protocol"))
            if number is not None:
                out.append(ServicePort(pname, number, proto))
        return tuple(out)

    def _workload(self, w: _Where, obj: dict[str, Any], kind: str, name: str, ns: str | None) -> None:
        assert ns is not None
        spec = self._mapping(w, ("spec",), obj.get("spec"))
        tpath: Path = ("spec", "template")
        tvalue = spec.get("template")
        if kind == "CronJob":
            job = self._mapping(w, ("spec", "jobTemplate"), spec.get("jobTemplate"))
            jspec = self._mapping(w, ("spec", "jobTemplate", "spec"), job.get("spec"))
            tpath = ("spec", "jobTemplate", "spec", "template")
            tvalue = jspec.get("template")
        if tvalue is None:
            self.issue(w, tpath, "a pod template is required")
        template = self._mapping(w, tpath, tvalue)
        tmeta = self._mapping(w, (*tpath, "metadata"), template.get("metadata"))
        tlabels = dict(self._labels(w, (*tpath, "metadata", "labels"), tmeta.get("labels")))
        if kind in ("Job", "CronJob"):
            # The Job controller labels its pods with the job name; Cilium keeps these.
            job_name = name if kind == "Job" else f"{name}-{_digits(f'{ns}/{name}')}"
            tlabels.setdefault("job-name", job_name)
            tlabels.setdefault("batch.kubernetes.io/job-name", job_name)
        t = self._pod_template(w, (*tpath, "spec"), template.get("spec"), MappingProxyType(tlabels))
        replicas = 1
        count_field = "parallelism" if kind == "Job" else "replicas"
        raw = spec.get(count_field)
        if raw is not None and kind in ("Deployment", "StatefulSet", "ReplicaSet", "Job"):
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                self.issue(w, ("spec", count_field), f"must be a non-negative integer, got {_show(raw)}")
            else:
                replicas = raw
        owned = False
        meta = obj.get("metadata")
        owners = meta.get("ownerReferences") if isinstance(meta, dict) else None
        if isinstance(owners, list):
            owned = any(isinstance(o, dict) and o.get("kind") in WORKLOAD_KINDS for o in owners)
        self.workloads.append(_Workload(kind, name, ns, min(replicas, MAX_SYNTHETIC_REPLICAS), t, owned))

    def _deployment(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        self._workload(w, obj, "Deployment", name, ns)

    def _statefulset(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        self._workload(w, obj, "StatefulSet", name, ns)

    def _daemonset(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        self._workload(w, obj, "DaemonSet", name, ns)

    def _replicaset(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        self._workload(w, obj, "ReplicaSet", name, ns)

    def _job(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        self._workload(w, obj, "Job", name, ns)

    def _cronjob(self, w: _Where, obj: dict[str, Any], name: str, ns: str | None, labels: Mapping[str, str]) -> None:
        self._workload(w, obj, "CronJob", name, ns)

    # -- assembly ---------------------------------------------------------------------
    def finish(self, pod_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network, cluster_name: str) -> Cluster:
        nodes = sorted(self.nodes, key=lambda n: n.name)
        pods = self.pods + self._synthetic_pods(nodes)
        node_by_name = {n.name: n for n in nodes}
        # Host-network pods live in their node's network namespace.
        pods = [
            replace(p, ips=node_by_name[p.node_name].internal_ips)
            if p.host_network and not p.ips and p.node_name in node_by_name
            else p
            for p in pods
        ]
        pods = self._assign_ips(pods, nodes, pod_cidr)
        pods.sort(key=lambda p: (p.namespace, p.name))
        namespaces = dict(self.namespaces)
        for ns in sorted(self.referenced_namespaces - namespaces.keys()):
            namespaces[ns] = Namespace(ns, MappingProxyType(namespace_labels_with_name(ns, {})), implicit=True)
        return Cluster(
            namespaces=dict(sorted(namespaces.items())),
            pods=pods,
            nodes=nodes,
            services=sorted(self.services, key=lambda s: (s.namespace, s.name)),
            endpoints=sorted(self.endpoints, key=lambda e: (e.namespace, e.service_name, e.kind, e.name)),
            policy_documents=self.policy_documents,
            ignored_kinds=dict(sorted(self.ignored.items())),
            cluster_name=cluster_name,
            pod_cidr=str(pod_cidr),
        )

    def _synthetic_pods(self, nodes: list[Node]) -> list[Pod]:
        with_pods = {p.namespace for p in self.pods}
        out: list[Pod] = []
        for wl in sorted(self.workloads, key=lambda x: (x.namespace, x.kind, x.name)):
            if wl.namespace in with_pods or wl.owned:
                continue
            t = wl.template
            eligible = [n for n in nodes if all(n.labels.get(k) == v for k, v in t.node_selector.items())]
            seed = f"{wl.kind}/{wl.namespace}/{wl.name}"
            suffix = _name_hash(seed)
            if wl.kind == "DaemonSet":
                placements: list[str | None] = [n.name for n in eligible] if eligible else ([None] if not nodes else [])
                if t.node_name is not None:
                    placements = [t.node_name]
            else:
                start = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
                placements = [
                    t.node_name
                    if t.node_name is not None
                    else (eligible[(start + i) % len(eligible)].name if eligible else None)
                    for i in range(wl.replicas)
                ]
            for i, node in enumerate(placements):
                out.append(
                    Pod(
                        f"{wl.name}-{suffix}-{i}",
                        wl.namespace,
                        t.labels,
                        t.service_account,
                        node,
                        (),
                        t.named_ports,
                        t.host_network,
                        synthetic=True,
                        owner=f"{wl.kind}/{wl.name}",
                        container_ports=t.container_ports,
                        probe_ports=t.probe_ports,
                    )
                )
        return out

    def _assign_ips(
        self, pods: list[Pod], nodes: list[Node], pod_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    ) -> list[Pod]:
        need = sorted(
            (p for p in pods if not p.ips and not p.host_network and not p.terminated),
            key=lambda p: (p.namespace, p.name),
        )
        if not need:
            return pods
        used: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        for ip in _all_addresses(pods, nodes, self.services, self.endpoints):
            used.add(ipaddress.ip_address(ip))
        free = (a for a in pod_cidr.hosts() if a not in used)
        assigned: dict[str, str] = {}
        for p in need:
            addr = next(free, None)
            if addr is None:
                raise ValueError(f"pod CIDR {pod_cidr} has too few free addresses for {len(need)} pods")
            assigned[p.key] = str(addr)
        return [replace(p, ips=(assigned[p.key],), synthetic_ips=True) if p.key in assigned else p for p in pods]


def _objects(value: Any, prefix: Path) -> Iterator[tuple[Path, Any]]:
    """The objects of a document: itself, or (recursively) the items of a List."""
    if isinstance(value, dict) and isinstance(value.get("kind"), str) and value["kind"].endswith("List"):
        items = value.get("items")
        if isinstance(items, list):
            for i, item in enumerate(items):
                yield from _objects(item, (*prefix, "items", i))
            return
    yield prefix, value


def _is_policy(kind: str, group: str) -> bool:
    if kind in POLICY_KINDS:
        return True
    # Near-miss kinds in policy API groups go to the policy loader, which names the typo.
    return group in _POLICY_GROUPS and bool(difflib.get_close_matches(kind, list(POLICY_KINDS), n=1, cutoff=0.85))


def _all_addresses(
    pods: Iterable[Pod], nodes: Iterable[Node], services: Iterable[Service], endpoints: Iterable[ServiceEndpoints]
) -> Iterator[str]:
    for p in pods:
        yield from p.ips
    for n in nodes:
        yield from n.ips
    for s in services:
        yield from s.cluster_ips
    for e in endpoints:
        yield from e.addresses


def _name_hash(seed: str) -> str:
    """A stable 10-character suffix in the alphabet Kubernetes uses for generated names."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in digest[:10])


def _digits(seed: str) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16) % 10**8).zfill(8)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return type_name(value)
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


_PROBES = (("livenessProbe", "liveness"), ("readinessProbe", "readiness"), ("startupProbe", "startup"))


def _probe_ports(container: dict[str, Any], ports: list[ContainerPort]) -> list[ContainerPort]:
    """The ports kubelet probes (it connects from the node). Lenient: probes do not change
    what a policy says, so a probe ciliary cannot read is skipped, not an error."""
    out: list[ContainerPort] = []
    for key, kind in _PROBES:
        probe = container.get(key)
        if not isinstance(probe, dict):
            continue
        for handler in ("httpGet", "tcpSocket", "grpc"):
            h = probe.get(handler)
            if not isinstance(h, dict):
                continue
            port = h.get("port")
            if isinstance(port, str) and not port.isdigit():
                named = [p for p in ports if p.name == port.lower()]
                number = named[0].port if named else None
            elif isinstance(port, int | str) and not isinstance(port, bool):
                number = int(port)
            else:
                number = None
            if number is not None and 0 < number <= 65535:
                out.append(ContainerPort(kind, number, "TCP"))
    return out
