"""HTTP paths by what varies in them: the segments that are identifiers (numbers, UUIDs,
hashes) rather than names. `display_path` names a REST route for people (`/orders/{n}`);
`path_pattern` makes the least-privilege rule pattern of a path (`/orders/[0-9]+`).

Rules: a path is split at `/`; a segment is `n` when all digits, `uuid` when a UUID, `hex`
when 8 or more hex digits with both digits and letters (so words spelt in a-f stay); other
segments are names, kept (escaped, in a pattern). A query string or fragment is not part of
a route; a pattern for a path observed with a query gets `(\\?.*)?`, as Cilium matches
`:path` with its query. `collapse` checks that every observed path still matches its pattern
(RE2 full match, as Envoy does) and keeps the literal path where one would not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ciliary.re2util import fullmatcher

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_HEX = re.compile(r"[0-9a-fA-F]{8,}\Z")
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
    if _HEX.match(segment) and any(c.isdigit() for c in segment) and any(c.isalpha() for c in segment):
        return "hex"
    return None


def display_path(path: str) -> str:
    """A path as one route names all its instances: `/api/v1/orders/{n}`."""
    path = path.partition("?")[0].partition("#")[0]
    return "/".join(f"{{{k}}}" if (k := segment_kind(s)) is not None else s for s in path.split("/"))


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
