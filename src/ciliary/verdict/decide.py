"""Deciding one flow as Cilium does: the source's egress policy if it is a managed
endpoint, then the destination's ingress policy if it is one (semantics §0).

The result speaks Hubble's words: verdict FORWARDED / DROPPED / AUDIT, drop_reason_desc
POLICY_DENIED (133, no allow under default deny) / POLICY_DENY (181, a deny rule) /
AUTH_REQUIRED (189), traffic_direction, policy_match_type, and the policies that allowed or
denied it (kind, namespace, name) as in `egress_allowed_by` / `ingress_denied_by`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, cast

import msgspec

if TYPE_CHECKING:  # imported lazily at run time: only flows with a request need them
    from ciliary.l7.http import HTTPRequest
    from ciliary.l7.kafka import KafkaRequest

from ciliary.identity.allocator import Identity
from ciliary.l7.dns import DNSMatcher
from ciliary.model.cilium import L7Rules
from ciliary.model.policy import PolicyRef
from ciliary.policy.engine import DirectionPolicy, Endpoint, PolicyEngine, node_name
from ciliary.policy.mapstate import MATCH_NONE, MapEntry
from ciliary.policy.ports import PROTO_ICMP, PROTO_ICMPV6, PROTO_NAMES
from ciliary.policy.rules import EGRESS, INGRESS

FORWARDED = "FORWARDED"
DROPPED = "DROPPED"
AUDIT = "AUDIT"
REDIRECTED = "REDIRECTED"

POLICY_DENIED = "POLICY_DENIED"
POLICY_DENY = "POLICY_DENY"
AUTH_REQUIRED = "AUTH_REQUIRED"
DROP_REASON_CODES = {POLICY_DENIED: 133, POLICY_DENY: 181, AUTH_REQUIRED: 189}


class FlowPeer(msgspec.Struct, frozen=True):
    """One end of a flow: a managed endpoint, or an address that is not one."""

    ip: str | None
    endpoint: Endpoint | None = None

    @property
    def node(self) -> str | None:
        return node_name(self.endpoint) if self.endpoint else None

    def __str__(self) -> str:
        if self.endpoint is not None:
            return self.endpoint.key
        return self.ip or "?"


class DNSQuery(NamedTuple):
    """A DNS query as the DNS proxy sees it (only the name is checked, not the type)."""

    qname: str


L7Request: TypeAlias = "HTTPRequest | KafkaRequest | DNSQuery"


class Flow(msgspec.Struct, frozen=True):
    src: FlowPeer
    dst: FlowPeer
    proto: int
    dport: int  # destination port, or ICMP type for ICMP
    l7: L7Request | None = None  # one request carried by the connection
    time: float | None = None  # seconds; decides which learned DNS names are still valid

    def describe(self) -> str:
        p = PROTO_NAMES.get(self.proto, str(self.proto))
        what = f"icmp type {self.dport}" if self.proto in (PROTO_ICMP, PROTO_ICMPV6) else f"{self.dport}/{p}"
        return f"{self.src} -> {self.dst} {what}"


class L7Verdict(msgspec.Struct):
    """The proxy's verdict for one request (Hubble emits it as an L7 flow)."""

    type: str  # http | kafka | dns
    verdict: str  # FORWARDED | DROPPED
    direction: str  # the side whose proxy decided: egress | ingress
    reason: str
    http_status: int | None = None
    kafka_error_code: int | None = None
    dns_rcode: str | None = None
    allowed_by: list[PolicyRef] = msgspec.field(default_factory=list)
    rules: list[str] = msgspec.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": self.type,
            "verdict": self.verdict,
            "traffic_direction": self.direction.upper(),
            "reason": self.reason,
            "allowed_by": [_ref(r) for r in self.allowed_by],
            "rules": self.rules,
        }
        if self.type == "http":
            d["http_status"] = self.http_status
        elif self.type == "kafka":
            d["kafka_error_code"] = self.kafka_error_code
        else:
            d["dns_rcode"] = self.dns_rcode
        return d


class SideVerdict(msgspec.Struct):
    """The decision of one side (the source's egress or the destination's ingress)."""

    direction: str
    endpoint: str | None  # None: this side is not a managed endpoint (not evaluated)
    peer_identity: Identity | None = None
    enforced: bool = False
    default_deny: bool = False
    audit_mode: bool = False
    reason: str = ""
    verdict: str = FORWARDED
    drop_reason_desc: str | None = None
    entry: MapEntry | None = None
    match_type: str = MATCH_NONE
    audited_drop_reason: str | None = None  # what audit mode turned into AUDIT
    redirected: bool = False  # the allow entry carries an L7 redirect (proxy)
    l7: L7Verdict | None = None
    allowed_by: list[PolicyRef] = msgspec.field(default_factory=list)
    denied_by: list[PolicyRef] = msgspec.field(default_factory=list)
    policy: DirectionPolicy | None = None

    @property
    def applies(self) -> bool:
        return self.endpoint is not None

    def with_l7(self, l7: L7Verdict) -> SideVerdict:
        """This side with the proxy's verdict on one request."""
        return msgspec.structs.replace(self, l7=l7)

    def as_dict(self) -> dict[str, Any]:
        entry = None
        if self.entry is not None:
            e = self.entry
            entry = {
                "identity": e.key.identity,
                "port": str(e.key.port),
                "action": "deny" if e.deny else ("redirect" if e.redirect else "allow"),
                "auth": e.auth,
                "rules": [
                    {"kind": o.ref.kind, "namespace": o.ref.namespace, "name": o.ref.name,
                     "field": o.field, "file": o.file, "line": o.line}
                    for o in e.origins
                ],
                "synthetic": _synthetic_reason(self, e),
            }
        return {
            "endpoint": self.endpoint,
            "evaluated": self.applies,
            "enforced": self.enforced,
            "default_deny": self.default_deny,
            "audit_mode": self.audit_mode,
            "reason": self.reason,
            "peer_identity": self.peer_identity.id if self.peer_identity else None,
            "peer_labels": self.peer_identity.labels.to_strings() if self.peer_identity else [],
            "verdict": self.verdict,
            "drop_reason_desc": self.drop_reason_desc,
            "audited_drop_reason": self.audited_drop_reason,
            "policy_match_type": self.match_type,
            "redirected": self.redirected,
            "l7": self.l7.as_dict() if self.l7 else None,
            "matched_entry": entry,
            "policies": [_ref(r) for r in (self.denied_by or self.allowed_by)],
            "allowed_by": [_ref(r) for r in self.allowed_by],
            "denied_by": [_ref(r) for r in self.denied_by],
            "rules": [str(r.origin) for r in (self.policy.rules if self.policy else [])],
        }


def _synthetic_reason(side: SideVerdict, e: MapEntry) -> str | None:
    if e.origins:
        return None
    if not side.enforced:
        return "not enforced: allow all"
    if e.key.identity == 1 and side.direction == INGRESS:
        return "allow-localhost: the local node may reach its endpoints"
    return "enableDefaultDeny=false: unmatched traffic allowed"


def _ref(r: PolicyRef) -> dict[str, str]:
    return {"kind": r.kind, "namespace": r.namespace, "name": r.name}


class Verdict(msgspec.Struct):
    flow: Flow
    verdict: str
    drop_reason_desc: str | None
    traffic_direction: str
    policy_match_type: str
    egress: SideVerdict
    ingress: SideVerdict
    src_identity: Identity | None = None
    dst_identity: Identity | None = None
    l7: L7Verdict | None = None

    @property
    def deciding(self) -> SideVerdict:
        return self.egress if self.traffic_direction == "EGRESS" else self.ingress

    @property
    def allowed(self) -> bool:
        return self.verdict != DROPPED

    def as_dict(self) -> dict[str, Any]:
        d = self.deciding
        return {
            "flow": self.flow.describe(),
            "source": str(self.flow.src),
            "destination": str(self.flow.dst),
            "protocol": PROTO_NAMES.get(self.flow.proto, str(self.flow.proto)),
            "port": self.flow.dport,
            "verdict": self.verdict,
            "drop_reason_desc": self.drop_reason_desc,
            "drop_reason": DROP_REASON_CODES.get(self.drop_reason_desc or "", 0),
            "traffic_direction": self.traffic_direction,
            "policy_match_type": self.policy_match_type,
            "source_identity": self.src_identity.id if self.src_identity else None,
            "destination_identity": self.dst_identity.id if self.dst_identity else None,
            "egress_allowed_by": [_ref(r) for r in self.egress.allowed_by],
            "egress_denied_by": [_ref(r) for r in self.egress.denied_by],
            "ingress_allowed_by": [_ref(r) for r in self.ingress.allowed_by],
            "ingress_denied_by": [_ref(r) for r in self.ingress.denied_by],
            "deciding_policies": [_ref(r) for r in (d.denied_by or d.allowed_by)],
            "l7": self.l7.as_dict() if self.l7 else None,
            "egress": self.egress.as_dict(),
            "ingress": self.ingress.as_dict(),
        }


def _refs(entry: MapEntry) -> list[PolicyRef]:
    return list(entry.refs)


def decide_side(
    engine: PolicyEngine, ep: Endpoint, direction: str, peer: Identity, proto: int, port: int,
    request: L7Request | None = None,
) -> SideVerdict:
    pol = engine.policy(ep).direction(direction)
    cfg = engine.config
    side = SideVerdict(
        direction, ep.key, peer, pol.enforced, pol.default_deny,
        cfg.audit_for(ep.key), pol.reason, policy=pol,
    )
    result = pol.lookup(peer.id, proto, port)
    e = result.entry
    side.entry = e
    if e is not None:
        side.match_type = e.match_type
    if result.denied:
        assert e is not None
        side.denied_by = _refs(e)
        side.verdict, side.drop_reason_desc = DROPPED, POLICY_DENY
    elif result.allowed:
        assert e is not None
        side.allowed_by = _refs(e)
        if e.auth == "test-always-fail" or (e.auth == "required" and not cfg.mutual_auth_established):
            side.verdict, side.drop_reason_desc = DROPPED, AUTH_REQUIRED
        elif e.redirect:
            side.verdict, side.redirected = REDIRECTED, True
    elif pol.default_deny:
        side.verdict, side.drop_reason_desc = DROPPED, POLICY_DENIED
    else:
        # Enforced only by rules with enableDefaultDeny=false: the synthetic allow-all.
        side.match_type = "ALL"
    if side.redirected and request is not None:
        side.l7 = check_l7(engine, pol, direction, peer.id, proto, port, request)
    if side.verdict == DROPPED and side.audit_mode and side.drop_reason_desc in (POLICY_DENIED, POLICY_DENY):
        # Hubble: verdict 0 with the audited flag -> AUDIT, and no drop reason.
        side.verdict, side.audited_drop_reason, side.drop_reason_desc = AUDIT, side.drop_reason_desc, None
    return side


def decide(engine: PolicyEngine, flow: Flow) -> Verdict:
    """The verdict of a new connection (replies follow conntrack and are not re-checked)."""
    src_ep, dst_ep = flow.src.endpoint, flow.dst.endpoint
    # Identities as each side's node sees the other end.
    dst_seen = _identity(engine, flow.dst, node_name(src_ep) if src_ep else None, flow.time)
    src_seen = _identity(engine, flow.src, node_name(dst_ep) if dst_ep else None, flow.time)
    if src_ep is not None:
        egress = decide_side(engine, src_ep, EGRESS, dst_seen, flow.proto, flow.dport, flow.l7)
    else:
        egress = SideVerdict(EGRESS, None, dst_seen, reason="source is not a managed endpoint")
    if dst_ep is not None and _passes(egress):
        ingress = decide_side(engine, dst_ep, INGRESS, src_seen, flow.proto, flow.dport, flow.l7)
    else:
        ingress = _not_reached(flow, egress, src_seen)
    return _combine(flow, egress, ingress, src_seen, dst_seen)


def decide_request(engine: PolicyEngine, base: Verdict, request: L7Request) -> Verdict:
    """The verdict of one request on a connection whose L3/L4 verdict is `base` (decided
    without a request): the same as `decide` with the request, without deciding L3/L4 again.
    Only the sides that redirect to the proxy check the request."""
    flow = base.flow
    if flow.l7 is not None:
        raise ValueError("the base verdict must be decided without a request")
    rflow = Flow(flow.src, flow.dst, flow.proto, flow.dport, request, flow.time)
    if not (base.egress.redirected or base.ingress.redirected):
        return msgspec.structs.replace(base, flow=rflow)
    egress, ingress = base.egress, base.ingress
    if egress.redirected and egress.policy is not None and egress.peer_identity is not None:
        egress = egress.with_l7(check_l7(
            engine, egress.policy, EGRESS, egress.peer_identity.id, flow.proto, flow.dport, request))
    assert base.src_identity is not None and base.dst_identity is not None
    if flow.dst.endpoint is not None and _passes(egress):
        if ingress.redirected and ingress.policy is not None and ingress.peer_identity is not None:
            ingress = ingress.with_l7(check_l7(
                engine, ingress.policy, INGRESS, ingress.peer_identity.id, flow.proto, flow.dport, request))
    else:
        ingress = _not_reached(rflow, egress, base.src_identity)
    return _combine(rflow, egress, ingress, base.src_identity, base.dst_identity)


def _passes(egress: SideVerdict) -> bool:
    """The packet gets past the source's egress (policy and proxy) to the destination."""
    return egress.verdict != DROPPED and not (egress.l7 is not None and egress.l7.verdict == DROPPED)


def _not_reached(flow: Flow, egress: SideVerdict, src_seen: Identity) -> SideVerdict:
    dst_ep = flow.dst.endpoint
    if dst_ep is None:
        return SideVerdict(INGRESS, None, src_seen, reason="destination is not a managed endpoint")
    if egress.verdict != DROPPED:
        return SideVerdict(INGRESS, dst_ep.key, src_seen, reason="not reached: the request was denied by the egress proxy")
    return SideVerdict(INGRESS, dst_ep.key, src_seen, reason="not reached: dropped at egress")


def _combine(flow: Flow, egress: SideVerdict, ingress: SideVerdict, src_seen: Identity, dst_seen: Identity) -> Verdict:
    if egress.verdict == DROPPED:
        verdict, deciding, direction = DROPPED, egress, "EGRESS"
    elif ingress.verdict == DROPPED:
        verdict, deciding, direction = DROPPED, ingress, "INGRESS"
    elif AUDIT in (egress.verdict, ingress.verdict):
        deciding = egress if egress.verdict == AUDIT else ingress
        verdict, direction = AUDIT, "EGRESS" if deciding is egress else "INGRESS"
    elif REDIRECTED in (egress.verdict, ingress.verdict):
        deciding = ingress if ingress.verdict == REDIRECTED else egress
        verdict, direction = REDIRECTED, "INGRESS" if deciding is ingress else "EGRESS"
    else:
        # Cilium emits policy verdicts only for enforced directions; prefer the ingress one.
        verdict = FORWARDED
        if ingress.applies and (ingress.enforced or not egress.enforced):
            deciding, direction = ingress, "INGRESS"
        elif egress.applies:
            deciding, direction = egress, "EGRESS"
        else:
            deciding, direction = ingress, "INGRESS"
    # The proxy verdict shown: a denying one first, else the ingress one, else the egress one.
    l7: L7Verdict | None
    if egress.l7 is not None and egress.l7.verdict == DROPPED:
        l7 = egress.l7
    elif ingress.l7 is not None and ingress.l7.verdict == DROPPED:
        l7 = ingress.l7
    else:
        l7 = ingress.l7 or egress.l7
    return Verdict(
        flow, verdict, deciding.drop_reason_desc, direction, deciding.match_type, egress, ingress,
        src_seen, dst_seen, l7,
    )


_L7_KINDS: dict[type, str] = {}  # request type -> "http" | "kafka" | "dns"


def _l7_type(req: L7Request) -> str:
    kind = _L7_KINDS.get(type(req))
    if kind is None:
        from ciliary.l7.http import HTTPRequest
        from ciliary.l7.kafka import KafkaRequest

        kind = "http" if isinstance(req, HTTPRequest) else "kafka" if isinstance(req, KafkaRequest) else "dns"
        _L7_KINDS[type(req)] = kind
    return kind


def _compiled(engine: PolicyEngine, rules: L7Rules, kind: str) -> Any:
    key = id(rules)
    hit = engine.l7_cache.get(key)
    if hit is None:
        from ciliary.l7.http import HTTPPolicy
        from ciliary.l7.kafka import KafkaPolicy

        if kind == "http":
            hit = HTTPPolicy(rules.http or [])
        elif kind == "kafka":
            hit = KafkaPolicy(rules.kafka or [])
        else:
            hit = DNSMatcher(rules.dns or [])
        engine.l7_cache[key] = hit
    return hit


def check_l7(
    engine: PolicyEngine, pol: DirectionPolicy, direction: str, peer: int, proto: int, port: int,
    req: L7Request,
) -> L7Verdict:
    """The proxy's decision (§6.3): the request is checked against the L7 rules of every rule
    allowing this peer and port; one allow without L7 rules lets every request through."""
    kind = _l7_type(req)
    contributions = pol.policy_map.l7_contributions(peer, proto, port)
    allowed_by: list[PolicyRef] = []
    rules: list[str] = []
    reason = ""
    ok = False
    for c in contributions:
        idx: int | None = None
        if c.rules is None:
            hit = True
        else:
            assert isinstance(c.rules, L7Rules)
            present = c.rules.http if kind == "http" else c.rules.kafka if kind == "kafka" else c.rules.dns
            if present is None:
                continue
            matcher = _compiled(engine, c.rules, kind)
            if kind == "dns":
                hit = matcher.matches(cast(DNSQuery, req).qname)
            else:  # HTTP and Kafka decisions both carry the matching rule's index
                d = matcher.check(req)
                hit, idx = d.allowed, d.rule_index
        if hit:
            if not ok or c.rules is None:
                where = str(c.origin) if c.origin else "allow-all"
                if c.rules is None:
                    reason = f"{where} allows this peer and port without L7 rules: every request passes"
                else:
                    reason = f"matched {where}" + (f" rules.{kind}[{idx}]" if idx is not None else "")
            ok = True
            if c.origin is not None:
                allowed_by.append(c.origin.ref)
                rules.append(str(c.origin) + (f" rules.{kind}[{idx}]" if idx is not None else ""))
    if not ok:
        reason = f"no {kind} rule of the {len(contributions)} rule(s) allowing this peer and port matches"
    if len(allowed_by) > 1:
        allowed_by = sorted(set(allowed_by))
    v = L7Verdict(kind, FORWARDED if ok else DROPPED, direction, reason, allowed_by=allowed_by, rules=rules)
    if kind == "http" and not ok:
        from ciliary.l7.http import HTTP_DENY_STATUS

        v.http_status = HTTP_DENY_STATUS
    elif kind == "kafka" and not ok:
        from ciliary.l7.kafka import KAFKA_DENY_ERROR_CODE

        v.kafka_error_code = KAFKA_DENY_ERROR_CODE
    elif kind == "dns":
        reject = "NXDOMAIN" if engine.config.tofqdns_dns_reject_response_code == "nameError" else "REFUSED"
        v.dns_rcode = "NOERROR" if ok else reject
    return v


def _identity(engine: PolicyEngine, peer: FlowPeer, observer: str | None, now: float | None = None) -> Identity:
    if peer.endpoint is not None:
        return engine.identity_seen_from(peer.endpoint, observer)
    assert peer.ip is not None
    return engine.identity_of_ip(peer.ip, observer, now)


def resolve_peer(engine: PolicyEngine, text: str) -> FlowPeer:
    """`NS/POD`, `node/NAME`, or an IP address (a pod's or node's IP becomes that endpoint)."""
    import ipaddress

    try:
        ip = str(ipaddress.ip_address(text))
    except ValueError:
        ep = engine.endpoint_of_pod(text)
        if ep is None:
            raise LookupError(f"no endpoint {text!r} in the cluster (expected NS/POD, node/NAME or an IP)") from None
        return FlowPeer(ep.ips[0] if ep.ips else None, ep)
    return FlowPeer(ip, engine.endpoint_by_ip(ip))


@dataclass
class DNSObservation:
    """One DNS answer replayed through the source's DNS policy before a flow."""

    name: str
    ips: list[str]
    server: str
    verdict: Verdict
    learned: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ips": self.ips,
            "server": self.server,
            "verdict": self.verdict.verdict,
            "dns_rcode": self.verdict.l7.dns_rcode if self.verdict.l7 else None,
            "learned": self.learned,
            "reason": self.reason,
        }


def dns_servers(engine: PolicyEngine) -> list[Endpoint]:
    """The cluster DNS: kube-system pods labelled k8s-app=kube-dns."""
    return [
        ep for ep in engine.pod_endpoints
        if ep.namespace == "kube-system" and ep.pod is not None and ep.pod.labels.get("k8s-app") == "kube-dns"
    ]


def observe_dns_answer(
    engine: PolicyEngine, src: FlowPeer, name: str, ips: list[str], *, ttl: int = 3600,
    now: float | None = None, server: FlowPeer | None = None, proto: int = 17, port: int = 53,
) -> DNSObservation:
    """A lookup of `name` by `src` answered with `ips`, exactly as the datapath sees it: the
    query must be allowed and redirected to the DNS proxy (an L7 `dns` rule), and the proxy
    must allow the name; only then does the answer feed the FQDN cache (semantics §7)."""
    if server is None:
        servers = dns_servers(engine)
        if not servers:
            raise LookupError("no DNS server in the cluster (kube-system pods with k8s-app=kube-dns)")
        server = FlowPeer(servers[0].ips[0] if servers[0].ips else None, servers[0])
    v = decide(engine, Flow(src, server, proto, port, DNSQuery(name)))
    learned = False
    if v.verdict == DROPPED:
        reason = f"the DNS query was dropped ({v.drop_reason_desc}, {v.traffic_direction})"
    elif not v.egress.redirected:
        reason = "the DNS query was not redirected to the DNS proxy (no L7 dns rule on the source's egress): nothing is learned, toFQDNs cannot allow this name"
    elif v.egress.l7 is not None and v.egress.l7.verdict == DROPPED:
        reason = f"the DNS proxy refused the query ({v.egress.l7.dns_rcode})"
    else:
        assert src.endpoint is not None
        engine.learn_dns(src.endpoint, name, ips, ttl, now)
        learned = True
        reason = "allowed by the DNS proxy: the answer is in the FQDN cache"
    return DNSObservation(name, ips, str(server), v, learned, reason)
