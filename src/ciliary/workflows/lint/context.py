"""What every lint check reads: the engine, its rules, who they select, and the flows.

Contracts:
* Built once per lint run from an engine it does not change (decisions are asked of a
  `Decider` over it; DNS answers are never learned into it).
* Endpoints are handled in groups that decide alike (`Decider.pods_alike`): a check
  works per group and reports pods by name, so the cost grows with identities, not pods.
* `subjects(entry)` lists the groups a rule selects, in the direction it applies to.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ciliary.cluster.endpoints import Endpoint
from ciliary.model import cilium as api
from ciliary.model.errors import Path, format_path
from ciliary.model.policy import LoadedPolicy, PolicyRef
from ciliary.policy.engine import EndpointPolicy, PolicyEngine
from ciliary.policy.ports import PROTO_ANY, PortPrefix
from ciliary.policy.rules import PolicyEntry, RuleOrigin
from ciliary.verdict.decide import dns_servers
from ciliary.verdict.decider import Decider
from ciliary.workflows.lint.findings import Check, Finding, Severity
from ciliary.workflows.lint.flowfacts import FlowFacts

# Namespaces whose lockdown breaks the cluster itself (pitfall 3): the cluster's own,
# monitoring, and the usual ingress controllers'.
DEFAULT_SYSTEM_NAMESPACES = (
    "kube-system", "kube-public", "kube-node-lease", "monitoring",
    "ingress-nginx", "traefik", "kong", "projectcontour", "haproxy-controller",
)
EXAMPLES = 3  # endpoints named in a finding


@dataclass
class LintOptions:
    system_namespaces: tuple[str, ...] = DEFAULT_SYSTEM_NAMESPACES
    l7_share: float = 0.5  # CIL007: share of a namespace's pods behind the L7 proxy
    rotating_ips: int = 3  # CIL002: addresses per name that count as rotating
    short_ttl: int = 60  # CIL002: seconds; with two or more addresses, rotating


def port_covers(a: PortPrefix, b: PortPrefix) -> bool:
    """Whether every (protocol, port) of `b` is also in `a`."""
    if a.proto != PROTO_ANY and a.proto != b.proto:
        return False
    if a.proto == PROTO_ANY:
        return True
    if b.proto == PROTO_ANY or a.prefix > b.prefix:
        return False
    shift = 16 - a.prefix
    return (a.port >> shift) == (b.port >> shift)


def ports_overlap(a: PortPrefix, b: PortPrefix) -> bool:
    return port_covers(a, b) or port_covers(b, a)


@dataclass
class Group:
    """Endpoints that decide alike; `rep` stands for all of them."""

    members: list[Endpoint]

    @property
    def rep(self) -> Endpoint:
        return self.members[0]

    @property
    def keys(self) -> list[str]:
        return [ep.key for ep in self.members]


@dataclass
class LintContext:
    engine: PolicyEngine
    options: LintOptions = field(default_factory=LintOptions)
    facts: FlowFacts | None = None

    def __post_init__(self) -> None:
        engine = self.engine
        self.decider = Decider(engine)
        self.entries: list[PolicyEntry] = engine.repository.entries
        self.policies: dict[PolicyRef, LoadedPolicy] = {p.ref: p for p in engine.policies.policies}
        self.groups = [Group(g) for g in self.decider.pods_alike(engine.endpoints)]
        self._subjects: dict[int, list[Group]] = {}
        self.entries_of: dict[PolicyRef, list[PolicyEntry]] = {}
        for e in self.entries:
            self._subjects[id(e)] = []
            self.entries_of.setdefault(e.origin.ref, []).append(e)
        for g in self.groups:
            rep = g.rep
            ingress, egress = engine.repository.rules_for(rep.labels, rep.namespace, rep.is_host)
            for e in (*ingress, *egress):
                self._subjects[id(e)].append(g)
        self.dns_servers = dns_servers(engine)
        self.pods_by_namespace: dict[str, list[Endpoint]] = {}
        for ep in engine.pod_endpoints:
            if ep.namespace is not None:
                self.pods_by_namespace.setdefault(ep.namespace, []).append(ep)

    # -- reading ---------------------------------------------------------------------------
    def subjects(self, entry: PolicyEntry) -> list[Group]:
        return self._subjects.get(id(entry), [])

    def policy(self, group: Group) -> EndpointPolicy:
        return self.engine.policy(group.rep)

    def pod_groups(self) -> Iterable[Group]:
        return (g for g in self.groups if not g.rep.is_host)

    def cilium_rules(self) -> Iterator[tuple[LoadedPolicy, Path, api.Rule]]:
        """Every rule (`spec`, `specs[i]`) of the Cilium policies, with its path, as loaded."""
        for lp in self.policies.values():
            obj = lp.obj
            if isinstance(obj, api.CiliumNetworkPolicy | api.CiliumClusterwideNetworkPolicy):
                for rpath, rule in obj.rules():
                    yield lp, rpath, rule

    # -- reporting -------------------------------------------------------------------------
    def finding(
        self,
        check: Check,
        where: PolicyEntry | RuleOrigin | LoadedPolicy,
        message: str,
        hint: str,
        *,
        sub: Path = (),
        severity: Severity | None = None,
        endpoints: Iterable[str] = (),
        related: Iterable[tuple[str, RuleOrigin | None]] = (),
    ) -> Finding:
        """A finding at `where` (a rule element, its origin, or a whole policy), or at the
        field `sub` below it."""
        if isinstance(where, PolicyEntry):
            where = where.origin
        if isinstance(where, RuleOrigin):
            ref, base, file = where.ref, where.path, where.file
        else:
            ref, base, file = where.ref, (), where.file
        path = (*base, *sub)
        lp = self.policies.get(ref)
        line = lp.line_of(path) if lp is not None else None
        names = sorted(set(endpoints))
        rel = tuple(
            (text, o.file if o else "", o.line if o else None) for text, o in related
        )
        return Finding(
            check, severity if severity is not None else check.severity, message, hint,
            ref, format_path(path), file, line, tuple(names[:EXAMPLES]), len(names), rel, path,
        )


def model_at(obj: Any, path: Path) -> Any:
    """The loaded API object (pydantic) at `path` (keys as written in YAML), or None."""
    for part in path:
        if obj is None:
            return None
        if isinstance(part, int):
            obj = obj[part] if isinstance(obj, list) and 0 <= part < len(obj) else None
        else:
            obj = getattr(obj, _attr_name(type(obj), part), None)
    return obj


_ATTRS: dict[tuple[type, str], str] = {}


def _attr_name(cls: type, key: str) -> str:
    hit = _ATTRS.get((cls, key))
    if hit is None:
        fields = getattr(cls, "model_fields", {})
        hit = next((str(n) for n, f in fields.items() if f.alias == key), key)
        _ATTRS[(cls, key)] = hit
    return hit


def find_path(lp: LoadedPolicy, prefix: Path, name: str) -> Path | None:
    """The first field called `name` below `prefix` in the policy, by line order."""
    full = (*lp.path, *prefix)
    n = len(full)
    hits = [(line, k) for k, line in lp.lines.items() if k[:n] == full and len(k) > n and k[-1] == name]
    if not hits:
        return None
    return min(hits)[1][len(lp.path):]


def some(names: list[str], total: int | None = None) -> str:
    """`shop/a, shop/b and 3 more` for messages."""
    total = len(names) if total is None else total
    shown = names[:EXAMPLES]
    text = ", ".join(shown)
    if total > len(shown):
        text += f" and {total - len(shown)} more"
    return text


def members(groups: Iterable[Group]) -> list[str]:
    return sorted(k for g in groups for k in g.keys)
