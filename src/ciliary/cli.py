"""The `ciliary` command line: a thin shell over the workflows."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ciliary import __version__
from ciliary.model.errors import LoadError
from ciliary.model.options import ValidationOptions

app = typer.Typer(
    name="ciliary",
    help="Cilium network policy, offline: validate, trace, replay, diff and test policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(str, Enum):
    text = "text"
    json = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def _fail_load(e: LoadError, output: Output) -> None:
    if output is Output.json:
        _print_json({"errors": [i.as_dict() for i in e.issues]})
    else:
        for issue in e.issues:
            err.print(f"[red]error[/]: {issue}", markup=True)
        err.print(f"{len(e.issues)} error{'s' if len(e.issues) != 1 else ''}")
    raise typer.Exit(1)


def _version(value: bool) -> None:
    if value:
        out.print(f"ciliary {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Cilium network policy, offline."""


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Policy files or directories (recursive).")],
    output: OutputOpt = Output.text,
    enable_l7_proxy: Annotated[bool, typer.Option("--enable-l7-proxy/--disable-l7-proxy", help="Cilium --enable-l7-proxy.")] = True,
    enable_icmp_rules: Annotated[bool, typer.Option("--enable-icmp-rules/--disable-icmp-rules", help="Cilium --enable-icmp-rules.")] = True,
    enable_node_selector_labels: Annotated[bool, typer.Option(help="Cilium --enable-node-selector-labels (fromNodes/toNodes).")] = False,
) -> None:
    """Validate CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and NetworkPolicy files.

    Exit 0 when every policy is valid, 1 with every error listed otherwise.
    """
    from ciliary.workflows.validate import validate_paths

    options = ValidationOptions(
        enable_l7_proxy=enable_l7_proxy,
        enable_icmp_rules=enable_icmp_rules,
        enable_node_selector_labels=enable_node_selector_labels,
    )
    report = validate_paths(paths, options)
    if output is Output.json:
        _print_json([i.as_dict() for i in report.issues])
        raise typer.Exit(0 if report.ok else 1)
    if not report.ok:
        for issue in report.issues:
            err.print(f"[red]error[/]: {issue}", markup=True, highlight=False)
        n = len(report.issues)
        err.print(f"{n} error{'s' if n != 1 else ''}; nothing loaded")
        raise typer.Exit(1)
    assert report.policies is not None
    by_kind: dict[str, int] = {}
    for p in report.policies.policies:
        by_kind[p.kind] = by_kind.get(p.kind, 0) + 1
        out.print(f"  ok  {p.ref}  ({p.file})")
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted(by_kind.items()))
    msg = f"{len(report.policies)} valid polic{'y' if len(report.policies) == 1 else 'ies'}"
    if kinds:
        msg += f" ({kinds})"
    skipped = report.policies.skipped_kinds
    if skipped:
        msg += "; skipped other kinds: " + ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items()))
    out.print(msg)


@app.command()
def identities(
    cluster: Annotated[Path, typer.Option("--cluster", help="Cluster snapshot: kubectl get ... -A -o yaml/json, or a directory of manifests.")],
    output: OutputOpt = Output.text,
) -> None:
    """List the security identities of a cluster: labels, and the endpoints sharing each."""
    from ciliary.cluster.loader import read_cluster
    from ciliary.workflows.identities import list_identities

    try:
        snapshot = read_cluster([cluster])
    except LoadError as e:
        _fail_load(e, output)
        return
    rows = list_identities(snapshot)
    if output is Output.json:
        _print_json([r.as_dict() for r in rows])
        return
    table = Table(show_lines=False, box=None, pad_edge=False)
    table.add_column("IDENTITY", justify="right", no_wrap=True)
    table.add_column("LABELS")
    table.add_column("ENDPOINTS")
    for r in rows:
        table.add_row(str(r.id), "\n".join(r.labels), "\n".join(r.endpoints) or "-")
    out.print(table)


def main() -> None:
    app()
