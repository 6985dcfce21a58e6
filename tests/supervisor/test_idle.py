"""What an idle wrapper still does while it sleeps instead of polling: it sees output after a long
silence at once, forwards a signal at once, stops a hang on time, and keeps its journal alive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import logbook_cmd

from logbook.pump.wakeup import Wakeup
from logbook.query import run_sql
from logbook.record.parsers import LineParser
from logbook.store import Store, journal
from logbook.supervisor import progress as progress_mod
from logbook.supervisor.progress import Progress

QUIET_THEN_PRINT = """
import sys, time
time.sleep(3)
print(f"step=7 loss=0.25 printed_at={time.time():.3f}", flush=True)
time.sleep(3)
"""


def test_a_metric_printed_after_a_long_silence_is_parsed_at_once(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # The follower sleeps while the command is silent; the pump's "o" must wake it. The point's
    # time is when it was parsed: within a second of the print, not at the exit 3 s later.
    script = tmp_path / "quiet.py"
    script.write_text(QUIET_THEN_PRINT)
    run_logbook("run", "--store", str(store_path), "--run", "q", "--no-capture", "--",
                sys.executable, str(script), check=0)  # fmt: skip
    rows = run_sql(
        Store(store_path), "select step, name, value, time from metrics order by name"
    ).to_pylist()
    by_name = {r["name"]: r for r in rows}
    assert by_name["loss"]["step"] == 7 and by_name["loss"]["value"] == 0.25, rows
    printed = by_name["printed_at"]["value"]
    parsed = by_name["loss"]["time"].timestamp()
    assert -0.001 <= parsed - printed < 1.5, (parsed - printed, rows)  # printed_at: to the ms


@pytest.mark.parametrize("ping_first", [True, False])
def test_the_idle_follower_wakes_on_output(tmp_path: Path, ping_first: bool) -> None:
    # The pump says "o" before the bytes reach the log: the follower must read again after it.
    log = tmp_path / "stdout.log"
    log.write_bytes(b"")
    got: list[tuple[float, int | None, dict[str, float]]] = []

    def on_metrics(points: pa.Table, when: datetime, log: str) -> None:  # step, name, value
        rows = points.to_pylist()
        values = {r["name"]: r["value"] for r in rows}
        got.append((time.monotonic(), rows[0]["step"], values))

    prog = Progress([log], None, parser=LineParser(), on_metrics=on_metrics)
    prog.start()
    try:
        time.sleep(progress_mod.RECENT_S + 1.0)  # idle: asleep until output or IDLE_READ_S
        t0 = time.monotonic()
        if ping_first:
            prog.saw_output()
            time.sleep(0.3)
        with log.open("ab") as f:
            f.write(b"step=3 loss=0.5\n")
        if not ping_first:
            prog.saw_output()
        deadline = t0 + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        prog.stop()
    [(when, step, values)] = got
    assert step == 3 and values["loss"] == 0.5
    assert when - t0 < 1.5 < progress_mod.IDLE_READ_S


def test_a_signal_on_another_thread_wakes_the_sleeping_main_thread() -> None:
    # The kernel may hand a process's signal to any thread; Python runs the handler in the main
    # one only. Asleep with no timeout, the main thread must still run it at once.
    ran: list[float] = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: ran.append(time.monotonic()))
    wake = Wakeup()
    try:
        assert wake.catch_signals()
        idle = threading.Event()
        other = threading.Thread(target=idle.wait, args=(30,), daemon=True)
        other.start()
        assert other.ident is not None
        timer = threading.Timer(0.3, signal.pthread_kill, args=(other.ident, signal.SIGUSR1))
        t0 = time.monotonic()
        timer.start()
        wake.wait(20)
        idle.set()
    finally:
        wake.close()
        signal.signal(signal.SIGUSR1, old)
    assert ran and ran[0] - t0 < 2 and time.monotonic() - t0 < 2


def test_ctrl_c_reaches_a_sleeping_child_at_once(store_path: Path, train_script: Path) -> None:
    # No hang watch, no sampler, no checkpoints: nothing but the signal can wake the wrapper.
    proc = subprocess.Popen(
        logbook_cmd("run", "--store", str(store_path), "--run", "c", "--sample-every", "0",
                    "--no-capture", "--", sys.executable, str(train_script)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TRAIN_MODE": "sleep"},
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == b"ready":
            break
    time.sleep(1.0)  # every loop asleep by now
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGINT
    assert time.monotonic() - t0 < 3


def test_a_hang_is_stopped_on_time_after_output_moved_the_deadline(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # The hang watch sleeps until the deadline the last output set, then looks again.
    script = tmp_path / "hang.py"
    script.write_text(
        "import time\nprint('step=1', flush=True)\ntime.sleep(1.5)\n"
        "print('step=2', flush=True)\ntime.sleep(600)\n"
    )
    t0 = time.monotonic()
    run_logbook("run", "--store", str(store_path), "--run", "h", "--hang-timeout", "2",
                "--grace", "1", "--no-capture", "--", sys.executable, str(script), check=None)  # fmt: skip
    took = time.monotonic() - t0
    [a] = run_sql(Store(store_path), "select status, hung_s from attempts").to_pylist()
    assert a["status"] == "hung" and 2.0 <= a["hung_s"] < 3.0, a
    assert took < 15, took


def test_an_idle_attempt_keeps_its_journal_alive(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Readers (doctor, the live views) take a journal untouched for LOST_AFTER_S as dead: the
    # heartbeat must go on while the command prints nothing and the main thread sleeps.
    from logbook.record.attempt import attempt_row
    from logbook.supervisor.lineage import Placement
    from logbook.supervisor.recorder import Recorder, _now

    monkeypatch.setattr(journal, "HEARTBEAT_S", 0.2)
    store = Store.open(store_path, create=True)
    rec = Recorder(store, "idle", "a1")
    row = attempt_row("idle", "a1", command=["sleep"], cwd=tmp_path, host="h",
                      placement=Placement("1.00", None, None), start=_now())  # fmt: skip
    rec.started(row, first_of_run=True)
    try:
        [path] = journal.list_journals(store.root, "idle")
        first = path.stat().st_mtime_ns
        time.sleep(1.0)
        assert path.stat().st_mtime_ns > first
        jf = journal.read(path)
        assert jf is not None and jf.is_alive()
    finally:
        rec.ended(status="completed", end_time=_now())


def test_a_long_idle_child_is_running_on_record(store_path: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        logbook_cmd("run", "--store", str(store_path), "--run", "i", "--no-capture", "--",
                    sys.executable, "-c", "import time; print('up', flush=True); time.sleep(4)"),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        time.sleep(1.5)
        rows = run_sql(Store(store_path), "select status from attempts").to_pylist()
        assert rows == [{"status": "running"}]
    finally:
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert json.dumps(run_sql(Store(store_path), "select status from attempts").to_pylist()) == (
        '[{"status": "completed"}]'
    )


def _niceness(tid: int) -> int:
    """A thread's niceness, as the kernel holds it (field 19 of its stat)."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def test_the_follower_yields_the_cpu_only_once_output_floods(tmp_path: Path) -> None:
    # Niced from the start, the follower starved on a busy machine: the end's second ran out before
    # its first chunk was parsed, and a non-leading host's steps were lost (#19). A trickle leaves
    # it at the process's priority; a flood (a full read: it is behind) makes it yield, for good.
    log = tmp_path / "stdout.log"
    log.write_bytes(b"")
    prog = Progress([log], None, on_steps=lambda steps, at: None)
    prog.start()
    try:
        with log.open("ab") as f:
            for step in range(1, 6):
                f.write(f"step {step} loss=1.0\n".encode())
                f.flush()
                prog.saw_output()
                time.sleep(0.3)
        deadline = time.monotonic() + 10
        while prog.last_step != 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert prog._thread is not None and prog._thread.native_id is not None
        tid, base = prog._thread.native_id, os.getpriority(os.PRIO_PROCESS, 0)
        assert prog.last_step == 5 and _niceness(tid) == base
        with log.open("ab") as f:  # more than a read at once
            f.write(b"".join(f"step {s} loss=1.0\n".encode() for s in range(6, 200_000)))
        prog.saw_output()
        while prog.last_step != 199_999 and time.monotonic() < deadline + 30:
            time.sleep(0.05)
        assert prog.last_step == 199_999 and _niceness(tid) == max(base, 15)
    finally:
        prog.stop()
