"""`ciliary identities --cluster FILE`: the security identities of a cluster snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ciliary.cluster.endpoints import ClusterIdentities
from ciliary.cluster.model import Cluster
from ciliary.identity.reserved import HOST, RESERVED, UNKNOWN


@dataclass
class IdentityRow:
    id: int
    labels: list[str]
    endpoints: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "labels": list(self.labels), "endpoints": list(self.endpoints)}


def list_identities(cluster: Cluster, *, dual_stack: bool | None = None) -> list[IdentityRow]:
    """Reserved identities 1-10 and every pod identity, sorted by number.

    Pod rows list the pods (`namespace/name`) sharing the identity; the host row lists
    the nodes (`node/<name>`) and host-network pods; other reserved rows list nothing.
    """
    ci = ClusterIdentities.build(cluster, dual_stack=dual_stack)
    rows: dict[int, IdentityRow] = {}
    for num in sorted(RESERVED):
        if num == UNKNOWN:
            continue
        rows[num] = IdentityRow(num, ci.allocator.reserved(num).labels.to_strings())
    rows[HOST].endpoints = [ep.key for ep in ci.host_endpoints] + [p.key for p in ci.host_network_pods()]
    for ep in ci.endpoints:
        row = rows.get(ep.identity.id)
        if row is None:
            row = rows[ep.identity.id] = IdentityRow(ep.identity.id, ep.identity.labels.to_strings())
        row.endpoints.append(ep.key)
    return [rows[k] for k in sorted(rows)]
