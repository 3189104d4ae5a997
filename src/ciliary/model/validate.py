"""Import-time checks beyond the schema: the CRD's constraints, Cilium's rule_validation.go,
and the Kubernetes API server's NetworkPolicy validation.

Each check returns (path inside the object, message in words a Cilium user recognises).
"""

from __future__ import annotations

import re

from ciliary.model.cilium import CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy, Rule
from ciliary.model.errors import Path
from ciliary.model.k8s import NetworkPolicy
from ciliary.model.options import ValidationOptions

Problem = tuple[Path, str]

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def validate_object(
    obj: CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy | NetworkPolicy,
    options: ValidationOptions,
) -> list[Problem]:
    problems = _validate_metadata(obj)
    if isinstance(obj, NetworkPolicy):
        return problems
    if obj.spec is None and not obj.specs:
        problems.append(((), "empty policy: neither spec nor specs is set"))
    for path, rule in obj.rules():
        problems.extend(_validate_rule(obj, path, rule, options))
    return problems


def _validate_metadata(obj: CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy | NetworkPolicy) -> list[Problem]:
    name = obj.metadata.name
    if not name:
        return [(("metadata", "name"), "required field is missing")]
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return [(("metadata", "name"), f"invalid name {name!r}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")]
    return []


def _validate_rule(
    obj: CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy,
    path: Path,
    rule: Rule,
    options: ValidationOptions,
) -> list[Problem]:
    problems: list[Problem] = []
    if rule.endpoint_selector is None and rule.node_selector is None:
        problems.append((path, "rule must have one of EndpointSelector or NodeSelector"))
    if rule.endpoint_selector is not None and rule.node_selector is not None:
        problems.append(((*path, "nodeSelector"), "rule cannot have both EndpointSelector and NodeSelector"))
    if isinstance(obj, CiliumNetworkPolicy) and rule.node_selector is not None:
        problems.append(((*path, "nodeSelector"), "rule cannot have NodeSelector: a CiliumNetworkPolicy cannot select nodes; use a CiliumClusterwideNetworkPolicy for host policies"))
    return problems
