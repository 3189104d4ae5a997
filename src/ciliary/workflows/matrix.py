"""`ciliary matrix`: pod-by-pod connectivity per port/protocol, like the Kubernetes e2e
truth tables. Computed once per pair of endpoint groups that share identity and compiled
policy, so the cost grows with identities, not pods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ciliary.policy.engine import Endpoint, PolicyEngine
from ciliary.policy.ports import PROTO_NAMES
from ciliary.verdict.decide import endpoint_peer
from ciliary.verdict.decider import Decider
from ciliary.verdict.types import DROPPED, Verdict


@dataclass(frozen=True)
class Probe:
    proto: int
    port: int

    def __str__(self) -> str:
        return f"{self.port}/{PROTO_NAMES.get(self.proto, self.proto)}"


@dataclass
class Matrix:
    endpoints: list[str]
    probes: list[Probe]
    # probe -> src name -> dst name -> verdict
    cells: dict[Probe, dict[str, dict[str, Verdict]]] = field(default_factory=dict)
    evaluations: int = 0  # distinct decisions computed (identity-group pairs x probes)

    def allowed(self, probe: Probe, src: str, dst: str) -> bool:
        return self.cells[probe][src][dst].verdict != DROPPED

    def truth_table(self, probe: Probe) -> str:
        names = self.endpoints
        width = max([len(n) for n in names] + [1])
        lines = [" ".join(["-".ljust(width)] + [n.ljust(width) for n in names]).rstrip()]
        for s in names:
            row = [s.ljust(width)]
            for d in names:
                row.append(("." if self.allowed(probe, s, d) else "X").ljust(width))
            lines.append(" ".join(row).rstrip())
        return "\n".join(lines)

    def numbered_table(self, probe: Probe) -> str:
        """For long pod names: rows named and numbered, columns numbered."""
        names = self.endpoints
        width = max(len(n) for n in names) if names else 1
        num_w = len(str(len(names)))
        head = " " * (num_w + 1 + width) + " " + " ".join(str(i + 1).rjust(num_w) for i in range(len(names)))
        lines = [head.rstrip()]
        for i, s in enumerate(names):
            cells = " ".join(("." if self.allowed(probe, s, d) else "X").rjust(num_w) for d in names)
            lines.append(f"{str(i + 1).rjust(num_w)} {s.ljust(width)} {cells}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoints": self.endpoints,
            "probes": [
                {
                    "port": p.port,
                    "protocol": PROTO_NAMES.get(p.proto, str(p.proto)),
                    "matrix": {
                        s: {d: self.cells[p][s][d].verdict for d in self.endpoints} for s in self.endpoints
                    },
                }
                for p in self.probes
            ],
        }

    def as_csv(self) -> str:
        rows = ["port,protocol,source,destination,verdict,drop_reason_desc,traffic_direction"]
        for p in self.probes:
            for s in self.endpoints:
                for d in self.endpoints:
                    v = self.cells[p][s][d]
                    rows.append(
                        f"{p.port},{PROTO_NAMES.get(p.proto, p.proto)},{s},{d},{v.verdict},"
                        f"{v.drop_reason_desc or ''},{v.traffic_direction}"
                    )
        return "\n".join(rows) + "\n"

    def as_dot(self, probe: Probe) -> str:
        out = [f'digraph "{probe}" {{', "  rankdir=LR;"]
        for n in self.endpoints:
            out.append(f'  "{n}";')
        for s in self.endpoints:
            for d in self.endpoints:
                if s != d and self.allowed(probe, s, d):
                    v = self.cells[probe][s][d]
                    style = ' [style=dashed,label="AUDIT"]' if v.verdict == "AUDIT" else ""
                    out.append(f'  "{s}" -> "{d}"{style};')
        out.append("}")
        return "\n".join(out) + "\n"


def compute_matrix(
    engine: PolicyEngine, probes: list[Probe], endpoints: list[Endpoint] | None = None
) -> Matrix:
    eps = endpoints if endpoints is not None else sorted(engine.pod_endpoints, key=lambda e: e.key)
    decider = Decider(engine)
    groups = decider.pods_alike(eps)
    m = Matrix([e.key for e in eps], probes)
    for probe in probes:
        table: dict[str, dict[str, Verdict]] = {e.key: {} for e in eps}
        for src_members in groups:
            src = endpoint_peer(src_members[0])
            for dst_members in groups:
                v = decider.decide_connection(src, endpoint_peer(dst_members[0]), probe.proto, probe.port).verdict
                m.evaluations += 1
                for s in src_members:
                    row = table[s.key]
                    for d in dst_members:
                        row[d.key] = v
        m.cells[probe] = table
    return m
