"""What each workload needs allowed, gathered from observations: for every subject
workload, its ingress and egress peers, the ports it used with each, and the L7 requests
seen on them, with the evidence (flow counts and time range) behind every item.

Rules:
* An observation is a connection from its source to its destination. The source's
  workload needs an egress rule to the destination, the destination's workload an ingress
  rule from the source, for every workload in the subject namespaces (all when none are
  given); replies and repeated observations of a connection are not counted.
* Peers: a pod is its workload (`endpoints`); an entity is itself; a world address is the
  DNS names its source resolved it from (`fqdn`), else the address (`cidr`). Ingress from
  the world is always by address.
* An explicit deny (POLICY_DENY) is never allowed: such observations are listed apart, as
  are those with a side that could not be resolved to a workload (never guessed). Traffic
  recorded as dropped for want of an allow (POLICY_DENIED, or an L7 request the proxy denied)
  is allowed, and listed for review.
* L7 requests go to the server's ingress when the server is a subject, else to the
  client's egress; DNS queries always to the client's egress (Cilium has no ingress DNS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ciliary.cluster.workloads import Workload
from ciliary.flows.observed import ENTITY, POD, UNRESOLVED, WORLD, Observation, ObservedPeer
from ciliary.l7.http import HTTPRequest
from ciliary.l7.kafka import KafkaRequest, kafka_api_key_name
from ciliary.policy.ports import PROTO_NAMES
from ciliary.verdict.types import DNSQuery

ENDPOINTS, ENTITIES, FQDN, CIDR = "endpoints", "entities", "fqdn", "cidr"
# (kind, text, workload): the workload's key and itself, or an entity, name or address.
PeerKey = tuple[str, str, Workload | None]
PortKey = tuple[int, int]  # (protocol number, port or ICMP type)


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Evidence:
    """How often and when something was observed."""

    flows: int = 0
    first: float | None = None
    last: float | None = None

    def add(self, ob: Observation) -> None:
        self.flows += 1
        t = ob.time
        if t is not None:
            if self.first is None or t < self.first:
                self.first = t
            if self.last is None or t > self.last:
                self.last = t

    def merge(self, other: Evidence) -> None:
        self.flows += other.flows
        if other.first is not None and (self.first is None or other.first < self.first):
            self.first = other.first
        if other.last is not None and (self.last is None or other.last > self.last):
            self.last = other.last

    @property
    def seconds(self) -> float:
        return (self.last - self.first) if self.first is not None and self.last is not None else 0.0

    def span(self) -> str:
        """`first .. last`, to the second (UTC); empty without times."""
        if self.first is None or self.last is None:
            return ""
        return f"{_utc(self.first)} .. {_utc(self.last)}"

    def comment(self) -> str:
        span = self.span()
        return f"{self.flows} flow{'s' if self.flows != 1 else ''}" + (f", {span}" if span else "")


@dataclass
class PortUse:
    """One port of one peer: its evidence and the L7 requests seen on it."""

    evidence: Evidence = field(default_factory=Evidence)
    http: dict[tuple[str, str], Evidence] = field(default_factory=dict)  # (method, path)
    kafka: dict[tuple[str, str], Evidence] = field(default_factory=dict)  # (role or API key, topic)
    dns: dict[str, Evidence] = field(default_factory=dict)  # query names


Peers = dict[PeerKey, dict[PortKey, PortUse]]


@dataclass
class WorkloadRules:
    workload: Workload
    ingress: Peers = field(default_factory=dict)
    egress: Peers = field(default_factory=dict)
    window: Evidence = field(default_factory=Evidence)
    pods: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)  # FQDN peer names with a DNS answer seen


@dataclass
class Listed:
    """Observations left out, counted per reason and connection."""

    what: str
    why: str
    evidence: Evidence = field(default_factory=Evidence)


def port_label(key: PortKey) -> str:
    proto, port = key
    name = PROTO_NAMES.get(proto, str(proto))
    return f"{name} type {port}" if name.startswith("ICMP") else f"{port}/{name}"


def _kafka_use(req: KafkaRequest) -> tuple[str, str]:
    name = kafka_api_key_name(req.api_key)
    role = {"produce": "produce", "fetch": "consume"}.get(name)
    topic = req.topics[0] if req.topics else ""
    return (f"role:{role}" if role else f"apiKey:{name}", topic)


@dataclass
class Gatherer:
    """Observations in, `WorkloadRules` out (see the module's rules)."""

    namespaces: frozenset[str] | None = None  # subject namespaces; None: all
    workloads: dict[Workload, WorkloadRules] = field(default_factory=dict)
    denied: dict[tuple[str, str, str], Listed] = field(default_factory=dict)
    unresolved: dict[tuple[str, str], Listed] = field(default_factory=dict)
    # Allowed, but recorded as dropped (no rule, or the proxy, denied them): for review.
    was_dropped: dict[tuple[str, str, str], Listed] = field(default_factory=dict)
    observed: int = 0  # observations taken into rules

    def subject(self, p: ObservedPeer) -> WorkloadRules | None:
        w = p.workload
        if p.kind != POD or w is None or (self.namespaces is not None and w.namespace not in self.namespaces):
            return None
        rules = self.workloads.get(w)
        if rules is None:
            rules = self.workloads[w] = WorkloadRules(w)
        return rules

    def add(self, ob: Observation, needed: bool = True) -> None:
        """Take one observation; `needed` False: the traffic is allowed already (merging)."""
        if ob.reply or ob.repeat:
            return
        port = port_label((ob.proto, ob.port))
        for p in (ob.src, ob.dst):
            if p.kind == UNRESOLVED:
                listed = self.unresolved.setdefault((p.pod or p.ip, p.why), Listed(p.pod or p.ip, p.why))
                listed.evidence.add(ob)
                return
        if ob.denied:
            what = (str(ob.src), str(ob.dst), port)
            listed = self.denied.setdefault(what, Listed(f"{what[0]} -> {what[1]} {port}", "dropped by a deny rule (POLICY_DENY)"))
            listed.evidence.add(ob)
            return
        client, server = self.subject(ob.src), self.subject(ob.dst)
        for rules, p in ((client, ob.src), (server, ob.dst)):
            if rules is not None:
                rules.window.add(ob)
                rules.pods.add(p.pod)
        if not needed or (client is None and server is None):
            return
        self.observed += 1
        if ob.verdict == "DROPPED":
            what = (str(ob.src), str(ob.dst), port)
            why = "the proxy denied the request" if ob.request is not None else f"dropped ({ob.drop_reason}): no rule allowed it"
            self.was_dropped.setdefault(what, Listed(f"{what[0]} -> {what[1]} {port}", why)).evidence.add(ob)
        key = (ob.proto, ob.port)
        l7_at_server = server is not None
        if client is not None:
            for peer in self._peers_of(ob.dst, ob.names):
                use = client.egress.setdefault(peer, {}).setdefault(key, PortUse())
                use.evidence.add(ob)
                if peer[0] == FQDN and ob.answered:
                    client.answered.add(peer[1])
                self._request(use, ob, dns=True, other=not l7_at_server)
        if server is not None:
            peer = self._peers_of(ob.src, ())[0]
            use = server.ingress.setdefault(peer, {}).setdefault(key, PortUse())
            use.evidence.add(ob)
            self._request(use, ob, dns=False, other=True)

    @staticmethod
    def _peers_of(p: ObservedPeer, names: tuple[str, ...]) -> list[PeerKey]:
        if p.kind == POD and p.workload is not None:
            return [(ENDPOINTS, p.workload.key, p.workload)]
        if p.kind == ENTITY:
            return [(ENTITIES, p.entity, None)]
        assert p.kind == WORLD
        return [(FQDN, n, None) for n in names] or [(CIDR, p.ip, None)]

    @staticmethod
    def _request(use: PortUse, ob: Observation, *, dns: bool, other: bool) -> None:
        req = ob.request
        if req is None:
            return
        if type(req) is DNSQuery:
            if dns:
                use.dns.setdefault(req.qname.rstrip(".").lower(), Evidence()).add(ob)
        elif other and type(req) is HTTPRequest:
            use.http.setdefault((req.method, req.path), Evidence()).add(ob)
        elif other and type(req) is KafkaRequest:
            use.kafka.setdefault(_kafka_use(req), Evidence()).add(ob)
