"""`networking.k8s.io/v1` NetworkPolicy, typed as the Kubernetes API server reads it.

Types only; the API server's value checks are in `ciliary.model.validate_k8s` and
`ciliary.model.values`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ciliary.model.base import ApiModel, IntOrString
from ciliary.model.meta import LabelSelector, ObjectMeta


class IPBlock(ApiModel):
    cidr: str
    except_: list[str] | None = Field(None, alias="except")


class NetworkPolicyPeer(ApiModel):
    pod_selector: LabelSelector | None = Field(None, alias="podSelector")
    namespace_selector: LabelSelector | None = Field(None, alias="namespaceSelector")
    ip_block: IPBlock | None = Field(None, alias="ipBlock")


class NetworkPolicyPort(ApiModel):
    protocol: str | None = None
    # IntOrString: a number or an IANA service name (a named container port).
    port: IntOrString | None = None
    end_port: int | None = Field(None, alias="endPort")


class NetworkPolicyIngressRule(ApiModel):
    from_: list[NetworkPolicyPeer] | None = Field(None, alias="from")
    ports: list[NetworkPolicyPort] | None = None


class NetworkPolicyEgressRule(ApiModel):
    to: list[NetworkPolicyPeer] | None = None
    ports: list[NetworkPolicyPort] | None = None


class NetworkPolicySpec(ApiModel):
    pod_selector: LabelSelector = Field(alias="podSelector")
    ingress: list[NetworkPolicyIngressRule] | None = None
    egress: list[NetworkPolicyEgressRule] | None = None
    policy_types: list[Literal["Ingress", "Egress"]] | None = Field(None, alias="policyTypes")


class NetworkPolicy(ApiModel):
    api_version: Literal["networking.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["NetworkPolicy"]
    metadata: ObjectMeta
    spec: NetworkPolicySpec
    status: dict[str, Any] | None = None
