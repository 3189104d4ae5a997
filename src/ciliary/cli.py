"""The `ciliary` command line: a thin shell over the workflows."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Optional

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


class Output(StrEnum):
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
    from rich.markup import escape

    from ciliary.workflows.validate import validate_paths

    options = ValidationOptions(
        enable_l7_proxy=enable_l7_proxy,
        enable_icmp_rules=enable_icmp_rules,
        enable_node_selector_labels=enable_node_selector_labels,
    )
    report = validate_paths(paths, options)
    # On stderr in both modes: the JSON on stdout stays a list of errors.
    for warning in report.warnings:
        err.print(f"[yellow]warning[/]: {escape(str(warning))}", markup=True, highlight=False)
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


ClusterOpt = Annotated[Path, typer.Option("--cluster", help="Cluster snapshot (kubectl get ... -A -o yaml/json) or a directory of manifests.")]
PoliciesOpt = Annotated[Optional[list[Path]], typer.Option("--policies", help="Policy files or directories (repeatable). Default: the policies in the snapshot.")]  # noqa: UP045
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="Agent options file: Cilium option names, or the cilium-config ConfigMap.")]  # noqa: UP045
EnablePolicyOpt = Annotated[Optional[str], typer.Option("--enable-policy", help="default | always | never")]  # noqa: UP045
AllowLocalhostOpt = Annotated[Optional[str], typer.Option("--allow-localhost", help="auto | always | policy")]  # noqa: UP045
AuditOpt = Annotated[bool, typer.Option("--audit-mode", "--policy-audit-mode", help="Policy audit mode: would-be drops become AUDIT.")]
CidrModeOpt = Annotated[Optional[str], typer.Option("--policy-cidr-match-mode", help='"" or "nodes": let CIDR rules select node IPs.')]  # noqa: UP045
NonDefaultDenyOpt = Annotated[Optional[bool], typer.Option("--enable-non-default-deny-policies/--disable-non-default-deny-policies", help="Honour enableDefaultDeny: false.")]  # noqa: UP045
HostFwOpt = Annotated[Optional[bool], typer.Option("--enable-host-firewall/--disable-host-firewall", help="Enforce host policies (nodeSelector).")]  # noqa: UP045


def _engine(
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
        _fail_load(e, output)
    for warning in engine.policies.warnings:
        err.print(f"[yellow]warning[/]: {escape(str(warning))}", markup=True, highlight=False)
    from ciliary.process import tune_gc_for_batch

    tune_gc_for_batch()  # the engine lives as long as the command
    return engine


@app.command()
def trace(
    cluster: ClusterOpt,
    src: Annotated[str, typer.Option("--src", help="Source: NS/POD, node/NAME or an IP.")],
    dst: Annotated[str, typer.Option("--dst", help="Destination: NS/POD, node/NAME or an IP.")],
    policies: PoliciesOpt = None,
    config: ConfigOpt = None,
    dport: Annotated[Optional[str], typer.Option("--dport", help="Destination port: PORT/PROTO, e.g. 8080/TCP.")] = None,  # noqa: UP045
    icmp: Annotated[Optional[str], typer.Option("--icmp", help="ICMP type: TYPE or TYPE/v6 (number or name, e.g. EchoRequest).")] = None,  # noqa: UP045
    audit_mode: AuditOpt = False,
    enable_policy: EnablePolicyOpt = None,
    allow_localhost: AllowLocalhostOpt = None,
    policy_cidr_match_mode: CidrModeOpt = None,
    enable_non_default_deny_policies: NonDefaultDenyOpt = None,
    enable_host_firewall: HostFwOpt = None,
    http: Annotated[Optional[tuple[str, str]], typer.Option("--http", help="An HTTP request: METHOD PATH.")] = None,  # noqa: UP045
    http_host: Annotated[Optional[str], typer.Option("--http-host", help="The request's Host (:authority).")] = None,  # noqa: UP045
    http_header: Annotated[Optional[list[str]], typer.Option("--http-header", help="'Name: value' (repeatable).")] = None,  # noqa: UP045
    kafka_api_key: Annotated[Optional[str], typer.Option("--kafka-api-key", help="Kafka request API key (name or number).")] = None,  # noqa: UP045
    kafka_role: Annotated[Optional[str], typer.Option("--kafka-role", help="produce | consume (a Produce or Fetch request).")] = None,  # noqa: UP045
    kafka_topic: Annotated[Optional[list[str]], typer.Option("--kafka-topic", help="Topic of the Kafka request (repeatable).")] = None,  # noqa: UP045
    kafka_client_id: Annotated[Optional[str], typer.Option("--kafka-client-id", help="Kafka client id.")] = None,  # noqa: UP045
    kafka_api_version: Annotated[Optional[int], typer.Option("--kafka-api-version", help="Kafka API version.")] = None,  # noqa: UP045
    dns_query: Annotated[Optional[str], typer.Option("--dns-query", help="A DNS query for NAME (checked by the DNS proxy).")] = None,  # noqa: UP045
    resolve: Annotated[Optional[list[str]], typer.Option("--resolve", help="NAME=IP[,IP]: a DNS answer seen before the flow, passed through the source's DNS policy (repeatable).")] = None,  # noqa: UP045
    output: OutputOpt = Output.text,
) -> None:
    """Trace one flow through the policies: which rules select each side, the policy-map
    entry that matched, and the verdict (with an L7 request: the proxy's verdict too).
    Exit 0 when forwarded, redirected and allowed, or audited; 1 when dropped or denied."""
    from ciliary.workflows.trace import (
        build_request,
        parse_dport,
        parse_icmp,
        parse_resolve,
        render_dns,
        render_trace,
    )
    from ciliary.workflows.trace import trace as do_trace

    if (dport is None) == (icmp is None):
        raise typer.BadParameter("give exactly one of --dport PORT/PROTO or --icmp TYPE[/v6]")
    try:
        proto, port = parse_dport(dport) if dport is not None else parse_icmp(icmp or "")
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--dport" if dport else "--icmp") from None
    engine = _engine(
        cluster, policies, config, output,
        policy_audit_mode=audit_mode, enable_policy=enable_policy, allow_localhost=allow_localhost,
        policy_cidr_match_mode=policy_cidr_match_mode,
        enable_non_default_deny_policies=enable_non_default_deny_policies,
        enable_host_firewall=enable_host_firewall,
    )
    try:
        request = build_request(
            http=http, http_host=http_host, http_headers=http_header, kafka_api_key_name=kafka_api_key,
            kafka_role=kafka_role, kafka_topics=kafka_topic, kafka_client_id=kafka_client_id,
            kafka_api_version=kafka_api_version, dns_query=dns_query,
        )
        resolves = [parse_resolve(r) for r in resolve or []]
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    try:
        verdict, observations = do_trace(engine, src, dst, proto, port, request, resolves)
    except LookupError as e:
        err.print(f"error: {e.args[0]}")
        raise typer.Exit(2) from None
    if output is Output.json:
        d = verdict.as_dict()
        d["dns_observations"] = [o.as_dict() for o in observations]
        _print_json(d)
    else:
        if observations:
            out.print(render_dns(observations) + "\n", markup=False)
        out.print(render_trace(verdict), markup=False)
    denied = verdict.verdict == "DROPPED" or (verdict.l7 is not None and verdict.l7.verdict == "DROPPED")
    raise typer.Exit(1 if denied else 0)


class MatrixOutput(StrEnum):
    text = "text"
    json = "json"
    csv = "csv"
    dot = "dot"


@app.command()
def matrix(
    cluster: ClusterOpt,
    policies: PoliciesOpt = None,
    config: ConfigOpt = None,
    dport: Annotated[Optional[list[str]], typer.Option("--dport", help="PORT/PROTO to probe (repeatable). Default: every container port in the cluster.")] = None,  # noqa: UP045
    namespace: Annotated[Optional[list[str]], typer.Option("--namespace", "-n", help="Only pods of these namespaces (repeatable).")] = None,  # noqa: UP045
    audit_mode: AuditOpt = False,
    enable_policy: EnablePolicyOpt = None,
    allow_localhost: AllowLocalhostOpt = None,
    policy_cidr_match_mode: CidrModeOpt = None,
    enable_non_default_deny_policies: NonDefaultDenyOpt = None,
    enable_host_firewall: HostFwOpt = None,
    output: Annotated[MatrixOutput, typer.Option("--output", "-o", help="text | json | csv | dot")] = MatrixOutput.text,
) -> None:
    """Pod-by-pod connectivity matrix per port/protocol ('.' allowed, 'X' denied), computed
    per identity pair."""
    from ciliary.policy.ports import PROTO_NUMBERS
    from ciliary.workflows.matrix import Probe, compute_matrix
    from ciliary.workflows.trace import parse_dport

    engine = _engine(
        cluster, policies, config, Output.json if output is MatrixOutput.json else Output.text,
        policy_audit_mode=audit_mode, enable_policy=enable_policy, allow_localhost=allow_localhost,
        policy_cidr_match_mode=policy_cidr_match_mode,
        enable_non_default_deny_policies=enable_non_default_deny_policies,
        enable_host_firewall=enable_host_firewall,
    )
    try:
        if dport:
            probes = [Probe(*parse_dport(d)) for d in dport]
        else:
            probes = sorted({Probe(PROTO_NUMBERS.get(cp.protocol.upper(), 6), cp.port) for ep in engine.pod_endpoints for cp in ep.named_ports}, key=lambda p: (p.port, p.proto))
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--dport") from None
    eps = sorted(engine.pod_endpoints, key=lambda e: e.key)
    if namespace:
        eps = [e for e in eps if e.namespace in namespace]
    if not probes:
        err.print("error: no --dport given and no container ports in the cluster")
        raise typer.Exit(2)
    if len(eps) > 50:
        err.print(f"computing {len(probes)} probe(s) for {len(eps)} pods ...")
    m = compute_matrix(engine, probes, eps)
    if output is MatrixOutput.json:
        _print_json(m.as_dict())
    elif output is MatrixOutput.csv:
        sys.stdout.write(m.as_csv())
    elif output is MatrixOutput.dot:
        for p in probes:
            sys.stdout.write(m.as_dot(p))
    else:
        for p in probes:
            out.print(f"Reachability matrix for {p} ('.' allowed, 'X' denied):", markup=False)
            short = all(len(n) <= 12 for n in m.endpoints)
            out.print(m.truth_table(p) if short else m.numbered_table(p), markup=False)
            out.print()


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def observe(ctx: typer.Context) -> None:
    """Read, filter and print Hubble flows like `hubble observe`: ciliary observe FILE...
    [filters] [-o compact|dict|json|jsonpb|table]. FILE '-' (or none) reads stdin.
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

    engine = _engine(
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
    e_old = _engine(cluster, old, config, fmt)
    e_new = _engine(cluster, new, config, fmt)
    from ciliary.process import streaming

    with streaming():
        rep = diff_policies(e_old, e_new, [str(f) for f in flows or []])
    if output is DiffOutput.json:
        _print_json(rep.as_dict())
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


def main() -> None:
    from ciliary.process import tune_gc_for_batch

    tune_gc_for_batch()
    app()
