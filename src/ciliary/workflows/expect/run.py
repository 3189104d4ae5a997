"""Running expectations through the engine: each case is decided exactly as `ciliary trace`
decides it (`workflows.trace.trace`, hence the `Decider`), and judged against its `expect`.

A case with `resolve` learns its DNS answers on an engine of its own, so no case sees
names another one resolved: every case is independent of the others and of their order."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ciliary.model.errors import LoadError, ValidationIssue, ValidationWarning
from ciliary.policy.engine import PolicyEngine
from ciliary.verdict.decide import cluster_dns, resolve_peer
from ciliary.workflows.engine import build_engine, read_config
from ciliary.workflows.expect.model import Case, CaseResult, ExpectationsFile, FileResult, judge
from ciliary.workflows.trace import trace


def build(spec: ExpectationsFile) -> PolicyEngine:
    """The engine a file's cases run on (LoadError when the snapshot, a policy or the
    agent config does not load)."""
    cfg = read_config(spec.config).with_overrides(**spec.options)
    return build_engine(spec.cluster, list(spec.policies) if spec.policies is not None else None, cfg)


@dataclass
class Prepared:
    """A file whose engine loaded and whose every case names peers that exist."""

    spec: ExpectationsFile
    engine: PolicyEngine
    warnings: list[ValidationWarning] = field(default_factory=list)
    load_time: float = 0.0


def prepare(spec: ExpectationsFile) -> Prepared:
    """Load the engine and check every case against the cluster; LoadError otherwise."""
    start = time.perf_counter()
    engine = build(spec)
    issues = check_peers(spec, engine)
    if issues:
        raise LoadError(issues, engine.policies.warnings)
    return Prepared(spec, engine, list(engine.policies.warnings), time.perf_counter() - start)


def check_peers(spec: ExpectationsFile, engine: PolicyEngine) -> list[ValidationIssue]:
    """Every `from`/`to` that names no pod or node of the snapshot (with the nearest
    names), and every `resolve` the cluster cannot replay; one issue per name and place."""
    names = sorted(ep.key for ep in engine.endpoints)
    issues: dict[tuple[int, str, str], ValidationIssue] = {}
    has_dns = True
    try:
        cluster_dns(engine)
    except LookupError:
        has_dns = False
    for case in spec.cases:
        source_is_endpoint = True
        for role, text in (("from", case.src), ("to", case.dst)):
            try:
                peer = resolve_peer(engine, text)
            except LookupError:
                line, fld = case.where.get(role, (case.line, ""))
                if case.table:  # the field is the grid: say which row or column
                    obj, where = f'table "{case.table}"', f"{'row' if role == 'from' else 'column'} {text}: "
                else:
                    obj, where = case.label, ""
                issues.setdefault((line, fld, text), ValidationIssue(
                    spec.file, line, None, obj, fld, where + unknown_peer(text, names)))
                continue
            if role == "from":
                source_is_endpoint = peer.endpoint is not None
        if case.resolve:
            line, fld = case.where.get("resolve", (case.line, ""))
            msg = None
            if not source_is_endpoint:
                msg = f"resolve needs a pod or node as the source (its DNS proxy learns the answers), not the address {case.src!r}"
            elif not has_dns:
                msg = "resolve needs the cluster DNS (kube-system pods labelled k8s-app=kube-dns); the snapshot has none"
            if msg is not None:
                issues.setdefault((line, fld, "resolve"), ValidationIssue(spec.file, line, None, case.label, fld, msg))
    return list(issues.values())


def unknown_peer(text: str, names: list[str]) -> str:
    msg = f"no pod or node {text!r} in the cluster (expected NS/POD, node/NAME or an IP)"
    close = difflib.get_close_matches(text, names, n=1, cutoff=0.5)
    if close:
        return msg + f"; did you mean {close[0]!r}?"
    ns = text.partition("/")[0]
    same_ns = [n for n in names if n.startswith(ns + "/")]
    if same_ns:
        return msg + f"; pods in {ns}: {', '.join(same_ns[:5])}" + (" ..." if len(same_ns) > 5 else "")
    return msg


def run_case(engine: PolicyEngine, case: Case) -> CaseResult:
    start = time.perf_counter()
    try:
        verdict, observations = trace(engine, case.src, case.dst, case.proto, case.port, case.request,
                                      [(n, list(ips)) for n, ips in case.resolve])
    except (LookupError, ValueError) as e:  # checked by prepare; the cluster changed under us
        return CaseResult(case, False, None, error=f"cannot decide: {e.args[0] if e.args else e}",
                          time=time.perf_counter() - start)
    got, messages = judge(case, verdict)
    return CaseResult(case, not messages, got, verdict, observations, messages, time=time.perf_counter() - start)


def run_file(prepared: Prepared, on_case: Callable[[CaseResult], None] | None = None) -> FileResult:
    """Every case of a prepared file, in file order."""
    start = time.perf_counter()
    results = []
    for case in prepared.spec.cases:
        engine = prepared.engine
        if case.resolve:
            engine = build(prepared.spec)  # its DNS answers stay with this case
        r = run_case(engine, case)
        results.append(r)
        if on_case is not None:
            on_case(r)
    return FileResult(prepared.spec, results, prepared.load_time + time.perf_counter() - start)
