"""Helpers shared by test modules (tests/ is on sys.path, see pyproject's pythonpath)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def logbook_cmd(*args: str) -> list[str]:
    """The argv of `python -m logbook ARGS`, for real subprocesses."""
    return [sys.executable, "-m", "logbook", *args]


FLOOD = (
    "import sys\nn, pad = int(sys.argv[1]), '-' * int(sys.argv[2])\n"
    "sys.stdout.write(''.join(f'step={i} loss={1 + i % 1000 / 1000:.4f} grad_norm=0.5{pad}\\n' "
    "for i in range(n)))\n"
)


def run_flood(  # type: ignore[no-untyped-def]
    run_logbook, store: Path, tmp_path: Path, run: str, n: int, *, pad: int = 0, env=None
) -> Path:
    """`logbook run --catch-up 0` of a child that prints `n` lines `step=i loss=.. grad_norm=0.5`
    (and `pad` dashes) at once: a flood whose rest its end leaves to the background finish. The
    attempt's coverage file."""
    script = tmp_path / "flood.py"
    script.write_text(FLOOD)
    run_logbook(
        "run", "--store", str(store), "--run", run, "--no-capture", "--catch-up", "0", "--",
        sys.executable, str(script), str(n), str(pad), check=0, env=env or {},
    )  # fmt: skip
    [cov] = store.glob(f"logs/run={run}/*/parsed.json")
    return cov


def event(i: int, run: str = "r") -> dict[str, Any]:
    """An events row with step i."""
    return {
        "run": run,
        "attempt_id": "a",
        "event_id": uuid.uuid4().hex,
        "time": T0 + timedelta(seconds=i),
        "step": i,
        "kind": "note",
        "severity": "info",
        "source": "cli",
        "message": f"note {i}",
        "data": None,
    }


def nvml_works() -> bool:
    """Whether NVML answers here: then the code under test never runs nvidia-smi, so tests
    that fake nvidia-smi are skipped (`uses_nvidia_smi`)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception:
        return False
    return True


uses_nvidia_smi = pytest.mark.skipif(nvml_works(), reason="NVML answers before nvidia-smi")


# Fixed identity and no user/system config, so tests with git do not depend on the machine.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(repo: Path, *args: str) -> str:
    """Run the git CLI in `repo` and return its stdout."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def training_process(wrapper_pid: int, timeout: float = 30.0) -> Any:
    """The training command a `logbook run` started: its child that is not the output pump."""
    import time

    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kid in psutil.Process(wrapper_pid).children():
            try:
                if "logbook.pump" not in " ".join(kid.cmdline()):
                    return kid
            except psutil.Error:
                continue
        time.sleep(0.02)
    raise AssertionError(f"logbook run {wrapper_pid} started no training in {timeout} s")


StreamLine = tuple[int | None, Any, bytes]  # (step, Parsed, line)


def parse_stream(data: bytes) -> list[StreamLine]:
    """(step, parsed, line) for each line of raw output with metrics, a step or a counter, the
    step being the one the line names, else the last progress-bar counter drawn before it (#15)."""
    from logbook.record.batch import split_lines
    from logbook.record.parsers import LineParser

    parser = LineParser()
    counter = None
    out = []
    for line in split_lines(data):
        p = parser.parse(line)
        if p is None:
            continue
        if p.counter is not None:
            counter = p.counter
        out.append((p.step if p.step is not None else counter, p, line))
    return out


def nan_findings(walk: list[StreamLine]) -> list[tuple[str, int | None]]:
    """(metric, step) of each NaN event the detectors raise on a parsed stream."""
    from logbook.record.detectors import Detectors

    det = Detectors()
    return [
        (f.name, f.step) for s, p, _ in walk for f in det.observe(s, p.values) if f.kind == "nan"
    ]
