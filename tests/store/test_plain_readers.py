"""The store reads as it is with DuckDB, pandas, polars and Spark (#17): the README's lines for each,
taken from README.md itself, run on a store made by real `logbook run`s, one of them still running,
with a damaged part `logbook doctor` set aside. And the run stays in a part copied elsewhere, and a
store written before the run was inside parts still reads right."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import logbook_cmd

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

TRAIN = "for step in range(3):\n    print(f'step={step} loss={1.0 / (step + 1)}', flush=True)\n"
LIVE = "print('step=0 loss=1.0', flush=True)\nimport time\ntime.sleep(120)\n"

# How each reader's result becomes rows (dicts), appended to its README lines.
ROWS = {
    "DuckDB": "lambda r: [dict(zip(r.columns, t)) for t in r.fetchall()]",
    "pandas": "lambda d: d.astype(object).to_dict('records')",
    "polars": "lambda d: d.to_dicts()",
    "Spark": "lambda d: [r.asDict() for r in d.collect()]",
}
DUMP = """
import json
rows = {rows}
print(json.dumps({{"attempts": sorted([str(r["run"]), r["status"]] for r in rows(attempts)),
                  "metrics": sorted({{str(r["run"]) for r in rows(metrics)}})}}))
"""


def readme_blocks() -> dict[str, str]:
    """The README's code for each plain reader, named by the comment on its first line."""
    section = README.split("<!-- plain-readers -->", 1)[1].split("<!-- /plain-readers -->", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return {re.search(r"# (\w+)$", b.splitlines()[0]).group(1): b for b in blocks}  # type: ignore[union-attr]


def _logbook(cwd: Path, *args: str, code: int = 0) -> None:
    proc = subprocess.run(logbook_cmd(*args), cwd=cwd, capture_output=True, timeout=120)
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with `.logbook/`: run `done` of two completed attempts, a damaged part that doctor
    moved to _quarantine/, and run `live` whose attempt is still running."""
    cwd = tmp_path_factory.mktemp("plain")
    (cwd / "train.py").write_text(TRAIN)
    (cwd / "live.py").write_text(LIVE)
    for _ in range(2):
        _logbook(cwd, "run", "--run", "done", "--", sys.executable, "train.py")
    bad = cwd / ".logbook/attempts/run=done/part-damaged.parquet"
    bad.write_bytes(b"PAR1 torn PAR1")
    _logbook(cwd, "doctor", code=1)
    assert (cwd / ".logbook/_quarantine/attempts/run=done/part-damaged.parquet").exists()
    live = subprocess.Popen(
        logbook_cmd("run", "--run", "live", "--", sys.executable, "live.py"),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list((cwd / ".logbook/attempts/run=live").glob("*.parquet")):
            assert time.monotonic() < deadline and live.poll() is None, "no start part"
            time.sleep(0.2)
        yield cwd
    finally:
        live.send_signal(signal.SIGTERM)
        live.wait(timeout=60)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize(
    ("reader", "module"),
    [("DuckDB", "duckdb"), ("pandas", "pandas"), ("polars", "polars"), ("Spark", "pyspark")],
)
def test_the_readmes_line_for_each_reader_reads_the_store(
    store_dir: Path, reader: str, module: str
) -> None:
    if not _has(module) or (module == "pyspark" and not shutil.which("java")):
        pytest.skip(f"{module} is not installed here")
    code = readme_blocks()[reader] + DUMP.format(rows=ROWS[reader])
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=store_dir, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    # the newest state of each attempt, the running one included; the quarantined part unread
    assert got["attempts"] == [["done", "completed"], ["done", "completed"], ["live", "running"]]
    assert "done" in got["metrics"] and "None" not in got["metrics"]


def test_a_part_copied_elsewhere_keeps_its_run(store_dir: Path, tmp_path: Path) -> None:
    for table in ("attempts", "metrics", "events", "runs"):
        part = next((store_dir / ".logbook" / table / "run=done").glob("*.parquet"))
        copy = shutil.copy(part, tmp_path / f"{table}.parquet")
        assert set(pq.read_table(copy).column("run").to_pylist()) == {"done"}, table


def test_a_store_written_before_runs_were_inside_parts_reads_right(tmp_path: Path) -> None:
    """Written by the code of the main checkout when it predates #17 (no run inside parts)."""
    old = Path("/work/main")
    if not (old / "logbook").is_dir():
        pytest.skip("no older checkout to write the store with")
    (tmp_path / "train.py").write_text(TRAIN)
    env = {**os.environ, "PYTHONPATH": str(old)}
    for _ in range(2):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "logbook",
                "run",
                "--run",
                "old",
                "--",
                sys.executable,
                "train.py",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    from logbook.query import run_sql
    from logbook.store import Store
    from logbook.store.compact import compact

    store = Store.open(tmp_path / ".logbook")
    sql = "select run, status, count(*) as n from attempts group by all"
    assert run_sql(store, sql).to_pylist() == [{"run": "old", "status": "completed", "n": 2}]
    assert store.read("metrics").column("run").unique().to_pylist() == ["old"]
    compact(store, min_parts=2)  # a writer puts the run into the old parts it merges
    for part in (tmp_path / ".logbook/attempts/run=old").glob("*.parquet"):
        assert set(pq.read_table(part).column("run").to_pylist()) == {"old"}
    assert run_sql(store, sql).to_pylist() == [{"run": "old", "status": "completed", "n": 2}]


def test_logbook_reads_a_sealed_start_once(store_dir: Path) -> None:
    """The start is in the journal and in its start part: logbook's own views count it once."""
    from logbook.query import run_sql
    from logbook.store import Store

    store = Store.open(store_dir / ".logbook")
    sql = "select run, status, count(*) as n from attempt_changes group by all order by all"
    assert run_sql(store, sql).to_pylist() == [
        {"run": "done", "status": "completed", "n": 2},
        {"run": "done", "status": "running", "n": 2},
        {"run": "live", "status": "running", "n": 1},
    ]


# A script that records through the Python API alone (no `logbook run`), and waits for its stdin.
API_LIVE = """
import sys, logbook
logbook.init(run="api-live")
logbook.log({"loss": 1.0}, step=0)
print("ready", flush=True)
sys.stdin.read()
"""


def test_the_apis_own_attempt_is_seen_while_it_runs(tmp_path: Path) -> None:
    """#17: a standalone API attempt was only in `_journal/*.jsonl` until it ended."""
    from logbook.query import run_sql
    from logbook.store import Store

    (tmp_path / "api_live.py").write_text(API_LIVE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBOOK_")}
    proc = subprocess.Popen(
        [sys.executable, "api_live.py"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        folder = tmp_path / ".logbook/attempts/run=api-live"
        deadline = time.monotonic() + 20
        while not list(folder.glob("*.start.parquet")):
            assert time.monotonic() < deadline, "no start part while the attempt runs"
            time.sleep(0.1)
        rows = pq.read_table(folder).select(["run", "status"]).to_pylist()
        assert rows == [{"run": "api-live", "status": "running"}]
    finally:
        _, err = proc.communicate("", timeout=60)
    assert proc.returncode == 0 and "logbook: warning" not in err, err
    sql = "select status, count(*) as n from attempt_changes group by all order by all"
    assert run_sql(Store.open(tmp_path / ".logbook"), sql).to_pylist() == [
        {"status": "completed", "n": 1},
        {"status": "running", "n": 1},
    ]
