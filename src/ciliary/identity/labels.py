"""Cilium labels: (source, key, value) triples, and immutable label sets.

A label prints as `source:key=value` (`source:key` when the value is empty), like Cilium
(cilium: pkg/labels/label.go `Label.String`). Label sets are what identities are made of
and what selectors are matched against, so they precompute the lookups selectors need.

Contracts:
* `Label` and `LabelSet` are immutable and hashable: shared freely, and used as keys
  (identities, memos). Equality and hash depend on the labels only, not on the order they
  were given in; a set holds one value per (source, key) and rejects conflicting ones.
* `LabelSet`'s lookup tables are private but read directly by the compiled matchers of
  `ciliary.identity.selector` (a hot path); nothing writes to them after construction
  (the only late write is the `canonical` string, made on first use).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Label sources (cilium: pkg/labels/label_ext.go).
SOURCE_ANY: Final = "any"  # selector-only: matches a key from every source
SOURCE_K8S: Final = "k8s"
SOURCE_RESERVED: Final = "reserved"
SOURCE_CIDR: Final = "cidr"
SOURCE_CIDRGROUP: Final = "cidrgroup"
SOURCE_FQDN: Final = "fqdn"
SOURCE_UNSPEC: Final = "unspec"


def parse_cidr_key(key: str) -> IPNetwork | None:
    """The prefix a `cidr:` label key denotes, or None.

    Cilium writes IPv6 CIDR keys with `-` instead of `:` (`2001-db8--/32`) because `:`
    separates the source; both spellings are accepted. A bare address is a host prefix.
    """
    for text in (key, key.replace("-", ":")):
        try:
            return ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
    return None


def cidr_key(prefix: IPNetwork) -> str:
    """Canonical key of a CIDR label: the masked prefix in standard notation."""
    return str(prefix)


class Label(NamedTuple):
    """One label. Immutable and hashable; orders by (source, key, value).

    A NamedTuple rather than a dataclass: hashing, equality and ordering run in C, which
    matters when building label sets for thousands of pods.
    """

    source: str
    key: str
    value: str = ""

    def __str__(self) -> str:
        if self.value:
            return f"{self.source}:{self.key}={self.value}"
        return f"{self.source}:{self.key}"

    @classmethod
    def parse(cls, text: str, default_source: str = SOURCE_ANY) -> Label:
        """`[source:]key[=value]`, Cilium's short form (`$host` = `reserved:host`) included.

        Without a source the label gets `default_source` (`any`, as for selector keys;
        identity builders pass the real source). `cidr:` keys are normalised, so
        `cidr:2001-db8--/32` and `cidr:2001:db8::/32` are the same label.
        """
        source, rest = split_source(text)
        if source is None:
            source = default_source
        key, sep, value = rest.partition("=")
        if not sep:
            value = ""
        if source == SOURCE_CIDR:
            net = parse_cidr_key(key)
            if net is not None:
                key = cidr_key(net)
        return cls(source, key, value)

    @classmethod
    def cidr(cls, prefix: str | IPNetwork) -> Label:
        net = prefix if not isinstance(prefix, str) else ipaddress.ip_network(prefix, strict=False)
        return cls(SOURCE_CIDR, cidr_key(net))

    @classmethod
    def reserved(cls, name: str) -> Label:
        return cls(SOURCE_RESERVED, name)


def split_source(text: str) -> tuple[str | None, str]:
    """(source or None, rest) of `source:key...` (cilium: pkg/labels `ParseSource`).

    The source ends at the first `:`. `$name` and `reserved.name` are reserved labels.
    A CIDR key may itself contain `:` (IPv6); only the first `:` separates.
    """
    if text.startswith("$"):
        return SOURCE_RESERVED, text[1:]
    i = text.find(":")
    eq = text.find("=")
    if 0 <= eq < i:
        i = -1  # the colon is inside the value (`app=a:b`): no source given
    if i < 0:
        if text.startswith("reserved."):
            return SOURCE_RESERVED, text[len("reserved.") :]
        return None, text
    return text[:i], text[i + 1 :]


@dataclass(frozen=True, slots=True)
class CIDRInfo:
    """A CIDR label of a label set, pre-parsed for containment checks."""

    version: int
    network: int  # network address as int
    prefixlen: int
    value: str


class LabelSet:
    """An immutable, hashable set of labels with at most one label per (source, key).

    Iteration and `to_strings()` follow the canonical (source, key, value) order, so two
    sets with the same labels print and hash the same however they were built.
    """

    __slots__ = ("_by_key", "_by_sk", "_canonical", "_cidrs", "_hash", "_labels")

    _labels: tuple[Label, ...]
    _by_sk: dict[tuple[str, str], str]
    _by_key: dict[str, tuple[str, ...]]
    _cidrs: tuple[CIDRInfo, ...]
    _hash: int
    _canonical: str | None

    def __init__(self, labels: Iterable[Label] = ()) -> None:
        by_sk: dict[tuple[str, str], str] = {}
        for source, key, value in labels:
            old = by_sk.get((source, key))
            if old is not None and old != value:
                raise ValueError(f"conflicting values for label {source}:{key}: {old!r} and {value!r}")
            by_sk[(source, key)] = value
        ordered = tuple(sorted(Label(s, k, v) for (s, k), v in by_sk.items()))
        by_key: dict[str, tuple[str, ...]] = {}
        cidrs: list[CIDRInfo] = []
        for label in ordered:
            by_key[label.key] = (*by_key.get(label.key, ()), label.value)
            if label.source == SOURCE_CIDR:
                net = parse_cidr_key(label.key)
                if net is not None:
                    cidrs.append(
                        CIDRInfo(net.version, int(net.network_address), net.prefixlen, label.value)
                    )
        self._labels = ordered
        self._by_sk = by_sk
        self._by_key = by_key
        self._cidrs = tuple(cidrs)
        self._hash = hash(ordered)
        self._canonical = None

    # -- construction helpers -------------------------------------------------
    @classmethod
    def from_strings(cls, texts: Iterable[str], default_source: str = SOURCE_UNSPEC) -> LabelSet:
        """From `source:key=value` strings (Cilium's printed form)."""
        return cls(Label.parse(t, default_source) for t in texts)

    def union(self, other: Iterable[Label]) -> LabelSet:
        return LabelSet((*self._labels, *other))

    __or__ = union

    # -- queries -------------------------------------------------------------
    @property
    def labels(self) -> tuple[Label, ...]:
        return self._labels

    @property
    def cidrs(self) -> tuple[CIDRInfo, ...]:
        return self._cidrs

    def get(self, source: str, key: str) -> str | None:
        """Value of the label with exactly this source and key."""
        return self._by_sk.get((source, key))

    def has(self, source: str, key: str) -> bool:
        return (source, key) in self._by_sk

    def values_for_key(self, key: str) -> tuple[str, ...]:
        """Values of `key` from every source (what an `any:` selector key sees)."""
        return self._by_key.get(key, ())

    def has_source(self, source: str) -> bool:
        return any(label.source == source for label in self._labels)

    def has_reserved(self, name: str) -> bool:
        return (SOURCE_RESERVED, name) in self._by_sk

    def to_strings(self) -> list[str]:
        return [str(label) for label in self._labels]

    @property
    def canonical(self) -> str:
        """One string naming this set (Cilium's kvstore form `src:key=value;`...)."""
        if self._canonical is None:
            self._canonical = "".join(f"{lb.source}:{lb.key}={lb.value};" for lb in self._labels)
        return self._canonical

    # -- protocol ------------------------------------------------------------
    def __iter__(self) -> Iterator[Label]:
        return iter(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def __bool__(self) -> bool:
        return bool(self._labels)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Label):
            return self._by_sk.get((item.source, item.key)) == item.value
        return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSet):
            return NotImplemented
        return self._hash == other._hash and self._labels == other._labels

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return ",".join(self.to_strings())

    def __repr__(self) -> str:
        return f"LabelSet({self.to_strings()!r})"
