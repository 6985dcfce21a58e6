"""Chunks parsed by worker processes equal those parsed in the process, in the same order, and a
worker that dies costs only speed (#15: the background finish of a flood)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
from helpers import run_flood

from logbook.record import parse_pool
from logbook.record.batch import ChunkParser
from logbook.record.stream import interleaved

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((ROOT / "tests/record/fixtures").glob("*.log"))


def _log(tmp_path: Path) -> Path:
    """The real trainers' recorded output, over and over: many chunks of many formats."""
    body = b"".join(p.read_bytes() for p in FIXTURES)
    path = tmp_path / "stdout.log"
    path.write_bytes(body * max(1, (6 << 20) // len(body) + 1))
    return path


def _rows(parsed) -> list:  # type: ignore[no-untyped-def]
    """Each chunk as plain rows; a NaN as its repr (NaN != NaN)."""
    return [
        (name, offset, c.lines, [repr(p) for p in c.points.to_pylist()], c.steps.to_pylist())
        for name, c, offset in parsed
    ]


def _chunks(path: Path) -> list[tuple[str, bytes, int]]:
    return list(interleaved({"stdout": (path, [(0, path.stat().st_size)])}, chunk_bytes=256 << 10))


def test_workers_give_what_the_process_itself_gives_in_order(tmp_path: Path) -> None:
    chunks = _chunks(_log(tmp_path))
    assert len(chunks) > 20
    here = _rows(parse_pool.parsed_in_order(ChunkParser("auto"), chunks, 0))
    there = _rows(parse_pool.parsed_in_order(ChunkParser("auto"), chunks, 3))
    assert sum(len(r[3]) for r in here) > 10_000
    assert there == here


def test_a_worker_killed_midway_costs_only_speed(tmp_path: Path) -> None:
    chunks = _chunks(_log(tmp_path))
    here = _rows(parse_pool.parsed_in_order(ChunkParser("auto"), chunks, 0))
    parsed = parse_pool.parsed_in_order(ChunkParser("auto"), chunks, 2)
    got = _rows([next(parsed)])
    workers = [c for c in psutil.Process().children() if "parse_pool" in " ".join(c.cmdline())]
    assert len(workers) == 2
    os.kill(workers[0].pid, signal.SIGKILL)
    got += _rows(parsed)
    assert got == here
    assert not [c for c in psutil.Process().children() if c.is_running() and c.status() != "zombie"
                and "parse_pool" in " ".join(c.cmdline())]  # fmt: skip


def test_the_background_finish_with_workers_records_every_line_once(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    n = 200_000
    run_flood(run_logbook, store_path, tmp_path, "f", n, env={"LOGBOOK_PARSE_WORKERS": "2"})
    got = run_logbook(
        "query", "select name, count(*) as n, count(distinct step) as steps, max(step) as hi "
        "from metrics group by name order by name", "--store", str(store_path), "--format", "json",
        check=0,
    )  # fmt: skip
    assert json.loads(got.stdout) == [
        {"name": "grad_norm", "n": n, "steps": n, "hi": n - 1},
        {"name": "loss", "n": n, "steps": n, "hi": n - 1},
    ]


def test_workers_are_worth_it_only_for_a_long_stretch(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("LOGBOOK_PARSE_WORKERS", raising=False)
    assert parse_pool.workers_for(1 << 20) == 0
    cpus = len(os.sched_getaffinity(0))
    assert parse_pool.workers_for(1 << 30) == (0 if cpus < 2 else min(cpus, parse_pool.MAX_WORKERS))
    monkeypatch.setenv("LOGBOOK_PARSE_WORKERS", "0")
    assert parse_pool.workers_for(1 << 30) == 0
    monkeypatch.setenv("LOGBOOK_PARSE_WORKERS", "3")
    assert parse_pool.workers_for(1 << 10) == 3 and parse_pool.workers_for(0) == 0
