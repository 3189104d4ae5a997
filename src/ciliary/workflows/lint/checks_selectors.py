"""Selector checks (pitfall 6): selectors that match nothing, with the nearest existing
label that would have matched (CIL005), and the `{}` / `[]` misunderstandings (CIL006)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from ciliary.identity.labels import LabelSet
from ciliary.identity.selector import OP_EXISTS, OP_IN, Requirement, Selector
from ciliary.model.errors import Path
from ciliary.model.policy import KIND_KNP, LoadedPolicy
from ciliary.policy.rules import INGRESS, NS_LABEL, PolicyEntry
from ciliary.workflows.lint.context import LintContext, model_at
from ciliary.workflows.lint.findings import CHECKS_BY_ID, Finding, Severity

CIL005 = CHECKS_BY_ID["CIL005"]
CIL006 = CHECKS_BY_ID["CIL006"]


def _matches(req: Requirement, labels: LabelSet) -> bool:
    return Selector((), (req,)).matches(labels)


def _close(word: str, options: set[str]) -> str | None:
    hit = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return hit[0] if hit else None


def explain_no_match(sel: Selector, candidates: list[LabelSet], what: str) -> tuple[str, bool]:
    """Why `sel` matches none of `candidates`: (the explanation, whether a near miss, i.e. a
    likely typo, was found)."""
    if not candidates:
        return f"there is no {what}", False
    reqs = sel.requirements
    ns = [r for r in reqs if r.key == NS_LABEL]
    failing = [r for r in reqs if not any(_matches(r, c) for c in candidates)]
    if failing:
        r = failing[0]
        # Suggestions come from the selector's namespace when it names one that has endpoints.
        local = [c for c in candidates if all(_matches(q, c) for q in ns)] or candidates
        where = f" in namespace {ns[0].values[0]}" if ns and local is not candidates and ns[0].values else ""
        if r.operator in (OP_IN, OP_EXISTS):
            values = {lb.value for c in local for lb in c if lb.key == r.key and r.source in ("any", lb.source)}
            if values and r.operator == OP_IN:
                want = r.values[0] if len(r.values) == 1 else ",".join(r.values)
                near = _close(want, values)
                shown = ", ".join(sorted(values)[:5]) + (" ..." if len(values) > 5 else "")
                if near is not None:
                    return f"no {what} has {r.key}={want}; did you mean {r.key}={near}? (values of {r.key}{where}: {shown})", True
                return f"no {what} has {r.key}={want} (values of {r.key}{where}: {shown})", False
            if not values:
                keys = {lb.key for c in local for lb in c if lb.source != "cidr"}
                near = _close(r.key, keys)
                if near is not None:
                    return f"no {what} has a label {r.key}; did you mean {near}?", True
                return f"no {what} has a label {r.key}", False
        return f"no {what} satisfies {r}", False
    # Each requirement holds somewhere, but not all of them on one endpoint.
    # The closest: most requirements met; of those, one in the selector's namespace.
    best = max(candidates, key=lambda c: (sum(_matches(r, c) for r in reqs), all(_matches(r, c) for r in ns)))
    missing = [str(r) for r in reqs if not _matches(r, best)]
    return f"no single {what} has all of {sel}; the closest lacks {', '.join(missing)}", False


def _rule_path(e: PolicyEntry, knp: bool) -> Path:
    if knp:
        return ("spec",)
    return e.origin.path[:-2]


def check_selectors(ctx: LintContext) -> Iterator[Finding]:
    engine = ctx.engine
    host_labels = [ep.labels for ep in engine.endpoints if ep.is_host]
    all_pods = [ep.labels for ep in engine.pod_endpoints]
    namespaces = {n for n, ns in engine.cluster.namespaces.items() if not ns.implicit} | set(ctx.pods_by_namespace)
    ident_labels = [engine.index.labels(i) for i in sorted(engine.index.ids)]
    seen_rules: set[tuple[Any, ...]] = set()
    for e in ctx.entries:
        lp = ctx.policies.get(e.origin.ref)
        knp = e.origin.ref.kind == KIND_KNP
        rpath = _rule_path(e, knp)
        rkey = (e.origin.ref, rpath)
        if rkey not in seen_rules:
            seen_rules.add(rkey)
            rule_entries = [x for x in ctx.entries_of[e.origin.ref] if _rule_path(x, knp) == rpath]
            if not any(ctx.subjects(x) for x in rule_entries):
                yield _subject_finding(ctx, e, rpath, knp, host_labels, all_pods, namespaces)
        if lp is None:
            continue
        pre = "from" if e.direction == INGRESS else "to"
        for kind, field in (("endpoints", f"{pre}Endpoints"), ("nodes", f"{pre}Nodes")):
            for i, peer in enumerate(p for p in e.peers or () if p.kind == kind):
                if peer.is_wildcard or engine.selected(peer.selector):
                    continue
                text, typo = _peer_reason(peer.selector, ident_labels, namespaces, kind)
                sub: Path = () if knp else (field, i)
                shown = peer.text if knp else _written(model_at(lp.obj, (*e.origin.path, field, i))) or peer.text
                yield ctx.finding(
                    CIL005, e,
                    f"{field if not knp else 'peer'} selector {shown} selects nothing: {text}; the rule silently "
                    f"{'denies' if e.deny else 'allows'} nothing",
                    "fix the label key or value (check `ciliary identities --cluster ...` for the labels that exist)",
                    sub=sub, severity=Severity.error if typo else Severity.warning,
                )


def _written(sel: Any) -> str | None:
    """A selector as the policy wrote it: `{app=frontend, tier in (a,b)}`."""
    if sel is None:
        return None
    parts = [f"{k}={v}" for k, v in (getattr(sel, "match_labels", None) or {}).items()]
    for x in getattr(sel, "match_expressions", None) or []:
        vals = f" ({','.join(x.values)})" if x.values else ""
        parts.append(f"{x.key} {x.operator}{vals}")
    return "{" + ", ".join(parts) + "}"


def _peer_reason(sel: Selector, scope: list[LabelSet], namespaces: set[str], kind: str) -> tuple[str, bool]:
    ns = sel.get_match_label("k8s", NS_LABEL)
    if ns is not None and ns not in namespaces:
        near = _close(ns, namespaces)
        return (f"there is no namespace {ns}" + (f"; did you mean {near}?" if near else ""), near is not None)
    return explain_no_match(sel, scope, "endpoint" if kind == "endpoints" else "node")


def _subject_finding(
    ctx: LintContext, e: PolicyEntry, rpath: Path, knp: bool,
    host_labels: list[LabelSet], all_pods: list[LabelSet], namespaces: set[str],
) -> Finding:
    if e.host:
        text, typo = explain_no_match(e.subject, host_labels, "node")
        field = "nodeSelector"
    else:
        field = "podSelector" if knp else "endpointSelector"
        if e.namespace is not None:
            pods = [ep.labels for ep in ctx.pods_by_namespace.get(e.namespace, [])]
            if e.namespace not in namespaces:
                near = difflib.get_close_matches(e.namespace, sorted(namespaces), n=1)
                text = f"there is no namespace {e.namespace} in the cluster" + (f" (did you mean {near[0]}?)" if near else "")
                typo = bool(near)
            else:
                text, typo = explain_no_match(e.subject, pods, f"pod in namespace {e.namespace}")
        else:
            text, typo = explain_no_match(e.subject, all_pods, "pod")
    return ctx.finding(
        CIL005, ctx.policies[e.origin.ref],
        f"{field} selects no endpoint: {text}; this rule applies to nothing",
        "fix the label (compare with `ciliary identities --cluster ...`); after applying, check the endpoint count with `cilium endpoint list`",
        sub=(*rpath, field), severity=Severity.error if typo else Severity.warning,
    )


# -- `{}` and `[]` --------------------------------------------------------------------------

_PEER_FIELDS = (
    ("from_endpoints", "fromEndpoints"), ("from_cidr", "fromCIDR"), ("from_cidr_set", "fromCIDRSet"),
    ("from_entities", "fromEntities"), ("from_nodes", "fromNodes"),
    ("to_endpoints", "toEndpoints"), ("to_cidr", "toCIDR"), ("to_cidr_set", "toCIDRSet"),
    ("to_entities", "toEntities"), ("to_nodes", "toNodes"), ("to_services", "toServices"), ("to_fqdns", "toFQDNs"),
)
_SECTIONS = (("ingress", "ingress"), ("ingress_deny", "ingressDeny"), ("egress", "egress"), ("egress_deny", "egressDeny"))


def check_empty_selectors(ctx: LintContext) -> Iterator[Finding]:
    for lp in ctx.policies.values():
        if lp.kind == KIND_KNP:
            yield from _knp_empty(ctx, lp)
    for lp, rpath, rule in ctx.cilium_rules():
        clusterwide = lp.namespace == ""
        for attr, key in _SECTIONS:
            elements = getattr(rule, attr)
            if elements is not None and not elements:
                yield ctx.finding(
                    CIL006, lp,
                    f"`{key}: []` creates no rule: {key.removesuffix('Deny').lower()} is not turned to default deny by it "
                    "and nothing is allowed or denied",
                    f"for default deny write `{key.removesuffix('Deny')}: [{{}}]`; otherwise remove the empty list",
                    sub=(*rpath, key),
                )
            for i, el in enumerate(elements or []):
                yield from _element_empty(ctx, lp, (*rpath, key, i), el, clusterwide)


def _element_empty(ctx: LintContext, lp: LoadedPolicy, path: Path, el: Any, clusterwide: bool) -> Iterator[Finding]:
    has_ports = getattr(el, "to_ports", None) is not None or getattr(el, "icmps", None) is not None
    for attr, key in _PEER_FIELDS:
        value = getattr(el, attr, None)
        if value is None:
            continue
        if not value and has_ports:
            yield ctx.finding(
                CIL006, lp,
                f"`{key}: []` selects no peer, so this element allows (or denies) nothing on its ports "
                "(older Cilium releases read it as any peer)",
                f"to mean any peer, drop `{key}`; to mean nobody, drop the element",
                sub=(*path, key),
            )
        if attr in ("from_endpoints", "to_endpoints"):
            for j, sel in enumerate(value):
                if _is_empty_selector(sel):
                    scope = "every endpoint in the cluster (all namespaces)" if clusterwide else f"every pod in namespace {lp.namespace}"
                    yield ctx.finding(
                        CIL006, lp,
                        f"`{key}: [{{}}]` selects {scope}, not every peer (world, host and CIDRs stay excluded)",
                        "to allow every peer use `fromEntities: [all]` / `toEntities: [all]`; "
                        "to allow the namespace only, this is right",
                        sub=(*path, key, j), severity=Severity.info,
                    )


def _is_empty_selector(sel: Any) -> bool:
    ml = getattr(sel, "match_labels", None)
    mx = getattr(sel, "match_expressions", None)
    return not ml and not mx


def _knp_empty(ctx: LintContext, lp: LoadedPolicy) -> Iterator[Finding]:
    spec = getattr(lp.obj, "spec", None)
    if spec is None:
        return
    for key, elements in (("ingress", spec.ingress), ("egress", spec.egress)):
        for i, el in enumerate(elements or []):
            peers = el.from_ if key == "ingress" else el.to
            if not peers and not el.ports:
                yield ctx.finding(
                    CIL006, lp,
                    f"`{key}: [{{}}]` in a NetworkPolicy allows all {key} traffic (in a CiliumNetworkPolicy the same "
                    "empty element means default deny)",
                    f"to deny all {key}, list \"{key.capitalize()}\" in policyTypes with no {key} rules",
                    sub=("spec", key, i), severity=Severity.info,
                )
