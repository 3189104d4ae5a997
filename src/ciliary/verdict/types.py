"""What is decided and what comes out, in Hubble's words.

A `Connection` (source and destination peers, protocol, port, at most one L7 request) goes
in; a `Verdict` comes out: FORWARDED / REDIRECTED / DROPPED / AUDIT, the drop reason
(POLICY_DENIED 133: no allow under default deny; POLICY_DENY 181: a deny rule;
AUTH_REQUIRED 189), the traffic direction and policy match type Hubble reports, the
policies that allowed or denied it on each side, and the proxy's verdict on the request.

Contracts: verdicts are shared by every connection that decides alike (see
`ciliary.verdict.decider`), so treat them and their lists as read-only; `Verdict.connection`
is the connection that was decided first, not necessarily the caller's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

import msgspec

from ciliary.cluster.endpoints import Endpoint
from ciliary.identity.allocator import Identity
from ciliary.model.policy import PolicyRef
from ciliary.policy.engine import DirectionPolicy, node_name
from ciliary.policy.mapstate import MATCH_NONE, MapEntry
from ciliary.policy.ports import PROTO_ICMP, PROTO_ICMPV6, PROTO_NAMES
from ciliary.policy.rules import EGRESS, INGRESS, PolicyEntry

if TYPE_CHECKING:  # imported lazily at run time: only flows with a request need them
    from ciliary.l7.http import HTTPRequest
    from ciliary.l7.kafka import KafkaRequest

FORWARDED = "FORWARDED"
DROPPED = "DROPPED"
AUDIT = "AUDIT"
REDIRECTED = "REDIRECTED"

POLICY_DENIED = "POLICY_DENIED"
POLICY_DENY = "POLICY_DENY"
AUTH_REQUIRED = "AUTH_REQUIRED"
DROP_REASON_CODES = {POLICY_DENIED: 133, POLICY_DENY: 181, AUTH_REQUIRED: 189}
# Hubble's numbers for policy_match_type (pkg/monitor/api/types.go).
MATCH_TYPE_CODES = {"L3_ONLY": 1, "L3_L4": 2, "L4_ONLY": 3, "ALL": 4, "L3_PROTO": 5, "PROTO_ONLY": 6}


class FlowPeer(msgspec.Struct, frozen=True):
    """One end of a connection: a managed endpoint, or an address that is not one."""

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


class Connection(msgspec.Struct, frozen=True):
    """A new connection to decide (replies follow conntrack and are not decided)."""

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
            "allowed_by": [ref_dict(r) for r in self.allowed_by],
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

    @property
    def proxy_denied(self) -> bool:
        return self.l7 is not None and self.l7.verdict == DROPPED

    @property
    def rules(self) -> list[PolicyEntry]:
        """The rules that select this side's endpoint in this direction."""
        return self.policy.rules if self.policy is not None else []

    @property
    def default_deny_refs(self) -> list[PolicyRef]:
        """The policies that put this direction into default deny, sorted."""
        return sorted({r.origin.ref for r in self.rules if r.default_deny})

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
                "synthetic": synthetic_reason(self, e),
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
            "policies": [ref_dict(r) for r in (self.denied_by or self.allowed_by)],
            "allowed_by": [ref_dict(r) for r in self.allowed_by],
            "denied_by": [ref_dict(r) for r in self.denied_by],
            "rules": [str(r.origin) for r in self.rules],
        }


def synthetic_reason(side: SideVerdict, e: MapEntry) -> str | None:
    """Why a map entry without rules exists (None: rules made it)."""
    if e.origins:
        return None
    if not side.enforced:
        return "not enforced: allow all"
    if e.key.identity == 1 and side.direction == INGRESS:
        return "allow-localhost: the local node may reach its endpoints"
    return "enableDefaultDeny=false: unmatched traffic allowed"


def ref_dict(r: PolicyRef) -> dict[str, str]:
    return {"kind": r.kind, "namespace": r.namespace, "name": r.name}


class Verdict(msgspec.Struct):
    connection: Connection
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

    @property
    def redirected(self) -> bool:
        """Some side sent the connection to its proxy (a request on it is judged there)."""
        return self.egress.redirected or self.ingress.redirected

    @property
    def predicted(self) -> str:
        """The flow's verdict as Hubble would show it: DROPPED when a proxy denied the request."""
        return DROPPED if self.l7 is not None and self.l7.verdict == DROPPED else self.verdict

    def observed_at(self, direction: str) -> Verdict:
        """What a policy-verdict event of one direction reports: Cilium emits one per
        enforced direction, where that side decides (the source's node for EGRESS, the
        destination's for INGRESS), carrying only that side's verdict and policies. An
        INGRESS event exists only if the packet got past egress: when egress drops, the
        connection's own verdict (dropped at EGRESS) is what happens instead."""
        if direction == "EGRESS":
            side = self.egress
            other = SideVerdict(INGRESS, None, reason="not evaluated where the egress verdict is made")
            return Verdict(self.connection, side.verdict, side.drop_reason_desc, direction, side.match_type,
                           side, other, self.src_identity, self.dst_identity, side.l7)
        if direction != "INGRESS" or self.egress.verdict == DROPPED or not self.ingress.applies:
            return self
        side = self.ingress
        other = SideVerdict(EGRESS, None, reason="not evaluated where the ingress verdict is made")
        return Verdict(self.connection, side.verdict, side.drop_reason_desc, direction, side.match_type,
                       other, side, self.src_identity, self.dst_identity, side.l7)

    def hubble_fields(self) -> tuple[dict[str, Any], frozenset[str]]:
        """The fields of a Hubble flow this verdict sets (verdict, drop reason, direction,
        match type, the allowing and denying policies), and those it removes."""
        upd: dict[str, Any] = {"verdict": self.verdict}
        pops: list[str] = []
        if self.drop_reason_desc:
            upd["drop_reason_desc"] = self.drop_reason_desc
            upd["drop_reason"] = DROP_REASON_CODES.get(self.drop_reason_desc, 0)
        else:
            pops += ["drop_reason_desc", "drop_reason"]
        upd["traffic_direction"] = self.traffic_direction
        upd["policy_match_type"] = MATCH_TYPE_CODES.get(self.policy_match_type, 0)
        e, i = self.egress, self.ingress
        for key, refs in (
            ("egress_allowed_by", e.allowed_by), ("ingress_allowed_by", i.allowed_by),
            ("egress_denied_by", e.denied_by), ("ingress_denied_by", i.denied_by),
        ):
            if refs:
                upd[key] = [{"kind": r.kind, "name": r.name, "namespace": r.namespace} for r in refs]
            else:
                pops.append(key)
        return upd, frozenset(pops)

    def as_dict(self) -> dict[str, Any]:
        d = self.deciding
        c = self.connection
        return {
            "flow": c.describe(),
            "source": str(c.src),
            "destination": str(c.dst),
            "protocol": PROTO_NAMES.get(c.proto, str(c.proto)),
            "port": c.dport,
            "verdict": self.verdict,
            "drop_reason_desc": self.drop_reason_desc,
            "drop_reason": DROP_REASON_CODES.get(self.drop_reason_desc or "", 0),
            "traffic_direction": self.traffic_direction,
            "policy_match_type": self.policy_match_type,
            "source_identity": self.src_identity.id if self.src_identity else None,
            "destination_identity": self.dst_identity.id if self.dst_identity else None,
            "egress_allowed_by": [ref_dict(r) for r in self.egress.allowed_by],
            "egress_denied_by": [ref_dict(r) for r in self.egress.denied_by],
            "ingress_allowed_by": [ref_dict(r) for r in self.ingress.allowed_by],
            "ingress_denied_by": [ref_dict(r) for r in self.ingress.denied_by],
            "deciding_policies": [ref_dict(r) for r in (d.denied_by or d.allowed_by)],
            "l7": self.l7.as_dict() if self.l7 else None,
            "egress": self.egress.as_dict(),
            "ingress": self.ingress.as_dict(),
        }
