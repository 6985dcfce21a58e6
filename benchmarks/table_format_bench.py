"""Journal + Parquet parts against an open table format (Delta Lake, Iceberg) on logbook's job.

Standalone: needs deltalake, pyiceberg[sql-sqlite] (optional), pyarrow, duckdb and psutil, which
are not logbook's dependencies, so run it from a virtual environment of its own, with the worktree
on PYTHONPATH for the parts side (logbook.store):

    python3 -m venv /tmp/tf-venv
    /tmp/tf-venv/bin/pip install deltalake 'pyiceberg[sql-sqlite]' pyarrow duckdb psutil
    PYTHONPATH=. /tmp/tf-venv/bin/python benchmarks/table_format_bench.py
    PYTHONPATH=. /tmp/tf-venv/bin/python benchmarks/table_format_bench.py --quick --designs parts,delta

Sections (each design gets a fresh table in a temporary folder):

appends     one writer, --batches (2000) appends of 50 metric rows: appends/s, bytes, files.
writers     16, 64, 128 processes, each 20 appends at once to one table: errors the caller saw,
            retries, rows at the end (exact?), wall time from "go" to the last exit.
kill        a writer killed with SIGKILL at a random moment, --kills (20) times: table readable,
            every batch all or nothing, every acknowledged batch there, files left behind.
compact     the appends table compacted (logbook: `python -m logbook compact`; Delta:
            optimize.compact() then vacuum(0 h); Iceberg: pyiceberg has no compaction, so a full
            overwrite then expire_snapshots) while reads count(*) through the design's reader,
            back to back for as long as each step runs, and at least 30 of them.
plain       what a plain Parquet reader sees, without the table's log: DuckDB
            read_parquet('<table>/**/*.parquet') and pyarrow.dataset over the folder, after the
            appends, after compaction (Delta: before and after vacuum), after the killed writes.
startup     a fresh process: import the library, and import + open the table (median of 5).

The parts side writes with logbook.store.parts.write_part (the Store's own writer: temporary name,
fsync, rename) and reads with logbook.query.run_sql (the reader behind `logbook query`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RUN = "r1"
ROWS_PER_BATCH = 50
NAMES = ["loss", "learning_rate", "grad_norm", "tokens_per_s", "mfu"]


# --- data ------------------------------------------------------------------------------------


def batch(batch_id: str, with_run: bool) -> Any:
    """50 rows of logbook's metrics table; attempt_id carries the batch id so a batch can be counted whole."""
    import datetime as dt

    import pyarrow as pa

    now = dt.datetime.now(dt.timezone.utc)
    n = ROWS_PER_BATCH
    cols: dict[str, Any] = {
        "attempt_id": pa.array([batch_id] * n, pa.string()),
        "time": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
        "step": pa.array([i // len(NAMES) for i in range(n)], pa.int64()),
        "name": pa.array([NAMES[i % len(NAMES)] for i in range(n)], pa.string()),
        "value": pa.array([random.random() for _ in range(n)], pa.float64()),
        "source": pa.array(["parsed"] * n, pa.string()),
    }
    if with_run:
        cols["run"] = pa.array([RUN] * n, pa.string())
    return pa.table(cols)


# --- the three designs -------------------------------------------------------------------------


class Parts:
    name = "parts"

    def __init__(self, root: Path) -> None:
        self.root = root  # the store; the table is root/metrics

    @property
    def table_dir(self) -> Path:
        return self.root / "metrics"

    def create(self) -> None:
        from logbook.store import Store

        Store.open(self.root, create=True)

    def open_writer(self) -> Any:
        from logbook.store import layout

        return layout.run_dir(self.root, "metrics", RUN)

    def append(self, handle: Any, batch_id: str) -> int:
        from logbook.store.parts import write_part

        write_part(handle, batch(batch_id, with_run=False))
        return 0  # retries: none, a part has a name of its own

    def counts(self) -> dict[str, int]:
        """Rows per batch id, through logbook's reader."""
        from logbook.query import run_sql
        from logbook.store import Store

        t = run_sql(
            Store.open(self.root), "select attempt_id, count(*) from metrics group by attempt_id"
        )
        return dict(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))

    def count(self) -> int:
        from logbook.query import run_sql
        from logbook.store import Store

        return int(
            run_sql(Store.open(self.root), "select count(*) from metrics").column(0)[0].as_py()
        )

    def live_files(self) -> set[Path]:
        from logbook.store import Store

        return {p.resolve() for p in Store.open(self.root).part_files("metrics")}

    def compact_steps(self, py: str) -> list[tuple[str, list[str]]]:
        return [("compact", [py, "-m", "logbook", "compact", "--store", str(self.root)])]


class Delta:
    name = "delta"

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def table_dir(self) -> Path:
        return self.root

    def create(self) -> None:
        from deltalake import write_deltalake

        write_deltalake(str(self.root), batch("init", True).slice(0, 0), partition_by=["run"])

    def open_writer(self) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(str(self.root))

    def append(self, handle: Any, batch_id: str) -> int:
        from deltalake import write_deltalake

        v0 = handle.version()
        write_deltalake(handle, batch(batch_id, True), mode="append", partition_by=["run"])
        # The handle now stands at our commit: versions between were others' commits, each one a
        # failed put-if-absent and a conflict check that delta-rs ran before trying the next.
        return max(0, handle.version() - v0 - 1)

    def counts(self) -> dict[str, int]:
        import duckdb
        from deltalake import DeltaTable

        ds = DeltaTable(str(self.root)).to_pyarrow_dataset()
        con = duckdb.connect()
        con.register("ds", ds)
        rows = con.execute("select attempt_id, count(*) from ds group by attempt_id").fetchall()
        return dict(rows)

    def count(self) -> int:
        from deltalake import DeltaTable

        return DeltaTable(str(self.root)).to_pyarrow_dataset().count_rows()

    def live_files(self) -> set[Path]:
        from deltalake import DeltaTable

        uris = DeltaTable(str(self.root)).file_uris()
        return {Path(u.removeprefix("file://")).resolve() for u in uris}

    def compact_steps(self, py: str) -> list[tuple[str, list[str]]]:
        me = [sys.executable, __file__, "_delta_maint", str(self.root)]
        return [("compact", [*me, "compact"]), ("vacuum", [*me, "vacuum"])]


class Iceberg:
    name = "iceberg"

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def table_dir(self) -> Path:
        return self.root / "wh" / "b" / "metrics"

    def catalog(self) -> Any:
        from pyiceberg.catalog.sql import SqlCatalog

        return SqlCatalog(
            "bench", uri=f"sqlite:///{self.root}/catalog.db", warehouse=f"file://{self.root}/wh"
        )

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        cat = self.catalog()
        cat.create_namespace("b")
        t = cat.create_table("b.metrics", schema=batch("init", True).schema)
        with t.update_spec() as spec:
            spec.add_identity("run")

    def open_writer(self) -> Any:
        return self.catalog().load_table("b.metrics")

    def append(self, handle: Any, batch_id: str) -> int:
        from pyiceberg.exceptions import CommitFailedException

        data = batch(batch_id, True)
        retries = 0
        while True:  # pyiceberg does not retry a conflicting commit; the caller has to
            try:
                handle.append(data)
                return retries
            except CommitFailedException:
                retries += 1
                handle.refresh()
                time.sleep(random.random() * 0.05)

    def counts(self) -> dict[str, int]:
        import duckdb

        con = duckdb.connect()
        con.register("t", self.open_writer().scan().to_arrow())
        return dict(
            con.execute("select attempt_id, count(*) from t group by attempt_id").fetchall()
        )

    def count(self) -> int:
        return int(self.open_writer().scan().count())

    def live_files(self) -> set[Path]:
        t = self.open_writer()
        return {
            Path(task.file.file_path.removeprefix("file://")).resolve()
            for task in t.scan().plan_files()
        }

    def compact_steps(self, py: str) -> list[tuple[str, list[str]]]:
        me = [sys.executable, __file__, "_iceberg_maint", str(self.root)]
        return [("rewrite", [*me, "rewrite"]), ("expire", [*me, "expire"])]


DESIGNS = {"parts": Parts, "delta": Delta, "iceberg": Iceberg}


def design(name: str, root: Path) -> Any:
    return DESIGNS[name](root)


# --- measuring helpers -------------------------------------------------------------------------


def disk(path: Path) -> tuple[int, int]:
    """(bytes, files) under path."""
    total = files = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                total += os.path.getsize(os.path.join(dirpath, n))
                files += 1
            except OSError:
                pass
    return total, files


def plain_counts(table_dir: Path) -> dict[str, str]:
    """Row counts a reader that knows nothing of the table's log sees (or its error)."""
    import duckdb
    import pyarrow.dataset as pds

    out = {}
    glob = str(table_dir / "**" / "*.parquet")
    try:
        con = duckdb.connect()
        out["duckdb"] = str(
            con.execute(f"select count(*) from read_parquet('{glob}')").fetchone()[0]
        )
    except Exception as e:
        out["duckdb"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:90]}"
    try:
        ds = pds.dataset(str(table_dir), format="parquet", partitioning="hive")
        out["pyarrow"] = str(ds.count_rows())
    except Exception as e:
        out["pyarrow"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:90]}"
    return out


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    return env


# --- sections ----------------------------------------------------------------------------------


def sec_appends(d: Any, batches: int) -> dict[str, Any]:
    d.create()
    h = d.open_writer()
    t0 = time.perf_counter()
    for i in range(batches):
        d.append(h, f"a{i:06d}")
    wall = time.perf_counter() - t0
    size, files = disk(d.root)
    data_files = len(d.live_files())
    return {
        "appends_per_s": round(batches / wall, 1),
        "wall_s": round(wall, 2),
        "bytes": size,
        "bytes_per_row": round(size / (batches * ROWS_PER_BATCH), 1),
        "files": files,
        "data_files": data_files,
        "rows": d.count(),
        "rows_expected": batches * ROWS_PER_BATCH,
    }


def sec_writers(name: str, base: Path, n: int, per: int, limit_s: float) -> dict[str, Any]:
    d = design(name, base / f"writers-{n}")
    d.create()
    go = base / f"go-{n}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "_writer",
                name,
                str(d.root),
                str(go),
                f"w{k:03d}",
                str(per),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=child_env(),
            text=True,
        )
        for k in range(n)
    ]
    # Every child opens its table and says "ready" before any appends: this times the appends.
    for p in procs:
        assert p.stdout is not None
        p.stdout.readline()
    t0 = time.perf_counter()
    go.touch()
    reports, timed_out = [], 0
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(1.0, limit_s - (time.perf_counter() - t0)))
            reports.append(json.loads(out.strip().splitlines()[-1]))
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            timed_out += 1
        except (ValueError, IndexError):
            reports.append({"errors": per, "retries": 0, "done": 0, "fatal": "no report"})
    wall = time.perf_counter() - t0
    counts = d.counts()
    acked = sum(r["done"] for r in reports)
    torn = sum(1 for c in counts.values() if c != ROWS_PER_BATCH)
    return {
        "writers": n,
        "wall_s": round(wall, 1),
        "timed_out": timed_out,
        "errors_seen": sum(r["errors"] for r in reports),
        "retries": sum(r["retries"] for r in reports),
        "gave_up": sum(1 for r in reports if r.get("fatal")),
        "rows": sum(counts.values()),
        "rows_expected": n * per * ROWS_PER_BATCH,
        "acked_batches": acked,
        "torn_or_doubled_batches": torn,
        "exact": sum(counts.values()) == n * per * ROWS_PER_BATCH and torn == 0,
    }


def sec_kill(d: Any, kills: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    acked: set[str] = set()
    for k in range(kills):
        p = subprocess.Popen(
            [sys.executable, __file__, "_writer", d.name, str(d.root), "-", f"k{k:02d}", "100000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=child_env(),
            text=True,
        )
        assert p.stdout is not None
        p.stdout.readline()  # ready
        p.stdout.readline()  # first batch acknowledged: now it is mid-appends
        time.sleep(rng.uniform(0.0, 0.4))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate()
        acked |= {line.split()[1] for line in out.splitlines() if line.startswith("ok ")}
    try:
        counts = d.counts()
        readable = "yes"
    except Exception as e:
        counts, readable = {}, f"no: {type(e).__name__}: {e}"[:120]
    live = d.live_files()
    leftovers = []
    for dirpath, _, names in os.walk(d.table_dir):
        for n in names:
            p = Path(dirpath, n).resolve()
            if p in live or "_delta_log" in p.parts or "metadata" in p.parts:
                continue
            if n.endswith(".parquet") or n.endswith(".tmp"):
                leftovers.append(n)
    log_tmp = [
        n
        for dirpath, _, names in os.walk(d.table_dir)
        for n in names
        if ("_delta_log" in dirpath or "metadata" in dirpath)
        and (n.endswith(".tmp") or n.startswith("_commit_"))
    ]
    return {
        "kills": kills,
        "readable": readable,
        "batches": len(counts),
        "acked_batches": len(acked),
        "acked_missing": len(acked - set(counts)),
        "torn_or_doubled_batches": sum(1 for c in counts.values() if c != ROWS_PER_BATCH),
        "rows": sum(counts.values()),
        "orphan_data_files": len(leftovers),
        "orphan_log_files": len(log_tmp),
        "plain_readers": plain_counts(d.table_dir),
    }


def sec_compact(d: Any, reads: int, logbook_python: str) -> dict[str, Any]:
    expected = d.count()
    out: dict[str, Any] = {"rows": expected, "steps": {}}
    out["plain_before"] = plain_counts(d.table_dir)
    for step, cmd in d.compact_steps(logbook_python):
        p = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env(), text=True
        )
        t0 = time.perf_counter()
        failed, wrong, during, done = 0, 0, 0, 0
        errors: list[str] = []
        # Back to back from the start until the step ends, and at least `reads` of them.
        while done < reads or p.poll() is None:
            running = p.poll() is None
            try:
                if d.count() != expected:
                    wrong += 1
            except Exception as e:
                failed += 1
                errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:100]}")
            done += 1
            during += running and p.poll() is None
        _, err = p.communicate()
        wall = time.perf_counter() - t0
        out["steps"][step] = {
            "rc": p.returncode,
            "wall_s": round(wall, 2),
            "reads": done,
            "reads_during": during,
            "failed_reads": failed,
            "wrong_counts": wrong,
            "first_error": errors[0] if errors else "",
            "stderr": err.strip().splitlines()[-1][:160] if p.returncode and err.strip() else "",
            "files_after": disk(d.root)[1],
            "plain_after": plain_counts(d.table_dir),
        }
    out["rows_after"] = d.count()
    out["data_files_after"] = len(d.live_files())
    return out


def sec_killed_compaction(d: Any, logbook_python: str) -> dict[str, Any]:
    """logbook only: `logbook compact` stopped after its merged part is renamed in and half its
    inputs are deleted, then SIGKILLed: what logbook's reader and plain readers see, before and
    after the next compaction tidies up. (Delta's counterpart is optimize without vacuum.)"""
    env = {**child_env(), "LOGBOOK_TEST_COMPACT_PAUSE": "deleting"}
    cmd = [logbook_python, "-m", "logbook", "compact", "--store", str(d.root)]
    expected = d.count()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    assert p.stderr is not None
    for line in p.stderr:
        if "logbook-compact-paused" in line:
            break
    out: dict[str, Any] = {
        "rows": expected,
        "paused": {"logbook": d.count(), **plain_counts(d.table_dir)},
    }
    p.kill()
    p.wait()
    out["killed"] = {"logbook": d.count(), **plain_counts(d.table_dir)}
    subprocess.run(
        cmd, check=True, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    out["next_compact"] = {"logbook": d.count(), **plain_counts(d.table_dir)}
    return out


def sec_startup(d: Any, repeats: int) -> dict[str, float]:
    imports = {
        "parts": "import logbook.store",
        "delta": "import deltalake",
        "iceberg": "from pyiceberg.catalog.sql import SqlCatalog",
    }[d.name]
    opens = {
        "parts": f"from logbook.store import Store; Store.open({str(d.root)!r}).part_files('metrics')",
        "delta": f"from deltalake import DeltaTable; DeltaTable({str(d.root)!r}).version()",
        "iceberg": (
            f"from pyiceberg.catalog.sql import SqlCatalog;"
            f"SqlCatalog('bench', uri='sqlite:///{d.root}/catalog.db', warehouse='file://{d.root}/wh')"
            f".load_table('b.metrics').current_snapshot()"
        ),
    }[d.name]

    def timed(code: str) -> float:
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=child_env())
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    base = timed("pass")
    return {
        "python_s": round(base, 3),
        "import_s": round(timed(imports) - base, 3),
        "import_open_s": round(timed(opens) - base, 3),
    }


# --- children ----------------------------------------------------------------------------------


def child_writer(name: str, root: str, go: str, prefix: str, count: int) -> None:
    """Append `count` batches, printing "ok <id>" after each append returns."""
    d = design(name, Path(root))
    h = d.open_writer()
    print("ready", flush=True)
    if go != "-":
        while not os.path.exists(go):
            time.sleep(0.005)
    errors = retries = done = 0
    fatal = ""
    for i in range(count):
        bid = f"{prefix}-{i:05d}"
        for _attempt in range(100):  # what a caller would do: try the append again
            try:
                retries += d.append(h, bid)
                break
            except Exception as e:
                errors += 1
                fatal = f"{type(e).__name__}: {e}"[:200]
                time.sleep(random.random() * 0.1)
                h = d.open_writer()
        else:
            print(json.dumps({"errors": errors, "retries": retries, "done": done, "fatal": fatal}))
            return
        done += 1
        print(f"ok {bid}", flush=True)
    print(json.dumps({"errors": errors, "retries": retries, "done": done}), flush=True)


def child_delta_maint(root: str, what: str) -> None:
    from deltalake import DeltaTable

    dt = DeltaTable(root)
    if what == "compact":
        dt.optimize.compact()
    else:
        dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)


def child_iceberg_maint(root: str, what: str) -> None:
    t = Iceberg(Path(root)).open_writer()
    if what == "rewrite":
        t.overwrite(t.scan().to_arrow())
    else:
        cur = t.current_snapshot().snapshot_id
        old = [s.snapshot_id for s in t.snapshots() if s.snapshot_id != cur]
        t.maintenance.expire_snapshots().by_ids(old).commit()


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        cmd, args = sys.argv[1], sys.argv[2:]
        if cmd == "_writer":
            child_writer(args[0], args[1], args[2], args[3], int(args[4]))
        elif cmd == "_delta_maint":
            child_delta_maint(*args)
        elif cmd == "_iceberg_maint":
            child_iceberg_maint(*args)
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--designs", default="parts,delta,iceberg")
    ap.add_argument("--only", default="appends,writers,kill,compact,startup")
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--writers", default="16,64,128")
    ap.add_argument("--per-writer", type=int, default=20)
    ap.add_argument("--writers-limit-s", type=float, default=300)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--reads", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="200 batches, 16 writers, 5 kills")
    ap.add_argument(
        "--logbook-python",
        default=sys.executable,
        help="a Python with logbook's dependencies, for `python -m logbook compact`",
    )
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--json", default=None, help="write the results here as well")
    a = ap.parse_args()
    if a.quick:
        a.batches, a.writers, a.kills = 200, "16", 5
    only = set(a.only.split(","))
    base = Path(tempfile.mkdtemp(prefix="tfbench-", dir=a.tmp))
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in a.designs.split(","):
            r = results.setdefault(name, {})
            d = design(name, base / name / "main")

            def note(section: str, value: Any, r: dict[str, Any] = r, name: str = name) -> None:
                r[section] = value
                print(f"[{name}] {section}: {json.dumps(value)}", file=sys.stderr, flush=True)

            if {"appends", "compact", "startup"} & only:
                note("appends", sec_appends(d, a.batches))
                note("plain_after_appends", plain_counts(d.table_dir))
            if "startup" in only:
                note("startup", sec_startup(d, a.repeats))
            if "compact" in only:
                note("compact", sec_compact(d, a.reads, a.logbook_python))
            if "kill" in only:
                k = design(name, base / name / "kill")
                k.create()
                note("kill", sec_kill(k, a.kills, seed=7))
                if name == "parts" and "compact" in only:
                    note("killed_compaction", sec_killed_compaction(k, a.logbook_python))
            if "writers" in only:
                for n in [int(x) for x in a.writers.split(",")]:
                    note(
                        f"writers_{n}",
                        sec_writers(name, base / name, n, a.per_writer, a.writers_limit_s),
                    )
                    shutil.rmtree(base / name / f"writers-{n}", ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
