"""What `ciliary generate` tells its user besides the policies: the verification, what was
left out and why, and how well the flows cover each workload. As JSON keys (a contract) and
as text for people."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ciliary.workflows.generate.rules import Listed
from ciliary.workflows.generate.verify import Failure

if TYPE_CHECKING:
    from ciliary.workflows.generate import GenerateResult


def _listed(items: list[Listed]) -> list[dict[str, Any]]:
    return [{"what": x.what, "why": x.why, "flows": x.evidence.flows, "seen": x.evidence.span()} for x in items]


def _failures(items: dict[str, Failure]) -> list[dict[str, Any]]:
    return [
        {"what": f.what, "first_flow": f.where, "predicted": f.predicted, "flows": f.evidence.flows}
        for f in sorted(items.values(), key=lambda f: f.what)
    ]


def summary_dict(r: GenerateResult) -> dict[str, Any]:
    v = r.verification
    return {
        "policies": [
            {"namespace": p.workload.namespace, "name": p.name, "workload": p.workload.key, "path": p.path}
            for p in r.policies
        ],
        "verified": v.ok,
        "checked": v.checked,
        "failures": _failures(v.failures),
        "unverifiable": _failures(v.unverifiable),
        "denied": _listed(r.denied),
        "unresolved": _listed(r.unresolved),
        "was_dropped": _listed(r.was_dropped),
        "coverage": [
            {"workload": c.workload, "window": c.window, "flows": c.flows, "warnings": c.warnings}
            for c in r.coverage
        ],
        "unobserved": r.unobserved,
        "flows_read": r.stats.flows,
        "bad_lines": r.stats.bad,
        "merge_diff": r.merge_diff,
        "merge_effect": r.merge_effect.as_dict() if r.merge_effect is not None else None,
    }


def summary_text(r: GenerateResult) -> str:
    v = r.verification
    n = len(r.policies)
    out = [f"{n} polic{'y' if n == 1 else 'ies'} from {r.stats.flows} flow(s)"]
    if v.ok:
        out.append(f"verified: replaying the flows through them drops none of the {v.checked} observed connections and requests")
    else:
        out.append(f"NOT verified: replaying the flows through them drops {len(v.failures)} observed connection(s):")
        out += [f"  {f.what}: {f.predicted} ({f.evidence.flows} flow(s), first at {f.where})" for f in sorted(v.failures.values(), key=lambda f: f.what)]
    if v.unverifiable:
        out.append("not verifiable offline (the name came without a DNS answer in the flows):")
        out += [f"  {f.what} ({f.evidence.flows} flow(s))" for f in v.unverifiable.values()]
    for title, items in (
        ("denied by a deny rule, so not allowed", r.denied),
        ("left out, a side could not be resolved", r.unresolved),
        ("allowed, though recorded as dropped (review them)", r.was_dropped),
    ):
        if items:
            out.append(f"{title}:")
            out += [f"  {x.what}: {x.why} ({x.evidence.flows} flow(s))" for x in items]
    warned = [c for c in r.coverage if c.warnings]
    if warned:
        out.append("coverage:")
        for c in warned:
            out.append(f"  {c.workload} ({c.flows} flow(s), {c.window}):")
            out += [f"    {w}" for w in c.warnings]
    if r.unobserved:
        out.append("no flows, so no policy: " + ", ".join(r.unobserved))
    if r.merge_effect is not None:
        e = r.merge_effect
        out.append(f"the additions newly allow {len(e.newly_allowed)} and newly deny {len(e.newly_denied)} (workload, destination, port) combinations:")
        out += [f"  + {c.source} -> {c.destination} {c.port}" for c in e.newly_allowed]
        out += [f"  - {c.source} -> {c.destination} {c.port}" for c in e.newly_denied]
    if r.stats.bad:
        out.append(f"{r.stats.bad} bad line(s) skipped")
    return "\n".join(out) + "\n"
