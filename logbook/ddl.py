"""External-table statements for the store, so that Spark, Trino, Athena or BigQuery read its
Parquet files where they lie (#18): `logbook schema --ddl DIALECT`.

Every table and column comes from schemas/ (logbook/schema.py), so the statements follow the
files. Each table is `<location>/<table>/run=<name>/*.parquet`: Hive partitions on `run`, which
every part written since schema version 3 also holds as a column of its own.

- **spark**: `CREATE TABLE ... USING PARQUET PARTITIONED BY (run) LOCATION`, a table over
  the files that DROP TABLE leaves in place, then `MSCK REPAIR TABLE` to find the runs.
- **trino** (Hive connector): `CREATE TABLE ... WITH (external_location, partitioned_by)`, the
  partition column last as Trino wants it, then `CALL system.sync_partition_metadata`.
- **athena**: `CREATE EXTERNAL TABLE ... PARTITIONED BY (run string) STORED AS PARQUET`, then
  `MSCK REPAIR TABLE`. Not partition projection: an `injected` projection would make every query
  name its run, and an `enum` one would list the runs in the statement.
- **bigquery**: `CREATE EXTERNAL TABLE ... OPTIONS (format, uris)` without Hive partitioning:
  BigQuery refuses partition keys that are also columns of the files, and the parts hold `run`.

A new run is a new partition: Spark, Trino and Athena see it after their repair line runs again.
Hidden files (a part being written, `.name.tmp`) and `_`-prefixed ones (compaction manifests)
are skipped by each engine; BigQuery's URI names `*.parquet` for the same reason.
"""

from __future__ import annotations

import re

from logbook import schema as schemas
from logbook.errors import ConfigError

DIALECTS = ("spark", "trino", "athena", "bigquery")

# schemas/ types -> each dialect's. Timestamps are Parquet's UTC microseconds: Spark's TIMESTAMP
# (its session time zone shows them); Trino's Hive tables take `timestamp` only, read at the
# catalog's hive.timestamp-precision (MICROSECONDS keeps every digit); Athena reads them as UTC.
_TYPES = {
    "spark": {
        "string": "STRING",
        "int64": "BIGINT",
        "int32": "INT",
        "float64": "DOUBLE",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMP",
        "list": "ARRAY<{}>",
    },
    "trino": {
        "string": "varchar",
        "int64": "bigint",
        "int32": "integer",
        "float64": "double",
        "bool": "boolean",
        "timestamp": "timestamp",
        "list": "array({})",
    },
    "athena": {
        "string": "string",
        "int64": "bigint",
        "int32": "int",
        "float64": "double",
        "bool": "boolean",
        "timestamp": "timestamp",
        "list": "array<{}>",
    },
    "bigquery": {
        "string": "STRING",
        "int64": "INT64",
        "int32": "INT64",
        "float64": "FLOAT64",
        "bool": "BOOL",
        "timestamp": "TIMESTAMP",
        "list": "ARRAY<{}>",
    },
}
# Where each engine reads from (a local path is fine for Spark and Trino's local file system).
_SCHEMES = {"athena": ("s3://",), "bigquery": ("gs://", "s3://", "azure://")}
_REPAIR_NOTE = {
    d: (f"-- A new run is a new partition: run each table's {what} again to see it.",)
    for d, what in (
        ("spark", "MSCK REPAIR TABLE"),
        ("trino", "sync_partition_metadata"),
        ("athena", "MSCK REPAIR TABLE"),
    )
}
_DATABASE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def column_type(dialect: str, name: str) -> str:
    """The type `dialect` declares for a column of schemas/ type `name` (string, list<string>, ...)."""
    types = _TYPES[dialect]
    if name.startswith("list<") and name.endswith(">"):
        return types["list"].format(column_type(dialect, name[5:-1]))
    try:
        return types[name]
    except KeyError:
        raise ValueError(f"no {dialect} type for column type {name!r} of schemas/") from None


def external_tables(
    dialect: str, location: str, database: str = "logbook", *, present: set[str] | None = None
) -> str:
    """The statements that make every table of the store at `location` (a path or URL: the folder
    holding attempts/, metrics/, ...) a table of `database` in `dialect`, ending with a newline.
    With `present` (the tables whose folder exists), the partition repair of a table without one is
    left commented out: Spark's MSCK REPAIR TABLE fails on a missing folder (a store of one host
    has no nodes/, one without a note or a sampler no events/ or samples/).

    Raises:
        ConfigError: an unknown dialect, a location the engine cannot read or that would break
            the statement, or a database name that is not a plain identifier.
    """
    if dialect not in DIALECTS:
        raise ConfigError(f"no DDL for {dialect!r}", hint=f"one of {', '.join(DIALECTS)}")
    location = location.rstrip("/")
    if not location or any(ch in location for ch in "'\\\n\r\"`"):
        raise ConfigError(
            f"location {location!r} cannot go into a statement",
            hint="give a path or URL without quotes, backslashes or newlines",
        )
    schemes = _SCHEMES.get(dialect)
    if schemes and not location.startswith(schemes):
        raise ConfigError(
            f"{dialect} reads only {', '.join(schemes)} locations, not {location!r}",
            hint=f"give --location {schemes[0]}BUCKET/PATH, where the store's folder was copied",
        )
    if not _DATABASE.fullmatch(database):
        raise ConfigError(
            f"database name {database!r} is not allowed", hint="letters, digits and _"
        )
    make = {"spark": _spark, "trino": _trino, "athena": _athena, "bigquery": _bigquery}[dialect]
    head = {
        "spark": f"CREATE DATABASE IF NOT EXISTS {database};",
        "trino": f"CREATE SCHEMA IF NOT EXISTS {database};",
        "athena": f"CREATE DATABASE IF NOT EXISTS {database};",
        "bigquery": f"CREATE SCHEMA IF NOT EXISTS {database};",
    }[dialect]
    out = [
        f"-- logbook tables over {location}/<table>/run=<name>/*.parquet ({dialect}),",
        "-- generated from schemas/ by `logbook schema --ddl`. The attempts and nodes tables hold",
        "-- one row per change: the newest recorded_at of each attempt_id (and node) is its state.",
        *_REPAIR_NOTE.get(dialect, ()),
        head,
        "",
    ]
    for table in schemas.tables():
        text = make(schemas.load(table), database, f"{location}/{table}")
        if present is not None and table not in present:
            text = _without_repair(text, table)
        out += [text, ""]
    return "\n".join(out)


def _without_repair(text: str, table: str) -> str:
    lines = text.splitlines()
    if not lines[-1].startswith(("MSCK", "CALL")):
        return text
    note = f"-- no {table}/ folder yet: run this once the table has parts"
    return "\n".join([*lines[:-1], note, f"-- {lines[-1]}"])


def _columns(t: schemas.TableSchema, dialect: str, quote: str, cols: list[str]) -> str:
    by_name = {c.name: c for c in t.columns}
    width = max(len(n) for n in cols) + 2
    lines = [
        f"  {quote}{n}{quote}".ljust(width + 2) + f" {column_type(dialect, by_name[n].type)}"
        for n in cols
    ]
    return ",\n".join(lines)


def _comment(t: schemas.TableSchema) -> str:
    return f"logbook {t.table}, schema version {t.version}"


def _spark(t: schemas.TableSchema, db: str, where: str) -> str:
    parts = ", ".join(f"`{p}`" for p in t.partitioning)
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{t.table} (\n{_columns(t, 'spark', '`', t.names)}\n)\n"
        f"USING PARQUET\nPARTITIONED BY ({parts})\nLOCATION '{where}/'\n"
        f"COMMENT '{_comment(t)}';\n"
        f"MSCK REPAIR TABLE {db}.{t.table};"
    )


def _trino(t: schemas.TableSchema, db: str, where: str) -> str:
    # Trino wants the partition columns last
    cols = [n for n in t.names if n not in t.partitioning] + list(t.partitioning)
    parts = ", ".join(f"'{p}'" for p in t.partitioning)
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{t.table} (\n{_columns(t, 'trino', chr(34), cols)}\n)\n"
        f"COMMENT '{_comment(t)}'\n"
        f"WITH (\n  format = 'PARQUET',\n  external_location = '{where}/',\n"
        f"  partitioned_by = ARRAY[{parts}]\n);\n"
        f"CALL system.sync_partition_metadata('{db}', '{t.table}', 'ADD');"
    )


def _athena(t: schemas.TableSchema, db: str, where: str) -> str:
    cols = [n for n in t.names if n not in t.partitioning]
    parts = ", ".join(f"`{p}` {column_type('athena', 'string')}" for p in t.partitioning)
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{t.table} (\n"
        f"{_columns(t, 'athena', '`', cols)}\n)\n"
        f"COMMENT '{_comment(t)}'\nPARTITIONED BY ({parts})\nSTORED AS PARQUET\n"
        f"LOCATION '{where}/';\n"
        f"MSCK REPAIR TABLE {db}.{t.table};"
    )


def _bigquery(t: schemas.TableSchema, db: str, where: str) -> str:
    return (
        f"-- run is the parts' own column (BigQuery refuses Hive keys that are columns of the files);\n"
        f"-- parts written before schema version 3 lack it: `logbook compact` rewrites them with it\n"
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{t.table} (\n"
        f"{_columns(t, 'bigquery', '`', t.names)}\n)\n"
        f"OPTIONS (\n  format = 'PARQUET',\n  uris = ['{where}/*.parquet'],\n"
        f"  description = '{_comment(t)}'\n);"
    )
