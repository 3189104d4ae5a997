"""`ciliary agent`: the engine's policy maps enforced by nftables in the lab's node
namespaces, with Hubble flows of every verdict.

One agent process serves every node of a lab (`ciliary lab up`), as one Cilium agent per
node would: per node it keeps one nftables table (`ruleset.skeleton`, loaded once, in one
transaction) whose sets hold the node's compiled state (`compile.compile_node`). Changes of
the cluster, policy or agent-option files are applied as element differences in one
netlink batch per node, so established connections that stay allowed are never touched and
new connections follow the new policy at once.

Fail closed: the tables stay in the kernel when the agent stops or dies, and keep
enforcing. A starting agent adopts what the kernel holds: it reads the sets back and
applies only the difference to what it wants, so there is no window in which the datapath
holds less than either state. `--flush` on stop removes the tables.

Contracts:
* A change that does not load (bad YAML, invalid policy) changes nothing in the kernel; it
  is reported in the status and the log, and the last good state stays.
* Events are read from NFLOG groups the agent alone binds (one reader per node); lost
  messages are counted like Hubble's lost events.
* The status file (`<run dir>/agent.json`) is rewritten after every change; the pid file
  says which process runs the agent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson

from ciliary.datapath.compile import (
    SETS,
    SETS_BY_NAME,
    SHORT,
    NodeState,
    SetChange,
    compile_node,
    diff,
)
from ciliary.datapath.events import FlowMaker, export_line, parse_prefix
from ciliary.datapath.ruleset import NFLOG_ALLOWS, NFLOG_DROPS, skeleton
from ciliary.model.errors import LoadError
from ciliary.policy.engine import PolicyEngine
from ciliary.process import serving
from ciliary.verdict.decider import Decider
from ciliary.workflows.engine import build_engine, read_config

RING = 4095  # Hubble's default event buffer capacity
# While `run()` reads, the kernel batches each NFLOG group's packets (`NflogReader.configure`):
# up to 31 KiB per datagram (~120 DROP events; the kernel allocates a batch's buffer at once,
# and 32 KiB with its overhead is the largest allocation it calls cheap), sent when full or
# at the next timer tick (flush timeout 0: at most 1/HZ, 4 ms at HZ=250), into a receive
# buffer of 16 MiB (the kernel counts twice that) for bursts.
EVENT_BATCH = {"qthresh": 1 << 16, "flush_timeout_cs": 0, "nlbufsiz": 31 << 10, "rcvbuf": 16 << 20}
EVENT_UNBATCHED = {"qthresh": 1, "flush_timeout_cs": 1}  # NflogReader's defaults


@dataclass
class AgentOptions:
    cluster: Path
    policies: list[Path] | None
    config: Path | None
    prefix: str
    run_dir: Path
    flows_out: Path | None = None
    flows_out_max_bytes: int = 10 << 20
    flows_out_max_backups: int = 5
    poll_interval: float = 0.2
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return f"{self.prefix}dp"

    @property
    def pod_ifaces(self) -> str:
        return f"{self.prefix}h*"


_FLOW_BUFFER = 1 << 20  # a drain's lines reach the file in a few writes (flushed after each drain)


class FlowLog:
    """JSON lines, rotated by size like Hubble's exporter (file, file.1 ... file.N).

    Compact JSON (orjson: the bytes of ``json.dumps(line, separators=(",", ":"))`` for the
    ASCII text of flows; any other text as UTF-8 rather than escapes), keys in the line's
    order. `write_many` writes a batch and flushes once; a file is rotated after the line
    that makes it reach `max_bytes` (0: never)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = path.open("ab", buffering=_FLOW_BUFFER)
        self._size = self._f.tell()

    def write(self, line: dict[str, Any]) -> None:
        self.write_many((line,))

    def write_many(self, lines: Iterable[dict[str, Any]]) -> None:
        f, dumps, newline, limit = self._f, orjson.dumps, orjson.OPT_APPEND_NEWLINE, self.max_bytes
        size = self._size
        try:
            for line in lines:
                data = dumps(line, option=newline)
                f.write(data)
                size += len(data)
                if limit and size >= limit:
                    self._rotate()
                    f, size = self._f, 0
        finally:
            self._size = size
            f.flush()

    def _rotate(self) -> None:
        self._f.close()
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._f = self.path.open("ab", buffering=_FLOW_BUFFER)

    def close(self) -> None:
        self._f.close()


@dataclass
class NodeRuntime:
    name: str
    netns: str
    state: NodeState | None = None
    writer: Any = None  # netlink set writer, created inside the node's namespace
    reader: Any = None  # NFLOG reader (groups 1 and 2)


@dataclass
class Change:
    time: float
    adds: int
    deletes: int
    seconds: float
    error: str | None = None


class Agent:
    """The datapath of one lab, driven by one engine. Use `start()`, then `run()` (blocks
    until `stop()`), or `apply_now()` from tests."""

    def __init__(self, opts: AgentOptions, *, nodes: dict[str, str] | None = None) -> None:
        self.opts = opts
        self.nodes = {name: NodeRuntime(name, ns) for name, ns in (nodes or self._lab_nodes()).items()}
        self.engine: PolicyEngine | None = None
        self.decider: Decider | None = None
        self.ring: deque[dict[str, Any]] = deque(maxlen=RING)
        self.subscribers: list[Callable[[dict[str, Any]], None]] = []
        self.seen = 0
        self.changes: list[Change] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._mtimes: dict[str, float] = {}
        self._log = FlowLog(opts.flows_out, opts.flows_out_max_bytes, opts.flows_out_max_backups) if opts.flows_out else None
        self._flows: FlowMaker | None = None  # for self.engine and self.decider
        self.started = time.time()

    # -- lab -------------------------------------------------------------------------------
    def _lab_nodes(self) -> dict[str, str]:
        from ciliary.datapath.lab import load_state

        state = load_state(self.opts.prefix, self.opts.run_dir)
        return {n.name: n.netns for n in state.nodes}

    # -- engine ----------------------------------------------------------------------------
    def load(self) -> PolicyEngine:
        cfg = read_config(self.opts.config).with_overrides(**self.opts.overrides)
        return build_engine(self.opts.cluster, self.opts.policies, cfg)

    def _watched(self) -> list[Path]:
        from ciliary.model.files import expand_paths

        paths = [self.opts.cluster, *(self.opts.policies or [])]
        if self.opts.config:
            paths.append(self.opts.config)
        return [*expand_paths(paths)]

    def _snapshot_mtimes(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self._watched():
            try:
                out[str(p)] = p.stat().st_mtime_ns
            except OSError:
                out[str(p)] = -1
        return out

    # -- datapath --------------------------------------------------------------------------
    def start(self) -> None:
        """Load the policies, adopt or create every node's table, open the readers."""
        from ciliary.datapath import nftnl
        from ciliary.datapath.netns import in_netns

        self.engine = self.load()
        self.decider = Decider(self.engine)
        self._mtimes = self._snapshot_mtimes()
        world = self.engine.allocator.world(4).id
        for rt in self.nodes.values():
            with in_netns(rt.netns):
                if not nftnl.table_exists(self.opts.table):
                    nftnl.load_ruleset(skeleton(self.opts.table, self.opts.pod_ifaces, world))
                rt.writer = nftnl.NftWriter(self.opts.table)
                rt.reader = self._open_reader()
                rt.state = self._adopt(rt)
        self.apply_now(self.engine)

    def _open_reader(self) -> Any:
        from ciliary.datapath.nflog import NflogReader

        return NflogReader((NFLOG_DROPS, NFLOG_ALLOWS))

    def _adopt(self, rt: NodeRuntime) -> NodeState:
        """What the kernel holds now, read back from the sets (empty for a new table)."""
        from ciliary.datapath.nftnl import spec_of

        state = NodeState(rt.name, (), 0)
        for decl in SETS:
            for key, data in rt.writer.list_elements(spec_of(decl)):
                state.add(decl.name, tuple(key), data)
        return state

    @staticmethod
    def _canonical(state: NodeState) -> NodeState:
        """The state with its keys as the kernel lists them back (a one-port range is a
        port), so what is wanted and what was adopted compare element for element."""
        from ciliary.datapath.nftnl import spec_of

        for decl in SETS:
            spec = spec_of(decl)
            state.elements[decl.name] = {
                tuple(spec.normalize(cast(Any, (k, v) if decl.data else k)).key): v
                for k, v in state.elements[decl.name].items()
            }
        return state

    def apply_now(self, engine: PolicyEngine) -> list[Change]:
        """Compile every node and apply the difference; returns what changed per node."""
        out = []
        for rt in self.nodes.values():
            t0 = time.perf_counter()
            want = self._canonical(compile_node(engine, rt.name))
            changes = diff(rt.state, want)
            self._apply(rt, changes)
            rt.state = want
            ch = Change(time.time(), sum(len(c.add) for c in changes), sum(len(c.delete) for c in changes), time.perf_counter() - t0)
            out.append(ch)
        self.engine = engine
        self.decider = Decider(engine)
        self.changes = [*self.changes, *out][-20:]
        self.write_status()
        return out

    def _apply(self, rt: NodeRuntime, changes: list[SetChange]) -> None:
        from ciliary.datapath.nftnl import Add, Delete, spec_of

        ops: list[Any] = []
        for c in changes:
            spec = spec_of(SETS_BY_NAME[c.set])
            if c.delete:
                ops.append(Delete(spec, cast(Any, list(c.delete))))
        for c in changes:
            spec = spec_of(SETS_BY_NAME[c.set])
            if c.add:
                ops.append(Add(spec, cast(Any, list(c.add.items()))))
        if ops:
            rt.writer.apply(ops)

    def reload_if_changed(self) -> bool:
        now = self._snapshot_mtimes()
        if now == self._mtimes:
            return False
        self._mtimes = now
        try:
            engine = self.load()
        except LoadError as e:
            msg = f"{time.strftime('%H:%M:%S')}: change not applied: " + "; ".join(str(i) for i in e.issues[:5])
            self.errors = [*self.errors, msg][-20:]
            self.changes = [*self.changes, Change(time.time(), 0, 0, 0.0, msg)][-20:]
            self.write_status()
            return False
        self.apply_now(engine)
        return True

    # -- events ----------------------------------------------------------------------------
    def drain_events(self) -> int:
        """Read every queued NFLOG event of every node, publish its flow; returns how many.

        `FlowMaker` makes the flows `events.flow_of` makes (made anew for a new engine);
        the lines of one drain are published together (the flow file flushed once)."""
        from ciliary.datapath.nflog import parse_ipv4

        engine, decider = self.engine, self.decider
        assert engine is not None and decider is not None
        maker = self._flows
        if maker is None or maker.engine is not engine or maker.decider is not decider:
            maker = self._flows = FlowMaker(engine, decider)
        make = maker.flow
        lines: list[dict[str, Any]] = []
        try:
            for rt in self.nodes.values():
                if rt.reader is None:
                    continue
                packets = rt.reader.read()
                if not packets:
                    continue
                node, st = rt.name, rt.state
                for pkt in packets:
                    parsed = parse_prefix(pkt.prefix)
                    if parsed is None:
                        continue
                    head = parse_ipv4(pkt.payload)
                    if head is None:
                        continue
                    action, direction, reason = parsed
                    enforced = True  # only an ALLOW asks (a trace event where not enforced)
                    if action == "ALLOW":
                        local = head.dst if direction == "ingress" else head.src
                        enforced = st is not None and (local,) in st.elements["in_enforced" if direction == "ingress" else "eg_enforced"]
                    flow = make(action, direction, reason, node, head.src, head.dst, head.proto, head.sport or 0, head.dport or 0,
                                head.icmp_type or 0, head.icmp_code or 0, head.tcp_flags, int(pkt.timestamp * 1e9), enforced=enforced)
                    lines.append({"flow": flow, "node_name": node, "time": flow["time"]})  # export_line(flow)
        finally:
            if lines:
                self._publish_lines(lines)
                self.seen += len(lines)
        return len(lines)

    def publish(self, flow: dict[str, Any]) -> None:
        self._publish_lines([export_line(flow)])

    def _publish_lines(self, lines: list[dict[str, Any]]) -> None:
        """To the ring, the flow file, then each subscriber in order. The subscribers are
        read after the ring has the lines: one that subscribes later finds them there."""
        self.ring.extend(lines)
        if self._log is not None:
            self._log.write_many(lines)
        for sub in list(self.subscribers):
            for line in lines:
                sub(line)

    def lost_events(self) -> int:
        return sum(getattr(rt.reader, "lost", 0) for rt in self.nodes.values())

    # -- running ---------------------------------------------------------------------------
    def run(self) -> None:
        """Read events and watch the files until `stop()` (or SIGTERM/SIGINT).

        While it reads, the NFLOG readers batch (`EVENT_BATCH`: an event may wait up to a
        timer tick in the kernel) and the cyclic GC leaves the engine alone (see below);
        both are undone when it returns, so `drain_events()` outside `run()` sees every
        event at once."""
        import selectors

        sel = selectors.DefaultSelector()
        batched = []
        # The engine and everything start() built live as long as the agent: out of the
        # cyclic GC's sight while run() reads (ciliary.process.serving); a new engine gets
        # the same once the old one's cycles are collected.
        stack = contextlib.ExitStack()
        refreeze = stack.enter_context(serving())
        frozen = self.engine
        try:
            for rt in self.nodes.values():
                if rt.reader is not None:
                    sel.register(rt.reader.fileno(), selectors.EVENT_READ)
                    if hasattr(rt.reader, "configure"):  # an NflogReader: batch while reading
                        rt.reader.configure(**EVENT_BATCH)
                        batched.append(rt.reader)
            next_poll = 0.0
            while not self._stop.is_set():
                timeout = max(0.0, next_poll - time.monotonic())
                if sel.get_map():
                    sel.select(timeout)
                else:
                    self._stop.wait(timeout)
                self.drain_events()
                if time.monotonic() >= next_poll:
                    self.reload_if_changed()
                    next_poll = time.monotonic() + self.opts.poll_interval
                if self.engine is not frozen:
                    refreeze()
                    frozen = self.engine
        finally:
            stack.close()
            sel.close()
            for reader in batched:  # each event at once again for drain_events() callers
                with contextlib.suppress(OSError):
                    reader.configure(**EVENT_UNBATCHED)

    def stop(self) -> None:
        self._stop.set()

    def close(self, *, flush: bool = False) -> None:
        from ciliary.datapath import nftnl
        from ciliary.datapath.netns import in_netns

        for rt in self.nodes.values():
            if rt.reader is not None:
                rt.reader.close()
            if rt.writer is not None:
                rt.writer.close()
            if flush:
                with in_netns(rt.netns):
                    nftnl.delete_table(self.opts.table)
        if self._log is not None:
            self._log.close()
        self.write_status(running=False)

    # -- status ----------------------------------------------------------------------------
    def status(self, running: bool = True) -> dict[str, Any]:
        nodes = {}
        for rt in self.nodes.values():
            st = rt.state
            eps = []
            if st is not None:
                for ip, key in sorted(st.endpoints.items(), key=lambda kv: kv[1]):
                    eps.append({
                        "endpoint": key, "ip": ip,
                        **{f"{d}_enforced": (ip,) in st.elements[f"{SHORT[d]}_enforced"] for d in ("ingress", "egress")},
                        **{f"{d}_default_deny": (ip,) in st.elements[f"{SHORT[d]}_default_deny"] for d in ("ingress", "egress")},
                        "audit": (ip,) in st.elements["in_audit"] or (ip,) in st.elements["eg_audit"],
                    })
            nodes[rt.name] = {
                "netns": rt.netns,
                "endpoints": eps,
                "map_sizes": {s.name: len(st.elements[s.name]) for s in SETS} if st else {},
                "elements": st.size() if st else 0,
                "not_enforced": dict(st.skipped) if st else {},
            }
        last = self.changes[-1] if self.changes else None
        return {
            "running": running,
            "pid": os.getpid(),
            "started": self.started,
            "prefix": self.opts.prefix,
            "table": self.opts.table,
            "nodes": nodes,
            "last_change": None if last is None else {
                "time": last.time, "adds": last.adds, "deletes": last.deletes,
                "seconds": round(last.seconds, 6), "error": last.error,
            },
            "errors": self.errors,
            "events": {"seen": self.seen, "lost": self.lost_events()},
            "flows_out": str(self.opts.flows_out) if self.opts.flows_out else None,
        }

    def write_status(self, running: bool = True) -> None:
        self.opts.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.opts.run_dir / "agent.json.tmp"
        tmp.write_text(json.dumps(self.status(running), indent=2))
        tmp.replace(self.opts.run_dir / "agent.json")


def pid_file(run_dir: Path) -> Path:
    return run_dir / "agent.pid"


def read_status(run_dir: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((run_dir / "agent.json").read_text()))
    except (OSError, ValueError):
        return None


def running_pid(run_dir: Path) -> int | None:
    try:
        pid = int(pid_file(run_dir).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def serve(opts: AgentOptions, *, on_ready: Callable[[Agent], None] | None = None, flush_on_exit: bool = False,
          extra: Iterable[Callable[[Agent], Any]] = ()) -> None:
    """Run an agent in this process until SIGTERM/SIGINT (the CLI's foreground mode)."""
    agent = Agent(opts)
    agent.start()
    pid_file(opts.run_dir).write_text(str(os.getpid()))
    for hook in extra:
        hook(agent)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    if on_ready is not None:
        on_ready(agent)
    try:
        agent.run()
    finally:
        agent.close(flush=flush_on_exit)
        pid_file(opts.run_dir).unlink(missing_ok=True)
