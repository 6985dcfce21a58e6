"""`logbook run`: launch the command, pass its output and signals through, record the attempt.

>>> supervisor.run(RunOptions(command=["python", "train.py"], run="gpt-small", store=path))
0
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logbook.exitcodes import ExitCode
from logbook.store import Store
from logbook.supervisor import classify, launch, lineage
from logbook.supervisor.pump import Pump
from logbook.supervisor.recorder import Recorder, _now, base_attempt
from logbook.supervisor.signals import Forwarder

CAPTURE_WAIT_S = 60.0  # after the child ends, how long to wait for the launch snapshot to finish
DRAIN_WAIT_S = 5.0  # after the child ends, how long its output may keep flowing (grandchildren)


@dataclass
class RunOptions:
    """What `logbook run` was asked to do."""

    command: list[str]
    store: Path
    run: str | None = None
    label: str | None = None
    tty: str = "auto"  # auto | always | never: a pty per stream whose own end is a terminal
    grace_s: float = 20.0  # after a stopping signal, seconds before the group is killed
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    capture: bool = True
    store_source: str = "given"


def run(opts: RunOptions) -> int:
    """Run one attempt of the command and record it.

    Returns:
        The command's exit code, or 128+N if signal N ended it (126/127 if it could not start).

    Raises:
        ConfigError: a bad run name or label (before anything starts).
    """
    from logbook.store import layout

    run_name = layout.check_run_name(
        lineage.default_run_name(opts.command) if opts.run is None else opts.run
    )
    cwd = (opts.cwd or Path.cwd()).absolute()
    attempt_id = uuid.uuid4().hex
    store, previous = _open_for_recording(opts, run_name)
    placement = lineage.place(previous, opts.label)  # may raise ConfigError: nothing started yet
    recorder = Recorder(store, run_name, attempt_id)
    if store is None:
        recorder.warn(
            f"cannot write to the store {opts.store}; this attempt is not recorded", event=False
        )

    env = child_env(
        opts.env if opts.env is not None else os.environ,
        store_root=opts.store,
        run=run_name,
        label=placement.label,
        attempt_id=attempt_id,
    )
    from logbook.redact import redact_command

    attempt = {
        **base_attempt(run_name, attempt_id, redact_command(opts.command), cwd),
        "label": placement.label,
        "parent_id": placement.parent_id,
        "parent_label": placement.parent_label,
    }
    log_dir = recorder.log_dir()
    streams = [launch.open_stream("stdout", 1, opts.tty), launch.open_stream("stderr", 2, opts.tty)]
    ptys = [s for s in streams if s.is_pty]

    def resize_ptys() -> None:
        for s in ptys:
            launch.copy_window_size(s.ours, s.read_fd)

    forwarder = Forwarder(
        grace_s=opts.grace_s,
        on_signal=lambda sig: recorder.event(
            "signal",
            f"received {signal.Signals(sig).name}; passed to the command",
            data={"signal": signal.Signals(sig).name},
        ),
        on_winch=resize_ptys if ptys else None,
    )
    forwarder.install()
    start = _now()
    try:
        proc = launch.spawn(opts.command, env=env, cwd=cwd, stdout=streams[0], stderr=streams[1])
    except OSError as e:
        forwarder.restore()
        for s in streams:
            os.close(s.read_fd)
        return _could_not_start(
            recorder, attempt, start, e, first=not previous, command=opts.command
        )

    forwarder.attach(proc.pid)
    pumps = [
        Pump(
            s.read_fd,
            s.ours,
            log_dir / f"{s.name}.log" if log_dir else None,
            name=s.name,
            warn=recorder.warn,
        )
        for s in streams
    ]
    for p in pumps:
        p.start()
    recorder.started(
        {
            **attempt,
            "status": "running",
            "start_time": start,
            "pid": proc.pid,
            "recorded_at": _now(),
        },
        first_of_run=not previous,
    )
    capture = (
        _start_capture(recorder, opts, env, cwd) if opts.capture and store is not None else None
    )

    try:
        returncode = _wait(proc)
    finally:
        forwarder.restore()
    end = _now()
    deadline = time.monotonic() + DRAIN_WAIT_S
    for p in pumps:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    if capture is not None:
        capture.join(timeout=CAPTURE_WAIT_S)
        if capture.is_alive():
            recorder.warn(
                f"the launch snapshot took over {CAPTURE_WAIT_S:.0f} s; it is not recorded"
            )

    end_fields = classify.end_of(
        returncode,
        forwarded=forwarder.stopping_signal,
        killed_after_grace=forwarder.killed_after_grace,
    )
    recorder.ended(end_time=end, duration_s=(end - start).total_seconds(), **end_fields)
    return ExitCode.SIGNAL_BASE - returncode if returncode < 0 else returncode


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """Wait for the command, waking often: the kernel may hand a signal to any of our threads, and
    Python runs its handler (our forwarding) only when the main thread wakes up."""
    while True:
        try:
            return proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue


def child_env(
    base: Mapping[str, str], *, store_root: Path, run: str, label: str, attempt_id: str
) -> dict[str, str]:
    """The command's environment: ours, plus where to record, and Python unbuffered (#2)."""
    env = dict(base)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["LOGBOOK_STORE"] = str(store_root)
    env["LOGBOOK_RUN"] = run
    env["LOGBOOK_ATTEMPT"] = label
    env["LOGBOOK_ATTEMPT_ID"] = attempt_id
    return env


def _open_for_recording(opts: RunOptions, run: str) -> tuple[Store | None, list[tuple[str, str]]]:
    """The store and the run's earlier attempts; (None, []) when the store cannot be used."""
    try:
        store = Store.open(opts.store, create=True, source=opts.store_source)
        data = store.read("attempts", run=run)
    except Exception:  # unwritable, full, or damaged beyond reading: run unrecorded
        return None, []
    rows = sorted(
        data.select(["attempt_id", "label", "start_time", "recorded_at"]).to_pylist(),
        key=lambda r: (r["start_time"], r["recorded_at"]),
    )
    seen: dict[str, str] = {}
    for r in rows:
        seen.setdefault(r["attempt_id"], r["label"])
    return store, list(seen.items())


def _start_capture(
    recorder: Recorder, opts: RunOptions, env: Mapping[str, str], cwd: Path
) -> threading.Thread:
    def work() -> None:
        try:
            from logbook.capture import capture_launch

            rows = capture_launch(list(opts.command), env, cwd)
        except Exception as e:  # capture promises not to raise; a bug there must not matter either
            recorder.warn(f"the launch snapshot failed: {e}")
            return
        recorder.snapshots(rows)

    t = threading.Thread(target=work, name="logbook-capture", daemon=True)
    t.start()
    return t


def _could_not_start(
    recorder: Recorder,
    attempt: dict[str, Any],
    start: Any,
    e: OSError,
    *,
    first: bool,
    command: list[str],
) -> int:
    # The shell's codes: 127 not found, 126 found but not runnable.
    code = 127 if isinstance(e, FileNotFoundError) else 126
    message = f"logbook: cannot run {command[0]}: {e.strerror or e}"
    print(message, file=sys.stderr)
    recorder.started(
        {**attempt, "status": "running", "start_time": start, "recorded_at": _now()},
        first_of_run=first,
    )
    recorder.event("launch_failed", message, severity="error", data={"errno": e.errno})
    end = _now()
    recorder.ended(
        status="failed", end_time=end, duration_s=(end - start).total_seconds(), exit_code=code
    )
    return code
