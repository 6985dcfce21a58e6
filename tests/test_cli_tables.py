"""Tables fit the terminal they are shown in: every report of the demo's store, at 80, 100 and
160 columns, through the real commands; --wide shows every column; the script formats never
change with the width."""

from __future__ import annotations

import os
import re
import select
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import logbook_cmd
from rich.cells import cell_len

REPORTS = [
    ["runs"],
    ["show", "demo"],
    ["incidents", "demo", "--each"],
    ["events", "demo"],
    ["metrics", "demo"],
    ["cost", "demo"],
    ["goodput", "demo"],
    ["data-mix", "demo"],
    ["query", "select * from attempts"],
]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _on_a_terminal(width: int | None) -> dict[str, str | None]:
    """The environment of a terminal `width` columns wide, as rich sees it (TTY_COMPATIBLE)."""
    return {"TTY_COMPATIBLE": "1", "NO_COLOR": "1", "COLUMNS": str(width) if width else None}


@pytest.fixture(scope="module")
def demo_store(demo_run: tuple[Path, str]) -> str:
    return str(demo_run[0] / ".logbook")


def _columns(invoke: Any, args: list[str], store: str) -> list[str]:
    """The table's columns, as its Markdown names them."""
    out = invoke([*args, "--store", store, "--format", "markdown"]).stdout
    return [h.strip() for h in out.splitlines()[0].strip("| ").split(" | ")]


def _screen(text: str) -> list[str]:
    return ANSI.sub("", text).splitlines()


def _table(lines: list[str]) -> tuple[list[str], list[str]]:
    """The header's names, and the rows: the lines between the rule and a blank line."""
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    rest = lines[rule + 1 :]
    return lines[rule - 1].split(), rest[: rest.index("")] if "" in rest else rest


@pytest.mark.parametrize("args", REPORTS, ids=" ".join)
def test_each_table_fits_80_100_and_160_columns(
    args: list[str], invoke: Any, demo_store: str
) -> None:
    columns = _columns(invoke, args, demo_store)
    for width in (80, 100, 160):
        r = invoke([*args, "--store", demo_store], env=_on_a_terminal(width))
        lines = _screen(r.stdout)
        too_long = [line for line in lines if cell_len(line) > width]
        assert not too_long, (width, too_long)
        shown, rows = _table(lines)
        assert shown == [c for c in columns if c in shown], width  # whole, in the table's order
        assert rows and all(row.strip() for row in rows), width
        hidden = [c for c in columns if c not in shown]
        if hidden:
            note = _screen(r.stderr)[-1]
            assert note.startswith(
                f"hidden to fit {width} columns (--wide shows them): {hidden[0]}"
            )
            assert cell_len(note) <= width
        else:
            assert "hidden" not in r.stderr, width
    wide = invoke([*args, "--store", demo_store, "--wide"], env=_on_a_terminal(80))
    assert _table(_screen(wide.stdout))[0] == columns
    assert "…" not in wide.stdout and "hidden" not in wide.stderr


def test_the_first_columns_of_show_are_kept_and_long_text_cut(invoke: Any, demo_store: str) -> None:
    r = invoke(["show", "demo", "--store", demo_store], env=_on_a_terminal(80))
    lines = _screen(r.stdout)
    assert lines[0].strip() == "run demo"
    shown, rows = _table(lines)
    assert shown[:4] == ["label", "status", "class", "summary"] or shown[:3] == [
        "label",
        "status",
        "class",
    ]
    assert "summary" in shown
    first = rows[0]
    assert first.split()[:3] == ["1.00", "crashed", "python_exception"]
    assert first.rstrip().endswith("…")  # the crash's summary, cut
    assert "RuntimeError at train.py:" in first


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "markdown"])
def test_script_formats_ignore_the_width(fmt: str, invoke: Any, demo_store: str) -> None:
    args = ["show", "demo", "--store", demo_store, "--format", fmt]
    narrow = invoke(args, env=_on_a_terminal(80))
    unset = invoke(args, env={"COLUMNS": None})
    assert narrow.stdout == unset.stdout and "RuntimeError at train.py:262" in narrow.stdout
    assert "hidden" not in narrow.stderr


def test_a_pipe_gets_whole_values_whatever_columns_says(invoke: Any, demo_store: str) -> None:
    r = invoke(["show", "demo", "--store", demo_store], env={"COLUMNS": "80"})
    header = r.stdout.splitlines()[0]
    assert "summary" in header and "hosts" in header and "…" not in r.stdout
    assert "RuntimeError at train.py:262 in main: injected failure at step 130" in r.stdout


def test_a_real_terminal_of_100_columns(demo_store: str) -> None:
    """`logbook show` on a pseudo-terminal 100 columns wide, with no COLUMNS: rich asks the
    terminal its size; the title, the table and the note fit."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        logbook_cmd("show", "demo", "--store", demo_store),
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**env, "TERM": "xterm-256color", "NO_COLOR": "1"},
    )
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        try:
            chunk = os.read(leader, 65536) if ready else b""
        except OSError:  # EIO: the terminal's other end closed
            chunk = b""
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    lines = [ANSI.sub("", line) for line in out.decode().replace("\r\n", "\n").splitlines()]
    assert lines[0].strip() == "run demo"
    assert all(cell_len(line) <= 100 for line in lines), lines
    assert any(line.startswith("1.00 ") and "python_exception" in line for line in lines)
    assert lines[-1].startswith("hidden to fit 100 columns (--wide shows them): ")
