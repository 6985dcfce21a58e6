"""Reading commands wait for the background parse of what a run's end left unparsed, or say what
is missing from their answer (#15: `logbook run` returns within 1 s of its command's end, and a
query right after it must not count a flood's first points as if they were all)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers import logbook_cmd, run_flood

from logbook import query
from logbook.store import Store

N = 300_000  # about 30 MB: its background parse takes a second or more here
COUNT = "select count(*) as n from metrics where name = 'loss'"


def _flood(run_logbook, store: Path, tmp_path: Path, env: dict | None = None) -> Path:  # type: ignore[no-untyped-def]
    return run_flood(run_logbook, store, tmp_path, "flood", N, pad=60, env=env)


def _count(out: bytes) -> int:
    return json.loads(out)[0]["n"]


def test_a_query_waits_for_the_background_parse_and_counts_every_line(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    cov = _flood(run_logbook, store_path, tmp_path)
    doc = json.loads(cov.read_text())
    assert not doc["complete"], "the background parse ended before the test could hold it"
    pid = doc["finisher"]["pid"]
    os.kill(pid, signal.SIGSTOP)  # the parse is held: what a reader sees meanwhile is fixed
    try:
        now = run_logbook("query", "--no-wait", COUNT, "--store", str(store_path),
                          "--format", "json", check=0)  # fmt: skip
        assert _count(now.stdout) < N
        err = now.stderr.decode()
        assert "of output of run flood" in err and "are not parsed yet" in err
        assert f"a background parse (pid {pid}) is at work on them" in err
        waiting = subprocess.Popen(
            logbook_cmd("query", COUNT, "--store", str(store_path), "--format", "json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        left: list = []
        library = threading.Thread(target=lambda: left.extend(query.wait_parsed(Store(store_path))))
        library.start()
        time.sleep(1.5)
        assert waiting.poll() is None, "the query answered while the parse was held"
        assert library.is_alive(), "query.wait_parsed returned while the parse was held"
    finally:
        os.kill(pid, signal.SIGCONT)
    library.join(timeout=120)
    assert not library.is_alive() and left == []
    [row] = query.run_sql(Store(store_path), COUNT).to_pylist()
    assert row["n"] == N
    out, err_b = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err_b
    assert _count(out) == N
    assert "waiting for the background parse" in err_b.decode()
    assert "not parsed yet" not in err_b.decode()
    # the attempt's steps were widened by the finish before the wait ended
    shown = run_logbook("show", "flood", "--store", str(store_path), "--format", "json", check=0)
    assert json.loads(shown.stdout)[0]["steps"] == f"0-{N - 1}"
    assert shown.stderr.decode().count("logbook:") == 0


def test_output_nobody_parses_is_named_and_reparse_parses_it(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _flood(run_logbook, store_path, tmp_path, env={"LOGBOOK_TEST_NO_FINISHER": "1"})
    got = run_logbook("query", COUNT, "--store", str(store_path), "--format", "json", check=0)
    assert _count(got.stdout) < N
    err = got.stderr.decode()
    assert "not parsed yet" in err and "`logbook reparse flood`" in err
    assert "waiting" not in err  # nobody to wait for
    [left] = query.wait_parsed(Store(store_path), "flood")
    assert (left.run, left.parser, left.pid) == ("flood", "nobody", None) and left.bytes > 0
    run_logbook("reparse", "flood", "--store", str(store_path), check=0)
    again = run_logbook("query", COUNT, "--store", str(store_path), "--format", "json", check=0)
    assert _count(again.stdout) == N and again.stderr == b""


def test_a_live_run_is_neither_waited_for_nor_warned_of(
    store_path: Path, train_script: Path, run_logbook
) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "TRAIN_MODE": "sleep", "TRAIN_STEPS": "50"}
    live = subprocess.Popen(
        logbook_cmd(
            "run",
            "--store",
            str(store_path),
            "--run",
            "live",
            "--no-capture",
            "--",
            sys.executable,
            str(train_script),
        ),  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert live.stdout is not None
        for line in live.stdout:
            if line.strip() == b"ready":
                break
        t0 = time.monotonic()
        got = run_logbook("show", "live", "--store", str(store_path), "--format", "json", check=0)
        assert time.monotonic() - t0 < 30
        assert json.loads(got.stdout)[0]["status"] == "running"
        assert b"not parsed yet" not in got.stderr and b"waiting" not in got.stderr
    finally:
        live.terminate()
        live.communicate(timeout=60)


def test_a_finish_that_writes_nothing_for_a_while_is_waited_for_no_more(
    run_logbook, store_path: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A stopped finish, or one on another host sharing the store (whose pid this host cannot
    ask about), must not hold a reader forever: its coverage stays still, and the wait ends."""
    from logbook.record import unparsed

    cov = _flood(run_logbook, store_path, tmp_path)
    doc = json.loads(cov.read_text())
    assert not doc["complete"], "the background parse ended before the test could hold it"
    pid = doc["finisher"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        monkeypatch.setattr(unparsed, "STALL_S", 1.5)
        said: list[str] = []
        t0 = time.monotonic()
        left = unparsed.settle(store_path, "flood", say=said.append)
        assert time.monotonic() - t0 < 30
        assert [(u.run, u.parser, u.pid) for u in left] == [("flood", "finisher", pid)]
        assert any("has written nothing for 2 s" in m for m in said), said
        assert f"a background parse (pid {pid}) is at work on them" in said[-1]
    finally:
        os.kill(pid, signal.SIGCONT)
