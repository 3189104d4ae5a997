"""HTTP paths as least-privilege rule patterns: the parts of a path that vary per request
(numbers, UUIDs, hashes) become RE2 classes, everything else stays literal.

Rules: a path is split at `/`; a segment that is all digits becomes `[0-9]+`, a UUID
`[0-9a-fA-F-]{36}`, a hex string of 16 or more characters `[0-9a-fA-F]+`; other segments are
escaped literally. A query string is not part of the pattern: a path observed with one gets
`(\\?.*)?`, as Cilium matches `:path` with its query. `collapse` checks that every observed
path still matches its pattern (RE2 full match, as Envoy does) and keeps the literal path
where one would not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ciliary.re2util import fullmatcher

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_HEX = re.compile(r"[0-9a-fA-F]{16,}\Z")
_META = re.compile(r"[\\.+*?()|\[\]{}^$]")
QUERY = r"(\?.*)?"

# (kind, RE2 class): what a varying segment becomes, in the order they are tried.
SEGMENT_KINDS = (("n", "[0-9]+"), ("uuid", "[0-9a-fA-F-]{36}"), ("hex", "[0-9a-fA-F]+"))


def segment_kind(segment: str) -> str | None:
    """`n`, `uuid` or `hex` for a segment that varies per request, else None."""
    if segment.isdigit() and segment.isascii():
        return "n"
    if _UUID.match(segment):
        return "uuid"
    if _HEX.match(segment) and any(c.isdigit() for c in segment):
        return "hex"
    return None


def _escape(segment: str) -> str:
    return _META.sub(lambda m: "\\" + m.group(0), segment)


def path_pattern(path: str) -> str:
    """The rule pattern of one observed path (see the module's rules)."""
    base, query, _ = path.partition("?")
    classes = dict(SEGMENT_KINDS)
    parts = []
    for seg in base.split("/"):
        kind = segment_kind(seg)
        parts.append(classes[kind] if kind is not None else _escape(seg))
    pattern = "/".join(parts) or "/"
    return pattern + QUERY if query or path.endswith("?") else pattern


def collapse(paths: Iterable[str]) -> dict[str, str]:
    """observed path -> its pattern; a pattern that fails to match its path (it cannot,
    but the check is cheap) is replaced by the escaped literal path."""
    out: dict[str, str] = {}
    for p in paths:
        pattern = path_pattern(p)
        if not fullmatcher(pattern)(p):
            pattern = _escape(p)
        out[p] = pattern
    return out
