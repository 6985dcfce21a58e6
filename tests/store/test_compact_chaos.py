"""`kill -9` of real `logbook compact` processes at every step of a merge, and compactions racing
each other: no row is ever lost or doubled, and no dead owner's lock blocks the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import T0, event, logbook_cmd

from logbook.store import Store, compact, layout
from logbook.store import lock as locks

PARTS, ROWS = 8, 25  # per table
TABLES = ("events", "metrics")
PAUSE = "LOGBOOK_TEST_COMPACT_PAUSE"


def _metric(i: int) -> dict[str, Any]:
    return {
        "attempt_id": "a",
        "time": T0 + timedelta(seconds=i),
        "step": i,
        "name": "loss",
        "value": float(i),
        "source": "test",
    }


def _fill(store: Store, n_parts: int = PARTS, start: int = 0) -> None:
    for p in range(n_parts):
        base = start + p * ROWS
        store.write("events", "r", [event(base + i) for i in range(ROWS)])
        store.write("metrics", "r", [_metric(base + i) for i in range(ROWS)])


def _counts(root: Path) -> dict[str, tuple[int, int]]:
    """(rows, distinct steps) of each table, through a real `logbook query`."""
    out = {}
    for table in TABLES:
        sql = f"select count(*) as n, count(distinct step) as d from {table}"
        proc = subprocess.run(
            logbook_cmd("query", "--store", str(root), "--format", "json", sql),
            capture_output=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        [row] = json.loads(proc.stdout)
        out[table] = (row["n"], row["d"])
    return out


def _compact(root: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        logbook_cmd("compact", "--store", str(root)), capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _start_paused(root: Path, points: str) -> subprocess.Popen[str]:
    """`logbook compact` that stops itself at `points` (comma-separated); returns once stopped."""
    proc = subprocess.Popen(
        logbook_cmd("compact", "--store", str(root)),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, PAUSE: points},
    )
    _wait_stopped(proc)
    return proc


def _wait_stopped(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("logbook-compact-paused"):
            break
    else:
        pytest.fail(f"compact never paused (exit {proc.wait()})")
    deadline = time.monotonic() + 30
    while psutil.Process(proc.pid).status() != psutil.STATUS_STOPPED:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return line.split()[1]


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def _folder(root: Path, table: str) -> list[str]:
    return sorted(os.listdir(layout.run_dir(root, table, "r")))


WHOLE = {t: (PARTS * ROWS, PARTS * ROWS) for t in TABLES}


@pytest.mark.parametrize(
    "point", ["locked", "writing", "manifest-before", "manifest", "renamed", "deleting", "deleted"]
)
def test_kill_9_at_any_step_of_a_merge_loses_and_doubles_nothing(store: Store, point: str) -> None:
    _fill(store)
    proc = _start_paused(store.root, point)
    _kill(proc)
    assert _counts(store.root) == WHOLE

    dry = subprocess.run(
        logbook_cmd("doctor", "--store", str(store.root), "--dry-run", "--format", "json"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dry.returncode == 1, dry.stderr  # at least the dead owner's lock of the first folder
    found = {Path(p["path"]).name: p["problem"] for p in json.loads(dry.stdout)}
    assert "lock of a compaction that died" in found[locks.LOCK_NAME]
    if point in ("manifest", "renamed", "deleting", "deleted"):
        assert any(n.startswith(compact.MANIFEST_PREFIX) for n in found)
    assert _counts(store.root) == WHOLE  # a dry run changes nothing

    second = _compact(store.root)
    assert "holds the lock" not in second.stderr  # the dead owner's lock was taken over at once
    assert "took over the lock of a compaction that died" in second.stderr
    assert _counts(store.root) == WHOLE
    for table in TABLES:
        names = _folder(store.root, table)
        assert len(names) == 1 and names[0].startswith("c-"), names  # merged, nothing left over
    assert "no problems found" in _doctor(store.root).stderr


def _doctor(root: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        logbook_cmd("doctor", "--store", str(root)), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc


def test_doctor_tidies_a_dead_compaction_under_its_lock(store: Store) -> None:
    _fill(store)
    proc = _start_paused(store.root, "deleting")
    _kill(proc)
    out = subprocess.run(
        logbook_cmd("doctor", "--store", str(store.root), "--format", "json"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    actions = {Path(p["path"]).name: p["action"] for p in json.loads(out.stdout)}
    assert actions[locks.LOCK_NAME] == "taken over and released"
    [manifest] = [n for n in actions if n.startswith(compact.MANIFEST_PREFIX)]
    assert actions[manifest] == "deleted the merged inputs left"
    assert _counts(store.root) == WHOLE
    assert len([n for n in _folder(store.root, "events") if n.endswith(".parquet")]) == 1
    assert locks.LOCK_NAME not in _folder(store.root, "events")
    assert "no problems found" in _doctor(store.root).stderr


def test_a_second_compaction_and_doctor_leave_a_live_merge_alone(store: Store) -> None:
    """The live merge stops after its manifest; another compaction (as a wrapper's end-of-run tidy
    does it) and doctor run meanwhile; then the merge dies midway through deleting its inputs."""
    _fill(store)
    first = _start_paused(store.root, "manifest,deleting")
    try:
        tidy = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from logbook.store import Store; from logbook.store.compact import "
                "compact; r = compact(Store(sys.argv[1]), run='r', min_parts=2); "
                "print(r.folders, r.skipped)",
                str(store.root),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert tidy.returncode == 0, tidy.stderr
        assert "events/run=r (another compaction holds the lock)" in tidy.stdout, tidy.stdout
        assert any(n.startswith(compact.MANIFEST_PREFIX) for n in _folder(store.root, "events"))
        doctor = _doctor(store.root)
        assert "compaction interrupted" not in doctor.stdout  # a live merge is not interrupted
        assert _counts(store.root) == WHOLE
        os.kill(first.pid, signal.SIGCONT)
        assert _wait_stopped(first) == "deleting"
        assert _counts(store.root) == WHOLE
    finally:
        _kill(first)
    assert _counts(store.root) == WHOLE
    _compact(store.root)
    assert _counts(store.root) == WHOLE


def test_two_compactions_at_once_never_fail_nor_lose_or_double(store: Store) -> None:
    total = 0
    for round_ in range(10):
        _fill(store, 3, start=total)
        total += 3 * ROWS
        procs = [
            subprocess.Popen(
                logbook_cmd("compact", "--store", str(store.root)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, (round_, err)
        if round_ % 3 == 0:
            assert _counts(store.root) == {t: (total, total) for t in TABLES}
    assert _counts(store.root) == {t: (total, total) for t in TABLES}
    for table in TABLES:
        assert not [n for n in _folder(store.root, table) if not n.endswith(".parquet")]


# The lock itself -------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _dead_lock(directory: Path, **over: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    doc = {"lock": 1, "token": uuid.uuid4().hex, **locks.owner.me(), "pid": _dead_pid(), **over}
    path = directory / locks.LOCK_NAME
    path.write_text(json.dumps(doc))
    return path


def test_a_lock_of_a_live_owner_is_kept_and_a_dead_ones_taken_over(tmp_path: Path) -> None:
    held = locks.take(tmp_path)
    assert held is not None and locks.take(tmp_path) is None
    held.release()
    assert not (tmp_path / locks.LOCK_NAME).exists()

    _dead_lock(tmp_path)
    held = locks.take(tmp_path)
    assert held is not None and held.took_over is not None
    held.release()


def test_a_lock_from_another_host_is_judged_by_its_age(tmp_path: Path) -> None:
    path = _dead_lock(tmp_path, host="elsewhere")
    assert locks.take(tmp_path) is None  # fresh: its owner may be at work
    old = time.time() - locks.STALE_AFTER_S - 5
    os.utime(path, (old, old))
    held = locks.take(tmp_path)
    assert held is not None
    held.release()


def test_the_holder_touches_its_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    held = locks.take(tmp_path)
    assert held is not None
    old = time.time() - 1000
    os.utime(held.path, (old, old))
    time.sleep(0.5)
    assert time.time() - held.path.stat().st_mtime < 10
    held.release()


def test_a_taker_killed_mid_take_over_blocks_nobody(tmp_path: Path) -> None:
    lock = _dead_lock(tmp_path)
    state = locks.read(lock)
    assert state is not None
    claim = tmp_path / f".{locks.LOCK_NAME}.{state.digest}.takeover-0"
    claim.write_text(json.dumps({**locks.owner.me(), "pid": _dead_pid()}))
    held = locks.take(tmp_path)
    assert held is not None
    assert not claim.exists()  # swept by the new holder
    held.release()


TAKER = """
import sys, time
from pathlib import Path
from logbook.store import lock
d = Path(sys.argv[1])
while not (d / "go").exists():
    time.sleep(0.001)
h = lock.take(d)
print("won" if h else "lost", flush=True)
time.sleep(1.0)
if h:
    h.release()
"""


def test_only_one_of_many_takers_takes_over_a_dead_lock(tmp_path: Path) -> None:
    for _ in range(3):
        _dead_lock(tmp_path)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", TAKER, str(tmp_path)], stdout=subprocess.PIPE, text=True
            )
            for _ in range(6)
        ]
        time.sleep(1.0)  # let them all start and wait at the line
        (tmp_path / "go").touch()
        outs = [p.communicate(timeout=60)[0].strip() for p in procs]
        assert sorted(outs) == ["lost"] * 5 + ["won"], outs
        (tmp_path / "go").unlink()
        assert os.listdir(tmp_path) == []


MERGE_RSS = """
import sys
import pyarrow as pa
from logbook.store import Store
from logbook.store.compact import compact
r = compact(Store(sys.argv[1]))
print(r.rows, pa.default_memory_pool().max_memory() // 2**20)
"""


def test_the_merge_streams_instead_of_loading_every_part(store: Store) -> None:
    """40 parts of 50k metric rows: loading them all at once took 179 MB of Arrow memory at its
    peak (392 MB RSS); streamed, the merge holds about one batch (8 MB; 100 MB RSS, most of it
    pyarrow's import). Arrow's own peak is measured: RSS also counts what the allocator keeps,
    which varies with the machine's state (it read 300 MB once in a full run)."""
    import pyarrow as pa

    from logbook.store import conform, parts

    n = 50_000
    target = parts.to_arrow("metrics", []).schema
    for p in range(40):
        steps = pa.array(range(p * n, (p + 1) * n), pa.int64())
        data = pa.table(
            {
                "attempt_id": pa.array(["a" * 32] * n),
                "time": steps.cast(pa.timestamp("s")).cast(pa.timestamp("us", tz="UTC")),
                "step": steps,
                "name": pa.array(["loss"] * n),
                "value": steps.cast(pa.float64()),
                "source": pa.array(["parser"] * n),
            }
        )
        parts.write_part(layout.run_dir(store.root, "metrics", "r"), conform(data, target))
    out = subprocess.run(
        [sys.executable, "-c", MERGE_RSS, str(store.root)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    rows, peak_mb = map(int, out.stdout.split())
    assert rows == 40 * n
    assert peak_mb < 40, f"Arrow's peak {peak_mb} MB"


def test_a_killed_owner_not_yet_waited_for_is_dead(store: Store) -> None:
    """Its parent has not reaped it: a zombie holds its pid, but merges nothing any more."""
    _fill(store, 3)
    proc = _start_paused(store.root, "renamed")
    proc.kill()
    deadline = time.monotonic() + 30
    while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        second = _compact(store.root)
        assert "holds the lock" not in second.stderr
        assert _counts(store.root) == {t: (3 * ROWS, 3 * ROWS) for t in TABLES}
    finally:
        _kill(proc)


def test_a_compaction_keeps_the_parts_a_read_is_using_until_it_ends(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read holds the readers' lock: a compaction meanwhile merges, but leaves its inputs (the
    parts the read listed) in place; readers count the merged part only; the next compaction,
    once the read has ended, deletes them."""
    _fill(store)
    monkeypatch.setattr(locks, "READERS_WAIT_S", 0.3)
    folder = layout.run_dir(store.root, "events", "r")
    with locks.reading(store.root / layout.MARKER):
        listed = sorted(folder.glob("*.parquet"))
        result = compact.compact(store, ["events"])
        assert any("kept until the reads" in n for n in result.notes), result.notes
        assert all(p.exists() for p in listed)  # what the read listed, it can still open
        assert _counts(store.root)["events"] == WHOLE["events"]  # another reader: the output only
    compact.compact(store, ["events"])
    left = _folder(store.root, "events")
    assert len(left) == 1 and not any(p.exists() for p in listed), left
    assert _counts(store.root) == WHOLE
