"""Reading never changes the store: `logbook query` cannot write a file, a reader leaves a dead
wrapper's journal to the writers, and a query beside a running compaction answers in full."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from helpers import event, logbook_cmd

from logbook.store import Store, layout

TRAIN = 'import time\nfor i in range(1, 4): print(f"step={i} loss={2 / i}")\n'


def logbook(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBOOK_")}
    return subprocess.run(
        logbook_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env
    )


def listing(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under `root`: size, mtime and a hash of its bytes."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, digest)
    return out


def count(store: Path, table: str) -> int:
    done = logbook(
        "query", f"select count(*) as n from {table}", "--store", str(store), "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)[0]["n"])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store made by a real `logbook run` of a command that prints three metric lines."""
    store = tmp_path_factory.mktemp("ro") / ".logbook"
    done = logbook("run", "--store", str(store), "--run", "r", "--", sys.executable, "-c", TRAIN)
    assert done.returncode == 0, done.stderr
    assert count(store, "metrics") == 3
    return store


def _statements(store: Path) -> list[str]:
    part = next((store / "metrics" / "run=r").glob("*.parquet"))
    return [
        # A new part: it would double the metrics.
        f"copy (select * exclude (run) from metrics) to '{store}/metrics/run=q/part-x.parquet' "
        "(format parquet)",
        # Over an existing part's name, with and without DuckDB's temporary file.
        f"copy (select * exclude (run) from metrics limit 1) to '{part}' (format parquet)",
        f"copy (select 1 as x) to '{part}' (format csv, use_tmp_file false)",
        f"copy metrics to '{store}/out.csv'",
        f"attach '{store}/x.db' as x",
        f"attach '{part}' as p",
        f"export database '{store}/exported'",
        "install httpfs",
        "load httpfs",
        # Undoing the lock, alone or before a write in one go.
        "set enable_external_access = true",
        "set lock_configuration = false",
        f"reset enable_external_access; copy metrics to '{store}/again.parquet'",
        f"set allowed_directories = ['{store}']",
        # Reading another file is refused with them: the connection reaches no file at all.
        f"select * from read_csv('{store}/logbook-store.json')",
        f"select * from read_parquet('{part}')",
    ]


@pytest.mark.parametrize("index", range(15))
def test_a_query_that_would_write_is_refused_and_changes_nothing(
    recorded: Path, index: int
) -> None:
    sql = _statements(recorded)[index]
    before = listing(recorded)
    done = logbook("query", sql, "--store", str(recorded))
    assert done.returncode == 1, (sql, done.returncode, done.stderr)
    assert done.stderr.startswith("Error: logbook query is read-only: "), done.stderr
    assert "Traceback" not in done.stderr
    assert listing(recorded) == before
    assert not (recorded.parent / "x.db").exists()
    assert count(recorded, "metrics") == 3


def test_reads_and_in_memory_tables_still_work(recorded: Path) -> None:
    sql = "create temp table t as select name, value from metrics; select count(*) as n from t"
    done = logbook("query", sql, "--store", str(recorded), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 3}]
    bad = logbook("query", "select nope from metrics", "--store", str(recorded))
    assert bad.returncode == 2 and "read-only" not in bad.stderr  # bad SQL keeps its own code


# -- a reader leaves a dead wrapper's journal alone ------------------------------------------------


def _killed_wrapper(store: Path) -> None:
    """Start `logbook run` of a sleeping child, wait for its journaled start, kill -9 the wrapper
    (then the child): a dead wrapper's journal is left."""
    proc = subprocess.Popen(
        logbook_cmd(
            *("run", "--store", str(store), "--run", "d", "--no-capture", "--"),
            *(sys.executable, "-c", "import time; time.sleep(60)"),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journals = store / layout.JOURNAL_DIR
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = list(journals.rglob("*.jsonl"))
        if found and '"table": "attempts"' in found[0].read_text():
            break
        time.sleep(0.05)
    else:
        proc.kill()
        raise AssertionError("the wrapper never journaled its attempt")
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait(timeout=10)  # reaped: its pid is gone, as after a real kill -9
    for child in children:
        child.kill()


@pytest.mark.parametrize("writer", ["compact", "doctor"])
def test_reading_a_dead_wrappers_journal_changes_nothing(tmp_path: Path, writer: str) -> None:
    store = tmp_path / ".logbook"
    _killed_wrapper(store)
    before = listing(store)
    assert any(p.startswith(layout.JOURNAL_DIR) for p in before)
    attempts = "select status, end_time is not null as ended from attempts"
    for args in (
        ("query", attempts, "--format", "json"),
        ("runs", "--format", "json"),
        ("show", "d", "--format", "json"),
        ("query", "select kind from events where kind = 'lost'", "--format", "json"),
    ):
        done = logbook(*args, "--store", str(store))
        assert done.returncode == 0, done.stderr
        assert "lost" in done.stdout, (args, done.stdout)
    assert listing(store) == before  # no file created, deleted or changed

    done = logbook(writer, "--store", str(store))
    assert done.returncode == 0, done.stderr
    assert not list((store / layout.JOURNAL_DIR).rglob("*.jsonl"))  # folded by the writer
    done = logbook("query", attempts, "--store", str(store), "--format", "json")
    assert json.loads(done.stdout) == [{"status": "lost", "ended": True}]
    lost_sql = "select count(*) as n from events where kind = 'lost'"
    lost = logbook("query", lost_sql, "--store", str(store), "--format", "json")
    assert json.loads(lost.stdout) == [{"n": 1}]


# -- queries beside a compaction ---------------------------------------------------------------------

# Each round adds small parts of filler rows and compacts, so every round rewrites the notes into
# a new merged part and deletes the parts they were in: readers race that again and again.
CHURN = textwrap.dedent(
    """
    import subprocess, sys, uuid
    from datetime import datetime, timezone
    from pathlib import Path
    from logbook.store import Store
    root, stop = Path(sys.argv[1]), Path(sys.argv[2])
    store, rounds = Store(root), 0
    while not stop.exists():
        for _ in range(5):
            store.write("events", "r", [{
                "attempt_id": "a", "event_id": uuid.uuid4().hex, "kind": "filler",
                "severity": "info", "source": "cli", "message": "filler",
                "time": datetime.now(timezone.utc)}])
        subprocess.run([sys.executable, "-m", "logbook", "compact", "--store", str(root)],
                       check=True, capture_output=True)
        rounds += 1
    print(rounds)
    """
)


def test_queries_during_compactions_answer_in_full(tmp_path: Path) -> None:
    store = Store.open(tmp_path / ".logbook", create=True)
    notes = 300
    for i in range(notes):
        store.write("events", "r", [event(i)])
    stop = tmp_path / "stop"
    churn = subprocess.Popen(
        [sys.executable, "-c", CHURN, str(store.root), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sql = "select count(*) as n, count(distinct event_id) as ids from events where kind = 'note'"
    try:
        answers = []
        for _ in range(16):  # each a fresh process, about 1 s
            done = logbook("query", sql, "--store", str(store.root), "--format", "json")
            answers.append((done.returncode, done.stdout.strip(), done.stderr.strip()))
    finally:
        stop.touch()
        out, err = churn.communicate(timeout=120)
    assert churn.returncode == 0, err
    assert int(out) >= 3, "the compactions should have run through the queries"
    wrong = [a for a in answers if a[0] != 0 or json.loads(a[1]) != [{"n": notes, "ids": notes}]]
    assert not wrong, wrong
