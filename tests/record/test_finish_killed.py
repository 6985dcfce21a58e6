"""A background finish killed midway leaves a coverage that names exactly the points it wrote, so
the next writer parses the rest once (#15: before, its coverage moved only at the end, and a kill
after its first part made the next writer record those points twice)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from helpers import logbook_cmd, run_flood

N = 600_000  # 1.2 M points: three parts of recover.BATCH


def _to(cov: Path) -> int:
    """How far the coverage says the stdout log is parsed."""
    return int((json.loads(cov.read_text())["streams"].get("stdout") or {}).get("to") or 0)


def _count(run_logbook, store: Path, sql: str) -> dict:  # type: ignore[no-untyped-def]
    got = run_logbook("query", "--no-wait", sql, "--store", str(store), "--format", "json", check=0)
    return json.loads(got.stdout)[0]


def test_a_finish_killed_after_a_part_leaves_the_rest_to_be_parsed_once(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    env = {"LOGBOOK_TEST_NO_FINISHER": "1"}
    cov = run_flood(run_logbook, store_path, tmp_path, "f", N, env=env)
    log = cov.parent / "stdout.log"
    start = _to(cov)
    assert start < log.stat().st_size
    finish = subprocess.Popen(
        logbook_cmd(
            "reparse", "f", "--rest", "--attempt-id", cov.parent.name, "--store", str(store_path)
        ),  # fmt: skip
        env={**os.environ, "LOGBOOK_PARSE_WORKERS": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until its first part is named in the coverage
            if _to(cov) > start:
                os.kill(finish.pid, signal.SIGSTOP)
                break
            time.sleep(0.005)
        doc = json.loads(cov.read_text())
        assert not doc["complete"], "the finish ended before the test could stop it"
        to = _to(cov)
        assert start < to < log.stat().st_size
        # what is on record is exactly what the coverage names
        lines = log.read_bytes()[:to].count(b"\n")
        assert _count(
            run_logbook, store_path, "select count(*) as n from metrics where name = 'loss'"
        ) == {"n": lines}
    finally:
        finish.kill()
        finish.wait()
    run_logbook(
        "doctor", "--store", str(store_path), check=1
    )  # a writer: parses the rest (1: found)
    assert _count(
        run_logbook,
        store_path,
        "select count(*) as n, count(distinct step) as steps from metrics where name = 'loss'",
    ) == {"n": N, "steps": N}


def test_printed_settings_are_written_once_for_a_finish_parsed_again(store) -> None:  # type: ignore[no-untyped-def]
    """A finish killed after its printed settings and before it marks the logs parsed is done
    again by the next writer; the settings stay on record once."""
    from logbook.query import run_sql
    from logbook.record.recover import write_printed

    for _ in range(2):
        write_printed(store, "r", "a1", {"learning_rate": 1e-3, "batch_size": 8.0})
    write_printed(store, "r", "a2", {"learning_rate": 1e-3})
    rows = run_sql(
        store, "select attempt_id, name, value from snapshots where kind = 'printed' order by all"
    ).to_pylist()
    assert rows == [
        {"attempt_id": "a1", "name": "batch_size", "value": "8.0"},
        {"attempt_id": "a1", "name": "learning_rate", "value": "0.001"},
        {"attempt_id": "a2", "name": "learning_rate", "value": "0.001"},
    ]
