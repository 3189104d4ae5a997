"""The rule repository: which rules select an endpoint, per direction (pkg/policy/repository.go).

Contracts: the entries are fixed at construction. `rules_for` is memoised for the
repository's life, keyed by (identity labels, namespace, host or not): all that a subject
selector and the namespace scoping can see, so the memo never changes an answer. Its lists
(clusterwide rules first, then the namespace's, each in load order) are shared: read-only.
"""

from __future__ import annotations

from collections.abc import Iterable

from ciliary.identity.labels import LabelSet
from ciliary.policy.rules import EGRESS, INGRESS, PolicyEntry


class Repository:
    """All rules, indexed by namespace; CNP/KNP rules are only candidates in their namespace."""

    def __init__(self, entries: Iterable[PolicyEntry]) -> None:
        self.entries = list(entries)
        self._by_ns: dict[str, list[PolicyEntry]] = {}
        self._clusterwide: list[PolicyEntry] = []
        self._host: list[PolicyEntry] = []
        for e in self.entries:
            if e.host:
                self._host.append(e)
            elif e.namespace is None:
                self._clusterwide.append(e)
            else:
                self._by_ns.setdefault(e.namespace, []).append(e)
        self._cache: dict[tuple[LabelSet, str | None, bool], tuple[list[PolicyEntry], list[PolicyEntry]]] = {}

    def rules_for(
        self, labels: LabelSet, namespace: str | None, is_host: bool
    ) -> tuple[list[PolicyEntry], list[PolicyEntry]]:
        """(ingress rules, egress rules) selecting an endpoint with these identity labels."""
        key = (labels, namespace, is_host)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if is_host:
            # nodeSelector rules apply only to host endpoints; endpointSelector rules never do.
            candidates = self._host
        else:
            candidates = self._clusterwide + (self._by_ns.get(namespace, []) if namespace else [])
        ingress: list[PolicyEntry] = []
        egress: list[PolicyEntry] = []
        for e in candidates:
            if e.subject.matches(labels):
                (ingress if e.direction == INGRESS else egress).append(e)
        self._cache[key] = (ingress, egress)
        return ingress, egress

    def cidr_prefixes(self) -> set[str]:
        out: set[str] = set()
        for e in self.entries:
            for p in e.peers or ():
                if p.cidr:
                    out.add(p.cidr)
                out.update(p.excepts)
        return out


__all__ = ["EGRESS", "INGRESS", "Repository"]
