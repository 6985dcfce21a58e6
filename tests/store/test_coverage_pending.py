"""The coverage a metrics part brings is named before the part is written, so a writer killed
between the two leaves neither points parsed twice nor points lost (#15)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from logbook.store import coverage


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    log_dir = tmp_path / "logs" / "run=r" / "a1"
    part = tmp_path / "metrics" / "run=r" / "part-1.parquet"
    log_dir.mkdir(parents=True)
    part.parent.mkdir(parents=True)
    return log_dir, part


def test_the_coverage_a_part_brings_counts_once_the_part_is_there(tmp_path: Path) -> None:
    log_dir, part = _dirs(tmp_path)
    old = {"run": "r", "attempt_id": "a1", "streams": {"stdout": {"to": 100, "holes": []}}}
    new = {**old, "streams": {"stdout": {"to": 250, "holes": []}}}
    coverage.write(log_dir, old)
    coverage.before_part(log_dir, part, new)
    on_disk = json.loads(coverage.path_in(log_dir).read_text())
    assert on_disk["pending"]["part"] == "../../../metrics/run=r/part-1.parquet"
    assert coverage.read(log_dir) == {"version": 1, **old}  # no part yet: what it said
    part.write_bytes(b"PAR1")
    assert coverage.read(log_dir) == {"version": 1, **new}  # the part: what it brings
    coverage.write(log_dir, new)
    assert "pending" not in json.loads(coverage.path_in(log_dir).read_text())
    assert coverage.read(log_dir) == {"version": 1, **new}


def test_a_first_part_named_where_there_was_no_coverage(tmp_path: Path) -> None:
    log_dir, part = _dirs(tmp_path)
    new = {"run": "r", "attempt_id": "a1", "streams": {"stdout": {"to": 50, "holes": []}}}
    coverage.before_part(log_dir, part, new)
    assert coverage.read(log_dir) == {"version": 1, "run": "r", "attempt_id": "a1"}
    assert coverage.unparsed(coverage.read(log_dir) or {}, {"stdout": 80}) == {"stdout": [(0, 80)]}
    part.write_bytes(b"PAR1")
    assert coverage.unparsed(coverage.read(log_dir) or {}, {"stdout": 80}) == {"stdout": [(50, 80)]}


def test_a_recorder_killed_in_a_flood_records_every_line_once(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of the wrapper while its parser writes part after part, then the next writer."""
    script, n = tmp_path / "flood.py", 400_000
    script.write_text(
        "import sys, time\nn = int(sys.argv[1])\n"
        "for k in range(0, n, 1000):\n"
        "    sys.stdout.write(''.join(f'step={i} loss=0.5\\n' for i in range(k, k + 1000)))\n"
        "    time.sleep(0.002)\n"
        "time.sleep(60)\n"
    )
    from helpers import logbook_cmd

    wrapper = subprocess.Popen(
        logbook_cmd(
            "run",
            "--store",
            str(store_path),
            "--run",
            "k",
            "--no-capture",
            "--",
            sys.executable,
            str(script),
            str(n),
        ),  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "LOGBOOK_TEST_NO_FINISHER": "1"},
    )
    total = sum(len(f"step={i} loss=0.5\n") for i in range(n))
    log = None
    try:
        for _ in range(3000):  # until the child has printed it all
            logs = list(store_path.glob("logs/run=k/*/stdout.log"))
            if logs and logs[0].stat().st_size >= total:
                log = logs[0]
                break
            subprocess.run(["sleep", "0.02"])
        assert log is not None
    finally:
        os.killpg(wrapper.pid, signal.SIGKILL)  # the wrapper, its pump and the child
        wrapper.wait()
    run_logbook("doctor", "--store", str(store_path))  # a writer: parses what is left
    got = run_logbook(
        "query", "select count(*) as n, count(distinct step) as s from metrics where name = 'loss'",
        "--store", str(store_path), "--format", "json", check=0,
    )  # fmt: skip
    assert json.loads(got.stdout) == [{"n": n, "s": n}]
