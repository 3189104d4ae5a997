"""Resolution of the rule repository into per-endpoint policy maps.

`PolicyEngine` holds the compiled world of one cluster snapshot and one policy set:
identities (pods, reserved, CIDR), one ipcache per observing node, the selector cache
(`LabelIndex`: selectors are resolved once against all identities, so the cost grows with
rules x identities, not rules x pods) and the endpoint policies, compiled on demand and
shared by every endpoint with the same identity, namespace and named ports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ciliary.cluster.model import Cluster, Node, Pod
from ciliary.identity.allocator import Identity, IdentityAllocator
from ciliary.identity.ipcache import IPCache
from ciliary.identity.labels import SOURCE_CIDR, SOURCE_K8S, Label, LabelSet
from ciliary.identity.podlabels import namespace_labels_with_name, pod_identity_labels
from ciliary.identity.reserved import HOST, REMOTE_NODE, reserved_label
from ciliary.identity.selector import LabelIndex, Selector
from ciliary.model.policy import PolicySet
from ciliary.policy.config import AgentConfig
from ciliary.policy.mapstate import WILDCARD_IDENTITY, Lookup, PolicyMap
from ciliary.policy.ports import ALL_PORTS, PROTO_NUMBERS, PortPrefix
from ciliary.policy.repository import Repository
from ciliary.policy.rules import EGRESS, INGRESS, PolicyEntry, TranslateOptions, translate_policy


@dataclass(frozen=True)
class Endpoint:
    """A Cilium-managed endpoint: a pod, or a node's host endpoint."""

    name: str  # ns/pod, or the node name for a host endpoint
    namespace: str | None
    node: str | None
    identity: Identity
    labels: LabelSet  # labels rules select on (host endpoint: reserved:host + node labels)
    ips: tuple[str, ...]
    named_ports: tuple[tuple[str, int, int], ...] = ()  # (name, port, proto number)
    is_host: bool = False
    pod: Pod | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return self.name


@dataclass
class DirectionPolicy:
    direction: str
    rules: list[PolicyEntry]
    enforced: bool
    default_deny: bool
    policy_map: PolicyMap
    reason: str  # why enforced or not, for trace

    def lookup(self, identity: int, proto: int, port: int) -> Lookup:
        return self.policy_map.lookup(identity, proto, port)


@dataclass
class EndpointPolicy:
    ingress: DirectionPolicy
    egress: DirectionPolicy

    def direction(self, d: str) -> DirectionPolicy:
        return self.ingress if d == INGRESS else self.egress


class PolicyEngine:
    def __init__(self, cluster: Cluster, policies: PolicySet, config: AgentConfig | None = None) -> None:
        self.cluster = cluster
        self.policies = policies
        self.config = config = config or AgentConfig()
        topts = TranslateOptions(
            cluster_name=config.cluster_name,
            enable_non_default_deny_policies=config.enable_non_default_deny_policies,
        )
        entries = [e for p in policies.policies for e in translate_policy(p, topts)]
        self.repository = Repository(entries)
        self.allocator = IdentityAllocator()
        self.endpoints: list[Endpoint] = []
        self._by_name: dict[str, Endpoint] = {}
        self._by_ip: dict[str, Endpoint] = {}
        self._build_pod_endpoints()
        self._build_host_endpoints()
        self.cidr_identities = {p: self.allocator.cidr_identity(p) for p in sorted(self.repository.cidr_prefixes())}
        self._node_identities: dict[str, Identity] = {}
        if config.policy_cidr_match_mode == "nodes":
            # Node IPs become selectable by CIDR: remote-node plus the node's cidr labels.
            for node in cluster.nodes:
                for ip in node.ips:
                    self._node_identities[ip] = self.allocator.allocate(
                        LabelSet([reserved_label("remote-node"), Label.cidr(ip)])
                    )
        self.index = LabelIndex((i.id, i.labels) for i in self.allocator.identities() if i.id != 0)
        self._ipcaches: dict[str | None, IPCache] = {}
        self._named_by_identity: dict[int, set[tuple[str, int, int]]] = {}
        for ep in self.endpoints:
            self._named_by_identity.setdefault(ep.identity.id, set()).update(ep.named_ports)
        self._all_named = {np for s in self._named_by_identity.values() for np in s}
        self._compiled: dict[tuple[object, ...], EndpointPolicy] = {}

    # -- endpoints -------------------------------------------------------------
    def _build_pod_endpoints(self) -> None:
        pods = [p for p in self.cluster.pods if p.is_endpoint]
        label_sets = []
        for p in pods:
            ns = self.cluster.namespace(p.namespace)
            ns_labels = namespace_labels_with_name(p.namespace, ns.labels if ns else {})
            label_sets.append(
                pod_identity_labels(p.labels, p.namespace, ns_labels, p.service_account, self.config.cluster_name)
            )
        for p, ident in zip(pods, self.allocator.allocate_all(label_sets), strict=True):
            named = tuple(
                sorted({(cp.name, cp.port, PROTO_NUMBERS.get(cp.protocol.upper(), 6)) for cp in p.named_ports if cp.name})
            )
            ep = Endpoint(p.key, p.namespace, p.node_name, ident, ident.labels, p.ips, named, False, p)
            self.endpoints.append(ep)
            self._by_name[ep.name] = ep
            for ip in p.ips:
                self._by_ip[ip] = ep

    def _build_host_endpoints(self) -> None:
        for node in self.cluster.nodes:
            labels = LabelSet([reserved_label("host"), *(Label(SOURCE_K8S, k, v) for k, v in node.labels.items())])
            ep = Endpoint(node.name, None, node.name, self.allocator.host, labels, node.ips, (), True)
            self.endpoints.append(ep)
            self._by_name[f"node/{node.name}"] = ep
            self._by_name.setdefault(node.name, ep)

    def endpoint(self, name: str) -> Endpoint | None:
        return self._by_name.get(name)

    def endpoint_by_ip(self, ip: str) -> Endpoint | None:
        ep = self._by_ip.get(ip)
        if ep is not None:
            return ep
        node = self.cluster.node_by_ip(ip)
        return self._by_name.get(f"node/{node.name}") if node else None

    @property
    def pod_endpoints(self) -> list[Endpoint]:
        return [e for e in self.endpoints if not e.is_host]

    # -- identities --------------------------------------------------------------
    def ipcache(self, node: str | None) -> IPCache:
        """The ipcache as `node` sees it (the node's own IPs are host, others remote-node)."""
        cache = self._ipcaches.get(node)
        if cache is None:
            cache = IPCache(self.allocator)
            for ep in self.endpoints:
                if not ep.is_host:
                    for ip in ep.ips:
                        cache.add_pod_ip(ip, ep.identity)
            for prefix in self.cidr_identities:
                cache.add_cidr(prefix)
            for n in self.cluster.nodes:
                for ip in n.ips:
                    cache.add_node_ip(ip, local=(n.name == node))
            for ip in self.cluster.kube_apiserver_ips:
                cache.add_kube_apiserver_ip(ip)
            if self._node_identities:
                for n in self.cluster.nodes:
                    if n.name != node:
                        for ip in n.ips:
                            cache.upsert(ip, self._node_identities[ip], 10_000)
            self._ipcaches[node] = cache
        return cache

    def identity_of_ip(self, ip: str, observer: str | None) -> Identity:
        return self.ipcache(observer).lookup(ip)

    def identity_seen_from(self, ep: Endpoint, observer: str | None) -> Identity:
        """An endpoint's identity as another node's datapath sees it."""
        if ep.is_host:
            if ep.node == observer:
                return self.ipcache(observer).host_identity
            return self.ipcache(observer).lookup(ep.ips[0]) if ep.ips else self.allocator.reserved(REMOTE_NODE)
        return ep.identity

    def identity(self, num: int) -> Identity | None:
        return self.allocator.get(num)

    def _select(self, sel: Selector, node: str | None) -> set[int]:
        ids = set(self.index.select(sel))
        # Identity 1 carries node-dependent labels (kube-apiserver when it runs locally).
        ids.discard(HOST)
        if sel.matches(self.ipcache(node).host_identity.labels):
            ids.add(HOST)
        return ids

    # -- compilation ---------------------------------------------------------------
    def policy(self, ep: Endpoint) -> EndpointPolicy:
        key = (ep.identity.id, ep.labels, ep.namespace, ep.is_host, ep.node if ep.is_host else None, ep.named_ports, ep.node)
        hit = self._compiled.get(key)
        if hit is None:
            hit = self._compile(ep)
            self._compiled[key] = hit
        return hit

    def _compile(self, ep: Endpoint) -> EndpointPolicy:
        ingress, egress = self.repository.rules_for(ep.labels, ep.namespace, ep.is_host)
        return EndpointPolicy(self._direction(ep, INGRESS, ingress), self._direction(ep, EGRESS, egress))

    def _enforcement(self, ep: Endpoint, rules: list[PolicyEntry]) -> tuple[bool, bool, str]:
        cfg = self.config
        if cfg.enable_policy == "never":
            return False, False, "enable-policy=never: nothing is enforced"
        if ep.is_host and not cfg.enable_host_firewall:
            return False, False, "host endpoint and enable-host-firewall=false: not enforced"
        if cfg.enable_policy == "always":
            return True, True, "enable-policy=always: enforced with default deny"
        if ep.labels.has_reserved("init"):
            return True, True, "init endpoint: enforced with default deny"
        if not rules:
            return False, False, "no rule selects this endpoint in this direction: not enforced (allow all)"
        if any(r.default_deny for r in rules):
            return True, True, f"{len(rules)} rule(s) select this endpoint: enforced, default deny"
        return True, False, f"{len(rules)} rule(s) select this endpoint, all with enableDefaultDeny=false: enforced, unmatched traffic allowed"

    def _direction(self, ep: Endpoint, direction: str, rules: list[PolicyEntry]) -> DirectionPolicy:
        enforced, default_deny, reason = self._enforcement(ep, rules)
        pm = PolicyMap(direction)
        if not enforced:
            pm.insert(WILDCARD_IDENTITY, ALL_PORTS, False, None)
            return DirectionPolicy(direction, rules, False, False, pm, reason)
        node = ep.node
        requires = [s for r in rules for s in r.requires]
        for r in rules:
            if r.selects_nothing:
                continue
            if r.peers is None:
                ids: set[int] = {WILDCARD_IDENTITY}
            else:
                ids = set()
                for peer in r.peers:
                    if peer.is_wildcard and not (requires and peer.kind == "endpoints"):
                        ids.add(WILDCARD_IDENTITY)
                        continue
                    sel = peer.selector
                    if requires and peer.kind == "endpoints":
                        sel = Selector(
                            (*sel.match_labels, *(m for q in requires for m in q.match_labels)),
                            (*sel.expressions, *(x for q in requires for x in q.expressions)),
                        )
                    ids |= self._select(sel, node)
            if not ids:
                continue
            if r.ports is None:
                for i in ids:
                    pm.insert(i, ALL_PORTS, r.deny, r.origin, r.auth)
                continue
            for ps in r.ports:
                if ps.named is None:
                    for i in ids:
                        for pp in ps.prefixes:
                            pm.insert(i, pp, r.deny, r.origin, r.auth)
                    continue
                name, protos = ps.named.name, ps.named.protos
                for i in ids:
                    if direction == INGRESS:
                        known: set[tuple[str, int, int]] | tuple[tuple[str, int, int], ...] = ep.named_ports
                    elif i == WILDCARD_IDENTITY:
                        known = self._all_named
                    else:
                        known = self._named_by_identity.get(i, set())
                    for n, port, proto in known:
                        if n == name and proto in protos:
                            pm.insert(i, PortPrefix(proto, port, 16), r.deny, r.origin, r.auth)
        if direction == INGRESS and not ep.is_host and self.config.localhost_always:
            # allow-localhost: the local node may always reach its pods (health probes).
            pm.insert(HOST, ALL_PORTS, False, None)
        return DirectionPolicy(direction, rules, True, default_deny, pm, reason)


def cidr_labels_of(identity: Identity) -> list[str]:
    return [str(lb) for lb in identity.labels if lb.source == SOURCE_CIDR]


__all__ = ["DirectionPolicy", "Endpoint", "EndpointPolicy", "Node", "PolicyEngine"]
