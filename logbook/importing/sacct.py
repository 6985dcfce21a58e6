"""The cluster's own history: sacct's job records as attempts, through the import's collector and
plan like any imported row (#18). The format and the choices: schemas/sacct.md.

- An attempt is one record of a job allocation: a job, and each run of a requeued job (one record
  each with `sacct --duplicates`), labelled `<JobID>.<requeue>` (4242.00, 4242.01: lineage 4242).
- Steps (.batch, .extern, .0) are details of their allocation's attempt: their states and exit
  codes go into its evidence, and an OUT_OF_MEMORY step gives a FAILED job its class.
- A record whose job id and requeue count are those of an attempt `logbook run` recorded
  (SLURM_JOB_ID, SLURM_RESTART_COUNT in its launcher snapshot) adds to that attempt, never a
  second one: the scheduler's facts as snapshot rows, and, if its wrapper died (`lost`), the end
  and state SLURM saw.
"""

from __future__ import annotations

import re
import signal as signals
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any

from logbook.errors import LogbookError
from logbook.importing.collect import Collector
from logbook.importing.sacct_read import Job, read_sacct
from logbook.store import Store

_UTC = timezone.utc
# SLURM job state -> logbook status and crash class. TIMEOUT, PREEMPTED, DEADLINE and REQUEUED
# are the scheduler ending the job (preempted, as `logbook run` classifies "CANCELLED ... DUE TO
# TIME LIMIT"); CANCELLED is someone's scancel (interrupted); a failed node, or one that did not
# boot, is the hardware class logbook has; SLURM's OUT_OF_MEMORY is the job's memory cgroup.
STATES: dict[str, tuple[str, str | None]] = {
    "COMPLETED": ("completed", None),
    "FAILED": ("crashed", None),  # the class from the steps and the exit code
    "OUT_OF_MEMORY": ("crashed", "host_oom"),
    "NODE_FAIL": ("crashed", "gpu_hardware"),
    "BOOT_FAIL": ("crashed", "gpu_hardware"),
    "SPECIAL_EXIT": ("crashed", "unknown"),
    "TIMEOUT": ("preempted", None),
    "PREEMPTED": ("preempted", None),
    "DEADLINE": ("preempted", None),
    "REQUEUED": ("preempted", None),
    "CANCELLED": ("interrupted", None),
    "RUNNING": ("running", None),
    "SUSPENDED": ("running", None),
    "COMPLETING": ("running", None),
    "RESIZING": ("running", None),
    "STOPPED": ("running", None),
    "SIGNALING": ("running", None),
    "STAGE_OUT": ("running", None),
}
# The second level of cause (#19) of an end SLURM names: which part, as logbook.forensics.components.
COMPONENTS = {
    "NODE_FAIL": "node",
    "BOOT_FAIL": "node",
    "OUT_OF_MEMORY": "user",
    "TIMEOUT": "maintenance",
    "PREEMPTED": "maintenance",
    "DEADLINE": "maintenance",
    "REQUEUED": "maintenance",
    "CANCELLED": "user",
}
_NEVER_RAN = {"PENDING", "REQUEUE_HOLD", "REQUEUE_FED", "REVOKED"}
_WORDS = {
    "COMPLETED": "completed",
    "FAILED": "failed",
    "OUT_OF_MEMORY": "ran out of memory",
    "NODE_FAIL": "lost a node",
    "BOOT_FAIL": "could not boot a node",
    "SPECIAL_EXIT": "ended in a special exit",
    "TIMEOUT": "reached its time limit",
    "PREEMPTED": "was preempted",
    "DEADLINE": "reached its deadline",
    "REQUEUED": "was requeued",
    "CANCELLED": "was cancelled",
}
_WRAPPED_VARS = ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_RESTART_COUNT")


def parse_zone(name: str | None) -> tuple[tzinfo, bool]:
    """The zone of --tz (an IANA name, UTC, or an offset like +02:00) and whether one was given;
    UTC when none.

    Raises:
        LogbookError: `name` is no zone.
    """
    from datetime import timedelta
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name is None:
        return _UTC, False
    m = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})?", name.strip())
    if m:
        sign = 1 if m.group(1) == "+" else -1
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
        return timezone(sign * delta), True
    try:
        return ZoneInfo(name.strip()), True
    except (ZoneInfoNotFoundError, ValueError):
        raise LogbookError(
            f"--tz {name!r} is not a time zone",
            hint="give the cluster's zone as sacct prints its times: Europe/Paris, UTC or +02:00",
        ) from None


@dataclass(frozen=True)
class Wrapped:
    """An attempt `logbook run` recorded under SLURM."""

    run: str
    label: str
    attempt_id: str
    status: str


def collect_sacct(
    store: Store, path: Path, found: Collector, *, run: str | None, tz: str | None
) -> list[str]:
    """Read an sacct file into `found` as attempt rows and snapshot rows for the plan.

    Args:
        store: where wrapped attempts of the same jobs are looked up.
        path: sacct --parsable2 or --json output.
        found: the collector the plan reads; bad records go to its errors.
        run: the run of jobs not recorded by `logbook run`; default each job's name.
        tz: the zone of --parsable2's times (see parse_zone).

    Returns:
        Warnings for people (the zone assumed, jobs that never ran, requeues missing).

    Raises:
        LogbookError: the file is not sacct output, or --tz is no zone.
    """
    zone, zone_given = parse_zone(tz)
    data = read_sacct(path, zone)
    found.errors.extend(data.errors)
    warnings = list(data.warnings)
    if data.shape == "parsable2" and not zone_given and data.jobs:
        warnings.append(
            "sacct prints times without a zone: read as UTC (give --tz with the cluster's zone, "
            "e.g. --tz Europe/Paris, if it is not UTC)"
        )
    wrapped = _wrapped_attempts(store)
    for records in _by_job(data.jobs).values():
        last = records[-1]
        missing = (last.restarts or 0) - (len(records) - 1)
        if missing > 0:
            warnings.append(
                f"job {last.job_id} was requeued {last.restarts} times but the file has "
                f"{len(records)} of its records (export with sacct --duplicates for each run)"
            )
        previous: str | None = None
        # A job `logbook run` recorded in one of its runs: its other runs go to that run too.
        matched = [
            w
            for i, job in enumerate(records)
            for w in (wrapped.get((job.raw_id, i + max(missing, 0)), []) if job.raw_id else [])
        ]
        job_run = run if run is not None or not matched else matched[0].run
        for i, job in enumerate(records):
            requeue = i + max(missing, 0)
            word = _state_word(job.state)
            if word in _NEVER_RAN or job.start is None:
                warnings.append(
                    f"line {job.line}: job {job.job_id} never started ({job.state or 'no state'}): "
                    "not an attempt"
                )
                continue
            matches = wrapped.get((job.raw_id, requeue), []) if job.raw_id else []
            if matches:
                for w in matches:
                    _enrich(found, job, requeue, w)
                previous = None  # the next run follows the wrapped attempt: the run's default
                continue
            label = f"{job.job_id}.{requeue:02d}"
            _attempt(found, job, requeue, label, previous, job_run)
            previous = label
    return warnings


def _by_job(jobs: Iterable[Job]) -> dict[str, list[Job]]:
    """The records of each JobID, in the order they ran (a requeued job has several)."""
    out: dict[str, list[Job]] = {}
    for job in jobs:
        out.setdefault(job.job_id, []).append(job)
    far = datetime.max.replace(tzinfo=_UTC)
    for records in out.values():
        records.sort(key=lambda j: (j.start or far, j.line))
    return out


def _run_of(job: Job, run: str | None) -> str:
    if run is not None:
        return run
    from logbook.supervisor.lineage import default_run_name

    return default_run_name([job.name or "slurm"])


def _attempt(
    found: Collector, job: Job, requeue: int, label: str, parent: str | None, run: str | None
) -> None:
    """The record as the attempt row a JSON lines history would hold, plus its snapshot rows."""
    v = verdict(job)
    row: dict[str, Any] = {
        "type": "attempt",
        "run": _run_of(job, run),
        "label": label,
        "start": job.start.isoformat() if job.start else None,
        "end": job.end.isoformat() if job.end and v["status"] != "running" else None,
        "status": v["status"],
        "class": v["class"],
        "reason": v["summary"],
        "component": v["component"],
        "exit_code": v["exit_code"],
        "signal": v["signal"],
        "host": job.node_list,
        "user": job.user,
        "evidence": evidence(job),
        "citation": f"sacct: job {job.job_id}" + (f", run {requeue + 1}" if requeue else ""),
        "parent": parent,
    }
    before = len(found.errors)
    found.add(job.line, {k: v for k, v in row.items() if v is not None})
    if len(found.errors) == before:
        _snapshots(found, job, requeue, row["run"], label)


def _enrich(found: Collector, job: Job, requeue: int, w: Wrapped) -> None:
    """A record of a job `logbook run` recorded: its facts added to that attempt. A `lost` attempt
    (its wrapper died: a node failure kills it with the job) gets the end SLURM saw."""
    found.note_run(w.run, job.line)
    found.refs.setdefault((w.run, w.label), job.line)
    _snapshots(found, job, requeue, w.run, w.label)
    v = verdict(job)
    if w.status == "lost" and v["status"] != "running" and job.end is not None:
        found.enrich[(w.run, w.label)] = w.attempt_id
        fields = {
            "end_time": job.end,
            "status": v["status"],
            "crash_class": v["class"],
            "component": v["component"],
            "summary": v["summary"],
            "exit_code": v["exit_code"],
            "signal": v["signal"],
            "signal_name": _signal_name(v["signal"]),
            "evidence": _json(evidence(job)),
            "end_precision": None,
            "end_until": None,
        }
        found.attempts.setdefault((w.run, w.label), {}).update(fields)
        found.attempt_lines.setdefault((w.run, w.label), []).append(job.line)


def _snapshots(found: Collector, job: Job, requeue: int, run: str, label: str) -> None:
    """The scheduler's facts (kind `scheduler`) and the hardware SLURM allocated (kind `declared`,
    which `logbook cost` counts GPUs with where nothing was measured)."""
    facts = {
        "job_id": job.raw_id,
        "job": job.job_id,
        "job_name": job.name,
        "requeue": requeue,
        "state": job.state,
        "exit_code": job.exit_code,
        "node_list": job.node_list,
        "nodes": job.nodes,
        "gpus": job.gpus,
        "partition": job.partition,
        "array_job_id": job.array_job_id,
        "array_task_id": job.array_task_id,
        "submit_time": job.submit.astimezone(_UTC).isoformat() if job.submit else None,
        "elapsed_s": job.elapsed_s,
        "reason": job.reason,
        "failed_node": job.failed_node,
    }
    declared = {"hosts": job.nodes, "gpus": job.gpus, "gpu_model": job.gpu_model}
    for kind, values in (("scheduler", facts), ("declared", declared)):
        for name, value in values.items():
            if value is not None:
                found.stated.append(
                    {"line": job.line, "run": run, "label": label, "kind": kind,
                     "name": name, "value": str(value)}
                )  # fmt: skip


def _state_word(state: str | None) -> str:
    """CANCELLED for 'CANCELLED by 1234' (and sacct's fixed-width 'CANCELLED+')."""
    return (state or "").split(" ")[0].rstrip("+").upper()


def _exit(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    code, _, sig = text.partition(":")
    return int(code), int(sig or 0)


def verdict(job: Job) -> dict[str, Any]:
    """status, class, summary, exit_code and signal of a job record (see STATES)."""
    word = _state_word(job.state)
    status, crash_class = STATES.get(word, ("ended", None))
    code, sig = _exit(job.exit_code)
    # A signal number past the real ones is SLURM's own mark (0:125 for OUT_OF_MEMORY).
    real_sig = sig if sig and 0 < sig <= 64 else None
    exit_code: int | None = None
    if real_sig is None and code is not None and (code or word in ("COMPLETED", "FAILED")):
        exit_code = code  # 0:0 of a node failure or a time limit is no exit the script made
    where = f" on {job.failed_node}" if job.failed_node else ""
    summary = f"SLURM: job {job.job_id} {_WORDS.get(word, 'ended')}"
    oom_step = next((s for s in job.steps if _state_word(s.state) == "OUT_OF_MEMORY"), None)
    if word == "CANCELLED":
        by = job.cancelled_by or (job.state or "").partition(" by ")[2].strip() or None
        summary += f" by {'uid ' if by and by.isdigit() else ''}{by}" if by else ""
    elif word == "FAILED":
        step_sig = next(
            (s for s in (_exit(x.exit_code)[1] for x in job.steps) if s and 0 < s <= 64), None
        )
        if oom_step is not None:  # the job's own code is its script's, after the step died
            crash_class = "host_oom"
            summary += f": step {oom_step.step_id} ran out of memory"
        elif real_sig or step_sig:
            crash_class = "fatal_signal"
            summary += f": killed by {_signal_name(real_sig or step_sig)}"
        else:
            crash_class = "unknown"
            if exit_code:
                summary += f" with exit code {exit_code}"
    elif word == "OUT_OF_MEMORY" and oom_step is not None:
        summary += f" in step {oom_step.step_id}"
    elif status == "ended":
        summary += ", in a state logbook does not know: how is not known"
    summary += f"{where} ({job.state or 'no state'})"
    return {
        "status": status,
        "class": crash_class if status == "crashed" else None,
        "summary": None if status == "running" else summary,
        "exit_code": exit_code,
        "signal": real_sig,
        "component": None
        if status in ("running", "completed")
        else COMPONENTS.get(word) or ("user" if oom_step is not None else None),
    }


def _signal_name(number: int | None) -> str | None:
    if number is None:
        return None
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def evidence(job: Job) -> dict[str, Any]:
    """The record as SLURM gave it, steps included: the attempt's `evidence`."""
    out: dict[str, Any] = {
        "source": "sacct",
        "job_id": job.raw_id,
        "job": job.job_id,
        "state": job.state,
        "exit_code": job.exit_code,
        "derived_exit_code": job.derived_exit_code,
        "reason": job.reason,
        "node_list": job.node_list,
        "failed_node": job.failed_node,
        "elapsed_s": job.elapsed_s,
        "restarts": job.restarts,
    }
    out = {k: v for k, v in out.items() if v is not None}
    if job.steps:
        out["steps"] = [
            {k: v for k, v in (("step", s.step_id), ("state", s.state), ("exit_code", s.exit_code),
                               ("node_list", s.node_list)) if v is not None}
            for s in job.steps
        ]  # fmt: skip
    return out


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


def _wrapped_attempts(store: Store) -> dict[tuple[str, int], list[Wrapped]]:
    """(SLURM job id, requeue count) -> the attempts `logbook run` recorded in that job, from
    their launcher snapshots."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not store.root.exists():
        return {}
    snaps = store.read("snapshots")
    if not snaps.num_rows:
        return {}
    mask = pc.and_(
        pc.equal(snaps["kind"], "launcher"),
        pc.is_in(snaps["name"], value_set=pa.array(_WRAPPED_VARS)),
    )
    rows = snaps.filter(mask).select(["attempt_id", "name", "value"]).to_pylist()
    if not rows:
        return {}
    env: dict[str, dict[str, str]] = {}
    for r in rows:
        if r["value"] is not None:
            env.setdefault(r["attempt_id"], {})[r["name"]] = r["value"]
    current: dict[str, dict[str, Any]] = {}
    attempts = store.read("attempts").to_pylist()
    for a in sorted(attempts, key=lambda a: a["recorded_at"]):
        if a["attempt_id"] in env:
            current[a["attempt_id"]] = a
    out: dict[tuple[str, int], list[Wrapped]] = {}
    for attempt_id, a in current.items():
        names = env[attempt_id]
        job = names.get("SLURM_JOB_ID") or names.get("SLURM_JOBID")
        try:
            requeue = int(names.get("SLURM_RESTART_COUNT") or 0)
        except ValueError:
            continue
        if job and a.get("wrapper_pid") is not None:  # recorded by `logbook run`, not imported
            w = Wrapped(a["run"], a["label"], attempt_id, a["status"])
            out.setdefault((job.strip(), requeue), []).append(w)
    return out
