"""Shared model configuration: strict types and unknown fields as errors (`--validate=strict`).

Contracts: every API object of `ciliary.model` is an `ApiModel`. Models are mutable
pydantic objects (`frozen=False`), but once loaded they are shared by every later stage
(translation, the engine, reports) and must not be changed. Fields are snake_case with the
API's camelCase as alias, and errors are located by alias, so messages name a field as it
is written in YAML.
"""

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


def _int_or_string(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("int_or_string", "must be an integer or a string")
    return value


# Kubernetes' IntOrString: one error message instead of one per union member.
IntOrString = Annotated[int | str, PlainValidator(_int_or_string)]
