"""Deciding one flow as Cilium does: the source's egress policy if it is a managed
endpoint, then the destination's ingress policy if it is one (semantics §0).

The result speaks Hubble's words: verdict FORWARDED / DROPPED / AUDIT, drop_reason_desc
POLICY_DENIED (133, no allow under default deny) / POLICY_DENY (181, a deny rule) /
AUTH_REQUIRED (189), traffic_direction, policy_match_type, and the policies that allowed or
denied it (kind, namespace, name) as in `egress_allowed_by` / `ingress_denied_by`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ciliary.identity.allocator import Identity
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


@dataclass(frozen=True)
class FlowPeer:
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


@dataclass(frozen=True)
class Flow:
    src: FlowPeer
    dst: FlowPeer
    proto: int
    dport: int  # destination port, or ICMP type for ICMP

    def describe(self) -> str:
        p = PROTO_NAMES.get(self.proto, str(self.proto))
        what = f"icmp type {self.dport}" if self.proto in (PROTO_ICMP, PROTO_ICMPV6) else f"{self.dport}/{p}"
        return f"{self.src} -> {self.dst} {what}"


@dataclass
class SideVerdict:
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
    allowed_by: list[PolicyRef] = field(default_factory=list)
    denied_by: list[PolicyRef] = field(default_factory=list)
    policy: DirectionPolicy | None = None

    @property
    def applies(self) -> bool:
        return self.endpoint is not None

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


@dataclass
class Verdict:
    flow: Flow
    verdict: str
    drop_reason_desc: str | None
    traffic_direction: str
    policy_match_type: str
    egress: SideVerdict
    ingress: SideVerdict
    src_identity: Identity | None = None
    dst_identity: Identity | None = None

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
            "egress": self.egress.as_dict(),
            "ingress": self.ingress.as_dict(),
        }


def _refs(entry: MapEntry) -> list[PolicyRef]:
    return sorted({o.ref for o in entry.origins})


def decide_side(
    engine: PolicyEngine, ep: Endpoint, direction: str, peer: Identity, proto: int, port: int
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
    elif pol.default_deny:
        side.verdict, side.drop_reason_desc = DROPPED, POLICY_DENIED
    else:
        # Enforced only by rules with enableDefaultDeny=false: the synthetic allow-all.
        side.match_type = "ALL"
    if side.verdict == DROPPED and side.audit_mode and side.drop_reason_desc in (POLICY_DENIED, POLICY_DENY):
        # Hubble: verdict 0 with the audited flag -> AUDIT, and no drop reason.
        side.verdict, side.audited_drop_reason, side.drop_reason_desc = AUDIT, side.drop_reason_desc, None
    return side


def decide(engine: PolicyEngine, flow: Flow) -> Verdict:
    """The verdict of a new connection (replies follow conntrack and are not re-checked)."""
    src_ep, dst_ep = flow.src.endpoint, flow.dst.endpoint
    # Identities as each side's node sees the other end.
    dst_seen = _identity(engine, flow.dst, node_name(src_ep) if src_ep else None)
    src_seen = _identity(engine, flow.src, node_name(dst_ep) if dst_ep else None)
    if src_ep is not None:
        egress = decide_side(engine, src_ep, EGRESS, dst_seen, flow.proto, flow.dport)
    else:
        egress = SideVerdict(EGRESS, None, dst_seen, reason="source is not a managed endpoint")
    if dst_ep is not None and egress.verdict != DROPPED:
        ingress = decide_side(engine, dst_ep, INGRESS, src_seen, flow.proto, flow.dport)
    elif dst_ep is not None:
        ingress = SideVerdict(INGRESS, dst_ep.key, src_seen, reason="not reached: dropped at egress")
    else:
        ingress = SideVerdict(INGRESS, None, src_seen, reason="destination is not a managed endpoint")
    if egress.verdict == DROPPED:
        verdict, deciding, direction = DROPPED, egress, "EGRESS"
    elif ingress.verdict == DROPPED:
        verdict, deciding, direction = DROPPED, ingress, "INGRESS"
    elif AUDIT in (egress.verdict, ingress.verdict):
        deciding = egress if egress.verdict == AUDIT else ingress
        verdict, direction = AUDIT, "EGRESS" if deciding is egress else "INGRESS"
    else:
        # Cilium emits policy verdicts only for enforced directions; prefer the ingress one.
        verdict = FORWARDED
        if ingress.applies and (ingress.enforced or not egress.enforced):
            deciding, direction = ingress, "INGRESS"
        elif egress.applies:
            deciding, direction = egress, "EGRESS"
        else:
            deciding, direction = ingress, "INGRESS"
    return Verdict(
        flow, verdict, deciding.drop_reason_desc, direction, deciding.match_type, egress, ingress,
        src_seen, dst_seen,
    )


def _identity(engine: PolicyEngine, peer: FlowPeer, observer: str | None) -> Identity:
    if peer.endpoint is not None:
        return engine.identity_seen_from(peer.endpoint, observer)
    assert peer.ip is not None
    return engine.identity_of_ip(peer.ip, observer)


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
