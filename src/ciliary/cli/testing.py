"""`ciliary test`: connectivity expectations files run as CI tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ciliary.cli import Output, OutputOpt, app, err, out, print_json
from ciliary.model.errors import LoadError, ValidationIssue, ValidationWarning

if TYPE_CHECKING:
    from ciliary.workflows.expect import Prepared

PROGRESS_FROM = 50  # cases; fewer finish before a progress bar would be worth drawing


@app.command("test")
def test_expectations(
    files: Annotated[list[Path], typer.Argument(help="Expectations files (YAML: cluster, policies, cases, tables).")],
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Also write a JUnit XML report to FILE (one testsuite per expectations file).")] = None,  # noqa: UP045
    lab: Annotated[bool, typer.Option("--lab", help="Check the cases through real connections: a lab of each file's snapshot with the agent enforcing its policies (needs root).")] = False,
    lab_timeout: Annotated[float, typer.Option("--lab-timeout", min=0.05, max=30.0, help="With --lab: seconds a probe waits before it counts as blocked.")] = 0.6,
    output: OutputOpt = Output.text,
) -> None:
    """Check connectivity expectations against the policies: every case is traced as
    `ciliary trace` would, and must give the verdict it expects (allowed, denied, audit,
    redirected; optionally the drop reason and the proxy's status). Truth tables are
    checked cell by cell. Exit 0 when every case passes, 1 when one fails, 2 on bad input
    (nothing is run then).

    With --lab every case is a real probe in a lab of the file's snapshot (`ciliary lab`)
    with the agent enforcing its policies; what the L3/L4 datapath cannot check yet (the L7
    proxy's verdict, resolve) is skipped with the reason, and skips do not fail. Exit 2 also
    when the lab cannot be built here (root and network namespaces are needed)."""
    from ciliary.workflows.expect import (
        CaseResult,
        RunResult,
        failure_text,
        junit_xml,
        load_expectations,
        prepare,
        rows,
        run_file,
        summary,
    )

    if lab:
        from ciliary.datapath.labtest import lab_support_problem

        problem = lab_support_problem()
        if problem:
            _lab_error(f"ciliary test --lab: {problem}", output)

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

    if lab:
        _run_lab(prepared, junit, lab_timeout, output)

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
        _write_junit(junit, junit_xml(run))
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


def _run_lab(prepared: list[Prepared], junit: Path | None, timeout: float, output: Output) -> NoReturn:
    """`ciliary test --lab`: every file through a lab of its own, printed as `ciliary test` prints."""
    from ciliary.datapath import labtest

    try:
        run = labtest.run_lab(prepared, timeout=timeout)
    except labtest.LabRunError as e:
        _lab_error(str(e) + "".join(f"; {n}" for n in getattr(e, "__notes__", [])), output)
    if junit is not None:
        _write_junit(junit, labtest.junit_xml(run))
    if output is Output.json:
        print_json(run.as_dict())
    else:
        marks = {"passed": "[green]PASS[/]", "failed": "[red]FAIL[/]", "error": "[red]ERROR[/]", "skipped": "[yellow]SKIP[/]"}
        table = Table(box=None, pad_edge=False, show_edge=False)
        table.add_column("RESULT", no_wrap=True, min_width=6)
        table.add_column("CASE", overflow="fold", ratio=3)
        table.add_column("EXPECT", ratio=1)
        table.add_column("GOT", ratio=1)
        table.add_column("TRACE", ratio=1)
        table.add_column("WHERE", no_wrap=True)
        for row in labtest.rows(run):
            table.add_row(marks[row.status], escape(row.name), escape(row.expect), escape(row.got), escape(row.trace), escape(row.where))
        wide = out if out.is_terminal else Console(highlight=False, soft_wrap=True, width=100_000)
        wide.print(table)
        skipped = [r for r in run.results if r.skipped]
        if skipped:
            out.print()
            for r in skipped:
                out.print(labtest.skipped_text(r), markup=False, highlight=False)
        noted = [r for r in run.results if r.notes and not r.failed]
        if noted:
            out.print()
            for r in noted:
                for note in r.notes:
                    out.print(f"NOTE {r.case.file}:{r.case.line}  {r.case.name}: {note}", markup=False, highlight=False)
        for r in run.results:
            if r.failed:
                out.print()
                out.print(labtest.failure_text(r), markup=False, highlight=False)
        out.print()
        out.print(labtest.summary(run), markup=False)
    raise typer.Exit(1 if run.failed else 0)


def _write_junit(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        err.print(f"error: cannot write the JUnit report {path}: {e.strerror or e}", markup=False)
        raise typer.Exit(2) from None


def _lab_error(message: str, output: Output) -> NoReturn:
    if output is Output.json:
        print_json({"error": message})
    else:
        err.print(f"[red]error[/]: {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(2)


def _bad_input(issues: list[ValidationIssue], output: Output) -> None:
    if output is Output.json:
        print_json({"errors": [i.as_dict() for i in issues]})
    else:
        for issue in issues:
            err.print(f"[red]error[/]: {escape(str(issue))}", markup=True, highlight=False)
        n = len(issues)
        err.print(f"{n} error{'s' if n != 1 else ''}; nothing run", markup=False)
    raise typer.Exit(2)
