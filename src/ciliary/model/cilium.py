"""The `cilium.io/v2` policy API: CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy.

Field names follow pkg/policy/api (rule.go, ingress.go, egress.go, l4.go, http.go,
kafka, fqdn.go, icmp.go, cidr.go, entity.go, service.go, groups.go). Types follow the
CRD schema: a port is a string, `endPort` an integer, booleans are booleans. Fields that
ciliary does not evaluate yet (groups, TLS contexts, listeners, authentication) are typed
and kept so commands can report them as "not evaluated".

API surface: the newest CRD plus what Cilium 1.18 still served and the newest CRD dropped
(L7 `kafka`, `l7proto`/`l7`, and selectors in `fromRequires`/`toRequires`). Value
constraints (patterns, enums, ranges, Cilium's import-time checks) live in validate.py (and
values.py, validate_k8s.py) so
their messages can use Cilium's wording and point at the exact field.

Contracts: loaded objects are shared, not copied, by the layers above (a rule's `L7Rules`
and `FQDNSelector`s end up in policy maps and matchers): read-only, see `ciliary.model.base`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ciliary.model.base import ApiModel, IntOrString
from ciliary.model.meta import LabelSelector, ObjectMeta

EndpointSelector = LabelSelector


class PolicyLabel(ApiModel):
    key: str
    value: str | None = None
    source: str | None = None


class DefaultDenyConfig(ApiModel):
    ingress: bool | None = None
    egress: bool | None = None


class LogConfig(ApiModel):
    value: str | None = None


class CIDRRule(ApiModel):
    cidr: str | None = None
    cidr_group_ref: str | None = Field(None, alias="cidrGroupRef")
    cidr_group_selector: LabelSelector | None = Field(None, alias="cidrGroupSelector")
    except_: list[str] | None = Field(None, alias="except")


class K8sServiceNamespace(ApiModel):
    service_name: str | None = Field(None, alias="serviceName")
    namespace: str | None = None


class ServiceSelector(ApiModel):
    selector: LabelSelector
    namespace: str | None = None


class Service(ApiModel):
    k8s_service: K8sServiceNamespace | None = Field(None, alias="k8sService")
    k8s_service_selector: ServiceSelector | None = Field(None, alias="k8sServiceSelector")


class AWSGroup(ApiModel):
    labels: dict[str, str] | None = None
    security_groups_ids: list[str] | None = Field(None, alias="securityGroupsIds")
    security_groups_names: list[str] | None = Field(None, alias="securityGroupsNames")
    region: str | None = None


class Groups(ApiModel):
    aws: AWSGroup | None = None


class FQDNSelector(ApiModel):
    match_name: str | None = Field(None, alias="matchName")
    match_pattern: str | None = Field(None, alias="matchPattern")


PortRuleDNS = FQDNSelector


class Secret(ApiModel):
    namespace: str | None = None
    name: str


class HeaderMatch(ApiModel):
    mismatch: Literal["LOG", "ADD", "DELETE", "REPLACE"] | None = None
    name: str
    secret: Secret | None = None
    value: str | None = None


class PortRuleHTTP(ApiModel):
    path: str | None = None
    method: str | None = None
    host: str | None = None
    headers: list[str] | None = None
    header_matches: list[HeaderMatch] | None = Field(None, alias="headerMatches")


class PortRuleKafka(ApiModel):
    role: str | None = None
    api_key: str | None = Field(None, alias="apiKey")
    api_version: str | None = Field(None, alias="apiVersion")
    client_id: str | None = Field(None, alias="clientID")
    topic: str | None = None


class L7Rules(ApiModel):
    http: list[PortRuleHTTP] | None = None
    kafka: list[PortRuleKafka] | None = None
    dns: list[PortRuleDNS] | None = None
    l7proto: str | None = None
    l7: list[dict[str, str]] | None = None


class TLSContext(ApiModel):
    secret: Secret
    trusted_ca: str | None = Field(None, alias="trustedCA")
    certificate: str | None = None
    private_key: str | None = Field(None, alias="privateKey")


class EnvoyConfig(ApiModel):
    # Optional in the CRD: defaults to the kind matching the policy's scope.
    kind: Literal["CiliumEnvoyConfig", "CiliumClusterwideEnvoyConfig"] | None = None
    name: str


class Listener(ApiModel):
    envoy_config: EnvoyConfig = Field(alias="envoyConfig")
    name: str
    priority: int | None = None


class PortProtocol(ApiModel):
    # Not required by the CRD; as in Go, a missing port is "" ("port must be specified").
    port: str = ""
    end_port: int | None = Field(None, alias="endPort")
    protocol: str | None = None


class PortRule(ApiModel):
    ports: list[PortProtocol] | None = None
    rules: L7Rules | None = None
    server_names: list[str] | None = Field(None, alias="serverNames")
    terminating_tls: TLSContext | None = Field(None, alias="terminatingTLS")
    originating_tls: TLSContext | None = Field(None, alias="originatingTLS")
    listener: Listener | None = None


class PortDenyRule(ApiModel):
    ports: list[PortProtocol] | None = None


class ICMPField(ApiModel):
    family: str | None = None
    # IntOrString in the CRD: a number 0-255 or a CamelCase message name.
    type: IntOrString


class ICMPRule(ApiModel):
    fields: list[ICMPField] | None = None


class Authentication(ApiModel):
    mode: Literal["disabled", "required", "test-always-fail"]


class _IngressCommon(ApiModel):
    from_endpoints: list[EndpointSelector] | None = Field(None, alias="fromEndpoints")
    from_requires: list[EndpointSelector] | None = Field(None, alias="fromRequires")
    from_cidr: list[str] | None = Field(None, alias="fromCIDR")
    from_cidr_set: list[CIDRRule] | None = Field(None, alias="fromCIDRSet")
    from_entities: list[str] | None = Field(None, alias="fromEntities")
    from_groups: list[Groups] | None = Field(None, alias="fromGroups")
    from_nodes: list[EndpointSelector] | None = Field(None, alias="fromNodes")
    icmps: list[ICMPRule] | None = None


class IngressRule(_IngressCommon):
    to_ports: list[PortRule] | None = Field(None, alias="toPorts")
    authentication: Authentication | None = None


class IngressDenyRule(_IngressCommon):
    to_ports: list[PortDenyRule] | None = Field(None, alias="toPorts")


class _EgressCommon(ApiModel):
    to_endpoints: list[EndpointSelector] | None = Field(None, alias="toEndpoints")
    to_requires: list[EndpointSelector] | None = Field(None, alias="toRequires")
    to_cidr: list[str] | None = Field(None, alias="toCIDR")
    to_cidr_set: list[CIDRRule] | None = Field(None, alias="toCIDRSet")
    to_entities: list[str] | None = Field(None, alias="toEntities")
    to_services: list[Service] | None = Field(None, alias="toServices")
    to_groups: list[Groups] | None = Field(None, alias="toGroups")
    to_nodes: list[EndpointSelector] | None = Field(None, alias="toNodes")
    icmps: list[ICMPRule] | None = None


class EgressRule(_EgressCommon):
    to_ports: list[PortRule] | None = Field(None, alias="toPorts")
    to_fqdns: list[FQDNSelector] | None = Field(None, alias="toFQDNs")
    authentication: Authentication | None = None


class EgressDenyRule(_EgressCommon):
    to_ports: list[PortDenyRule] | None = Field(None, alias="toPorts")


class Rule(ApiModel):
    """One rule: `spec` or an element of `specs` (pkg/policy/api/rule.go)."""

    endpoint_selector: EndpointSelector | None = Field(None, alias="endpointSelector")
    node_selector: EndpointSelector | None = Field(None, alias="nodeSelector")
    ingress: list[IngressRule] | None = None
    ingress_deny: list[IngressDenyRule] | None = Field(None, alias="ingressDeny")
    egress: list[EgressRule] | None = None
    egress_deny: list[EgressDenyRule] | None = Field(None, alias="egressDeny")
    labels: list[PolicyLabel] | None = None
    enable_default_deny: DefaultDenyConfig | None = Field(None, alias="enableDefaultDeny")
    description: str | None = None
    log: LogConfig | None = None


class _CiliumPolicyBase(ApiModel):
    api_version: Literal["cilium.io/v2"] = Field(alias="apiVersion")
    metadata: ObjectMeta
    spec: Rule | None = None
    specs: list[Rule] | None = None
    status: dict[str, Any] | None = None

    def rules(self) -> list[tuple[tuple[str | int, ...], Rule]]:
        """Every rule with its path in the object: `spec`, then `specs[i]`."""
        out: list[tuple[tuple[str | int, ...], Rule]] = []
        if self.spec is not None:
            out.append((("spec",), self.spec))
        for i, r in enumerate(self.specs or []):
            out.append((("specs", i), r))
        return out


class CiliumNetworkPolicy(_CiliumPolicyBase):
    kind: Literal["CiliumNetworkPolicy"]


class CiliumClusterwideNetworkPolicy(_CiliumPolicyBase):
    kind: Literal["CiliumClusterwideNetworkPolicy"]
