"""Policy entities (`fromEntities`/`toEntities`) as selectors (semantics §2.2;
cilium: pkg/policy/api/entity.go `EntitySelectorMapping`, `InitEntities`).

The selectors are module constants shared by every rule naming the entity (a `Selector`
is immutable); only `cluster` depends on an argument, the local cluster name.
"""

from __future__ import annotations

from typing import Final

from ciliary.identity.labels import SOURCE_K8S, Label
from ciliary.identity.reserved import (
    NAME_HEALTH,
    NAME_HOST,
    NAME_INGRESS,
    NAME_INIT,
    NAME_KUBE_APISERVER,
    NAME_NONE,
    NAME_REMOTE_NODE,
    NAME_UNMANAGED,
    NAME_WORLD,
    NAME_WORLD_IPV4,
    NAME_WORLD_IPV6,
    reserved_label,
)
from ciliary.identity.selector import Selector

ENTITY_ALL: Final = "all"
ENTITY_WORLD: Final = "world"
ENTITY_WORLD_IPV4: Final = "world-ipv4"
ENTITY_WORLD_IPV6: Final = "world-ipv6"
ENTITY_CLUSTER: Final = "cluster"
ENTITY_HOST: Final = "host"
ENTITY_REMOTE_NODE: Final = "remote-node"
ENTITY_KUBE_APISERVER: Final = "kube-apiserver"
ENTITY_HEALTH: Final = "health"
ENTITY_INIT: Final = "init"
ENTITY_INGRESS: Final = "ingress"
ENTITY_UNMANAGED: Final = "unmanaged"
ENTITY_NONE: Final = "none"

# Case-sensitive, like the CRD enum.
ENTITY_NAMES: Final = frozenset(
    {
        ENTITY_ALL,
        ENTITY_WORLD,
        ENTITY_WORLD_IPV4,
        ENTITY_WORLD_IPV6,
        ENTITY_CLUSTER,
        ENTITY_HOST,
        ENTITY_REMOTE_NODE,
        ENTITY_KUBE_APISERVER,
        ENTITY_HEALTH,
        ENTITY_INIT,
        ENTITY_INGRESS,
        ENTITY_UNMANAGED,
        ENTITY_NONE,
    }
)

POLICY_LABEL_CLUSTER: Final = "io.cilium.k8s.policy.cluster"


def _reserved(name: str) -> Selector:
    return Selector.from_labels(reserved_label(name))


_STATIC: Final[dict[str, tuple[Selector, ...]]] = {
    ENTITY_ALL: (Selector.everything(),),
    # CIDR/FQDN identities carry a world label too, so they are "world" as well.
    ENTITY_WORLD: (_reserved(NAME_WORLD), _reserved(NAME_WORLD_IPV4), _reserved(NAME_WORLD_IPV6)),
    ENTITY_WORLD_IPV4: (_reserved(NAME_WORLD_IPV4),),
    ENTITY_WORLD_IPV6: (_reserved(NAME_WORLD_IPV6),),
    ENTITY_HOST: (_reserved(NAME_HOST),),
    # Identity 7 also carries reserved:remote-node, so remote-node selects it too.
    ENTITY_REMOTE_NODE: (_reserved(NAME_REMOTE_NODE),),
    ENTITY_KUBE_APISERVER: (_reserved(NAME_KUBE_APISERVER),),
    ENTITY_HEALTH: (_reserved(NAME_HEALTH),),
    ENTITY_INIT: (_reserved(NAME_INIT),),
    ENTITY_INGRESS: (_reserved(NAME_INGRESS),),
    ENTITY_UNMANAGED: (_reserved(NAME_UNMANAGED),),
    ENTITY_NONE: (_reserved(NAME_NONE),),
}

_CLUSTER_RESERVED: Final = tuple(
    _reserved(n)
    for n in (
        NAME_HOST,
        NAME_REMOTE_NODE,
        NAME_INIT,
        NAME_INGRESS,
        NAME_HEALTH,
        NAME_UNMANAGED,
        NAME_KUBE_APISERVER,
    )
)


class UnknownEntityError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unsupported entity {name!r}: must be one of {', '.join(sorted(ENTITY_NAMES))}")
        self.name = name


def entity_selectors(name: str, cluster_name: str = "default") -> tuple[Selector, ...]:
    """Selectors an entity stands for; any one matching selects the peer.

    `cluster` depends on the local cluster name: every pod of this cluster carries
    `k8s:io.cilium.k8s.policy.cluster=<name>`. Raises UnknownEntityError otherwise.
    """
    if name == ENTITY_CLUSTER:
        return (*_CLUSTER_RESERVED, Selector.from_labels(Label(SOURCE_K8S, POLICY_LABEL_CLUSTER, cluster_name)))
    try:
        return _STATIC[name]
    except KeyError:
        raise UnknownEntityError(name) from None
