"""`ciliary lint`: the seed article's pitfalls, and rules that do not do what they seem.

Every check asks the engine, through a `Decider` and the compiled policy maps, what the
policies do on the cluster snapshot (never a second reading of the YAML), so a finding
holds exactly when ciliary's verdicts say so.

Contracts:
* `lint` does not change the engine it is given; with the same inputs it returns the same
  findings in the same order (by file, line, ID).
* `select`/`ignore` choose checks by ID before they run; inline comments
  (`# ciliary: ignore[CIL00x]`, see `suppress`) remove findings after.
* `LintResult.failed(threshold)` is whether any kept finding is at or above the severity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ciliary.policy.engine import PolicyEngine
from ciliary.workflows.lint.checks_fields import (
    check_default_deny_without_section,
    check_deprecated,
    check_not_evaluated,
)
from ciliary.workflows.lint.checks_fqdn import check_fqdn_dns, check_fqdn_rotation
from ciliary.workflows.lint.checks_l7 import check_l7_ports, check_l7_share
from ciliary.workflows.lint.checks_overlap import check_overlaps
from ciliary.workflows.lint.checks_posture import (
    check_posture,
    check_probes,
    check_system_namespaces,
)
from ciliary.workflows.lint.checks_selectors import check_empty_selectors, check_selectors
from ciliary.workflows.lint.context import LintContext, LintOptions
from ciliary.workflows.lint.findings import CHECKS, CHECKS_BY_ID, Check, Finding, Severity, check_of
from ciliary.workflows.lint.flowfacts import FlowFacts
from ciliary.workflows.lint.suppress import Suppressor, selected

CheckFn = Callable[[LintContext], Iterator[Finding]]

# Each function makes the findings of the checks listed with it.
RUNNERS: tuple[tuple[CheckFn, tuple[str, ...]], ...] = (
    (check_fqdn_dns, ("CIL001",)),
    (check_fqdn_rotation, ("CIL002",)),
    (check_system_namespaces, ("CIL003",)),
    (check_probes, ("CIL004",)),
    (check_selectors, ("CIL005",)),
    (check_empty_selectors, ("CIL006",)),
    (check_l7_share, ("CIL007",)),
    (check_l7_ports, ("CIL008",)),
    (check_posture, ("CIL009", "CIL010", "CIL011")),
    (check_overlaps, ("CIL012", "CIL013", "CIL014", "CIL015")),
    (check_default_deny_without_section, ("CIL015",)),
    (check_deprecated, ("CIL016",)),
    (check_not_evaluated, ("CIL017",)),
)


@dataclass
class LintResult:
    findings: list[Finding]
    suppressed: int = 0
    notes: list[str] = field(default_factory=list)  # what could not be checked, and why
    checks_run: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in sorted(Severity, reverse=True)}
        for f in self.findings:
            out[str(f.severity)] += 1
        return out

    def failed(self, threshold: Severity) -> bool:
        return any(f.severity >= threshold for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "findings": [f.as_dict() for f in self.findings],
            "summary": {**self.counts(), "suppressed": self.suppressed},
            "notes": self.notes,
            "checks": self.checks_run,
        }


def lint(
    engine: PolicyEngine,
    *,
    options: LintOptions | None = None,
    facts: FlowFacts | None = None,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] = (),
) -> LintResult:
    sel = {check_of(s).id for s in select} if select is not None else None
    ign = {check_of(s).id for s in ignore}
    ctx = LintContext(engine, options or LintOptions(), facts)
    wanted = [c.id for c in CHECKS if selected(c.id, sel, ign)]
    found: list[Finding] = []
    for fn, ids in RUNNERS:
        if set(ids) & set(wanted):
            found.extend(f for f in fn(ctx) if f.id in wanted)
    notes = []
    if not ctx.dns_servers and {"CIL001", "CIL010"} & set(wanted):
        notes.append("no DNS server in the snapshot (kube-system pods with k8s-app=kube-dns): CIL001 and CIL010 not checked")
    if facts is None and "CIL002" in wanted:
        notes.append("no --flows: CIL002 (rotating DNS answers) not checked")
    sup = Suppressor(engine.policies.policies)
    kept: list[Finding] = []
    seen: set[tuple[Any, ...]] = set()
    suppressed = 0
    for f in sorted(found, key=Finding.sort_key):
        k = (f.id, f.file, f.field, f.message)
        if k in seen:
            continue
        seen.add(k)
        if sup.suppressed(f):
            suppressed += 1
            continue
        kept.append(f)
    for file, line, part in sup.unknown_ids():
        notes.append(f"{file}:{line}: unknown check {part!r} in a `ciliary: ignore` comment")
    return LintResult(kept, suppressed, notes, wanted)


__all__ = ["CHECKS", "CHECKS_BY_ID", "Check", "Finding", "FlowFacts", "LintOptions", "LintResult", "Severity", "check_of", "lint"]
