"""logbook import --from sacct: SLURM's own record of jobs, requeues and steps as attempts (#18),
read back with show, incidents and SQL; merged with attempts `logbook run` recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import logbook_cmd, training_process

from logbook.query import run_sql
from logbook.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "sacct"
HEADER = "JobID|JobIDRaw|JobName|State|ExitCode|Start|End|NodeList|NNodes|AllocTRES|Restarts"


@pytest.fixture
def sql(invoke, store_path: Path):  # type: ignore[no-untyped-def]
    def run(query: str) -> list[dict[str, Any]]:
        out = invoke(["query", query, "--store", str(store_path), "--format", "json"]).stdout
        return json.loads(out)  # type: ignore[no-any-return]

    return run


def sacct(invoke, store: Path, path: Path, *args: str, code: int = 0):  # type: ignore[no-untyped-def]
    return invoke(["import", "--from", "sacct", str(path), "--store", str(store), *args], code=code)


def test_parsable2_jobs_requeues_and_steps_become_attempts(invoke, sql, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = sacct(invoke, store_path, FIXTURES / "parsable2.txt")
    assert r.stderr.splitlines() == [
        "warning: sacct prints times without a zone: read as UTC (give --tz with the cluster's "
        "zone, e.g. --tz Europe/Paris, if it is not UTC)",
        "warning: line 25: job 4300_[3-4] never started (PENDING): not an attempt",
        "imported into gpt-13b (a new run): 7 attempts, 5 events, 0 notes, 0 metrics",
        "warning: run sweep: attempts 4300_1.00 and 4300_2.00 overlap by 1.0 h (4300_2.00 starts "
        "2024-03-04 00:00 UTC, before 4300_1.00 ends 2024-03-04 01:00 UTC)",
        "imported into sweep (a new run): 2 attempts, 1 event, 0 notes, 0 metrics",
    ]
    rows = sql(
        "select run, label, parent_label, status, crash_class, exit_code, signal_name, "
        "duration_s, host, user from attempts order by run, start_time, label"
    )
    got = [tuple(r.values()) for r in rows]
    assert got == [
        ("gpt-13b", "4242.00", None, "crashed", "gpu_hardware", None, None, 14400.0, "gpu[01-04]", "alice"),
        ("gpt-13b", "4242.01", "4242.00", "completed", None, 0, None, 21600.0, "gpu[05-08]", "alice"),
        ("gpt-13b", "4250.00", "4242.01", "preempted", None, None, None, 86410.0, "gpu[09-10]", "alice"),
        ("gpt-13b", "4251.00", "4250.00", "crashed", "host_oom", 1, None, 1800.0, "gpu11", "alice"),
        ("gpt-13b", "4252.00", "4251.00", "interrupted", None, None, "SIGTERM", 2700.0, "gpu[12-13]", "alice"),
        ("gpt-13b", "4253.00", "4252.00", "preempted", None, None, None, 7200.0, "gpu[14-15]", "alice"),
        ("gpt-13b", "4260.00", "4253.00", "running", None, None, None, None, "gpu[14-15]", "alice"),
        ("sweep", "4300_1.00", None, "completed", None, 0, None, 3600.0, "gpu20", "bob"),
        ("sweep", "4300_2.00", "4300_1.00", "crashed", "unknown", 2, None, 120.0, "gpu21", "bob"),
    ]  # fmt: skip
    summaries = {r["label"]: r["summary"] for r in sql("select label, summary from attempts")}
    assert summaries["4242.00"] == "SLURM: job 4242 lost a node (NODE_FAIL)"
    assert summaries["4251.00"] == "SLURM: job 4251 failed: step 4251.0 ran out of memory (FAILED)"
    assert summaries["4252.00"] == "SLURM: job 4252 was cancelled by uid 1234 (CANCELLED by 1234)"
    assert summaries["4250.00"] == "SLURM: job 4250 reached its time limit (TIMEOUT)"

    # The steps are details of their job's attempt, kept in its evidence.
    [ev] = sql("select evidence from attempts where label = '4251.00'")
    steps = json.loads(ev["evidence"])["steps"]
    assert [(s["step"], s["state"], s["exit_code"]) for s in steps] == [
        ("4251.batch", "FAILED", "1:0"),
        ("4251.extern", "COMPLETED", "0:0"),
        ("4251.0", "OUT_OF_MEMORY", "0:125"),
    ]
    # The requeue is a restart within lineage 4242; the next job starts a lineage of its own.
    lineage = sql(
        "select label, lineage, is_restart from attempt_lineage where run = 'gpt-13b' "
        "and label in ('4242.01', '4250.00') order by label"
    )
    assert [tuple(r.values()) for r in lineage] == [("4242.01", "4242", True), ("4250.00", "4250", False)]  # fmt: skip

    # Nodes and GPUs from NNodes and AllocTRES (gres/gpu=32 over the typed gres/gpu:a100=32).
    shown = json.loads(
        invoke(["show", "gpt-13b", "--store", str(store_path), "--format", "json"]).stdout
    )
    assert [(a["label"], a["hosts"], a["duration_s"]) for a in shown][:3] == [
        ("4242.00", 4, 14400.0),
        ("4242.01", 4, 21600.0),
        ("4250.00", 2, 86410.0),
    ]
    gpus = sql(
        "select a.label, g.gpus, g.gpus_basis from launch_gpus g join attempts a "
        "using (attempt_id) where a.label in ('4242.01', '4250.00', '4251.00') order by a.label"
    )
    assert [tuple(r.values()) for r in gpus] == [
        ("4242.01", 32, "declared: 32 × A100, by the imported history"),
        ("4250.00", 16, "declared: 16 × H100, by the imported history"),
        ("4251.00", 8, "declared: 8 × GPU, model not declared, by the imported history"),
    ]
    facts = sql(
        "select s.name, s.value from snapshots s join attempts a using (attempt_id) "
        "where a.label = '4300_2.00' and s.kind = 'scheduler' and s.name in "
        "('job_id', 'array_job_id', 'array_task_id', 'node_list', 'state') order by s.name"
    )
    assert {r["name"]: r["value"] for r in facts} == {
        "array_job_id": "4300",
        "array_task_id": "2",
        "job_id": "4302",
        "node_list": "gpu21",
        "state": "FAILED",
    }

    incidents = json.loads(
        invoke(["incidents", "gpt-13b", "--store", str(store_path), "--format", "json"]).stdout
    )
    counts = {i["class"]: i["count"] for i in incidents if not i["class"].startswith("all")}
    assert counts == {"preempted": 2, "gpu_hardware": 1, "host_oom": 1, "interrupted": 1}
    # The second level of cause (#19) from SLURM's state: a node, a time limit, an OOM, a cancel.
    components = sql("select label, component, planned from incidents order by label")
    assert [tuple(r.values()) for r in components if r["label"].startswith("42")] == [
        ("4242.00", "node", False),
        ("4250.00", "maintenance", True),
        ("4251.00", "user", False),
        ("4252.00", "user", True),
        ("4253.00", "maintenance", True),
    ]


def test_importing_again_adds_nothing(invoke, sql, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = FIXTURES / "parsable2.txt"
    sacct(invoke, store_path, path, "--run", "gpt", "--tz", "UTC")
    counts = "select (select count(*) from {0}) as n"
    before = {t: sql(counts.format(t))[0]["n"] for t in ("attempt_changes", "events", "snapshots")}
    r = sacct(invoke, store_path, path, "--run", "gpt", "--tz", "UTC")
    assert "warning: sacct prints times" not in r.stderr  # the zone was given
    assert r.stderr.endswith(
        "imported into gpt: 0 attempts, 0 events, 0 notes, 0 metrics; 9 already on record\n"
    )
    after = {t: sql(counts.format(t))[0]["n"] for t in ("attempt_changes", "events", "snapshots")}
    assert after == before and before["attempt_changes"] == 9


def test_tz_reads_the_clusters_local_times(invoke, sql, tmp_path: Path, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sacct.txt"
    path.write_text(
        f"{HEADER}\n"
        "17|17|bert|COMPLETED|0:0|2024-03-01T10:00:00|2024-03-01T11:00:00|n1|1||0\n"
        "18|18|bert|COMPLETED|0:0|2024-07-01T10:00:00|2024-07-01T11:00:00|n1|1||0\n"
        "19|19|bert|COMPLETED|0:0|2024-08-01T10:00:00|2024-08-01T11:00:00|n1|1||2\n"
    )
    r = sacct(invoke, store_path, path, "--tz", "Europe/Paris")
    # Requeued twice, exported without --duplicates: its last run is its third.
    assert r.stderr.startswith(
        "warning: job 19 was requeued 2 times but the file has 1 of its records (export with "
        "sacct --duplicates for each run)\n"
    )
    starts = sql("select label, start_time from attempts where label != '19.02' order by label")
    # Paris is UTC+1 in March, UTC+2 in July: the zone's rules, not one offset.
    assert [(r["label"], r["start_time"][:19]) for r in starts] == [
        ("17.00", "2024-03-01T09:00:00"),
        ("18.00", "2024-07-01T08:00:00"),
    ]
    # No gres/gpu in the TRES: the GPU count is unknown, not 0.
    assert sql("select gpus from launch_gpus") == [{"gpus": None}] * 3


def test_json_shapes_of_two_slurm_versions(invoke, sql, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = sacct(invoke, store_path, FIXTURES / "sacct-v0.0.40.json")
    assert "sacct prints times" not in r.stderr  # JSON times are Unix seconds
    sacct(invoke, store_path, FIXTURES / "sacct-v0.0.37.json")
    rows = sql(
        "select run, label, parent_label, status, crash_class, exit_code, signal_name, "
        "duration_s, host, summary from attempts order by run, start_time"
    )
    got = [tuple(r.values()) for r in rows]
    assert got == [
        ("bert", "6001.00", None, "crashed", "fatal_signal", None, "SIGKILL", 120.0, "n01",
         "SLURM: job 6001 failed: killed by SIGKILL (FAILED)"),
        ("llama-ft", "5001.00", None, "completed", None, 0, None, 3600.0, "gpu[21-22]",
         "SLURM: job 5001 completed (COMPLETED)"),
        ("llama-ft", "5002.00", "5001.00", "crashed", "host_oom", None, None, 600.0, "gpu23",
         "SLURM: job 5002 ran out of memory in step 5002.batch (OUT_OF_MEMORY)"),
        ("llama-ft", "5003.00", "5002.00", "preempted", None, None, "SIGTERM", 1800.0,
         "gpu[24-25]", "SLURM: job 5003 was requeued (REQUEUED)"),
        ("llama-ft", "5003.01", "5003.00", "completed", None, 0, None, 5200.0, "gpu[26-27]",
         "SLURM: job 5003 completed (COMPLETED)"),
        ("llama-ft", "5004.00", "5003.01", "interrupted", None, None, "SIGTERM", 600.0, "gpu28",
         "SLURM: job 5004 was cancelled by carol (CANCELLED)"),
        ("sweep", "5007_3.00", None, "crashed", "unknown", 3, None, 100.0, "gpu29",
         "SLURM: job 5007_3 failed with exit code 3 (FAILED)"),
    ]  # fmt: skip
    gpus = sql(
        "select a.label, g.gpus, g.gpus_basis from launch_gpus g join attempts a using "
        "(attempt_id) where a.label in ('5001.00', '5007_3.00', '6001.00') order by a.label"
    )
    assert [tuple(r.values()) for r in gpus] == [
        ("5001.00", 16, "declared: 16 × H100, by the imported history"),
        ("5007_3.00", 1, "declared: 1 × A100, by the imported history"),
        ("6001.00", 1, "declared: 1 × GPU, model not declared, by the imported history"),
    ]
    [job] = sql(
        "select value from snapshots where kind = 'scheduler' and name = 'job_id' and "
        "attempt_id = (select attempt_id from attempts where label = '5007_3.00')"
    )
    assert job["value"] == "5010"  # the raw id: what SLURM_JOB_ID holds in the array task


def _utc(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _wrapped(sql, store_path: Path, script: Path, env: dict[str, str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        logbook_cmd("run", "--store", str(store_path), "--run", "train", "--", sys.executable,
                    str(script)),
        capture_output=True, env={**os.environ, **env}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    [a] = sql("select label, status, start_time, end_time from attempts where run = 'train'")
    return a  # type: ignore[no-any-return]


def test_a_job_logbook_run_recorded_is_enriched_not_doubled(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path, train_script: Path
) -> None:
    env = {"SLURM_JOB_ID": "777001", "SLURM_RESTART_COUNT": "1", "TRAIN_MODE": "ok"}
    a = _wrapped(sql, store_path, train_script, env)
    start = datetime.fromisoformat(a["start_time"])
    path = tmp_path / "sacct.txt"
    earlier = start - timedelta(hours=2)
    path.write_text(
        f"{HEADER}\n"  # the job's first run (a node failed), then the run logbook wrapped
        f"777001|777001|train|NODE_FAIL|0:0|{_utc(earlier)}|{_utc(earlier + timedelta(hours=1))}"
        "|gpu[01-02]|2|cpu=128,gres/gpu=16,node=2|0\n"
        f"777001|777001|train|COMPLETED|0:0|{_utc(start - timedelta(seconds=2))}|"
        f"{_utc(start + timedelta(seconds=30))}|gpu[03-04]|2|cpu=128,gres/gpu:h100=16,node=2|1\n"
        f"777001.batch|777001.batch|batch|COMPLETED|0:0|{_utc(start)}|{_utc(start)}|gpu03|1||\n"
    )
    r = sacct(invoke, store_path, path, "--tz", "UTC")
    assert r.stderr == (
        "imported into train: 1 attempt, 1 event, 0 notes, 0 metrics; "
        "facts added to 1 recorded attempt\n"
    )
    rows = sql("select label, status, crash_class, host from attempts order by start_time")
    # The first run is a new attempt in the wrapped one's run; the wrapped one is not doubled.
    assert [(r["label"], r["status"], r["crash_class"]) for r in rows] == [
        ("777001.00", "crashed", "gpu_hardware"),
        ("1.00", "completed", None),
    ]
    assert rows[1]["host"] != "gpu[03-04]"  # the wrapper's own host stays
    facts = sql(
        "select s.kind, s.name, s.value from snapshots s join attempts a using (attempt_id) "
        "where a.label = '1.00' and (s.kind = 'declared' or s.kind = 'scheduler' and s.name in "
        "('node_list', 'state', 'requeue')) order by s.kind, s.name"
    )
    assert [tuple(f.values()) for f in facts] == [
        ("declared", "gpu_model", "H100"),
        ("declared", "gpus", "16"),
        ("declared", "hosts", "2"),
        ("scheduler", "node_list", "gpu[03-04]"),
        ("scheduler", "requeue", "1"),
        ("scheduler", "state", "COMPLETED"),
    ]
    [shown] = [
        s
        for s in json.loads(
            invoke(["show", "train", "--store", str(store_path), "--format", "json"]).stdout
        )
        if s["label"] == "1.00"
    ]
    assert shown["hosts"] == 2 and shown["status"] == "completed"
    again = sacct(invoke, store_path, path, "--tz", "UTC")
    assert again.stderr.endswith("0 attempts, 0 events, 0 notes, 0 metrics; 1 already on record\n")


def test_a_lost_wrapped_attempt_gets_the_end_slurm_saw(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path, train_script: Path
) -> None:
    # The node died with the job: the wrapper was killed (kill -9), so logbook only knows `lost`.
    proc = subprocess.Popen(
        logbook_cmd("run", "--store", str(store_path), "--run", "train", "--", sys.executable,
                    str(train_script)),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "SLURM_JOB_ID": "888002", "TRAIN_MODE": "sleep"},
    )  # fmt: skip
    assert proc.stdout is not None
    child = training_process(proc.pid)
    for line in proc.stdout:
        if line.strip() == b"ready":
            break
    # The job id is known once the launch snapshot (written in the background) is on record.
    launched = "select 1 from snapshots where kind = 'launcher' and name = 'SLURM_JOB_ID'"
    deadline = time.monotonic() + 30
    while not run_sql(Store(store_path), launched).num_rows and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.kill()
    child.kill()
    proc.communicate()
    [a] = sql("select label, status, start_time from attempts where run = 'train'")
    assert a["status"] == "lost"
    start = datetime.fromisoformat(a["start_time"])
    end = start + timedelta(minutes=5)
    path = tmp_path / "sacct.txt"
    path.write_text(
        f"{HEADER}\n"
        f"888002|888002|train|OUT_OF_MEMORY|0:125|{_utc(start)}|{_utc(end)}|gpu07|1|"
        "cpu=64,gres/gpu=8,node=1|0\n"
    )
    r = sacct(invoke, store_path, path, "--tz", "UTC")
    assert "1 updated" in r.stderr
    [b] = sql(
        "select label, status, crash_class, end_time, summary, wrapper_pid is not null as wrapped "
        "from attempts where run = 'train'"
    )
    assert (b["label"], b["status"], b["crash_class"], b["wrapped"]) == (
        "1.00", "crashed", "host_oom", True,
    )  # fmt: skip
    assert datetime.fromisoformat(b["end_time"]) == end.replace(microsecond=0)
    assert b["summary"] == "SLURM: job 888002 ran out of memory (OUT_OF_MEMORY)"
    changes = sql("select status from attempt_changes where run = 'train' order by recorded_at")
    assert [c["status"] for c in changes][-2:] == ["lost", "crashed"]
    again = sacct(invoke, store_path, path, "--tz", "UTC")
    assert "0 attempts, 0 events" in again.stderr and "updated" not in again.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "4242|4242|gpt|COMPLETED|0:0|2024-03-01T10:00:00|2024-03-01T11:00:00|n1|1||0\n",
            "line 1 is not the header of sacct --parsable2 output (it lacks JobID, State, Start, "
            "End)",
        ),
        (
            f"{HEADER}\n4242|4242|gpt|COMPLETED|0:0|yesterday|2024-03-01T11:00:00|n1|1||0\n"
            "4243|4243|gpt|COMPLETED|0:0|2024-03-01T10:00:00|2024-03-01T11:00:00|n1|many||0\n"
            "4244|4244|gpt|COMPLETED|0:0|2024-03-01T10:00:00\n",
            "has 3 bad rows; nothing was imported:\n"
            "  line 2: Start 'yesterday' is not a time as sacct prints it (2024-03-01T10:00:00; "
            "SLURM_TIME_FORMAT=standard)\n"
            "  line 3: NNodes 'many' is not a whole number\n"
            "  line 4: 6 fields, but the header names 11 (split by |);",
        ),
        ('{"jobs": [{"job_id": 1,', "not JSON: Expecting"),
        ('{"meta": {}}', 'not sacct --json output: no "jobs" list at the top'),
        (
            '{"jobs": [\n  {"job_id": 5, "state": {"current": ["COMPLETED"]}},\n  {"job_id": "x"},'
            '\n  {"job_id": 7}\n]}',
            "  line 3: job 2 of the jobs list: job_id 'x' is not a number\n"
            "  line 4: job 3 of the jobs list: job 7 has no state.current;",
        ),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(  # type: ignore[no-untyped-def]
    invoke, tmp_path: Path, store_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "sacct.out"
    path.write_text(text)
    r = sacct(invoke, store_path, path, "--tz", "UTC", code=1)
    assert r.stderr.startswith("Error: ") and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not store_path.exists()


def test_tz_is_checked_and_only_for_sacct(invoke, tmp_path: Path, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = FIXTURES / "parsable2.txt"
    r = sacct(invoke, store_path, path, "--format", "csv", code=1)
    assert "Error: --format is for logbook's own format" in r.stderr
    r = sacct(invoke, store_path, path, "--tz", "Mars/Olympus", code=1)
    assert "Error: --tz 'Mars/Olympus' is not a time zone" in r.stderr
    r = invoke(["import", str(path), "--tz", "UTC", "--store", str(store_path)], code=1)
    assert "Error: --tz is for sacct files (--from sacct)" in r.stderr
    assert not store_path.exists()
