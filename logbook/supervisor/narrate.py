"""What `logbook run` decides, one line on stderr each, for a person reading a job log and for grep:

    logbook: 1.00 launching (run gpt)
    logbook: 1.00 crashed (gpu_oom) at step 130, exit 1; relaunching as 1.01 in 5 s
    logbook: 1.01 launching (run gpt, restart 1 of 3; last checkpoint at step 100)
    logbook: 1.01 hung at step 225: no output and no progress for 1800 s; stopping it
    logbook: 1.02 received SIGTERM; passing it on to the command
    logbook: 1.02 interrupted at step 340, SIGTERM; not relaunching: logbook was asked to stop
    logbook: 1.03 crashed (configuration) at step 0, exit 2; giving up: configuration: not worth retrying

`--quiet` or LOGBOOK_QUIET=1 turns them off; warnings and errors still print. The training's stdout
never carries them. Each is one write(2) of a whole line, so it is never cut by the training's own
lines; when the training's stderr stopped mid-line (its raw log says so), a newline goes first.
Only system calls: a line may be said from a signal handler.
"""

from __future__ import annotations

import os
from pathlib import Path

from logbook.supervisor.policy import Decision

PREFIX = "logbook: "


class Narrator:
    """Says each decision on stderr, unless quiet."""

    def __init__(self, quiet: bool, fd: int = 2) -> None:
        self.quiet = quiet
        self.fd = fd

    def say(self, text: str, *, stderr_log: Path | None = None) -> None:
        if self.quiet:
            return
        line = f"{PREFIX}{text}\n"
        if _ends_mid_line(stderr_log):
            line = "\n" + line
        try:
            os.write(self.fd, line.encode("utf-8", "replace"))
        except OSError:  # no stderr (closed, a full disk): the record has it all anyway
            pass


def launching(label: str, run: str, restart: int, max_restarts: int, checkpoint: int | None) -> str:
    """The line of an attempt about to start: which, and where a relaunch may resume."""
    details = [f"run {run}"]
    if restart:
        details.append(f"restart {restart} of {max_restarts}")
    text = ", ".join(details)
    if checkpoint is not None:
        text += f"; last checkpoint at step {checkpoint}"
    return f"{label} launching ({text})"


def ended(
    label: str,
    status: str,
    crash_class: str | None,
    last_step: int | None,
    exit_code: int | None,
    signal_name: str | None,
) -> str:
    """How an attempt ended: status (class), the step it reached, its exit code or signal."""
    text = f"{label} {status}"
    if crash_class and crash_class != status:
        text += f" ({crash_class})"
    if last_step is not None:
        text += f" at step {last_step}"
    how = signal_name if signal_name else None if exit_code is None else f"exit {exit_code}"
    return f"{text}, {how}" if how else text


def then(
    decision: Decision,
    *,
    completed: bool,
    asked_to_stop: bool,
    restarts_off: bool,
    next_label: str | None,
) -> str | None:
    """What logbook does next, after `ended`'s text; None when there is nothing to add."""
    if decision.action == "restart":
        target = f" as {next_label}" if next_label else ""
        return f"relaunching{target} in {decision.delay_s:g} s"
    if completed:
        return None
    if asked_to_stop:
        return "not relaunching: logbook was asked to stop"
    if restarts_off:  # the default: no restart was asked for, so none is given up
        return f"not relaunching: {decision.reason}"
    return f"giving up: {decision.reason}"


def _ends_mid_line(log: Path | None) -> bool:
    """Whether the raw log of the training's stderr ends with a line not yet ended."""
    if log is None:
        return False
    try:
        fd = os.open(log, os.O_RDONLY)
    except OSError:
        return False
    try:
        size = os.fstat(fd).st_size
        return size > 0 and os.pread(fd, 1, size - 1) not in (b"\n", b"\r")
    except OSError:
        return False
    finally:
        os.close(fd)
