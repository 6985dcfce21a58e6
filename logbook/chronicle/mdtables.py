"""Markdown tables whose columns line up in the text itself (#16), as a hand-kept logbook's do:
every cell padded to its column's width (wide characters count two)."""

from __future__ import annotations

import re
import unicodedata

_DELIMITER = re.compile(r":?-+:?\Z")


def align(text: str) -> str:
    """The Markdown text with each of its tables padded so that their pipes line up.

    Args:
        text: Markdown; tables are runs of lines that start with "|" (outside fenced code), the
            second of them the delimiter row.

    Returns:
        The same document, the tables' cells padded.
    """
    out: list[str] = []
    block: list[str] = []
    fenced = False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        if line.startswith("|") and not fenced:
            block.append(line)
            continue
        out += _table(block)
        block = []
        out.append(line)
    out += _table(block)
    return "\n".join(out)


def _table(lines: list[str]) -> list[str]:
    rows = [_cells(line) for line in lines]
    if len(rows) < 2 or not all(_DELIMITER.match(c) for c in rows[1]):
        return lines
    n = max(len(r) for r in rows)
    rows = [r + [""] * (n - len(r)) for r in rows]
    header, body = rows[0], rows[2:]
    widths = [max(3, *(_width(r[j]) for r in [header, *body])) for j in range(n)]
    return [
        _join(header, widths),
        "|" + "|".join(f" {'-' * w} " for w in widths) + "|",
        *(_join(r, widths) for r in body),
    ]


def _cells(line: str) -> list[str]:
    """The cells of a row, split at pipes that are not backslash-escaped."""
    cells, current, i = [], [], 1 if line.startswith("|") else 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            current.append(line[i : i + 2])
            i += 2
            continue
        if c == "|":
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(c)
        i += 1
    if "".join(current).strip():
        cells.append("".join(current).strip())
    return cells


def _join(cells: list[str], widths: list[int]) -> str:
    padded = (c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=True))
    return "|" + "|".join(f" {p} " for p in padded) + "|"


def _width(text: str) -> int:
    """Columns the text takes in a monospace font: wide (CJK) characters take two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
