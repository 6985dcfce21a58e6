"""Reading what SLURM's `sacct` prints: `--parsable2` (a header line, then fields split by `|`)
and `--json`, into one shape: the job allocation records of the file, each with its steps.

Nothing here knows logbook's tables: `sacct.py` turns these records into attempts (#18).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from logbook.errors import LogbookError
from logbook.importing.read import Bad

# --parsable2 fields read (sacct --helpformat names); others in the header are ignored.
REQUIRED = ("JobID", "State", "Start", "End")
KNOWN = (
    *REQUIRED,
    "JobIDRaw",
    "JobName",
    "ExitCode",
    "DerivedExitCode",
    "Elapsed",
    "ElapsedRaw",
    "NodeList",
    "NNodes",
    "AllocTRES",
    "ReqTRES",
    "Submit",
    "Restarts",
    "User",
    "Reason",
    "FailedNode",
    "Partition",
)
_UNSET = {"", "unknown", "none", "none assigned", "n/a"}


@dataclass
class Step:
    """A job step (JobID.batch, .extern, .0, ...): a detail of its allocation's attempt."""

    step_id: str  # 4242.batch, 4242.0
    state: str | None
    exit_code: str | None  # "return code:signal", as sacct prints it (0:125)
    node_list: str | None = None


@dataclass
class Job:
    """One record of a job allocation: a requeued job has one per run with --duplicates."""

    line: int  # of the file (for JSON: where the job's object starts)
    job_id: str  # JobID as printed: 4242, or 4300_7 for a task of array 4300
    raw_id: str | None  # JobIDRaw: the id SLURM_JOB_ID holds (4307 for 4300_7); None if unknown
    state: str | None  # e.g. "CANCELLED by 1234"
    start: datetime | None
    end: datetime | None
    name: str | None = None
    exit_code: str | None = None
    derived_exit_code: str | None = None
    elapsed_s: float | None = None
    node_list: str | None = None
    nodes: int | None = None
    gpus: int | None = None
    gpu_model: str | None = None
    submit: datetime | None = None
    restarts: int | None = None
    user: str | None = None
    reason: str | None = None
    failed_node: str | None = None
    partition: str | None = None
    cancelled_by: str | None = None  # the user of a JSON record's kill request
    array_job_id: str | None = None
    array_task_id: str | None = None
    steps: list[Step] = field(default_factory=list)


@dataclass
class SacctFile:
    shape: str  # parsable2, or json with the data_parser version when the file names it
    jobs: list[Job]
    errors: list[tuple[int, str]]
    warnings: list[str]


def read_sacct(path: Path, tz: tzinfo) -> SacctFile:
    """The job records of an sacct file, told apart by its first character ({: --json).

    Args:
        path: the file.
        tz: the zone of --parsable2's times, which carry none (JSON's are Unix seconds).

    Raises:
        LogbookError: the file cannot be read, or is not sacct output at all.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LogbookError(f"cannot read {path}: {e}") from None
    if text.lstrip()[:1] == "{":
        return _read_json(text)
    return _read_parsable2(text, tz)


# --- --parsable2 -----------------------------------------------------------------------------


def _read_parsable2(text: str, tz: tzinfo) -> SacctFile:
    out = SacctFile("parsable2", [], [], [])
    header: list[str] | None = None
    by_id: dict[str, Job] = {}  # the latest allocation record of each JobID, for its steps
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        cells = raw.split("|")
        if header is None:
            header = [c.strip() for c in cells]
            missing = [f for f in REQUIRED if f not in header]
            if missing:
                raise LogbookError(
                    f"line {number} is not the header of sacct --parsable2 output (it lacks "
                    f"{', '.join(missing)}): {raw[:80]!r}",
                    hint="export with a header (no -n/--noheader), e.g. sacct -D --parsable2 "
                    "--format=JobID,JobIDRaw,JobName,State,ExitCode,Start,End,Elapsed,NodeList,"
                    "NNodes,AllocTRES,Restarts,User,Reason (see schemas/sacct.md)",
                )
            continue
        if len(cells) != len(header):
            out.errors.append(
                (number, f"{len(cells)} fields, but the header names {len(header)} (split by |)")
            )
            continue
        row = dict(zip(header, (c.strip() for c in cells), strict=True))
        try:
            job_id = row["JobID"]
            if not job_id:
                raise Bad("no JobID")
            if "." in job_id:  # a step: 4242.batch, 4242.extern, 4242.0
                parent = by_id.get(job_id.split(".", 1)[0])
                if parent is None:
                    out.warnings.append(
                        f"line {number}: step {job_id} comes before any record of its job; skipped"
                    )
                    continue
                parent.steps.append(
                    Step(job_id, _text(row.get("State")), _text(row.get("ExitCode")),
                         _text(row.get("NodeList")))
                )  # fmt: skip
                continue
            if _text(row["State"]) is None:
                raise Bad(f"job {job_id} has no State")
            job = _job_of_row(number, row, tz)
        except Bad as e:
            out.errors.append((number, str(e)))
            continue
        by_id[job.job_id] = job
        out.jobs.append(job)
    if header is None:
        raise LogbookError("the file is empty: no header line, no job", hint="see schemas/sacct.md")
    return out


def _job_of_row(line: int, row: dict[str, str], tz: tzinfo) -> Job:
    job_id = row["JobID"]
    raw = _text(row.get("JobIDRaw"))
    array_job = array_task = None
    m = re.fullmatch(r"(\d+)_(\d+)", job_id)
    if m:
        array_job, array_task = m.groups()
    elif re.fullmatch(r"\d+", job_id) and raw is None:
        raw = job_id  # not a task of an array: JobID is the raw id
    tres = _tres(row.get("AllocTRES")) or _tres(row.get("ReqTRES"))
    gpus, model = _gpus(tres)
    elapsed = _int(row.get("ElapsedRaw"), "ElapsedRaw")
    return Job(
        line=line,
        job_id=job_id,
        raw_id=raw,
        state=_text(row.get("State")),
        start=_time(row.get("Start"), "Start", tz),
        end=_time(row.get("End"), "End", tz),
        name=_text(row.get("JobName")),
        exit_code=_exit_text(row.get("ExitCode"), "ExitCode"),
        derived_exit_code=_exit_text(row.get("DerivedExitCode"), "DerivedExitCode"),
        elapsed_s=float(elapsed) if elapsed is not None else _elapsed(row.get("Elapsed")),
        node_list=_text(row.get("NodeList")),
        nodes=_int(row.get("NNodes"), "NNodes") or _int(tres.get("node"), "node in the TRES"),
        gpus=gpus,
        gpu_model=model,
        submit=_time(row.get("Submit"), "Submit", tz),
        restarts=_int(row.get("Restarts"), "Restarts"),
        user=_text(row.get("User")),
        reason=_text(row.get("Reason")),
        failed_node=_text(row.get("FailedNode")),
        partition=_text(row.get("Partition")),
        array_job_id=array_job,
        array_task_id=array_task,
    )


def _text(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in _UNSET else value.strip()


def _int(value: Any, field: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    text = _text(value)
    if text is None:
        return None
    if not text.isdigit():
        raise Bad(f"{field} {value!r} is not a whole number")
    return int(text)


def _time(value: str | None, field: str, tz: tzinfo) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise Bad(
            f"{field} {value!r} is not a time as sacct prints it (2024-03-01T10:00:00; "
            "SLURM_TIME_FORMAT=standard)"
        ) from None
    return t.replace(tzinfo=tz) if t.tzinfo is None else t


_ELAPSED = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)(?:\.\d+)?$")


def _elapsed(value: str | None) -> float | None:
    """[D-]HH:MM:SS or MM:SS (sacct's Elapsed) in seconds."""
    text = _text(value)
    if text is None:
        return None
    m = _ELAPSED.match(text)
    if m is None:
        raise Bad(f"Elapsed {value!r} is not a duration as sacct prints it ([D-]HH:MM:SS)")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()


def _exit_text(value: str | None, field: str) -> str | None:
    text = _text(value)
    if text is not None and not re.fullmatch(r"\d+:\d+", text):
        raise Bad(f"{field} {value!r} is not an exit code as sacct prints it (1:0, 0:9)")
    return text


def _tres(value: str | None) -> dict[str, str]:
    """billing=64,cpu=64,gres/gpu:a100=8,gres/gpu=8,mem=512G,node=1 as a dict."""
    text = _text(value)
    if text is None:
        return {}
    return dict(p.split("=", 1) for p in text.split(",") if "=" in p)


def _gpus(tres: dict[str, str]) -> tuple[int | None, str | None]:
    """GPUs and their model from TRES entries: gres/gpu=8 (the total, when SLURM gives it), else
    the sum of the typed gres/gpu:<model>=N. No gres/gpu entry: unknown (a cluster may hand out
    whole GPU nodes without GRES), never 0."""
    typed = {k.split(":", 1)[1]: v for k, v in tres.items() if k.startswith("gres/gpu:")}
    try:
        counts = {k: int(v) for k, v in typed.items()}
        total = int(tres["gres/gpu"]) if "gres/gpu" in tres else None
    except ValueError:
        raise Bad(f"a gres/gpu count in the TRES is not a whole number: {tres}") from None
    if total is None and counts:
        total = sum(counts.values())
    model = next(iter(counts)).upper() if len(counts) == 1 else None
    return total, model


# --- --json ----------------------------------------------------------------------------------


def _read_json(text: str) -> SacctFile:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise LogbookError(
            f"not JSON: {e.msg} at line {e.lineno}, column {e.colno}",
            hint="give the output of sacct --json, or of sacct --parsable2 (see schemas/sacct.md)",
        ) from None
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    if not isinstance(jobs, list):
        raise LogbookError(
            'not sacct --json output: no "jobs" list at the top', hint="see schemas/sacct.md"
        )
    meta = _dict(doc.get("meta"))
    plugin = _dict(meta.get("plugin"))
    parser = plugin.get("data_parser") or plugin.get("type") or ""
    out = SacctFile(f"json {parser}".strip(), [], [], [])
    lines = _job_lines(text, len(jobs))
    for i, obj in enumerate(jobs):
        line = lines[i]
        try:
            if not isinstance(obj, dict):
                raise Bad("a job is not a JSON object")
            out.jobs.append(_job_of_json(line, obj))
        except Bad as e:
            out.errors.append((line, f"job {i + 1} of the jobs list: {e}"))
    return out


def _job_lines(text: str, count: int) -> list[int]:
    """The line each job's object starts on, decoding them one by one from the "jobs" list; the
    job's place in the list where that fails."""
    decode = json.JSONDecoder().raw_decode
    m = re.search(r'"jobs"\s*:\s*\[', text)
    out: list[int] = []
    i = m.end() if m else -1
    try:
        while m and len(out) < count:
            while text[i] in " \t\r\n,":
                i += 1
            out.append(text.count("\n", 0, i) + 1)
            _, i = decode(text, i)
    except (ValueError, IndexError):
        pass
    if len(out) != count:
        return list(range(1, count + 1))
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> int | None:
    """A number of SLURM's JSON: plain (v0.0.37-38), or {"set", "infinite", "number"} (v0.0.39+)."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _unix(value: Any) -> datetime | None:
    from datetime import timezone

    n = _number(value)
    return datetime.fromtimestamp(n, timezone.utc) if n else None  # 0: not set


def _state_json(value: Any) -> str | None:
    """state.current as a list (v0.0.39+) or text (v0.0.37-38), or a step's state as either."""
    if isinstance(value, dict):
        value = value.get("current")
    if isinstance(value, list):
        value = " ".join(str(v) for v in value) if value else None
    return value if isinstance(value, str) and value else None


def _exit_json(value: Any) -> str | None:
    """{"status", "return_code", "signal": {"id"|"signal_id", "name"}} as 'return code:signal'."""
    if not isinstance(value, dict):
        return None
    code = _number(value.get("return_code"))
    sig = _dict(value.get("signal"))
    number = _number(sig.get("id", sig.get("signal_id")))
    if code is None and number is None:
        return None
    return f"{code or 0}:{number or 0}"


def _job_of_json(line: int, obj: dict[str, Any]) -> Job:
    job_id = _number(obj.get("job_id"))
    if job_id is None:
        given = obj.get("job_id")
        raise Bad("no job_id" if given is None else f"job_id {given!r} is not a number")
    if _state_json(obj.get("state")) is None:
        raise Bad(f"job {job_id} has no state.current")
    array = _dict(obj.get("array"))
    array_job = _number(array.get("job_id"))
    task = _number(array.get("task_id"))
    printed = f"{array_job}_{task}" if array_job and task is not None else str(job_id)
    state = obj.get("state")
    times = _dict(obj.get("time"))
    tres = _dict(obj.get("tres"))
    gpus, model = _gpus_json(tres.get("allocated")) if tres.get("allocated") else (None, None)
    if gpus is None and tres.get("requested"):
        gpus, model = _gpus_json(tres.get("requested"))
    nodes = obj.get("nodes")
    job = Job(
        line=line,
        job_id=printed,
        raw_id=str(job_id),
        state=_state_json(state),
        start=_unix(times.get("start")),
        end=_unix(times.get("end")),
        name=obj.get("name") or None,
        exit_code=_exit_json(obj.get("exit_code")),
        derived_exit_code=_exit_json(obj.get("derived_exit_code")),
        elapsed_s=_float(_number(times.get("elapsed"))),
        node_list=_text(nodes) if isinstance(nodes, str) else None,
        nodes=_number(obj.get("allocation_nodes")),
        gpus=gpus,
        gpu_model=model,
        submit=_unix(times.get("submission")),
        restarts=_number(obj.get("restart_cnt", obj.get("restarts"))),
        user=obj.get("user") or None,
        reason=_text(state.get("reason")) if isinstance(state, dict) else None,
        failed_node=obj.get("failed_node") or None,
        partition=obj.get("partition") or None,
        cancelled_by=obj.get("kill_request_user") or None,
        array_job_id=str(array_job) if array_job and task is not None else None,
        array_task_id=str(task) if array_job and task is not None else None,
    )
    for s in obj.get("steps") or []:
        if isinstance(s, dict):
            job.steps.append(_step_json(s, str(job_id)))
    return job


def _float(n: int | None) -> float | None:
    return None if n is None else float(n)


def _step_json(s: dict[str, Any], job_id: str) -> Step:
    step = _dict(s.get("step"))
    sid = step.get("id")
    if isinstance(sid, dict):  # {"job_id": 4242, "step_id": "batch"} in some versions
        sid = f"{sid.get('job_id', job_id)}.{sid.get('step_id')}"
    if not isinstance(sid, str):
        sid = f"{job_id}.{step.get('name') or '?'}"
    nodes = s.get("nodes")
    node_list = nodes.get("range") if isinstance(nodes, dict) else None
    return Step(sid, _state_json(s.get("state")), _exit_json(s.get("exit_code")), node_list)


def _gpus_json(entries: Any) -> tuple[int | None, str | None]:
    """[{"type": "gres", "name": "gpu", "count": 8}, {"type": "gres", "name": "gpu:a100", ...}]."""
    if not isinstance(entries, list):
        return None, None
    tres = {}
    for e in entries:
        if isinstance(e, dict) and e.get("type") == "gres" and e.get("name"):
            count = _number(e.get("count"))
            if count is not None:
                tres[f"gres/{e['name']}"] = str(count)
    return _gpus(tres)
