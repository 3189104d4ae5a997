"""Kubernetes object metadata and label selectors.

Typed as the API server accepts them; ciliary reads name, namespace, labels and
annotations, and keeps the other metadata fields only so that real objects validate.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ciliary.model.base import ApiModel


class ObjectMeta(ApiModel):
    name: str | None = None
    generate_name: str | None = Field(None, alias="generateName")
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = Field(None, alias="resourceVersion")
    generation: int | None = None
    creation_timestamp: str | None = Field(None, alias="creationTimestamp")
    deletion_timestamp: str | None = Field(None, alias="deletionTimestamp")
    deletion_grace_period_seconds: int | None = Field(None, alias="deletionGracePeriodSeconds")
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[dict[str, Any]] | None = Field(None, alias="ownerReferences")
    finalizers: list[str] | None = None
    managed_fields: list[dict[str, Any]] | None = Field(None, alias="managedFields")
    self_link: str | None = Field(None, alias="selfLink")


SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class LabelSelectorRequirement(ApiModel):
    key: str
    operator: SelectorOperator
    values: list[str] | None = None


class LabelSelector(ApiModel):
    """A Kubernetes label selector; in Cilium rules its keys may carry a source (`k8s:app`)."""

    match_labels: dict[str, str] | None = Field(None, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] | None = Field(None, alias="matchExpressions")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [
                {"key": r.key, "operator": r.operator, "values": list(r.values or [])}
                for r in self.match_expressions
            ]
        return out
