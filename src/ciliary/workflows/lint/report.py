"""Lint output: text grouped per file (like ruff's grouped format) and SARIF 2.1.0.

Contracts:
* Both are pure functions of a `LintResult` (and the tool version); file paths are given
  as the findings hold them (relative paths stay relative, which code-scanning UIs need).
* SARIF: one run, every check as a `reportingDescriptor` (so a rule with no results is
  still described), results with the finding's level, message (with the fix hint), file and
  line, the policy and field as a logical location, and a fingerprint stable across runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import Any

from ciliary.workflows.lint.findings import CHECKS, Finding, Severity

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_LEVEL = {Severity.error: "error", Severity.warning: "warning", Severity.info: "note"}


def _where(f: Finding) -> str:
    parts = [str(f.policy)] if f.policy else []
    if f.field:
        parts.append(f.field)
    return " ".join(parts)


def render_text(findings: list[Finding], notes: list[str], counts: dict[str, int], suppressed: int) -> str:
    lines: list[str] = []
    by_file: dict[str, list[Finding]] = {}
    for f in findings:
        by_file.setdefault(f.file or "(no file)", []).append(f)
    for file, fs in by_file.items():
        lines.append(f"{file}:")
        for f in fs:
            loc = f"{f.line}" if f.line else "-"
            lines.append(f"  {loc:>4} {f.id} {f.severity!s:<7} {_where(f)}: {f.message}")
            lines.append(f"       fix: {f.hint}")
        lines.append("")
    for n in notes:
        lines.append(f"note: {n}")
    total = sum(counts.values())
    summary = ", ".join(f"{v} {k}{'s' if v != 1 and k != 'info' else ''}" for k, v in counts.items() if v)
    tail = f" ({suppressed} suppressed inline)" if suppressed else ""
    lines.append(f"{total} finding{'s' if total != 1 else ''}" + (f": {summary}" if summary else "") + tail)
    return "\n".join(lines)


def _uri(file: str) -> str:
    p = Path(file)
    if p.is_absolute():
        return p.as_uri()
    return str(PurePosixPath(*p.parts)) if p.parts else file


def _fingerprint(f: Finding) -> str:
    text = "\x00".join([f.id, str(f.policy or ""), f.field, f.file])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def sarif(findings: list[Finding], version: str) -> dict[str, Any]:
    index = {c.id: i for i, c in enumerate(CHECKS)}
    rules = [
        {
            "id": c.id,
            "name": "".join(w.capitalize() for w in c.name.split("-")),
            "shortDescription": {"text": c.summary},
            "fullDescription": {"text": c.summary + (f" (seed article pitfall {c.pitfall})" if c.pitfall else "")},
            "defaultConfiguration": {"level": _LEVEL[c.severity]},
            "help": {"text": f"{c.id} {c.name}: {c.summary}. See docs/lint.md."},
            "properties": {"tags": ["cilium", "network-policy"]},
        }
        for c in CHECKS
    ]
    results = []
    for f in findings:
        loc: dict[str, Any] = {}
        if f.file:
            phys: dict[str, Any] = {"artifactLocation": {"uri": _uri(f.file)}}
            if f.line:
                phys["region"] = {"startLine": f.line}
            loc["physicalLocation"] = phys
        if f.policy is not None:
            loc["logicalLocations"] = [{
                "name": f.field or f.policy.name,
                "fullyQualifiedName": _where(f),
                "kind": "object",
            }]
        related = [
            {"id": i, "message": {"text": text}, "physicalLocation": {
                "artifactLocation": {"uri": _uri(file)}, **({"region": {"startLine": line}} if line else {}),
            }}
            for i, (text, file, line) in enumerate(f.related) if file
        ]
        r: dict[str, Any] = {
            "ruleId": f.id,
            "ruleIndex": index[f.id],
            "level": _LEVEL[f.severity],
            "message": {"text": f"{f.message}. Fix: {f.hint}"},
            "locations": [loc] if loc else [],
            "partialFingerprints": {"ciliaryFinding/v1": _fingerprint(f)},
            "properties": {"endpoints": list(f.endpoints), "endpointCount": f.endpoint_count},
        }
        if related:
            r["relatedLocations"] = related
        results.append(r)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ciliary",
                "version": version,
                "rules": rules,
            }},
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    }
