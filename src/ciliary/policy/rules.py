"""Policy objects -> internal rules ("policy entries"), one per ingress/egress element.

Follows pkg/k8s/apis/cilium.io/utils/utils.go (namespace injection), pkg/policy/utils
(RulesToPolicyEntries), pkg/k8s/network_policy.go (NetworkPolicy translation) and
pkg/policy/api/rule_validation.go `Sanitize` (default-deny flag).

Contracts:
* Translation only reads the policy; its result depends on the policy and the
  `TranslateOptions` (whose `services` callback reads the cluster's services).
* `Peer`, `PortSpec`, `RuleOrigin` and `PolicyEntry` are frozen and shared by the
  repository, every compiled policy map and the verdicts that name them. `PortSpec.l7` and
  `Peer.fqdn` are the policy's own model objects, not copies: read-only.
* A selector Cilium cannot parse becomes one that selects nothing, as in Cilium, not an
  error (validation reports such selectors when policies are loaded).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ciliary.identity.entities import entity_selectors
from ciliary.identity.fqdn import fqdn_selector_key
from ciliary.identity.labels import (
    SOURCE_ANY,
    SOURCE_CIDR,
    SOURCE_FQDN,
    SOURCE_K8S,
    SOURCE_RESERVED,
)
from ciliary.identity.selector import (
    OP_DOES_NOT_EXIST,
    OP_EXISTS,
    OP_IN,
    Requirement,
    Selector,
    SelectorError,
)
from ciliary.model import cilium as api
from ciliary.model.errors import Path, format_path
from ciliary.model.k8s import NetworkPolicy, NetworkPolicyPeer
from ciliary.model.meta import LabelSelector
from ciliary.model.policy import KIND_CCNP, KIND_KNP, LoadedPolicy, PolicyRef
from ciliary.policy.ports import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PortPrefix,
    icmp_type_number,
    port_prefixes,
    protocols_of,
)

NS_LABEL = "io.kubernetes.pod.namespace"
NS_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."
CLUSTER_LABEL = "io.cilium.k8s.policy.cluster"

INGRESS = "ingress"
EGRESS = "egress"

# An invalid selector never matches (pkg/policy/types/selector.go); keep one of these for it.
_NOTHING = Selector().with_requirements(Requirement.make("reserved:none", OP_EXISTS))


@dataclass(frozen=True)
class Peer:
    """One peer selector of a rule: a label selector over identity labels, and what it was."""

    selector: Selector
    kind: str  # endpoints | entities | cidr | nodes | services | fqdn | wildcard
    text: str
    cidr: str | None = None  # the prefix for CIDR peers (the ipcache needs it)
    excepts: tuple[str, ...] = ()
    fqdn: api.FQDNSelector | None = None  # toFQDNs peers: selects identities labelled fqdn:<key>

    @property
    def is_wildcard(self) -> bool:
        return self.selector.is_empty


@dataclass(frozen=True)
class NamedPort:
    name: str
    protos: tuple[int, ...]


@dataclass(frozen=True)
class PortSpec:
    """One `ports[]` entry: numeric prefixes, or a named port resolved per endpoint."""

    prefixes: tuple[PortPrefix, ...] = ()
    named: NamedPort | None = None
    l7: api.L7Rules | None = None  # L7 rules for this port
    text: str = ""


@dataclass(frozen=True)
class RuleOrigin:
    ref: PolicyRef
    path: Path  # e.g. ("spec", "ingress", 0)
    line: int | None
    file: str
    log: str | None = None

    @property
    def field(self) -> str:
        return format_path(self.path)

    @cached_property
    def text(self) -> str:
        # Proxies name the rule of every request they judge: formatted once per rule.
        return f"{self.ref} {self.field}"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class PolicyEntry:
    """One rule: subject, direction, verdict, peers, ports (cilium: types.PolicyEntry)."""

    origin: RuleOrigin
    namespace: str | None  # CNP/KNP: subjects only in this namespace; None = clusterwide
    subject: Selector
    host: bool  # from nodeSelector: applies only to host endpoints
    direction: str
    deny: bool
    default_deny: bool
    peers: tuple[Peer, ...] | None  # None: wildcard peer (any identity)
    ports: tuple[PortSpec, ...] | None  # None: L3 only, every protocol and port
    auth: str | None = None
    requires: tuple[Selector, ...] = ()
    not_evaluated: tuple[str, ...] = ()

    @property
    def selects_nothing(self) -> bool:
        return self.peers is not None and not self.peers


@dataclass
class TranslateOptions:
    cluster_name: str = "default"
    enable_non_default_deny_policies: bool = True
    policy_default_local_cluster: bool = True
    services: Any = None  # cluster services for toServices: callable(ns, name|selector) -> peers


def _selector(d: dict[str, Any]) -> Selector:
    try:
        return Selector.from_dict(d)
    except SelectorError:
        return _NOTHING


def _label_selector(sel: LabelSelector | None) -> Selector:
    return _selector(sel.as_dict()) if sel is not None else Selector()


def _k8s_keys(sel: LabelSelector | None, rewrite_prefix: str = "") -> Selector:
    """NetworkPolicy selector: every key gets the `k8s:` source (and an optional prefix)."""
    if sel is None:
        return Selector()
    d = sel.as_dict()
    out: dict[str, Any] = {}
    if "matchLabels" in d:
        out["matchLabels"] = {f"k8s:{rewrite_prefix}{k}": v for k, v in d["matchLabels"].items()}
    if "matchExpressions" in d:
        out["matchExpressions"] = [
            {**e, "key": f"k8s:{rewrite_prefix}{e['key']}"} for e in d["matchExpressions"]
        ]
    return _selector(out)


def _ns_req(namespace: str) -> Requirement:
    return Requirement.make(NS_LABEL, OP_IN, (namespace,), source=SOURCE_K8S)


def _subject(sel: Selector, namespace: str | None) -> Selector:
    if namespace is None:
        return sel
    # The namespace match replaces any user-supplied one (utils.go getEndpointSelector).
    return sel.without_key(SOURCE_K8S, NS_LABEL).without_key(SOURCE_ANY, NS_LABEL).with_match_label(
        SOURCE_K8S, NS_LABEL, namespace
    )


def _peer_endpoint_selector(sel: Selector, namespace: str | None, subject_init: bool) -> Selector:
    """Namespace injection for fromEndpoints/toEndpoints (semantics §1.4.3)."""
    if sel.has_source(SOURCE_RESERVED):
        return sel
    if sel.has_key(SOURCE_K8S, NS_LABEL) or sel.has_key(SOURCE_ANY, NS_LABEL):
        return sel
    if namespace is None:
        if subject_init:
            return sel
        return sel.with_requirements(Requirement.make(NS_LABEL, OP_EXISTS, source=SOURCE_K8S))
    if sel.has_key_prefix(SOURCE_K8S, NS_LABELS_PREFIX) or sel.has_key_prefix(SOURCE_ANY, NS_LABELS_PREFIX):
        return sel
    return sel.with_requirements(_ns_req(namespace))


def cidr_peer(cidr: str, excepts: tuple[str, ...] = (), kind: str = "cidr") -> Peer:
    net = ipaddress.ip_network(cidr, strict=False)
    if net.prefixlen == 0:
        # 0.0.0.0/0 is the world of that family (layer3.rst).
        base = Selector().with_requirements(
            Requirement.make("world", OP_EXISTS, source=SOURCE_RESERVED)
        )
    else:
        base = Selector().with_requirements(Requirement.make(str(net), OP_EXISTS, source=SOURCE_CIDR))
    reqs = [
        Requirement.make(str(ipaddress.ip_network(e, strict=False)), OP_DOES_NOT_EXIST, source=SOURCE_CIDR)
        for e in excepts
    ]
    sel = base.with_requirements(*reqs) if reqs else base
    text = str(net) + (f" except {', '.join(excepts)}" if excepts else "")
    return Peer(sel, kind, text, str(net), tuple(str(ipaddress.ip_network(e, strict=False)) for e in excepts))


def _default_deny(rule: api.Rule, direction: str, opts: TranslateOptions) -> bool:
    if not opts.enable_non_default_deny_policies:
        return True
    cfg = rule.enable_default_deny
    explicit = None if cfg is None else (cfg.ingress if direction == INGRESS else cfg.egress)
    if explicit is not None:
        return explicit
    if direction == INGRESS:
        return bool(rule.ingress) or bool(rule.ingress_deny)
    return bool(rule.egress) or bool(rule.egress_deny)


def _ports(
    to_ports: list[api.PortRule] | list[api.PortDenyRule] | None,
    icmps: list[api.ICMPRule] | None,
) -> tuple[PortSpec, ...] | None:
    if to_ports is None and icmps is None:
        return None
    out: list[PortSpec] = []
    for pr in to_ports or []:
        l7 = _l7_or_none(getattr(pr, "rules", None))
        for pp in pr.ports or []:
            protos = protocols_of(pp.protocol)
            text = f"{pp.port}{'-' + str(pp.end_port) if pp.end_port else ''}/{pp.protocol or 'ANY'}"
            if pp.port.isdigit():
                start = int(pp.port)
                prefixes = tuple(p for proto in protos for p in port_prefixes(proto, start, pp.end_port))
                out.append(PortSpec(prefixes, None, l7, text))
            else:
                out.append(PortSpec((), NamedPort(pp.port.lower(), protos), l7, text))
    for icmp in icmps or []:
        for f in icmp.fields or []:
            proto = PROTO_ICMPV6 if f.family == "IPv6" else PROTO_ICMP
            num = icmp_type_number(f.family, f.type)
            # The type sits in the port slot; type 0 is port 0, i.e. every type (Open question 8).
            prefix = PortPrefix(proto, 0, 0) if num == 0 else PortPrefix(proto, num, 16)
            out.append(PortSpec((prefix,), None, None, f"icmp type {f.type}/{f.family or 'IPv4'}"))
    return tuple(out)


def _l7_or_none(rules: api.L7Rules | None) -> api.L7Rules | None:
    """L7 rules that cause a redirect; `rules: {}` or only empty lists do not."""
    if rules is None:
        return None
    if rules.http is not None or rules.kafka is not None or rules.dns is not None or rules.l7proto:
        return rules
    return None


def _entity_peers(names: list[str], opts: TranslateOptions) -> list[Peer]:
    out: list[Peer] = []
    for name in names:
        for sel in entity_selectors(name, opts.cluster_name):
            out.append(Peer(sel, "entities", name))
    return out


def translate_policy(policy: LoadedPolicy, opts: TranslateOptions | None = None) -> list[PolicyEntry]:
    opts = opts or TranslateOptions()
    if policy.kind == KIND_KNP:
        assert isinstance(policy.obj, NetworkPolicy)
        return _translate_knp(policy, policy.obj, opts)
    assert isinstance(policy.obj, (api.CiliumNetworkPolicy, api.CiliumClusterwideNetworkPolicy))
    namespace = None if policy.kind == KIND_CCNP else policy.namespace
    entries: list[PolicyEntry] = []
    for rpath, rule in policy.obj.rules():
        entries.extend(_translate_rule(policy, rpath, rule, namespace, opts))
    return entries


def _origin(policy: LoadedPolicy, path: Path, log: str | None = None) -> RuleOrigin:
    return RuleOrigin(policy.ref, path, policy.line_of(path), policy.file, log)


def _translate_rule(
    policy: LoadedPolicy, rpath: Path, rule: api.Rule, namespace: str | None, opts: TranslateOptions
) -> list[PolicyEntry]:
    host = rule.node_selector is not None
    raw_subject = _label_selector(rule.node_selector if host else rule.endpoint_selector)
    subject = raw_subject if host else _subject(raw_subject, namespace)
    subject_init = raw_subject.has_key(SOURCE_RESERVED, "init") or raw_subject.has_key(SOURCE_ANY, "init")
    log = rule.log.value if rule.log else None
    out: list[PolicyEntry] = []
    sections: list[tuple[str, str, bool, list[Any] | None]] = [
        ("ingress", INGRESS, False, rule.ingress),
        ("ingressDeny", INGRESS, True, rule.ingress_deny),
        ("egress", EGRESS, False, rule.egress),
        ("egressDeny", EGRESS, True, rule.egress_deny),
    ]
    for key, direction, deny, elements in sections:
        dd = _default_deny(rule, direction, opts)
        for i, el in enumerate(elements or []):
            path = (*rpath, key, i)
            peers, requires, not_eval = _element_peers(el, direction, namespace, subject_init, opts)
            ports = _ports(el.to_ports, el.icmps)
            auth = el.authentication.mode if getattr(el, "authentication", None) else None
            for pr in el.to_ports or []:
                for attr, name in (("server_names", "serverNames"), ("terminating_tls", "terminatingTLS"),
                                   ("originating_tls", "originatingTLS"), ("listener", "listener")):
                    if getattr(pr, attr, None):
                        not_eval.append(name)
            out.append(
                PolicyEntry(
                    origin=_origin(policy, path, log),
                    namespace=namespace,
                    subject=subject,
                    host=host,
                    direction=direction,
                    deny=deny,
                    default_deny=dd,
                    peers=peers,
                    ports=ports,
                    auth=auth,
                    requires=requires,
                    not_evaluated=tuple(dict.fromkeys(not_eval)),
                )
            )
    return out


def _element_peers(
    el: Any, direction: str, namespace: str | None, subject_init: bool, opts: TranslateOptions
) -> tuple[tuple[Peer, ...] | None, tuple[Selector, ...], list[str]]:
    pre = "from" if direction == INGRESS else "to"
    endpoints = getattr(el, f"{pre}_endpoints")
    cidrs = getattr(el, f"{pre}_cidr")
    cidr_set = getattr(el, f"{pre}_cidr_set")
    entities = getattr(el, f"{pre}_entities")
    nodes = getattr(el, f"{pre}_nodes")
    groups = getattr(el, f"{pre}_groups")
    requires = getattr(el, f"{pre}_requires")
    services = getattr(el, "to_services", None)
    fqdns = getattr(el, "to_fqdns", None)
    not_eval: list[str] = []
    fields = [endpoints, cidrs, cidr_set, entities, nodes, groups, services, fqdns]
    req_sels = tuple(_label_selector(s) for s in requires or [])
    if all(f is None for f in fields):
        has_ports = getattr(el, "to_ports", None) is not None or getattr(el, "icmps", None) is not None
        # `{}` selects nothing; `{toPorts: ...}` alone is any peer (semantics §3.3).
        return (None if has_ports else ()), req_sels, not_eval
    peers: list[Peer] = []
    for sel in endpoints or []:
        s = _local_cluster(_peer_endpoint_selector(_label_selector(sel), namespace, subject_init), opts)
        peers.append(Peer(s, "endpoints", str(s)))
    for c in cidrs or []:
        peers.append(cidr_peer(c))
    for cs in cidr_set or []:
        if cs.cidr:
            peers.append(cidr_peer(cs.cidr, tuple(cs.except_ or ())))
        else:
            not_eval.append(f"{pre}CIDRSet.cidrGroupRef")
    peers.extend(_entity_peers(entities or [], opts))
    for sel in nodes or []:
        s = _label_selector(sel).with_requirements(
            Requirement.make("remote-node", OP_EXISTS, source=SOURCE_RESERVED)
        )
        peers.append(Peer(s, "nodes", str(s)))
    if groups:
        not_eval.append(f"{pre}Groups")
    for svc in services or []:
        resolved = opts.services(svc, namespace) if opts.services is not None else None
        if resolved is None:
            not_eval.append("toServices")
        else:
            peers.extend(resolved)
    for fq in fqdns or []:
        # IPs the DNS proxy learned for names this selector matches get the label fqdn:<key>.
        key = fqdn_selector_key(fq)
        sel = Selector().with_requirements(Requirement.make(key, OP_EXISTS, source=SOURCE_FQDN))
        peers.append(Peer(sel, "fqdn", key, fqdn=fq))
    return tuple(peers), req_sels, not_eval


# --- Kubernetes NetworkPolicy (pkg/k8s/network_policy.go) -------------------------------


def _local_cluster(sel: Selector, opts: TranslateOptions) -> Selector:
    """policy-default-local-cluster (default on since Cilium 1.19): endpoint peers select only
    the local cluster unless they name a cluster (utils.go addClusterFilterByDefault)."""
    if not opts.policy_default_local_cluster or sel.has_source(SOURCE_RESERVED):
        return sel
    if sel.has_key(SOURCE_K8S, CLUSTER_LABEL) or sel.has_key(SOURCE_ANY, CLUSTER_LABEL):
        return sel
    return sel.with_requirements(Requirement.make(CLUSTER_LABEL, OP_IN, (opts.cluster_name,), source=SOURCE_K8S))


def _knp_peer(peer: NetworkPolicyPeer, namespace: str, opts: TranslateOptions) -> list[Peer]:
    out: list[Peer] = []
    if peer.pod_selector is not None or peer.namespace_selector is not None:
        sel = _local_cluster(_knp_peer_selector(peer, namespace), opts)
        out.append(Peer(sel, "endpoints", str(sel)))
    if peer.ip_block is not None:
        out.append(cidr_peer(peer.ip_block.cidr, tuple(peer.ip_block.except_ or ()), "ipBlock"))
    return out


def _knp_peer_selector(peer: NetworkPolicyPeer, namespace: str) -> Selector:
    if peer.namespace_selector is not None:
        ns_sel = _k8s_keys(peer.namespace_selector, NS_LABELS_PREFIX)
        if peer.namespace_selector.as_dict() == {}:
            ns_sel = Selector().with_requirements(Requirement.make(NS_LABEL, OP_EXISTS, source=SOURCE_K8S))
        pod_sel = _k8s_keys(peer.pod_selector)
        return Selector(
            (*ns_sel.match_labels, *pod_sel.match_labels), (*ns_sel.expressions, *pod_sel.expressions)
        )
    return _k8s_keys(peer.pod_selector).with_requirements(_ns_req(namespace))


def _knp_ports(ports: list[Any] | None) -> tuple[PortSpec, ...] | None:
    if not ports:
        return None
    out: list[PortSpec] = []
    for p in ports:
        protos = protocols_of(p.protocol or "TCP")
        text = f"{p.port if p.port is not None else 0}{'-' + str(p.end_port) if p.end_port else ''}/{p.protocol or 'TCP'}"
        if p.port is None or isinstance(p.port, int):
            start = p.port or 0
            out.append(PortSpec(tuple(x for pr in protos for x in port_prefixes(pr, start, p.end_port)), None, None, text))
        elif p.port.isdigit():
            out.append(PortSpec(tuple(x for pr in protos for x in port_prefixes(pr, int(p.port), p.end_port)), None, None, text))
        else:
            out.append(PortSpec((), NamedPort(p.port.lower(), protos), None, text))
    return tuple(out)


def _translate_knp(policy: LoadedPolicy, obj: NetworkPolicy, opts: TranslateOptions) -> list[PolicyEntry]:
    ns = policy.namespace
    subject = _k8s_keys(obj.spec.pod_selector).with_match_label(SOURCE_K8S, NS_LABEL, ns)
    types = obj.spec.policy_types
    out: list[PolicyEntry] = []

    def add(path: Path, direction: str, peers: tuple[Peer, ...] | None, ports: tuple[PortSpec, ...] | None) -> None:
        out.append(PolicyEntry(_origin(policy, path), ns, subject, False, direction, False, True, peers, ports))

    # Every ingress/egress element is translated whatever policyTypes says; policyTypes only
    # adds the empty default-deny entries (pkg/k8s/network_policy.go ParseNetworkPolicy).
    n_in = n_eg = 0
    for i, rule in enumerate(obj.spec.ingress or []):
        ports = _knp_ports(rule.ports)
        if not rule.from_:
            add(("spec", "ingress", i), INGRESS, None, ports)
            n_in += 1
        for j, peer in enumerate(rule.from_ or []):
            add(("spec", "ingress", i, "from", j), INGRESS, tuple(_knp_peer(peer, ns, opts)), ports)
            n_in += 1
    for i, erule in enumerate(obj.spec.egress or []):
        ports = _knp_ports(erule.ports)
        if not erule.to:
            add(("spec", "egress", i), EGRESS, None, ports)
            n_eg += 1
        for j, peer in enumerate(erule.to or []):
            add(("spec", "egress", i, "to", j), EGRESS, tuple(_knp_peer(peer, ns, opts)), ports)
            n_eg += 1
    if n_in == 0 and (types is None or "Ingress" in types or "Egress" not in types):
        add(("spec",), INGRESS, (), None)
    if n_eg == 0 and types is not None and "Egress" in types:
        add(("spec",), EGRESS, (), None)
    return out
