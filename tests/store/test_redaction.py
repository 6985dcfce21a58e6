"""The store redacts every text column on its way in, whoever wrote the row (logbook/store/redaction.py):
parts, journals and compaction, by the mode each schema column gives."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import event

from logbook import schema
from logbook.store import Store, compact, layout, parts, redaction

GH = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
HOOK = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"


def _secret_event(i: int = 0) -> dict:  # type: ignore[type-arg]
    row = event(i)
    row["message"] = f"pushed with {GH} to {HOOK}"
    row["data"] = json.dumps({"lines": [f'password="hunter2secret" {GH}'], "key": "lr"})
    return row


def _read_parts(store: Store, table: str) -> list[pa.Table]:
    return [pq.read_table(p) for p in parts.iter_part_files(store.root, table)]


def test_store_write_redacts_text_and_keeps_json_valid(store: Store) -> None:
    written = _secret_event()
    store.write("events", "r", [written])
    [part] = _read_parts(store, "events")
    [row] = part.to_pylist()
    assert row["event_id"] == written["event_id"] and row["kind"] == "note"
    assert row["message"] == "pushed with *** to https://hooks.slack.com/services/***"
    # Seen decoded: the escaped quotes of JSON neither hide the password nor get eaten.
    assert json.loads(row["data"]) == {"lines": ['password="***" ***'], "key": "lr"}
    assert redaction.is_redacted(part.schema)


def test_unchanged_json_keeps_its_bytes_and_ids_are_left_alone() -> None:
    for text in ('{"b":1,  "a": [true, null, "step=3"]}', '{"loss": NaN, "x": "y"}'):
        assert redaction.redact_json(text) == text
    assert redaction.redact_json("not json: password=hunter2secret") == "not json: password=***"
    assert redaction.redact_json('{"torn": "password=hunter2secret') == '{"torn": "password=***'
    modes = redaction.modes("events")
    assert modes["event_id"] == modes["attempt_id"] == "none"
    assert modes["data"] == "json" and modes["message"] == "text" and modes["time"] == "none"
    assert redaction.modes("attempts")["command"] == "command"
    assert redaction.modes("metrics")["name"] == "text"


def test_a_journal_holds_only_redacted_rows(store: Store) -> None:
    journal = store.journal("r")
    attempt = {
        "attempt_id": "a",
        "command": ["python", "t.py", "--hf-token", "abc123secret", "--notify", HOOK],
        "summary": f"RuntimeError: {GH}",
    }
    journal.append("attempts", attempt)
    journal.append("events", _secret_event())
    text = journal.path.read_text()
    for secret in (GH, "abc123secret", "XXXXXXXX", "hunter2secret"):
        assert secret not in text and secret not in repr(journal.rows)
    [(_, row), _] = journal.rows
    assert row["command"] == [
        "python",
        "t.py",
        "--hf-token",
        "***",
        "--notify",
        "https://hooks.slack.com/services/***",
    ]
    assert attempt["summary"] == f"RuntimeError: {GH}"  # the caller's row is not changed
    journal.close()


def test_redacting_twice_changes_nothing(store: Store) -> None:
    data = parts.to_arrow("events", [_secret_event(i) for i in range(3)])
    once = redaction.redact_table(data, "events")
    unmarked = once.replace_schema_metadata(data.schema.metadata)
    assert redaction.redact_table(unmarked, "events").equals(once)


def test_compaction_redacts_parts_written_before_the_rules_and_keeps_redacted_ones(
    store: Store,
) -> None:
    directory = layout.run_dir(store.root, "events", "r")
    directory.mkdir(parents=True)
    old = parts.to_arrow("events", [_secret_event(0)])  # as an older logbook wrote it: raw
    pq.write_table(old, directory / layout.new_part_name())
    store.write("events", "r", [event(1)])
    result = compact.compact(store)
    assert result.parts_after == 1
    [part] = _read_parts(store, "events")
    assert redaction.is_redacted(part.schema)
    text = json.dumps(part.to_pylist(), default=str)
    assert GH not in text and "hunter2secret" not in text and "services/***" in text

    # A part marked by the current rules is taken as it is: compaction does not scan it again.
    marked = redaction.mark(parts.to_arrow("events", [{**event(2), "message": "mark " + GH}]))
    pq.write_table(marked, directory / layout.new_part_name())
    compact.compact(store)
    assert "mark " + GH in json.dumps(Store(store.root).read("events").to_pylist(), default=str)


def test_a_schema_cannot_ask_for_a_mode_that_does_not_fit_its_type() -> None:
    col = {"name": "x", "type": "int64", "nullable": True, "description": "a number here"}
    with pytest.raises(ValueError, match="cannot have redact 'json'"):
        schema._column("t", {**col, "redact": "json"})
    with pytest.raises(ValueError, match="cannot have redact 'maybe'"):
        schema._column("t", {**col, "type": "string", "redact": "maybe"})
    assert schema._column("t", col).redaction == "none"
    assert schema._column("t", {**col, "type": "list<string>"}).redaction == "text"


def test_every_part_written_is_marked(store: Store) -> None:
    store.write(
        "metrics",
        "r",
        [
            {
                "attempt_id": "a",
                "time": event(0)["time"],
                "name": "loss",
                "value": 1.0,
                "source": "api",
            }
        ],
    )
    [part] = _read_parts(store, "metrics")
    assert redaction.is_redacted(part.schema)
    assert [(f.name, f.type) for f in part.schema] == [
        (f.name, f.type) for f in parts.part_schema(schema.load("metrics").arrow())
    ]
