"""`WorkloadRules` as CiliumNetworkPolicy objects: one per workload, least privilege.

Rules:
* Peers with the same ports (and the same L7 rules on them) share a rule; every rule
  carries, as a comment, the flows and the time range behind it. Everything is sorted, so
  the same observations always give the same bytes.
* A pod peer is its workload's labels, with the namespace label only when it is in
  another namespace. Ports are `port`/`protocol` pairs; ICMP goes into `icmps`.
* DNS pairing: a workload with `toFQDNs` peers (and, with `--l7 dns`, every workload that
  queried names) gets its egress to the cluster DNS on 53/UDP and 53/TCP with a `dns` rule
  that allows exactly the names it queried and the names behind its `toFQDNs` (without it
  the DNS proxy never sees the answers and `toFQDNs` never matches: the seed's pitfall 1).
* L7 rules only when asked (`--l7 http|kafka|dns|all`): HTTP method and path patterns
  (`paths.collapse`), Kafka roles and topics.
* With default deny (the default), a direction with no observed traffic is `[{}]`: it
  allows nothing. Without it (`enableDefaultDeny: false`, the seed's stage 2), the policy
  blocks nothing by itself.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ciliary.cluster.workloads import Workload
from ciliary.l7.paths import collapse
from ciliary.model.emit import Commented
from ciliary.policy.ports import PROTO_ICMP, PROTO_ICMPV6, PROTO_NAMES, PROTO_TCP, PROTO_UDP
from ciliary.workflows.generate.names import cidrs, fqdn_selectors
from ciliary.workflows.generate.rules import (
    CIDR,
    ENDPOINTS,
    ENTITIES,
    FQDN,
    Evidence,
    PeerKey,
    Peers,
    PortKey,
    PortUse,
    WorkloadRules,
)

JSON = dict[str, Any]
NS_LABEL = "k8s:io.kubernetes.pod.namespace"
MANAGED_BY = {"app.kubernetes.io/managed-by": "ciliary"}
# The cluster DNS when the snapshot names none: kube-dns's pods in kube-system.
DEFAULT_DNS = Workload("kube-system", (("k8s-app", "kube-dns"),), "kube-dns")
_DNS_PORTS: tuple[PortKey, PortKey] = ((PROTO_UDP, 53), (PROTO_TCP, 53))


@dataclass(frozen=True)
class Options:
    l7: frozenset[str] = frozenset()  # http, kafka, dns
    fqdn_threshold: int = 0
    cidr_aggregate: bool = False
    default_deny: bool = True
    dns_server: Workload = DEFAULT_DNS


@dataclass
class _Rule:
    """Peers of one kind that share ports and L7 rules: one rule of the policy."""

    kind: str
    peers: list[PeerKey] = field(default_factory=list)
    ports: tuple[Any, ...] = ()  # the rendered toPorts/icmps signature
    evidence: Evidence = field(default_factory=Evidence)


def _signature(ports: dict[PortKey, PortUse], opts: Options) -> tuple[Any, ...]:
    """Ports and the L7 rules on them, as hashable data (peers with equal ones share a rule)."""
    out = []
    for key in sorted(ports):
        out.append((key, _l7(ports[key], opts)))
    return tuple(out)


def _l7(use: PortUse, opts: Options) -> tuple[tuple[str, tuple[tuple[tuple[str, str], ...], ...]], ...]:
    rules: list[tuple[str, tuple[tuple[tuple[str, str], ...], ...]]] = []
    if use.http and "http" in opts.l7:
        patterns = collapse(path for _, path in use.http)
        http = sorted({(m, patterns[p]) for m, p in use.http})
        rules.append(("http", tuple((("method", m), ("path", p)) for m, p in http)))
    if use.kafka and "kafka" in opts.l7:
        items = []
        for what, topic in sorted(use.kafka):
            kind, _, value = what.partition(":")
            items.append(((kind, value), ("topic", topic)) if topic else ((kind, value),))
        rules.append(("kafka", tuple(items)))
    if use.dns:
        rules.append(("dns", tuple(((k, v),) for k, v in fqdn_selectors(use.dns, opts.fqdn_threshold))))
    return tuple(rules)


def _to_ports(signature: tuple[Any, ...]) -> tuple[list[JSON], list[JSON]]:
    """(toPorts, icmps) of a signature: ports without L7 rules share one entry."""
    plain: list[JSON] = []
    with_l7: list[JSON] = []
    icmps: list[JSON] = []
    by_rules: dict[tuple[Any, ...], list[JSON]] = {}
    for (proto, port), l7 in signature:
        if proto in (PROTO_ICMP, PROTO_ICMPV6):
            icmps.append({"type": port, "family": "IPv6" if proto == PROTO_ICMPV6 else "IPv4"})
            continue
        entry = {"port": str(port), "protocol": PROTO_NAMES.get(proto, str(proto))}
        if l7:
            by_rules.setdefault(l7, []).append(entry)
        else:
            plain.append(entry)
    for l7, entries in by_rules.items():
        rules = {kind: [dict(item) for item in items] for kind, items in l7}
        with_l7.append({"ports": entries, "rules": rules})
    to_ports = ([{"ports": plain}] if plain else []) + with_l7
    return to_ports, ([{"fields": icmps}] if icmps else [])


def _group(peers: Peers, kinds: Iterable[str], opts: Options) -> list[_Rule]:
    rules: dict[tuple[str, tuple[Any, ...]], _Rule] = {}
    for peer in sorted(peers, key=_peer_order):
        if peer[0] not in kinds:
            continue
        ports = peers[peer]
        sig = _signature(ports, opts)
        icmp = tuple(x for x in sig if x[0][0] in (PROTO_ICMP, PROTO_ICMPV6))
        other = tuple(x for x in sig if x[0][0] not in (PROTO_ICMP, PROTO_ICMPV6))
        for part in (other, icmp):  # ICMP in a rule of its own
            if not part:
                continue
            rule = rules.setdefault((peer[0], part), _Rule(peer[0], ports=part))
            rule.peers.append(peer)
            for key, use in ports.items():
                if (key, _l7(use, opts)) in part:
                    rule.evidence.merge(use.evidence)
    return sorted(rules.values(), key=lambda r: (_KIND_ORDER.index(r.kind), _peer_order(r.peers[0]), r.ports))


_KIND_ORDER = (ENDPOINTS, ENTITIES, FQDN, CIDR)


def _peer_order(peer: PeerKey) -> tuple[Any, ...]:
    kind, text, w = peer
    return (_KIND_ORDER.index(kind), text, w.selector if w is not None else ())


def _selector(w: Workload, subject_ns: str) -> JSON:
    labels: dict[str, str] = {}
    if w.namespace != subject_ns:
        labels[NS_LABEL] = w.namespace
    labels.update(w.match_labels)
    return {"matchLabels": labels}


def _peer_field(rule: _Rule, direction: str, subject_ns: str, opts: Options) -> JSON:
    to = direction == "egress"
    if rule.kind == ENDPOINTS:
        return {"toEndpoints" if to else "fromEndpoints": [_selector(w, subject_ns) for _, _, w in rule.peers if w is not None]}
    if rule.kind == ENTITIES:
        return {"toEntities" if to else "fromEntities": [text for _, text, _ in rule.peers]}
    if rule.kind == FQDN:
        return {"toFQDNs": [{k: v} for k, v in fqdn_selectors((t for _, t, _ in rule.peers), opts.fqdn_threshold)]}
    return {"toCIDR" if to else "fromCIDR": cidrs((t for _, t, _ in rule.peers), opts.cidr_aggregate)}


def _rules(peers: Peers, direction: str, subject_ns: str, opts: Options) -> list[Commented]:
    kinds = (ENDPOINTS, ENTITIES, FQDN, CIDR) if direction == "egress" else (ENDPOINTS, ENTITIES, CIDR)
    out = []
    for rule in _group(peers, kinds, opts):
        body = _peer_field(rule, direction, subject_ns, opts)
        to_ports, icmps = _to_ports(rule.ports)
        if to_ports:
            body["toPorts"] = to_ports
        if icmps:
            body["icmps"] = icmps
        out.append(Commented(body, rule.evidence.comment()))
    return out


def pair_dns(rules: WorkloadRules, opts: Options) -> None:
    """Give the workload's egress to its DNS servers the `dns` rule its names need (see the
    module's rules), or none: every other port keeps no DNS names."""
    egress = rules.egress
    fqdns = {text for kind, text, _ in egress if kind == FQDN}
    queried: dict[str, Evidence] = {}
    servers: list[PeerKey] = []
    for peer, ports in egress.items():
        for key, use in ports.items():
            if use.dns:
                if key in _DNS_PORTS:
                    servers.append(peer)
                for name, ev in use.dns.items():
                    queried.setdefault(name, Evidence()).merge(ev)
                use.dns = {}
    if not fqdns and not ("dns" in opts.l7 and queried):
        return  # plain L3/L4 DNS, no proxy
    if not servers:
        servers = [(ENDPOINTS, opts.dns_server.key, opts.dns_server)]
    names = dict(queried)
    for n in fqdns:
        names.setdefault(n, Evidence())
    for peer in dict.fromkeys(servers):
        ports = egress.setdefault(peer, {})
        for key in _DNS_PORTS:  # both: DNS falls back to TCP for long answers
            ports.setdefault(key, PortUse()).dns = dict(names)


def _dns_over_tcp(peers: Peers) -> None:
    """A DNS server that answered over UDP is let answer over TCP too (the fallback for long
    answers, which clients with a paired DNS rule may use)."""
    udp, tcp = _DNS_PORTS
    for ports in peers.values():
        if udp in ports and tcp not in ports:
            ports[tcp] = PortUse()


def policy_doc(observed: WorkloadRules, name: str, opts: Options) -> tuple[JSON, str]:
    """The policy of one workload, and its header comment (`observed` is left as it is)."""
    rules = copy.deepcopy(observed)
    w = rules.workload
    pair_dns(rules, opts)
    if w == opts.dns_server:
        _dns_over_tcp(rules.ingress)
    spec: JSON = {"endpointSelector": {"matchLabels": w.match_labels}}
    if not opts.default_deny:
        spec["enableDefaultDeny"] = {"ingress": False, "egress": False}
    for direction, peers in (("ingress", rules.ingress), ("egress", rules.egress)):
        body = _rules(peers, direction, w.namespace, opts)
        if body:
            spec[direction] = body
        elif opts.default_deny:
            spec[direction] = [Commented({}, f"no {direction} was observed: nothing is allowed")]
    doc: JSON = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": w.namespace, "labels": dict(MANAGED_BY)},
        "spec": spec,
    }
    ev = rules.window
    pods = len(rules.pods)
    header = (
        f"Generated by ciliary from {ev.comment()} of {w.key} ({pods} pod{'s' if pods != 1 else ''}).\n"
        "Review it: traffic that did not occur while the flows were recorded is not allowed."
    )
    return doc, header
