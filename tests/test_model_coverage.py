"""The valid fixtures exercise every field of the typed model (so every field is known to
be accepted by the real Cilium/Kubernetes and kept by ciliary)."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ciliary.model.cilium import CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy
from ciliary.model.files import read_documents
from ciliary.model.k8s import NetworkPolicy
from ciliary.model.loader import load_policies
from ciliary.model.options import ValidationOptions

VALID = Path(__file__).parent / "data" / "valid"
ROOTS: tuple[type[BaseModel], ...] = (
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
    NetworkPolicy,
)


def _models_in(tp: Any) -> list[type[BaseModel]]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType, list, dict, typing.Annotated):
        return [m for arg in typing.get_args(tp) for m in _models_in(arg)]
    return [tp] if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def all_fields() -> set[tuple[str, str]]:
    seen: set[type[BaseModel]] = set()
    todo = list(ROOTS)
    out: set[tuple[str, str]] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            out.add((model.__name__, info.alias or name))
            todo.extend(_models_in(info.annotation))
    return out


def used_fields(value: Any, out: set[tuple[str, str]]) -> None:
    if isinstance(value, BaseModel):
        for name in value.model_fields_set:
            info = type(value).model_fields[name]
            out.add((type(value).__name__, info.alias or name))
            used_fields(getattr(value, name), out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            used_fields(item, out)
    elif isinstance(value, dict):
        for item in value.values():
            used_fields(item, out)


def test_every_model_field_is_covered_by_a_valid_fixture() -> None:
    options = ValidationOptions(enable_node_selector_labels=True, enable_extended_ip_protocols=True)
    result = load_policies(read_documents([VALID]), options)
    used: set[tuple[str, str]] = set()
    for policy in result.policies:
        used_fields(policy.obj, used)
    missing = sorted(all_fields() - used)
    assert not missing, f"fields no valid fixture sets: {missing}"


def test_model_has_the_documented_fields() -> None:
    fields = all_fields()
    for expected in [
        ("Rule", "endpointSelector"), ("Rule", "nodeSelector"), ("Rule", "enableDefaultDeny"),
        ("Rule", "log"), ("IngressRule", "fromNodes"), ("IngressRule", "authentication"),
        ("IngressDenyRule", "fromGroups"), ("EgressRule", "toFQDNs"), ("EgressRule", "toServices"),
        ("EgressDenyRule", "toNodes"), ("PortRule", "listener"), ("PortRule", "serverNames"),
        ("PortRule", "terminatingTLS"), ("PortRule", "originatingTLS"), ("L7Rules", "l7proto"),
        ("L7Rules", "l7"), ("L7Rules", "kafka"), ("PortRuleHTTP", "headerMatches"),
        ("CIDRRule", "cidrGroupSelector"), ("ICMPField", "family"), ("Listener", "priority"),
        ("NetworkPolicyPort", "endPort"), ("NetworkPolicySpec", "policyTypes"),
    ]:  # fmt: skip
        assert expected in fields
    assert ("EgressDenyRule", "toFQDNs") not in fields  # no FQDN deny
    assert ("PortDenyRule", "rules") not in fields  # no L7 deny

