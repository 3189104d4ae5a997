"""Thin, fast access to Google RE2 (the engine Envoy's `safe_regex` and Go's regexp share).

Envoy compiles every L7 regex with `RE2(pattern, RE2::Quiet)`: default options (UTF-8,
Perl classes, leftmost-first) with error logging off, and matches header values with
`RE2::FullMatch` (envoy: source/common/common/regex.cc `CompiledGoogleReMatcher`). These
helpers use the same options. The public `re2` module wraps every call in Python-level
offset bookkeeping (several microseconds); the matchers below call the pybind11 object
(`re2._re2`) directly with `ANCHOR_BOTH`, which is the same RE2 entry point, and fall back
to the public API if that private module ever changes shape.

Contracts:
* A root utility: imports nothing from ciliary.
* `fullmatcher` and `program_size` are pure functions of the pattern, memoised
  (`lru_cache`); a matcher is a stateless closure, shared by everyone asking for its
  pattern. `fullmatcher` raises ValueError for a pattern RE2 rejects.
* A `FullMatchSet` never changes after construction. When RE2 gives up on a text (DFA out
  of memory), `match` and `match_bytes` fall back to one full match per pattern, so their
  answers never depend on RE2's memory budget; users of `raw_match` handle that case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import re2

try:  # the pybind11 extension behind the `re2` package (google-re2 >= 1.0)
    from re2 import _re2 as _low

    _BOTH: Any = _low.RE2.Anchor.ANCHOR_BOTH
    _HAVE_LOW = hasattr(_low, "Set") and hasattr(_low.RE2, "Match")
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed wheel
    _low = None
    _BOTH = None
    _HAVE_LOW = False

# Envoy's default for the runtime key `re2.max_program_size.error_level`: a regex whose
# RE2 program is larger is rejected when the policy is loaded (the xDS update is NACKed).
# Cilium's Envoy bootstrap (pkg/envoy/server.go createBootstrap) does not override it.
ENVOY_RE2_MAX_PROGRAM_SIZE = 100

Matcher = Callable[[str], bool]


def options() -> Any:
    """RE2 options as Envoy uses them (RE2::Quiet: defaults, no error logging)."""
    opts = re2.Options()
    opts.log_errors = False
    return opts


def check(pattern: str) -> str | None:
    """Why RE2 rejects `pattern`, or None."""
    try:
        re2.compile(pattern, options=options())
    except re2.error as e:
        detail = e.args[0] if e.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return str(detail) or "invalid regular expression"
    return None


@lru_cache(maxsize=4096)
def program_size(pattern: str) -> int:
    """RE2's program size of `pattern` (what Envoy compares to its max program size)."""
    return int(re2.compile(pattern, options=options()).programsize)


@lru_cache(maxsize=8192)
def fullmatcher(pattern: str) -> Matcher:
    """A predicate: does `pattern` match the WHOLE text (RE2::FullMatch)? Cached per pattern.

    Raises ValueError if RE2 rejects the pattern.
    """
    err = check(pattern)
    if err is not None:
        raise ValueError(f"invalid regular expression {pattern!r}: {err}")
    if _HAVE_LOW:
        match = _low.RE2(pattern.encode("utf-8"), options()).Match
        both = _BOTH

        def low(text: str) -> bool:
            b = text.encode("utf-8", "surrogatepass")
            return bool(match(both, b, 0, len(b))[0][0] >= 0)

        return low
    compiled = re2.compile(pattern, options=options())  # pragma: no cover

    def high(text: str) -> bool:  # pragma: no cover
        return compiled.fullmatch(text) is not None

    return high  # pragma: no cover


class FullMatchSet:
    """Several patterns, one RE2 pass: which of them match the whole text (RE2::Set).

    A catch-all sentinel is added last, so an empty answer can only mean that RE2 gave up
    (DFA out of memory); `match` then falls back to one full match per pattern.
    """

    __slots__ = ("_fallback", "_n", "_set")

    def __init__(self, patterns: Sequence[str]) -> None:
        self._n = len(patterns)
        self._fallback = [fullmatcher(p) for p in patterns]
        self._set: Any = None
        if _HAVE_LOW:
            s = _low.Set(_BOTH, options())
            for p in patterns:
                if s.Add(p.encode("utf-8")) < 0:  # pragma: no cover - validated above
                    raise ValueError(f"invalid regular expression {p!r}")
            s.Add(b"(?s:.*)")
            if s.Compile():
                self._set = s

    def match_bytes(self, text: bytes) -> list[int]:
        """Indices (ascending) of the patterns matching all of `text` (UTF-8)."""
        if self._set is not None:
            found: list[int] = self._set.Match(text)
            if found:
                n = self._n
                return sorted(i for i in found if i != n)
        s = text.decode("utf-8", "surrogatepass")
        return [i for i, m in enumerate(self._fallback) if m(s)]

    @property
    def raw_match(self) -> Callable[[bytes], list[int]] | None:
        """RE2::Set::Match itself (indices in no particular order, the sentinel `len`
        included; empty only if RE2 gave up), or None when only the fallback exists."""
        return None if self._set is None else self._set.Match

    def match(self, text: str) -> list[int]:
        """Indices (ascending) of the patterns matching all of `text`."""
        return self.match_bytes(text.encode("utf-8", "surrogatepass"))
