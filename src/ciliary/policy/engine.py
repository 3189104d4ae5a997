"""Resolution of the rule repository into per-endpoint policy maps.

`PolicyEngine` holds the compiled world of one cluster snapshot and one policy set:
identities (pods, reserved, CIDR), one ipcache per observing node, the selector cache
(`LabelIndex`: selectors are resolved once against all identities, so the cost grows with
rules x identities, not rules x pods) and the endpoint policies, compiled on demand and
shared by every endpoint with the same identity, namespace and named ports.

Contracts:
* Built from a cluster, a policy set and an `AgentConfig`, none of which it changes (a
  cluster named differently from the config's is copied with the config's name).
* Compiled `EndpointPolicy`s are shared by every endpoint with the same `compile_key`
  (identity, labels, namespace, host or not, named ports, and the node's view of identity
  1): read-only. Memo keys hold everything their answers depend on.
* Apart from its memos (compiled policies, per-node ipcaches, FQDN identities), the engine
  changes only on datapath events: `learn_dns` and `mark_fqdn_connection` write the FQDN
  caches, and new identities (`endpoint_from_flow`, the FQDN identity of a learned address)
  join the selector cache through `add_identity`, which drops exactly the compiled
  policies whose selectors select the newcomer, so none keeps an outdated selection.
* FQDN identities are memoised per (address, observer) against the caches' version counts
  and the time window in which the names found stay valid.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from dataclasses import dataclass

from ciliary.cache import BoundedCache
from ciliary.cluster.endpoints import ClusterIdentities, Endpoint
from ciliary.cluster.model import Cluster, Pod
from ciliary.identity.allocator import Identity
from ciliary.identity.fqdn import FQDNSelectorIndex, fqdn
from ciliary.identity.ipcache import IPCache
from ciliary.identity.labels import SOURCE_FQDN, SOURCE_K8S, Label, LabelSet
from ciliary.identity.reserved import HOST, REMOTE_NODE, reserved_label, world_label
from ciliary.identity.selector import LabelIndex, Selector
from ciliary.model import cilium as api
from ciliary.model.policy import PolicySet
from ciliary.model.validate import has_l7_rules
from ciliary.policy.config import AgentConfig
from ciliary.policy.fqdn import FQDNCache
from ciliary.policy.mapstate import WILDCARD_IDENTITY, Lookup, PolicyMap
from ciliary.policy.ports import ALL_PORTS, PROTO_NUMBERS, PortPrefix
from ciliary.policy.repository import Repository
from ciliary.policy.rules import (
    EGRESS,
    INGRESS,
    NS_LABEL,
    Peer,
    PolicyEntry,
    PortSpec,
    TranslateOptions,
    cidr_peer,
    translate_policy,
)


@dataclass
class DirectionPolicy:
    direction: str
    rules: list[PolicyEntry]
    enforced: bool
    default_deny: bool
    policy_map: PolicyMap
    reason: str  # why enforced or not, for trace
    selectors: tuple[Selector, ...] = ()  # the peer selectors the map was built from

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
        config = config or AgentConfig()
        if cluster.cluster_name != config.cluster_name:
            # io.cilium.k8s.policy.cluster comes from the agent's --cluster-name.
            cluster = dataclasses.replace(cluster, cluster_name=config.cluster_name)
        self.cluster = cluster
        self.policies = policies
        self.config = config
        topts = TranslateOptions(
            cluster_name=config.cluster_name,
            enable_non_default_deny_policies=config.enable_non_default_deny_policies,
            policy_default_local_cluster=config.policy_default_local_cluster,
            services=self._service_peers,
        )
        # With the L7 proxy disabled, Cilium refuses a policy with L7 rules as a whole (the
        # loader reports it; an engine given one anyway imports nothing of it either).
        entries = [
            e for p in policies.policies
            if config.enable_l7_proxy or not has_l7_rules(p.obj)
            for e in translate_policy(p, topts)
        ]
        self.repository = Repository(entries)
        self.identities = ClusterIdentities.build(cluster)
        self.allocator = self.identities.allocator
        self.endpoints: list[Endpoint] = [*self.identities.endpoints, *self.identities.host_endpoints]
        self._by_name: dict[str, Endpoint] = {ep.key: ep for ep in self.endpoints}
        self._by_ip: dict[str, Endpoint] = {ip: ep for ep in self.identities.endpoints for ip in ep.ips}
        self.cidr_identities = {p: self.allocator.cidr_identity(p) for p in sorted(self.repository.cidr_prefixes())}
        self._node_identities: dict[str, Identity] = {}
        if config.policy_cidr_match_mode == "nodes":
            # Node IPs become selectable by CIDR: remote-node plus the node's cidr labels.
            for node in cluster.nodes:
                for ip in node.ips:
                    extra = [reserved_label("kube-apiserver")] if ip in cluster.kube_apiserver_ips else []
                    self._node_identities[ip] = self.allocator.allocate(
                        LabelSet([reserved_label("remote-node"), Label.cidr(ip), *extra])
                    )
        # Build an ipcache first: it allocates identities (e.g. an apiserver outside the
        # cluster) that selectors must see. Per-node ones differ only in node addresses.
        self._ipcaches: dict[str | None, IPCache] = {}
        self.ipcache(None)
        self.index = LabelIndex((i.id, i.labels) for i in self.allocator.identities() if i.id != 0)
        self._named_by_identity: dict[int, set[tuple[str, int, int]]] = {}
        for ep in self.endpoints:
            self._named_by_identity.setdefault(ep.identity.id, set()).update(named_ports(ep))
        self._all_named = {np for s in self._named_by_identity.values() for np in s}
        self._compiled: dict[tuple[object, ...], EndpointPolicy] = {}
        self._ep_policies: dict[str, tuple[Endpoint, EndpointPolicy]] = {}  # endpoint key ->
        # toFQDNs: every selector of every rule, and the DNS proxy's cache per endpoint.
        fqdn_selectors = [p.fqdn for e in entries for p in (e.peers or ()) if p.fqdn is not None]
        self._fqdn_selectors = FQDNSelectorIndex(fqdn_selectors)
        self.fqdn_caches: dict[str, FQDNCache] = {}
        # ip -> node -> keys of the endpoints there whose DNS proxy learned the ip
        self._fqdn_ips: dict[str, dict[str | None, set[str]]] = {}
        self._fqdn_versions: dict[tuple[str, str | None], int] = {}  # shared: FQDNCache.versions
        # (ip, observer, no time) -> (version, valid from, valid until, FQDN identity or None)
        self._fqdn_memo: BoundedCache[tuple[str, str | None, bool], tuple[int, float, float, Identity | None]] = BoundedCache(100_000)
        self._fqdn_identities: dict[tuple[str, frozenset[str]], Identity] = {}  # (ip, selector keys) ->
        # endpoint key -> (the endpoint, what its compiled policy depends on)
        self._policy_keys: dict[str, tuple[Endpoint, tuple[object, ...]]] = {}
        # Pods that flows name but the snapshot lacks; identities from the flows' labels.
        self._flow_endpoints: dict[str, Endpoint] = {}
        self._late_indexed: set[int] = set()
        self._initial_ids = self.index.ids

    def _service_peers(self, svc: api.Service, namespace: str | None) -> list[Peer] | None:
        """toServices (layer3.rst "Services based"): a service with a selector becomes an
        endpoint selector over its pods; one without becomes CIDRs of its endpoints.
        None: not evaluated (k8sServiceSelector needs service labels)."""
        ref = svc.k8s_service
        if ref is None or not ref.service_name:
            return None
        ns = ref.namespace or namespace or "default"
        service = self.cluster.service(f"{ns}/{ref.service_name}")
        if service is None:
            return []
        if service.selector:
            sel = Selector.from_dict({"matchLabels": {f"k8s:{k}": v for k, v in service.selector.items()}})
            sel = sel.with_match_label(SOURCE_K8S, NS_LABEL, ns)
            return [Peer(sel, "services", f"{ns}/{ref.service_name}")]
        addrs = [a for e in self.cluster.endpoints if e.namespace == ns and e.service_name == ref.service_name for a in e.addresses]
        return [cidr_peer(a if "/" in a else (f"{a}/128" if ":" in a else f"{a}/32"), kind="services") for a in addrs]

    # -- endpoints -------------------------------------------------------------
    def endpoint(self, name: str) -> Endpoint | None:
        return self._by_name.get(name)

    def endpoint_by_ip(self, ip: str) -> Endpoint | None:
        ep = self._by_ip.get(ip)
        if ep is not None:
            return ep
        node = self.cluster.node_by_ip(ip)
        return self._by_name.get(f"node/{node.name}") if node else None

    def endpoint_of_pod(self, key: str) -> Endpoint | None:
        """A pod by ns/name; a host-network pod is its node's host endpoint."""
        ep = self._by_name.get(key)
        if ep is not None:
            return ep
        pod = self.cluster.pod(key)
        if pod is not None and pod.host_network and pod.node_name:
            return self._by_name.get(f"node/{pod.node_name}")
        return None

    @property
    def pod_endpoints(self) -> list[Endpoint]:
        return [e for e in self.endpoints if not e.is_host]

    def endpoint_from_flow(self, namespace: str, pod: str, labels: list[str], ip: str | None) -> Endpoint:
        """The endpoint of a pod that flows name but the snapshot lacks: its identity is the
        one of the labels the flow carries (made selectable by every policy), made once."""
        key = f"{namespace}/{pod}"
        ep = self._flow_endpoints.get(key)
        if ep is not None:
            return ep
        label_set = LabelSet.from_strings(labels or [f"k8s:{NS_LABEL}={namespace}"], default_source="k8s")
        ident = self.allocator.allocate(label_set)
        self.add_identity(ident)
        pod_labels = {lb.key: lb.value for lb in label_set if lb.source == "k8s" and not lb.key.startswith("io.")}
        ep = Endpoint(Pod(pod, namespace, pod_labels, ips=(ip,) if ip else ()), None, ident, ident.labels)
        self._flow_endpoints[key] = ep
        return ep

    # -- identities --------------------------------------------------------------
    def ipcache(self, node: str | None) -> IPCache:
        """The ipcache as `node` sees it (the node's own IPs are host, others remote-node)."""
        cache = self._ipcaches.get(node)
        if cache is None:
            cache = self.identities.ipcache(node, self.cidr_identities)
            if self._node_identities:
                for n in self.cluster.nodes:
                    if n.name != node:
                        for ip in n.ips:
                            cache.upsert(ip, self._node_identities[ip], 10_000)
                    elif n.ips:
                        # The local node: its addresses' CIDR labels join the host identity
                        # (pkg/node/manager nodeIdentityLabels).
                        cache.add_host_labels([Label.cidr(ip) for ip in n.ips])
            self._ipcaches[node] = cache
        return cache

    def identity_of_ip(self, ip: str, observer: str | None, now: float | None = None) -> Identity:
        cache = self.ipcache(observer)
        if self.fqdn_caches and ip in self._fqdn_ips:
            entry = cache.lookup_entry(ip)
            # Pods and nodes keep their identity; only world/CIDR addresses become fqdn ones.
            if entry is None or entry.identity.is_local:
                fq = self._fqdn_identity(ip, observer, now)
                if fq is not None:
                    return fq
        return cache.lookup(ip)

    # -- toFQDNs ------------------------------------------------------------------------
    def fqdn_cache(self, ep: Endpoint) -> FQDNCache:
        cache = self.fqdn_caches.get(ep.key)
        if cache is None:
            cfg = self.config
            cache = FQDNCache(
                cfg.tofqdns_min_ttl, cfg.tofqdns_endpoint_max_ip_per_hostname,
                cfg.tofqdns_idle_connection_grace_period, versions=self._fqdn_versions, node=node_name(ep),
            )
            self.fqdn_caches[ep.key] = cache
        return cache

    @property
    def has_learned_names(self) -> bool:
        """Some DNS proxy learned an answer (then addresses may be FQDN identities)."""
        return bool(self.fqdn_caches)

    def mark_fqdn_connection(self, ep: Endpoint, ip: str, now: float | None) -> None:
        """A live connection from `ep` to `ip` (conntrack): `ip`'s names stay usable
        through the idle-connection grace period."""
        cache = self.fqdn_caches.get(ep.key)
        if cache is not None:
            cache.mark_connection(ip, now)

    def learn_dns(self, ep: Endpoint, qname: str, ips: list[str], ttl: int, now: float | None) -> None:
        """An answer the DNS proxy let through for `ep` (only those feed the cache)."""
        self.fqdn_cache(ep).update(fqdn(qname), ips, ttl, now)
        for ip in ips:
            self._fqdn_ips.setdefault(ip, {}).setdefault(node_name(ep), set()).add(ep.key)

    def _fqdn_identity(self, ip: str, observer: str | None, now: float | None) -> Identity | None:
        # Memoised per (ip, observer) while no cache learns or marks the ip and time stays
        # inside the window in which every name found stays valid.
        mkey = (ip, observer, now is None)
        version = self._fqdn_versions.get((ip, observer), 0)
        m = self._fqdn_memo.get(mkey)
        if m is not None and m[0] == version and (now is None or m[1] <= now < m[2]):
            return m[3]
        by_node = self._fqdn_ips.get(ip, {})
        learners = [k for ks in by_node.values() for k in ks] if observer is None else by_node.get(observer, ())
        names: set[str] = set()
        until = math.inf
        for key in learners:
            found, valid_until = self.fqdn_caches[key].names_until(ip, now)
            names.update(found)
            until = min(until, valid_until)
        keys = {k for name in names for k in self._fqdn_selectors.matching(name)}
        if not keys:
            self._fqdn_memo.put(mkey, (version, -math.inf if now is None else now, until, None))
            return None
        memo = (ip, frozenset(keys))
        ident = self._fqdn_identities.get(memo)
        if ident is None:
            net = ipaddress.ip_network(ip)
            labels = LabelSet(
                [*(Label(SOURCE_FQDN, k, "") for k in keys), Label.cidr(net), world_label(net.version, self.allocator.dual_stack)]
            )
            ident = self._fqdn_identities[memo] = self.allocator.allocate(labels)
            self.add_identity(ident)
        self._fqdn_memo.put(mkey, (version, -math.inf if now is None else now, until, ident))
        return ident

    def add_identity(self, ident: Identity) -> None:
        """Make a newly allocated identity selectable (FQDN IPs, pods only flows name)."""
        if ident.id not in self._late_indexed and ident.id not in self._initial_ids:
            self._late_indexed.add(ident.id)
            # Every selector a compiled policy used went through the index's cache, so the
            # selections the newcomer joins are those policies' changes. Those policies are
            # compiled again (their maps hold the old identity sets); the others are
            # unaffected, as in Cilium's selector cache, where only the matching selectors
            # notify their users.
            grown = set(self.index.add(ident.id, ident.labels))
            stale = [
                key for key, pol in self._compiled.items()
                if not grown.isdisjoint(pol.ingress.selectors) or not grown.isdisjoint(pol.egress.selectors)
            ]
            for key in stale:
                del self._compiled[key]
            if stale:
                self._ep_policies.clear()

    def identity_seen_from(self, ep: Endpoint, observer: str | None) -> Identity:
        """An endpoint's identity as another node's datapath sees it."""
        if ep.is_host:
            if node_name(ep) == observer:
                return self.ipcache(observer).host_identity
            return self.ipcache(observer).lookup(ep.ips[0]) if ep.ips else self.allocator.reserved(REMOTE_NODE)
        return ep.identity

    def identity(self, num: int) -> Identity | None:
        return self.allocator.get(num)

    def selected(self, sel: Selector, node: str | None = None) -> frozenset[int]:
        """The identities a peer selector selects, as seen from `node` (the selector cache)."""
        return self._select(sel, node)

    def _select(self, sel: Selector, node: str | None) -> frozenset[int]:
        ids = self.index.select(sel)
        # Identity 1 carries node-dependent labels (kube-apiserver when it runs locally).
        host = sel.matches(self.ipcache(node).host_identity.labels)
        if host == (HOST in ids):
            return ids
        return ids | {HOST} if host else ids - {HOST}

    # -- compilation ---------------------------------------------------------------
    def compile_key(self, ep: Endpoint) -> tuple[object, ...]:
        """What an endpoint's compiled policy depends on (memoised per endpoint)."""
        hit = self._policy_keys.get(ep.key)
        if hit is not None and hit[0] is ep:
            return hit[1]
        key = (*policy_key(ep), self.ipcache(node_name(ep)).host_identity.labels)
        self._policy_keys[ep.key] = (ep, key)
        return key

    def policy(self, ep: Endpoint) -> EndpointPolicy:
        # Per endpoint first: hashing the compile key is the costlier lookup. (Keys are
        # unique per engine; the endpoint itself is compared too, in case one was rebuilt.)
        mine = self._ep_policies.get(ep.key)
        if mine is not None and mine[0] is ep:
            return mine[1]
        key = self.compile_key(ep)
        hit = self._compiled.get(key)
        if hit is None:
            hit = self._compile(ep)
            self._compiled[key] = hit
        self._ep_policies[ep.key] = (ep, hit)
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

    def _insert_named(
        self, pm: PolicyMap, ep: Endpoint, direction: str, ids: frozenset[int] | None,
        ps: PortSpec, r: PolicyEntry, l7: api.L7Rules | None, peer_text: str,
    ) -> None:
        """Named ports: ingress resolves against the subject's own container ports; egress
        against each selected peer identity's (so one name may give several numbers)."""
        assert ps.named is not None
        name, protos = ps.named.name, ps.named.protos
        if direction == INGRESS or ids is None:
            known = named_ports(ep) if direction == INGRESS else tuple(self._all_named)
            for n, port, proto in known:
                if n == name and proto in protos:
                    pm.insert_many(ids, PortPrefix(proto, port, 16), r.deny, r.origin, r.auth, l7, peer_text)
            return
        by_port: dict[tuple[int, int], set[int]] = {}
        for i in ids:
            for n, port, proto in self._named_by_identity.get(i, ()):
                if n == name and proto in protos:
                    by_port.setdefault((proto, port), set()).add(i)
        for (proto, port), idents in by_port.items():
            pm.insert_many(frozenset(idents), PortPrefix(proto, port, 16), r.deny, r.origin, r.auth, l7, peer_text)

    def _l7_enabled(self, ep: Endpoint) -> bool:
        return self.config.enable_l7_proxy

    def _direction(self, ep: Endpoint, direction: str, rules: list[PolicyEntry]) -> DirectionPolicy:
        enforced, default_deny, reason = self._enforcement(ep, rules)
        pm = PolicyMap(direction)
        if not enforced:
            pm.insert(WILDCARD_IDENTITY, ALL_PORTS, False, None)
            return DirectionPolicy(direction, rules, False, False, pm, reason)
        node = node_name(ep)
        requires = [s for r in rules for s in r.requires]
        used: list[Selector] = []
        for r in rules:
            if r.selects_nothing:
                continue
            wildcard = r.peers is None
            sets: list[frozenset[int]] = []
            for peer in r.peers or ():
                if peer.is_wildcard and not (requires and peer.kind == "endpoints"):
                    wildcard = True
                    continue
                sel = peer.selector
                if requires and peer.kind == "endpoints":
                    sel = Selector(
                        (*sel.match_labels, *(m for q in requires for m in q.match_labels)),
                        (*sel.expressions, *(x for q in requires for x in q.expressions)),
                    )
                used.append(sel)
                sets.append(self._select(sel, node))
            ids: frozenset[int] | None
            if wildcard:
                ids = None
            elif len(sets) == 1:
                ids = sets[0]
            else:
                ids = frozenset().union(*sets)
            if ids is not None and not ids:
                continue
            peer_text = "any" if r.peers is None else ", ".join(p.text for p in r.peers)
            l7_on = self._l7_enabled(ep)
            for ps in r.ports if r.ports is not None else (None,):
                l7 = ps.l7 if (ps is not None and l7_on) else None
                if ps is None:
                    pm.insert_many(ids, ALL_PORTS, r.deny, r.origin, r.auth, None, peer_text)
                elif ps.named is None:
                    for pp in ps.prefixes:
                        pm.insert_many(ids, pp, r.deny, r.origin, r.auth, l7, peer_text)
                else:
                    self._insert_named(pm, ep, direction, ids, ps, r, l7, peer_text)
        if direction == INGRESS and not ep.is_host and self.config.localhost_always:
            # allow-localhost: the local node may always reach its pods (health probes).
            pm.insert(HOST, ALL_PORTS, False, None)
        return DirectionPolicy(direction, rules, True, default_deny, pm, reason, tuple(dict.fromkeys(used)))


def node_name(ep: Endpoint) -> str | None:
    if ep.node is not None:
        return ep.node.name
    return ep.pod.node_name if ep.pod is not None else None


def named_ports(ep: Endpoint) -> tuple[tuple[str, int, int], ...]:
    """(name, port, protocol number) of the endpoint's named container ports."""
    return tuple(
        sorted({(cp.name, cp.port, PROTO_NUMBERS.get(cp.protocol.upper(), 6)) for cp in ep.named_ports if cp.name})
    )


def policy_key(ep: Endpoint) -> tuple[object, ...]:
    """Endpoints with equal keys get the same compiled policy. The node matters only through
    identity 1's labels on it (kube-apiserver when the apiserver runs there), so the key
    holds the node's view of the host identity rather than its name."""
    return (ep.identity.id, ep.labels, ep.namespace, ep.is_host, named_ports(ep))


__all__ = ["DirectionPolicy", "Endpoint", "EndpointPolicy", "PolicyEngine", "node_name", "policy_key"]
