"""Checks of each endpoint's posture per direction, as the compiled policy maps give it:
default deny that allows nothing (CIL009), that cuts DNS (CIL010, the seed's first
incident), that comes from deny rules alone (CIL011); system namespaces swept into
default deny or host policies (CIL003, pitfall 3); kubelet probes cut (CIL004, pitfall 4)."""

from __future__ import annotations

from collections.abc import Iterator

from ciliary.cluster.endpoints import Endpoint
from ciliary.cluster.model import ContainerPort
from ciliary.policy.engine import DirectionPolicy
from ciliary.policy.ports import PROTO_TCP, PROTO_UDP
from ciliary.policy.rules import EGRESS, INGRESS, PolicyEntry
from ciliary.verdict.decide import endpoint_peer
from ciliary.verdict.types import DROPPED
from ciliary.workflows.lint.context import Group, LintContext, members, some
from ciliary.workflows.lint.findings import CHECKS_BY_ID, Finding, Severity

CIL003 = CHECKS_BY_ID["CIL003"]
CIL004 = CHECKS_BY_ID["CIL004"]
CIL009 = CHECKS_BY_ID["CIL009"]
CIL010 = CHECKS_BY_ID["CIL010"]
CIL011 = CHECKS_BY_ID["CIL011"]

# A name every pod resolves: whether the lookup gets through at L3/L4 is the question.
PROBE_NAME = "kubernetes.default.svc.cluster.local"


def _allows(dp: DirectionPolicy) -> bool:
    """Whether any rule (not Cilium's own localhost entry) allows something; toFQDNs count
    (they select addresses once DNS answers are seen; CIL001 checks they can be)."""
    if any(not r.deny and any(p.kind == "fqdn" for p in r.peers or ()) for r in dp.rules):
        return True
    return any(not r.deny and r.origin is not None for r in dp.policy_map.rules())


def _flipper(dp: DirectionPolicy) -> PolicyEntry:
    """The rule to point at: the first that turns the direction to default deny."""
    return next((r for r in dp.rules if r.default_deny), dp.rules[0])


def _where(direction: str) -> str:
    return "ingress" if direction == INGRESS else "egress"


def check_posture(ctx: LintContext) -> Iterator[Finding]:
    """CIL009, CIL010 and CIL011: per group and direction, aggregated per deciding rule."""
    # (check, direction, rule) -> groups
    nothing: dict[tuple[str, str, int], list[Group]] = {}
    deny_only: dict[tuple[str, int], list[Group]] = {}
    no_dns: dict[int, list[Group]] = {}
    rule_of: dict[int, PolicyEntry] = {}
    dns = ctx.dns_servers
    dns_keys = {ep.key for ep in dns}
    for g in ctx.groups:
        pol = ctx.policy(g)
        for direction in (INGRESS, EGRESS):
            dp = pol.direction(direction)
            if not (dp.enforced and dp.default_deny and dp.rules):
                continue  # enable-policy=always without rules is the operator's choice
            flip = _flipper(dp)
            rule_of[id(flip)] = flip
            if all(r.deny for r in dp.rules):
                first = next(r for r in dp.rules if r.deny)
                rule_of[id(first)] = first
                deny_only.setdefault((direction, id(first)), []).append(g)
                continue
            if not _allows(dp):
                nothing.setdefault(("explicit" if _explicit(dp) else "", direction, id(flip)), []).append(g)
                continue
            if direction == EGRESS and dns and not g.rep.is_host and g.rep.key not in dns_keys:
                pair = ctx.decider.pair(endpoint_peer(g.rep), endpoint_peer(dns[0]))
                d = ctx.decider.decide_pair(pair, PROTO_UDP, 53)
                if d.verdict.verdict == DROPPED:
                    no_dns.setdefault(id(flip), []).append(g)
    for (direction, rid), gs in deny_only.items():
        r = rule_of[rid]
        pods = members(gs)
        w = _where(direction)
        other = "toEntities" if direction == EGRESS else "fromEntities"
        yield ctx.finding(
            CIL011, r,
            f"{w} of {some(pods)} is selected only by deny rules: Cilium turns {w} to default deny for them, "
            f"so all other {w} traffic is dropped as well, not only what the deny names",
            f"add `{w}: [{{{other}: [all]}}]` to allow the rest, or set `enableDefaultDeny: {{{w}: false}}` on this rule",
            endpoints=pods,
        )
    for (kind, direction, rid), gs in nothing.items():
        r = rule_of[rid]
        pods = members(gs)
        w = _where(direction)
        if kind == "explicit":
            msg = f"explicit default deny: {w} of {some(pods)} is default deny and no rule allows any {w} traffic yet"
            sev = Severity.info
        else:
            msg = (f"{w} of {some(pods)} is turned to default deny by this rule, and none of the rules selecting "
                   f"them allows any {w} traffic (their peers or ports select nothing)")
            sev = Severity.warning
        yield ctx.finding(
            CIL009, r, msg, f"allow what these endpoints need in {w}, or check the peer selectors of their rules",
            severity=sev, endpoints=pods,
        )
    facts = ctx.facts
    for rid, gs in no_dns.items():
        r = rule_of[rid]
        pods = members(gs)
        had = sorted(p for p in pods if facts is not None and (p in facts.dns_worked or p in facts.queried))
        sev = Severity.error if had else Severity.warning
        msg = (f"egress of {some(pods)} is default deny and DNS (UDP/53 to {dns[0].key}) is not allowed: "
               "every name lookup of these pods fails")
        if had:
            msg += f"; the flows show {some(had)} using DNS"
        yield ctx.finding(
            CIL010, r, msg,
            "allow egress to kube-dns (k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns) on port 53 "
            "UDP and TCP, with `rules: {dns: [{matchPattern: \"*\"}]}` to keep DNS visible",
            severity=sev, endpoints=pods,
        )


def _explicit(dp: DirectionPolicy) -> bool:
    """Every allow rule is an explicit `{}` / `fromEndpoints: []` element: default deny on
    purpose (deny rules selecting the same endpoints do not change that)."""
    return all(r.selects_nothing for r in dp.rules if not r.deny)


def check_system_namespaces(ctx: LintContext) -> Iterator[Finding]:
    system = set(ctx.options.system_namespaces)
    # policy -> (its first default-deny rule there, system pods, other pods)
    pods_of: dict[object, tuple[PolicyEntry, set[str], set[str]]] = {}
    nodes_of: dict[object, tuple[PolicyEntry, set[str]]] = {}  # host policies -> nodes
    for e in ctx.entries:
        if not e.default_deny:
            continue
        groups = ctx.subjects(e)
        if e.host:
            if groups:
                nodes_of.setdefault(e.origin.ref, (e, set()))[1].update(g.rep.key for g in groups)
            continue
        names = [k for g in groups for k in g.keys]
        inside = {k for k in names if k.split("/", 1)[0] in system}
        if inside:
            _, sys_pods, others = pods_of.setdefault(e.origin.ref, (e, set(), set()))
            sys_pods.update(inside)
            others.update(k for k in names if k not in inside)
    host_pods = [p for p in ctx.engine.cluster.pods if p.host_network and p.namespace in system]
    for e, node_keys in nodes_of.values():
        w = _where(e.direction)
        nodes = {n.removeprefix("node/") for n in node_keys}
        on = sorted(p.key for p in host_pods if p.node_name in nodes)
        what = f" and the host-network pods there ({some(on)})" if on else " and every host-network pod there (kube-system components)"
        yield ctx.finding(
            CIL003, e,
            f"host policy turns {w} of {some(sorted(node_keys))} to default deny: it governs the node{what}; "
            "a mistake locks out the node itself",
            "roll it out last, in policy audit mode first, and allow the cluster, health checks and the API server explicitly",
            endpoints=sorted(node_keys),
        )
    for e, a, b in pods_of.values():
        w = _where(e.direction)
        pods = sorted(a)
        namespaces = sorted({p.split("/", 1)[0] for p in pods})
        if b:
            msg = (f"{w} default deny reaches system namespace(s) {', '.join(namespaces)} ({some(pods)}) "
                   f"along with {len(b)} other pod(s): locking them down with the rest breaks the cluster itself")
            sev = Severity.error
        else:
            msg = (f"{w} default deny in system namespace(s) {', '.join(namespaces)} ({some(pods)}): "
                   "cluster functions depend on these pods")
            sev = Severity.warning
        yield ctx.finding(
            CIL003, e, msg,
            "exclude system namespaces from broad selectors (matchExpressions on k8s:io.kubernetes.pod.namespace NotIn) "
            "and give them their own, separately rolled out policies",
            severity=sev, endpoints=pods,
        )


def _probe_targets(ep: Endpoint) -> tuple[list[ContainerPort], bool]:
    """(ports kubelet probes, whether the pod declares them); undeclared: its container ports."""
    pod = ep.pod
    if pod is None:
        return [], False
    if pod.probe_ports:
        return list(dict.fromkeys(pod.probe_ports)), True
    return [p for p in pod.container_ports if p.protocol == "TCP"], False


def check_probes(ctx: LintContext) -> Iterator[Finding]:
    engine = ctx.engine
    hosts = {ep.node.name: ep for ep in engine.endpoints if ep.is_host and ep.node is not None}
    # (rule, declared) -> (groups, ports text)
    out: dict[tuple[int, bool], tuple[PolicyEntry, list[str], set[str], str]] = {}
    for g in ctx.pod_groups():
        for ep in g.members:
            node = ep.pod.node_name if ep.pod is not None else None
            host = hosts.get(node or "")
            if host is None:
                continue
            ports, declared = _probe_targets(ep)
            for cp in ports:
                d = ctx.decider.decide_connection(endpoint_peer(host), endpoint_peer(ep), PROTO_TCP, cp.port)
                v = d.verdict
                if v.verdict != DROPPED:
                    continue
                if v.egress.verdict == DROPPED:
                    side = engine.policy(host).egress
                    why = f"the host policy's egress of {host.key} does not allow it"
                else:
                    side = ctx.policy(g).ingress
                    why = "allow-localhost is `policy` and no ingress rule allows the host entity"
                if not side.rules:
                    continue
                r = _flipper(side)
                slot = out.setdefault((id(r), declared), (r, [], set(), why))
                slot[1].append(ep.key)
                slot[2].add(f"{cp.port}/TCP" + (f" ({cp.name})" if declared else ""))
                break
    for (_, declared), (r, found, ports_text, why) in out.items():
        pods = sorted(set(found))
        what = "kubelet probes" if declared else "kubelet probes (if these pods have any; none declared, checked on their container ports)"
        yield ctx.finding(
            CIL004, r,
            f"{what} of {some(pods)} on {', '.join(sorted(ports_text))} come from the node (host identity) and are dropped: {why}; "
            "the pods would restart forever",
            "allow `fromEntities: [host]` on the probe ports in the pods' ingress policy"
            if "ingress" in why or "localhost" in why else
            "allow the pods (e.g. `toEntities: [cluster]`) in the host policy's egress",
            severity=Severity.error if declared else Severity.warning, endpoints=pods,
        )
