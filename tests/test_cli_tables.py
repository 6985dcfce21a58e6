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


@pytest.fixture(scope="module")
def demo_store(demo_run: tuple[Path, str]) -> str:
    return str(demo_run[0] / ".logbook")


def _columns(invoke: Any, args: list[str], store: str) -> list[str]:
    """The table's columns, as its Markdown names them."""
    out = invoke([*args, "--store", store, "--format", "markdown"]).stdout
    return [h.strip() for h in out.splitlines()[0].strip("| ").split(" | ")]


def _table_lines(stdout: str) -> list[str]:
    """The table's lines: up to the blank line before `cost`'s basis notes, if any."""
    lines = stdout.splitlines()
    return lines[: lines.index("")] if "" in lines else lines


@pytest.mark.parametrize("args", REPORTS, ids=" ".join)
def test_each_table_fits_80_100_and_160_columns(
    args: list[str], invoke: Any, demo_store: str
) -> None:
    columns = _columns(invoke, args, demo_store)
    for width in (80, 100, 160):
        r = invoke([*args, "--store", demo_store], env={"COLUMNS": str(width)})
        too_long = [line for line in r.stdout.splitlines() if cell_len(line) > width]
        assert not too_long, (width, too_long)
        lines = _table_lines(r.stdout)
        shown = [h.strip() for h in lines[0].split(" | ")]
        assert shown == [c for c in columns if c in shown], width  # whole, in the table's order
        assert all(line.count(" | ") == len(shown) - 1 for line in lines if "|" in line), width
        hidden = [c for c in columns if c not in shown]
        if hidden:
            note = r.stderr.strip().splitlines()[-1]
            assert note.startswith(
                f"hidden to fit {width} columns (--wide shows them): {hidden[0]}"
            )
            assert cell_len(note) <= width
        else:
            assert "hidden" not in r.stderr, width
    wide = invoke([*args, "--store", demo_store, "--wide"], env={"COLUMNS": "80"})
    assert [h.strip() for h in _table_lines(wide.stdout)[0].split(" | ")] == columns
    assert "…" not in wide.stdout and "hidden" not in wide.stderr


def test_the_first_columns_of_show_are_kept_and_long_text_cut(invoke: Any, demo_store: str) -> None:
    r = invoke(["show", "demo", "--store", demo_store], env={"COLUMNS": "80"})
    header, _rule, first, *_ = r.stdout.splitlines()
    assert header.split(" | ")[:3] == ["label", "status     ", "class           "]
    assert "summary" in header
    assert first.startswith("1.00  | crashed     | python_exception |")
    assert first.rstrip().endswith("…")  # the crash's summary, cut
    assert "RuntimeError at train.py:" in first


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "markdown"])
def test_script_formats_ignore_the_width(fmt: str, invoke: Any, demo_store: str) -> None:
    args = ["show", "demo", "--store", demo_store, "--format", fmt]
    narrow = invoke(args, env={"COLUMNS": "80"})
    unset = invoke(args, env={"COLUMNS": None})
    assert narrow.stdout == unset.stdout and "RuntimeError at train.py:262" in narrow.stdout
    assert "hidden" not in narrow.stderr


def test_a_pipe_without_columns_gets_whole_values(invoke: Any, demo_store: str) -> None:
    r = invoke(["show", "demo", "--store", demo_store], env={"COLUMNS": None})
    header = r.stdout.splitlines()[0]
    assert "summary" in header and "hosts" in header and "…" not in r.stdout


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
