"""How an attempt ended, decided in one place, for the wrapper (`judge` and `end_fields`: the
classifier's verdict on the command's exit and output, corrected by what only the supervisor saw:
the kernel's OOM killer, a GPU fault, a reader that left, the hang watch) and for a Python process
recording itself through the API (`end_of_process`: an uncaught exception or not)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.exitcodes import signal_name

if TYPE_CHECKING:
    from logbook.supervisor.attempt import Ended
    from logbook.supervisor.policy import Decision, Outcome


def judge(
    ended: Ended,
    *,
    log_dir: Path | None,
    rules: Sequence[Any] | None,
    under_scheduler: bool,
) -> tuple[str, Any]:
    """(status, verdict) of an attempt that ran: the verdict is logbook.forensics' Verdict."""
    from logbook.forensics.classify import classify_end

    logs = [log_dir / f"{n}.log" for n in ("stdout", "stderr")] if log_dir else []
    verdict = classify_end(
        returncode=ended.returncode,
        log_paths=logs,
        rules=rules,
        forwarded_signal=signal_name(ended.forwarded),
        under_scheduler=under_scheduler,
        killed_after_grace=ended.killed_after_grace,
    )
    status = (
        "hung" if ended.hung_s is not None and verdict.status != "completed" else verdict.status
    )
    if ended.oom_kills and ended.returncode in (-9, 137) and not ended.forwarded:
        from logbook.supervisor.oom import kernel_lines

        lines = kernel_lines()
        verdict = replace(
            verdict,
            status="crashed",
            crash_class="host_oom",
            retryable=True,
            component=None,
            planned=None,
            rule="cgroup-oom-kill",
            summary=f"killed by the kernel OOM killer (memory cgroup {ended.oom_cgroup}: "
            f"{ended.oom_kills} kill{'s' if ended.oom_kills > 1 else ''})",
            evidence={
                **verdict.evidence,
                "oom_kills": ended.oom_kills,
                "cgroup": ended.oom_cgroup,
                **({"lines": lines} if lines else {}),
            },
        )
        status = "crashed"
    if ended.hardware_faults and status == "crashed" and verdict.crash_class != "gpu_hardware":
        # An Xid 79 or an uncorrected ECC error, then a crash: the GPU, whatever it raised.
        from logbook.forensics.components import component_of_faults

        verdict = replace(
            verdict,
            crash_class="gpu_hardware",
            component=component_of_faults(ended.hardware_faults) or "gpu",
            planned=None,
            retryable=True,
            rule="hardware-fault",
            summary=f"{_brief(ended.hardware_faults[0])}, then: {verdict.summary}"[:500],
            evidence={
                **verdict.evidence,
                "hardware_faults": ended.hardware_faults[:20],
                "class_from_output": verdict.crash_class,
            },
        )
    if ended.reader_gone and verdict.status != "completed":
        # `logbook run ... | head`: our reader left and the command got EPIPE, as it would unwrapped.
        verdict = replace(
            verdict,
            status="interrupted",
            crash_class=None,
            retryable=False,
            component=None,
            planned=None,
            rule="reader-gone",
            summary="the reader of its output went away (broken pipe)",
        )
        status = "interrupted"
    return status, verdict


def end_of_process(
    crashed: BaseException | None,
    start: datetime,
    end: datetime,
    *,
    exit_status: int | None = None,
) -> tuple[dict[str, Any], tuple[str, dict[str, Any]] | None]:
    """The end of an attempt a Python process recorded itself (the Python API on its own): crashed
    when an uncaught exception ended it (exit code 1) or it exited with a status other than 0,
    else completed. `exit_status`: the process's, when it is exiting (None: ended by `close()`
    with the process still running, so no exit code). Returns the end fields and, for an
    exception, the crash event's (message, data)."""
    crash = None
    if crashed is not None:
        from logbook.forensics.exceptions import describe_exception

        try:
            crash = describe_exception(crashed)
        except Exception:  # a description that fails still leaves the crash on record
            crash = None
        exit_status = 1  # what Python exits with after an uncaught exception
    failed = crashed is not None or bool(exit_status)
    if crashed is not None:
        summary: str | None = crash[0] if crash else f"uncaught {type(crashed).__name__}"
        crash_class = crash[1].get("class") if crash else None
    else:
        summary = f"exited with code {exit_status}" if failed else None
        crash_class = "unknown" if failed else None  # as the wrapper classes a bare exit code
    fields = {
        "status": "crashed" if failed else "completed",
        "end_time": end,
        "duration_s": (end - start).total_seconds(),
        "exit_code": exit_status,
        "crash_class": crash_class,
        "summary": summary,
        "recorded_at": end,
    }
    return fields, crash


def end_fields(
    status: str, verdict: Any, ended: Ended, outcome: Outcome, decision: Decision
) -> dict[str, Any]:
    """The attempts row's fields that record its end."""
    from logbook.forensics.components import component_of, planned_of

    sig = -ended.returncode if ended.returncode < 0 else None
    progress = ended.progress
    rule = "hang-timeout" if status == "hung" else None if status == "completed" else verdict.rule
    fields: dict[str, Any] = {
        "status": status,
        "end_time": ended.end,
        "duration_s": (ended.end - ended.start).total_seconds(),
        "exit_code": None if sig else ended.returncode,
        "signal": sig,
        "signal_name": signal_name(sig),
        "forwarded_signal": signal_name(ended.forwarded),
        "crash_class": outcome.crash_class,
        "retryable": outcome.retryable if status != "completed" else None,
        "summary": _hung_summary(verdict, ended) if status == "hung" else verdict.summary,
        "rule": rule,
        # the second level of cause (#19); a relaunch by the policy is handled automatically, one
        # by a person is known only when it comes (the incidents view)
        "component": component_of(status, verdict.rule, getattr(verdict, "component", None)),
        "planned": planned_of(status, getattr(verdict, "planned", None)),
        "handled": "automatic" if decision.action == "restart" and status != "completed" else None,
        "evidence": json.dumps(verdict.evidence, default=str),
        "decision": decision.action,
        "decision_reason": decision.reason,
        "hung_s": ended.hung_s,
    }
    if progress is not None:
        fields.update(
            first_step=progress.first_step,
            last_step=progress.last_step,
            first_step_time=progress.first_step_time,
            last_step_time=progress.last_step_time,
            resumed_from_step=progress.resumed_from_step,
            resume_source=progress.resume_source,
            last_output_time=progress.last_output_time,
            last_checkpoint_step=progress.checkpoint.step if progress.checkpoint else None,
            last_checkpoint_time=progress.checkpoint.time if progress.checkpoint else None,
        )
    return fields


def _hung_summary(verdict: Any, ended: Ended) -> str:
    """A hung attempt's summary: what the classifier saw, unless that is only the signal logbook's
    own hang watch sent (which the classifier cannot tell from anyone else's)."""
    if verdict.rule == "signal":
        return f"hung: no output and no new step for {ended.hung_s:.0f} s; logbook stopped it"
    return f"hung: {verdict.summary}"


def _brief(text: str, limit: int = 120) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def unparsed_message(progress: Any, finisher: dict[str, Any] | None) -> str:
    """What the end left unparsed (#15: the exit is never held more than --catch-up by parsing)."""
    left = sum(progress.unparsed.values())
    head = f"{left / 1e6:.1f} MB of output were not yet parsed for metrics when the command ended "
    if getattr(progress, "handed_over", False):
        head += f"(more than the {progress.end_budget_s:g} s its exit may wait for parsing)"
    else:
        head += f"(parsed for {progress.end_parse_s:.1f} s after it)"
    if finisher is not None:
        return head + f"; a background process (pid {finisher['pid']}) is parsing them"
    return head + "; the next logbook command that writes, or `logbook reparse`, parses them"


def tail_lines(log_dir: Path | None, n: int = 20) -> list[str]:
    """The last lines of each raw log, for a hang's evidence."""
    out: list[str] = []
    for name in ("stdout", "stderr"):
        path = log_dir / f"{name}.log" if log_dir else None
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
                lines = f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            continue
        out += [f"{name}: {line[:500]}" for line in lines]
    return out
