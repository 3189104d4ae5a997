"""Validation issues with their location: file, document, object, field path, line.

Contracts:
* `ValidationIssue` and `ValidationWarning` are frozen; `as_dict` is the `-o json` shape.
  They are separate types so that a warning can never be counted as an error.
* A `LoadError` means nothing was loaded. It carries every issue found (sorted by file,
  document, line, field) and the warnings found before the load failed.
* A `Path` is a location inside a document (keys and list indices); `format_path` prints it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]


def type_name(value: Any) -> str:
    """A value's type in YAML words, for messages (`got integer 8080`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def format_path(path: Path) -> str:
    """`("spec", "egress", 1, "toPorts")` -> `spec.egress[1].toPorts`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class _Located:
    """Where something in the input is, and what is said of it."""

    file: str
    line: int | None
    document: int | None
    object: str | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "document": self.document,
            "object": self.object,
            "field": self.field,
            "message": self.message,
        }

    def __str__(self) -> str:
        return _located(self.file, self.line, self.document, self.object, self.field, self.message)


@dataclass(frozen=True)
class ValidationIssue(_Located):
    """One thing wrong with the input, located precisely enough to fix it."""


@dataclass(frozen=True)
class ValidationWarning(_Located):
    """Something accepted as it is but worth fixing (an object given twice, identically).

    Located like a ValidationIssue; a separate type so that warnings never mix with the
    errors that stop a load."""


def _located(
    file: str, line: int | None, document: int | None, obj: str | None, field_path: str, message: str
) -> str:
    """`file:line, document N, Kind ns/name: field: message`."""
    loc = file if line is None else f"{file}:{line}"
    parts = [loc]
    if document is not None:
        parts.append(f"document {document}")
    if obj:
        parts.append(obj)
    where = f"{field_path}: " if field_path else ""
    return f"{', '.join(parts)}: {where}{message}"


@dataclass
class LoadError(Exception):
    """Raised when any input is invalid; nothing is loaded."""

    issues: list[ValidationIssue] = field(default_factory=list)
    # Found before the load failed; printed with the errors, never counted as one.
    warnings: list[ValidationWarning] = field(default_factory=list)

    def __init__(
        self, issues: Iterable[ValidationIssue], warnings: Iterable[ValidationWarning] = ()
    ) -> None:
        self.issues = sorted(
            issues, key=lambda i: (i.file, i.document or 0, i.line or 0, i.field)
        )
        self.warnings = list(warnings)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        n = len(self.issues)
        head = f"{n} error{'s' if n != 1 else ''}"
        return head + ":\n" + "\n".join(f"  {i}" for i in self.issues)
