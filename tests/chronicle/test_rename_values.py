"""Renaming the hosts of a samples part without re-encoding it (logbook.chronicle.rename_values,
#16): real Parquet files written by pyarrow, read back by pyarrow and DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logbook import schema
from logbook.chronicle import _thrift
from logbook.chronicle.data import _rewrite_hosts
from logbook.chronicle.rename_values import rename_values
from logbook.store.parts import write_part

REAL = "gpu-node-17.cluster.example.org"  # a real-looking name that must leave every byte
HOSTS = [REAL, "gpu-node-18.cluster.example.org", None, "login-2"]
STAND_INS = {REAL: "host-001", "gpu-node-18.cluster.example.org": "host-002", "login-2": "h3"}


def _samples(rows: int) -> pa.Table:
    """Samples in the store's schema: hosts in runs (as a sampler writes them), some null."""
    arrow = schema.load("samples").arrow()
    columns: dict[str, Any] = {
        "attempt_id": [f"a{i // 5000}" for i in range(rows)],
        "time": pa.array(range(rows), pa.int64()).cast(pa.timestamp("us", "UTC")),
        "host": [HOSTS[(i // 700) % len(HOSTS)] for i in range(rows)],
        "scope": ["gpu"] * rows,
        "gpu_index": [i % 8 for i in range(rows)],
        "power_w": [100.0 + (i * 7919) % 600 for i in range(rows)],
        "energy_j": [float(i * 31) for i in range(rows)],
    }
    return pa.table(
        {f.name: pa.array(columns.get(f.name, [None] * rows), f.type) for f in arrow}, arrow
    )


def _write(path: Path, table: pa.Table, **options: Any) -> Path:
    pq.write_table(table, path, compression="zstd", **options)
    return path


def _check_renamed(src: Path, dest: Path) -> None:
    """Every column as in src but host, host mapped exactly, no real name left in the bytes."""
    before, after = pq.read_table(src), pq.read_table(dest)
    assert after.schema == before.schema
    for name in before.column_names:
        if name != "host":
            assert after.column(name).equals(before.column(name)), name
    mapped = [None if h is None else STAND_INS[h] for h in before.column("host").to_pylist()]
    assert after.column("host").to_pylist() == mapped
    # DuckDB reads it the same: every value, row by row in file order
    con = duckdb.connect()
    cols = ", ".join(f'"{c}"' for c in before.column_names if c != "host")
    diff = con.sql(
        f"select count(*) from (select {cols}, host from read_parquet('{dest}') "
        f"except all select {cols}, case host when '{REAL}' then 'host-001' "
        "when 'gpu-node-18.cluster.example.org' then 'host-002' when 'login-2' then 'h3' end "
        f"from read_parquet('{src}'))"
    ).fetchall()
    assert diff == [(0,)]
    assert con.sql(f"select count(*) from read_parquet('{dest}')").fetchall() == [(len(before),)]
    raw = dest.read_bytes()
    assert REAL.encode() not in raw and b"login-2" not in raw
    assert REAL.encode() in src.read_bytes()  # the source had it in clear (statistics)
    meta = pq.ParquetFile(dest).metadata
    for g in range(meta.num_row_groups):
        host = meta.row_group(g).column(before.column_names.index("host"))
        assert host.statistics is None  # they held names
        assert meta.row_group(g).column(0).statistics is not None  # the rest keep theirs


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"row_group_size": 3000, "data_page_size": 2000},  # several row groups and pages
        {"row_group_size": 4000, "data_page_version": "2.0"},
        {"write_page_checksum": True, "row_group_size": 5000},
    ],
    ids=["one-group", "groups-and-pages", "page-v2", "checksums"],
)
def test_hosts_are_renamed_and_every_other_byte_kept(tmp_path: Path, options: Any) -> None:
    src = _write(tmp_path / "src.parquet", _samples(12_000), **options)
    dest = tmp_path / "dest.parquet"
    assert rename_values(src, dest, "host", STAND_INS.__getitem__) == 12_000
    _check_renamed(src, dest)
    if options.get("write_page_checksum"):
        pq.read_table(dest, page_checksum_verification=True)  # the new dictionary's CRC holds


def test_a_part_as_the_store_writes_it(tmp_path: Path) -> None:
    src = write_part(tmp_path / "samples" / "run=r", _samples(5000))
    dest = tmp_path / "dest.parquet"
    assert rename_values(src, dest, "host", STAND_INS.__getitem__) == 5000
    _check_renamed(src, dest)
    assert dest.stat().st_size < src.stat().st_size + 200  # the rest copied, not re-encoded


@pytest.mark.parametrize(
    "options",
    [
        {"use_dictionary": False},
        {"dictionary_pagesize_limit": 64},  # the writer falls back to plain pages
        {"write_page_index": True},
    ],
    ids=["plain", "dictionary-fallback", "page-index"],
)
def test_other_files_are_left_to_re_encoding(tmp_path: Path, options: Any) -> None:
    table = _samples(6000)
    if "dictionary_pagesize_limit" in options:  # many distinct names overflow the dictionary
        hosts = pa.array([f"{REAL}-{i}" for i in range(len(table))])
        table = table.set_column(table.schema.get_field_index("host"), "host", hosts)
    src = _write(tmp_path / "src.parquet", table, row_group_size=3000, **options)
    dest = tmp_path / "dest.parquet"
    assert rename_values(src, dest, "host", lambda h: "host-001") is None
    assert not dest.exists()
    # the chronicle's rewrite re-encodes it instead, with the same result
    assert _rewrite_hosts(src, dest, lambda h: None if h is None else "host-001") == 6000
    assert set(pq.read_table(dest).column("host").to_pylist()) <= {"host-001", None}
    assert REAL.encode() not in dest.read_bytes()


def test_thrift_keeps_fields_it_does_not_know(tmp_path: Path) -> None:
    src = _write(tmp_path / "src.parquet", _samples(100))
    raw = src.read_bytes()
    size = int.from_bytes(raw[-8:-4], "little")
    footer = raw[-8 - size : -8]
    meta, end = _thrift.loads(footer)
    assert end == size and _thrift.dumps(meta) == footer
    # every type, large and negative field ids, long lists, a map: written back as read
    inner = _thrift.Struct([[1, _thrift.I32, -5], [40, _thrift.FALSE, False]])
    odd = _thrift.Struct(
        [
            [1, _thrift.BYTE, 0xFE],
            [2, _thrift.I16, -300],
            [3, _thrift.I64, 1 << 60],
            [4, _thrift.DOUBLE, b"\x00" * 7 + b"\x40"],
            [5, _thrift.BINARY, b"x" * 300],
            [6, _thrift.LIST, _thrift.Container(_thrift.LIST, (_thrift.I32,), list(range(20)))],
            [7, _thrift.SET, _thrift.Container(_thrift.SET, (_thrift.TRUE,), [1, 2, 1])],
            [
                8,
                _thrift.MAP,
                _thrift.Container(_thrift.MAP, (_thrift.BINARY, _thrift.STRUCT), [(b"k", inner)]),
            ],  # fmt: skip
            [9, _thrift.MAP, _thrift.Container(_thrift.MAP, (0, 0), [])],
            [32000, _thrift.STRUCT, inner],
            [-3, _thrift.UUID, bytes(range(16))],
        ]
    )
    data = _thrift.dumps(odd)
    again, end = _thrift.loads(data)
    assert end == len(data) and again == odd and _thrift.dumps(again) == data
    with pytest.raises(_thrift.ThriftError):
        _thrift.loads(data[:-3])
