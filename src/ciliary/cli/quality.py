"""Commands that check policies for pitfalls: lint."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import orjson
import typer
from rich.markup import escape

from ciliary.cli import (
    ConfigOpt,
    Output,
    PoliciesOpt,
    app,
    engine_from,
    err,
    out,
    print_json,
)


class LintOutput(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


class FailOn(StrEnum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


def _ids(values: list[str] | None, flag: str) -> list[str] | None:
    from ciliary.workflows.lint import check_of

    if values is None:
        return None
    out_ids = []
    for v in values:
        for part in v.split(","):
            if part.strip():
                try:
                    out_ids.append(check_of(part).id)
                except ValueError as e:
                    raise typer.BadParameter(str(e), param_hint=flag) from None
    return out_ids


def _list_checks(output: LintOutput) -> None:
    from ciliary.workflows.lint import CHECKS

    if output is LintOutput.text:
        for c in CHECKS:
            pit = f" (pitfall {c.pitfall})" if c.pitfall else ""
            out.print(f"{c.id}  {c.severity!s:<7}  {c.name}: {c.summary}{pit}", markup=False)
        return
    print_json([{"id": c.id, "name": c.name, "severity": str(c.severity), "summary": c.summary, "pitfall": c.pitfall} for c in CHECKS])


@app.command("lint")
def lint_command(
    cluster: Annotated[Optional[Path], typer.Option("--cluster", help="Cluster snapshot (kubectl get ... -A -o yaml/json) or a directory of manifests.")] = None,  # noqa: UP045
    policies: PoliciesOpt = None,
    config: ConfigOpt = None,
    flows: Annotated[Optional[list[Path]], typer.Option("--flows", help="Hubble flow files: DNS answers (CIL002) and who used DNS (CIL010) (repeatable).")] = None,  # noqa: UP045
    output: Annotated[LintOutput, typer.Option("--output", "-o", help="text | json | sarif")] = LintOutput.text,
    fail_on: Annotated[FailOn, typer.Option("--fail-on", help="Exit 1 when a finding is at or above: error | warning | info | never.")] = FailOn.error,
    select: Annotated[Optional[list[str]], typer.Option("--select", help="Run only these checks (IDs or names; repeatable, comma-separated).")] = None,  # noqa: UP045
    ignore: Annotated[Optional[list[str]], typer.Option("--ignore", help="Skip these checks (repeatable, comma-separated).")] = None,  # noqa: UP045
    system_namespaces: Annotated[Optional[str], typer.Option("--system-namespaces", help="Comma-separated namespaces CIL003 guards (default: kube-system, kube-public, kube-node-lease, monitoring and the usual ingress controllers').")] = None,  # noqa: UP045
    l7_share: Annotated[float, typer.Option("--l7-share", help="CIL007: share of a namespace's pods behind the L7 proxy that is too much (0-1).")] = 0.5,
    list_checks: Annotated[bool, typer.Option("--list", help="List the checks and exit.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad flow line.")] = False,
) -> None:
    """Find the classic policy pitfalls on a cluster snapshot: toFQDNs without a DNS rule,
    rotating FQDN answers, locked-down system namespaces, blocked probes, selectors that
    select nothing, {} vs [], sprayed or ineffective L7 rules, default deny that allows
    nothing or cuts DNS, deny-only directions, unreachable and redundant rules, deprecated
    and unevaluated fields. Inline `# ciliary: ignore[CIL001]` suppresses a finding.
    Exit 0, 1 when a finding is at or above --fail-on, 2 on bad input."""
    from ciliary import __version__
    from ciliary.flows.codec import FlowReadError
    from ciliary.workflows.lint import LintOptions, Severity, lint
    from ciliary.workflows.lint.context import DEFAULT_SYSTEM_NAMESPACES
    from ciliary.workflows.lint.flowfacts import read_facts
    from ciliary.workflows.lint.report import render_text, sarif

    if list_checks:
        _list_checks(output)
        return
    if cluster is None:
        raise typer.BadParameter("is required (a snapshot or a directory of manifests)", param_hint="--cluster")
    if not 0 <= l7_share <= 1:
        raise typer.BadParameter(f"must be between 0 and 1, got {l7_share}", param_hint="--l7-share")
    sel = _ids(select, "--select")
    ign = _ids(ignore, "--ignore") or []
    missing = [str(f) for f in flows or [] if str(f) != "-" and not f.is_file()]
    if missing:
        err.print(f"error: no such flow file: {', '.join(missing)}", markup=False)
        raise typer.Exit(2)
    system: tuple[str, ...] = DEFAULT_SYSTEM_NAMESPACES
    if system_namespaces is not None:
        system = tuple(n.strip() for n in system_namespaces.split(",") if n.strip())
    fmt = Output.json if output is not LintOutput.text else Output.text
    try:
        engine = engine_from(cluster, policies, config, fmt)
    except typer.Exit as e:
        raise typer.Exit(2 if e.exit_code else 0) from None
    facts = None
    if flows:
        try:
            facts = read_facts(
                [str(f) for f in flows], strict=strict,
                on_bad=lambda b: err.print(f"warning: skipped bad line {b}", markup=False),
            )
        except (FlowReadError, OSError) as e:
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(2) from None
    if sys.stderr.isatty():
        with err.status("linting ...", spinner="dots"):
            result = lint(engine, options=LintOptions(system, l7_share), facts=facts, select=sel, ignore=ign)
    else:
        result = lint(engine, options=LintOptions(system, l7_share), facts=facts, select=sel, ignore=ign)
    if output is LintOutput.json:
        print_json(result.as_dict())
    elif output is LintOutput.sarif:
        sys.stdout.buffer.write(orjson.dumps(sarif(result.findings, __version__), option=orjson.OPT_INDENT_2) + b"\n")
        for n in result.notes:
            err.print(f"note: {escape(n)}", markup=True)
    else:
        out.print(render_text(result.findings, result.notes, result.counts(), result.suppressed), markup=False)
    if fail_on is not FailOn.never and result.failed(Severity.parse(fail_on.value)):
        raise typer.Exit(1)
