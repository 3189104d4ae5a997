"""`ciliary validate`: load policies from paths and report every problem."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from ciliary.model.errors import LoadError, ValidationIssue, ValidationWarning
from ciliary.model.files import read_documents
from ciliary.model.loader import load_policies
from ciliary.model.options import ValidationOptions
from ciliary.model.policy import PolicySet


@dataclass
class ValidationReport:
    policies: PolicySet | None
    issues: list[ValidationIssue] = field(default_factory=list)
    # Never make a report fail: `ok` is about errors only.
    warnings: list[ValidationWarning] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues


def read_policies(
    paths: Iterable[str | os.PathLike[str]], options: ValidationOptions | None = None
) -> PolicySet:
    """Policies from files/directories; raises LoadError with every problem, loads nothing then."""
    return load_policies(read_documents(paths), options)


def validate_paths(
    paths: Iterable[str | os.PathLike[str]], options: ValidationOptions | None = None
) -> ValidationReport:
    try:
        policies = read_policies(paths, options)
    except LoadError as e:
        return ValidationReport(None, e.issues, e.warnings)
    return ValidationReport(policies, warnings=policies.warnings)
