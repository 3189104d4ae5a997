"""`BoundedCache`, the one bounded memo, and the one place that tunes the garbage collector."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ciliary.cache import BoundedCache

SRC = Path(__file__).parent.parent / "src" / "ciliary"


def test_a_full_cache_forgets_its_oldest_eighth_and_keeps_the_rest() -> None:
    c: BoundedCache[int, str] = BoundedCache(16)
    for i in range(16):
        assert c.put(i, str(i)) == str(i)
    assert len(c) == 16 and c.get(0) == "0"
    c.put(16, "16")  # full: 0 and 1 go (16 // 8 = 2), the newest stays
    assert sorted(c) == list(range(2, 17))
    c.put(5, "five")  # not full: a key already there gets its new value
    assert len(c) == 15 and c[5] == "five"
    for i in range(100, 1000):
        c.put(i, "x")
        assert len(c) <= 16
    assert 999 in c


def test_a_tiny_full_cache_starts_again() -> None:
    c: BoundedCache[int, int] = BoundedCache(8)
    for i in range(9):
        c.put(i, i)
    assert dict(c) == {8: 8}


def test_a_cache_of_one_keeps_the_last_entry() -> None:
    c: BoundedCache[str, int] = BoundedCache(1)
    c.put("a", 1)
    c.put("b", 2)
    assert dict(c) == {"b": 2}


def test_a_cache_needs_room() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedCache(0)


def _touches_gc(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(
        (isinstance(n, ast.Import) and any(a.name == "gc" for a in n.names))
        or (isinstance(n, ast.ImportFrom) and n.module == "gc")
        for n in ast.walk(tree)
    )


def test_only_the_process_module_tunes_the_garbage_collector() -> None:
    assert [p.relative_to(SRC).as_posix() for p in sorted(SRC.rglob("*.py")) if _touches_gc(p)] == ["process.py"]
