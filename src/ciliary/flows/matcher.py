"""How FlowFilters combine into one predicate, as hubble's pkg/hubble/filters/filters.go does
(BuildFilterList, Apply).

Rules and contracts:

* Inside one FlowFilter every set field must match (AND) and any value of a field may match
  (OR, inside the field's predicate); a flow passes iff it matches one allowlist filter (or
  there is none) and no denylist filter.
* `compile_flow_filter` runs hubble's whole-filter checks first, then builds each set field by
  its row of `predicates.FIELD_COMPILERS`, cheapest first. FilterErrors are raised at compile
  time, never while matching.
* The result is a plain closure over immutable data: pure, shareable, and on the hot path
  (called once per flow), so AND/OR of up to three predicates is unrolled and conjuncts common
  to every allowlist filter are evaluated once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ciliary.flows.enums import MESSAGE_TYPE_ACCESS_LOG
from ciliary.flows.flowfilter import JSON, FilterError, FlowFilter
from ciliary.flows.predicates import FIELD_COMPILERS, Predicate


@dataclass(frozen=True)
class _Pred:
    """One compiled field; `key` is (field, frozen values), so that equal conjuncts of
    several filters are recognised and hoisted."""

    cost: int
    key: tuple[Any, ...]
    fn: Predicate


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


_HTTP_FIELDS: Final = ("http_status_code", "http_method", "http_path", "http_url", "http_header")


def _check_supported(ff: FlowFilter) -> None:
    """hubble's checks of a whole FlowFilter, before any field is compiled."""
    if ff.cel_expression:
        raise FilterError("--cel-expression filters are not supported")
    if (
        any(getattr(ff, name) for name in _HTTP_FIELDS)
        and ff.event_type
        and not any(int(t.get("type", 0) or 0) == MESSAGE_TYPE_ACCESS_LOG for t in ff.event_type)
    ):
        raise FilterError(
            "filtering by http fields requires the event type filter to only match 'l7' events"
        )


def compile_flow_filter(ff: FlowFilter) -> list[_Pred]:
    """The predicates of one FlowFilter (all must hold). Raises FilterError like hubble."""
    _check_supported(ff)
    preds = [
        _Pred(cost, (name, _freeze(values)), build(values))
        for name, cost, build in FIELD_COMPILERS
        if (values := getattr(ff, name))
    ]
    preds.sort(key=lambda p: p.cost)
    return preds


def _join(fns: Sequence[Predicate], every: bool) -> Predicate:
    """AND (`every`) or OR of predicates; up to three are unrolled, as the hot path calls the
    result once per flow."""
    if not fns:
        return lambda f: every
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return (lambda f: a(f) and b(f)) if every else (lambda f: a(f) or b(f))
    if len(fns) == 3:
        a, b, c = fns
        return (lambda f: a(f) and b(f) and c(f)) if every else (lambda f: a(f) or b(f) or c(f))
    tup = tuple(fns)
    if every:
        return lambda f: all(p(f) for p in tup)
    return lambda f: any(p(f) for p in tup)


def _all(fns: Sequence[Predicate]) -> Predicate:
    return _join(fns, every=True)


def _any(fns: Sequence[Predicate]) -> Predicate:
    return _join(fns, every=False)


def _match_one(compiled: list[list[_Pred]]) -> Predicate:
    """OR of ANDs, with conjuncts common to every filter hoisted out (evaluated once)."""
    if not compiled:
        return lambda f: True
    common_keys = set.intersection(*({p.key for p in preds} for preds in compiled))
    common: dict[tuple[Any, ...], _Pred] = {}
    residual: list[list[_Pred]] = []
    for preds in compiled:
        rest = []
        for p in preds:
            if p.key in common_keys:
                common.setdefault(p.key, p)
            else:
                rest.append(p)
        residual.append(rest)
    head = [p.fn for p in sorted(common.values(), key=lambda p: p.cost)]
    if any(not r for r in residual):
        return _all(head)
    alternatives = [_all([p.fn for p in r]) for r in residual]
    return _all([*head, _any(alternatives)])


class FlowMatcher:
    """`filters.Apply(allow, deny)`: matches one allowlist filter (or none given) and no
    denylist filter. Call it on a flow's JSON dict (`Flow.raw`) or a `Flow`."""

    __slots__ = ("_fn", "allow", "deny")

    def __init__(self, allow: Sequence[FlowFilter] = (), deny: Sequence[FlowFilter] = ()) -> None:
        self.allow = list(allow)
        self.deny = list(deny)
        allow_fn = _match_one([compile_flow_filter(ff) for ff in self.allow])
        deny_compiled = [compile_flow_filter(ff) for ff in self.deny]
        if not self.allow and not deny_compiled:
            self._fn: Predicate = lambda f: True
        elif not deny_compiled:
            self._fn = allow_fn
        else:
            deny_fn = _any([_all([p.fn for p in preds]) for preds in deny_compiled])
            if not self.allow:
                self._fn = lambda f: not deny_fn(f)
            else:
                self._fn = lambda f: allow_fn(f) and not deny_fn(f)

    @property
    def predicate(self) -> Predicate:
        """The compiled predicate over flow dicts (the fastest way to call the matcher)."""
        return self._fn

    def __call__(self, flow: JSON | Any) -> bool:
        raw = flow if isinstance(flow, dict) else flow.raw
        return self._fn(raw)

    @property
    def is_trivial(self) -> bool:
        return not self.allow and not self.deny
