"""Rows out: a rich table for people, plain text, CSV, JSON or JSON lines for scripts.

Colour and box drawing follow the terminal (and NO_COLOR); columns and values never do.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("table", "csv", "json", "jsonl", "markdown")


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


def render(data: pa.Table, fmt: str, *, out: Any = None, title: str | None = None) -> None:
    """Write `data` to `out` (stdout) in `fmt`."""
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
        _rich_table(names, rows, out, title)


def _rich_table(names: list[str], rows: list[dict[str, Any]], out: Any, title: str | None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, highlight=False)
    if not console.is_terminal:  # a pipe or file gets whole values, never folded to 80 columns
        console = Console(file=out, highlight=False, width=1 << 16, color_system=None)
    table = Table(
        title=title if console.is_terminal else None,
        box=box.SIMPLE_HEAD if console.is_terminal else box.ASCII2,
        show_edge=console.is_terminal,
        title_justify="left",
    )
    for name in names:
        table.add_column(name, overflow="fold", no_wrap=not console.is_terminal)
    for r in rows:
        # Text(), not markup: values come from users and training output.
        table.add_row(*(Text(_cell(v)) for v in r.values()))
    console.print(table)
    if not rows:
        console.print(Text("(no rows)"), style="dim")


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
