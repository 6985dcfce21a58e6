"""Stragglers (#19): four real wrappers on this machine posing as the hosts of one srun step, one
of them slowed on purpose; the slow host is named in an event, by `logbook stragglers` and in the
chronicle, and no other is."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
from helpers import logbook_cmd

from logbook import schema
from logbook.chronicle.collect import stragglers
from logbook.query import run_sql
from logbook.query.stragglers import host_paces
from logbook.store import Store, parts

STEPS = 16
# a second and a half of start-up before the first step, as a trainer loading its model: the
# wrappers are reading by then (a backlog read in one chunk is not judged; see the test below)
TRAIN = textwrap.dedent(
    """
    import sys, time
    time.sleep(1.5)
    for step in range(1, int(sys.argv[2]) + 1):
        time.sleep(float(sys.argv[1]))
        print(f"step {step} loss={1 / step:.4f}", flush=True)
    """
)


def _launch(store_path: Path, run: str, paces: list[float]) -> list[subprocess.Popen[bytes]]:
    """One srun step of len(paces) tasks (its job id: the run), each wrapper posing as a host."""
    procs = []
    for rank, pace in enumerate(paces):
        env = {
            **os.environ,
            "SLURM_JOB_ID": run,
            "SLURM_STEP_ID": "0",
            "SLURM_STEP_NUM_TASKS": str(len(paces)),
            "SLURM_PROCID": str(rank),
            "LOGBOOK_HOST": f"host-{rank}",
        }
        argv = logbook_cmd(
            "run", "--run", run, "--store", str(store_path), "--no-capture",
            "--sample-every", "0",
        )  # fmt: skip
        cmd = [*argv, "--", "python", "-c", TRAIN, str(pace), str(STEPS)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return procs


def _wait(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]


def test_the_slowed_host_is_named_and_no_other(store_path: Path, tmp_path: Path) -> None:
    # two launches at once: one with host-2 slowed, one with every host at the same pace
    _wait(
        _launch(store_path, "pace", [0.15, 0.15, 0.45, 0.15])
        + _launch(store_path, "even", [0.15] * 4)
    )
    store = Store(store_path)
    events = run_sql(
        store, "select run, attempt_id, host, data from events where kind = 'straggler'"
    ).to_pylist()
    assert [(e["run"], e["host"]) for e in events] == [("pace", "host-2")], events
    assert json.loads(events[0]["data"])["ratio"] >= 2
    # every host's steps are on record, and the leader's metrics are not doubled by the others
    counts = run_sql(
        store,
        "select (select count(*) from node_steps where run = 'pace') as steps, "
        "(select count(*) from metrics where name = 'loss' and run = 'pace') as losses",
    ).to_pylist()[0]
    assert counts == {"steps": 4 * STEPS, "losses": STEPS}
    want = parts.part_schema(schema.load("node_steps").arrow())
    for part in (store_path / "node_steps").rglob("*.parquet"):
        assert pq.read_schema(part).remove_metadata() == want.remove_metadata(), part
    shown = subprocess.run(
        [*logbook_cmd("stragglers", "pace", "--store", str(store_path), "--format", "json")],
        capture_output=True,
        timeout=60,
        check=True,
    )
    rows = json.loads(shown.stdout)
    assert {r["host"]: r["straggler"] for r in rows} == {
        "host-0": False, "host-1": False, "host-2": True, "host-3": False,
    }  # fmt: skip
    # the chronicle's section (its templates: tests/chronicle/test_build.py)
    section = stragglers(store, "pace", [{"attempt_id": events[0]["attempt_id"], "label": "1.00"}])
    assert [(p["host"], p["label"]) for p in section] == [("host-2", "1.00")]


def _rows(paces: dict[int, float], steps: int = 30) -> list[dict]:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [
        {"attempt_id": "a", "node": n, "host": f"h{n}", "step": s,
         "time": t0 + timedelta(seconds=s * pace + (0.4 if s % 3 == n % 3 else 0))}
        for n, pace in paces.items()
        for s in range(1, steps + 1)
    ]  # fmt: skip


def test_hosts_at_one_pace_have_no_straggler_and_a_slow_one_is_found() -> None:
    # times jittered by up to 0.4 s, as the wrapper's half-second reads date them
    even = host_paces(_rows({0: 0.3, 1: 0.3, 2: 0.3}))
    assert [p.straggler for p in even] == [False, False, False]
    slow = host_paces(_rows({0: 0.3, 1: 0.3, 2: 0.5}))  # 1.7x
    assert [p.straggler for p in slow] == [False, False, True]
    assert slow[2].steps == 20 and slow[2].ratio is not None and slow[2].ratio > 1.2
    assert host_paces(_rows({0: 0.3}, steps=30)) == []  # one host: nothing to compare


def test_a_backlog_read_in_one_chunk_neither_hides_nor_makes_a_straggler() -> None:
    # the first 14 steps of host 2 read at once (its wrapper still starting, or under load): dated
    # alike, they read as steps that took no time, then one that took all of it
    def backlog(rows: list[dict], node: int, upto: int) -> list[dict]:
        at = next(r["time"] for r in rows if r["node"] == node and r["step"] == upto)
        return [{**r, "time": at} if r["node"] == node and r["step"] <= upto else r for r in rows]

    slow = host_paces(backlog(_rows({0: 0.3, 1: 0.3, 2: 0.5}), node=2, upto=14))
    assert [p.straggler for p in slow] == [False, False, True], slow
    even = host_paces(backlog(_rows({0: 0.3, 1: 0.3, 2: 0.3}), node=0, upto=12))
    assert [p.straggler for p in even] == [False, False, False], even
