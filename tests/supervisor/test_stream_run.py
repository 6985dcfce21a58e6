"""Output read right and fast by a real `logbook run` (#15): bars redrawn with `\\r`, config echoes,
stepless curves, floods with every line on record and the exit never held, `logbook reparse`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from helpers import logbook_cmd

from logbook.query import run_sql
from logbook.record.metrics import metrics_table, write_metrics
from logbook.store import Store, coverage, layout
from logbook.store import lock as locks


def _sql(store: Path, sql: str) -> list[dict]:
    return run_sql(Store(store), sql).to_pylist()


def _wait_parsed(store: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dirs = list(store.glob("logs/run=*/*"))
        if dirs and all((coverage.read(d) or {}).get("complete") for d in dirs):
            return
        time.sleep(0.2)
    raise AssertionError(f"logs not parsed after {timeout} s")


def _run(run_logbook, store: Path, script: Path, *args: str, **kw):  # type: ignore[no-untyped-def]
    return run_logbook(
        "run", "--store", str(store), "--run", "r", "--no-capture", *args, "--",
        sys.executable, str(script), check=0, **kw,
    )  # fmt: skip


BAR = r"""
import sys, time
end = time.monotonic() + float(sys.argv[1])
i = 0
while time.monotonic() < end:  # a bar redrawn in place, no newline until the end
    i += 1
    sys.stderr.write(f"\r{i:4d}it [00:01, 10.0it/s, loss={1 / i:.4f}]")
    sys.stderr.flush()
    time.sleep(0.05)
open(sys.argv[2], "w").write(str(i))
sys.stderr.write("\n")
"""


def test_a_bar_redrawn_without_a_newline_is_recorded_while_it_is_drawn(tmp_path: Path) -> None:
    """Its drawings are lines as they are drawn: points reach the store (flushed every 10 s)
    while the bar has printed no newline yet."""
    store, script, done = tmp_path / "store", tmp_path / "bar.py", tmp_path / "done"
    script.write_text(BAR)
    wrapper = subprocess.Popen(
        logbook_cmd("run", "--store", str(store), "--run", "r", "--no-capture", "--")
        + [sys.executable, str(script), "15", str(done)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen_while_drawn = 0
    try:
        while wrapper.poll() is None and not done.exists():
            if list(store.glob("metrics/run=r/*.parquet")):
                rows = _sql(store, "select count(*) as n from metrics where name = 'loss'")
                if not done.exists():
                    seen_while_drawn = rows[0]["n"]
                    break
            time.sleep(0.2)
    finally:
        assert wrapper.wait(timeout=60) == 0
    assert seen_while_drawn > 50  # about 200 drawings in the first 10 s
    drawn = int(done.read_text())
    [total] = _sql(store, "select count(*) as n from metrics where name = 'loss'")
    assert total["n"] == drawn  # each drawing once


ECHO = r"""
print("Overriding config with config/train_shakespeare_char.py:")
print("learning_rate = 1e6")
print("batch_size = 8")
print("number of parameters: 10.65M")
for i in range(0, 60, 10):
    print(f"iter {i}: loss {3 - i / 100:.4f}, time 285.9ms, mfu 0.01%")
    if i % 20 == 0:
        print(f"step {i}: train loss {3 - i / 100:.4f}, val loss {3.1 - i / 100:.4f}")
"""


def test_a_config_echo_is_recorded_as_settings_not_metrics(run_logbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, script = tmp_path / "store", tmp_path / "train.py"
    script.write_text(ECHO)
    _run(run_logbook, store, script)
    names = {r["name"] for r in _sql(store, "select distinct name from metrics")}
    assert not names & {"learning_rate", "batch_size", "number_of_parameters"}
    assert "loss" in names
    printed = _sql(store, "select name, value from snapshots where kind = 'printed' order by name")
    assert printed == [
        {"name": "batch_size", "value": "8.0"},
        {"name": "learning_rate", "value": "1000000.0"},
        {"name": "number_of_parameters", "value": "10650000.0"},
    ]


def test_a_stepless_print_loop_is_a_metric(run_logbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, script = tmp_path / "store", tmp_path / "train.py"
    script.write_text(
        'print("warmup = 100")\nfor i in range(50):\n    print(f"loss={1 / (i + 1)}")\n'
    )
    _run(run_logbook, store, script)
    [loss] = _sql(
        store,
        "select count(*) as n, count(step) as steps, max(value) as first from metrics"
        " where name = 'loss'",
    )
    assert loss == {"n": 50, "steps": 0, "first": 1.0}  # no step is known: null, not 0
    assert _sql(store, "select name from snapshots where kind = 'printed'") == [{"name": "warmup"}]


FLOOD = r"""
import sys, time
n = int(sys.argv[1])
sys.stdout.write("".join(f"step={i} loss={1 + i % 1000 / 1000:.4f} lr=3e-4\n" for i in range(n)))
sys.stdout.flush()
open(sys.argv[2], "w").write(repr(time.time()))
"""


def test_a_flood_is_all_on_record_and_the_exit_is_held_at_most_a_second(tmp_path: Path) -> None:
    store, script, ended = tmp_path / "store", tmp_path / "flood.py", tmp_path / "ended"
    script.write_text(FLOOD)
    n = 300_000
    p = subprocess.run(
        logbook_cmd("run", "--store", str(store), "--run", "r", "--no-capture", "--")
        + [sys.executable, str(script), str(n), str(ended)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
    )
    returned = time.time()
    assert p.returncode == 0
    held = returned - float(ended.read_text())
    warnings = _sql(store, "select data from events where kind = 'logbook_warning'")
    if warnings:  # the wrapper's own report of its end: parsed for at most the second
        data = json.loads(warnings[0]["data"])
        assert data["end_parse_s"] <= 1.25 and data["finisher_pid"]  # 1 s, and noise
        assert b"not yet parsed" in p.stderr
    # Start-up of the interpreter, the pump's drain, the records of the end: a generous bound.
    assert held < 6.0, held
    _wait_parsed(store)
    [loss] = _sql(
        store,
        "select count(*) as n, count(distinct step) as steps from metrics where name = 'loss'",
    )
    assert loss == {"n": n, "steps": n}


def test_reparse_with_a_new_pattern_replaces_the_parsed_metrics(
    run_logbook, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    store, script = tmp_path / "store", tmp_path / "train.py"
    script.write_text(ECHO)
    _run(run_logbook, store, script)
    # The Python API's points are never the parser's to replace.
    [attempt] = _sql(store, "select attempt_id from attempts")
    now = datetime.now(timezone.utc)
    api_points = metrics_table(attempt["attempt_id"], ([now], [7], ["acc"], [0.5]), "api")
    write_metrics(Store(store), "r", api_points)
    spec = r"regex:step (?P<step>\d+): train loss (?P<train_loss>[\d.]+), val loss (?P<val_loss>[\d.]+)"
    p = run_logbook("reparse", "r", "--attempt", "1.00", "--metrics", spec, "--store", str(store),
                    "--format", "json", check=0)  # fmt: skip
    [done] = json.loads(p.stdout)
    assert done["points"] == 6 and done["replaced_points"] > 6 and done["metrics"] == spec
    rows = _sql(store, "select name, step, source from metrics order by name, step")
    assert {(r["name"], r["source"]) for r in rows} == {
        ("acc", "api"),
        ("train_loss", "parser"),
        ("val_loss", "parser"),
    }
    assert [r["step"] for r in rows if r["name"] == "val_loss"] == [0, 20, 40]
    # This pattern sees the eval lines' steps only: the attempt keeps the 0-50 the training made.
    [steps] = _sql(store, "select first_step, last_step from attempts")
    assert steps == {"first_step": 0, "last_step": 50}
    doc = coverage.read(next(store.glob("logs/run=r/*")))
    assert doc is not None and doc["metrics"] == spec and doc["complete"]
    # Again, with the mode now on record: the same points, not twice.
    run_logbook("reparse", "r", "--store", str(store), check=0)
    assert len(_sql(store, "select * from metrics")) == len(rows)


SLOW = r"""
import sys, time
for i in range(300):
    print(f"step={i} loss={1 / (i + 1):.6f}", flush=True)
    time.sleep(0.01)
"""


def test_reparse_after_a_kill_9_of_the_wrapper(tmp_path: Path) -> None:
    store, script, out = tmp_path / "store", tmp_path / "train.py", tmp_path / "job.out"
    script.write_text(SLOW)
    with open(out, "wb") as o:
        wrapper = subprocess.Popen(
            logbook_cmd("run", "--store", str(store), "--run", "r", "--")
            + [sys.executable, str(script)],
            stdout=o,
            stderr=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 60
    while out.read_bytes().count(b"\n") < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    wrapper.send_signal(signal.SIGKILL)
    wrapper.wait(timeout=10)
    deadline = time.monotonic() + 60  # the training goes on, its output complete
    while out.read_bytes().count(b"\n") < 300 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    p = subprocess.run(
        logbook_cmd("reparse", "r", "--store", str(store), "--format", "json"),
        capture_output=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    [done] = json.loads(p.stdout)
    assert done["points"] == 300 and done["last_step"] == 299
    [steps] = _sql(store, "select status, first_step, last_step from attempts")
    assert steps == {"status": "lost", "first_step": 0, "last_step": 299}
    [loss] = _sql(
        store,
        "select count(*) as n, count(distinct step) as steps from metrics where name = 'loss'",
    )
    assert loss == {"n": 300, "steps": 300}


def test_reparse_refuses_a_live_recorder_and_a_held_lock(run_logbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, script = tmp_path / "store", tmp_path / "train.py"
    script.write_text("import time\nprint('step=1 loss=1', flush=True)\ntime.sleep(30)\n")
    wrapper = subprocess.Popen(
        logbook_cmd("run", "--store", str(store), "--run", "r", "--no-capture", "--")
        + [sys.executable, str(script)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _sql_ok(store) and time.monotonic() < deadline:
            time.sleep(0.2)
        p = run_logbook("reparse", "r", "--store", str(store), check=1)
        assert b"is still being recorded" in p.stderr
    finally:
        os.kill(wrapper.pid, signal.SIGTERM)
        wrapper.wait(timeout=60)
    folder = layout.run_dir(store, "metrics", "r")
    folder.mkdir(parents=True, exist_ok=True)
    held = locks.take(folder)  # as a compaction would
    assert held is not None
    try:
        p = run_logbook("reparse", "r", "--store", str(store), check=1)
        assert b"compaction" in p.stderr
    finally:
        held.release()
    assert run_logbook("reparse", "nope", "--store", str(store), check=1).stderr.startswith(
        b"Error"
    )
    p = run_logbook("reparse", "r", "--attempt", "7.7", "--store", str(store), check=1)
    assert b"no attempt 7.7" in p.stderr
    p = run_logbook("reparse", "r", "--metrics", "regex:(", "--store", str(store), check=1)
    assert b"bad --metrics regex" in p.stderr


def _sql_ok(store: Path) -> bool:
    try:
        return bool(_sql(store, "select * from attempts"))
    except Exception:
        return False
