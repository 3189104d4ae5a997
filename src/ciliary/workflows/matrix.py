"""`ciliary matrix`: pod-by-pod connectivity per port/protocol, like the Kubernetes e2e
truth tables. Computed once per pair of endpoint groups that share identity and compiled
policy, and stored per group pair: memory grows with identities² x probes, not pods²; pods
appear only when a table or line is printed.

`--ports all` probes every port: the intervals between the port bounds of every policy map
involved (`Decider.port_bounds`), so each probe is one port or a range whose ports decide
alike, adjacent probes with identical tables merged; "any other port" is the ranges no
policy names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ciliary.policy.engine import Endpoint, PolicyEngine
from ciliary.policy.ports import PROTO_ICMP, PROTO_NAMES, port_max
from ciliary.policy.rules import EGRESS, INGRESS
from ciliary.verdict.decide import endpoint_peer
from ciliary.verdict.decider import PORT_SET_PROTOS, Decider
from ciliary.verdict.types import DROPPED, Verdict


@dataclass(frozen=True)
class Probe:
    proto: int
    port: int
    end: int | None = None  # a range port..end whose ports decide alike (`--ports all`)

    def __str__(self) -> str:
        ports = f"{self.port}-{self.end}" if self.end is not None and self.end != self.port else str(self.port)
        return f"{ports}/{PROTO_NAMES.get(self.proto, self.proto)}"


@dataclass
class Matrix:
    endpoints: list[str]
    probes: list[Probe]
    group_of: dict[str, int] = field(default_factory=dict)  # endpoint key -> group
    # probe -> source group -> destination group -> verdict
    tables: dict[Probe, list[list[Verdict]]] = field(default_factory=dict)
    evaluations: int = 0  # distinct decisions computed (identity-group pairs x probes)

    def cell(self, probe: Probe, src: str, dst: str) -> Verdict:
        return self.tables[probe][self.group_of[src]][self.group_of[dst]]

    def allowed(self, probe: Probe, src: str, dst: str) -> bool:
        return self.cell(probe, src, dst).verdict != DROPPED

    def _rows(self, probe: Probe) -> Iterator[tuple[str, list[Verdict]]]:
        t, g = self.tables[probe], self.group_of
        cols = [g[d] for d in self.endpoints]
        for s in self.endpoints:
            row = t[g[s]]
            yield s, [row[c] for c in cols]

    def truth_table(self, probe: Probe) -> str:
        names = self.endpoints
        width = max([len(n) for n in names] + [1])
        lines = [" ".join(["-".ljust(width)] + [n.ljust(width) for n in names]).rstrip()]
        for s, row in self._rows(probe):
            cells = [("." if v.verdict != DROPPED else "X").ljust(width) for v in row]
            lines.append(" ".join([s.ljust(width), *cells]).rstrip())
        return "\n".join(lines)

    def numbered_table(self, probe: Probe) -> str:
        """For long pod names: rows named and numbered, columns numbered."""
        names = self.endpoints
        width = max(len(n) for n in names) if names else 1
        num_w = len(str(len(names)))
        head = " " * (num_w + 1 + width) + " " + " ".join(str(i + 1).rjust(num_w) for i in range(len(names)))
        lines = [head.rstrip()]
        for i, (s, row) in enumerate(self._rows(probe)):
            cells = " ".join(("." if v.verdict != DROPPED else "X").rjust(num_w) for v in row)
            lines.append(f"{str(i + 1).rjust(num_w)} {s.ljust(width)} {cells}")
        return "\n".join(lines)

    def _probe_head(self, p: Probe) -> dict[str, Any]:
        head: dict[str, Any] = {"port": p.port, "protocol": PROTO_NAMES.get(p.proto, str(p.proto))}
        if p.end is not None:
            head["end_port"] = p.end
        return head

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoints": self.endpoints,
            "probes": [
                self._probe_head(p) | {"matrix": {s: {d: v.verdict for d, v in zip(self.endpoints, row, strict=True)}
                                                  for s, row in self._rows(p)}}
                for p in self.probes
            ],
        }

    def csv_lines(self) -> Iterator[str]:
        """The CSV, a line at a time (written as it is expanded)."""
        yield "port,protocol,source,destination,verdict,drop_reason_desc,traffic_direction\n"
        for p in self.probes:
            port = str(p).split("/")[0]
            proto = PROTO_NAMES.get(p.proto, p.proto)
            for s, row in self._rows(p):
                for d, v in zip(self.endpoints, row, strict=True):
                    yield f"{port},{proto},{s},{d},{v.verdict},{v.drop_reason_desc or ''},{v.traffic_direction}\n"

    def as_csv(self) -> str:
        return "".join(self.csv_lines())

    def as_dot(self, probe: Probe) -> str:
        out = [f'digraph "{probe}" {{', "  rankdir=LR;"]
        for n in self.endpoints:
            out.append(f'  "{n}";')
        for s, row in self._rows(probe):
            for d, v in zip(self.endpoints, row, strict=True):
                if s != d and v.verdict != DROPPED:
                    style = ' [style=dashed,label="AUDIT"]' if v.verdict == "AUDIT" else ""
                    out.append(f'  "{s}" -> "{d}"{style};')
        out.append("}")
        return "\n".join(out) + "\n"


Progress = Callable[[int, int], None]  # (done, total)


def _groups(decider: Decider, eps: list[Endpoint]) -> tuple[list[list[Endpoint]], dict[str, int]]:
    groups = decider.pods_alike(eps)
    return groups, {e.key: gi for gi, members in enumerate(groups) for e in members}


def compute_matrix(
    engine: PolicyEngine, probes: list[Probe], endpoints: list[Endpoint] | None = None,
    *, progress: Progress | None = None,
) -> Matrix:
    eps = endpoints if endpoints is not None else sorted(engine.pod_endpoints, key=lambda e: e.key)
    decider = Decider(engine)
    groups, group_of = _groups(decider, eps)
    m = Matrix([e.key for e in eps], probes, group_of)
    peers = [endpoint_peer(g[0]) for g in groups]
    pairs = [[decider.pair(s, d) for d in peers] for s in peers]
    for i, probe in enumerate(probes):
        m.tables[probe] = [[decider.decide_pair(pr, probe.proto, probe.port).verdict for pr in row] for row in pairs]
        m.evaluations += len(peers) ** 2
        if progress is not None:
            progress(i + 1, len(probes))
    return m


def all_port_probes(decider: Decider, endpoints: list[Endpoint], protos: tuple[int, ...] = PORT_SET_PROTOS) -> list[Probe]:
    """Every port of `protos` as probes: the intervals between the port bounds of the
    endpoints' policy maps (both directions), each deciding alike for every pair of
    `endpoints`. Port 0 is left out (no connection has it); ICMP types from 0."""
    out: list[Probe] = []
    maps = []
    numbers: set[int] = set()
    engine = decider.engine
    for ep in endpoints:
        n = decider.policy_number(ep)  # one number, one compiled policy: its maps once
        if n in numbers:
            continue
        numbers.add(n)
        pol = engine.policy(ep)
        maps += [pol.direction(EGRESS).policy_map, pol.direction(INGRESS).policy_map]
    for proto in protos:
        bounds: set[int] = {0 if proto == PROTO_ICMP else 1}
        for pm in maps:
            bounds.update(b for b in pm.port_bounds(proto) if b > 0 or proto == PROTO_ICMP)
        starts = sorted(bounds)
        top = port_max(proto)
        for i, lo in enumerate(starts):
            hi = starts[i + 1] - 1 if i + 1 < len(starts) else top
            out.append(Probe(proto, lo, hi))
    return out


def merge_alike(m: Matrix) -> Matrix:
    """Adjacent range probes of one protocol whose tables decide alike become one probe."""
    probes: list[Probe] = []
    tables: dict[Probe, list[list[Verdict]]] = {}

    def same(a: list[list[Verdict]], b: list[list[Verdict]]) -> bool:
        return all(x.verdict == y.verdict and x.drop_reason_desc == y.drop_reason_desc
                   and x.traffic_direction == y.traffic_direction
                   for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))

    for p in m.probes:
        t = m.tables[p]
        if probes and p.end is not None:
            last = probes[-1]
            if last.proto == p.proto and last.end is not None and last.end + 1 == p.port and same(tables[last], t):
                merged = Probe(p.proto, last.port, p.end)
                tables[merged] = tables.pop(last)
                probes[-1] = merged
                continue
        probes.append(p)
        tables[p] = t
    return Matrix(m.endpoints, probes, m.group_of, tables, m.evaluations)
