"""The training survives logbook: a kill of the recorder, or of the pump, leaves it running with
its output complete, where it was going and in the raw log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from helpers import logbook_cmd

LINES = 400
TRAIN = f"""
import sys, time
for i in range({LINES}):
    print(f"step={{i}} loss={{1.0 / (i + 1):.6f}}", flush=True)
    print(f"note {{i}}", file=sys.stderr, flush=True)
    time.sleep(0.01)
open(sys.argv[1], "w").write("finished")
"""


def _start(tmp_path: Path, marker: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    store = tmp_path / "store"
    out, err = tmp_path / "job.out", tmp_path / "job.err"
    with open(out, "wb") as o, open(err, "wb") as e:  # the job's own log files, as under SLURM
        wrapper = subprocess.Popen(
            logbook_cmd("run", "--store", str(store), "--run", "r", "--")
            + [sys.executable, "-c", TRAIN, str(marker)],
            stdout=o,
            stderr=e,
        )
    return wrapper, out, err


def _wait_for(predicate, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _processes(wrapper: subprocess.Popen[bytes]) -> tuple[psutil.Process, psutil.Process]:
    """(the pump, the training) among the wrapper's children."""

    def found() -> bool:
        return len(psutil.Process(wrapper.pid).children()) >= 2

    assert _wait_for(found, 30), "the wrapper should have started the pump and the training"
    kids = psutil.Process(wrapper.pid).children()
    pump = next(p for p in kids if "logbook.pump" in " ".join(p.cmdline()))
    training = next(p for p in kids if p.pid != pump.pid)
    return pump, training


def _assert_complete(out: Path, err: Path, store: Path, marker: Path) -> None:
    assert _wait_for(marker.exists, 60), "the training should run to its end"
    # The pump ends when the training's output does; give it a moment to write the last bytes.
    want_out = [f"step={i} loss={1.0 / (i + 1):.6f}" for i in range(LINES)]
    assert _wait_for(lambda: out.read_text().splitlines()[-1:] == want_out[-1:], 10)
    assert out.read_text().splitlines() == want_out
    assert [ln for ln in err.read_text().splitlines() if ln.startswith("note ")] == [
        f"note {i}" for i in range(LINES)
    ]
    (raw,) = store.glob("logs/run=r/*/stdout.log")
    assert _wait_for(lambda: raw.read_text().splitlines() == want_out, 10)


def test_kill_9_of_the_recorder_leaves_the_training_and_its_output_whole(tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    wrapper, out, err = _start(tmp_path, marker)
    _, training = _processes(wrapper)
    assert _wait_for(lambda: out.read_text().count("\n") >= 50, 30)
    wrapper.send_signal(signal.SIGKILL)
    wrapper.wait(timeout=10)
    _assert_complete(out, err, tmp_path / "store", marker)
    # It wrote its marker just before exiting: give the interpreter's shutdown a moment.
    assert _wait_for(
        lambda: not training.is_running() or training.status() == psutil.STATUS_ZOMBIE, 10
    )


def test_kill_9_of_the_pump_leaves_the_recorder_to_copy_the_rest(tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    wrapper, out, err = _start(tmp_path, marker)
    pump, _ = _processes(wrapper)
    assert _wait_for(lambda: out.read_text().count("\n") >= 50, 30)
    os.kill(pump.pid, signal.SIGKILL)
    assert wrapper.wait(timeout=60) == 0
    _assert_complete(out, err, tmp_path / "store", marker)
    assert "the output pump stopped (killed by SIGKILL)" in err.read_text()


def _query(store: Path, sql: str) -> list[dict[str, object]]:
    import json

    done = subprocess.run(
        logbook_cmd("query", "--store", str(store), "--format", "json", sql),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_after_a_kill_9_the_next_writer_records_every_metric_line(tmp_path: Path) -> None:
    """The raw log is the write-ahead log of metrics: what the killed recorder had not parsed is
    parsed by the next command that writes, and the lost attempt gets the steps it reached."""
    marker = tmp_path / "finished"
    store = tmp_path / "store"
    wrapper, out, err = _start(tmp_path, marker)
    _processes(wrapper)
    assert _wait_for(lambda: out.read_text().count("\n") >= 100, 30)
    wrapper.send_signal(signal.SIGKILL)
    wrapper.wait(timeout=10)
    _assert_complete(out, err, store, marker)
    done = subprocess.run(
        logbook_cmd("doctor", "--store", str(store)), capture_output=True, text=True, timeout=120
    )
    assert "were never parsed" in done.stdout + done.stderr
    assert len(list(store.glob("logs/run=r/*/stdout.log"))) == 1  # parsed, and left where it was
    [points] = _query(store, "select count(*) as n, count(distinct step) as steps from metrics")
    assert points == {"n": LINES, "steps": LINES}
    [attempt] = _query(store, "select status, first_step, last_step from attempts")
    assert attempt == {"status": "lost", "first_step": 0, "last_step": LINES - 1}
    # Once recovered, never twice: another writer finds nothing left to parse.
    subprocess.run(logbook_cmd("compact", "--store", str(store)), check=True, timeout=120)
    [again] = _query(store, "select count(*) as n from metrics")
    assert again["n"] == LINES


def test_a_kill_9_just_after_the_training_starts_leaves_it_whole(tmp_path: Path) -> None:
    """The pump starts before the training: killed the moment the training exists, the wrapper
    leaves no output in a pipe that nobody reads."""
    marker = tmp_path / "finished"
    wrapper, out, err = _start(tmp_path, marker)

    def training_started() -> bool:
        kids = psutil.Process(wrapper.pid).children()
        return any("logbook.pump" not in " ".join(k.cmdline()) for k in kids)

    assert _wait_for(training_started, 30)
    wrapper.send_signal(signal.SIGKILL)
    wrapper.wait(timeout=10)
    _assert_complete(out, err, tmp_path / "store", marker)
