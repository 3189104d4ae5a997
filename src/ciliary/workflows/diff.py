"""`ciliary diff`: the difference two policy sets make, by effect.

For every pair of workloads (endpoints grouped by identity) and every container port of the
destination, the old and new verdicts are compared: what becomes allowed, what becomes
denied. With flows, every observed flow is replayed under both sets; traffic the old set
allowed and the new one drops is the regression a pull request must not merge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ciliary.cluster.endpoints import Endpoint
from ciliary.cluster.workloads import deployment_of_pod_name
from ciliary.flows.sides import port_label, workload_of_flow_side
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_NAMES, PROTO_NUMBERS
from ciliary.verdict.decide import endpoint_peer
from ciliary.verdict.decider import Decider
from ciliary.verdict.types import DROPPED, Verdict
from ciliary.workflows.replay import ReplayReport, replay


def workload_name(ep: Endpoint) -> str:
    """ns/<workload>: the owner for synthetic pods, else the app label, else the pod name
    without its ReplicaSet/pod hash."""
    if ep.pod is None:
        return ep.key
    pod = ep.pod
    if pod.owner:
        return f"{pod.namespace}/{pod.owner.split('/')[-1]}"
    for k in ("app.kubernetes.io/name", "app", "k8s-app", "name"):
        if pod.labels.get(k):
            return f"{pod.namespace}/{pod.labels[k]}"
    return f"{pod.namespace}/{deployment_of_pod_name(pod.name, pod.labels) or pod.name}"


@dataclass(frozen=True, order=True)
class Change:
    source: str
    destination: str
    port: str
    old: str
    new: str
    new_policies: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "destination": self.destination, "port": self.port,
            "old": self.old, "new": self.new, "policies": list(self.new_policies),
        }


@dataclass
class FlowChange:
    source: str
    destination: str
    port: str
    old: str
    new: str
    count: int = 0
    policies: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "destination": self.destination, "port": self.port,
            "old": self.old, "new": self.new, "flows": self.count, "policies": sorted(self.policies),
        }


@dataclass
class DiffReport:
    newly_allowed: list[Change] = field(default_factory=list)
    newly_denied: list[Change] = field(default_factory=list)
    flow_changes: list[FlowChange] = field(default_factory=list)
    flows: int = 0
    pairs: int = 0

    @property
    def regressions(self) -> list[FlowChange]:
        """Observed traffic the old set allowed and the new one drops."""
        return [c for c in self.flow_changes if c.new == DROPPED and c.old != DROPPED]

    def as_dict(self) -> dict[str, Any]:
        return {
            "newly_allowed": [c.as_dict() for c in self.newly_allowed],
            "newly_denied": [c.as_dict() for c in self.newly_denied],
            "flows": self.flows,
            "flow_changes": [c.as_dict() for c in self.flow_changes],
            "regressions": len(self.regressions),
        }

    def markdown(self) -> str:
        out = ["## ciliary policy diff", ""]
        reg = self.regressions
        if reg:
            out.append(f"**{sum(c.count for c in reg)} observed flow(s) would be dropped** by the new policies.")
            out.append("")
        def table(title: str, rows: list[Change]) -> None:
            out.append(f"### {title} ({len(rows)})")
            out.append("")
            if not rows:
                out.append("_none_")
                out.append("")
                return
            out.append("| source | destination | port | policies |")
            out.append("|---|---|---|---|")
            for c in rows:
                out.append(f"| `{c.source}` | `{c.destination}` | {c.port} | {', '.join(c.new_policies) or '-'} |")
            out.append("")
        table("Newly denied", self.newly_denied)
        table("Newly allowed", self.newly_allowed)
        if self.flows:
            out.append(f"### Observed flows that change verdict ({sum(c.count for c in self.flow_changes)} of {self.flows})")
            out.append("")
            if self.flow_changes:
                out.append("| source | destination | port | old | new | flows | policies |")
                out.append("|---|---|---|---|---|---|---|")
                for f in self.flow_changes:
                    out.append(f"| `{f.source}` | `{f.destination}` | {f.port} | {f.old} | {f.new} | {f.count} | {', '.join(sorted(f.policies)) or '-'} |")
            else:
                out.append("_none_")
            out.append("")
        return "\n".join(out)


def _policies(v: Verdict) -> tuple[str, ...]:
    """The policies that decided `v`'s deciding side (for a drop without an allow: those
    that made it default deny)."""
    side = v.deciding
    refs = side.denied_by or side.allowed_by
    if refs:
        return tuple(str(r) for r in refs)
    if v.verdict == DROPPED:
        return tuple(sorted(str(r) for r in side.default_deny_refs))
    return ()


def diff_policies(
    old: PolicyEngine, new: PolicyEngine, flows: Iterable[str | Path] = (), *, strict: bool = False
) -> DiffReport:
    rep = DiffReport()
    d_old, d_new = Decider(old), Decider(new)
    # One representative endpoint per group that decides alike, named by workload.
    reps = [g[0] for g in d_new.pods_alike(sorted(new.pod_endpoints, key=lambda e: e.key))]
    old_by_key = {e.key: e for e in old.pod_endpoints}
    seen: set[tuple[str, str, str]] = set()
    for s in reps:
        for d in reps:
            ports = sorted({(PROTO_NUMBERS.get(cp.protocol.upper(), 6), cp.port) for cp in d.named_ports})
            for proto, port in ports:
                label = f"{port}/{PROTO_NAMES.get(proto, proto)}"
                key = (workload_name(s), workload_name(d), label)
                if key in seen:
                    continue
                seen.add(key)
                rep.pairs += 1
                os_, od = old_by_key.get(s.key), old_by_key.get(d.key)
                if os_ is None or od is None:
                    continue
                vo = d_old.decide_connection(endpoint_peer(os_), endpoint_peer(od), proto, port).verdict
                vn = d_new.decide_connection(endpoint_peer(s), endpoint_peer(d), proto, port).verdict
                was, now = vo.verdict != DROPPED, vn.verdict != DROPPED
                if was and not now:
                    rep.newly_denied.append(Change(*key, vo.verdict, vn.verdict, _policies(vn)))
                elif now and not was:
                    rep.newly_allowed.append(Change(*key, vo.verdict, vn.verdict, _policies(vn)))
    rep.newly_denied.sort()
    rep.newly_allowed.sort()
    sources = list(flows)
    if sources:
        changes: dict[tuple[str, str, str, str, str], FlowChange] = {}
        r_old, r_new = ReplayReport(), ReplayReport()
        for a, b in zip(replay(old, sources, strict=strict, report=r_old), replay(new, sources, strict=strict, report=r_new), strict=True):
            rep.flows += 1
            if (a.connection == DROPPED) == (b.connection == DROPPED):
                continue
            f = b.flow
            if f.get("is_reply"):
                continue  # a reply follows its connection, which is reported
            src, dst = f.get("source") or {}, f.get("destination") or {}
            ips = f.get("IP") or {}
            plabel = port_label(f)
            k = (workload_of_flow_side(src, ips.get("source")), workload_of_flow_side(dst, ips.get("destination")), plabel, a.connection, b.connection)
            c = changes.setdefault(k, FlowChange(*k))
            c.count += 1
            if b.verdict is not None:
                c.policies.update(_policies(b.verdict))
        rep.flow_changes = sorted(changes.values(), key=lambda c: (c.new != DROPPED, c.source, c.destination, c.port))
    return rep
