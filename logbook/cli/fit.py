"""Which columns of a table fit a terminal, and how wide each may be.

The columns are taken in the table's priority order while their narrowest widths fit; the first
that does not fit and all after it are hidden (and named, so `--wide` can show them): what is
shown is always the head of the priority list. A header is never cut: a column is never narrower
than its header. Names, classes and times (up to 20 cells) are kept whole; longer text shares
what width is left and is cut with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len

SHORTEST_CUT = 20  # a value is cut to no fewer cells than this (nor than its header)


@dataclass
class Fit:
    shown: list[int]  # indexes of the columns shown, in the table's own order
    widths: list[int]  # the width of each shown column
    hidden: list[str]  # names of the columns left out, in the table's order


def fit_columns(
    names: Sequence[str],
    cells: Sequence[Sequence[str]],
    width: int,
    *,
    priority: Sequence[str] = (),
    gap: int = 3,
) -> Fit:
    """The columns of `names` (rows of text `cells`) that fit `width` cells with `gap` between
    columns. `priority` names the columns to keep first; the others follow in table order."""
    natural = [
        max([cell_len(n)] + [cell_len(row[i]) for row in cells]) for i, n in enumerate(names)
    ]
    least = [min(natural[i], max(cell_len(n), SHORTEST_CUT)) for i, n in enumerate(names)]
    chosen: list[int] = []
    for i in _by_priority(names, priority):
        if chosen and sum(least[j] for j in chosen) + least[i] + gap * len(chosen) > width:
            break
        chosen.append(i)
    chosen.sort()
    budget = width - gap * (len(chosen) - 1)
    widths = _share(budget, [natural[i] for i in chosen], [least[i] for i in chosen])
    hidden = [n for i, n in enumerate(names) if i not in chosen]
    return Fit(chosen, widths, hidden)


def _by_priority(names: Sequence[str], priority: Sequence[str]) -> list[int]:
    first = [names.index(p) for p in priority if p in names]
    return first + [i for i in range(len(names)) if i not in first]


def _share(budget: int, natural: list[int], least: list[int]) -> list[int]:
    """Widths between `least` and `natural` summing to at most `budget`: every column whole if
    they fit, else the longest cut to one common cap, the highest that fits."""
    if sum(natural) <= budget:
        return natural

    def capped(cap: int) -> list[int]:
        return [min(n, max(low, cap)) for n, low in zip(natural, least, strict=True)]

    low, high = 0, max(natural)
    while low < high:  # the highest cap whose widths fit
        mid = (low + high + 1) // 2
        low, high = (mid, high) if sum(capped(mid)) <= budget else (low, mid - 1)
    widths = capped(low)
    if sum(widths) > budget:  # one column wider than the terminal: cut even its header
        return [max(1, budget)] if len(widths) == 1 else widths
    for i, n in enumerate(natural):  # what the common cap leaves, to the first columns cut
        extra = min(n - widths[i], budget - sum(widths))
        widths[i] += max(0, extra)
    return widths
