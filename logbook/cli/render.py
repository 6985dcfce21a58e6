"""Rows out: a rich table for people, plain text, CSV, JSON or JSON lines for scripts.

Colour and box drawing follow the terminal (and NO_COLOR). A table on a terminal fits its width
(COLUMNS wins, as rich reads it): the columns that fit in the table's priority order, long values
cut with an ellipsis, and a line on stderr naming what was hidden; `--wide` shows every column
whole, as a pipe or file always gets them (COLUMNS is often exported to processes that are not
writing to a terminal). The script formats never change with the width.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("table", "csv", "json", "jsonl", "markdown")
WIDE = "logbook.wide"  # the click context's meta key that --wide sets (see options.format_option)


def _plain(value: Any) -> Any:
    """A JSON-safe value: ISO-8601 times with zone, NaN/inf as null, bytes as hex."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):  # DuckDB sums of integers
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(_plain(value))
    value = _plain(value)
    return "" if value is None else value


def _cell(value: Any) -> str:
    """A value as people read it in a table."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        value = _plain(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render(
    data: pa.Table,
    fmt: str,
    *,
    out: Any = None,
    title: str | None = None,
    priority: Sequence[str] = (),
    wide: bool | None = None,
) -> None:
    """Write `data` to `out` (stdout) in `fmt`. A table too wide for the terminal keeps the
    columns `priority` names first (then the others in order) unless `wide` (default: the
    command line's --wide)."""
    out = out or sys.stdout
    names = data.column_names
    rows = data.to_pylist()
    if fmt == "json":
        out.write(json.dumps([_plain(r) for r in rows], indent=2, allow_nan=False) + "\n")
    elif fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(_plain(r), allow_nan=False) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(names)
        for r in rows:
            w.writerow([_csv_cell(v) for v in r.values()])
        out.write(buf.getvalue())
    elif fmt == "markdown":
        out.write("| " + " | ".join(names) + " |\n")
        out.write("|" + "|".join("---" for _ in names) + "|\n")
        for r in rows:
            out.write(
                "| "
                + " | ".join(_cell(v).replace("|", "\\|").replace("\n", " ") for v in r.values())
                + " |\n"
            )
    else:
        _rich_table(names, rows, out, title, priority, _wide_asked() if wide is None else wide)


def _wide_asked() -> bool:
    import click

    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(WIDE))


def text_width(out: Any = None) -> int | None:
    """The width that text beside a table (notes, a legend) should wrap to: the table's, or
    None for whole lines (--wide, or a pipe or file)."""
    from rich.console import Console

    return _fit_width(Console(file=out or sys.stdout), _wide_asked())


def _fit_width(console: Any, wide: bool) -> int | None:
    """The width a table must fit: the terminal's (rich reads COLUMNS first); None for whole
    values (--wide, or a pipe or file)."""
    return int(console.width) if console.is_terminal and not wide else None


def _rich_table(
    names: list[str],
    rows: list[dict[str, Any]],
    out: Any,
    title: str | None,
    priority: Sequence[str],
    wide: bool,
) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, highlight=False)
    width = _fit_width(console, wide)
    if width is not None:
        _fitted_table(names, rows, console, width, title, priority)
        return
    # Whole values, never folded: a pipe or file (plain), or --wide on a terminal (the terminal
    # wraps its long lines itself).
    terminal = console.is_terminal
    console = Console(
        file=out, highlight=False, width=1 << 16, color_system="auto" if terminal else None
    )
    table = Table(
        title=title if terminal else None,
        box=box.SIMPLE_HEAD if terminal else box.ASCII2,
        show_edge=False,
        pad_edge=not terminal,  # as piped before; on a terminal, as the fitted table
        title_justify="left",
    )
    for name in names:
        table.add_column(name, no_wrap=True)
    for r in rows:
        # Text(), not markup: values come from users and training output.
        table.add_row(*(Text(_cell(v)) for v in r.values()))
    console.print(table)
    if not rows:
        console.print(Text("(no rows)"), style="dim")


def _fitted_table(
    names: list[str],
    rows: list[dict[str, Any]],
    console: Any,
    width: int,
    title: str | None,
    priority: Sequence[str],
) -> None:
    """The table cut to `width` cells: its first-priority columns, long values ending in "…"."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from logbook.cli.fit import fit_columns

    cells = [[_one_line(_cell(v)) for v in r.values()] for r in rows]
    fit = fit_columns(names, cells, width, priority=priority, gap=3)
    table = Table(
        title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left"
    )
    for i, w in zip(fit.shown, fit.widths, strict=True):
        table.add_column(names[i], width=w, no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*(Text(row[i]) for i in fit.shown))
    console.print(table)
    if not rows:
        console.print(Text("(no rows)"), style="dim")
    if fit.hidden:
        _say_hidden(fit.hidden, width)


def _one_line(text: str) -> str:
    """A value on one line of the table: line breaks and tabs as spaces."""
    return re.sub(r"[\r\n\t]+", " ", text)


def _say_hidden(hidden: list[str], width: int) -> None:
    """One line on stderr: which columns the width left out, and how to see them."""
    from rich.console import Console
    from rich.text import Text

    note = Text(f"hidden to fit {width} columns (--wide shows them): {', '.join(hidden)}")
    note.truncate(width, overflow="ellipsis")
    Console(stderr=True, highlight=False, width=max(width, 1)).print(note, style="dim")


@contextmanager
def progress_on_stderr() -> Iterator[Callable[[str], None]]:
    """A `progress` callback for a long library call: a spinner with the stage on stderr when it
    is a terminal, nothing when it is not (a pipe or a log stays quiet). The spinner goes away
    when the call ends; warnings on stderr print above it; stdout is left alone."""
    if not sys.stderr.isatty():
        yield lambda _stage: None
        return
    from rich.console import Console
    from rich.live import Live
    from rich.spinner import Spinner
    from rich.text import Text

    spinner = Spinner("dots", text=Text(""))
    console = Console(stderr=True, highlight=False)
    with Live(
        spinner,
        console=console,
        transient=True,
        refresh_per_second=12.5,
        redirect_stdout=False,
    ):
        # Text, not markup: a stage may name a file or a run.
        yield lambda stage: spinner.update(text=Text(f"{stage}…"))
