"""The datapath agent: ciliary agent (run, --stop) and ciliary agent status."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ciliary.cli import ConfigOpt, Output, OutputOpt, PoliciesOpt, app, err, out, print_json

agent_app = typer.Typer(
    help="Enforce the policies on the lab's traffic with nftables and emit Hubble flows.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(agent_app, name="agent")

PrefixOpt = Annotated[str, typer.Option("--prefix", help="The lab's prefix (as given to `ciliary lab up`).")]
RunDirOpt = Annotated[Optional[Path], typer.Option("--run-dir", help="The lab's run directory (default /run/ciliary/<prefix>).")]  # noqa: UP045


def _run_dir(prefix: str, run_dir: Path | None) -> Path:
    from ciliary.datapath.lab import default_run_dir

    return run_dir if run_dir is not None else default_run_dir(prefix)


def _need_root() -> None:
    from ciliary.datapath.netns import support_problem

    problem = support_problem()
    if problem:
        err.print(f"error: {problem}", markup=False)
        raise typer.Exit(2)


def _stop(prefix: str, run_dir: Path, flush: bool) -> None:
    from ciliary.datapath import nftnl
    from ciliary.datapath.agent import running_pid
    from ciliary.datapath.lab import LabError, load_state
    from ciliary.datapath.netns import in_netns

    pid = running_pid(run_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while running_pid(run_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if running_pid(run_dir) is not None:
            err.print(f"error: the agent (pid {pid}) did not stop within 10 s", markup=False)
            raise typer.Exit(1)
        out.print(f"stopped the agent (pid {pid}); the datapath {'is flushed' if flush else 'keeps enforcing'}", markup=False)
    else:
        out.print("no agent is running", markup=False)
    if flush:
        try:
            nodes = load_state(prefix, run_dir).nodes
        except LabError as e:
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(1) from None
        for n in nodes:
            with in_netns(n.netns):
                nftnl.delete_table(f"{prefix}dp")


@agent_app.callback()
def agent_command(
    ctx: typer.Context,
    cluster: Annotated[Optional[Path], typer.Option("--cluster", help="Cluster snapshot (the lab's).")] = None,  # noqa: UP045
    policies: PoliciesOpt = None,
    config: ConfigOpt = None,
    prefix: PrefixOpt = "cil",
    run_dir: RunDirOpt = None,
    flows_out: Annotated[Optional[Path], typer.Option("--flows-out", help="Write every flow as a JSON line (hubble observe -o json / the exporter's format).")] = None,  # noqa: UP045
    flows_out_max_size_mb: Annotated[int, typer.Option("--flows-out-max-size-mb", help="Rotate --flows-out at this size (0: never).")] = 10,
    flows_out_max_backups: Annotated[int, typer.Option("--flows-out-max-backups", help="Rotated files kept.")] = 5,
    hubble_listen: Annotated[str, typer.Option("--hubble-listen", help="Serve Hubble's Observer API here (loopback only); \"\" to not serve it.")] = "127.0.0.1:4245",
    stop: Annotated[bool, typer.Option("--stop", help="Stop the running agent (SIGTERM); the datapath keeps enforcing.")] = False,
    flush: Annotated[bool, typer.Option("--flush", help="With --stop, or on exit: remove the datapath's tables.")] = False,
) -> None:
    """Compile the policies into nftables sets in the lab's node namespaces and keep them in
    step with the files (watched; changes applied within a second, established allowed
    connections untouched). Verdicts become Hubble flows (--flows-out, the Observer API on
    --hubble-listen). Runs in the foreground until SIGTERM/SIGINT; the datapath keeps
    enforcing after the agent stops unless --flush. Needs `ciliary lab up` first."""
    if ctx.invoked_subcommand is not None:
        return
    _need_root()
    rd = _run_dir(prefix, run_dir)
    if stop:
        _stop(prefix, rd, flush)
        return
    if cluster is None:
        raise typer.BadParameter("is required to run the agent", param_hint="--cluster")
    from ciliary.datapath.agent import AgentOptions, running_pid, serve
    from ciliary.datapath.lab import LabError
    from ciliary.model.errors import LoadError

    pid = running_pid(rd)
    if pid is not None:
        err.print(f"error: an agent already runs for prefix {prefix} (pid {pid}); stop it with `ciliary agent --stop`", markup=False)
        raise typer.Exit(1)
    opts = AgentOptions(
        cluster, list(policies) if policies else None, config, prefix, rd, flows_out,
        flows_out_max_size_mb << 20, flows_out_max_backups,
    )
    servers: list[Any] = []

    def hubble(agent: Any) -> None:
        if not hubble_listen:
            return
        from ciliary.datapath.hubble import ObserverServer

        servers.append(ObserverServer(agent, hubble_listen).start())

    def ready(agent: Any) -> None:
        st = agent.status()
        eps = sum(len(n["endpoints"]) for n in st["nodes"].values())
        extra = f", Hubble API on {servers[0].address}" if servers else ""
        err.print(f"agent running (pid {os.getpid()}): {len(st['nodes'])} node(s), {eps} endpoint(s){extra}; Ctrl-C to stop", markup=False)

    try:
        serve(opts, on_ready=ready, flush_on_exit=flush, extra=[hubble])
    except (LoadError, LabError, OSError, ValueError) as e:
        msg = "; ".join(str(i) for i in e.issues) if isinstance(e, LoadError) else str(e)
        err.print(f"error: {msg}", markup=False)
        raise typer.Exit(1) from None
    finally:
        for s in servers:
            s.stop(1.0)


def _posture(e: dict[str, Any], d: str) -> str:
    if not e[f"{d}_enforced"]:
        return "-"
    return "default deny" if e[f"{d}_default_deny"] else "enforced"


@agent_app.command("status")
def status_command(prefix: PrefixOpt = "cil", run_dir: RunDirOpt = None, output: OutputOpt = Output.text) -> None:
    """Endpoints, enforcement per direction, map sizes and the last change of the agent.
    Exit 1 when no agent has run for the prefix."""
    from ciliary.datapath.agent import read_status, running_pid

    rd = _run_dir(prefix, run_dir)
    st = read_status(rd)
    if st is None:
        err.print(f"error: no agent status for prefix {prefix} (under {rd})", markup=False)
        raise typer.Exit(1)
    st["running"] = running_pid(rd) is not None
    if output is Output.json:
        print_json(st)
        return
    state = "running" if st["running"] else "not running (the datapath keeps enforcing its last state)"
    out.print(f"agent {prefix}: {state}; table inet {st['table']}", markup=False)
    for name, n in st["nodes"].items():
        out.print(f"node {name} ({n['netns']}): {n['elements']} elements", markup=False)
        for e in n["endpoints"]:
            audit = "  audit" if e["audit"] else ""
            out.print(f"  {e['endpoint']:<40} {e['ip']:<15} ingress: {_posture(e, 'ingress'):<12} "
                      f"egress: {_posture(e, 'egress'):<12}{audit}", markup=False)
        sizes = ", ".join(f"{k} {v}" for k, v in n["map_sizes"].items() if v)
        out.print(f"  sets: {sizes}", markup=False)
        if n["not_enforced"]:
            out.print("  not enforced by the datapath: " + ", ".join(f"{k} ({v})" for k, v in n["not_enforced"].items()), markup=False)
    last = st.get("last_change")
    if last:
        when = time.strftime("%H:%M:%S", time.localtime(last["time"]))
        text = f"last change {when}: +{last['adds']} -{last['deletes']} elements in {last['seconds'] * 1000:.1f} ms"
        if last.get("error"):
            text += f"; NOT applied: {last['error']}"
        out.print(text, markup=False)
    ev = st.get("events", {})
    out.print(f"events: {ev.get('seen', 0)} seen, {ev.get('lost', 0)} lost", markup=False)
