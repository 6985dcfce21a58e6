"""The kind of a figure's basis, the word every basis text starts with (#16):

- measured: read on the machine (NVML's energy counter, power samples, the inventory, the clock);
- declared: given by people (a flag, logbook.toml, `logbook run --gpu-price`, an imported history,
  the scheduler's allocation);
- estimated: worked out from named assumptions (a rated power, codecarbon's constants, a price
  table, a default PUE or grid intensity);
- unknown: the figure is null, and the rest of the text says why.

A figure worked out from others has the weakest kind among them, in that order. These are SQL
pieces over basis texts, for the report (logbook.cost.report).
"""

from __future__ import annotations

KINDS = ("measured", "declared", "estimated", "unknown")  # strongest first
_LIST = "[" + ", ".join(f"'{k}'" for k in KINDS) + "]"
_PREFIX = "^(" + "|".join(KINDS) + "): "


def rank(text: str) -> str:
    """SQL: the position of the kind `text` starts with in KINDS (1 = measured), else null."""
    return f"list_position({_LIST}, split_part({text}, ':', 1))"


def weakest(*texts: str) -> str:
    """SQL: the weakest kind among the basis texts `texts` (a kind alone, 'declared:', will do)."""
    return f"{_LIST}[greatest({', '.join(rank(t) for t in texts)})]"


def weakest_over(text: str) -> str:
    """SQL aggregate: the weakest kind among the rows' basis texts."""
    return f"{_LIST}[max({rank(text)})]"


def without_kind(text: str) -> str:
    """SQL: a basis text without its leading kind, to nest it in another."""
    return f"regexp_replace({text}, '{_PREFIX}', '')"


def of_source(source: str | None) -> str:
    """The kind of a setting by where it came from: a default is an assumption (estimated),
    anything given by people is declared."""
    return "estimated" if source is None or source.startswith("default") else "declared"
