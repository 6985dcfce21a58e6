"""Spark over the store as it lies (#18): the tables `logbook schema --ddl spark` makes, the
README's plain-SQL cookbook ("Query with Spark, Trino or Athena") run by Spark, and the same
questions asked of logbook's own DuckDB views; the answers must be identical.

    python benchmarks/spark_bench.py --store /tmp/chronicle-bench-store   # the OPT-size store
    python benchmarks/spark_bench.py --store .logbook --json

Prints, per table, Spark's count(*) beside DuckDB's (plain read_parquet over the same files), and
per query the rows, whether they are the same and each engine's time: DuckDB through
`logbook.query.run_sql` (which opens the store each time), Spark from its session (started once,
its start-up timed apart). Exits 1 when an answer differs. tests/store/test_spark_ddl.py runs the
same on a store of real `logbook run`s.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# The same questions over logbook's DuckDB views (`attempts` is already the newest state of each
# attempt; `incidents` and `goodput` are views of logbook's own), by the name that heads each
# README query.
DUCKDB = {
    "attempts per status": """
        select run, status, count(*) as attempts from attempts group by run, status
        order by run, status""",
    "attempts by how they ended": """
        select run, coalesce(signal_name, 'exit ' || exit_code, 'still running') as ended_by,
               status, count(*) as attempts
        from attempts group by all order by run, attempts desc, ended_by, status""",
    "incidents by class": """
        select run, class, count(*) as incidents from incidents group by all
        order by run, incidents desc, class""",
    "mean time between failures, week by week": """
        select date_trunc('week', start_time) as week,
            count(*) filter (where status in ('crashed', 'hung', 'lost')) as failures,
            round(sum(coalesce(duration_s, 0)) / 3600, 2) as hours,
            round(sum(coalesce(duration_s, 0)) / 3600
                  / nullif(count(*) filter (where status in ('crashed', 'hung', 'lost')), 0), 2)
                as mtbf_h
        from attempts group by week order by week""",
    "GPU-hours per attempt": """
        select run, label, status, gpus, round(wall_s / 3600, 3) as hours,
               round(gpus * wall_s / 3600, 3) as gpu_hours
        from goodput order by run, start_time""",
    "peak memory and CPU of each attempt": """
        select a.run, a.label, max(s.rss_bytes) as peak_rss_bytes,
               round(max(s.cpu_pct), 1) as peak_cpu_pct, max(s.threads) as threads,
               count(*) as readings
        from samples s join attempts a on a.attempt_id = s.attempt_id
        where s.scope = 'process' group by a.run, a.label, a.start_time
        order by a.run, a.start_time""",
    "hottest GPUs": """
        select host, gpu_index, max(temperature_c) as max_c, round(avg(temperature_c), 1) as mean_c,
               max(power_w) as max_w, count(*) as readings
        from samples where scope = 'gpu'
        group by host, gpu_index order by max_c desc nulls last, host, gpu_index limit 10""",
}


def engine_cookbook(readme: str | None = None) -> dict[str, str]:
    """The README's plain-SQL queries, by the comment on their first line (up to a colon)."""
    text = readme if readme is not None else (ROOT / "README.md").read_text()
    section = text.split("<!-- engine-cookbook -->", 1)[1].split("<!-- /engine-cookbook -->", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    return {b.splitlines()[0].removeprefix("-- ").split(":")[0].strip(): b for b in blocks}


def spark_session(warehouse: Path, cores: int = 1) -> Any:
    """A local Spark session: UI off, few shuffle partitions, UTC, its databases' folders (empty:
    the tables are external) in `warehouse` rather than ./spark-warehouse."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("logbook-spark-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(max(2, cores * 2)))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def statements(ddl: str) -> list[str]:
    """The statements of `logbook schema --ddl` output, without their comment lines."""
    out = []
    for chunk in ddl.split(";\n"):
        body = "\n".join(line for line in chunk.splitlines() if not line.startswith("--"))
        if body.strip():
            out.append(body.strip().rstrip(";"))
    return out


def create_tables(spark: Any, store: Path, database: str = "logbook") -> None:
    """Run `logbook schema --ddl spark` for `store` (its folder as the location) in `spark`."""
    from logbook import ddl
    from logbook import schema as schemas

    present = {t for t in schemas.tables() if (store / t).is_dir()}
    text = ddl.external_tables("spark", str(store.resolve()), database, present=present)
    for sql in statements(text):
        spark.sql(sql)
    spark.sql(f"use {database}")


def normal(value: Any) -> Any:
    """A value as both engines can agree on it: times as UTC epoch seconds (Spark gives naive
    local datetimes, DuckDB aware ones), numbers as floats."""
    if isinstance(value, datetime):
        return round(value.timestamp(), 6)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) or hasattr(value, "__float__"):
        return float(value)
    return value


def same_rows(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        if len(ra) != len(rb):
            return False
        for x, y in zip(ra, rb, strict=True):
            x, y = normal(x), normal(y)
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


def spark_rows(spark: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in spark.sql(sql).collect()]


def duckdb_rows(store: Path, sql: str) -> list[tuple[Any, ...]]:
    from logbook.query import run_sql
    from logbook.store import Store

    table = run_sql(Store.open(store), sql)
    return [tuple(r.values()) for r in table.to_pylist()]


def table_counts(spark: Any, store: Path) -> dict[str, tuple[int, int]]:
    """Per table: Spark's count(*) and DuckDB's over the same files."""
    import duckdb

    from logbook import schema as schemas

    out = {}
    for t in schemas.tables():
        s = spark.sql(f"select count(*) from {t}").collect()[0][0]
        files = sorted(store.glob(f"{t}/run=*/*.parquet"))
        listed = [str(f) for f in files]
        d = (
            duckdb.sql(f"select count(*) from read_parquet({listed!r})").fetchall()[0][0]
            if files
            else 0
        )
        out[t] = (int(s), int(d))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", type=Path, default=Path("/tmp/chronicle-bench-store"))
    p.add_argument("--cores", type=int, default=2, help="Spark's local[N] (2)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not (args.store / "logbook-store.json").exists():
        print(f"no logbook store at {args.store}", file=sys.stderr)
        return 1
    warehouse = tempfile.TemporaryDirectory(prefix="logbook-spark-")
    t0 = time.perf_counter()
    spark = spark_session(Path(warehouse.name), args.cores)
    started = time.perf_counter() - t0
    t0 = time.perf_counter()
    create_tables(spark, args.store)
    created = time.perf_counter() - t0
    report: dict[str, Any] = {
        "store": str(args.store),
        "spark_start_s": round(started, 1),
        "spark_ddl_s": round(created, 1),
        "counts": {},
        "queries": [],
    }
    ok = True
    for table, (s, d) in table_counts(spark, args.store).items():
        report["counts"][table] = {"spark": s, "duckdb": d}
        ok &= s == d
    for name, sql in engine_cookbook().items():
        t0 = time.perf_counter()
        d_rows = duckdb_rows(args.store, DUCKDB[name])
        d_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        s_rows = spark_rows(spark, sql)
        s_s = time.perf_counter() - t0
        same = same_rows(s_rows, d_rows)
        ok &= same
        report["queries"].append(
            {
                "query": name,
                "rows": len(d_rows),
                "same": same,
                "duckdb_s": round(d_s, 2),
                "spark_s": round(s_s, 2),
            }
        )
        if not same:
            print(f"{name}: differ\n spark {s_rows[:5]}\n duckdb {d_rows[:5]}", file=sys.stderr)
    spark.stop()
    warehouse.cleanup()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"store {report['store']}: Spark start-up {report['spark_start_s']} s, "
            f"DDL {report['spark_ddl_s']} s"
        )
        for t, c in report["counts"].items():
            print(f"  {t:10} spark {c['spark']:>12,}  duckdb {c['duckdb']:>12,}")
        print(f"  {'query':48} {'rows':>6} {'same':>5} {'duckdb s':>9} {'spark s':>8}")
        for q in report["queries"]:
            print(
                f"  {q['query']:48} {q['rows']:>6} {str(q['same']):>5} "
                f"{q['duckdb_s']:>9} {q['spark_s']:>8}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
