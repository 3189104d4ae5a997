"""`ciliary replay`: decide recorded Hubble flows again under a policy set.

Replay reads flows, tracks connections like conntrack and reports; the `Decider` decides.
Only the first flow of a connection is decided; its replies and the same connection seen
at other observation points follow that verdict (a reply whose connection was never seen
is decided in the connection's direction). Older Hubble wrote `reply` instead of
`is_reply`; a flow that says neither is a reply when conntrack would make it one
(`flows.sides.unmarked_reply`). DNS answers go to the decider in time order,
which learns them when the new policies let the query through the DNS proxy, so
`toFQDNs` is judged as it would be live.

Contracts: output flows are made when first read and never change the input; flows decided
alike share their `*_allowed_by`/`*_denied_by` lists, so treat them as read-only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ciliary.cache import BoundedCache
from ciliary.flows.codec import OnBadLine, ReadStats, go_json
from ciliary.flows.head import FlowHead, FlowLine, flow_seconds, layer4_of, map_flow_lines
from ciliary.flows.sides import (
    FlowPeers,
    l7_request,
    port_label,
    serves,
    unmarked_reply,
    workload_of_flow_side,
    workload_of_head,
)
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import (
    PROTO_NAMES,
    PROTO_TCP,
)
from ciliary.verdict.decider import Decider, Decision
from ciliary.verdict.types import AUDIT, DROPPED, Verdict

JSON = dict[str, Any]
_MAX_CONNECTIONS = 500_000  # conntrack entries kept; the oldest tenth goes past it
_MAX_KEPT_CHANGES = 10_000  # changed flows kept for the report (all are counted)
_FOLLOWS = "follows its connection"
_RECORDED_JSON: BoundedCache[str, bytes] = BoundedCache(64)  # recorded verdicts as JSON strings


class ReplayedFlow(msgspec.Struct):
    """One input flow with its predicted verdict; `flow` is the output Hubble flow."""

    recorded: str
    predicted: str
    verdict: Verdict | None  # None: followed its connection, or could not be judged
    reason: str
    file: str
    line: int
    source: FlowLine
    decision: Decision | None = None  # the decision whose fields the output flow takes
    override: str | None = None  # the output verdict, when it is not the decision's
    # The connection's verdict when the flow reports one direction's (a policy-verdict
    # event): what happens to the traffic, which `predicted` may not say (diff counts it).
    connection_verdict: str | None = None
    _out: JSON | None = None

    @property
    def connection(self) -> str:
        return self.connection_verdict if self.connection_verdict is not None else self.predicted

    @property
    def flow(self) -> JSON:
        """The input flow with the predicted verdict written in (made once, a new dict)."""
        out = self._out
        if out is None:
            out = self.source.flow()
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
        """The output as one `{"flow": ...}` JSON line: a flow replay changes nothing in but
        `recorded_verdict` is its input text with that field added; the others are encoded
        as Hubble does (Go's HTML-safe escaping)."""
        if self._out is None and self.decision is None and self.override is None:
            rec = _RECORDED_JSON.get(self.recorded)
            if rec is None:
                rec = _RECORDED_JSON.put(self.recorded, go_json(self.recorded))
            line = self.source.with_field("recorded_verdict", rec)
            if line is not None:
                return line
        return go_json({"flow": self.flow}) + b"\n"

    def describe(self) -> str:
        """`file:line source -> destination port: recorded -> predicted`, by workload."""
        f = self.flow
        ips = f.get("IP") or {}
        src = workload_of_flow_side(f.get("source"), ips.get("source"))
        dst = workload_of_flow_side(f.get("destination"), ips.get("destination"))
        return f"{self.file}:{self.line} {src} -> {dst} {port_label(f)}: {self.recorded} -> {self.predicted}"


def _apply(out: JSON, d: Decision) -> None:
    """Write a decision's predicted verdict into an output flow."""
    upd, pops = d.hubble_fields()
    out.update(upd)
    if not pops.isdisjoint(out):
        for k in pops:
            out.pop(k, None)
    l7 = d.verdict.l7
    if l7 is not None and l7.verdict == DROPPED:
        out["verdict"] = DROPPED
        if l7.http_status and isinstance(out.get("l7"), dict):
            out["l7"] = {**out["l7"], "type": "RESPONSE"}


def _norm(v: str) -> str:
    # REDIRECTED and FORWARDED both deliver the packet; TRACED/TRANSLATED are not policy events.
    return "FORWARDED" if v in ("REDIRECTED", "TRACED", "TRANSLATED", "") else v


@dataclass
class AuditGroup:
    key: tuple[str, str, str]  # (source workload, destination, port/proto)
    count: int = 0
    direction: str = ""
    reason: str = ""
    policies: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.key[0], "destination": self.key[1], "port": self.key[2], "flows": self.count,
            "traffic_direction": self.direction, "would_drop": self.reason, "policies": sorted(self.policies),
        }


@dataclass
class ReplayReport:
    stats: ReadStats = field(default_factory=ReadStats)
    by_verdict: dict[str, int] = field(default_factory=dict)
    changed: list[ReplayedFlow] = field(default_factory=list)
    changed_count: int = 0
    unjudged: int = 0
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


def replay(
    engine: PolicyEngine,
    sources: Iterable[str | Path],
    *,
    strict: bool = False,
    on_bad: OnBadLine | None = None,
    report: ReplayReport | None = None,
    fast: bool = True,
) -> Iterator[ReplayedFlow]:
    """Yield every input flow, in input order, with its predicted verdict. `fast=False`
    reads every line with the full reader (the fast reader's oracle)."""
    rep = report if report is not None else ReplayReport()
    state = _Replayer(Decider(engine), rep)

    def read(src: str | Path) -> Iterator[ReplayedFlow]:
        state.file = str(src)  # set as the chain reaches this source
        return map_flow_lines(state.one, src, rep.stats, fast=fast, strict=strict, on_bad=on_bad)

    return itertools.chain.from_iterable(read(src) for src in sources)


def _observation_point(f: FlowHead) -> str | None:
    """The direction a policy-verdict event (monitor type 5) reports, None for any other
    flow (drops, traces and L7 records tell what happened to the connection)."""
    ev = f.event_type
    if ev is None or ev.type != 5 or f.l7 is not None:
        return None
    d = f.traffic_direction
    return d if d in ("EGRESS", "INGRESS") else None


# (protocol, source address, source port, destination address, destination port)
_Tuple5 = tuple[int, str, int, str, int]


class _Replayer:
    """The state of one replay: the connection table and the report."""

    def __init__(self, decider: Decider, rep: ReplayReport) -> None:
        self.decider = decider
        self.peers = FlowPeers(decider)
        self.rep = rep
        self.by_verdict = rep.by_verdict
        self.file = ""  # the source being read
        self.conns: dict[_Tuple5, Decision] = {}  # a connection's decision, by its 5-tuple

    def one(self, fl: FlowLine) -> ReplayedFlow:
        f = fl.head
        recorded = f.verdict
        ips = f.IP
        sip, dip = (ips.source, ips.destination) if ips is not None else ("", "")
        l4 = f.l4
        tcp = l4.TCP if l4 is not None else None
        if tcp is not None:  # most flows: layer4_of inlined
            proto, sport, dport = PROTO_TCP, tcp.source_port, tcp.destination_port
        else:
            t = layer4_of(l4)
            if t is None:
                return self.unjudged(fl, recorded)
            proto, sport, dport = t
        said = f.is_reply if f.is_reply is not None else f.replying
        is_reply = said is True
        if f.l7 is None and sip and dip:
            # The common case first: an L3/L4 flow of a connection already seen.
            conns = self.conns
            if said is None:  # the flow does not say
                is_reply = self.unmarked_reply(f, proto, sip, sport, dip, dport)
            if is_reply:
                known = conns.get((proto, dip, dport, sip, sport)) or conns.get((proto, sip, sport, dip, dport))
            else:
                known = conns.get((proto, sip, sport, dip, dport))
            if known is not None:
                return self.follow(known, recorded, is_reply, fl)
        return self.judge(f, fl, recorded, sip, dip, proto, sport, dport, is_reply)

    @staticmethod
    def point_view(d: Decision, f: FlowHead, is_reply: bool) -> Decision:
        """The decision a flow reports: a policy-verdict event of an enforced direction
        reports that direction's verdict (`Decision.at`) when it differs from the
        connection's (an egress event allowed at the source, the connection dropped at the
        destination's ingress); every other flow, the connection's."""
        point = None if is_reply else _observation_point(f)
        if point is None:
            return d
        side = d.verdict.egress if point == "EGRESS" else d.verdict.ingress
        if not side.enforced:
            return d  # Cilium emits policy verdicts only for enforced directions
        view = d.at(point)
        return view if view.verdict.verdict != d.verdict.verdict else d

    def unmarked_reply(self, f: FlowHead, proto: int, sip: str, sport: int, dip: str, dport: int) -> bool:
        conns, peers = self.conns, self.peers
        return unmarked_reply(
            (proto, dip, dport, sip, sport) in conns, (proto, sip, sport, dip, dport) in conns,
            serves(peers.peer(f.source, sip).endpoint, proto, sport),
            serves(peers.peer(f.destination, dip).endpoint, proto, dport),
        )

    def unjudged(self, fl: FlowLine, recorded: str) -> ReplayedFlow:
        self.rep.unjudged += 1
        return self.count(ReplayedFlow(recorded, recorded, None, "no IP/L4 to judge", self.file, fl.lineno, fl))

    def follow(self, known: Decision, recorded: str, is_reply: bool, fl: FlowLine) -> ReplayedFlow:
        """A flow of a connection already decided (conntrack): the connection's verdict; a
        reply of a dropped connection never happens, one of an allowed one keeps its own.
        A policy-verdict event reports its own direction's verdict (`Decision.at`)."""
        view = self.point_view(known, fl.head, is_reply)
        predicted = view.verdict.verdict
        decision: Decision | None = view
        if predicted != DROPPED and view is known:
            decision = None
            if is_reply:
                predicted = recorded if recorded and recorded != DROPPED else "FORWARDED"
        override = None if predicted == recorded else predicted
        conn = known.verdict.verdict if view is not known else None
        return self.count(ReplayedFlow(recorded, predicted, None, _FOLLOWS, self.file, fl.lineno, fl, decision, override, conn))

    def judge(
        self, f: FlowHead, fl: FlowLine, recorded: str, sip: str, dip: str, proto: int, sport: int, dport: int,
        is_reply: bool,
    ) -> ReplayedFlow:
        """Decide a flow that does not follow a known connection."""
        l7 = f.l7
        if l7 is not None and l7.get("type") == "RESPONSE" and isinstance(l7.get("dns"), dict):
            answered = self.dns_answer(f, fl, recorded, l7["dns"], sip, dip, proto, sport)
            if answered is not None:
                return answered
        if not sip or not dip:
            return self.unjudged(fl, recorded)
        forward: _Tuple5 = (proto, sip, sport, dip, dport)
        backward: _Tuple5 = (proto, dip, dport, sip, sport)
        request = l7_request(l7) if l7 is not None else None
        conns = self.conns
        if request is None:
            known = conns.get(backward) if is_reply else conns.get(forward)
            if known is None and is_reply:
                known = conns.get(forward)
            if known is not None:
                return self.follow(known, recorded, is_reply, fl)
        if is_reply:  # a reply whose connection we never saw: decided in its direction
            pair, port, request = self.peers.pair(f.destination, dip, f.source, sip), sport, None
        else:
            pair, port = self.peers.pair(f.source, sip, f.destination, dip), dport
        if not pair.decidable:
            return self.unjudged(fl, recorded)
        decider = self.decider
        # Time matters only for addresses once DNS answers were learned (their TTLs).
        now = flow_seconds(f.time) if decider.time_matters(pair) else None
        d = decider.decide_pair(pair, proto, port, now)
        if request is not None:
            d = decider.decide_request(d, request)
        if is_reply:
            conns[backward] = d
        elif request is None:
            conns[forward] = d
        if len(conns) > _MAX_CONNECTIONS:
            # Forget the oldest connections, like conntrack garbage collection.
            for old in list(conns)[: _MAX_CONNECTIONS // 10]:
                del conns[old]
        if not is_reply:
            decider.note_connection(pair, d, now)
        view = d if request is not None else self.point_view(d, f, is_reply)
        v, predicted, override = view.verdict, view.predicted, None
        if is_reply and predicted != DROPPED:
            override = predicted = recorded if recorded and recorded != DROPPED else "FORWARDED"
        if v.verdict == AUDIT:
            self.audit(f, v, sip, dip, proto, sport, dport, is_reply)
        conn = d.predicted if view is not d else None
        return self.count(ReplayedFlow(recorded, predicted, v, "decided", self.file, fl.lineno, fl, view, override, conn))

    def dns_answer(
        self, f: FlowHead, fl: FlowLine, recorded: str, dns: JSON, sip: str, dip: str, proto: int, sport: int,
    ) -> ReplayedFlow | None:
        """A DNS response: its query decided again, and its answer learned if the new
        policies let the query through the DNS proxy. None: not a response to judge."""
        query = dns.get("query")
        pair = self.peers.pair(f.destination, dip, f.source, sip)  # the query's direction
        if pair.src.endpoint is None or not query or not pair.decidable:
            return None
        now = flow_seconds(f.time)
        qd = self.decider.decide_query(pair, proto, sport, str(query), now)
        answer = [i for i in dns.get("ips") or [] if isinstance(i, str)]
        self.decider.learn_dns_answer(qd, pair.src, str(query), answer, int(dns.get("ttl") or 0), now)
        return self.count(ReplayedFlow(recorded, qd.predicted, qd.verdict, "DNS response", self.file, fl.lineno, fl, qd))

    def audit(self, f: FlowHead, v: Verdict, sip: str, dip: str, proto: int, sport: int, dport: int, is_reply: bool) -> None:
        side = v.deciding
        if is_reply:  # judged in the connection's original direction
            g_key = (workload_of_head(f.destination, dip), workload_of_head(f.source, sip), f"{sport}/{PROTO_NAMES.get(proto, proto)}")
        else:
            g_key = (workload_of_head(f.source, sip), workload_of_head(f.destination, dip), f"{dport}/{PROTO_NAMES.get(proto, proto)}")
        g = self.rep.audit_groups.setdefault(g_key, AuditGroup(g_key))
        g.count += 1
        g.direction = v.traffic_direction
        g.reason = side.audited_drop_reason or ""
        g.policies.update(str(r) for r in (side.denied_by or side.default_deny_refs))

    def count(self, rf: ReplayedFlow) -> ReplayedFlow:
        by = self.by_verdict
        by[rf.predicted] = by.get(rf.predicted, 0) + 1
        if rf.recorded != rf.predicted and rf.changed:
            rep = self.rep
            rep.changed_count += 1
            if len(rep.changed) < _MAX_KEPT_CHANGES:
                rep.changed.append(rf)
        return rf
