"""Compiled Kubernetes label selectors over Cilium labels (Cilium's EndpointSelector).

Semantics (cilium: pkg/labels `Label.HasKey`, `Labels.getByKey`; k8s.io/apimachinery
labels.Requirement.Matches):

* a key `src:name` has source `src`; a key without a source has source `any`, which
  matches a label of that name from any source; a concrete source matches only itself;
* a `cidr:` key matches by prefix containment: `cidr:10.0.0.0/8` matches the identity
  label `cidr:10.1.2.3/32` (never the reverse); IPv6 keys may be written with `-`;
* In / NotIn / Exists / DoesNotExist exactly as Kubernetes: NotIn and DoesNotExist match
  when the key is absent; matchLabels `k: v` is `k In (v)`;
* the empty selector matches every label set.

Each requirement is compiled once into a small closure, so `matches` costs a few dict
lookups. For "which of these N identities does this selector select", `LabelIndex`
answers with set operations on an inverted index instead of N matches.

Contracts:
* `Requirement` (frozen) and `Selector` are immutable and hashable; `with_requirements`,
  `with_match_label` and `without_key` return new selectors. Equal selectors select the
  same label sets, so a selector is a sound memo key.
* Matching reads `LabelSet`'s private tables directly (the hot path).
* `LabelIndex.select` memoises one frozenset per selector for the index's life; those sets
  are shared (policy maps hold them) and never changed. `add` is the index's one
  mutation: a new label set can only join selections, so it replaces the memoised answers
  it joins with new sets and returns their selectors, for the caller to recompile what
  used them (`PolicyEngine.add_identity`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ciliary.identity.labels import (
    SOURCE_ANY,
    SOURCE_CIDR,
    Label,
    LabelSet,
    cidr_key,
    parse_cidr_key,
    split_source,
)

OP_IN: Final = "In"
OP_NOT_IN: Final = "NotIn"
OP_EXISTS: Final = "Exists"
OP_DOES_NOT_EXIST: Final = "DoesNotExist"
OPERATORS: Final = (OP_IN, OP_NOT_IN, OP_EXISTS, OP_DOES_NOT_EXIST)

Matcher = Callable[[LabelSet], bool]
SelectorPath = tuple[str | int, ...]


class SelectorError(ValueError):
    """A selector that Kubernetes/Cilium would reject; `path` is inside the selector dict."""

    def __init__(self, path: SelectorPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def parse_key(text: str) -> tuple[str, str]:
    """Selector key -> (source, key): no source means `any`; CIDR keys are normalised."""
    source, key = split_source(text)
    if source is None or source == "":
        source = SOURCE_ANY
    if source == SOURCE_CIDR:
        net = parse_cidr_key(key)
        if net is not None:
            key = cidr_key(net)
    return source, key


@dataclass(frozen=True, slots=True, order=True)
class Requirement:
    """One requirement: `source:key <operator> values`. Values are sorted and unique."""

    source: str
    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def make(
        cls, key: str, operator: str, values: Iterable[str] = (), *, source: str | None = None
    ) -> Requirement:
        """Build and check a requirement. `key` may carry a source unless `source` is given."""
        if source is None:
            source, key = parse_key(key)
        elif source == SOURCE_CIDR:
            net = parse_cidr_key(key)
            key = cidr_key(net) if net is not None else key
        vals = tuple(sorted(set(values)))
        if operator not in OPERATORS:
            raise SelectorError(
                ("operator",), f"unsupported operator {operator!r}: must be one of {', '.join(OPERATORS)}"
            )
        if operator in (OP_IN, OP_NOT_IN) and not vals:
            raise SelectorError(("values",), f"values must be non-empty for operator {operator}")
        if operator in (OP_EXISTS, OP_DOES_NOT_EXIST) and vals:
            raise SelectorError(("values",), f"values must be empty for operator {operator}")
        return cls(source, key, operator, vals)

    @property
    def full_key(self) -> str:
        return f"{self.source}:{self.key}"

    def __str__(self) -> str:
        k = self.full_key
        if self.operator == OP_IN:
            if len(self.values) == 1:
                return f"{k}={self.values[0]}"
            return f"{k} in ({','.join(self.values)})"
        if self.operator == OP_NOT_IN:
            return f"{k} notin ({','.join(self.values)})"
        if self.operator == OP_EXISTS:
            return k
        return f"!{k}"

    def compile(self) -> Matcher:
        """A closure deciding this requirement for one label set."""
        if self.source == SOURCE_CIDR:
            net = parse_cidr_key(self.key)
            if net is not None:
                return _cidr_matcher(self, net.version, int(net.network_address), net.prefixlen, net.max_prefixlen)
        if self.source == SOURCE_ANY:
            return _any_matcher(self)
        return _exact_matcher(self)


def _exact_matcher(req: Requirement) -> Matcher:
    sk = (req.source, req.key)
    op = req.operator
    if op == OP_EXISTS:
        return lambda ls: sk in ls._by_sk
    if op == OP_DOES_NOT_EXIST:
        return lambda ls: sk not in ls._by_sk
    if len(req.values) == 1:
        only = req.values[0]
        if op == OP_IN:
            return lambda ls: ls._by_sk.get(sk) == only
        return lambda ls: ls._by_sk.get(sk) != only  # absent (None) also matches NotIn
    values = frozenset(req.values)
    if op == OP_IN:
        return lambda ls: ls._by_sk.get(sk) in values
    return lambda ls: ls._by_sk.get(sk) not in values


def _any_matcher(req: Requirement) -> Matcher:
    key = req.key
    op = req.operator
    if op == OP_EXISTS:
        return lambda ls: key in ls._by_key
    if op == OP_DOES_NOT_EXIST:
        return lambda ls: key not in ls._by_key
    empty: tuple[str, ...] = ()
    if len(req.values) == 1:
        only = req.values[0]
        if op == OP_IN:
            return lambda ls: only in ls._by_key.get(key, empty)
        return lambda ls: only not in ls._by_key.get(key, empty)
    values = frozenset(req.values)
    if op == OP_IN:
        return lambda ls: not values.isdisjoint(ls._by_key.get(key, empty))
    return lambda ls: values.isdisjoint(ls._by_key.get(key, empty))


def _cidr_matcher(req: Requirement, version: int, network: int, plen: int, bits: int) -> Matcher:
    mask = ((1 << bits) - 1) ^ ((1 << (bits - plen)) - 1)
    op = req.operator
    values = frozenset(req.values)
    check_value = op in (OP_IN, OP_NOT_IN)

    def contained(ls: LabelSet) -> bool:
        for c in ls._cidrs:
            if (
                c.version == version
                and c.prefixlen >= plen
                and (c.network & mask) == network
                and (not check_value or c.value in values)
            ):
                return True
        return False

    if op in (OP_IN, OP_EXISTS):
        return contained
    return lambda ls: not contained(ls)


class Selector:
    """An immutable compiled label selector. Hashable; `str()` is canonical.

    `match_labels` and `expressions` are kept apart only so that `with_match_label` can
    override a matchLabels entry like Cilium's `EndpointSelector.AddMatch`; matching and
    `str()` use the merged, sorted `requirements`. Two selectors with the same `str()`
    select exactly the same label sets.
    """

    __slots__ = ("_hash", "_matchers", "_str", "expressions", "match_labels", "requirements")

    match_labels: tuple[tuple[str, str, str], ...]
    expressions: tuple[Requirement, ...]
    requirements: tuple[Requirement, ...]
    _matchers: tuple[Matcher, ...]
    _str: str
    _hash: int

    def __init__(
        self,
        match_labels: Iterable[tuple[str, str, str]] = (),
        expressions: Iterable[Requirement] = (),
    ) -> None:
        ml: dict[tuple[str, str], str] = {}
        for source, key, value in match_labels:
            ml[(source, key)] = value
        self.match_labels = tuple(sorted((s, k, v) for (s, k), v in ml.items()))
        self.expressions = tuple(sorted(set(expressions)))
        reqs = {Requirement(s, k, OP_IN, (v,)) for s, k, v in self.match_labels}
        reqs.update(self.expressions)
        self.requirements = tuple(sorted(reqs))
        # Cheap exact checks first so most non-matching sets are rejected early.
        ordered = sorted(self.requirements, key=lambda r: (r.source == SOURCE_CIDR, r.source == SOURCE_ANY))
        self._matchers = tuple(r.compile() for r in ordered)
        self._str = ", ".join(str(r) for r in self.requirements) or "{}"
        self._hash = hash((self.match_labels, self.expressions))

    # -- construction --------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selector:
        """From `{matchLabels: {...}, matchExpressions: [{key, operator, values}]}`.

        Raises SelectorError (with the path inside `data`) for anything Kubernetes'
        LabelSelector conversion would reject.
        """
        if not isinstance(data, Mapping):
            raise SelectorError((), "a label selector must be a mapping")
        for field in data:
            if field not in ("matchLabels", "matchExpressions"):
                raise SelectorError((field,), f"unknown field {field!r} in label selector")
        labels: list[tuple[str, str, str]] = []
        raw_labels = data.get("matchLabels") or {}
        if not isinstance(raw_labels, Mapping):
            raise SelectorError(("matchLabels",), "matchLabels must be a mapping of strings")
        for k, v in raw_labels.items():
            if not isinstance(k, str) or not k:
                raise SelectorError(("matchLabels",), f"label key must be a non-empty string, got {k!r}")
            if not isinstance(v, str):
                raise SelectorError(("matchLabels", k), f"label value must be a string, got {v!r}")
            source, key = parse_key(k)
            labels.append((source, key, v))
        exprs: list[Requirement] = []
        raw_exprs = data.get("matchExpressions") or []
        if not isinstance(raw_exprs, Sequence) or isinstance(raw_exprs, str):
            raise SelectorError(("matchExpressions",), "matchExpressions must be a list")
        for i, e in enumerate(raw_exprs):
            at: SelectorPath = ("matchExpressions", i)
            if not isinstance(e, Mapping):
                raise SelectorError(at, "a match expression must be a mapping")
            ekey = e.get("key")
            op = e.get("operator")
            vals = e.get("values") or []
            if not isinstance(ekey, str) or not ekey:
                raise SelectorError((*at, "key"), "key must be a non-empty string")
            if not isinstance(op, str):
                raise SelectorError((*at, "operator"), "operator must be a string")
            if not isinstance(vals, Sequence) or isinstance(vals, str):
                raise SelectorError((*at, "values"), "values must be a list of strings")
            for j, v in enumerate(vals):
                if not isinstance(v, str):
                    raise SelectorError((*at, "values", j), f"value must be a string, got {v!r}")
            try:
                exprs.append(Requirement.make(ekey, op, vals))
            except SelectorError as err:
                raise SelectorError((*at, *err.path), err.message) from None
        return cls(labels, exprs)

    @classmethod
    def from_labels(cls, *labels: Label) -> Selector:
        """matchLabels selecting exactly these labels (Cilium's `NewESFromLabels`)."""
        return cls((lb.source, lb.key, lb.value) for lb in labels)

    @classmethod
    def everything(cls) -> Selector:
        return _EVERYTHING

    def with_requirements(self, *requirements: Requirement) -> Selector:
        """A new selector with `requirements` ANDed in (e.g. namespace injection)."""
        return Selector(self.match_labels, (*self.expressions, *requirements))

    def with_match_label(self, source: str, key: str, value: str) -> Selector:
        """matchLabels[source:key] = value, replacing an existing entry (Cilium `AddMatch`)."""
        kept = [(s, k, v) for s, k, v in self.match_labels if (s, k) != (source, key)]
        return Selector((*kept, (source, key, value)), self.expressions)

    def without_key(self, source: str, key: str) -> Selector:
        """A new selector with every requirement on exactly `source:key` removed."""
        return Selector(
            [(s, k, v) for s, k, v in self.match_labels if (s, k) != (source, key)],
            [r for r in self.expressions if (r.source, r.key) != (source, key)],
        )

    # -- inspection (the policy layer's namespace-injection rules use these) --
    def get_match_label(self, source: str, key: str) -> str | None:
        for s, k, v in self.match_labels:
            if (s, k) == (source, key):
                return v
        return None

    def has_key(self, source: str, key: str) -> bool:
        """Whether any requirement (any operator) constrains exactly `source:key`."""
        return any(r.source == source and r.key == key for r in self.requirements)

    def has_key_prefix(self, source: str, prefix: str) -> bool:
        return any(r.source == source and r.key.startswith(prefix) for r in self.requirements)

    def has_source(self, source: str) -> bool:
        return any(r.source == source for r in self.requirements)

    @property
    def is_empty(self) -> bool:
        """True for `{}`: selects every label set."""
        return not self.requirements

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = {f"{s}:{k}": v for s, k, v in self.match_labels}
        if self.expressions:
            out["matchExpressions"] = [
                {"key": r.full_key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
                for r in self.expressions
            ]
        return out

    # -- matching -------------------------------------------------------------
    def matches(self, labels: LabelSet) -> bool:
        # A plain loop: measurably faster than all(<genexpr>) on this hot path.
        for m in self._matchers:  # noqa: SIM110
            if not m(labels):
                return False
        return True

    __call__ = matches

    # -- protocol -------------------------------------------------------------
    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return f"Selector({self._str!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selector):
            return NotImplemented
        return self.match_labels == other.match_labels and self.expressions == other.expressions

    def __hash__(self) -> int:
        return self._hash


_EVERYTHING = Selector()


class LabelIndex:
    """Inverted index over many label sets: `select(selector)` -> ids, by set algebra.

    Gives the same answer as `[i for i, ls in items if selector.matches(ls)]`, but costs a
    few dict lookups and set operations per requirement instead of one match per item.
    Results are cached per selector; `add` updates the cached ones it changes.
    """

    def __init__(self, items: Mapping[int, LabelSet] | Iterable[tuple[int, LabelSet]] = ()) -> None:
        self._items: dict[int, LabelSet] = {}
        self._all: set[int] = set()
        self._by_sk: dict[tuple[str, str], dict[str, set[int]]] = {}
        self._sk_any: dict[tuple[str, str], set[int]] = {}
        self._by_key: dict[str, dict[str, set[int]]] = {}
        self._key_any: dict[str, set[int]] = {}
        self._with_cidr: dict[int, LabelSet] = {}
        self._cache: dict[Selector, frozenset[int]] = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for ident, labels in pairs:
            self.add(ident, labels)

    def add(self, ident: int, labels: LabelSet) -> list[Selector]:
        """Index one more identity; returns the cached selectors that now select it (a new
        identity changes a selection only by joining it, so the cache is updated in place)."""
        if ident in self._items:
            raise ValueError(f"id {ident} is already indexed")
        grown: list[Selector] = []
        for sel, ids in list(self._cache.items()):
            if sel.matches(labels):
                self._cache[sel] = ids | {ident}
                grown.append(sel)
        self._items[ident] = labels
        self._all.add(ident)
        for lb in labels:
            sk = (lb.source, lb.key)
            self._by_sk.setdefault(sk, {}).setdefault(lb.value, set()).add(ident)
            self._sk_any.setdefault(sk, set()).add(ident)
            self._by_key.setdefault(lb.key, {}).setdefault(lb.value, set()).add(ident)
            self._key_any.setdefault(lb.key, set()).add(ident)
        if labels.cidrs:
            self._with_cidr[ident] = labels
        return grown

    def __len__(self) -> int:
        return len(self._items)

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(self._all)

    def labels(self, ident: int) -> LabelSet:
        return self._items[ident]

    def select(self, selector: Selector) -> frozenset[int]:
        cached = self._cache.get(selector)
        if cached is not None:
            return cached
        positive: list[set[int]] = []
        negative: list[set[int]] = []
        for req in selector.requirements:
            pos, ids = self._requirement(req)
            (positive if pos else negative).append(ids)
        if positive:
            positive.sort(key=len)
            result = set(positive[0])
            for s in positive[1:]:
                result &= s
                if not result:
                    break
        else:
            result = set(self._all)
        for s in negative:
            if not result:
                break
            result -= s
        out = frozenset(result)
        self._cache[selector] = out
        return out

    def _requirement(self, req: Requirement) -> tuple[bool, set[int]]:
        """(True, ids matching) or (False, ids NOT matching) for one requirement."""
        op = req.operator
        if req.source == SOURCE_CIDR and parse_cidr_key(req.key) is not None:
            m = req.compile()
            if op in (OP_IN, OP_EXISTS):
                return True, {i for i, ls in self._with_cidr.items() if m(ls)}
            return False, {i for i, ls in self._with_cidr.items() if not m(ls)}
        if req.source == SOURCE_ANY:
            by_value = self._by_key.get(req.key, {})
            exists = self._key_any.get(req.key, set())
        else:
            sk = (req.source, req.key)
            by_value = self._by_sk.get(sk, {})
            exists = self._sk_any.get(sk, set())
        if op == OP_EXISTS:
            return True, exists
        if op == OP_DOES_NOT_EXIST:
            return False, exists
        hit: set[int] = set()
        for v in req.values:
            hit |= by_value.get(v, set())
        return op == OP_IN, hit
