"""`ciliary test --lab`: an expectations file checked through real connections.

For each prepared file (`workflows.expect.prepare`): plan a lab of its snapshot under a
fresh prefix (world addresses from its policies, `lab.policy_world`, plus the destination
IPs its cases name outside the cluster), build it, start an `Agent` in this process on it
with the file's policies and agent options, probe every checkable case from its source's
namespace (one concurrent `probe_many` batch per source), read the agent's flow events,
then tear everything down (agent tables, lab, run files) and check nothing is left.

The real outcome of a case is `delivered` (TCP connected or refused, a UDP answer or port
unreachable, the ICMP reply) or `blocked` (timeout, unreachable): `expect: denied` passes
when blocked, every other `expect` when delivered. Next to it each result carries what
`ciliary trace` decided for the same case (`workflows.expect.run_file`).

What the L3/L4 datapath cannot check yet is skipped with a reason, neither passed nor
failed: an L7 request whose expectation depends on the proxy's verdict (`l7_status`, or
`expect: denied` while the L3/L4 verdict lets the connection through), `resolve`
(toFQDNs needs the DNS proxy), a verdict decided by mutual authentication (not enforced
by the datapath), a pod's connection to itself (it stays on the pod's loopback), sources
that are plain addresses outside the lab, SCTP, ICMPv6 and ICMP types Linux answers no
request of. An L7 case whose connection is expected to be dropped at L3/L4 is checked.

`reason` is checked against the drop events the agent emitted for the probe (matched by
source, destination, protocol and port); `expect: audit` also needs the agent's AUDIT
event. The AUDIT events carry no drop reason, so an audit case's `reason` is not checked
(the case's notes say so).

Contracts:
* `run_lab_file` always removes what it built (also on errors and interrupts), then checks
  that no namespace, interface, nft table or process with its prefix is left; LabError
  when building, probing or cleaning up fails.
* Results render as `ciliary test` prints them (`rows`, `failure_text`, `summary`,
  `junit_xml`, `LabRun.as_dict`), with skipped cases counted apart.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import shutil
import string
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ciliary.datapath import netns
from ciliary.datapath.lab import (
    LabError,
    LabState,
    check_prefix,
    down,
    marker,
    plan,
    policy_world,
    up,
)
from ciliary.datapath.prober import Probe, ProbeResult, probe_many
from ciliary.policy.ports import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_NAMES,
    PROTO_SCTP,
    PROTO_TCP,
    PROTO_UDP,
)
from ciliary.verdict.types import DROPPED
from ciliary.workflows.expect import Case, CaseResult, ExpectationsFile, Prepared, run_file
from ciliary.workflows.expect.model import AUDITED, DENIED, describe
from ciliary.workflows.expect.render import expect_text
from ciliary.workflows.trace import render_trace

DEFAULT_TIMEOUT = 0.6  # seconds per probe: a blocked probe costs this much, once per batch
DELIVERED, BLOCKED = "delivered", "blocked"
PASSED, FAILED, SKIPPED, ERROR = "passed", "failed", "skipped", "error"
ICMP_ANSWERED = (8, 13)  # echo and timestamp requests: the only ones Linux answers
PROBE_PROTO = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp"}
_REQUEST_NOUN = {"http": "HTTP request", "dns": "DNS query", "kafka": "Kafka request"}
_ALPHABET = string.ascii_lowercase + string.digits

SKIP_L7_STATUS = ("l7_status {status} is the {kind} proxy's answer: the datapath has no L7 proxy yet "
                  "(part 2), only the L3/L4 verdict is enforced")
SKIP_L7_DENIED = ("denied by the {kind} proxy, which the datapath does not have yet (part 2): at L3/L4 "
                  "the connection is {verdict}, so a probe gets through whatever the request")
SKIP_RESOLVE = "resolve needs toFQDNs, that is the DNS proxy (part 2 of the datapath)"
SKIP_AUTH = "decided by mutual authentication (AUTH_REQUIRED), which the datapath does not enforce"
SKIP_SELF = "a connection to the source's own address stays on its loopback: no datapath sees it"


class LabRunError(LabError):
    """The lab of one file could not be built, run or removed (message: which file, what)."""


def lab_support_problem() -> str | None:
    """Why this machine cannot run `ciliary test --lab` (None: it can, as far as cheap checks tell)."""
    problem = netns.support_problem()
    if problem:
        return problem
    if shutil.which("nft") is None:
        return "the `nft` command (Debian package nftables) is not installed"
    return None


def fresh_prefix(first: str = "e") -> str:
    """A lab prefix no namespace, root interface or run directory uses yet."""
    for _ in range(100):
        prefix = first + "".join(secrets.choice(_ALPHABET) for _ in range(5))
        if not any(leftovers(prefix).values()):
            return check_prefix(prefix)
    raise LabRunError("no unused lab prefix found")


def leftovers(prefix: str) -> dict[str, list[str]]:
    """What exists with the prefix: namespaces, root interfaces and nft tables, marked processes."""
    names = netns.list_netns(f"{prefix}-")
    links = sorted(str(link.get("ifname", "")).split("@")[0] for link in netns.links()
                   if str(link.get("ifname", "")).startswith(prefix))
    tables = [f"{family} {name}" for family, name in netns.nft_tables() if name.startswith(prefix)]
    procs = [str(p) for p in netns.find_marked(marker(prefix))]
    return {"netns": names, "interfaces": links, "nft_tables": tables, "processes": procs}


# -- results ------------------------------------------------------------------------------


@dataclass
class LabCaseResult:
    """One case in the lab: what the probe gave, judged; next to what trace decided."""

    case: Case
    trace: CaseResult  # the engine's decision of the same case, as `ciliary test` gives it
    status: str  # passed | failed | skipped | error
    got: str | None = None  # delivered | blocked; None when not probed
    probe: ProbeResult | None = None
    netns: str | None = None  # where the probe ran
    src_ip: str | None = None
    flows: list[dict[str, Any]] = field(default_factory=list)  # the agent's flows of the probe
    messages: list[str] = field(default_factory=list)  # what did not match
    notes: list[str] = field(default_factory=list)  # what the lab did not check of a checked case
    skip_reason: str | None = None
    error: str | None = None
    time: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def skipped(self) -> bool:
        return self.status == SKIPPED

    @property
    def failed(self) -> bool:
        return self.status in (FAILED, ERROR)

    @property
    def message(self) -> str | None:
        if self.error is not None:
            return self.error
        if self.skipped:
            return self.skip_reason
        return "; ".join(self.messages) or None

    @property
    def got_reason(self) -> str | None:
        """The drop reason of the agent's drop event for the probe."""
        return next((f.get("drop_reason_desc") for f in self.flows if f.get("verdict") == DROPPED), None)

    @property
    def datapath_verdict(self) -> str | None:
        """The agent's verdict for the probe: DROPPED, AUDIT or FORWARDED (None: no event)."""
        verdicts = {f.get("verdict") for f in self.flows}
        return next((v for v in (DROPPED, "AUDIT", "FORWARDED") if v in verdicts), None)

    def probe_text(self) -> str:
        p = self.probe
        if p is None:
            return "not probed"
        detail = p.result
        if p.rtt_ms is not None:
            detail += f" in {p.rtt_ms:g} ms"
        if p.answer:
            detail += f", answer {p.answer!r}"
        elif p.error and p.result != "connected":
            detail += f" ({p.error})"
        return detail

    def as_dict(self) -> dict[str, Any]:
        c, v, p = self.case, self.trace.verdict, self.probe
        return {
            "file": c.file,
            "line": c.line,
            "name": c.name,
            "table": c.table,
            "flow": f"{c.src} -> {c.dst} {c.port_text}",
            "expect": c.expect,
            "got": self.got,
            "passed": self.passed,
            "skipped": self.skipped,
            "skip_reason": self.skip_reason,
            "reason": c.reason,
            "got_reason": self.got_reason,
            "l7_status": c.l7_status,
            "got_l7_status": None,  # no L7 proxy in the datapath yet
            # what `ciliary trace` decided for the same case
            "verdict": v.verdict if v else None,
            "traffic_direction": v.traffic_direction if v else None,
            "l7_verdict": v.l7.verdict if v and v.l7 else None,
            "trace_got": self.trace.got,
            "trace_passed": self.trace.passed,
            "datapath_verdict": self.datapath_verdict,
            "probe": None if p is None else {
                "netns": self.netns, "src": self.src_ip, "dst": p.probe.dst, "proto": p.probe.proto,
                "port": p.probe.port if p.probe.proto != "icmp" else None,
                "icmp_type": p.probe.icmp_type if p.probe.proto == "icmp" else None,
                "result": p.result, "rtt_ms": p.rtt_ms, "answer": p.answer, "error": p.error,
            },
            "message": self.message,
            "notes": self.notes,
            "error": self.error,
            "trace": render_trace(v) if v is not None and self.failed else None,
            "time": round(self.time, 6),
        }


@dataclass
class LabInfo:
    """What was built for one file."""

    prefix: str
    built: bool = False
    probes: int = 0
    up_seconds: float = 0.0
    probe_seconds: float = 0.0
    down_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # the lab plan's (skipped pods, IPv6, ...)
    lost_events: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix, "built": self.built, "probes": self.probes,
            "up_seconds": round(self.up_seconds, 3), "probe_seconds": round(self.probe_seconds, 3),
            "down_seconds": round(self.down_seconds, 3), "notes": self.notes, "lost_events": self.lost_events,
        }


@dataclass
class LabFileResult:
    spec: ExpectationsFile
    results: list[LabCaseResult]
    lab: LabInfo
    time: float = 0.0

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.status == ERROR for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.results)


@dataclass
class LabRun:
    files: list[LabFileResult]

    @property
    def results(self) -> list[LabCaseResult]:
        return [r for f in self.files for r in f.results]

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": [f.spec.file for f in self.files],
            "labs": [{"file": f.spec.file, **f.lab.as_dict()} for f in self.files],
            "cases": [r.as_dict() for r in self.results],
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
        }


# -- planning -------------------------------------------------------------------------------


def _ipv4(text: str) -> str | None:
    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(a) if a.version == 4 else None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def world_of(prepared: Prepared) -> tuple[list[str], list[tuple[int, str]]]:
    """The world's addresses and ports: the policies' (`policy_world`), plus every IPv4
    destination of a case that is no endpoint of the cluster, with the case's port."""
    engine = prepared.engine
    addresses, ports = policy_world(engine)
    extra_ports: dict[tuple[int, str], None] = dict.fromkeys(ports)
    for c in prepared.spec.cases:
        ip = _ipv4(c.dst)
        if ip is None or engine.endpoint_by_ip(ip) is not None:
            continue
        addresses.append(ip)
        if c.proto in (PROTO_TCP, PROTO_UDP):
            extra_ports[(c.port, PROTO_NAMES[c.proto])] = None
    return list(dict.fromkeys(addresses)), list(extra_ports)


@dataclass(frozen=True)
class _Planned:
    """A case to probe: from which namespace (and address), to which address."""

    netns: str
    src_ip: str
    probe: Probe


def _skip_reason(case: Case, trace: CaseResult) -> str | None:
    """Why the L3/L4 datapath cannot check this case (None: it can), from the case and
    what trace decided for it."""
    v = trace.verdict
    if case.resolve:
        return SKIP_RESOLVE
    if case.request_kind is not None:
        kind = case.request_kind.upper() if case.request_kind != "kafka" else "Kafka"
        if case.l7_status is not None:
            return SKIP_L7_STATUS.format(status=case.l7_status, kind=kind)
        if case.expect == DENIED and v is not None and v.verdict != DROPPED:
            return SKIP_L7_DENIED.format(kind=kind, verdict=v.verdict)
    if v is not None and (v.drop_reason_desc == "AUTH_REQUIRED" or v.deciding.audited_drop_reason == "AUTH_REQUIRED"):
        return SKIP_AUTH
    if case.proto == PROTO_SCTP:
        return "the prober has no SCTP (TCP, UDP and ICMP only)"
    if case.proto == PROTO_ICMPV6:
        return "ICMPv6: the lab is IPv4 only"
    if case.proto == PROTO_ICMP and case.port not in ICMP_ANSWERED:
        return f"Linux answers no ICMP type {case.port} request: a probe cannot tell delivered from dropped"
    if case.proto not in PROBE_PROTO:
        return f"the prober has no {case.port_text} (TCP, UDP and ICMP only)"
    return None


def _plan_case(state: LabState, case: Case, held: set[str]) -> _Planned | str:
    """The probe of a case in this lab, or why there is none."""
    src, dst = case.src, case.dst
    if _is_ip(src):
        ip = _ipv4(src)
        owner = None
        if ip is not None:
            owner = next((p.netns for p in state.pods if p.ips[0] == ip), None) or next(
                (n.netns for n in state.nodes if n.ips[0] == ip), None)
        if owner is None:
            return f"the source {src} is no pod or node of the lab: a probe needs a namespace to start from"
        src_ns, src_ip = owner, str(ip)
    else:
        try:
            src_ns, src_ip = state.netns_for(src), state.address_of(src)
        except LabError as e:
            return f"the source: {e}"
    if _is_ip(dst):
        dst_ip = _ipv4(dst)
        if dst_ip is None:
            return f"the destination {dst} is IPv6: the lab is IPv4 only"
        if dst_ip not in held:
            return f"the lab cannot hold {dst_ip} (an address its own topology uses): see the lab's notes"
    else:
        try:
            dst_ip = state.address_of(dst)
        except LabError as e:
            return f"the destination: {e}"
    dst_ns = next((p.netns for p in state.pods if dst_ip in p.ips), None) or next(
        (n.netns for n in state.nodes if dst_ip in n.ips), None)
    if dst_ns == src_ns:
        return SKIP_SELF
    proto = PROBE_PROTO[case.proto]
    if proto == "icmp":
        return _Planned(src_ns, src_ip, Probe(dst_ip, "icmp", 0, icmp_type=case.port))
    return _Planned(src_ns, src_ip, Probe(dst_ip, proto, case.port))


# -- judging --------------------------------------------------------------------------------


def _flows_of(flows: list[dict[str, Any]], src_ip: str, probe: Probe) -> list[dict[str, Any]]:
    """The agent's flows of one probe: same addresses, protocol and port (or ICMP type)."""
    out = []
    for f in flows:
        ip = f.get("IP") or {}
        if ip.get("source") != src_ip or ip.get("destination") != probe.dst:
            continue
        l4 = f.get("l4") or {}
        if probe.proto == "icmp":
            icmp = l4.get("ICMPv4")
            if icmp is not None and int(icmp.get("type", -1)) == probe.icmp_type:
                out.append(f)
        else:
            body = l4.get(probe.proto.upper())
            if body is not None and int(body.get("destination_port", -1)) == probe.port:
                out.append(f)
    return out


def judge(r: LabCaseResult, lost: int) -> None:
    """Set the status, `got` and messages of a probed case from its probe and flows."""
    case, p = r.case, r.probe
    assert p is not None
    if p.result == "error":
        r.status, r.error = ERROR, f"the probe failed locally ({p.error}): it says nothing about the datapath"
        return
    r.got = DELIVERED if p.delivered else BLOCKED
    want = BLOCKED if case.expect == DENIED else DELIVERED
    if r.got != want:
        r.messages.append(f"expected {case.expect}, got {r.got} ({r.probe_text()})")
    elif case.expect == AUDITED:
        verdict = r.datapath_verdict
        if verdict is None:
            r.notes.append("not checked that audit mode let it through: no flow event of the agent matched the probe")
        elif verdict != "AUDIT":
            r.messages.append(f"expected audit, but the agent let it through as {verdict}, not by audit mode")
    if case.reason is not None:
        if case.expect == AUDITED:
            r.notes.append(f"reason {case.reason} not checked: the agent's AUDIT events carry no drop reason")
        elif r.got == BLOCKED:
            got = r.got_reason
            if got is None and lost:
                r.notes.append(f"reason {case.reason} not checked: no drop event matched the probe, and the agent lost {lost} event(s)")
            elif got is None:
                r.messages.append(f"expected drop reason {case.reason}, got none: no drop event of the agent matched the probe ({p.result})")
            elif got != case.reason:
                where = next((f for f in r.flows if f.get("verdict") == DROPPED), {})
                r.messages.append(f"expected drop reason {case.reason}, got {got} (at {where.get('traffic_direction')} on {where.get('node_name')})")
    if case.request_kind is not None:
        r.notes.append(f"L3/L4 only: the {_REQUEST_NOUN[case.request_kind]} itself is not judged (no L7 proxy in the datapath yet)")
    r.status = FAILED if r.messages else PASSED


# -- running --------------------------------------------------------------------------------


def run_lab_file(
    prepared: Prepared, *, prefix: str | None = None, timeout: float = DEFAULT_TIMEOUT,
    on_case: Callable[[LabCaseResult], None] | None = None,
) -> LabFileResult:
    """Every case of a prepared file through a lab of its own (see the module docstring)."""
    start = time.perf_counter()
    spec = prepared.spec
    traced = run_file(prepared).results
    prefix = check_prefix(prefix) if prefix else fresh_prefix()
    info = LabInfo(prefix)
    addresses, ports = world_of(prepared)
    state = plan(prepared.engine.cluster, prefix, addresses, ports)
    info.notes = [*(f"{k}: {why}" for k, why in state.skipped), *state.notes]
    held = {ip for n in state.nodes for ip in n.ips} | {ip for p in state.pods for ip in p.ips} | set(state.world.addresses)
    results: list[LabCaseResult] = []
    planned: dict[int, _Planned] = {}
    for i, (case, tr) in enumerate(zip(spec.cases, traced, strict=True)):
        r = LabCaseResult(case, tr, SKIPPED)
        results.append(r)
        if tr.error is not None:
            r.status, r.error = ERROR, tr.error
            continue
        why = _skip_reason(case, tr)
        target = _plan_case(state, case, held) if why is None else why
        if isinstance(target, str):
            r.skip_reason = target
            continue
        planned[i] = target
        r.netns, r.src_ip = target.netns, target.src_ip
    if planned:
        _probe_in_lab(prepared, state, info, results, planned, timeout)
    for r in results:
        if on_case is not None:
            on_case(r)
    return LabFileResult(spec, results, info, time.perf_counter() - start)


def _probe_in_lab(
    prepared: Prepared, state: LabState, info: LabInfo, results: list[LabCaseResult],
    planned: dict[int, _Planned], timeout: float,
) -> None:
    """Build the lab, start the agent, run the planned probes, judge them; always tear down."""
    from ciliary.datapath.agent import Agent, AgentOptions

    spec, prefix = prepared.spec, info.prefix
    run_dir = Path(tempfile.mkdtemp(prefix=f"ciliary-lab-{prefix}-"))
    agent: Agent | None = None
    first: BaseException | None = None
    try:
        t0 = time.perf_counter()
        up(state, run_dir)
        info.built = True
        opts = AgentOptions(
            Path(spec.cluster), [Path(p) for p in spec.policies] if spec.policies is not None else None,
            Path(spec.config) if spec.config else None, prefix, run_dir, overrides=dict(spec.options),
        )
        agent = Agent(opts)
        agent.start()  # on failure, the finally below closes what it opened
        info.up_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        # One batch per source namespace; the same probe (a flow two cases share) once.
        batches: dict[str, list[Probe]] = {}
        for pl in planned.values():
            batch = batches.setdefault(pl.netns, [])
            if pl.probe not in batch:
                batch.append(pl.probe)
        info.probes = sum(len(b) for b in batches.values())

        def run(ns: str) -> tuple[str, list[ProbeResult]]:
            return ns, probe_many(ns, batches[ns], timeout)

        with ThreadPoolExecutor(max_workers=min(16, len(batches))) as pool:
            got = {(ns, res.probe): res for ns, batch in pool.map(run, sorted(batches)) for res in batch}
        agent.drain_events()
        flows = [line["flow"] for line in agent.ring if isinstance(line.get("flow"), dict)]
        info.lost_events = agent.lost_events()
        info.probe_seconds = time.perf_counter() - t0
        for i, pl in planned.items():
            r = results[i]
            r.probe = got[(pl.netns, pl.probe)]
            r.flows = _flows_of(flows, pl.src_ip, pl.probe)
            r.time = r.probe.rtt_ms / 1000 if r.probe.rtt_ms is not None else timeout
            judge(r, info.lost_events)
    except BaseException as e:
        first = e
        raise
    finally:
        t0 = time.perf_counter()
        problems: list[str] = []
        if agent is not None:
            try:
                agent.close(flush=True)
            except Exception as e:
                problems.append(f"stopping the agent: {e}")
        try:
            down(prefix, run_dir)
        except Exception as e:
            problems.append(f"removing the lab: {e}")
        shutil.rmtree(run_dir, ignore_errors=True)
        with contextlib.suppress(Exception):
            left = {k: v for k, v in leftovers(prefix).items() if v}
            if left:
                problems.append(f"left behind: {left}")
        info.down_seconds = time.perf_counter() - t0
        if problems:
            msg = f"{spec.file}: lab {prefix!r}: " + "; ".join(problems) + f" (`ciliary lab down --prefix {prefix}` removes it)"
            if first is None:
                raise LabRunError(msg)
            first.add_note(msg)


def run_lab(
    prepared: list[Prepared], *, timeout: float = DEFAULT_TIMEOUT,
    on_case: Callable[[LabCaseResult], None] | None = None,
) -> LabRun:
    """Every file in a lab of its own, one after the other. LabRunError names the file
    whose lab could not be built, probed or removed."""
    files = []
    for p in prepared:
        prefix = fresh_prefix()
        try:
            files.append(run_lab_file(p, prefix=prefix, timeout=timeout, on_case=on_case))
        except LabRunError:
            raise
        except (RuntimeError, OSError) as e:  # LabError, NetnsError, nftables and netlink errors
            notes = getattr(e, "__notes__", [])  # the teardown's own problems, if any
            removed = "; ".join(notes) if notes else "what it built was removed"
            raise LabRunError(f"{p.spec.file}: lab {prefix!r} failed: {e} ({removed})") from e
    return LabRun(files)


# -- rendering ------------------------------------------------------------------------------


class Row(NamedTuple):
    status: str
    name: str
    expect: str
    got: str
    trace: str
    where: str


def rows(run: LabRun) -> list[Row]:
    out = []
    for r in run.results:
        got = "-" if r.got is None else (r.got if not r.failed else f"{r.got} ({r.probe_text()})")
        if r.status == ERROR:
            got = "error"
        out.append(Row(r.status, r.case.name, expect_text(r.case), got, r.trace.got or "error",
                       f"{r.case.file}:{r.case.line}"))
    return out


def _trace_text(r: LabCaseResult) -> str:
    if r.trace.verdict is None:
        return "error"
    agree = ("trace agrees with the expectation: the datapath and trace differ" if r.trace.passed
             else "trace disagrees with the expectation as well")
    return f"{describe(r.trace.verdict)}; {agree}"


def failure_details(r: LabCaseResult) -> str:
    """Why a case failed: the mismatch, the probe, what the agent and trace said, the trace."""
    c = r.case
    lines = [
        f"flow:     {c.src} -> {c.dst} {c.port_text}" + (f", an {_REQUEST_NOUN[c.request_kind]}" if c.request_kind else ""),
        f"expected: {expect_text(c)}",
        f"got:      {r.got or 'error'}" + (f" ({r.probe_text()})" if r.probe else ""),
        f"trace:    {_trace_text(r)}",
    ]
    if r.probe is not None:
        lines.append(f"probe:    from {r.netns} ({r.src_ip}) to {r.probe.probe.dst}")
    if r.flows:
        f = next((f for f in r.flows if f.get("verdict") == DROPPED), r.flows[-1])
        reason = f" {f['drop_reason_desc']}" if f.get("drop_reason_desc") else ""
        lines.append(f"agent:    {f.get('verdict')}{reason} at {f.get('traffic_direction')} on {f.get('node_name')}")
    if r.error is not None:
        return "\n".join([*lines, r.error])
    lines += [f"mismatch: {m}" for m in r.messages if not m.startswith(f"expected {c.expect}, got ")]
    lines += [f"note:     {n}" for n in r.notes]
    if r.trace.verdict is not None:
        lines += ["", render_trace(r.trace.verdict)]
    return "\n".join(lines)


def failure_text(r: LabCaseResult) -> str:
    body = "\n".join(("  " + line) if line else "" for line in failure_details(r).splitlines())
    return f"FAIL {r.case.file}:{r.case.line}  {r.case.name}\n{body}"


def skipped_text(r: LabCaseResult) -> str:
    return f"SKIP {r.case.file}:{r.case.line}  {r.case.name}: {r.skip_reason}"


def summary(run: LabRun) -> str:
    files = len(run.files)
    probes = sum(f.lab.probes for f in run.files)
    built = [f.lab.prefix for f in run.files if f.lab.built]
    where = f"lab{'s' if len(built) > 1 else ''} {', '.join(built)} (removed)" if built else "no lab: nothing to probe"
    return (f"{run.passed} passed, {run.failed} failed, {run.skipped} skipped"
            + (f" ({files} files)" if files > 1 else "") + f"; {probes} probes in {where}")


def junit_xml(run: LabRun) -> str:
    """JUnit XML as `ciliary test --junit` writes it, skipped cases as `<skipped message=...>`."""
    root = ET.Element("testsuites", name="ciliary test --lab")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for f in run.files:
        errors = f.errors
        counts = {"tests": len(f.results), "failures": f.failed - errors, "errors": errors, "skipped": f.skipped}
        attrs = {"name": f.spec.file, **{k: str(v) for k, v in counts.items()}, "time": f"{f.time:.3f}"}
        suite = ET.SubElement(root, "testsuite", attrs)
        for k, v in counts.items():
            totals[k] += v
        total_time += f.time
        for r in f.results:
            c = r.case
            tc = ET.SubElement(suite, "testcase", classname=c.file, name=c.name, time=f"{r.time:.6f}",
                               file=c.file, line=str(c.line))
            if r.skipped:
                ET.SubElement(tc, "skipped", message=r.skip_reason or "")
            elif r.failed:
                tag, kind = ("error", "error") if r.status == ERROR else ("failure", "expectation")
                el = ET.SubElement(tc, tag, message=r.message or "", type=kind)
                el.text = failure_details(r)
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
