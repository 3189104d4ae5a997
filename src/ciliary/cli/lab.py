"""`ciliary lab`: the cluster's pods as network namespaces on this host (up, down, status,
exec, probe). Everything needs root; the work is in `ciliary.datapath.lab`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ciliary.cli import (
    ClusterOpt,
    ConfigOpt,
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
from ciliary.datapath.lab import DEFAULT_PREFIX, LabError, LabState, check_prefix

lab_app = typer.Typer(
    name="lab",
    help="The cluster's pods as network namespaces on this host: real connections (needs root).",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")

PrefixOpt = Annotated[str, typer.Option("--prefix", help="Names of everything the lab creates start with it: 1-6 of [a-z0-9], a letter first.")]
RunDirOpt = Annotated[Optional[Path], typer.Option("--run-dir", help="Where the state file and server logs go. Default: /run/ciliary/PREFIX.")]  # noqa: UP045


def _fail(message: str, output: Output, code: int = 1) -> NoReturn:
    if output is Output.json:
        print_json({"error": message})
    else:
        err.print(f"[red]error[/]: {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


def _prepare(prefix: str, output: Output) -> None:
    """The checks every command makes first: a valid prefix, root and namespaces."""
    from ciliary.datapath.netns import support_problem

    try:
        check_prefix(prefix)
    except LabError as e:
        _fail(str(e), output, 2)
    problem = support_problem()
    if problem:
        _fail(f"ciliary lab: {problem}", output)


def _state(prefix: str, run_dir: Path | None, output: Output) -> LabState:
    from ciliary.datapath.lab import load_state

    try:
        return load_state(prefix, run_dir)
    except LabError as e:
        _fail(str(e), output)


def _ports(ports: Any) -> str:
    return " ".join(f"{p.port}/{p.proto}" for p in ports) or "-"


def _print_state(state: LabState, seconds: float | None) -> None:
    took = f" ({seconds:.2f} s)" if seconds is not None else ""
    world = ", ".join(state.world.addresses) or "no address"
    out.print(f"lab {state.prefix} is up{took}: {len(state.nodes)} node(s), {len(state.pods)} pod(s), "
              f"{len(state.host_pods)} host-network pod(s), world {world}", markup=False)
    table = Table(box=None, pad_edge=False, show_lines=False)
    for col in ("POD", "NETNS", "NODE", "IP"):
        table.add_column(col, no_wrap=True)
    table.add_column("PORTS")
    ips = {n.name: n.ips for n in state.nodes}
    for p in state.pods:
        table.add_row(p.key, p.netns, p.node, " ".join(p.ips), _ports(p.ports))
    for h in state.host_pods:
        table.add_row(h.key, h.netns, h.node, " ".join(ips[h.node]), f"{_ports(h.ports)} (host network)")
    for n in state.nodes:
        table.add_row(f"node/{n.name}", n.netns, n.name, " ".join(n.ips), "-")
    table.add_row("world", state.world.netns, "-", " ".join(state.world.addresses) or "-", _ports(state.world.ports))
    out.print(table)
    for key, why in state.skipped:
        out.print(f"skipped: {key}: {why}", markup=False)
    for note in state.notes:
        out.print(f"note: {note}", markup=False)
    out.print(f"state: {state.run_dir}/state.json; remove with: ciliary lab down --prefix {state.prefix}", markup=False)


@lab_app.command("up")
def lab_up(
    cluster: ClusterOpt,
    policies: PoliciesOpt = None,
    config: ConfigOpt = None,
    prefix: PrefixOpt = DEFAULT_PREFIX,
    run_dir: RunDirOpt = None,
    world_address: Annotated[Optional[list[str]], typer.Option("--world-address", help="An address outside the cluster for the world namespace to hold (repeatable).")] = None,  # noqa: UP045
    world_port: Annotated[Optional[list[str]], typer.Option("--world-port", help="PORT/PROTO the world serves (repeatable). Default: 80/TCP, 443/TCP, 53/UDP and, with --policies, every port they name.")] = None,  # noqa: UP045
    output: OutputOpt = Output.text,
) -> None:
    """Build the snapshot's nodes and pods as network namespaces, a server on every port.

    Routed veths, a fabric between the nodes and a world namespace. With
    --policies, the world holds one address per CIDR they name and serves their ports.
    Exit 0 when everything listens; 1 (with nothing left behind) otherwise."""
    from ciliary.cluster.loader import read_cluster
    from ciliary.datapath.lab import DEFAULT_WORLD_PORTS, plan, policy_world, status, up
    from ciliary.model.errors import LoadError
    from ciliary.workflows.trace import parse_dport

    _prepare(prefix, output)
    addresses: list[str] = []
    ports: list[tuple[int, str]] = list(DEFAULT_WORLD_PORTS)
    if policies:
        engine = engine_from(cluster, policies, config, output)
        snapshot = engine.cluster
        addresses, ports = policy_world(engine)
    else:
        try:
            snapshot = read_cluster([cluster])
        except LoadError as e:
            fail_load(e, output)
    try:
        for text in world_port or []:
            proto, port = parse_dport(text)
            if proto not in (6, 17):
                raise ValueError(f"{text}: the world serves TCP and UDP only")
            ports.append((port, "TCP" if proto == 6 else "UDP"))
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--world-port") from None
    t0 = time.monotonic()
    try:
        state = plan(snapshot, prefix, [*addresses, *(world_address or [])], ports)
        up(state, run_dir)
    except LabError as e:
        _fail(str(e), output)
    seconds = time.monotonic() - t0
    if output is Output.json:
        print_json({**status(prefix, run_dir).as_dict(), "seconds": round(seconds, 3)})
    else:
        _print_state(state, seconds)


@lab_app.command("down")
def lab_down(prefix: PrefixOpt = DEFAULT_PREFIX, run_dir: RunDirOpt = None, output: OutputOpt = Output.text) -> None:
    """Remove the lab and everything named with its prefix (idempotent).

    Its processes, namespaces (and the veths in them), anything else named with the
    prefix, and its run files; also after a crash or without a state file.
    Exit 0, also when there was nothing to remove."""
    from ciliary.datapath.lab import down

    _prepare(prefix, output)
    try:
        report = down(prefix, run_dir)
    except LabError as e:
        _fail(str(e), output)
    if output is Output.json:
        print_json(report.as_dict())
    elif report.nothing:
        out.print(f"nothing to remove for lab {prefix}", markup=False)
    else:
        kinds = (("root interface(s)", report.links), ("nft table(s)", report.tables), ("run file(s)", report.files))
        extra = "".join(f", {len(v)} {k}" for k, v in kinds if v)
        out.print(f"removed lab {prefix}: {len(report.netns)} namespace(s), {len(report.killed)} process(es){extra}", markup=False)


@lab_app.command("status")
def lab_status(prefix: PrefixOpt = DEFAULT_PREFIX, run_dir: RunDirOpt = None, output: OutputOpt = Output.text) -> None:
    """What runs of the lab: namespaces, servers, and anything left over.

    Exit 0 when the lab is up and every server runs, 1 otherwise."""
    from ciliary.datapath.lab import status

    _prepare(prefix, output)
    st = status(prefix, run_dir)
    if output is Output.json:
        print_json(st.as_dict())
        raise typer.Exit(0 if st.ok else 1)
    if st.state is None:
        left = f"; left over: {', '.join(st.present)}" if st.present else ""
        strays = f"; stray processes: {' '.join(map(str, st.strays))}" if st.strays else ""
        out.print(f"no lab {prefix} (no state in {st.run_dir}){left}{strays}", markup=False)
        if left or strays:
            out.print(f"remove with: ciliary lab down --prefix {prefix}", markup=False)
        raise typer.Exit(1)
    _print_state(st.state, None)
    for s in st.servers:
        if not s["alive"]:
            out.print(f"server down: {s['label']} in {s['netns']} (pid {s['pid']})", markup=False)
    if st.missing:
        out.print(f"namespaces missing: {', '.join(st.missing)}", markup=False)
    raise typer.Exit(0 if st.ok else 1)


@lab_app.command("exec")
def lab_exec(
    target: Annotated[str, typer.Argument(help="NS/POD, node/NAME, world or fabric.")],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
    prefix: PrefixOpt = DEFAULT_PREFIX,
    run_dir: RunDirOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Run a command in a pod's network namespace: ciliary lab exec NS/POD -- CMD...

    A host-network pod or node/NAME: the node's namespace. The command's exit status is
    passed through; -o json captures its output."""
    _prepare(prefix, output)
    state = _state(prefix, run_dir, output)
    try:
        ns = state.netns_for(target)
    except LabError as e:
        _fail(str(e), output)
    argv = ["ip", "netns", "exec", ns, *command]
    if output is Output.json:
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        print_json({"target": target, "netns": ns, "command": command, "exit_code": res.returncode,
                    "stdout": res.stdout, "stderr": res.stderr})
        raise typer.Exit(res.returncode)
    raise typer.Exit(subprocess.run(argv, check=False).returncode)


@lab_app.command("probe")
def lab_probe(
    src: Annotated[str, typer.Option("--src", help="Source: NS/POD, node/NAME or world.")],
    dst: Annotated[str, typer.Option("--dst", help="Destination: NS/POD, node/NAME, world or an IPv4 address.")],
    dport: Annotated[Optional[str], typer.Option("--dport", help="PORT/PROTO (TCP or UDP), e.g. 8080/TCP.")] = None,  # noqa: UP045
    icmp: Annotated[Optional[str], typer.Option("--icmp", help="ICMPv4 type: number or name (EchoRequest).")] = None,  # noqa: UP045
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for an answer.")] = 1.0,
    cluster: Annotated[Optional[Path], typer.Option("--cluster", help="Snapshot: also trace the flow, as `ciliary trace` would, and compare.")] = None,  # noqa: UP045
    policies: PoliciesOpt = None,
    config: ConfigOpt = None,
    expect_agree: Annotated[bool, typer.Option("--expect-agree", help="Exit 1 when the probe and the trace disagree.")] = False,
    prefix: PrefixOpt = DEFAULT_PREFIX,
    run_dir: RunDirOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """One real connection from a pod of the lab, next to what `ciliary trace` predicts.

    The result is connected, refused, timeout or unreachable. With --cluster, next to
    what `ciliary trace` predicts, and
    whether they agree (delivered = connected or refused; predicted = not DROPPED).
    Exit 0 when the probe ran (with --expect-agree: and they agree), 1 otherwise, 2 on
    bad usage."""
    from ciliary.datapath.prober import Probe, probe_many
    from ciliary.workflows.trace import parse_dport, parse_icmp

    if (dport is None) == (icmp is None):
        raise typer.BadParameter("give exactly one of --dport PORT/PROTO or --icmp TYPE")
    if expect_agree and cluster is None:
        raise typer.BadParameter("--expect-agree needs --cluster (and --policies) to trace the flow")
    try:
        proto, port = parse_dport(dport) if dport is not None else parse_icmp(icmp or "")
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--dport" if dport else "--icmp") from None
    if proto not in (1, 6, 17):
        raise typer.BadParameter("the lab probes TCP, UDP and ICMPv4 only", param_hint="--dport" if dport else "--icmp")
    _prepare(prefix, output)
    state = _state(prefix, run_dir, output)
    try:
        ns = state.netns_for(src)
        address = state.address_of(dst)
        kind = {1: "icmp", 6: "tcp", 17: "udp"}[proto]
        probe = Probe(address, kind, port if proto != 1 else 0, port if proto == 1 else 8, timeout)
    except (LabError, ValueError) as e:
        _fail(str(e), output)
    result = probe_many(ns, [probe], timeout)[0]
    verdict = None
    if cluster is not None:
        from ciliary.workflows.trace import trace

        engine = engine_from(cluster, policies, config, output)
        names = {"world": state.address_of("world")} if "world" in (src, dst) else {}
        try:
            verdict, _ = trace(engine, names.get(src, src), names.get(dst, dst), proto, port)
        except LookupError as e:
            _fail(str(e.args[0]), output, 2)
    predicted = verdict.predicted if verdict is not None else None
    agree = None if verdict is None else (verdict.allowed == result.delivered)
    if output is Output.json:
        print_json({
            "source": src, "destination": dst, "netns": ns, "address": address, "probe": result.as_dict(),
            "delivered": result.delivered, "trace": verdict.as_dict() if verdict is not None else None,
            "predicted": predicted, "agree": agree,
        })
    else:
        what = f"{port}/{kind.upper()}" if proto != 1 else f"ICMP type {port}"
        detail = f" in {result.rtt_ms:.1f} ms" if result.rtt_ms is not None else ""
        extra = f", answer {result.answer!r}" if result.answer else (f" ({result.error})" if result.error else "")
        out.print(f"probe  {src} ({ns}) -> {dst} ({address}) {what}: {result.result}{detail}{extra}", markup=False)
        if verdict is not None:
            why = f" ({verdict.drop_reason_desc}, {verdict.traffic_direction})" if verdict.drop_reason_desc else ""
            out.print(f"trace  {verdict.verdict}{why}", markup=False)
            out.print(f"agree  {'yes' if agree else 'NO'}: {'delivered' if result.delivered else 'not delivered'}, "
                      f"predicted {predicted}", markup=False)
    raise typer.Exit(1 if expect_agree and not agree else 0)
