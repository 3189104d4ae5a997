"""`ciliary matrix -o connlist`: one line per pair of workloads with the connections allowed
between them over every port, aggregated like netpol-analyzer's connlist:

    ns/name[Kind] => ns/name[Kind] : TCP 80,443, UDP 53
    ns/name[Kind] => ns/name[Kind] : All Connections

Each pair of endpoint groups (one identity and compiled policy) is decided over port sets,
each side once per policy and peer signature (`verdict.portsets.PortSets`); a workload whose pods fall in several groups gets the
connections every pair of its pods has. An AUDIT verdict counts as allowed, as in the
matrix. Pairs with nothing allowed and a workload with itself are not listed. "All
Connections": every TCP, UDP and SCTP port (1-65535) and every ICMP type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ciliary.cluster.endpoints import Endpoint
from ciliary.cluster.workloads import deployment_of_pod_name
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_ICMP, PROTO_NAMES, PROTO_SCTP, PROTO_TCP, PROTO_UDP
from ciliary.verdict.decider import Decider
from ciliary.verdict.portsets import Allowed, PortSets, allowed_ports, intersect

__all__ = ["Allowed", "WorkloadRef", "allowed_ports", "connlist", "describe", "intersect", "workload_ref"]

_FULL: Allowed = {PROTO_TCP: ((1, 65535),), PROTO_UDP: ((1, 65535),), PROTO_SCTP: ((1, 65535),), PROTO_ICMP: ((0, 255),)}
_ORDER = (PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP)


@dataclass(frozen=True, order=True)
class WorkloadRef:
    namespace: str
    name: str
    kind: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}[{self.kind}]"


def workload_ref(ep: Endpoint) -> WorkloadRef:
    """The pod's owner (kind and name) where the cluster file says it, a Deployment for a
    pod named by its ReplicaSet's template hash, else the pod itself."""
    pod = ep.pod
    if pod is None:
        return WorkloadRef("", ep.key, "Endpoint")
    if pod.owner:
        kind, _, name = pod.owner.partition("/")
        return WorkloadRef(pod.namespace, name or kind, kind if name else "Workload")
    deployment = deployment_of_pod_name(pod.name, pod.labels)
    if deployment is not None:
        return WorkloadRef(pod.namespace, deployment, "Deployment")
    return WorkloadRef(pod.namespace, pod.name, "Pod")


def describe(allowed: Allowed) -> str:
    if allowed == _FULL:
        return "All Connections"
    parts = []
    for proto in sorted(allowed, key=lambda p: (_ORDER.index(p) if p in _ORDER else len(_ORDER), p)):
        name = PROTO_NAMES.get(proto, str(proto))
        ranges = allowed[proto]
        if ranges == _FULL.get(proto):
            parts.append(name)
            continue
        parts.append(f"{name} " + ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges))
    return ", ".join(parts)


def connlist(
    engine: PolicyEngine, endpoints: list[Endpoint], *, progress: Callable[[int, int], None] | None = None,
) -> Iterator[str]:
    """The connlist lines, sorted by source then destination, yielded as computed."""
    decider = Decider(engine)
    sets = PortSets(engine, decider)
    groups = decider.pods_alike(endpoints)
    reps = [g[0] for g in groups]
    by_workload: dict[WorkloadRef, list[int]] = {}
    for gi, members in enumerate(groups):
        for ep in members:
            lst = by_workload.setdefault(workload_ref(ep), [])
            if gi not in lst:
                lst.append(gi)

    rows: dict[int, list[Allowed]] = {}

    def pair_allowed(s: int, d: int) -> Allowed:
        row = rows.get(s)
        if row is None:
            row = rows[s] = sets.allowed_row(reps[s], reps)
        return row[d]

    names = sorted(by_workload)
    total, done = len(names) ** 2, 0
    for a in names:
        for b in names:
            done += 1
            if a == b:
                continue
            allowed: Allowed | None = None
            for s in by_workload[a]:
                for d in by_workload[b]:
                    got = pair_allowed(s, d)
                    allowed = got if allowed is None else intersect(allowed, got)
            if allowed:
                yield f"{a} => {b} : {describe(allowed)}"
        if progress is not None:
            progress(done, total)
