"""A chronicle built while `logbook compact` merges the run's parts reads them again when one
vanishes under it, instead of failing."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from helpers import event, logbook_cmd

from logbook.store import Store


def test_a_chronicle_builds_while_compactions_merge_its_parts(tmp_path: Path) -> None:
    store = tmp_path / "store"
    done = subprocess.run(
        logbook_cmd("run", "--store", str(store), "--run", "r", "--no-capture", "--")
        + [sys.executable, "-c", "for i in range(50): print(f'step={i} loss={1/(i+1)}')"],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    opened = Store.open(store)
    stop = threading.Event()
    failures: list[str] = []

    def churn() -> None:  # small parts, merged again and again
        while not stop.is_set():
            for i in range(40):
                opened.write("events", "r", [{**event(i, "r"), "attempt_id": "x"}])
            c = subprocess.run(
                logbook_cmd("compact", "--store", str(store)), capture_output=True, text=True
            )
            if c.returncode != 0:
                failures.append(c.stderr)

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        for k in range(3):
            built = subprocess.run(
                logbook_cmd(
                    "chronicle", "r", "--store", str(store), "--out", str(tmp_path / f"c{k}")
                ),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert built.returncode == 0, built.stderr
            assert (tmp_path / f"c{k}" / "index.html").exists()
    finally:
        stop.set()
        t.join(timeout=120)
    assert failures == []
