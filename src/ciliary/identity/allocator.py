"""Numeric security identities: one per distinct label set.

* reserved label sets keep their reserved numbers (1-10);
* any set carrying `reserved:host` is the host identity 1 (Cilium merges extra labels,
  e.g. `reserved:kube-apiserver`, into identity 1 instead of allocating a new one);
* pod label sets get 256, 257, ... (cluster scope);
* sets with `cidr:`/`fqdn:`/`cidrgroup:` labels get node-local numbers from 16777217.

Numbers depend on allocation order; `allocate_all` sorts new label sets by their canonical
string first, so the same cluster snapshot always gets the same numbers.

Contracts:
* An `Identity` is frozen and shared (endpoints, ipcache entries, verdicts).
* The allocator only grows: a label set keeps its number for the allocator's life, and
  allocating it again returns the same `Identity`. A set with `reserved:host` and more is
  not stored: it is identity 1 as some node sees it (`host_with`), made on each call.
* One allocator is shared by everything built for one engine (endpoints, ipcaches, CIDR
  and FQDN identities), so numbers are unique within it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ciliary.identity.labels import (
    SOURCE_CIDR,
    SOURCE_CIDRGROUP,
    SOURCE_FQDN,
    IPNetwork,
    Label,
    LabelSet,
)
from ciliary.identity.reserved import (
    HOST,
    MAX_ALLOCATION_IDENTITY,
    MIN_ALLOCATION_IDENTITY,
    MIN_LOCAL_IDENTITY,
    NAME_HOST,
    RESERVED,
    RESERVED_BY_LABELS,
    is_local,
    is_reserved,
    world_id,
    world_label,
)

_LOCAL_SOURCES = frozenset({SOURCE_CIDR, SOURCE_FQDN, SOURCE_CIDRGROUP})


@dataclass(frozen=True, slots=True)
class Identity:
    """A numeric security identity and the labels it stands for."""

    id: int
    labels: LabelSet

    @property
    def is_reserved(self) -> bool:
        return is_reserved(self.id)

    @property
    def is_local(self) -> bool:
        """Node-local (CIDR/FQDN) identity."""
        return is_local(self.id)

    def __str__(self) -> str:
        return f"{self.id} ({self.labels})"


class IdentityAllocator:
    """Label set -> Identity, deterministic for a given allocation order."""

    def __init__(self, *, dual_stack: bool = False) -> None:
        self.dual_stack = dual_stack
        self._by_id: dict[int, Identity] = {}
        self._by_labels: dict[LabelSet, Identity] = {}
        for r in RESERVED.values():
            ident = Identity(r.id, r.labels)
            self._by_id[r.id] = ident
            if r.id in RESERVED_BY_LABELS.values():  # identity 0 has no label set
                self._by_labels[r.labels] = ident
        self._next_cluster = MIN_ALLOCATION_IDENTITY
        self._next_local = MIN_LOCAL_IDENTITY

    # -- reserved -----------------------------------------------------------
    def reserved(self, num: int) -> Identity:
        """Reserved identity by number (KeyError for unknown numbers)."""
        if num not in RESERVED:
            raise KeyError(f"{num} is not a reserved identity")
        return self._by_id[num]

    @property
    def host(self) -> Identity:
        return self._by_id[HOST]

    def world(self, version: int = 4) -> Identity:
        """World identity for an address family (2, or 9/10 in dual-stack mode)."""
        return self._by_id[world_id(version, self.dual_stack)]

    def host_with(self, extra: Iterable[Label]) -> Identity:
        """Identity 1 with extra labels (e.g. the apiserver runs on the local node).

        Does not change the allocator: which labels the host carries depends on the
        observing node, so callers (the ipcache) keep this view for themselves.
        """
        return Identity(HOST, self.host.labels.union(extra))

    # -- allocation ---------------------------------------------------------
    def lookup(self, labels: LabelSet) -> Identity | None:
        return self._by_labels.get(labels)

    def get(self, num: int) -> Identity | None:
        return self._by_id.get(num)

    def allocate(self, labels: LabelSet) -> Identity:
        """The identity of `labels`, allocating a new number if needed."""
        found = self._by_labels.get(labels)
        if found is not None:
            return found
        if labels.has_reserved(NAME_HOST):
            return Identity(HOST, labels)
        if any(lb.source in _LOCAL_SOURCES for lb in labels):
            num = self._next_local
            self._next_local += 1
        else:
            num = self._next_cluster
            if num > MAX_ALLOCATION_IDENTITY:
                raise RuntimeError("cluster identity space exhausted (more than 65280 label sets)")
            self._next_cluster += 1
        ident = Identity(num, labels)
        self._by_id[num] = ident
        self._by_labels[labels] = ident
        return ident

    def allocate_all(self, label_sets: Iterable[LabelSet]) -> list[Identity]:
        """Identities for many label sets (result in input order); new sets are numbered
        in sorted order of their canonical strings so the outcome is order independent."""
        sets = list(label_sets)
        for ls in sorted({ls for ls in sets if ls not in self._by_labels}, key=lambda s: s.canonical):
            self.allocate(ls)
        return [self.allocate(ls) for ls in sets]

    def cidr_labels(self, prefix: str | IPNetwork) -> LabelSet:
        """`cidr:<prefix>` + the family's world label (cilium: `GetCIDRLabels`)."""
        net = ipaddress.ip_network(prefix, strict=False) if isinstance(prefix, str) else prefix
        world = world_label(net.version, self.dual_stack)
        if net.prefixlen == 0:
            # 0.0.0.0/0 and ::/0 are just "world".
            return LabelSet([world])
        return LabelSet([Label.cidr(net), world])

    def cidr_identity(self, prefix: str | IPNetwork) -> Identity:
        return self.allocate(self.cidr_labels(prefix))

    # -- listing ------------------------------------------------------------
    def identities(self) -> list[Identity]:
        """Every known identity (reserved 0-10 included), sorted by number."""
        return [self._by_id[k] for k in sorted(self._by_id)]

    def __iter__(self) -> Iterator[Identity]:
        return iter(self.identities())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, num: object) -> bool:
        return num in self._by_id
