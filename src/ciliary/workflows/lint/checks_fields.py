"""Field checks on the policies as loaded: deprecated fields (CIL016), fields ciliary keeps
but cannot evaluate (CIL017), and enableDefaultDeny without the section (CIL015)."""

from __future__ import annotations

from collections.abc import Iterator

from ciliary.workflows.lint.context import LintContext, find_path
from ciliary.workflows.lint.findings import CHECKS_BY_ID, Finding

CIL015 = CHECKS_BY_ID["CIL015"]
CIL016 = CHECKS_BY_ID["CIL016"]
CIL017 = CHECKS_BY_ID["CIL017"]

_WHY_NOT = {
    "serverNames": "TLS SNI filtering needs the TLS handshake, which ciliary does not see",
    "terminatingTLS": "TLS interception contexts name Kubernetes secrets ciliary does not read",
    "originatingTLS": "TLS interception contexts name Kubernetes secrets ciliary does not read",
    "listener": "CiliumEnvoyConfig listeners are not modelled",
    "fromGroups": "cloud security groups are resolved by the operator from the provider's API",
    "toGroups": "cloud security groups are resolved by the operator from the provider's API",
    "fromCIDRSet.cidrGroupRef": "CiliumCIDRGroup objects are not read",
    "toCIDRSet.cidrGroupRef": "CiliumCIDRGroup objects are not read",
    "toServices": "the service has no selector and no endpoints in the snapshot, or is selected by labels",
}


def check_deprecated(ctx: LintContext) -> Iterator[Finding]:
    for lp, rpath, rule in ctx.cilium_rules():
        for key, elements in (("ingress", rule.ingress), ("ingressDeny", rule.ingress_deny),
                              ("egress", rule.egress), ("egressDeny", rule.egress_deny)):
            for i, el in enumerate(elements or []):
                req = "fromRequires" if key.startswith("ingress") else "toRequires"
                if getattr(el, "from_requires" if req == "fromRequires" else "to_requires", None):
                    yield ctx.finding(
                        CIL016, lp,
                        f"`{req}` is deprecated since Cilium 1.17 and removed in 1.19: policies using it stop loading on upgrade",
                        f"express the requirement in the peer selectors themselves (add the labels to `{req.replace('Requires', 'Endpoints')}`)",
                        sub=(*rpath, key, i, req),
                    )
                for k, pr in enumerate(getattr(el, "to_ports", None) or []):
                    rules = getattr(pr, "rules", None)
                    if rules is not None and rules.kafka:
                        yield ctx.finding(
                            CIL016, lp,
                            "Kafka L7 rules are deprecated in Cilium, and the newest CiliumNetworkPolicy CRD no longer has `kafka`",
                            "filter Kafka at L3/L4, or move topic control to the broker's ACLs",
                            sub=(*rpath, key, i, "toPorts", k, "rules", "kafka"),
                        )


def check_not_evaluated(ctx: LintContext) -> Iterator[Finding]:
    for e in ctx.entries:
        lp = ctx.policies.get(e.origin.ref)
        for name in e.not_evaluated:
            leaf = name.split(".")[-1]
            sub = None
            if lp is not None:
                found = find_path(lp, e.origin.path, leaf)
                if found is not None:
                    sub = found[len(e.origin.path):]
            yield ctx.finding(
                CIL017, e,
                f"`{name}` is parsed but not evaluated by ciliary ({_WHY_NOT.get(name, 'not modelled')}): "
                "verdicts for this rule ignore it",
                "check this rule's effect in a cluster (policy audit mode, Hubble), or exclude it with an inline ignore",
                sub=sub or (),
            )


def check_default_deny_without_section(ctx: LintContext) -> Iterator[Finding]:
    """`enableDefaultDeny.<dir>: true` on a rule with no element for that direction: Cilium
    creates no rule for it, so the direction is not turned to default deny (semantics §3.2)."""
    for lp, rpath, rule in ctx.cilium_rules():
        dd = rule.enable_default_deny
        if dd is None:
            continue
        for w, on, allow, deny in (("ingress", dd.ingress, rule.ingress, rule.ingress_deny),
                                   ("egress", dd.egress, rule.egress, rule.egress_deny)):
            if on and not allow and not deny:
                yield ctx.finding(
                    CIL015, lp,
                    f"`enableDefaultDeny.{w}: true` has no effect: the rule has no {w} or {w}Deny element, "
                    f"so it does not turn {w} to default deny",
                    f"add `{w}: [{{}}]` for default deny in {w}",
                    sub=(*rpath, "enableDefaultDeny", w),
                )
