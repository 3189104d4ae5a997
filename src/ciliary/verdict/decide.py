"""Deciding one connection as Cilium does, without memory: the source's egress policy if
it is a managed endpoint, then the destination's ingress policy if it is one (semantics §0).

These functions are the plain, uncached definition of a verdict. `Decider`
(`ciliary.verdict.decider`) is what workflows call: it decides connections that share a
key once and is tested against these functions.

Contracts: nothing here writes to the engine except `observe_dns_answer`, which feeds the
source's FQDN cache exactly when the DNS proxy would (`dns_answer_learned`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import msgspec

from ciliary.cluster.endpoints import Endpoint
from ciliary.identity.allocator import Identity
from ciliary.policy.engine import PolicyEngine, node_name
from ciliary.policy.rules import EGRESS, INGRESS
from ciliary.verdict.l7check import L7Matchers, check_l7
from ciliary.verdict.types import (
    AUDIT,
    AUTH_REQUIRED,
    DROPPED,
    FORWARDED,
    POLICY_DENIED,
    POLICY_DENY,
    REDIRECTED,
    Connection,
    DNSQuery,
    FlowPeer,
    L7Request,
    L7Verdict,
    SideVerdict,
    Verdict,
)


def decide_side(
    engine: PolicyEngine, ep: Endpoint, direction: str, peer: Identity, proto: int, port: int,
    request: L7Request | None = None, matchers: L7Matchers | None = None,
) -> SideVerdict:
    """One side: `ep`'s policy in `direction` looked up for identity `peer` on (proto, port)."""
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
        side.denied_by = list(e.refs)
        side.verdict, side.drop_reason_desc = DROPPED, POLICY_DENY
    elif result.allowed:
        assert e is not None
        side.allowed_by = list(e.refs)
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
        side.l7 = check_l7(cfg, matchers or L7Matchers(), pol, direction, peer.id, proto, port, request)
    if side.verdict == DROPPED and side.audit_mode and side.drop_reason_desc in (POLICY_DENIED, POLICY_DENY):
        # Hubble: verdict 0 with the audited flag -> AUDIT, and no drop reason.
        side.verdict, side.audited_drop_reason, side.drop_reason_desc = AUDIT, side.drop_reason_desc, None
    return side


def seen_identity(engine: PolicyEngine, peer: FlowPeer, observer: str | None, now: float | None = None) -> Identity:
    """A peer's identity as the datapath of node `observer` sees it at time `now`."""
    if peer.endpoint is not None:
        return engine.identity_seen_from(peer.endpoint, observer)
    assert peer.ip is not None
    return engine.identity_of_ip(peer.ip, observer, now)


def seen_identities(engine: PolicyEngine, src: FlowPeer, dst: FlowPeer, now: float | None) -> tuple[Identity, Identity]:
    """(the source as the destination's node sees it, the destination as the source's)."""
    s, d = src.endpoint, dst.endpoint
    dst_seen = seen_identity(engine, dst, node_name(s) if s else None, now)
    src_seen = seen_identity(engine, src, node_name(d) if d else None, now)
    return src_seen, dst_seen


def decide(
    engine: PolicyEngine, conn: Connection, *, matchers: L7Matchers | None = None,
    seen: tuple[Identity, Identity] | None = None,
) -> Verdict:
    """The verdict of a new connection (replies follow conntrack and are not re-checked).
    `seen` = `seen_identities(...)` when the caller resolved them already."""
    src_ep, dst_ep = conn.src.endpoint, conn.dst.endpoint
    src_seen, dst_seen = seen or seen_identities(engine, conn.src, conn.dst, conn.time)
    if matchers is None and conn.l7 is not None:
        matchers = L7Matchers()  # one call's worth: compiled only if a proxy is reached
    if src_ep is not None:
        egress = decide_side(engine, src_ep, EGRESS, dst_seen, conn.proto, conn.dport, conn.l7, matchers)
    else:
        egress = SideVerdict(EGRESS, None, dst_seen, reason="source is not a managed endpoint")
    if dst_ep is not None and _passes(egress):
        ingress = decide_side(engine, dst_ep, INGRESS, src_seen, conn.proto, conn.dport, conn.l7, matchers)
    else:
        ingress = _not_reached(conn, egress, src_seen)
    return _combine(conn, egress, ingress, src_seen, dst_seen)


def decide_request(
    engine: PolicyEngine, base: Verdict, request: L7Request, matchers: L7Matchers | None = None,
) -> Verdict:
    """The verdict of one request on a connection whose L3/L4 verdict is `base` (decided
    without a request): the same as `decide` with the request, without deciding L3/L4 again.
    Only the sides that redirect to the proxy check the request."""
    conn = base.connection
    if conn.l7 is not None:
        raise ValueError("the base verdict must be decided without a request")
    rconn = Connection(conn.src, conn.dst, conn.proto, conn.dport, request, conn.time)
    if not base.redirected:
        return msgspec.structs.replace(base, connection=rconn)
    matchers = matchers or L7Matchers()
    cfg = engine.config
    egress, ingress = base.egress, base.ingress
    if egress.redirected and egress.policy is not None and egress.peer_identity is not None:
        egress = egress.with_l7(check_l7(
            cfg, matchers, egress.policy, EGRESS, egress.peer_identity.id, conn.proto, conn.dport, request))
    assert base.src_identity is not None and base.dst_identity is not None
    if conn.dst.endpoint is not None and _passes(egress):
        if ingress.redirected and ingress.policy is not None and ingress.peer_identity is not None:
            ingress = ingress.with_l7(check_l7(
                cfg, matchers, ingress.policy, INGRESS, ingress.peer_identity.id, conn.proto, conn.dport, request))
    else:
        ingress = _not_reached(rconn, egress, base.src_identity)
    return _combine(rconn, egress, ingress, base.src_identity, base.dst_identity)


def _passes(egress: SideVerdict) -> bool:
    """The packet gets past the source's egress (policy and proxy) to the destination."""
    return egress.verdict != DROPPED and not egress.proxy_denied


def _not_reached(conn: Connection, egress: SideVerdict, src_seen: Identity) -> SideVerdict:
    dst_ep = conn.dst.endpoint
    if dst_ep is None:
        return SideVerdict(INGRESS, None, src_seen, reason="destination is not a managed endpoint")
    if egress.verdict != DROPPED:
        return SideVerdict(INGRESS, dst_ep.key, src_seen, reason="not reached: the request was denied by the egress proxy")
    return SideVerdict(INGRESS, dst_ep.key, src_seen, reason="not reached: dropped at egress")


def _combine(conn: Connection, egress: SideVerdict, ingress: SideVerdict, src_seen: Identity, dst_seen: Identity) -> Verdict:
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
    if egress.proxy_denied:
        l7 = egress.l7
    elif ingress.proxy_denied:
        l7 = ingress.l7
    else:
        l7 = ingress.l7 or egress.l7
    return Verdict(
        conn, verdict, deciding.drop_reason_desc, direction, deciding.match_type, egress, ingress,
        src_seen, dst_seen, l7,
    )


def resolve_peer(engine: PolicyEngine, text: str) -> FlowPeer:
    """`NS/POD`, `node/NAME`, or an IP address (a pod's or node's IP becomes that endpoint)."""
    try:
        ip = str(ipaddress.ip_address(text))
    except ValueError:
        ep = engine.endpoint_of_pod(text)
        if ep is None:
            raise LookupError(f"no endpoint {text!r} in the cluster (expected NS/POD, node/NAME or an IP)") from None
        return FlowPeer(ep.ips[0] if ep.ips else None, ep)
    return FlowPeer(ip, engine.endpoint_by_ip(ip))


def endpoint_peer(ep: Endpoint) -> FlowPeer:
    """An endpoint as a peer, at its first address."""
    return FlowPeer(ep.ips[0] if ep.ips else None, ep)


# -- DNS answers ------------------------------------------------------------------------


@dataclass
class DNSObservation:
    """One DNS answer passed through the client's DNS policy, and whether it was learned."""

    name: str
    ips: list[str]
    server: str
    verdict: Verdict  # of the query
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


def dns_answer_learned(query: Verdict) -> tuple[bool, str]:
    """Whether the answer to a query decided as `query` reaches the FQDN cache, and why:
    the query must be allowed and redirected to the DNS proxy (an L7 `dns` rule on the
    client's egress), and the proxy must allow the name (semantics §7)."""
    if query.verdict == DROPPED:
        return False, f"the DNS query was dropped ({query.drop_reason_desc}, {query.traffic_direction})"
    if not query.egress.redirected:
        return False, ("the DNS query was not redirected to the DNS proxy (no L7 dns rule on the source's egress): "
                       "nothing is learned, toFQDNs cannot allow this name")
    if query.egress.proxy_denied:
        assert query.egress.l7 is not None
        return False, f"the DNS proxy refused the query ({query.egress.l7.dns_rcode})"
    return True, "allowed by the DNS proxy: the answer is in the FQDN cache"


def dns_servers(engine: PolicyEngine) -> list[Endpoint]:
    """The cluster DNS: kube-system pods labelled k8s-app=kube-dns."""
    return [
        ep for ep in engine.pod_endpoints
        if ep.namespace == "kube-system" and ep.pod is not None and ep.pod.labels.get("k8s-app") == "kube-dns"
    ]


def cluster_dns(engine: PolicyEngine) -> FlowPeer:
    servers = dns_servers(engine)
    if not servers:
        raise LookupError("no DNS server in the cluster (kube-system pods with k8s-app=kube-dns)")
    return endpoint_peer(servers[0])


def observe_dns_answer(
    engine: PolicyEngine, src: FlowPeer, name: str, ips: list[str], *, ttl: int = 3600,
    now: float | None = None, server: FlowPeer | None = None, proto: int = 17, port: int = 53,
) -> DNSObservation:
    """A lookup of `name` by `src` answered with `ips`, exactly as the datapath sees it: the
    answer feeds the FQDN cache when `dns_answer_learned` says so."""
    server = server or cluster_dns(engine)
    v = decide(engine, Connection(src, server, proto, port, DNSQuery(name)))
    learned, reason = dns_answer_learned(v)
    if learned:
        assert src.endpoint is not None
        engine.learn_dns(src.endpoint, name, ips, ttl, now)
    return DNSObservation(name, ips, str(server), v, learned, reason)
