"""Checkpoints in --checkpoint-dir: step, size, files and write time, one event each (#4, part 7)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

from logbook.query import run_sql
from logbook.store import Store
from logbook.supervisor.checkpoints import SETTLE_S, FolderWatch


def _write(path: Path, size: int, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    for p in (path, path.parent):
        os.utime(p, (mtime, mtime))


def test_a_checkpoint_is_reported_once_it_stops_changing(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    t0 = time.time() - 100
    _write(ckpt / "checkpoint-100" / "model.bin", 1000, t0)
    watch = FolderWatch(ckpt)
    assert watch.latest_at_start is not None and watch.latest_at_start.step == 100
    assert watch.scan(time.time()) == ([], False)  # what was there at the start is not new

    _write(ckpt / "checkpoint-200" / "model.bin", 4000, t0 + 10)
    assert watch.scan(t0 + 10 + SETTLE_S + 1) == ([], True)  # first sight: still being written?
    _write(ckpt / "checkpoint-200" / "optimizer.bin", 8000, t0 + 11.5)
    assert watch.scan(t0 + 11.5 + SETTLE_S + 1) == ([], True)  # it grew
    [done], busy = watch.scan(t0 + 11.5 + SETTLE_S + 2)  # unchanged across two scans
    assert not busy
    assert (done.step, done.size, done.files, done.write_s) == (200, 12000, 2, 1.5)
    assert done.path == str(ckpt / "checkpoint-200")
    assert watch.scan(time.time()) == ([], False)  # reported once

    # A file rewritten in place is a new checkpoint; its step is in its content.
    _write(ckpt / "latest.json", 0, t0 + 20)
    (ckpt / "latest.json").write_text(json.dumps({"step": 300}))
    os.utime(ckpt / "latest.json", (t0 + 20, t0 + 20))
    [done], _ = watch.scan(t0 + 30, final=True)  # at the end: no waiting
    assert (done.step, done.files, done.write_s) == (300, 1, 0.0)


# Saves a two-file checkpoint folder every 20 steps, the optimizer state 0.4 s after the model,
# and says so in its output, as trainers do.
SAVER = textwrap.dedent(
    """
    import os, sys, time
    for step in range(1, 61):
        print(f"step={step} loss={1 / step:.4f}", flush=True)
        if step % 20 == 0:
            folder = os.path.join(sys.argv[1], f"checkpoint-{step}")
            os.makedirs(folder)
            open(os.path.join(folder, "model.bin"), "wb").write(b"m" * 200_000)
            time.sleep(0.4)
            open(os.path.join(folder, "optimizer.bin"), "wb").write(b"o" * 400_000)
            print(f"saved checkpoint at step {step}", flush=True)
    """
)


def _checkpoint_events(store_path: Path) -> list[tuple[int, dict]]:
    rows = run_sql(
        Store(store_path), "select step, data from events where kind = 'checkpoint' order by step"
    ).to_pylist()
    return [(r["step"], json.loads(r["data"])) for r in rows]


def test_checkpoints_under_logbook_run(run_logbook, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script, ckpt = tmp_path / "saver.py", tmp_path / "ckpt"
    script.write_text(SAVER)
    run_logbook(
        "run",
        "--store",
        str(store_path),
        "--no-capture",
        "--checkpoint-dir",
        str(ckpt),
        "--",
        sys.executable,
        str(script),
        str(ckpt),
        check=0,
    )
    events = _checkpoint_events(store_path)
    assert [step for step, _ in events] == [20, 40, 60]  # announced and seen: one event each
    for step, data in events:
        assert data["path"] == str(ckpt / f"checkpoint-{step}")
        assert (data["size_bytes"], data["files"], data["seen_by"]) == (
            600_000,
            2,
            "folder+output",
        )
        assert 0.3 <= data["write_s"] < 5
    [attempt] = run_sql(Store(store_path), "select last_checkpoint_step from attempts").to_pylist()
    assert attempt["last_checkpoint_step"] == 60


def test_without_a_folder_the_output_alone_reports_them(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    script, ckpt = tmp_path / "saver.py", tmp_path / "ckpt"
    script.write_text(SAVER)
    run_logbook(
        "run", "--store", str(store_path), "--no-capture", "--", sys.executable, str(script),
        str(ckpt), check=0,
    )  # fmt: skip
    events = _checkpoint_events(store_path)
    assert [(step, d["seen_by"], d["size_bytes"]) for step, d in events] == [
        (20, "output", None),
        (40, "output", None),
        (60, "output", None),
    ]
