"""Spark reads the store as it lies (#18): `logbook schema --ddl` names every column of schemas/
with a type in each dialect; the Spark statements, run by a real local Spark on a store of real
`logbook run`s (a crash and its restart, a launch over two hosts), make tables whose counts are
DuckDB's; and the README's plain-SQL cookbook gives, on Spark, the answers logbook's own DuckDB
views give. Trino, Athena and BigQuery cannot run here: their statements are checked by shape."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import logbook_cmd

from logbook import schema as schemas

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("spark_bench", ROOT / "benchmarks/spark_bench.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

TRAIN = """import os, sys, time
time.sleep(1.5)  # long enough for process samples at --sample-every 0.5
for step in range(5):
    print(f"step={step} loss={1.0 / (step + 1)}", flush=True)
if os.environ.get("LOGBOOK_RESTART_COUNT") == "0" and "crash" in sys.argv:
    raise RuntimeError("CUDA error: an illegal memory access was encountered")
"""

# Each dialect's type for each type of schemas/, written out here apart from logbook/ddl.py.
TYPES = {
    "spark": {"string": "STRING", "int64": "BIGINT", "int32": "INT", "float64": "DOUBLE",
              "bool": "BOOLEAN", "timestamp": "TIMESTAMP", "list<string>": "ARRAY<STRING>"},
    "trino": {"string": "varchar", "int64": "bigint", "int32": "integer", "float64": "double",
              "bool": "boolean", "timestamp": "timestamp", "list<string>": "array(varchar)"},
    "athena": {"string": "string", "int64": "bigint", "int32": "int", "float64": "double",
               "bool": "boolean", "timestamp": "timestamp", "list<string>": "array<string>"},
    "bigquery": {"string": "STRING", "int64": "INT64", "int32": "INT64", "float64": "FLOAT64",
                 "bool": "BOOL", "timestamp": "TIMESTAMP", "list<string>": "ARRAY<STRING>"},
}  # fmt: skip
LOCATION = {
    "spark": "/data/lb",
    "trino": "s3://ml-logbooks/archive",
    "athena": "s3://ml-logbooks/archive",
    "bigquery": "gs://ml-logbooks/archive",
}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(logbook_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=120)


def _ddl(dialect: str, *extra: str) -> str:
    proc = _cli("schema", "--ddl", dialect, "--location", LOCATION[dialect] + "/", *extra)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _statement(ddl: str, table: str) -> str:
    """The CREATE statement of `table` and the lines after it, up to the next table's."""
    start = ddl.index(f"EXISTS logbook.{table} (")
    end = ddl.find("CREATE ", start + 1)
    return ddl[start : end if end > 0 else None]


def _columns(statement: str) -> list[tuple[str, str]]:
    """(name, type) of each column line of a CREATE statement: `  "name"  type,`."""
    return re.findall(r'^  [`"](\w+)[`"]\s+(\S+?),?$', statement, flags=re.MULTILINE)


@pytest.mark.parametrize("dialect", sorted(TYPES))
def test_each_dialect_names_every_column_of_every_table_with_its_type(dialect: str) -> None:
    ddl = _ddl(dialect)
    assert schemas.tables(), "no tables in schemas/"
    for table in schemas.tables():
        t = schemas.load(table)
        stmt = _statement(ddl, table)
        got = _columns(stmt)
        expected = [(c.name, TYPES[dialect][c.type]) for c in t.columns]
        where = f"{LOCATION[dialect]}/{table}/"
        if dialect == "spark":  # every column, the partition key among them
            assert got == expected, table
            assert "PARTITIONED BY (`run`)" in stmt and f"LOCATION '{where}'" in stmt
            assert f"MSCK REPAIR TABLE logbook.{table};" in stmt
        elif dialect == "trino":  # the partition key last
            assert got == [e for e in expected if e[0] != "run"] + [("run", "varchar")], table
            assert f"external_location = '{where}'" in stmt
            assert "partitioned_by = ARRAY['run']" in stmt and "format = 'PARQUET'" in stmt
            assert f"CALL system.sync_partition_metadata('logbook', '{table}', 'ADD');" in stmt
        elif dialect == "athena":  # the partition key apart from the columns
            assert got == [e for e in expected if e[0] != "run"], table
            assert "PARTITIONED BY (`run` string)" in stmt and "STORED AS PARQUET" in stmt
            assert f"LOCATION '{where}'" in stmt and f"MSCK REPAIR TABLE logbook.{table};" in stmt
            assert stmt.startswith("EXISTS") and "CREATE EXTERNAL TABLE IF NOT EXISTS" in ddl
        else:  # BigQuery: no Hive keys (they may not be columns of the files), run is one
            assert got == expected, table
            assert f"uris = ['{where}*.parquet']" in stmt and "format = 'PARQUET'" in stmt
            assert "PARTITION" not in stmt
        assert stmt.count("(") >= 1 and ddl.count(f"logbook.{table} (") == 1


def test_the_database_is_named_and_a_store_without_a_table_folder_keeps_its_repair_commented(
    tmp_path: Path,
) -> None:
    store = tmp_path / ".logbook"
    from logbook.store import Store

    Store.open(store, create=True)
    (store / "attempts").mkdir()
    proc = _cli("schema", "--ddl", "spark", "--database", "lb", "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("CREATE TABLE IF NOT EXISTS lb.") == len(schemas.tables())
    assert f"LOCATION '{store.resolve()}/attempts/'" in proc.stdout
    assert "\nMSCK REPAIR TABLE lb.attempts;" in proc.stdout
    assert "\n-- MSCK REPAIR TABLE lb.nodes;" in proc.stdout
    assert "\nMSCK REPAIR TABLE lb.nodes;" not in proc.stdout


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--ddl", "athena", "--location", "/data/lb"], 1, "athena reads only s3://"),
        (["--ddl", "bigquery", "--location", "s3x://b"], 1, "bigquery reads only gs://"),
        (["--ddl", "spark", "--location", "s3://b/it's"], 1, "cannot go into a statement"),
        (["--ddl", "spark", "--location", "/x", "--database", "a;drop"], 1, "is not allowed"),
        (["--ddl", "oracle"], 2, "'oracle' is not one of"),
        (["--location", "s3://b"], 2, "--location goes with --ddl"),
        (["--ddl", "spark", "--store", "nosuch"], 1, "no logbook store"),
    ],
)
def test_bad_input_is_a_clear_message(
    tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    proc = _cli("schema", *args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr


def test_without_ddl_it_prints_the_table_reference() -> None:
    proc = _cli("schema")
    assert proc.returncode == 0 and proc.stdout == schemas.reference_markdown()


# Spark, on a store of real runs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run `crashy`: 1.00 crashes (CUDA), 1.01 completes, 2 GPUs by SLURM_GPUS_ON_NODE; run
    `multi`: one attempt launched over two hosts of 8 GPUs (a nodes row each)."""
    cwd = tmp_path_factory.mktemp("spark")
    (cwd / "train.py").write_text(TRAIN)
    crashy = subprocess.run(
        logbook_cmd("run", "--run", "crashy", "--restarts", "1", "--backoff", "0.2",
                    "--sample-every", "0.5", "--",
                    sys.executable, "train.py", "crash"),
        cwd=cwd, env={**os.environ, "SLURM_GPUS_ON_NODE": "2"}, capture_output=True, timeout=120,
    )  # fmt: skip
    assert crashy.returncode == 0, crashy.stderr[-2000:]
    nodes = [
        subprocess.Popen(
            logbook_cmd("run", "--run", "multi", "--", sys.executable, "train.py"),
            cwd=cwd,
            env={
                **os.environ,
                "LOGBOOK_LAUNCH_ID": "launch-1",
                "LOGBOOK_NODE_RANK": str(rank),
                "LOGBOOK_NODES": "2",
                "LOGBOOK_HOST": f"host{rank}",
                "SLURM_GPUS_ON_NODE": "8",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    for p in nodes:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    return cwd / ".logbook"


@pytest.fixture(scope="module")
def spark(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Spark for the module, with the tables `logbook schema --ddl spark` makes."""
    if importlib.util.find_spec("pyspark") is None or not shutil.which("java"):
        pytest.skip("pyspark or java is not installed here")
    ddl = _cli("schema", "--ddl", "spark", "--location", str(store), "--store", str(store))
    assert ddl.returncode == 0, ddl.stderr
    session = bench.spark_session(tmp_path_factory.mktemp("warehouse"), 1)
    try:
        for sql in bench.statements(ddl.stdout):
            session.sql(sql)
        session.sql("use logbook")
        yield session
    finally:
        session.stop()


def test_spark_counts_every_table_as_duckdb_does(spark: Any, store: Path) -> None:
    from logbook.query import run_sql
    from logbook.store import Store

    counts = bench.table_counts(spark, store)
    assert set(counts) == set(schemas.tables())
    views = {"attempts": "attempt_changes", "nodes": "node_changes", "metrics": "all_metrics"}
    for table, (in_spark, in_duckdb) in counts.items():
        assert in_spark == in_duckdb, table
        view = views.get(table, table)
        logbook_count = run_sql(Store.open(store), f"select count(*) as n from {view}")
        assert in_spark == logbook_count.column("n")[0].as_py(), table
    for table in ("attempts", "events", "metrics", "nodes", "runs", "snapshots"):
        assert counts[table][0] > 0, table


def test_the_readmes_plain_sql_is_the_cookbook_logbook_answers() -> None:
    assert set(bench.engine_cookbook()) == set(bench.DUCKDB)


@pytest.mark.parametrize("name", sorted(bench.DUCKDB))
def test_spark_gives_logbooks_answers_to_the_cookbook(spark: Any, store: Path, name: str) -> None:
    got = bench.spark_rows(spark, bench.engine_cookbook()[name])
    want = bench.duckdb_rows(store, bench.DUCKDB[name])
    assert bench.same_rows(got, want), (got, want)
    # and the store has something to answer with
    facts = {
        "attempts per status": ("crashy", "crashed", 1),
        "incidents by class": ("crashy", "gpu_hardware", 1),
        "attempts by how they ended": ("crashy", "exit 1", "crashed", 1),
    }
    if name in facts:
        assert facts[name] in want
    if name == "peak memory and CPU of each attempt":
        assert {(r[0], r[1]) for r in want} >= {("crashy", "1.00"), ("crashy", "1.01")}
    if name == "GPU-hours per attempt":
        assert sorted((r[0], r[1], r[3]) for r in want) == [
            ("crashy", "1.00", 2), ("crashy", "1.01", 2), ("multi", "1.00", 16)
        ]  # fmt: skip


def test_a_store_without_some_tables_reads_in_spark(spark: Any, tmp_path: Path) -> None:
    """One host, no nodes/: its repair line is left commented, and the table reads as empty."""
    (tmp_path / "train.py").write_text(TRAIN)
    proc = subprocess.run(
        logbook_cmd("run", "--run", "lone", "--", sys.executable, "train.py"),
        cwd=tmp_path, capture_output=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = tmp_path / ".logbook"
    assert not (store / "nodes").exists()
    ddl = _cli("schema", "--ddl", "spark", "--database", "lone", cwd=tmp_path)
    assert ddl.returncode == 0, ddl.stderr
    for sql in bench.statements(ddl.stdout):
        spark.sql(sql)
    assert spark.sql("select count(*) from lone.nodes").collect()[0][0] == 0
    assert spark.sql("select count(distinct attempt_id) from lone.attempts").collect()[0][0] == 1
