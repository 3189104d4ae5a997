"""`ciliary generate`: least-privilege CiliumNetworkPolicies from observed flows, one per
workload, checked by replaying the flows through them.

The steps, each in its own module: observations in (`ciliary.flows.observed`), what each
workload needs (`rules`), the policy objects (`policies`, with `paths` and `names`), then
ciliary's own validator and a replay of the input (`verify`). With `merge_with`, only what
the existing policies do not allow already is generated (the seed's stage 2: a pull request
per service that adds what the observation shows is missing), as allow-only policies
(`enableDefaultDeny: false`), which change no direction's enforcement.

Rules: the same input gives the same output, byte for byte. Nothing is written here; the
caller decides where the policies go.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ciliary.cluster.model import Cluster
from ciliary.cluster.workloads import Workload, unique_names, workload_of
from ciliary.flows.codec import OnBadLine, ReadStats
from ciliary.flows.observed import PeerResolver, observations
from ciliary.model.emit import to_yaml
from ciliary.model.policy import PolicySet
from ciliary.policy.config import AgentConfig
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_NUMBERS
from ciliary.verdict.decide import dns_servers
from ciliary.workflows.diff import DiffReport, diff_policies
from ciliary.workflows.generate.policies import DEFAULT_DNS, JSON, Options, policy_doc
from ciliary.workflows.generate.rules import Gatherer, Listed, WorkloadRules, port_label
from ciliary.workflows.generate.verify import (
    Verification,
    default_deny_yaml,
    documents,
    in_step,
    load_generated,
    verify,
)

__all__ = ["GenerateOptions", "GenerateResult", "GeneratedPolicy", "generate"]


@dataclass(frozen=True)
class GenerateOptions:
    namespaces: frozenset[str] | None = None  # subject namespaces; None: every namespace
    l7: frozenset[str] = frozenset()  # http, kafka, dns
    fqdn_threshold: int = 0
    cidr_aggregate: bool = False
    default_deny: bool = True
    min_window: float = 24 * 3600.0  # seconds; shorter observation windows are flagged
    min_flows: int = 10


@dataclass
class GeneratedPolicy:
    workload: Workload
    name: str
    doc: JSON  # may hold `Commented` values; `plain()` for JSON
    header: str
    yaml: str

    @property
    def path(self) -> str:
        """Where the policy goes under an output directory."""
        return f"{self.workload.namespace}/{self.name}.yaml"


@dataclass
class Coverage:
    workload: str
    window: str
    flows: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class GenerateResult:
    policies: list[GeneratedPolicy]
    denied: list[Listed]
    unresolved: list[Listed]
    coverage: list[Coverage]
    verification: Verification
    stats: ReadStats
    unobserved: list[str] = field(default_factory=list)  # subject workloads no flow touched
    was_dropped: list[Listed] = field(default_factory=list)  # allowed, though recorded as dropped
    merge_diff: str = ""  # unified diff of the YAML, with `merge_with`
    merge_effect: DiffReport | None = None  # what the additions change, with `merge_with`


def _dns_server(engine: PolicyEngine) -> Workload:
    for ep in dns_servers(engine):
        assert ep.pod is not None
        w = workload_of(ep.pod.namespace, ep.pod.labels)
        if w is not None:
            return w
    return DEFAULT_DNS


def _policy_names(workloads: list[Workload], taken: set[tuple[str, str]]) -> dict[Workload, str]:
    names = {}
    for w, name in unique_names(workloads).items():
        n = f"allow-{name}"
        while (w.namespace, n) in taken:
            n += "-observed"
        names[w] = n
    return names


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h".replace(".0h", "h")
    m, sec = divmod(int(seconds), 60)
    return f"{m}m{sec:02d}s" if m else f"{sec}s"


def _coverage(engine: PolicyEngine, rules: WorkloadRules, opts: GenerateOptions) -> Coverage:
    ev = rules.window
    cov = Coverage(rules.workload.key, ev.span() or "no times", ev.flows)
    if ev.seconds < opts.min_window:
        cov.warnings.append(f"observed for {_duration(ev.seconds)}, less than {_duration(opts.min_window)}: rare traffic may be missing")
    if ev.flows < opts.min_flows:
        cov.warnings.append(f"only {ev.flows} flow(s) (fewer than {opts.min_flows})")
    used = {key for ports in rules.ingress.values() for key in ports}
    declared: dict[tuple[int, int], str] = {}
    pods = [ep.pod for ep in engine.pod_endpoints if ep.pod is not None and workload_of(ep.pod.namespace, ep.pod.labels) == rules.workload]
    for pod in pods:
        for cp in pod.named_ports:
            declared.setdefault((PROTO_NUMBERS.get(cp.protocol.upper(), 6), cp.port), f"container port {cp.name or cp.port}")
    for svc in engine.cluster.services:
        if svc.namespace == rules.workload.namespace and svc.selector and any(
            all(p.labels.get(k) == v for k, v in svc.selector.items()) for p in pods
        ):
            for sp in svc.ports:
                if isinstance(sp.target_port, int):
                    declared.setdefault((PROTO_NUMBERS.get(sp.protocol.upper(), 6), sp.target_port), f"service {svc.name}")
    unused = [f"{port_label(k)} ({why})" for k, why in sorted(declared.items()) if k not in used]
    if unused:
        cov.warnings.append("declared but never used: " + ", ".join(unused))
    return cov


def _gather(
    cluster: Cluster, config: AgentConfig, sources: list[str | Path], opts: GenerateOptions,
    merge_with: PolicySet | None, stats: ReadStats, strict: bool, on_bad: OnBadLine | None,
) -> tuple[Gatherer, PolicyEngine]:
    engine = PolicyEngine(cluster, PolicySet(), config)
    gatherer = Gatherer(opts.namespaces)
    if merge_with is None:
        for ob in observations(sources, stats, PeerResolver(engine), strict=strict, on_bad=on_bad):
            gatherer.add(ob)
        return gatherer, engine
    # Only what the existing policies (under default deny) would drop is needed.
    existing = _engine(cluster, config, merge_with, [], _deny_namespaces(opts, cluster))
    for ob, rf in in_step(existing, sources, PeerResolver(engine)):
        gatherer.add(ob, needed=rf.predicted in ("DROPPED", "AUDIT"))
    stats.flows = sum(1 for _ in observations(sources, ReadStats(), PeerResolver(engine)))
    return gatherer, engine


def _deny_namespaces(opts: GenerateOptions, cluster: Cluster) -> list[str]:
    return sorted(opts.namespaces) if opts.namespaces is not None else sorted(cluster.namespaces)


def _engine(
    cluster: Cluster, config: AgentConfig, merge_with: PolicySet | None,
    generated: list[GeneratedPolicy], deny: list[str],
) -> PolicyEngine:
    texts = [(p.path, p.yaml) for p in generated] + [(f"<default deny {ns}>", default_deny_yaml(ns)) for ns in deny]
    policies = load_generated(texts)
    if merge_with is not None:
        policies.policies[:0] = merge_with.policies
    return PolicyEngine(cluster, policies, config)


def generate(
    cluster: Cluster,
    sources: Sequence[str | Path],
    opts: GenerateOptions | None = None,
    *,
    config: AgentConfig | None = None,
    merge_with: PolicySet | None = None,
    strict: bool = False,
    on_bad: OnBadLine | None = None,
) -> GenerateResult:
    """Policies for the workloads of `sources`' flows in `cluster`, verified (see module)."""
    opts = opts or GenerateOptions()
    config = config or AgentConfig()
    files = list(sources)
    stats = ReadStats()
    gatherer, engine = _gather(cluster, config, files, opts, merge_with, stats, strict, on_bad)
    # Additions to existing policies only allow: they change no direction's enforcement.
    default_deny = opts.default_deny and merge_with is None
    popts = Options(opts.l7, opts.fqdn_threshold, opts.cidr_aggregate, default_deny, _dns_server(engine))
    taken = {(p.namespace, p.name) for p in merge_with.policies} if merge_with is not None else set()
    subjects = sorted(w for w, r in gatherer.workloads.items() if r.ingress or r.egress)
    names = _policy_names(subjects, taken)
    policies = []
    for w in sorted(subjects, key=lambda w: (w.namespace, names[w])):
        doc, header = policy_doc(gatherer.workloads[w], names[w], popts)
        policies.append(GeneratedPolicy(w, names[w], doc, header, to_yaml(doc, header)))
    deny = sorted({p.workload.namespace for p in policies} | set(opts.namespaces or ()))
    verified = verify(_engine(cluster, config, merge_with, policies, deny), files, PeerResolver(engine))
    subject_ns = opts.namespaces
    observed = set(gatherer.workloads)
    unobserved = sorted({
        w.key for ep in engine.pod_endpoints if ep.pod is not None
        for w in [workload_of(ep.pod.namespace, ep.pod.labels)]
        if w is not None and (subject_ns is None or w.namespace in subject_ns) and w not in observed
    })
    result = GenerateResult(
        policies, sorted(gatherer.denied.values(), key=lambda x: x.what),
        sorted(gatherer.unresolved.values(), key=lambda x: x.what),
        [_coverage(engine, gatherer.workloads[p.workload], opts) for p in policies], verified, stats, unobserved,
        sorted(gatherer.was_dropped.values(), key=lambda x: x.what),
    )
    if merge_with is not None:
        result.merge_diff = "".join(
            "".join(difflib.unified_diff([], p.yaml.splitlines(keepends=True), "/dev/null", f"b/{p.path}"))
            for p in policies
        )
        # Under the default deny the rollout adds next, as the additions were chosen.
        result.merge_effect = diff_policies(
            _engine(cluster, config, merge_with, [], deny), _engine(cluster, config, merge_with, policies, deny),
        )
    return result


def plain(value: object) -> object:
    """A policy document without its comments (for JSON)."""
    from ciliary.model.emit import Commented

    if isinstance(value, Commented):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


__all__ += ["documents", "plain"]
