"""L7 checks (pitfall 7): L7 rules sprayed over most of a namespace (CIL007), and HTTP or
Kafka rules on ports that carry no protocol the proxy reads (CIL008)."""

from __future__ import annotations

from collections.abc import Iterator

from ciliary.model import cilium as api
from ciliary.policy.ports import PROTO_TCP
from ciliary.policy.rules import INGRESS, PolicyEntry, PortSpec
from ciliary.workflows.lint.context import LintContext, model_at, some
from ciliary.workflows.lint.findings import CHECKS_BY_ID, Finding

CIL007 = CHECKS_BY_ID["CIL007"]
CIL008 = CHECKS_BY_ID["CIL008"]

# Ports whose usual protocol is neither HTTP nor Kafka (IANA and de-facto assignments).
NOT_L7: dict[int, str] = {
    22: "SSH", 25: "SMTP", 53: "DNS", 110: "POP3", 143: "IMAP", 389: "LDAP", 1433: "SQL Server",
    1521: "Oracle", 2379: "etcd (gRPC over TLS)", 3306: "MySQL", 5432: "PostgreSQL", 5672: "AMQP",
    6379: "Redis", 9042: "Cassandra", 11211: "memcached", 27017: "MongoDB",
}
TLS: dict[int, str] = {443: "HTTPS", 465: "SMTPS", 636: "LDAPS", 853: "DNS over TLS", 993: "IMAPS", 995: "POP3S", 6443: "the Kubernetes API (TLS)"}
# Container/Service port names that say what a port carries.
NAMES_NOT_L7 = ("postgres", "mysql", "redis", "mongo", "ssh", "smtp", "dns", "amqp", "memcache", "cassandra", "tcp")
NAMES_TLS = ("https", "tls", "grpcs", "ssl")


def _envoy_l7(ps: PortSpec) -> bool:
    r = ps.l7
    return r is not None and bool(r.http or r.kafka or r.l7proto)


def check_l7_share(ctx: LintContext) -> Iterator[Finding]:
    if not ctx.engine.config.enable_l7_proxy:
        return
    share = ctx.options.l7_share
    # namespace -> pod -> the L7 rules putting it behind the proxy
    proxied: dict[str, dict[str, list[PolicyEntry]]] = {}
    for e in ctx.entries:
        if e.host or e.deny or not any(_envoy_l7(ps) for ps in e.ports or ()):
            continue
        for g in ctx.subjects(e):
            for ep in g.members:
                if ep.namespace is not None:
                    proxied.setdefault(ep.namespace, {}).setdefault(ep.key, []).append(e)
    for ns, pods in sorted(proxied.items()):
        total = len(ctx.pods_by_namespace.get(ns, []))
        if total < 2 or len(pods) / total <= share:
            continue
        counts: dict[int, tuple[PolicyEntry, int]] = {}
        for rules in pods.values():
            for r in rules:
                counts[id(r)] = (r, counts.get(id(r), (r, 0))[1] + 1)
        widest = max(counts.values(), key=lambda t: t[1])[0]
        k = next(i for i, ps in enumerate(widest.ports or ()) if _envoy_l7(ps))
        names = sorted(pods)
        yield ctx.finding(
            CIL007, widest,
            f"L7 rules put {len(pods)} of {total} pods ({100 * len(pods) // total}%) of namespace {ns} behind the L7 proxy "
            f"({some(names)}): every request pays Envoy's latency and CPU",
            "apply L7 rules only where L7 control is needed (exposed APIs, sensitive data) and L3/L4 rules elsewhere; "
            f"or raise --l7-share (now {share:.0%})",
            sub=("toPorts", k, "rules"), endpoints=names,
        )


def _port_names(ctx: LintContext, e: PolicyEntry, port: int) -> set[str]:
    """Names the destination gives `port` (ingress only: the subject pods' container ports and
    the ports of Services in their namespace that target it)."""
    names: set[str] = set()
    if e.direction != INGRESS:
        return names
    for g in ctx.subjects(e):
        pod = g.rep.pod
        if pod is not None:
            names.update(cp.name for cp in pod.container_ports if cp.port == port and cp.name)
    for svc in ctx.engine.cluster.services:
        if svc.namespace == e.namespace:
            names.update(sp.name.lower() for sp in svc.ports if sp.name and (sp.target_port or sp.port) == port)
    return names


def check_l7_ports(ctx: LintContext) -> Iterator[Finding]:
    for e in ctx.entries:
        if e.deny or not e.ports:
            continue
        lp = ctx.policies.get(e.origin.ref)
        for k, ps in enumerate(e.ports):
            if not _envoy_l7(ps) or ps.named is not None:
                continue
            raw = model_at(lp.obj, (*e.origin.path, "toPorts", k)) if lp is not None else None
            terminating = isinstance(raw, api.PortRule) and raw.terminating_tls is not None
            kind = "HTTP" if ps.l7 is not None and ps.l7.http else "Kafka" if ps.l7 is not None and ps.l7.kafka else "L7"
            for pp in ps.prefixes:
                if pp.proto != PROTO_TCP or pp.prefix != 16:
                    continue
                names = _port_names(ctx, e, pp.port)
                tls = TLS.get(pp.port) or next((n for n in names if any(t in n for t in NAMES_TLS)), None)
                other = NOT_L7.get(pp.port) or next((n for n in names if any(t in n for t in NAMES_NOT_L7)), None)
                if tls and not terminating:
                    yield ctx.finding(
                        CIL008, e,
                        f"{kind} rules on port {pp.port} ({tls}): the proxy cannot read requests inside TLS, so "
                        "connections on this port fail instead of being filtered",
                        "add `terminatingTLS` (and `originatingTLS`) to this port rule, or filter by L3/L4 or `serverNames` only",
                        sub=("toPorts", k, "rules"),
                    )
                elif other and not tls:
                    yield ctx.finding(
                        CIL008, e,
                        f"{kind} rules on port {pp.port}, which carries {other}: the proxy fails to parse it and drops the connections",
                        "remove the L7 rules from this port (filter it at L3/L4), or check the port number",
                        sub=("toPorts", k, "rules"),
                    )
