"""Commands over recorded flows: observe, connections, replay, diff (which replays them too)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ciliary.cli import (
    AllowLocalhostOpt,
    AuditOpt,
    CidrModeOpt,
    ClusterOpt,
    ConfigOpt,
    EnablePolicyOpt,
    HostFwOpt,
    NonDefaultDenyOpt,
    Output,
    PoliciesOpt,
    app,
    engine_from,
    err,
    out,
    print_json,
)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def observe(ctx: typer.Context) -> None:
    """Read, filter and print Hubble flows like `hubble observe`: ciliary observe FILE...
    [filters] [-o compact|dict|json|jsonpb|table] [-f]. FILE '-' (or none) reads stdin.
    Run `ciliary observe --help` for the filter flags."""
    from ciliary.workflows.observe import run_observe_cli

    if any(a in ("--help", "-h") for a in ctx.args):
        out.print(OBSERVE_HELP, markup=False)
        raise typer.Exit(0)
    raise typer.Exit(run_observe_cli(list(ctx.args), sys.stdout, sys.stderr))


OBSERVE_HELP = """Usage: ciliary observe FILE... [FLAGS]

Read Hubble flows (hubble observe -o json / jsonpb lines, flow exporter files, .gz too;
'-' or no FILE reads stdin), filter and print them exactly like `hubble observe`.

Filters (values of one flag are ORed, different flags ANDed; --not negates the next flag):
  --uuid, --node-name, --node-label, --[from-|to-]cluster, --protocol, --tcp-flags,
  -t/--type TYPE[:SUBTYPE], --verdict, --drop-reason-desc, --http-status, --http-method,
  --http-path, --http-url, --http-header, --trace-id, --ip-trace-id, --[from-|to-]fqdn,
  --[from-|to-]ip (CIDRs too), --snat-ip, -4/-6/--ip-version, --[from-|to-]pod,
  -n/--[from-|to-]namespace, -l/--[from-|to-]label, --[from-|to-]service,
  --[from-|to-]port, --[from-|to-]workload, --[from-|to-]identity, --traffic-direction,
  --interface, --encrypted/--unencrypted, --reply, --not, --allowlist/--denylist JSON
Selection: --since, --until (RFC 3339 or relative, e.g. 1h), --first N, --last N, --all
  -f/--follow: then keep printing the flows appended to FILE (one file; across rotations)
  until Ctrl-C or SIGTERM (exit 0); --last N applies to what FILE holds at the start
Output: -o compact|dict|json|jsonpb|table, --print-node-name, --time-format, --numeric,
  --print-raw-filters
Input: --strict (stop at the first bad line), --validate (type-check every flow)

Exit status: 0, or 1 on bad arguments, a missing file or a bad line under --strict."""




@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def connections(ctx: typer.Context) -> None:
    """The observed communication map: one row per (source workload, destination, port, L7)
    with flows, first and last seen, and verdicts: ciliary connections FILE... [--cluster FILE]
    [observe's filters] [-o text|json|csv|md|dot]. Run `ciliary connections --help` for the flags."""
    from ciliary.process import streaming
    from ciliary.workflows.connections import run_connections_cli

    if any(a in ("--help", "-h") for a in ctx.args):
        out.print(CONNECTIONS_HELP, markup=False)
        raise typer.Exit(0)
    with streaming():
        code = run_connections_cli(list(ctx.args), sys.stdout, sys.stderr)
    raise typer.Exit(code)


CONNECTIONS_HELP = """Usage: ciliary connections FILE... [--cluster FILE] [FILTERS] [-o FORMAT]

The observed communication map of Hubble flows (the files `ciliary observe` reads; '-' or no
FILE reads stdin): one row per (source workload, destination workload / entity / fqdn:NAME /
cidr:IP, port/protocol, L7 summary) with the flows seen, first and last seen, and verdicts.

  --cluster FILE   cluster snapshot (kubectl get ... -A -o yaml/json, or manifests) to name
                   pods and addresses by; without it, the labels the flows carry
  -o, --output     text (default) | json | csv | md | dot
Filters: every `ciliary observe` filter flag, with hubble's semantics (values ORed within a
  flag, flags ANDed, --not negates the next flag), --allowlist/--denylist, --since/--until;
  hubble's --cluster NAME filter is --flow-cluster NAME here
Input: --strict (stop at the first bad line)
Not accepted: --first, --last, --all (a map counts every flow) and observe's output options.

Exit status: 0, or 1 on bad arguments, an unreadable file, a snapshot that does not load or a
bad line under --strict."""




class ReplayOutput(StrEnum):
    text = "text"
    json = "json"


@app.command()
def replay(
    flows: Annotated[list[Path], typer.Argument(help="Hubble flow files (hubble observe -o json / jsonpb, flow exporter); '-' for stdin.")],
    cluster: ClusterOpt,
    policies: PoliciesOpt = None,
    config: ConfigOpt = None,
    audit_mode: AuditOpt = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad line instead of skipping it.")] = False,
    enable_policy: EnablePolicyOpt = None,
    allow_localhost: AllowLocalhostOpt = None,
    policy_cidr_match_mode: CidrModeOpt = None,
    enable_non_default_deny_policies: NonDefaultDenyOpt = None,
    enable_host_firewall: HostFwOpt = None,
    output: Annotated[ReplayOutput, typer.Option("--output", "-o", help="text (summary) | json (one Hubble flow per input flow)")] = ReplayOutput.text,
) -> None:
    """Decide recorded Hubble flows again under the given policies. With --audit-mode, the
    flows the policies would drop are reported as AUDIT, grouped by source workload,
    destination and port, with the policy that would drop them."""
    from ciliary.flows.codec import FlowReadError
    from ciliary.workflows.replay import ReplayReport

    engine = engine_from(
        cluster, policies, config, Output.json if output is ReplayOutput.json else Output.text,
        policy_audit_mode=audit_mode, enable_policy=enable_policy, allow_localhost=allow_localhost,
        policy_cidr_match_mode=policy_cidr_match_mode,
        enable_non_default_deny_policies=enable_non_default_deny_policies,
        enable_host_firewall=enable_host_firewall,
    )
    rep = ReplayReport()
    sources = [str(f) for f in flows]

    def bad(b: Any) -> None:
        err.print(f"warning: skipped bad line {b}", markup=False)

    from ciliary.process import streaming

    try:
        with streaming():
            _replay_out(engine, sources, strict, bad, rep, output)
    except FlowReadError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(1) from None
    except OSError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(1) from None
    if output is ReplayOutput.json:
        s = rep.summary()
        err.print(f"{s['flows']} flows: " + ", ".join(f"{k} {v}" for k, v in s["by_predicted_verdict"].items()) + f"; {s['changed']} changed verdict; {s['bad_lines']} bad line(s)", markup=False)
        return
    _print_replay_summary(rep)


def _replay_out(engine: Any, sources: list[str], strict: bool, bad: Any, rep: Any, output: ReplayOutput) -> None:
    """Stream the replay: one Hubble flow per line (-o json) or progress on stderr."""
    from ciliary.workflows.replay import replay as do_replay

    if output is ReplayOutput.json:
        w = sys.stdout.buffer
        for rf in do_replay(engine, sources, strict=strict, on_bad=bad, report=rep):
            w.write(rf.json_line())
        w.flush()
        return
    for n, _ in enumerate(do_replay(engine, sources, strict=strict, on_bad=bad, report=rep), 1):
        if n % 200_000 == 0:
            err.print(f"... {n} flows", markup=False)


def _print_replay_summary(rep: Any) -> None:
    s = rep.summary()
    out.print(f"{s['flows']} flows replayed ({s['bad_lines']} bad line(s) skipped, {s['skipped_non_flow_lines']} non-flow line(s) skipped)", markup=False)
    for k, v in s["by_predicted_verdict"].items():
        out.print(f"  {k:<11} {v}", markup=False)
    out.print(f"{rep.changed_count} flow(s) change verdict against the recorded one:", markup=False)
    for rf in rep.changed[:50]:
        out.print(f"  {rf.describe()}", markup=False)
    if rep.changed_count > 50:
        out.print(f"  ... and {rep.changed_count - 50} more (-o json for all)", markup=False)
    if rep.audit_groups:
        out.print("", markup=False)
        out.print("Audit: traffic the policies would drop (AUDIT verdicts):", markup=False)
        for g in s["audit"]:
            out.print(
                f"  {g['source']} -> {g['destination']} {g['port']}: {g['flows']} flow(s), "
                f"{g['would_drop']} at {g['traffic_direction']} by {', '.join(g['policies']) or '-'}",
                markup=False,
            )


class DiffOutput(StrEnum):
    text = "text"
    json = "json"
    md = "md"


@app.command()
def diff(
    cluster: ClusterOpt,
    old: Annotated[list[Path], typer.Option("--old", help="The current policies (files or directories; repeatable).")],
    new: Annotated[list[Path], typer.Option("--new", help="The proposed policies (files or directories; repeatable).")],
    flows: Annotated[Optional[list[Path]], typer.Option("--flows", help="Observed Hubble flows to replay under both (repeatable).")] = None,  # noqa: UP045
    config: ConfigOpt = None,
    output: Annotated[DiffOutput, typer.Option("--output", "-o", help="text | json | md (markdown for PR comments)")] = DiffOutput.text,
) -> None:
    """The semantic difference between two policy sets: per (source workload, destination,
    port) what becomes allowed and what becomes denied; with --flows, which observed flows
    change verdict. Exit 1 when the new set would drop observed traffic the old set allowed."""
    from ciliary.workflows.diff import diff_policies

    fmt = Output.json if output is DiffOutput.json else Output.text
    e_old = engine_from(cluster, old, config, fmt)
    e_new = engine_from(cluster, new, config, fmt)
    from ciliary.process import streaming

    with streaming():
        rep = diff_policies(e_old, e_new, [str(f) for f in flows or []])
    if output is DiffOutput.json:
        print_json(rep.as_dict())
    elif output is DiffOutput.md:
        sys.stdout.write(rep.markdown() + "\n")
    else:
        out.print(f"{len(rep.newly_denied)} newly denied, {len(rep.newly_allowed)} newly allowed (workload, destination, port) combinations", markup=False)
        for title, rows in (("Newly denied", rep.newly_denied), ("Newly allowed", rep.newly_allowed)):
            if rows:
                out.print(f"{title}:", markup=False)
                for c in rows[:200]:
                    pol = f"  ({', '.join(c.new_policies)})" if c.new_policies else ""
                    out.print(f"  {c.source} -> {c.destination} {c.port}{pol}", markup=False)
        if flows:
            out.print(f"Observed flows: {rep.flows}; {sum(c.count for c in rep.flow_changes)} change verdict", markup=False)
            for fc in rep.flow_changes:
                out.print(f"  {fc.source} -> {fc.destination} {fc.port}: {fc.old} -> {fc.new} ({fc.count} flow(s)) {', '.join(sorted(fc.policies))}", markup=False)
    if rep.regressions:
        err.print(f"{sum(c.count for c in rep.regressions)} observed flow(s) the old policies allowed would be dropped", markup=False)
        raise typer.Exit(1)


