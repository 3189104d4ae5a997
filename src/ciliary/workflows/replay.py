"""`ciliary replay`: decide recorded Hubble flows again under a policy set.

Every flow is judged by the same engine as `trace`. Endpoints come from the cluster
snapshot by namespace/pod name or IP, falling back to the labels and identity the flow
carries. Connections are tracked like conntrack: only the first flow of a connection is
decided; its replies and the same connection seen at other observation points follow that
verdict. DNS answers that the new policies would let through the DNS proxy feed the FQDN
cache in time order, so `toFQDNs` is judged as it would be live.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import msgspec
import orjson

from ciliary.cluster.endpoints import Endpoint
from ciliary.cluster.model import Pod
from ciliary.flows.codec import OnBadLine, ReadStats, go_json, map_raw
from ciliary.flows.head import (
    EVENT_TYPE_ABSENT,
    HEAD_DECODER,
    EndpointHead,
    EnvelopeHead,
    FlowHead,
    Layer4,
    head_from_dict,
)
from ciliary.identity.labels import LabelSet
from ciliary.l7.http import HTTPRequest
from ciliary.l7.kafka import KafkaRequest, kafka_api_key
from ciliary.model.cilium import L7Rules
from ciliary.model.policy import PolicyRef
from ciliary.policy.engine import PolicyEngine, node_name
from ciliary.policy.ports import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_NAMES,
    PROTO_SCTP,
    PROTO_TCP,
    PROTO_UDP,
)
from ciliary.verdict.decide import (
    AUDIT,
    DROP_REASON_CODES,
    DROPPED,
    DNSQuery,
    Flow,
    FlowPeer,
    L7Request,
    Verdict,
    decide,
    decide_request,
)

JSON = dict[str, Any]
_MAX_CONNECTIONS = 500_000
_MAX_KEPT_CHANGES = 10_000  # changed flows kept for the report (all are counted)
_FOLLOWS = "follows its connection"


class _Decision(msgspec.Struct):
    """A verdict and what replay writes for it: the flow's predicted verdict (DROPPED when a
    proxy denied the request) and the output fields (made when a first output flow is, then
    shared; a request that changed none of its connection's takes the connection's)."""

    verdict: Verdict
    predicted: str
    of: _Decision | None = None
    _fields: tuple[JSON, frozenset[str]] | None = None

    def fields(self) -> tuple[JSON, frozenset[str]]:
        """The output fields the decision sets and those it removes."""
        if self.of is not None:
            return self.of.fields()
        if self._fields is None:
            self._fields = _output_fields(self.verdict)
        return self._fields


def _decided(v: Verdict, of: _Decision | None = None) -> _Decision:
    return _Decision(v, DROPPED if v.l7 is not None and v.l7.verdict == DROPPED else v.verdict, of)


class ReplayedFlow(msgspec.Struct):
    """One input flow with the predicted verdict (`flow` is the output Hubble flow).

    The output flow is made when `flow` is first read: from the input line (flows the fast
    reader took) or the input dict, with the predicted verdict written in. (A msgspec Struct:
    one is made per input flow, and its C-level constructor is several times cheaper.)
    """

    recorded: str
    predicted: str
    verdict: Verdict | None  # None: followed its connection, or could not be judged
    reason: str
    file: str
    line: int
    source: bytes | JSON  # the input line, or the input flow dict
    decision: _Decision | None = None  # the decision whose fields the output flow takes
    override: str | None = None  # the output verdict, when it is not the decision's
    _out: JSON | None = None

    @property
    def flow(self) -> JSON:
        out = self._out
        if out is None:
            src = self.source
            out = src if type(src) is dict else _flow_of_line(cast(bytes, src))
            out["recorded_verdict"] = self.recorded
            if self.decision is not None:
                _apply(out, self.decision)
            if self.override is not None:
                out["verdict"] = self.override
            self._out = out
        return out

    @property
    def changed(self) -> bool:
        return _norm(self.recorded) != _norm(self.predicted)

    def json_line(self) -> bytes:
        """The output as one `{"flow": ...}` JSON line. A flow replay changes nothing in but
        `recorded_verdict` is its input line's flow object, as written, with that field added
        (not decoded and encoded again); the others are encoded as Hubble does (Go's
        HTML-safe escaping)."""
        src = self.source
        if self._out is None and self.decision is None and self.override is None and type(src) is bytes:
            raw = _flow_object(src)
            if raw.endswith(b"}") and raw != b"{}" and b'"recorded_verdict"' not in raw:
                rec = _JSON_STRINGS.get(self.recorded)
                if rec is None:
                    rec = go_json(self.recorded)
                    if len(_JSON_STRINGS) < 64:  # Hubble's verdicts are a handful
                        _JSON_STRINGS[self.recorded] = rec
                return b'{"flow":' + raw[:-1] + b',"recorded_verdict":' + rec + b"}}\n"
        return go_json({"flow": self.flow}) + b"\n"

    def describe(self) -> str:
        """`file:line source -> destination port: recorded -> predicted`, by workload."""
        f = self.flow
        ips = f.get("IP") or {}
        src = workload_of_flow_side(f.get("source"), ips.get("source"))
        dst = workload_of_flow_side(f.get("destination"), ips.get("destination"))
        return f"{self.file}:{self.line} {src} -> {dst} {port_label(f)}: {self.recorded} -> {self.predicted}"


class _EnvelopeRaw(msgspec.Struct, gc=False):
    flow: msgspec.Raw = msgspec.Raw(b"")


_FLOW_RAW = msgspec.json.Decoder(_EnvelopeRaw)  # a line's flow object, as it is written
# The envelope `hubble observe -o json` writes: the flow object, then node_name and time.
_ENVELOPE_TAIL = re.compile(rb'\},"node_name":"[^"\\]*","time":"[^"\\]*"\}\s*')
_JSON_STRINGS: dict[str, bytes] = {}  # recorded verdicts, as JSON strings


def _flow_object(line: bytes) -> bytes:
    """The text of a line's flow object: cut out of Hubble's envelope when the line has its
    exact shape (no escapes in node_name and time), else found by msgspec."""
    if line.startswith(b'{"flow":{'):
        i = line.rfind(b'},"node_name":"')
        if i > 0 and _ENVELOPE_TAIL.fullmatch(line, i):
            return line[8 : i + 1]
    return bytes(_FLOW_RAW.decode(line).flow)


def _flow_of_line(line: bytes) -> JSON:
    """The flow object of a line the fast reader took."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        # A number beyond a double in a field the fast reader skips: orjson refuses it,
        # Python's json reads it as infinity (and the line is ASCII).
        obj = json.loads(line)
    flow: JSON = obj["flow"]
    return flow


def _apply(out: JSON, d: _Decision) -> None:
    """Write a decision's predicted verdict into an output flow."""
    v = d.verdict
    upd, pops = d.fields()
    out.update(upd)
    if not pops.isdisjoint(out):
        for k in pops:
            out.pop(k, None)
    if v.l7 is not None and v.l7.verdict == DROPPED:
        out["verdict"] = DROPPED
        if v.l7.http_status and isinstance(out.get("l7"), dict):
            out["l7"] = {**out["l7"], "type": "RESPONSE"}


def port_label(f: JSON) -> str:
    """`8080/TCP`, or `ICMPv4 type 8`, of a flow's destination."""
    l4 = f.get("l4") or {}
    for name in ("TCP", "UDP", "SCTP"):
        if isinstance(l4.get(name), dict):
            return f"{l4[name].get('destination_port', 0)}/{name}"
    for name in ("ICMPv4", "ICMPv6"):
        if isinstance(l4.get(name), dict):
            return f"{name} type {l4[name].get('type', 0)}"
    return "?"


def _norm(v: str) -> str:
    # REDIRECTED and FORWARDED both deliver the packet; TRACED/TRANSLATED are not policy events.
    return "FORWARDED" if v in ("REDIRECTED", "TRACED", "TRANSLATED", "") else v


@dataclass
class ReplayReport:
    stats: ReadStats = field(default_factory=ReadStats)
    by_verdict: dict[str, int] = field(default_factory=dict)
    changed: list[ReplayedFlow] = field(default_factory=list)
    changed_count: int = 0
    unjudged: int = 0
    # (source workload, destination, port/proto) -> count, policies
    audit_groups: dict[tuple[str, str, str], AuditGroup] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "flows": self.stats.flows,
            "by_predicted_verdict": dict(sorted(self.by_verdict.items())),
            "changed": self.changed_count,
            "unjudged": self.unjudged,
            "skipped_non_flow_lines": self.stats.non_flow,
            "bad_lines": self.stats.bad,
            "bad_line_reports": [str(b) for b in self.stats.bad_lines],
            "audit": [g.as_dict() for g in sorted(self.audit_groups.values(), key=lambda g: (-g.count, g.key))],
        }


@dataclass
class AuditGroup:
    key: tuple[str, str, str]
    count: int = 0
    direction: str = ""
    reason: str = ""
    policies: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.key[0],
            "destination": self.key[1],
            "port": self.key[2],
            "flows": self.count,
            "traffic_direction": self.direction,
            "would_drop": self.reason,
            "policies": sorted(self.policies),
        }


_SECONDS: dict[str, float] = {}


def _time(t: str) -> float | None:
    if not t:
        return None
    if len(t) == 30 and t[19] == "." and t[29] == "Z":  # as Hubble writes it: nanoseconds, UTC
        base = _SECONDS.get(t[:19])
        if base is not None:
            return base + float("0." + t[20:29])
    try:
        # Hubble writes nanoseconds; Python parses microseconds. Flows come in time order,
        # so the whole-second part repeats: parse it once.
        head, _, frac = t.rstrip("Z").partition(".")
        base = _SECONDS.get(head)
        if base is None:
            base = datetime.fromisoformat(head + "+00:00").timestamp()
            if len(_SECONDS) > 4096:
                _SECONDS.clear()
            _SECONDS[head] = base
        return base + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return None


def _l4(l4: Layer4 | None) -> tuple[int, int, int] | None:
    """(protocol, source port, destination port or ICMP type)."""
    if l4 is None:
        return None
    for num, p in ((PROTO_TCP, l4.TCP), (PROTO_UDP, l4.UDP), (PROTO_SCTP, l4.SCTP)):
        if p is not None:
            return num, p.source_port, p.destination_port
    for num, icmp in ((PROTO_ICMP, l4.ICMPv4), (PROTO_ICMPV6, l4.ICMPv6)):
        if icmp is not None:
            return num, 0, icmp.type
    return None


def _peer(engine: PolicyEngine, side: EndpointHead | None, ip: str | None) -> FlowPeer:
    ns, pod = (side.namespace, side.pod_name) if side is not None else ("", "")
    if ns and pod:
        ep = engine.endpoint_of_pod(f"{ns}/{pod}")
        if ep is not None:
            return FlowPeer(ip or (ep.ips[0] if ep.ips else None), ep)
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            ip = None
    if ip:
        ep = engine.endpoint_by_ip(ip)
        if ep is not None and not (ns and pod and not ep.is_host):
            return FlowPeer(ip, ep)
    if side is not None and ns and pod:
        return FlowPeer(ip, _flow_endpoint(engine, side, ns, pod, ip))
    return FlowPeer(ip, None)


def _flow_endpoint(engine: PolicyEngine, side: EndpointHead, ns: str, pod: str, ip: str | None) -> Endpoint:
    """A pod the snapshot lacks: its identity from the labels the flow carries."""
    key = f"{ns}/{pod}"
    cached = engine.extra_endpoints.get(key)
    if cached is not None:
        return cached
    raw = [s for s in side.label_list() if isinstance(s, str)]
    labels = LabelSet.from_strings(raw, default_source="k8s") if raw else LabelSet.from_strings(
        [f"k8s:io.kubernetes.pod.namespace={ns}"], default_source="k8s"
    )
    ident = engine.allocator.allocate(labels)
    engine.add_identity(ident)
    pod_labels = {lb.key: lb.value for lb in labels if lb.source == "k8s" and not lb.key.startswith("io.")}
    p = Pod(pod, ns, pod_labels, ips=(ip,) if ip else ())
    ep = Endpoint(p, None, ident, ident.labels)
    engine.extra_endpoints[key] = ep
    return ep


def _request(l7: JSON) -> L7Request | None:
    if l7.get("type") not in ("REQUEST", None):
        return None
    if isinstance(l7.get("http"), dict):
        h = l7["http"]
        url = str(h.get("url") or "")
        path, host = url, ""
        if "://" in url:
            rest = url.split("://", 1)[1]
            host, _, tail = rest.partition("/")
            path = "/" + tail
        headers_list = []
        for x in h.get("headers") or ():
            if type(x) is dict:
                k, v = x.get("key", ""), x.get("value", "")
                headers_list.append((k if type(k) is str else str(k), v if type(v) is str else str(v)))
        headers = tuple(headers_list)
        return HTTPRequest(str(h.get("method") or "GET"), path or "/", host, headers)
    if isinstance(l7.get("kafka"), dict):
        k = l7["kafka"]
        try:
            key = kafka_api_key(k.get("api_key") or "produce")
        except (KeyError, ValueError):
            return None
        topic = k.get("topic")
        return KafkaRequest(key, int(k.get("api_version") or 0), str(k.get("correlation_id") or ""), (topic,) if topic else ())
    if isinstance(l7.get("dns"), dict):
        q = l7["dns"].get("query")
        return DNSQuery(str(q)) if q else None
    return None


def _refs(refs: list[PolicyRef]) -> list[JSON]:
    return [{"kind": r.kind, "name": r.name, "namespace": r.namespace} for r in refs]


def _workload(side: EndpointHead | None, ip: str) -> str:
    """`workload_of_flow_side` of a flow head's side (its lists decoded only if read)."""
    if side is None:
        return workload_of_flow_side(None, ip or None)
    ns, pod = side.namespace, side.pod_name
    return workload_of_flow_side({
        "namespace": ns, "pod_name": pod,
        "workloads": side.workload_list() if ns else None,
        "labels": side.label_list() if not (ns and pod) else None,
    }, ip or None)


def workload_of_flow_side(side: JSON | None, ip: str | None) -> str:
    side = side or {}
    ns = side.get("namespace")
    wl = side.get("workloads")
    if ns and isinstance(wl, list) and wl and isinstance(wl[0], dict) and wl[0].get("name"):
        return f"{ns}/{wl[0]['name']}"
    if ns and side.get("pod_name"):
        return f"{ns}/{side['pod_name']}"
    labels = side.get("labels") or []
    reserved = [s.split(":", 1)[1] for s in labels if isinstance(s, str) and s.startswith("reserved:")]
    return reserved[0] if reserved else (ip or "?")


def replay(
    engine: PolicyEngine,
    sources: Iterable[str | Path],
    *,
    strict: bool = False,
    on_bad: OnBadLine | None = None,
    report: ReplayReport | None = None,
) -> Iterator[ReplayedFlow]:
    """Yield every input flow, in input order, with its predicted verdict.

    A flow's output Hubble flow (`ReplayedFlow.flow`) is made when first read; flows decided
    the same way share their `*_allowed_by`/`*_denied_by` lists, so treat them as read-only.
    """
    rep = report if report is not None else ReplayReport()
    state = _Replayer(engine, rep)

    def read(src: str | Path) -> Iterator[ReplayedFlow]:
        state.file = str(src)  # set as the chain reaches this source
        return map_raw(src, rep.stats, state.one_dict, strict=strict, on_bad=on_bad, head=(HEAD_DECODER, state.one))

    # chain, not `yield from`: one generator frame less per flow
    return itertools.chain.from_iterable(read(src) for src in sources)


_MATCH_TYPE_CODES = {"L3_ONLY": 1, "L3_L4": 2, "L4_ONLY": 3, "ALL": 4, "L3_PROTO": 5, "PROTO_ONLY": 6}
_POLICY_KEYS = ("egress_allowed_by", "ingress_allowed_by", "egress_denied_by", "ingress_denied_by")


class _Replayer:
    """The state of one replay: connections, decisions and the peers and keys behind them.

    Only the first flow of a connection is decided; the rest follow it, so the per-flow
    path is kept short: the peers of a (namespace, pod, IP) and the decision of a
    (source side, destination side, protocol, port) are each worked out once.
    """

    def __init__(self, engine: PolicyEngine, rep: ReplayReport) -> None:
        self.engine = engine
        self.rep = rep
        self.by_verdict = rep.by_verdict
        self.file = ""  # the source being read
        self.conns: dict[tuple[Any, ...], _Decision] = {}  # the connection's decision
        self.vcache: dict[tuple[Any, ...], _Decision] = {}  # L3/L4 decisions
        self.rcache: dict[tuple[Any, ...], _Decision] = {}  # DNS query and HTTP request decisions
        self.header_rules: dict[int, tuple[Verdict, bool]] = {}
        self.peers: dict[tuple[Any, ...], tuple[FlowPeer, int, int]] = {}
        self.pairs: dict[tuple[Any, ...], tuple[FlowPeer, FlowPeer, tuple[int, int, int, int] | None]] = {}
        self.ep_keys: dict[int, tuple[Endpoint, int]] = {}  # id(endpoint) -> (it, policy side key)
        self.side_ids: dict[tuple[Any, ...], int] = {}

    # -- peers and decisions --------------------------------------------------------------
    def peer(self, side: EndpointHead | None, ip: str) -> tuple[FlowPeer, int, int]:
        """The peer of a flow side, with (for a pod endpoint, whose identity every node sees
        alike) its side key and identity; -1 for both otherwise."""
        k = (side.namespace, side.pod_name, ip) if side is not None else ("", "", ip)
        p = self.peers.get(k)
        if p is None:
            fp = _peer(self.engine, side, ip or None)
            ep = fp.endpoint
            if ep is not None and not ep.is_host:
                p = (fp, self.side_key(ep), ep.identity.id)
            else:
                p = (fp, -1, -1)
            if len(self.peers) > 200_000:
                self.peers.clear()
            self.peers[k] = p
        return p

    def side_key(self, ep: Endpoint | None) -> int:
        """Endpoints with the same compiled policy and audit mode decide alike: one int."""
        if ep is None:
            return -1
        hit = self.ep_keys.get(id(ep))
        if hit is None:
            k = (self.engine.compile_key(ep), self.engine.config.audit_for(ep.key))
            hit = self.ep_keys[id(ep)] = (ep, self.side_ids.setdefault(k, len(self.side_ids)))
        return hit[1]

    def pair(
        self, s_side: EndpointHead | None, s_ip: str, d_side: EndpointHead | None, d_ip: str,
    ) -> tuple[FlowPeer, FlowPeer, tuple[int, int, int, int] | None]:
        """The peers of a connection's source and destination, and (for two pods) the sides
        key of its decision. Hosts are seen differently from each node, and an address may
        become an FQDN identity as DNS answers arrive: their sides are worked out later."""
        k = (
            (s_side.namespace, s_side.pod_name) if s_side is not None else None, s_ip,
            (d_side.namespace, d_side.pod_name) if d_side is not None else None, d_ip,
        )
        hit = self.pairs.get(k)
        if hit is not None:
            return hit
        src, s_key, s_id = self.peer(s_side, s_ip)
        dst, d_key, d_id = self.peer(d_side, d_ip)
        hit = (src, dst, (s_key, d_id, d_key, s_id) if s_key >= 0 and d_key >= 0 else None)
        if len(self.pairs) > 200_000:
            self.pairs.clear()
        self.pairs[k] = hit
        return hit

    def sides(self, src: FlowPeer, dst: FlowPeer, now: float | None) -> tuple[int, int, int, int] | None:
        """(source side, destination as the source sees it, destination side, source as the
        destination sees it); None if an end has neither endpoint nor address."""
        engine = self.engine
        s, d = src.endpoint, dst.endpoint
        d_seen = engine.identity_seen_from(d, node_name(s) if s else None) if d is not None else (
            engine.identity_of_ip(dst.ip, node_name(s) if s else None, now) if dst.ip else None)
        s_seen = engine.identity_seen_from(s, node_name(d) if d else None) if s is not None else (
            engine.identity_of_ip(src.ip, node_name(d) if d else None, now) if src.ip else None)
        if d_seen is None or s_seen is None:
            return None
        return (self.side_key(s), d_seen.id, self.side_key(d), s_seen.id)

    def base(
        self, a: EndpointHead | None, a_ip: str, b: EndpointHead | None, b_ip: str, proto: int, port: int,
    ) -> tuple[FlowPeer, FlowPeer, tuple[Any, ...] | None, _Decision | None]:
        """The peers of a connection from `a` to `b` on `port` and, between two pods, its
        decision cache key and L3/L4 decision. Connections between the same identities on the
        same port get the same verdict: they are decided once per (source side, destination
        side, protocol, port), as the policy map would."""
        src, dst, sides = self.pair(a, a_ip, b, b_ip)
        if sides is None:
            return src, dst, None, None
        key = (sides, proto, port)
        return src, dst, key, self.l3l4(src, dst, key, None)

    def l3l4(self, src: FlowPeer, dst: FlowPeer, key: tuple[Any, ...], now: float | None) -> _Decision:
        """The L3/L4 decision of `key` = (sides, protocol, port)."""
        d = self.vcache.get(key)
        if d is None:
            d = _decided(decide(self.engine, Flow(src, dst, key[1], key[2], None, now)))
            if len(self.vcache) < 500_000:
                self.vcache[key] = d
        return d

    def decide(
        self, src: FlowPeer, dst: FlowPeer, proto: int, dport: int, request: L7Request | None, now: float | None,
    ) -> _Decision:
        """The decision of a connection with a peer that is not a pod (hosts are seen
        differently from each node, and an address may become an FQDN identity as DNS
        answers arrive): its sides are worked out for this flow."""
        sides = self.sides(src, dst, now)
        if sides is None:
            return _decided(decide(self.engine, Flow(src, dst, proto, dport, request, now)))
        key = (sides, proto, dport)
        d = self.l3l4(src, dst, key, now)
        return d if request is None else self.with_request(d, key, request)

    def with_request(self, d: _Decision, key: tuple[Any, ...], request: L7Request) -> _Decision:
        """The decision of one request on a connection decided as `d` (cache key `key`)."""
        v = d.verdict
        if not (v.egress.redirected or v.ingress.redirected):
            return d
        # A request is checked by the proxy of each redirecting side. DNS names repeat; HTTP
        # requests repeat too once headers the rules never read (request ids) are left out.
        rkey: tuple[Any, ...] | None = None
        if type(request) is DNSQuery:
            rkey = (key, request)
        elif type(request) is HTTPRequest and not self.reads_headers(v):
            rkey = (key, request.method, request.path, request.host)
        if rkey is None:
            return _request_decision(d, decide_request(self.engine, v, request))
        r = self.rcache.get(rkey)
        if r is None:
            r = _request_decision(d, decide_request(self.engine, v, request))
            if len(self.rcache) < 200_000:
                self.rcache[rkey] = r
        return r

    def reads_headers(self, v: Verdict) -> bool:
        """Whether an HTTP rule a redirecting side of `v` checks requests against looks at
        headers (then every request is judged on its own)."""
        hit = self.header_rules.get(id(v))
        if hit is not None and hit[0] is v:
            return hit[1]
        reads = False
        for side in (v.egress, v.ingress):
            if side.redirected and side.policy is not None and side.peer_identity is not None:
                for c in side.policy.policy_map.l7_contributions(side.peer_identity.id, v.flow.proto, v.flow.dport):
                    if isinstance(c.rules, L7Rules) and c.rules.http:
                        reads = reads or any(r.headers or r.header_matches for r in c.rules.http)
        self.header_rules[id(v)] = (v, reads)
        return reads

    # -- one flow -------------------------------------------------------------------------
    def one_dict(self, flow: JSON, _env: JSON | None, lineno: int) -> ReplayedFlow:
        """A flow of the full reader."""
        rf = self.one(EnvelopeHead(head_from_dict(flow)), flow, lineno)
        assert rf is not None
        return rf

    def one(self, env: EnvelopeHead, source: bytes | JSON, lineno: int) -> ReplayedFlow | None:
        """One flow, from the line the fast reader decoded (or the full reader's dict);
        None hands a line not in canonical form to the full reader."""
        f = env.flow
        if f is None or f.event_type is EVENT_TYPE_ABSENT:
            return None
        recorded = f.verdict
        ips = f.IP
        if ips is not None:
            sip, dip = ips.source, ips.destination
        else:
            sip = dip = ""
        l4 = f.l4
        tcp = l4.TCP if l4 is not None else None
        if tcp is not None:  # most flows: _l4 inlined
            proto, sport, dport = PROTO_TCP, tcp.source_port, tcp.destination_port
        else:
            t = _l4(l4)
            if t is None:
                return self.judge(f, source, recorded, sip, dip, None, bool(f.is_reply), lineno)
            proto, sport, dport = t
        is_reply = f.is_reply is True
        if f.l7 is None and sip and dip:
            # The common case first: an L3/L4 flow of a connection already seen.
            conns = self.conns
            if is_reply:
                known = conns.get((proto, dip, dport, sip, sport)) or conns.get((proto, sip, sport, dip, dport))
            else:
                known = conns.get((proto, sip, sport, dip, dport))
            if known is not None:
                return self.follow(known, recorded, is_reply, source, lineno)
            return self.judge(f, source, recorded, sip, dip, (proto, sport, dport), is_reply, lineno, tracked=False)
        return self.judge(f, source, recorded, sip, dip, (proto, sport, dport), is_reply, lineno)

    def follow(self, known: _Decision, recorded: str, is_reply: bool, source: bytes | JSON, lineno: int) -> ReplayedFlow:
        """A flow of a connection already decided (conntrack): the connection's verdict; a
        reply of a dropped connection never happens, one of an allowed one keeps its own."""
        predicted = known.verdict.verdict
        if predicted == DROPPED:
            rf = ReplayedFlow(recorded, predicted, None, _FOLLOWS, self.file, lineno, source, known,
                              None if predicted == recorded else predicted)
        else:
            if is_reply:
                predicted = recorded if recorded and recorded != DROPPED else "FORWARDED"
            rf = ReplayedFlow(recorded, predicted, None, _FOLLOWS, self.file, lineno, source, None,
                              None if predicted == recorded else predicted)
        return self.count(rf)

    def judge(
        self, f: FlowHead, source: bytes | JSON, recorded: str, sip: str, dip: str, l4: tuple[int, int, int] | None,
        is_reply: bool, lineno: int, tracked: bool = True,
    ) -> ReplayedFlow:
        """Decide a flow that does not follow a known connection (`tracked`: look it up)."""
        engine, rep, file = self.engine, self.rep, self.file
        l7 = f.l7
        # DNS answers feed the FQDN cache if the new policies let the query through the proxy.
        if l7 is not None and l4 is not None and l7.get("type") == "RESPONSE" and isinstance(l7.get("dns"), dict):
            dns = l7["dns"]
            now = _time(f.time)
            query = dns.get("query")
            client, server, key, base = self.base(f.destination, dip, f.source, sip, l4[0], l4[1])
            if client.endpoint is not None and query:
                answer_ips = [i for i in dns.get("ips") or [] if isinstance(i, str)]
                q_req = DNSQuery(str(query))
                if key is not None and base is not None:
                    qd = self.with_request(base, key, q_req)
                else:
                    qd = self.decide(client, server, l4[0], l4[1], q_req, now)
                q = qd.verdict
                ok = q.verdict != DROPPED and q.egress.redirected and (q.egress.l7 is None or q.egress.l7.verdict != DROPPED)
                if ok and answer_ips:
                    engine.learn_dns(client.endpoint, q_req.qname, answer_ips, int(dns.get("ttl") or 0), now)
                predicted = qd.predicted
                return self.count(ReplayedFlow(recorded, predicted, q, "DNS response", file, lineno, source, qd))
        if l4 is None or not sip or not dip:
            rep.unjudged += 1
            return self.count(ReplayedFlow(recorded, recorded, None, "no IP/L4 to judge", file, lineno, source))
        proto, sport, dport = l4
        key = (proto, sip, sport, dip, dport)
        rkey = (proto, dip, dport, sip, sport)
        request = _request(l7) if l7 is not None else None
        conns = self.conns
        if request is None and tracked:
            known = conns.get(rkey) if is_reply else conns.get(key)
            if known is None and is_reply:
                known = conns.get(key)
            if known is not None:
                return self.follow(known, recorded, is_reply, source, lineno)
        # A reply whose connection we never saw is judged in the original direction.
        if is_reply:
            src, dst, vkey, base = self.base(f.destination, dip, f.source, sip, proto, sport)
            port, request = sport, None
        else:
            src, dst, vkey, base = self.base(f.source, sip, f.destination, dip, proto, dport)
            port = dport
        if vkey is not None and base is not None:  # two pods
            now = None
            d = base if request is None else self.with_request(base, vkey, request)
        else:
            # Time matters only for an address once DNS answers were learned (their TTLs).
            now = _time(f.time) if engine.fqdn_caches else None
            d = self.decide(src, dst, proto, port, request, now)
        if is_reply:
            conns[rkey] = d
        elif request is None:
            conns[key] = d
        if len(conns) > _MAX_CONNECTIONS:
            # Forget the oldest connections, like conntrack garbage collection.
            for old in list(conns)[: _MAX_CONNECTIONS // 10]:
                del conns[old]
        v, predicted = d.verdict, d.predicted
        if is_reply:
            override = None
            if predicted != DROPPED:
                override = predicted = recorded if recorded and recorded != DROPPED else "FORWARDED"
            rf = ReplayedFlow(recorded, predicted, v, "decided", file, lineno, source, d, override)
        else:
            if dst.endpoint is None and predicted != DROPPED and src.endpoint is not None:
                cache = engine.fqdn_caches.get(src.endpoint.key)
                if cache is not None:
                    cache.mark_connection(dip, now)
            rf = ReplayedFlow(recorded, predicted, v, "decided", file, lineno, source, d)
        if v.verdict == AUDIT:
            self.audit(f, v, sip, dip, proto, sport, dport, is_reply)
        return self.count(rf)

    def audit(self, f: FlowHead, v: Verdict, sip: str, dip: str, proto: int, sport: int, dport: int, is_reply: bool) -> None:
        side = v.deciding
        if is_reply:  # judged in the connection's original direction
            g_key = (_workload(f.destination, dip), _workload(f.source, sip), f"{sport}/{PROTO_NAMES.get(proto, proto)}")
        else:
            g_key = (_workload(f.source, sip), _workload(f.destination, dip), f"{dport}/{PROTO_NAMES.get(proto, proto)}")
        g = self.rep.audit_groups.setdefault(g_key, AuditGroup(g_key))
        g.count += 1
        g.direction = v.traffic_direction
        g.reason = side.audited_drop_reason or ""
        if side.denied_by:
            g.policies.update(str(r) for r in side.denied_by)
        elif side.policy is not None:
            g.policies.update(str(r.origin.ref) for r in side.policy.rules if r.default_deny)

    def count(self, rf: ReplayedFlow) -> ReplayedFlow:
        by = self.by_verdict
        by[rf.predicted] = by.get(rf.predicted, 0) + 1
        if rf.recorded != rf.predicted and rf.changed:
            self.count_change(rf)
        return rf

    def count_change(self, rf: ReplayedFlow) -> None:
        rep = self.rep
        rep.changed_count += 1
        if len(rep.changed) < _MAX_KEPT_CHANGES:
            rep.changed.append(rf)


def _request_decision(base: _Decision, r: Verdict) -> _Decision:
    """The decision of a request on a connection decided as `base`: the output fields are
    base's when the request changed none of what they are made of (only the proxy's verdict,
    which `apply` writes itself)."""
    v = base.verdict
    if (
        r.verdict == v.verdict and r.drop_reason_desc == v.drop_reason_desc
        and r.traffic_direction == v.traffic_direction and r.policy_match_type == v.policy_match_type
        and r.egress.allowed_by is v.egress.allowed_by and r.egress.denied_by is v.egress.denied_by
        and r.ingress.allowed_by is v.ingress.allowed_by and r.ingress.denied_by is v.ingress.denied_by
    ):
        return _decided(r, base)
    return _decided(r)


def _output_fields(v: Verdict) -> tuple[JSON, frozenset[str]]:
    """The output fields a verdict sets and those it removes."""
    upd: JSON = {"verdict": v.verdict}
    pops: list[str] = []
    if v.drop_reason_desc:
        upd["drop_reason_desc"] = v.drop_reason_desc
        upd["drop_reason"] = DROP_REASON_CODES.get(v.drop_reason_desc, 0)
    else:
        pops += ["drop_reason_desc", "drop_reason"]
    upd["traffic_direction"] = v.traffic_direction
    upd["policy_match_type"] = _MATCH_TYPE_CODES.get(v.policy_match_type, 0)
    for key, refs in zip(
        _POLICY_KEYS, (v.egress.allowed_by, v.ingress.allowed_by, v.egress.denied_by, v.ingress.denied_by), strict=True,
    ):
        if refs:
            upd[key] = _refs(refs)
        else:
            pops.append(key)
    return upd, frozenset(pops)

