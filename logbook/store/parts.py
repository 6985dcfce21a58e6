"""Immutable Parquet parts: written whole to a temporary name, fsync'd, renamed into place."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook import schema as schemas
from logbook.store import layout, redaction

if TYPE_CHECKING:
    import pyarrow as pa

_MAGIC = b"PAR1"


def to_arrow(
    table: str, rows: Sequence[Mapping[str, Any]], *, with_partitions: bool = False
) -> pa.Table:
    """Rows (dicts) as a pyarrow table with exactly the schema of `table`.

    Timestamps may be datetimes or ISO strings (as the journal keeps them); missing keys are null.
    """
    import pyarrow as pa

    sch = schemas.load(table)
    arrow_schema = sch.arrow(with_partitions=with_partitions)
    ts_cols = [c.name for c in sch.columns if c.type == "timestamp"]
    fixed = []
    for row in rows:
        r = {name: row.get(name) for name in arrow_schema.names}
        for c in ts_cols:
            value = r.get(c)
            if isinstance(value, str):
                r[c] = datetime.fromisoformat(value)
        fixed.append(r)
    return pa.Table.from_pylist(fixed, schema=arrow_schema)


def write_part(directory: Path, data: pa.Table, name: str | None = None, **options: Any) -> Path:
    """Write `data` as one part in `directory`, atomically, its text columns redacted.

    Every Parquet part of every table is written here, whichever producer made the rows, so this
    is where secrets the training printed are taken out (see logbook/store/redaction.py).

    Args:
        directory: `<store>/<table>/run=<name>`; the table's schema says how to redact each column.
        options: passed to pyarrow.parquet.write_table (encodings for a big table, say).

    Returns:
        The path of the new part.
    """
    import pyarrow.parquet as pq

    data = redaction.redact_table(data, _table_of(data, directory))
    run = layout.run_of(directory)
    if run is not None:  # after redaction: the column must name the folder exactly
        data = with_run(data, run)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / (name or layout.new_part_name())
    tmp = directory / f".{final.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            pq.write_table(data, f, **{"compression": "zstd", **options})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    from logbook.store import uploader

    uploader.nudge()  # a remote store's spool: upload it now (a no-op for a local store)
    return final


def with_run(data: pa.Table, run: str) -> pa.Table:
    """`data` with `run` as its first column, replacing any run column it had.

    Every part holds its run (#17), not only its `run=<name>/` folder: a part copied elsewhere keeps
    it, and readers need no Hive partitioning. Dictionary-encoded, the type pyarrow gives a Hive
    key, so pandas merges the column and the folder's key instead of refusing two types.
    """
    import pyarrow as pa

    codes = pa.array([0] * len(data), pa.int32())
    column = pa.DictionaryArray.from_arrays(codes, pa.array([run], pa.string()))
    if "run" in data.column_names:
        data = data.drop_columns(["run"])
    meta = data.schema.metadata
    data = data.add_column(0, pa.field("run", run_type(), nullable=False), column)
    return data.replace_schema_metadata(meta)


def part_schema(schema: pa.Schema) -> pa.Schema:
    """The schema of a part file holding rows of `schema` (a table's schema without its run)."""
    import pyarrow as pa

    fields = [pa.field("run", run_type(), nullable=False), *(f for f in schema if f.name != "run")]
    return pa.schema(fields, metadata=schema.metadata)


def run_type() -> pa.DataType:
    """The type of the run column inside parts (a function: importing this module must not
    import pyarrow)."""
    import pyarrow as pa

    return pa.dictionary(pa.int32(), pa.string())


def _table_of(data: pa.Table, directory: Path) -> str:
    """The table a part belongs to: its schema says (schemas built from schemas/ carry the name),
    else the folder above the run's."""
    named = (data.schema.metadata or {}).get(b"logbook.table")
    return named.decode() if named else directory.parent.name


def fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems (and Windows) cannot open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def iter_part_files(root: Path, table: str, run: str | None = None) -> Iterator[Path]:
    """Every part file of `table` (of one run, or all), compaction leftovers excluded."""
    base = root / table
    dirs = [layout.run_dir(root, table, run)] if run else _subdirs(base)
    for d in dirs:
        try:
            names = [e.name for e in os.scandir(d) if e.is_file()]
        except FileNotFoundError:
            continue
        replaced = _replaced_by_compaction(d, names)
        for name in sorted(names, key=layout.part_order):
            if (
                name.endswith(layout.PART_SUFFIX)
                and not name.startswith(".")
                and name not in replaced
            ):
                yield d / name


def reader_part_files(root: Path, table: str, run: str | None = None) -> list[Path]:
    """The parts of `table` as one consistent set, for a reader beside a running compaction.

    A compaction writes its manifest, then its output, deletes its inputs, then the manifest. One
    directory scan is not a snapshot: it can see an input before the merge and the output after
    it, missing the manifest between. So each folder is scanned until two scans in a row lose no
    part, and only parts in both are kept, with the manifests of either: an output in the first
    scan means its manifest existed all through the second, unless its inputs were deleted during
    it, and then reading them fails and the reader lists again (see Store.reading).
    """
    base = root / table
    dirs = [layout.run_dir(root, table, run)] if run else _subdirs(base)
    out: list[Path] = []
    for d in dirs:
        out.extend(d / name for name in _stable_names(d))
    return out


def _stable_names(directory: Path, tries: int = 20) -> list[str]:
    from logbook.store.compact import MANIFEST_PREFIX

    before = _scan(directory)
    for _ in range(tries):
        after = _scan(directory)
        gone = {n for n in before - after if n.endswith(layout.PART_SUFFIX)}
        if not gone:
            break
        before = after  # a compaction is deleting its inputs: scan again once it has
    names = (before & after) | {n for n in before | after if n.startswith(MANIFEST_PREFIX)}
    replaced = _replaced_by_compaction(directory, list(names))
    return sorted(
        (
            n
            for n in before & after
            if n.endswith(layout.PART_SUFFIX) and not n.startswith(".") and n not in replaced
        ),
        key=layout.part_order,
    )


def _scan(directory: Path) -> set[str]:
    try:
        return {e.name for e in os.scandir(directory) if e.is_file()}
    except FileNotFoundError:
        return set()


def _subdirs(base: Path) -> list[Path]:
    try:
        return sorted(
            Path(e.path) for e in os.scandir(base) if e.is_dir() and e.name.startswith("run=")
        )
    except FileNotFoundError:
        return []


def _replaced_by_compaction(directory: Path, names: list[str]) -> set[str]:
    """Parts that a finished compaction merged but had not yet deleted when it was interrupted."""
    from logbook.store import compact

    return compact.replaced_parts(directory, names)


def looks_whole(path: Path) -> bool:
    """Cheap test for a torn part: a Parquet file starts and ends with PAR1."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(-4, os.SEEK_END)
            tail = f.read(4)
    except OSError:
        return False
    return head == _MAGIC and tail == _MAGIC


def read_part(path: Path) -> pa.Table:
    """One part, whole. (ParquetFile, not read_table: that imports pyarrow.dataset, ~60 ms.)"""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        return f.read()


def check_part(path: Path) -> str | None:
    """Why a part cannot be read, or None if it reads in full."""
    if not looks_whole(path):
        return "not a whole Parquet file (torn or truncated)"
    try:
        read_part(path)
    except Exception as e:  # pyarrow raises several types for damaged files
        return f"{type(e).__name__}: {e}"
    return None


def now() -> datetime:
    return datetime.now(timezone.utc)
