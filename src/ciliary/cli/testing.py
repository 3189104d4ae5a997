"""`ciliary test`: connectivity expectations files run as CI tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ciliary.cli import Output, OutputOpt, app, err, out, print_json
from ciliary.model.errors import LoadError, ValidationIssue, ValidationWarning

PROGRESS_FROM = 50  # cases; fewer finish before a progress bar would be worth drawing


@app.command("test")
def test_expectations(
    files: Annotated[list[Path], typer.Argument(help="Expectations files (YAML: cluster, policies, cases, tables).")],
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Also write a JUnit XML report to FILE (one testsuite per expectations file).")] = None,  # noqa: UP045
    output: OutputOpt = Output.text,
) -> None:
    """Check connectivity expectations against the policies: every case is traced as
    `ciliary trace` would, and must give the verdict it expects (allowed, denied, audit,
    redirected; optionally the drop reason and the proxy's status). Truth tables are
    checked cell by cell. Exit 0 when every case passes, 1 when one fails, 2 on bad input
    (nothing is run then)."""
    from ciliary.workflows.expect import (
        CaseResult,
        Prepared,
        RunResult,
        failure_text,
        junit_xml,
        load_expectations,
        prepare,
        rows,
        run_file,
        summary,
    )

    issues: list[ValidationIssue] = []
    warnings: list[ValidationWarning] = []
    prepared: list[Prepared] = []
    for f in files:
        try:
            p = prepare(load_expectations(f))
        except LoadError as e:
            issues += e.issues
            warnings += e.warnings
            continue
        warnings += p.warnings
        prepared.append(p)
    for warning in warnings:
        err.print(f"[yellow]warning[/]: {escape(str(warning))}", markup=True, highlight=False)
    if issues:
        _bad_input(issues, output)

    total = sum(len(p.spec.cases) for p in prepared)
    if err.is_terminal and total >= PROGRESS_FROM:
        from rich.progress import Progress

        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("testing", total=total)

            def advance(_: CaseResult) -> None:
                progress.advance(task)

            run = RunResult([run_file(p, advance) for p in prepared])
    else:
        run = RunResult([run_file(p) for p in prepared])

    if junit is not None:
        try:
            junit.write_text(junit_xml(run), encoding="utf-8")
        except OSError as e:
            err.print(f"error: cannot write the JUnit report {junit}: {e.strerror or e}", markup=False)
            raise typer.Exit(2) from None
    if output is Output.json:
        print_json(run.as_dict())
    else:
        table = Table(box=None, pad_edge=False, show_edge=False)
        table.add_column("RESULT", no_wrap=True, min_width=6)
        table.add_column("CASE", overflow="fold", ratio=3)
        table.add_column("EXPECT", ratio=1)
        table.add_column("GOT", ratio=1)
        table.add_column("WHERE", no_wrap=True)
        for row in rows(run):
            mark = "[green]PASS[/]" if row.passed else "[red]FAIL[/]"
            table.add_row(mark, escape(row.name), escape(row.expect), escape(row.got), escape(row.where))
        # Not on a terminal (CI logs, pipes): no width limit, so names are never cut.
        wide = out if out.is_terminal else Console(highlight=False, soft_wrap=True, width=100_000)
        wide.print(table)
        failures = [r for r in run.results if not r.passed]
        for r in failures:
            out.print()
            out.print(failure_text(r), markup=False, highlight=False)
        out.print()
        out.print(summary(run), markup=False)
    raise typer.Exit(1 if run.failed else 0)


def _bad_input(issues: list[ValidationIssue], output: Output) -> None:
    if output is Output.json:
        print_json({"errors": [i.as_dict() for i in issues]})
    else:
        for issue in issues:
            err.print(f"[red]error[/]: {escape(str(issue))}", markup=True, highlight=False)
        n = len(issues)
        err.print(f"{n} error{'s' if n != 1 else ''}; nothing run", markup=False)
    raise typer.Exit(2)
