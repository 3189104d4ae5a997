"""Commands over policies and a cluster: validate, identities, trace, matrix."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

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
    OutputOpt,
    PoliciesOpt,
    app,
    engine_from,
    err,
    fail_load,
    out,
    print_json,
)
from ciliary.model.errors import LoadError
from ciliary.model.options import ValidationOptions


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
        print_json([i.as_dict() for i in report.issues])
        raise typer.Exit(0 if report.ok else 1)
    if not report.ok:
        for issue in report.issues:
            err.print(f"[red]error[/]: {escape(str(issue))}", markup=True, highlight=False)
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
        fail_load(e, output)
        return
    rows = list_identities(snapshot)
    if output is Output.json:
        print_json([r.as_dict() for r in rows])
        return
    table = Table(show_lines=False, box=None, pad_edge=False)
    table.add_column("IDENTITY", justify="right", no_wrap=True)
    table.add_column("LABELS")
    table.add_column("ENDPOINTS")
    for r in rows:
        table.add_row(str(r.id), "\n".join(r.labels), "\n".join(r.endpoints) or "-")
    out.print(table)




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
    engine = engine_from(
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
        print_json(d)
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
    connlist = "connlist"


class MatrixPorts(StrEnum):
    all = "all"
    containers = "containers"


@contextmanager
def _progress(what: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient progress bar on stderr for long work (only when stderr is a terminal)."""
    if not (enabled and err.is_terminal):
        yield None
        return
    from rich.progress import Progress

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@app.command()
def matrix(
    cluster: ClusterOpt,
    policies: PoliciesOpt = None,
    config: ConfigOpt = None,
    dport: Annotated[Optional[list[str]], typer.Option("--dport", help="PORT/PROTO to probe (repeatable). Default: --ports all.")] = None,  # noqa: UP045
    ports: Annotated[Optional[MatrixPorts], typer.Option("--ports", help="all: every port and range any policy names, and every other port (the default without --dport); containers: every container port in the cluster.")] = None,  # noqa: UP045
    namespace: Annotated[Optional[list[str]], typer.Option("--namespace", "-n", help="Only pods of these namespaces (repeatable).")] = None,  # noqa: UP045
    audit_mode: AuditOpt = False,
    enable_policy: EnablePolicyOpt = None,
    allow_localhost: AllowLocalhostOpt = None,
    policy_cidr_match_mode: CidrModeOpt = None,
    enable_non_default_deny_policies: NonDefaultDenyOpt = None,
    enable_host_firewall: HostFwOpt = None,
    output: Annotated[MatrixOutput, typer.Option("--output", "-o", help="text | json | csv | dot | connlist (one line per workload pair: its allowed connections over every port)")] = MatrixOutput.text,
) -> None:
    """Pod-by-pod connectivity matrix per port/protocol ('.' allowed, 'X' denied), computed
    per identity pair; with -o connlist, the allowed connections per workload pair."""
    from ciliary.policy.ports import PROTO_NUMBERS
    from ciliary.verdict.decider import Decider
    from ciliary.workflows.matrix import Probe, all_port_probes, compute_matrix, merge_alike
    from ciliary.workflows.trace import parse_dport

    engine = engine_from(
        cluster, policies, config, Output.json if output is MatrixOutput.json else Output.text,
        policy_audit_mode=audit_mode, enable_policy=enable_policy, allow_localhost=allow_localhost,
        policy_cidr_match_mode=policy_cidr_match_mode,
        enable_non_default_deny_policies=enable_non_default_deny_policies,
        enable_host_firewall=enable_host_firewall,
    )
    eps = sorted(engine.pod_endpoints, key=lambda e: e.key)
    if namespace:
        eps = [e for e in eps if e.namespace in namespace]
    if output is MatrixOutput.connlist:
        if dport or ports is MatrixPorts.containers:
            err.print("error: -o connlist covers every port: no --dport or --ports containers")
            raise typer.Exit(2)
        from ciliary.workflows.connlist import connlist

        with _progress(f"connlist of {len(eps)} pods", len(eps) > 50) as progress:
            for line in connlist(engine, eps, progress=progress):
                sys.stdout.write(line + "\n")
        return
    if dport and ports is not None:
        err.print("error: --dport and --ports are alternatives")
        raise typer.Exit(2)
    all_ports = not dport and ports is not MatrixPorts.containers
    try:
        if dport:
            probes = [Probe(*parse_dport(d)) for d in dport]
        elif all_ports:
            probes = all_port_probes(Decider(engine), eps)
        else:
            probes = sorted({Probe(PROTO_NUMBERS.get(cp.protocol.upper(), 6), cp.port) for ep in engine.pod_endpoints for cp in ep.named_ports}, key=lambda p: (p.port, p.proto))
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--dport") from None
    if not probes:
        err.print("error: no --dport given and no container ports in the cluster")
        raise typer.Exit(2)
    long = len(eps) > 50 or len(probes) > 20
    with _progress(f"{len(probes)} probe(s) for {len(eps)} pods", long) as progress:
        m = compute_matrix(engine, probes, eps, progress=progress)
    if all_ports:
        m = merge_alike(m)
        probes = m.probes
    if output is MatrixOutput.json:
        print_json(m.as_dict())
    elif output is MatrixOutput.csv:
        sys.stdout.writelines(m.csv_lines())
    elif output is MatrixOutput.dot:
        for p in probes:
            sys.stdout.write(m.as_dot(p))
    else:
        for p in probes:
            out.print(f"Reachability matrix for {p} ('.' allowed, 'X' denied):", markup=False)
            short = all(len(n) <= 12 for n in m.endpoints)
            out.print(m.truth_table(p) if short else m.numbered_table(p), markup=False)
            out.print()
