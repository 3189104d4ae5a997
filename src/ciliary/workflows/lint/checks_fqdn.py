"""toFQDNs checks: the DNS rule that must let the lookups through (pitfall 1), and names
whose answers rotate faster than matchName and the FQDN cache can follow (pitfall 2)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ciliary.l7.dns import DNSMatcher
from ciliary.model import cilium as api
from ciliary.policy.ports import PROTO_UDP
from ciliary.policy.rules import EGRESS, PolicyEntry
from ciliary.verdict.decide import dns_answer_learned, endpoint_peer
from ciliary.verdict.types import DROPPED
from ciliary.workflows.lint.context import Group, LintContext, some
from ciliary.workflows.lint.findings import CHECKS_BY_ID, Finding, Severity

CIL001 = CHECKS_BY_ID["CIL001"]
CIL002 = CHECKS_BY_ID["CIL002"]


def sample_names(sel: api.FQDNSelector) -> list[str]:
    """Names the selector matches, to put through the DNS rules: the name itself, or the
    pattern with its wildcards filled in."""
    if sel.match_name:
        return [sel.match_name.rstrip(".").lower()]
    pattern = (sel.match_pattern or "").rstrip(".").lower()
    if not pattern.strip("*"):
        return ["example.com"]
    pattern = re.sub(r"^\*\*+\.", "x.y.", pattern)
    return [re.sub(r"\*+", "x", pattern)]


def _text(sel: api.FQDNSelector) -> str:
    return f"matchName: {sel.match_name}" if sel.match_name else f"matchPattern: {sel.match_pattern}"


def _fqdn_peers(e: PolicyEntry) -> list[tuple[int, api.FQDNSelector]]:
    return [(i, p.fqdn) for i, p in enumerate(p for p in e.peers or () if p.kind == "fqdn") if p.fqdn is not None]


def check_fqdn_dns(ctx: LintContext) -> Iterator[Finding]:
    if not ctx.dns_servers:
        return
    server = endpoint_peer(ctx.dns_servers[0])
    facts = ctx.facts
    for e in ctx.entries:
        if e.direction != EGRESS or e.deny:
            continue
        peers = _fqdn_peers(e)
        groups = [g for g in ctx.subjects(e) if not g.rep.is_host]
        if not peers or not groups:
            continue
        for j, sel in peers:
            names = sample_names(sel)
            if facts is not None and sel.match_pattern:
                m = DNSMatcher([sel])
                names += sorted(n for n in facts.names if m.matches(n))[:5]
            # outcome -> (groups, a name it happened to)
            bad: dict[str, tuple[list[Group], str]] = {}
            for g in groups:
                pair = ctx.decider.pair(endpoint_peer(g.rep), server)
                for name in names:
                    q = ctx.decider.decide_query(pair, PROTO_UDP, 53, name)
                    learned, _ = dns_answer_learned(q.verdict)
                    if learned:
                        continue
                    v = q.verdict
                    if v.verdict == DROPPED:
                        outcome = "dropped" if v.egress.verdict == DROPPED else "dropped-at-server"
                    elif not v.redirected:
                        outcome = "not-proxied"
                    else:
                        outcome = "refused"
                    bad.setdefault(outcome, ([], name))[0].append(g)
                    break
            for outcome, (gs, name) in bad.items():
                pods = sorted(k for g in gs for k in g.keys)
                yield _dns_finding(ctx, e, j, sel, outcome, name, pods, str(server))


def _dns_finding(
    ctx: LintContext, e: PolicyEntry, j: int, sel: api.FQDNSelector, outcome: str, name: str,
    pods: list[str], server: str,
) -> Finding:
    what = f"toFQDNs {_text(sel)} never matches for {some(pods)}"
    if outcome.startswith("dropped"):
        side = "the pods' egress policy" if outcome == "dropped" else f"the ingress policy of {server}"
        msg = f"{what}: its DNS lookups (UDP/53 to {server}) are dropped by {side}, so the DNS proxy learns no address"
        hint = ("add an egress rule to kube-dns on port 53 (UDP and TCP) with `rules: {dns: [{matchPattern: \"*\"}]}` "
                f"or names covering {name}")
    elif outcome == "not-proxied":
        msg = (f"{what}: its DNS lookups are allowed but not sent to the DNS proxy (no `rules: dns` on the rule "
               "allowing port 53), so no address is learned")
        hint = f"add `rules: {{dns: [{{{_text(sel)}}}]}}` to the egress rule allowing port 53 to kube-dns"
    else:
        msg = f"{what}: the DNS rule does not allow {name} (the DNS proxy answers REFUSED), so no address is learned"
        hint = f"add `{_text(sel)}` (or a pattern covering {name}) to the `rules: dns` list of the rule allowing port 53"
    return ctx.finding(CIL001, e, msg, hint, sub=("toFQDNs", j), endpoints=pods)


def check_fqdn_rotation(ctx: LintContext) -> Iterator[Finding]:
    facts = ctx.facts
    if facts is None:
        return
    opts = ctx.options
    cfg = ctx.engine.config
    grace = cfg.tofqdns_idle_connection_grace_period
    for e in ctx.entries:
        if e.direction != EGRESS or e.deny:
            continue
        peers = _fqdn_peers(e)
        patterns = [s for _, s in peers if s.match_pattern]
        for j, sel in peers:
            if not sel.match_name:
                continue
            name = sel.match_name.rstrip(".").lower()
            nf = facts.names.get(name)
            if nf is None:
                continue
            n = len(nf.ips)
            short = nf.min_ttl is not None and nf.min_ttl <= opts.short_ttl
            if not (n >= opts.rotating_ips or (n >= 2 and short)):
                continue
            covered = bool(patterns) and DNSMatcher(patterns).matches(name)
            if covered and grace > 0:
                continue
            ttl = f", TTL down to {nf.min_ttl}s" if nf.min_ttl is not None else ""
            why = [f"{name} answered with {n} addresses in {nf.answers} answer(s) of the flows{ttl}"]
            fixes = []
            if not covered:
                why.append("an exact matchName follows each answer only while its TTL lasts")
                suffix = name.split(".", 1)[1] if name.count(".") >= 2 else name
                fixes.append(f"use `matchPattern: \"*.{suffix}\"`")
            if grace <= 0:
                why.append("tofqdns-idle-connection-grace-period is 0, so an expired address is denied for new connections at once")
                fixes.append("set tofqdns-idle-connection-grace-period (e.g. 5m) in the agent options")
            sev = Severity.warning
            yield ctx.finding(
                CIL002, e, "; ".join(why) + " (pitfall 2: applications keeping stale answers get denied)",
                " and ".join(fixes) or "review the FQDN TTL settings", sub=("toFQDNs", j), severity=sev,
            )
