"""One attempt: start the command, pass its output and signals through, watch it, wait for its end."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from logbook.pump.wakeup import Wakeup
from logbook.record import phase_marks
from logbook.record.parsers import LineParser
from logbook.supervisor import arrow_pool, launch
from logbook.supervisor.checkpoints import CheckpointMemory
from logbook.supervisor.hang_budget import HangBudget, SlowStep
from logbook.supervisor.oom import OomWatch
from logbook.supervisor.passthrough import Passthrough
from logbook.supervisor.progress import Progress
from logbook.supervisor.recorder import _now
from logbook.supervisor.signals import Forwarder

DRAIN_WAIT_S = 5.0  # after the child ends, how long its output may keep flowing (grandchildren)
WATCH_EVERY_S = 0.25  # how often to look while a hang's hooks run, or where signals cannot wake us


@dataclass
class Launch:
    """What to start, and how to watch it."""

    command: list[str]
    env: Mapping[str, str]
    cwd: Path
    tty: str
    grace_s: float
    hang_timeout_s: float | None
    log_dir: Path | None
    checkpoint_dir: Path | None
    parser: LineParser | None = None  # metrics from the output; None: steps only
    catch_up_s: float = 1.0  # after the end, parse for at most this long (the rest: off the path)
    checkpoint_patterns: list[str] | None = None  # --checkpoint-pattern; None: the default rule
    checkpoint_memory: CheckpointMemory | None = None  # steps of the run's earlier checkpoints
    hang_budget: HangBudget | None = None  # the hang watch's budgets per phase, learned (#19)


@dataclass
class Ended:
    """How the command ended, as the supervisor saw it."""

    returncode: int  # Popen's: negative for a signal; 127/126 when it could not start
    start: datetime
    end: datetime
    pid: int | None
    forwarded: int | None  # the stopping signal logbook passed on, if any
    killed_after_grace: bool
    hung_s: float | None  # seconds without progress when the hang watch stopped it
    progress: Progress | None
    start_error: OSError | None = None
    reader_gone: bool = False
    oom_kills: int = 0  # kills the command's memory cgroup counted while it ran
    oom_cgroup: str | None = None
    hardware_faults: list[str] = field(default_factory=list)  # from the telemetry sampler


@dataclass
class Watch:
    """Callbacks from a running attempt to the recording side (all must be quick and never raise)."""

    launching: Callable[[datetime], None]  # before the spawn: the start is on record first
    started: Callable[[int, datetime], None]
    signal: Callable[[int], None]
    # the pid, the silence, the progress and the budget it exceeded (None: the fixed timeout);
    # may return the thread of its on_hang hooks
    hang: Callable[[int, float, Progress, Any], Any]
    warn: Callable[[str], None]
    checkpoint: Callable[[Any], None]
    # a chunk's points (step, name, value), when read, from which log (stdout, stderr)
    metrics: Callable[[Any, datetime, str], None] | None = None
    parsed: Callable[[dict[str, Any]], None] | None = None  # the logs' coverage, after each chunk
    settings: Callable[[dict[str, float]], None] | None = None  # a config echo, at the end
    phase: Callable[[Any], None] | None = None  # a phase the output showed has ended (#19)
    slow_step: Callable[[int, SlowStep], None] | None = None  # a step SLOW x the median (#19)
    steps: Callable[[Any, datetime], None] | None = None  # a chunk's steps, when read (#19)
    exited: Callable[[], None] | None = None  # the command has ended; its output still drains


def run_attempt(spec: Launch, forwarder: Forwarder, watch: Watch) -> Ended:
    """Start the command and return when it has ended and its output is drained.

    The forwarder is installed by the caller for the whole session, so a signal that arrives
    between two attempts is not lost.
    """
    streams = [launch.open_stream("stdout", 1, spec.tty), launch.open_stream("stderr", 2, spec.tty)]
    ptys = any(s.is_pty for s in streams)
    log_paths = [spec.log_dir / f"{s.name}.log" for s in streams] if spec.log_dir else []
    progress = Progress(
        log_paths,
        spec.checkpoint_dir,
        on_checkpoint=watch.checkpoint,
        parser=spec.parser,
        end_budget_s=spec.catch_up_s,
        on_metrics=watch.metrics,
        on_parsed=watch.parsed,
        on_settings=watch.settings,
        checkpoint_patterns=spec.checkpoint_patterns,
        checkpoint_memory=spec.checkpoint_memory,
        on_phase=watch.phase,
        hang_budget=spec.hang_budget,
        on_slow_step=watch.slow_step,
        on_steps=watch.steps,
        phase_marks=Path(marks) if (marks := spec.env.get(phase_marks.ENV)) else None,
    )
    # The pump before the command: its output never meets a pipe that nobody reads. (And before
    # the start is journaled: the pump's own start-up overlaps the journal's fsyncs.)
    output = Passthrough(streams, spec.log_dir, warn=watch.warn, on_output=progress.saw_output)
    output.start()
    start = _now()
    watch.launching(start)
    before = OomWatch(os.getpid())  # the count of the cgroup the command starts in
    try:
        proc = launch.spawn(
            spec.command, env=spec.env, cwd=spec.cwd, stdout=streams[0], stderr=streams[1]
        )
    except OSError as e:
        output.join(DRAIN_WAIT_S)  # the write ends are closed: the pump sees the end at once
        code = 127 if isinstance(e, FileNotFoundError) else 126  # the shell's codes
        return Ended(code, start, _now(), None, None, False, None, None, start_error=e)
    finally:
        arrow_pool.settle()  # pyarrow's import, once the command runs (before the threads below)
    output.attach(proc.pid)
    forwarder.attach(proc.pid)
    oom = OomWatch(proc.pid, before)
    forwarder.on_winch = output.resize if ptys else None
    progress.start()
    watch.started(proc.pid, start)
    hung_s = _wait(proc, spec, forwarder, progress, watch)
    end = _now()
    if watch.exited is not None:  # what the end does beside the drain and the parse starts now
        watch.exited()
    forwarded, killed_after_grace = forwarder.stopping_signal, forwarder.killed_after_grace
    forwarder.detach()
    output.join(DRAIN_WAIT_S)
    progress.stop()
    return Ended(
        proc.returncode,
        start,
        end,
        proc.pid,
        forwarded,
        killed_after_grace,
        hung_s,
        progress,
        reader_gone=output.reader_gone,
        oom_kills=oom.kills_since_start(),
        oom_cgroup=oom.cgroup,
    )


def _wait(
    proc: subprocess.Popen[bytes],
    spec: Launch,
    forwarder: Forwarder,
    progress: Progress,
    watch: Watch,
) -> float | None:
    """Wait for the command, asleep until something is due: its exit (a thread waits for it), a
    signal (forwarded by its handler, which runs in this, the main thread, so it must wake at once),
    the hang deadline, or the SIGKILL after a grace period. Idle, it never wakes (benchmarks/)."""
    wake = Wakeup()
    catching = wake.catch_signals()
    reaper = threading.Thread(target=_reap, args=(proc, wake), name="logbook-reap", daemon=True)
    reaper.start()
    hung_s: float | None = None
    stop_pending = False  # hung: stopped once its on_hang hooks (a thread, or None) are done
    hooks: Any = None
    try:
        while proc.returncode is None:
            forwarder.service()  # also while hooks run: they never delay a Ctrl-C or its kill
            now = time.monotonic()
            due = [forwarder.next_due()]
            if spec.hang_timeout_s and hung_s is None:
                # The budget of the phase the output shows, learned; the timeout is its ceiling.
                budget = progress.hang_budget_now()
                limit = budget.seconds if budget is not None else spec.hang_timeout_s
                quiet = now - progress.last_activity()
                if quiet >= limit:
                    hung_s, stop_pending = quiet, True
                    progress.watch_until(None, wake.poke)
                    hooks = watch.hang(proc.pid, quiet, progress, budget)
                else:  # output moves the deadline on: we wake at the old one and look again;
                    # the follower wakes us sooner if a phase's end shortens the budget
                    due.append(now + limit - quiet)
                    progress.watch_until(due[-1], wake.poke)
            if stop_pending and (hooks is None or not hooks.is_alive()):
                stop_pending = False
                forwarder.stop_group(spec.grace_s)
                due.append(forwarder.next_due())
            if stop_pending or not catching:  # hooks to wait for; or handlers that need a wake
                due.append(now + WATCH_EVERY_S)
            times = [t for t in due if t is not None]
            wake.wait(min(times) - time.monotonic() if times else None)
        return hung_s
    finally:
        progress.watch_until(None, wake.poke)
        wake.close()


def _reap(proc: subprocess.Popen[bytes], wake: Wakeup) -> None:
    """Wait for the command's exit in a thread of its own (blocking: no polling), then wake the
    main thread. Popen.wait with a timeout would poll every few milliseconds."""
    try:
        proc.wait()
    finally:
        wake.poke()
