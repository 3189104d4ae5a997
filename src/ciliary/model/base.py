"""Shared model configuration: strict types and unknown fields as errors (`--validate=strict`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator
from pydantic_core import PydanticCustomError


class ApiModel(BaseModel):
    """Base of every API object: strict types, unknown fields rejected, camelCase aliases."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        populate_by_name=True,
        frozen=False,
        validate_default=False,
        loc_by_alias=True,
        serialize_by_alias=True,
        defer_build=True,
    )

    def to_api(self) -> dict[str, Any]:
        """The object as it would be written in YAML (aliases, no unset fields)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


def _int_or_string(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("int_or_string", "must be an integer or a string")
    return value


# Kubernetes' IntOrString: one error message instead of one per union member.
IntOrString = Annotated[int | str, PlainValidator(_int_or_string)]
