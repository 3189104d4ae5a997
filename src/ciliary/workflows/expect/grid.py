"""Truth tables in the Kubernetes e2e style, as `ciliary matrix` prints them:

    -           ns/a   ns/b
    ns/a        .      X
    ns/b        .      .

The header row is `-` and the destinations; every other row is a source and one cell per
destination: `.` allowed, `X` denied, `A` audit, `R` redirected. Blank lines are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ciliary.workflows.expect.model import GRID_SYMBOLS


@dataclass(frozen=True)
class Cell:
    src: str
    dst: str
    symbol: str
    row: int  # index of the row's line in the grid text (0-based)


@dataclass(frozen=True)
class Grid:
    header_row: int  # index of the header's line in the grid text
    columns: tuple[str, ...]
    rows: tuple[tuple[str, int], ...]  # (source, index of its line)
    cells: tuple[Cell, ...]


class GridError(ValueError):
    """A bad grid; `row` is the index of the offending line in the grid text, if any."""

    def __init__(self, row: int | None, message: str) -> None:
        super().__init__(message)
        self.row = row
        self.message = message


def parse_grid(text: str) -> Grid:
    lines = [(i, line.split()) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not lines:
        raise GridError(None, "the grid is empty: give a header row (- and the destinations) and one row per source")
    header_row, header = lines[0]
    if header[0] != "-":
        raise GridError(header_row, "the header row must be '-' followed by the destinations (as `ciliary matrix` prints it)")
    columns = tuple(header[1:])
    if not columns:
        raise GridError(header_row, "the header row names no destination")
    _no_repeats(columns, header_row, "destination")
    if len(lines) == 1:
        raise GridError(header_row, "the grid has no rows: give one row per source")
    cells: list[Cell] = []
    rows: list[tuple[str, int]] = []
    symbols = ", ".join(f"'{s}' {w}" for s, w in GRID_SYMBOLS.items())
    for i, tokens in lines[1:]:
        src, marks = tokens[0], tokens[1:]
        if len(marks) != len(columns):
            raise GridError(i, f"row {src} has {len(marks)} cell(s), the header has {len(columns)} destination(s)")
        for dst, mark in zip(columns, marks, strict=True):
            if mark not in GRID_SYMBOLS:
                raise GridError(i, f"bad cell {mark!r} in row {src}, column {dst}: use {symbols}")
            cells.append(Cell(src, dst, mark, i))
        rows.append((src, i))
    _no_repeats(tuple(s for s, _ in rows), None, "source", rows)
    return Grid(header_row, columns, tuple(rows), tuple(cells))


def _no_repeats(names: tuple[str, ...], row: int | None, what: str, rows: list[tuple[str, int]] | None = None) -> None:
    seen: set[str] = set()
    for k, name in enumerate(names):
        if name in seen:
            raise GridError(rows[k][1] if rows else row, f"{what} {name} is given twice")
        seen.add(name)


_BLOCK = re.compile(r"""^\s*(?:-\s+)?["']?grid["']?\s*:\s*[|>][-+0-9]*\s*(?:#.*)?$""")


def row_line(raw_lines: list[str], key_line: int, row: int | None) -> int:
    """The file line of the grid text's line `row`: counted from the line after the key
    for a block scalar (`grid: |`); else the key's own line."""
    if row is not None and 0 < key_line <= len(raw_lines) and _BLOCK.match(raw_lines[key_line - 1]):
        return key_line + 1 + row
    return key_line
