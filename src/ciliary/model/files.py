"""Reading input paths (files or directories, recursively) into documents.

The only file I/O of the loaders; everything after this works on `Document`s.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ciliary.model.errors import LoadError, ValidationIssue
from ciliary.model.source import Document, parse_text

SUFFIXES = (".yaml", ".yml", ".json")


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files as given; directories walked recursively for .yaml/.yml/.json, sorted."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if f.endswith(SUFFIXES) and not f.startswith("."):
                        yield Path(root) / f
        else:
            yield path


def read_documents(paths: Iterable[str | os.PathLike[str]]) -> list[Document]:
    """All documents of all inputs; every unreadable or malformed file is reported at once."""
    docs: list[Document] = []
    issues: list[ValidationIssue] = []
    for path in expand_paths(paths):
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            issues.append(ValidationIssue(name, None, None, None, "", "no such file or directory"))
            continue
        except (OSError, UnicodeDecodeError) as e:
            issues.append(ValidationIssue(name, None, None, None, "", f"cannot read: {e}"))
            continue
        try:
            docs.extend(parse_text(text, name))
        except LoadError as e:
            issues.extend(e.issues)
    if issues:
        raise LoadError(issues)
    return docs
