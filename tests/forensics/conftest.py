"""Real children whose output lands in log files, the way `logbook run` tees it, and written logs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logbook.forensics import Verdict, classify_end


@dataclass
class Child:
    """A finished child: its exit status as Popen reports it, and its two logs."""

    returncode: int
    logs: list[Path]

    def classify(self, **kw: Any) -> Verdict:
        return classify_end(returncode=self.returncode, log_paths=self.logs, **kw)

    @property
    def stderr(self) -> str:
        return self.logs[1].read_text(errors="replace")


@pytest.fixture
def run_child(tmp_path: Path) -> Callable[..., Child]:
    """Run argv (or Python source with `python=`) with stdout/stderr going to stdout.log/stderr.log."""
    count = 0

    def run(
        argv: list[str] | None = None, *, python: str | None = None, cwd: Path | None = None
    ) -> Child:
        nonlocal count
        count += 1
        d = tmp_path / f"attempt{count}"
        d.mkdir()
        if python is not None:
            script = d / "train.py"
            script.write_text(textwrap.dedent(python))
            argv = [sys.executable, str(script)]
        assert argv is not None
        logs = [d / "stdout.log", d / "stderr.log"]
        with open(logs[0], "wb") as out, open(logs[1], "wb") as err:
            proc = subprocess.run(argv, stdout=out, stderr=err, cwd=cwd or d, timeout=120)
        return Child(proc.returncode, logs)

    return run


@pytest.fixture
def write_log(tmp_path: Path) -> Callable[..., list[Path]]:
    """Write exact texts (what this machine cannot produce) as an attempt's stderr (and stdout)."""
    count = 0

    def write(stderr: str, stdout: str = "") -> list[Path]:
        nonlocal count
        count += 1
        d = tmp_path / f"written{count}"
        d.mkdir()
        (d / "stdout.log").write_text(stdout)
        (d / "stderr.log").write_text(stderr)
        return [d / "stdout.log", d / "stderr.log"]

    return write
