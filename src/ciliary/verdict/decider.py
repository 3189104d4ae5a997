"""The one decider: every workflow (trace, matrix, diff, replay, and whatever enforces or
shows verdicts) asks a `Decider` built on a policy engine; none of them reads policy maps,
L7 rules or engine internals.

A connection's verdict depends only on its `DecisionKey`: the policy each side enforces,
the identity each side's node sees the other end as, the protocol and the port. Connections
with equal keys share one `Decision`, so a stream of flows costs one decision per key.
A request on a connection is decided from the connection's decision (only the proxies of
redirecting sides look at it); requests that cannot differ in verdict share one too: DNS
queries for one name, and HTTP requests with the same method, path and host when no rule on
the way reads headers.

Contracts:
* Decisions and their verdicts are shared: read-only for everyone. A shared verdict names
  the connection and endpoints decided first with its key (`verdict.connection`,
  `SideVerdict.endpoint`), not necessarily the caller's.
* Caches are memos (`BoundedCache`): forgetting one never changes a decision. A key holds
  resolved identities, so an address that becomes an FQDN identity as DNS answers arrive
  gets a new key; nothing cached goes stale when identities are added.
* The decider writes to the engine in two places only, both datapath events: a DNS answer
  the proxy let through (`learn_dns_answer`) and a live connection to an FQDN address
  (`note_connection`, which keeps its names through the grace period).
* `decide`, `decide_request` and `observe_dns_answer` in `ciliary.verdict.decide` are the
  plain definitions every answer here must equal (tests compare them).
* Port sets (`decide_port_set`): a connection's verdict depends on its port only through
  the two sides' policy-map lookups, and each map's lookup is constant between its
  `port_bounds`; so one decision at the start of each interval between the union of both
  sides' bounds is the decision of every port in it (tests compare every port).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, cast

import msgspec

from ciliary.cache import BoundedCache
from ciliary.cluster.endpoints import Endpoint
from ciliary.identity.allocator import Identity
from ciliary.policy.engine import PolicyEngine, policy_key
from ciliary.policy.ports import PROTO_ICMP, PROTO_SCTP, PROTO_TCP, PROTO_UDP, port_max
from ciliary.policy.rules import EGRESS, INGRESS
from ciliary.verdict.decide import (
    DNSObservation,
    cluster_dns,
    decide,
    decide_request,
    dns_answer_learned,
    seen_identities,
)
from ciliary.verdict.l7check import L7Matchers, http_rules_read_headers, l7_kind
from ciliary.verdict.types import DROPPED, Connection, DNSQuery, FlowPeer, L7Request, Verdict

if TYPE_CHECKING:
    from ciliary.l7.http import HTTPRequest

NOT_AN_ENDPOINT = -1  # the policy number of a peer that is not a managed endpoint


class DecisionKey(msgspec.Struct, frozen=True, gc=False):
    """What a connection's verdict depends on; equal keys, equal verdicts."""

    # The source's egress policy: endpoints with the same compiled policy and audit mode
    # share a number (`Decider.policy_number`); NOT_AN_ENDPOINT for any other source.
    src_policy: int
    # The destination's identity as the source's node sees it (hosts look different from
    # each node; an address may be an FQDN identity once DNS answers were learned).
    dst_identity: int
    dst_policy: int  # the destination's ingress policy, numbered like src_policy
    src_identity: int  # the source's identity as the destination's node sees it
    proto: int  # IP protocol number
    port: int  # destination port, or ICMP type


class PeerPair(msgspec.Struct, frozen=True, gc=False):
    """A source and destination as the decider keys them. Between two pods the policy
    numbers and identities are the same from every node at every time, so they are worked
    out once (`fixed`); otherwise per connection."""

    src: FlowPeer
    dst: FlowPeer
    fixed: tuple[int, int, int, int] | None  # (src_policy, dst_identity, dst_policy, src_identity)
    decidable: bool  # both ends are an endpoint or an address (an unparsable address is neither)


class Decision(msgspec.Struct):
    """The verdict of every connection (or request on one) with one key."""

    key: DecisionKey | None  # None: decided on its own (an end with neither endpoint nor address)
    verdict: Verdict
    predicted: str  # the flow's verdict: DROPPED when a proxy denied the request
    # For a request decision whose L3/L4 outcome (verdict, drop reason, direction, match
    # type, allowing and denying policies) is its connection's: that connection decision,
    # whose output fields it shares.
    fields_of: Decision | None = None
    _fields: tuple[dict[str, Any], frozenset[str]] | None = None
    _reads_headers: bool | None = None
    _views: dict[str, Decision] | None = None

    def at(self, direction: str) -> Decision:
        """This decision as a policy-verdict event of `direction` reports it
        (`Verdict.observed_at`); made once per direction."""
        views = self._views
        if views is None:
            views = self._views = {}
        hit = views.get(direction)
        if hit is None:
            v = self.verdict.observed_at(direction)
            hit = views[direction] = self if v is self.verdict else Decision(self.key, v, v.predicted)
        return hit

    def hubble_fields(self) -> tuple[dict[str, Any], frozenset[str]]:
        """The Hubble flow fields this decision sets, and those it removes (made once)."""
        if self.fields_of is not None:
            return self.fields_of.hubble_fields()
        if self._fields is None:
            self._fields = self.verdict.hubble_fields()
        return self._fields


# The protocols a port set covers: the ones with ports, and ICMP (types as ports).
PORT_SET_PROTOS = (PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP)


class PortInterval(NamedTuple):
    """Every port lo..hi of `proto` (ICMP: types) decides as `decision` (decided at lo)."""

    proto: int
    lo: int
    hi: int
    decision: Decision

    @property
    def allowed(self) -> bool:
        return self.decision.verdict.verdict != DROPPED


def _decision(key: DecisionKey | None, v: Verdict, fields_of: Decision | None = None) -> Decision:
    return Decision(key, v, v.predicted, fields_of)


def _same_outcome(r: Verdict, v: Verdict) -> bool:
    """A request's verdict `r` changed none of connection verdict `v`'s output fields (the
    proxy's own verdict is written separately)."""
    return (
        r.verdict == v.verdict and r.drop_reason_desc == v.drop_reason_desc
        and r.traffic_direction == v.traffic_direction and r.policy_match_type == v.policy_match_type
        and r.egress.allowed_by is v.egress.allowed_by and r.egress.denied_by is v.egress.denied_by
        and r.ingress.allowed_by is v.ingress.allowed_by and r.ingress.denied_by is v.ingress.denied_by
    )


class Decider:
    """Decides connections, requests and DNS answers on one engine, each key once."""

    def __init__(self, engine: PolicyEngine, *, cache_size: int = 500_000) -> None:
        self.engine = engine
        self._matchers = L7Matchers()
        # endpoint key -> (the endpoint, its policy number); the endpoint is checked on use
        self._endpoint_numbers: dict[str, tuple[Endpoint, int]] = {}
        self._numbers: dict[tuple[object, ...], int] = {}  # (compile key, audit mode) -> number
        self._connections: BoundedCache[DecisionKey, Decision] = BoundedCache(cache_size)
        self._requests: BoundedCache[tuple[Any, ...], Decision] = BoundedCache(cache_size // 2)
        self._bounds: dict[tuple[int, int, int], tuple[int, ...]] = {}  # (src, dst policy numbers, proto)

    # -- keys ----------------------------------------------------------------------------
    def policy_number(self, ep: Endpoint | None) -> int:
        """Endpoints that enforce the same compiled policy in the same audit mode decide
        alike: one number for them (NOT_AN_ENDPOINT for None)."""
        if ep is None:
            return NOT_AN_ENDPOINT
        hit = self._endpoint_numbers.get(ep.key)
        if hit is not None and hit[0] is ep:
            return hit[1]
        engine = self.engine
        k = (engine.compile_key(ep), engine.config.audit_for(ep.key))
        n = self._numbers.setdefault(k, len(self._numbers))
        self._endpoint_numbers[ep.key] = (ep, n)
        return n

    def pods_alike(self, endpoints: list[Endpoint]) -> list[list[Endpoint]]:
        """`endpoints` grouped so that the members of a group decide alike at either end of
        a connection with another pod: one identity, one compiled policy but for the node's
        view of the host identity (which only host peers see), one audit mode. A host is
        seen differently from each node: alone. Groups in first-seen order."""
        groups: dict[object, list[Endpoint]] = {}
        audit = self.engine.config.audit_for
        for ep in endpoints:
            key: object = ep.key if ep.is_host else (policy_key(ep), audit(ep.key))
            groups.setdefault(key, []).append(ep)
        return list(groups.values())

    def pair(self, src: FlowPeer, dst: FlowPeer) -> PeerPair:
        s, d = src.endpoint, dst.endpoint
        if s is None or d is None or s.is_host or d.is_host:
            decidable = (s is not None or src.ip is not None) and (d is not None or dst.ip is not None)
            return PeerPair(src, dst, None, decidable)
        return PeerPair(src, dst, (self.policy_number(s), d.identity.id, self.policy_number(d), s.identity.id), True)

    def time_matters(self, pair: PeerPair) -> bool:
        """Whether `now` can change this pair's decisions: an end is an address (or a host)
        and DNS answers were learned, whose names expire."""
        return pair.fixed is None and self.engine.has_learned_names

    def _seen(self, pair: PeerPair, now: float | None) -> tuple[Identity, Identity]:
        if pair.fixed is not None:
            assert pair.src.endpoint is not None and pair.dst.endpoint is not None
            return pair.src.endpoint.identity, pair.dst.endpoint.identity
        return seen_identities(self.engine, pair.src, pair.dst, now)

    # -- connections ---------------------------------------------------------------------
    def decide_connection(self, src: FlowPeer, dst: FlowPeer, proto: int, port: int, now: float | None = None) -> Decision:
        """The decision of a new connection from `src` to `dst` on (proto, port) at `now`."""
        return self.decide_pair(self.pair(src, dst), proto, port, now)

    def decide_pair(self, pair: PeerPair, proto: int, port: int, now: float | None = None) -> Decision:
        if not pair.decidable:
            raise ValueError(f"cannot decide {pair.src} -> {pair.dst}: an end has neither endpoint nor address")
        fixed = pair.fixed
        seen = None
        if fixed is not None:
            key = DecisionKey(fixed[0], fixed[1], fixed[2], fixed[3], proto, port)
        else:
            seen = self._seen(pair, now)
            key = DecisionKey(
                self.policy_number(pair.src.endpoint), seen[1].id, self.policy_number(pair.dst.endpoint),
                seen[0].id, proto, port,
            )
        d = self._connections.get(key)
        if d is None:
            conn = Connection(pair.src, pair.dst, proto, port, None, now)
            v = decide(self.engine, conn, matchers=self._matchers, seen=seen or self._seen(pair, now))
            d = self._connections.put(key, _decision(key, v))
        return d

    # -- port sets -----------------------------------------------------------------------
    def port_bounds(self, pair: PeerPair, proto: int) -> tuple[int, ...]:
        """The union of both sides' policy-map bounds for `proto` (memoised per pair of
        policy numbers: endpoints with one number have one compiled policy)."""
        s, d = pair.src.endpoint, pair.dst.endpoint
        key = (self.policy_number(s), self.policy_number(d), proto)
        hit = self._bounds.get(key)
        if hit is not None:
            return hit
        bounds: set[int] = {0}
        engine = self.engine
        if s is not None:
            bounds.update(engine.policy(s).direction(EGRESS).policy_map.port_bounds(proto))
        if d is not None:
            bounds.update(engine.policy(d).direction(INGRESS).policy_map.port_bounds(proto))
        out = self._bounds[key] = tuple(sorted(bounds))
        return out

    def decide_port_set(
        self, pair: PeerPair, protos: tuple[int, ...] = PORT_SET_PROTOS, now: float | None = None,
    ) -> list[PortInterval]:
        """Every port of every protocol in `protos`, as intervals that decide alike, in
        protocol then port order: one decision per interval, not one per port."""
        out: list[PortInterval] = []
        for proto in protos:
            bounds = self.port_bounds(pair, proto)
            top = port_max(proto)
            last = len(bounds) - 1
            for i, lo in enumerate(bounds):
                hi = bounds[i + 1] - 1 if i < last else top
                out.append(PortInterval(proto, lo, hi, self.decide_pair(pair, proto, lo, now)))
        return out

    # -- requests ------------------------------------------------------------------------
    def decide_request(self, connection: Decision, request: L7Request) -> Decision:
        """The decision of one request on a connection decided as `connection`."""
        v = connection.verdict
        if not v.redirected:
            return connection
        rkey = self._request_key(connection, request)
        if rkey is not None:
            hit = self._requests.get(rkey)
            if hit is not None:
                return hit
        r = decide_request(self.engine, v, request, self._matchers)
        d = _decision(connection.key, r, connection if _same_outcome(r, v) else None)
        if rkey is not None:
            self._requests.put(rkey, d)
        return d

    def _request_key(self, connection: Decision, request: L7Request) -> tuple[Any, ...] | None:
        """Requests with equal keys on one connection key get one verdict; None: judge on
        its own. DNS names repeat; so do HTTP requests once headers no rule reads (request
        ids, tracing) are left out."""
        if connection.key is None:
            return None
        if type(request) is DNSQuery:
            return (connection.key, "dns", request.qname)
        if l7_kind(request) == "http" and not self._reads_headers(connection):
            http = cast("HTTPRequest", request)
            return (connection.key, "http", http.method, http.path, http.host)
        return None

    def _reads_headers(self, d: Decision) -> bool:
        """Whether an HTTP rule a redirecting side checks requests against reads headers."""
        if d._reads_headers is None:
            v = d.verdict
            c = v.connection
            d._reads_headers = any(
                http_rules_read_headers(side.policy, side.peer_identity.id, c.proto, c.dport)
                for side in (v.egress, v.ingress)
                if side.redirected and side.policy is not None and side.peer_identity is not None
            )
        return d._reads_headers

    # -- DNS -----------------------------------------------------------------------------
    def decide_query(self, pair: PeerPair, proto: int, port: int, qname: str, now: float | None = None) -> Decision:
        """A DNS query for `qname` from `pair.src` to the server `pair.dst`."""
        return self.decide_request(self.decide_pair(pair, proto, port, now), DNSQuery(qname))

    def learn_dns_answer(
        self, query: Decision, client: FlowPeer, qname: str, ips: list[str], ttl: int, now: float | None,
    ) -> tuple[bool, str]:
        """The answer to a query decided as `query`: learned by `client`'s FQDN cache when
        the DNS proxy let it through (`dns_answer_learned`). Returns (learned, why)."""
        learned, reason = dns_answer_learned(query.verdict)
        if learned and ips:
            assert client.endpoint is not None
            self.engine.learn_dns(client.endpoint, qname, ips, ttl, now)
        return learned, reason

    def observe_dns_answer(
        self, client: FlowPeer, qname: str, ips: list[str], *, ttl: int = 3600, now: float | None = None,
        server: FlowPeer | None = None, proto: int = 17, port: int = 53,
    ) -> DNSObservation:
        """A lookup of `qname` by `client` (to the cluster DNS unless `server` is given)
        answered with `ips`, as the datapath sees it."""
        server = server or cluster_dns(self.engine)
        query = self.decide_query(self.pair(client, server), proto, port, qname, now)
        learned, reason = self.learn_dns_answer(query, client, qname, ips, ttl, now)
        return DNSObservation(qname, ips, str(server), query.verdict, learned, reason)

    def note_connection(self, pair: PeerPair, decision: Decision, now: float | None) -> None:
        """A new connection the datapath let through: to an address a DNS answer named, it
        keeps the name usable through tofqdns-idle-connection-grace-period (conntrack)."""
        src, dst = pair.src, pair.dst
        if dst.endpoint is None and src.endpoint is not None and dst.ip and decision.predicted != DROPPED:
            self.engine.mark_fqdn_connection(src.endpoint, dst.ip, now)
