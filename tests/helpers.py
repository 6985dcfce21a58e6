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
