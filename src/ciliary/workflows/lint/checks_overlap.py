"""Checks of how rules overlap in each compiled policy map: L7 rules an L3/L4 allow makes
ineffective (CIL012, semantics §6.3), allows that deny rules make unreachable (CIL013),
rules that other rules already make (CIL014), and rules that add nothing (CIL015).

One pass over the distinct policy maps (endpoints sharing a compiled policy share its map),
comparing rule entries of overlapping ports only. A rule is reported when what is said of
it holds on every endpoint it selects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ciliary.policy.engine import DirectionPolicy
from ciliary.policy.mapstate import MapRule
from ciliary.policy.ports import PROTO_ANY
from ciliary.policy.rules import PolicyEntry, RuleOrigin
from ciliary.workflows.lint.context import (
    Group,
    LintContext,
    members,
    port_covers,
    ports_overlap,
    some,
)
from ciliary.workflows.lint.findings import CHECKS_BY_ID, Finding

CIL012 = CHECKS_BY_ID["CIL012"]
CIL013 = CHECKS_BY_ID["CIL013"]
CIL014 = CHECKS_BY_ID["CIL014"]
CIL015 = CHECKS_BY_ID["CIL015"]


def _ids_within(a: frozenset[int] | None, cover: frozenset[int] | None) -> bool:
    """Every identity of `a` is in `cover` (None: every identity)."""
    if cover is None:
        return True
    return a is not None and a <= cover


def _ids_meet(a: frozenset[int] | None, b: frozenset[int] | None) -> bool:
    return a is None or b is None or not a.isdisjoint(b)


@dataclass
class _Said:
    """What holds for one rule element in one policy map."""

    unreachable: bool = False
    deniers: tuple[RuleOrigin, ...] = ()
    redundant: bool = False
    coverers: tuple[RuleOrigin, ...] = ()
    shadowed: dict[RuleOrigin, set[str]] = field(default_factory=dict)  # L3/L4 allow -> ports


@dataclass
class _Tally:
    """What holds for one rule element over the maps it is in."""

    entry: PolicyEntry
    maps: int = 0  # maps it added entries to
    unreachable: int = 0  # maps where deny entries cover every allow of it
    deniers: dict[RuleOrigin, None] = field(default_factory=dict)
    redundant: int = 0
    coverers: dict[RuleOrigin, None] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    # L7 made ineffective: the L3/L4 allow -> (ports, groups)
    shadowed: dict[RuleOrigin, tuple[set[str], list[Group]]] = field(default_factory=dict)

    def add(self, said: _Said, g: Group) -> None:
        self.maps += 1
        self.groups.append(g)
        if said.unreachable:
            self.unreachable += 1
            self.deniers.update(dict.fromkeys(said.deniers))
        if said.redundant:
            self.redundant += 1
            self.coverers.update(dict.fromkeys(said.coverers))
        for o, ports in said.shadowed.items():
            p, gs = self.shadowed.setdefault(o, (set(), []))
            p.update(ports)
            gs.append(g)


def _by_proto(rules: list[MapRule]) -> dict[int, list[MapRule]]:
    out: dict[int, list[MapRule]] = {}
    for r in rules:
        out.setdefault(r.port.proto, []).append(r)
    return out


def _candidates(idx: dict[int, list[MapRule]], r: MapRule) -> list[MapRule]:
    if r.port.proto == PROTO_ANY:
        return [x for lst in idx.values() for x in lst]
    return idx.get(r.port.proto, []) + idx.get(PROTO_ANY, [])


def _order(o: RuleOrigin) -> tuple[str, int, str]:
    return (o.file, o.line or 0, o.field)


def _unreachable(own: list[MapRule], idx: dict[int, list[MapRule]]) -> tuple[RuleOrigin, ...] | None:
    """The deny rules covering every allow entry of a rule, or None if some are not."""
    deniers: dict[RuleOrigin, None] = {}
    for r in own:
        covering = [x for x in _candidates(idx, r) if x.deny and port_covers(x.port, r.port)]
        ids: frozenset[int] | None = frozenset()
        for x in covering:
            if x.ids is None:
                ids = None
                break
            assert ids is not None
            ids = ids | x.ids
        if not (covering and _ids_within(r.ids, ids)):
            return None
        deniers.update((x.origin, None) for x in covering if x.origin is not None)
    return tuple(deniers)


def _redundant(origin: RuleOrigin, own: list[MapRule], cands: list[MapRule]) -> tuple[RuleOrigin, ...] | None:
    """The rules making every entry of a rule already (same kind, same L7 and auth, at
    least as broad; of two equal rules the later is the redundant one), or None."""
    coverers: dict[RuleOrigin, None] = {}
    for r in own:
        ids_cover: frozenset[int] | None = frozenset()
        for x in cands:
            if x.deny != r.deny or x.l7 != r.l7 or x.auth != r.auth or not port_covers(x.port, r.port):
                continue
            assert x.origin is not None
            broader = x.port != r.port or (x.ids is None and r.ids is not None) or (
                x.ids is not None and r.ids is not None and x.ids > r.ids)
            if not broader and _order(x.origin) > _order(origin):
                continue
            coverers[x.origin] = None
            if x.ids is None:
                ids_cover = None
                break
            assert ids_cover is not None
            ids_cover = ids_cover | x.ids
        if not _ids_within(r.ids, ids_cover):
            return None
    return tuple(coverers) or None


def _analyse(dp: DirectionPolicy, by_origin: dict[RuleOrigin, PolicyEntry]) -> dict[RuleOrigin, _Said]:
    rules = [r for r in dp.policy_map.rules() if r.origin is not None]
    idx = _by_proto(rules)
    mine: dict[RuleOrigin, list[MapRule]] = {}
    for r in rules:
        assert r.origin is not None
        mine.setdefault(r.origin, []).append(r)
    dd_rules = [x for x in dp.rules if x.default_deny]
    out: dict[RuleOrigin, _Said] = {}
    for origin, own in mine.items():
        entry = by_origin.get(origin)
        if entry is None:
            continue
        said = out[origin] = _Said()
        cands = [x for r in own for x in _candidates(idx, r) if x.origin != origin]
        if not entry.deny:
            deniers = _unreachable(own, idx)
            if deniers is not None:
                said.unreachable, said.deniers = True, deniers
        for r in own:
            if r.deny or r.l7 is None:
                continue
            for x in cands:
                if not x.deny and x.l7 is None and ports_overlap(x.port, r.port) and _ids_meet(x.ids, r.ids):
                    assert x.origin is not None
                    said.shadowed.setdefault(x.origin, set()).add(str(r.port))
        if entry.default_deny and not any(x is not entry for x in dd_rules):
            continue  # it is what turns default deny on here
        coverers = _redundant(origin, own, cands)
        if coverers is not None:
            said.redundant, said.coverers = True, coverers
    return out


def check_overlaps(ctx: LintContext) -> Iterator[Finding]:
    tallies: dict[RuleOrigin, _Tally] = {}
    by_origin = {e.origin: e for e in ctx.entries}
    done: dict[int, dict[RuleOrigin, _Said]] = {}  # per distinct map
    for g in ctx.groups:
        pol = ctx.policy(g)
        for dp in (pol.ingress, pol.egress):
            if not dp.enforced:
                continue
            said = done.get(id(dp))
            if said is None:
                said = done[id(dp)] = _analyse(dp, by_origin)
            for origin, s in said.items():
                tallies.setdefault(origin, _Tally(by_origin[origin])).add(s, g)
    for _, t in sorted(tallies.items(), key=lambda kv: _order(kv[0])):
        e = t.entry
        subjects = ctx.subjects(e)
        n = len([g for g in subjects if ctx.policy(g).direction(e.direction).enforced])
        pods = members(t.groups)
        if t.unreachable and t.unreachable == t.maps == n:
            deniers = ", ".join(str(o) for o in t.deniers)
            yield ctx.finding(
                CIL013, e,
                f"everything this rule allows is denied by {deniers}: it never allows anything (deny rules take precedence)",
                "remove the allow, or narrow the deny rule if the allow is wanted",
                endpoints=pods, related=[(f"denied by {o}", o) for o in t.deniers],
            )
            continue
        if t.redundant and t.redundant == t.maps == n:
            by = ", ".join(str(o) for o in t.coverers)
            yield ctx.finding(
                CIL014, e,
                f"redundant: everything this rule {'denies' if e.deny else 'allows'} for {some(pods)} is already "
                f"{'denied' if e.deny else 'allowed'} by {by}",
                "remove it, or keep it on purpose and ignore this finding inline",
                endpoints=pods, related=[(f"covered by {o}", o) for o in t.coverers],
            )
        for other, (ports, gs) in t.shadowed.items():
            shadow_pods = members(gs)
            k = next((i for i, ps in enumerate(e.ports or ()) if ps.l7 is not None), 0)
            yield ctx.finding(
                CIL012, e,
                f"the L7 rules on {', '.join(sorted(ports))} have no effect for the peers {other} allows at L3/L4 "
                f"(endpoints {some(shadow_pods)}): an L3/L4 allow for the same peer and port lets every request through",
                f"add the same L7 rules to {other}, or narrow its peers or ports",
                sub=("toPorts", k, "rules"), endpoints=shadow_pods, related=[(f"L3/L4 allow {other}", other)],
            )
    # CIL015: elements with endpoints to apply to, peers that select something, no entries.
    for e in ctx.entries:
        if e.origin in tallies or e.selects_nothing:
            continue
        groups = [g for g in ctx.subjects(e) if ctx.policy(g).direction(e.direction).enforced]
        if not groups:
            continue
        if e.peers and all(p.kind in ("endpoints", "nodes") and not p.is_wildcard and not ctx.engine.selected(p.selector) for p in e.peers):
            continue  # CIL005 names the selectors
        if e.peers and all(p.kind == "fqdn" for p in e.peers):
            continue  # toFQDNs select addresses only once DNS answers are seen
        named = [ps.named.name for ps in e.ports or () if ps.named is not None]
        why = (f"the named port(s) {', '.join(named)} match no container port of the endpoints involved"
               if named else "it resolves to no policy-map entry")
        yield ctx.finding(
            CIL015, e, f"this rule adds nothing to the policy of {some(members(groups))}: {why}",
            "check the port names against the pods' containerPorts, or remove the rule",
            endpoints=members(groups),
        )
