"""The one bounded cache of ciliary's per-object memos.

Rules: a memo holds answers that can always be worked out again, so what it forgets never
changes a result, only its cost. When full it forgets its oldest eighth (insertion order;
all of it below 16 entries), which keeps the recent working set of a long flow stream and
costs O(1) per insertion over time. Functions of their arguments alone use
`functools.lru_cache` instead (C, and faster on a miss), per object where the function is
a bound method (`DNSMatcher.matches`, `HTTPPolicy.check`: a matcher's verdict depends on the
request alone). Tables that are state rather than memos (the connection table of a replay,
learned DNS names) are not caches and keep their own rules.

A `BoundedCache` is a dict, so a hit is one C-level `dict.get`; only `put` (a miss) runs
Python.
"""

from __future__ import annotations

from itertools import islice
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(dict[K, V]):
    """A dict of at most `maxsize` entries, filled with `put`."""

    __slots__ = ("maxsize",)

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize

    def put(self, key: K, value: V) -> V:
        """Remember `value` for `key` (forgetting the oldest eighth when full); returns it."""
        if len(self) >= self.maxsize:
            self._forget()
        self[key] = value
        return value

    def _forget(self) -> None:
        n = self.maxsize >> 3
        if n < 2:
            self.clear()  # a tiny memo: its eighth is all of it
        else:
            for old in list(islice(self, n)):
                del self[old]
