"""Notes and events added by hand, and the events listing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from logbook.errors import ConfigError
from logbook.query import run_sql
from logbook.record.events import parse_fields, parse_time
from logbook.store import Store


@pytest.fixture
def recorded(run_logbook, store_path: Path) -> Path:  # type: ignore[no-untyped-def]
    run_logbook(
        "run", "--store", str(store_path), "--run", "gpt", "--no-capture", "--", "true", check=0
    )
    run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "gpt",
        "--no-capture",
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(1.5)",
        check=0,
    )
    return store_path


def test_note_attaches_to_the_attempt_running_then(invoke, recorded: Path) -> None:  # type: ignore[no-untyped-def]
    [second] = run_sql(
        Store(recorded), "select start_time from attempts where label = '1.01'"
    ).to_pylist()
    during = second["start_time"].isoformat().replace("+00:00", "Z")
    invoke(
        [
            "note",
            "gpt",
            "Lowered LR to 0.8x after the spike at 23k",
            "--step",
            "23000",
            "--tag",
            "lr",
            "--at",
            during,
            "--store",
            str(recorded),
        ]
    )
    invoke(
        [
            "note",
            "gpt",
            "a note on the run",
            "--at",
            "2020-01-01T00:00:00+00:00",
            "--store",
            str(recorded),
        ]
    )
    rows = json.loads(
        invoke(
            ["events", "gpt", "--kind", "note", "--store", str(recorded), "--format", "json"]
        ).stdout
    )
    assert [(r["attempt"], r["step"], r["message"]) for r in rows] == [
        (None, None, "a note on the run"),
        ("1.01", 23000, "Lowered LR to 0.8x after the spike at 23k"),
    ]
    [data] = (
        run_sql(Store(recorded), "select data from events where step = 23000").column(0).to_pylist()
    )
    assert json.loads(data) == {"tags": ["lr"]}


def test_event_add_with_fields_and_attempt(invoke, recorded: Path) -> None:  # type: ignore[no-untyped-def]
    invoke(
        [
            "event",
            "add",
            "gpt",
            "--kind",
            "hardware_fault",
            "--severity",
            "error",
            "--attempt",
            "1.00",
            "-m",
            "GPU fell off the bus",
            "node=ip-10-0-3-7",
            "xid=79",
            "--store",
            str(recorded),
        ]
    )
    [row] = run_sql(
        Store(recorded),
        "select e.kind, e.severity, e.message, e.data, a.label from events e "
        "join attempts a using (attempt_id) where kind = 'hardware_fault'",
    ).to_pylist()
    assert (row["severity"], row["message"], row["label"]) == (
        "error",
        "GPU fell off the bus",
        "1.00",
    )
    assert json.loads(row["data"]) == {"node": "ip-10-0-3-7", "xid": 79}
    out = invoke(
        ["events", "gpt", "--limit", "1", "--store", str(recorded), "--format", "csv"]
    ).stdout
    assert out.splitlines()[1].split(",")[3] == "hardware_fault"


def test_bad_input_is_a_clear_error(invoke, recorded: Path) -> None:  # type: ignore[no-untyped-def]
    r = invoke(["note", "gtp", "typo", "--store", str(recorded)], code=1)
    assert "did you mean: gpt" in r.stderr
    r = invoke(["note", "gpt", "x", "--at", "yesterday", "--store", str(recorded)], code=1)
    assert "'yesterday' is not a time" in r.stderr
    r = invoke(["event", "add", "gpt", "--kind", "x", "oops", "--store", str(recorded)], code=1)
    assert "'oops' is not key=value" in r.stderr
    r = invoke(["note", "gpt", "x", "--attempt", "9.99", "--store", str(recorded)], code=1)
    assert "has no attempt 9.99" in r.stderr
    r = invoke(["event", "add", "gpt", "--kind", "bad kind!", "--store", str(recorded)], code=1)
    assert "is not allowed" in r.stderr


def test_parse_helpers() -> None:
    assert parse_time("2026-11-22T10:00:00Z").isoformat() == "2026-11-22T10:00:00+00:00"
    assert parse_time("now").tzinfo is not None
    assert parse_fields(["a=1", "b=x", "c=[1, 2]", "d="]) == {
        "a": 1,
        "b": "x",
        "c": [1, 2],
        "d": "",
    }
    with pytest.raises(ConfigError):
        parse_fields(["=1"])
