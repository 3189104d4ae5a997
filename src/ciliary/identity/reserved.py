"""Cilium's reserved security identities 0-10 (cilium: pkg/identity/numericidentity.go).

Also the numbering ranges (cluster scope from 256, node-local with bit 24 set). Constants
only: `RESERVED` and the tables derived from it are shared and must not be changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ciliary.identity.labels import SOURCE_RESERVED, Label, LabelSet

UNKNOWN: Final = 0
HOST: Final = 1
WORLD: Final = 2
UNMANAGED: Final = 3
HEALTH: Final = 4
INIT: Final = 5
REMOTE_NODE: Final = 6
KUBE_APISERVER: Final = 7
INGRESS: Final = 8
WORLD_IPV4: Final = 9
WORLD_IPV6: Final = 10

# First identity handed out to label sets of pods (cilium: MinimalAllocationIdentity).
MIN_ALLOCATION_IDENTITY: Final = 256
# Highest cluster-scope identity with cluster id 0 (bits 16-23 carry the clustermesh id).
MAX_ALLOCATION_IDENTITY: Final = 65535
# Node-local identities (CIDR, FQDN) have bit 24 set; the first one handed out.
LOCAL_IDENTITY_FLAG: Final = 1 << 24
MIN_LOCAL_IDENTITY: Final = LOCAL_IDENTITY_FLAG + 1

# Names double as the `reserved:` label keys.
NAME_UNKNOWN: Final = "unknown"
NAME_HOST: Final = "host"
NAME_WORLD: Final = "world"
NAME_UNMANAGED: Final = "unmanaged"
NAME_HEALTH: Final = "health"
NAME_INIT: Final = "init"
NAME_REMOTE_NODE: Final = "remote-node"
NAME_KUBE_APISERVER: Final = "kube-apiserver"
NAME_INGRESS: Final = "ingress"
NAME_WORLD_IPV4: Final = "world-ipv4"
NAME_WORLD_IPV6: Final = "world-ipv6"
NAME_NONE: Final = "none"  # the `none` entity's label; nothing ever carries it


def reserved_label(name: str) -> Label:
    return Label(SOURCE_RESERVED, name)


@dataclass(frozen=True, slots=True)
class ReservedIdentity:
    id: int
    name: str
    labels: LabelSet


def _make(num: int, name: str, *names: str) -> ReservedIdentity:
    return ReservedIdentity(num, name, LabelSet(reserved_label(n) for n in names))


RESERVED: Final[dict[int, ReservedIdentity]] = {
    r.id: r
    for r in (
        # Identity 0 has no labels: it is the policy-map wildcard, never a real peer.
        ReservedIdentity(UNKNOWN, NAME_UNKNOWN, LabelSet()),
        _make(HOST, NAME_HOST, NAME_HOST),
        _make(WORLD, NAME_WORLD, NAME_WORLD),
        _make(UNMANAGED, NAME_UNMANAGED, NAME_UNMANAGED),
        _make(HEALTH, NAME_HEALTH, NAME_HEALTH),
        _make(INIT, NAME_INIT, NAME_INIT),
        _make(REMOTE_NODE, NAME_REMOTE_NODE, NAME_REMOTE_NODE),
        # A remote node running the apiserver is both (cilium: labels.LabelKubeAPIServer
        # merged with LabelRemoteNode in the ipcache).
        _make(KUBE_APISERVER, NAME_KUBE_APISERVER, NAME_KUBE_APISERVER, NAME_REMOTE_NODE),
        _make(INGRESS, NAME_INGRESS, NAME_INGRESS),
        _make(WORLD_IPV4, NAME_WORLD_IPV4, NAME_WORLD_IPV4),
        _make(WORLD_IPV6, NAME_WORLD_IPV6, NAME_WORLD_IPV6),
    )
}

RESERVED_BY_NAME: Final[dict[str, ReservedIdentity]] = {r.name: r for r in RESERVED.values()}

# Label set -> reserved number (identity 0 excluded: the empty set is not "unknown").
RESERVED_BY_LABELS: Final[dict[LabelSet, int]] = {
    r.labels: r.id for r in RESERVED.values() if r.id != UNKNOWN
}


def world_id(version: int, dual_stack: bool) -> int:
    """Identity of an unknown address (cilium: `GetWorldIdentityFromIP`)."""
    if not dual_stack:
        return WORLD
    return WORLD_IPV4 if version == 4 else WORLD_IPV6


def world_label(version: int, dual_stack: bool) -> Label:
    return reserved_label(RESERVED[world_id(version, dual_stack)].name)


def is_reserved(num: int) -> bool:
    return 0 <= num < MIN_ALLOCATION_IDENTITY


def is_local(num: int) -> bool:
    return bool(num & LOCAL_IDENTITY_FLAG)
