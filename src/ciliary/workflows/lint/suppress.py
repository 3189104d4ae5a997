"""Which findings to keep: `--select`/`--ignore` by ID, and inline comments.

An inline `# ciliary: ignore[CIL001]` (several IDs: `[CIL001, CIL005]`; none: every check)
suppresses a finding when it is on the finding's line, on the line of any enclosing node
of the field (the list element, the section, the policy's first line or its
`metadata.name`), or alone on the line just above one of those.

Contracts:
* Reads each policy file's text at most once; a file that cannot be read suppresses
  nothing.
* Unknown IDs in a comment are reported by `unknown_ids`, never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ciliary.model.policy import LoadedPolicy, PolicyRef
from ciliary.workflows.lint.findings import CHECKS_BY_ID, Finding

_COMMENT = re.compile(r"#\s*ciliary:\s*ignore\b(?:\[([^\]]*)\])?", re.IGNORECASE)
ALL = "*"


@dataclass
class FileComments:
    ignores: dict[int, set[str]] = field(default_factory=dict)  # line -> IDs (or ALL)
    comment_only: set[int] = field(default_factory=set)  # lines holding nothing but the comment
    unknown: list[tuple[int, str]] = field(default_factory=list)


def parse_comments(text: str) -> FileComments:
    fc = FileComments()
    for n, line in enumerate(text.splitlines(), 1):
        if "ciliary" not in line:
            continue
        m = _COMMENT.search(line)
        if m is None:
            continue
        ids: set[str] = set()
        if m.group(1) is None or not m.group(1).strip():
            ids.add(ALL)
        for part in (m.group(1) or "").split(","):
            part = part.strip().upper()
            if not part:
                continue
            if part in CHECKS_BY_ID:
                ids.add(part)
            else:
                fc.unknown.append((n, part))
        fc.ignores[n] = ids
        if not line[: m.start()].strip():
            fc.comment_only.add(n)
    return fc


class Suppressor:
    def __init__(self, policies: Iterable[LoadedPolicy]) -> None:
        self._policies: dict[PolicyRef, LoadedPolicy] = {p.ref: p for p in policies}
        self._files: dict[str, FileComments | None] = {}

    def comments(self, file: str) -> FileComments | None:
        if file not in self._files:
            try:
                self._files[file] = parse_comments(Path(file).read_text(encoding="utf-8", errors="replace"))
            except OSError:
                self._files[file] = None
        return self._files[file]

    def _lines(self, f: Finding) -> set[int]:
        lines: set[int] = set()
        if f.line:
            lines.add(f.line)
        lp = self._policies.get(f.policy) if f.policy is not None else None
        if lp is not None:
            full = (*lp.path, *f.path)
            for i in range(len(lp.path), len(full) + 1):
                ln = lp.lines.get(full[:i])
                if ln:
                    lines.add(ln)
            for sub in (("metadata", "name"), ("kind",), ("apiVersion",)):
                ln = lp.lines.get((*lp.path, *sub))
                if ln:
                    lines.add(ln)
        return lines

    def suppressed(self, f: Finding) -> bool:
        if not f.file:
            return False
        fc = self.comments(f.file)
        if fc is None or not fc.ignores:
            return False
        for ln in self._lines(f):
            for at in (ln, ln - 1):
                ids = fc.ignores.get(at)
                if ids is None or (at != ln and at not in fc.comment_only):
                    continue
                if ALL in ids or f.id in ids:
                    return True
        return False

    def unknown_ids(self) -> list[tuple[str, int, str]]:
        return [(file, n, part) for file, fc in self._files.items() if fc for n, part in fc.unknown]


def selected(check_id: str, select: set[str] | None, ignore: set[str]) -> bool:
    return (select is None or check_id in select) and check_id not in ignore
