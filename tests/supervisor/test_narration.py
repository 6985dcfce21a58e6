"""`logbook run` says each decision on stderr, one `logbook: ` line each, through real processes:
launching, how an attempt ended, relaunching as which label in how long, giving up and why, a hang,
a signal; the training's stdout carries its own output only; --quiet and LOGBOOK_QUIET=1 silence it."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import logbook_cmd

# Attempt N prints three steps from 10*N, half a line on stderr, then exits as TRAIN_END says.
TRAIN = textwrap.dedent(
    """
    import os, sys, time
    restart = int(os.environ["LOGBOOK_RESTART_COUNT"])
    for s in range(1, 4):
        print(f"step={s + 10 * restart} loss={1 / s:.3f}", flush=True)
    sys.stderr.write("half a line")
    sys.stderr.flush()
    end = os.environ.get("TRAIN_END", "exit3")
    if end == "exit3" and restart < 2:
        sys.exit(3)
    if end == "usage":
        print("usage: train.py [--lr LR]\\ntrain.py: error: unrecognized arguments: --lrr", file=sys.stderr)
        sys.exit(2)
    if end == "sleep":
        print("ready", flush=True)
        time.sleep(60)
    print("done")
    """
)
STDOUT = "step=1 loss=1.000\nstep=2 loss=0.500\nstep=3 loss=0.333\n"
FAST = ["--no-capture", "--sample-every", "0", "--backoff", "0.2"]


@pytest.fixture
def train(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(TRAIN)
    return path


def _run(tmp_path: Path, train: Path, *flags: str, end: str, **env: str) -> Any:
    args = logbook_cmd("run", "--store", str(tmp_path / "s"), "--run", "t", *FAST, *flags)
    base = {k: v for k, v in os.environ.items() if k != "LOGBOOK_QUIET"}
    child_env = {**base, "TRAIN_END": end, **env}
    return subprocess.run(
        [*args, "--", "python", str(train)],
        capture_output=True,
        text=True,
        env=child_env,
        cwd=tmp_path,
        timeout=120,
    )


def _ours(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("logbook: ")]


def test_a_crash_a_relaunch_and_giving_up(tmp_path: Path, train: Path) -> None:
    r = _run(tmp_path, train, "--restarts", "1", end="exit3")
    assert r.returncode == 3
    assert r.stdout == STDOUT + STDOUT.replace("=1 ", "=11 ").replace("=2 ", "=12 ").replace(
        "=3 ", "=13 "
    )
    # The training's half line is ended before logbook's line, never joined to it.
    assert r.stderr.splitlines() == [
        "logbook: 1.00 launching (run t)",
        "half a line",
        "logbook: 1.00 crashed (unknown) at step 3, exit 3; relaunching as 1.01 in 0.2 s",
        "logbook: 1.01 launching (run t, restart 1 of 1)",
        "half a line",
        "logbook: 1.01 crashed (unknown) at step 13, exit 3; "
        "giving up: unknown: no restarts left (1 allowed)",
    ]


def test_a_class_not_worth_retrying_is_given_up_at_once(tmp_path: Path, train: Path) -> None:
    r = _run(tmp_path, train, "--restarts", "3", end="usage")
    assert r.returncode == 2 and r.stdout == STDOUT
    assert _ours(r.stderr) == [
        "logbook: 1.00 launching (run t)",
        "logbook: 1.00 crashed (configuration) at step 3, exit 2; "
        "giving up: configuration: not worth retrying",
    ]


def test_completed_and_without_restarts(tmp_path: Path, train: Path) -> None:
    r = _run(tmp_path, train, end="done")
    assert r.returncode == 0 and r.stdout == STDOUT + "done\n"
    assert r.stderr.splitlines() == [
        "logbook: 1.00 launching (run t)",
        "half a line",
        "logbook: 1.00 completed at step 3, exit 0",
    ]
    r = _run(tmp_path, train, end="exit3")  # the next attempt of the run: 1.01
    assert r.stderr.splitlines()[-1] == (
        "logbook: 1.01 crashed (unknown) at step 3, exit 3; "
        "not relaunching: unknown: restarts are off (--restarts 0)"
    )


def test_a_hang(tmp_path: Path, train: Path) -> None:
    r = _run(tmp_path, train, "--hang-timeout", "1", "--grace", "5", end="sleep")
    assert r.stdout == STDOUT + "ready\n"
    assert _ours(r.stderr) == [
        "logbook: 1.00 launching (run t)",
        "logbook: 1.00 hung at step 3: no output and no progress for 1 s; stopping it",
        "logbook: 1.00 hung at step 3, SIGTERM; not relaunching: hung: restarts are off "
        "(--restarts 0)",
    ]


def test_a_stop_received(tmp_path: Path, train: Path) -> None:
    args = logbook_cmd(
        "run", "--store", str(tmp_path / "s"), "--run", "t", *FAST, "--restarts", "2"
    )
    env = {k: v for k, v in os.environ.items() if k != "LOGBOOK_QUIET"}
    proc = subprocess.Popen(
        [*args, "--", "python", str(train)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "TRAIN_END": "sleep"},
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    out = "".join(proc.stdout.readline() for _ in range(4))
    assert out.endswith("ready\n")
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=60)
    assert out + rest == STDOUT + "ready\n"
    lines = _ours(err)
    assert lines[:2] == [
        "logbook: 1.00 launching (run t)",
        "logbook: 1.00 received SIGTERM; passing it on to the command",
    ]
    assert lines[2].startswith("logbook: 1.00 ") and lines[2].endswith(
        ", SIGTERM; not relaunching: logbook was asked to stop"
    )
    assert len(lines) == 3


@pytest.mark.parametrize("how", ["--quiet", "LOGBOOK_QUIET=1"])
def test_quiet(tmp_path: Path, train: Path, how: str) -> None:
    flags, env = (["--quiet"], {}) if how == "--quiet" else ([], {"LOGBOOK_QUIET": "1"})
    r = _run(tmp_path, train, *flags, "--restarts", "1", end="exit3", **env)
    assert r.returncode == 3
    assert r.stderr == "half a line" * 2
    assert "logbook" not in r.stdout
