"""The `ciliary` command line: a thin shell over the workflows.

The package holds the app and what every command shares (output, errors, building an
engine from the common flags); each module registers one group of commands:
`policy_commands` (validate, identities, trace, matrix), `flow_commands` (observe,
connections, replay, diff), `authoring` (generate), `quality` (lint), `testing` (test),
`lab` (lab up, down, status, exec, probe) and `agent` (agent, agent status)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer
from rich.console import Console

from ciliary import __version__
from ciliary.model.errors import LoadError

app = typer.Typer(
    name="ciliary",
    help="Cilium network policy, offline: validate, trace, replay, diff and test policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(StrEnum):
    text = "text"
    json = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]


def print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def fail_load(e: LoadError, output: Output) -> None:
    if output is Output.json:
        print_json({"errors": [i.as_dict() for i in e.issues]})
    else:
        from rich.markup import escape

        for issue in e.issues:
            # Messages quote the input (names, labels, paths): data, never markup.
            err.print(f"[red]error[/]: {escape(str(issue))}", markup=True)
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



ClusterOpt = Annotated[Path, typer.Option("--cluster", help="Cluster snapshot (kubectl get ... -A -o yaml/json) or a directory of manifests.")]
PoliciesOpt = Annotated[Optional[list[Path]], typer.Option("--policies", help="Policy files or directories (repeatable). Default: the policies in the snapshot.")]  # noqa: UP045
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="Agent options file: Cilium option names, or the cilium-config ConfigMap.")]  # noqa: UP045
EnablePolicyOpt = Annotated[Optional[str], typer.Option("--enable-policy", help="default | always | never")]  # noqa: UP045
AllowLocalhostOpt = Annotated[Optional[str], typer.Option("--allow-localhost", help="auto | always | policy")]  # noqa: UP045
AuditOpt = Annotated[bool, typer.Option("--audit-mode", "--policy-audit-mode", help="Policy audit mode: would-be drops become AUDIT.")]
CidrModeOpt = Annotated[Optional[str], typer.Option("--policy-cidr-match-mode", help='"" or "nodes": let CIDR rules select node IPs.')]  # noqa: UP045
NonDefaultDenyOpt = Annotated[Optional[bool], typer.Option("--enable-non-default-deny-policies/--disable-non-default-deny-policies", help="Honour enableDefaultDeny: false.")]  # noqa: UP045
HostFwOpt = Annotated[Optional[bool], typer.Option("--enable-host-firewall/--disable-host-firewall", help="Enforce host policies (nodeSelector).")]  # noqa: UP045


def engine_from(
    cluster: Path, policies: list[Path] | None, config: Path | None, output: Output, **overrides: Any
) -> Any:
    from rich.markup import escape

    from ciliary.policy.config import ALLOW_LOCALHOST, ENABLE_POLICY
    from ciliary.workflows.engine import build_engine, read_config

    if overrides.get("enable_policy") not in (None, *ENABLE_POLICY):
        raise typer.BadParameter(f"must be one of {', '.join(ENABLE_POLICY)}", param_hint="--enable-policy")
    if overrides.get("allow_localhost") not in (None, *ALLOW_LOCALHOST):
        raise typer.BadParameter(f"must be one of {', '.join(ALLOW_LOCALHOST)}", param_hint="--allow-localhost")
    if overrides.get("policy_cidr_match_mode") not in (None, "", "nodes"):
        raise typer.BadParameter('must be "" or "nodes"', param_hint="--policy-cidr-match-mode")
    if not overrides.get("policy_audit_mode"):
        overrides["policy_audit_mode"] = None
    try:
        cfg = read_config(config).with_overrides(**overrides)
        engine = build_engine(cluster, policies, cfg)
    except LoadError as e:
        for warning in e.warnings:
            err.print(f"[yellow]warning[/]: {escape(str(warning))}", markup=True, highlight=False)
        fail_load(e, output)
    for warning in engine.policies.warnings:
        err.print(f"[yellow]warning[/]: {escape(str(warning))}", markup=True, highlight=False)
    from ciliary.process import tune_gc_for_batch

    tune_gc_for_batch()  # the engine lives as long as the command
    return engine



def main() -> None:
    from ciliary.process import tune_gc_for_batch

    tune_gc_for_batch()
    app()


# The commands register themselves on `app` (imported last: they use the names above),
# in the order `ciliary --help` lists them.
from ciliary.cli import policy_commands  # noqa: E402, I001
from ciliary.cli import flow_commands  # noqa: E402
from ciliary.cli import authoring  # noqa: E402
from ciliary.cli import quality  # noqa: E402
from ciliary.cli import testing  # noqa: E402
from ciliary.cli import lab  # noqa: E402
from ciliary.cli import agent  # noqa: E402

__all__ = ["agent", "app", "authoring", "err", "fail_load", "flow_commands", "lab", "main", "out", "policy_commands", "print_json", "quality", "testing"]
