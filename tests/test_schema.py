"""schemas/ is the single source of truth: every file is complete, and every part written matches it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import logbook_cmd

from logbook import schema
from logbook.store import Store, parts

REQUIRED = {"runs", "attempts", "events", "metrics", "samples", "snapshots"}
TYPES = {"string", "int64", "int32", "float64", "bool", "timestamp", "list<string>"}


def test_every_table_has_a_complete_versioned_file() -> None:
    assert REQUIRED <= set(schema.tables())
    for name in schema.tables():
        doc = json.loads((schema.schema_dir() / f"{name}.json").read_text())
        assert doc["table"] == name and isinstance(doc["version"], int) and doc["description"]
        names = [c["name"] for c in doc["columns"]]
        assert (
            len(names) == len(set(names)) and names[0] == "run" and doc["partitioning"] == ["run"]
        )
        for c in doc["columns"]:
            assert set(c) - {"redact"} == {"name", "type", "nullable", "description"}, c
            assert c.get("redact", "none") in schema.REDACT_MODES, c
            assert (
                c["type"] in TYPES
                and isinstance(c["nullable"], bool)
                and len(c["description"]) > 10
            ), c
        assert (
            schema.load(name).arrow().metadata[b"logbook.schema_version"]
            == str(doc["version"]).encode()
        )


def _check_parts(root: Path, table: str) -> int:
    # every part holds its run too, first, as a Hive key's type (#17)
    want = parts.part_schema(schema.load(table).arrow())
    assert want.names[0] == "run" and want.field("run").type == pa.dictionary(
        pa.int32(), pa.string()
    )
    found = 0
    for part in (root / table).rglob("*.parquet"):
        got = pq.read_schema(part)
        assert [(f.name, f.type, f.nullable) for f in got] == [
            (f.name, f.type, f.nullable) for f in want
        ], part
        found += 1
    return found


def test_every_table_the_code_writes_matches_its_file(tmp_path: Path, store_path: Path) -> None:
    script = tmp_path / "t.py"
    script.write_text(
        "import signal, time\nsignal.signal(signal.SIGUSR1, lambda *a: print('usr1', flush=True))\n"
        "print('ready', flush=True)\ntime.sleep(1)\n"
    )
    proc = subprocess.Popen(
        logbook_cmd(
            "run", "--store", str(store_path), "--run", "s", "--", sys.executable, str(script)
        ),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGUSR1)  # a signal event, so events are written too
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    # metrics and samples have no writer in the supervisor yet (#4, #5): write them through the store API.
    store = Store(store_path)
    now = datetime.now(timezone.utc)
    store.write(
        "metrics",
        "s",
        [
            {
                "attempt_id": "a",
                "time": now,
                "step": 1,
                "name": "loss",
                "value": 2.0,
                "source": "api",
            }
        ],
    )
    store.write(
        "samples", "s", [{"attempt_id": "a", "time": now, "scope": "host", "cpu_pct": 12.5}]
    )
    for table in sorted(REQUIRED):
        assert _check_parts(store_path, table) >= 1, f"nothing written to {table}"


def test_an_unknown_type_in_a_schema_file_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown column type"):
        schema._arrow_type("decimal")


def test_the_table_reference_is_up_to_date() -> None:
    assert (schema.schema_dir() / "README.md").read_text() == schema.reference_markdown(), (
        "run: python -m logbook.schema > schemas/README.md"
    )
