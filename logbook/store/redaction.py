"""Redaction at the store's door: every row any producer stores passes through here on its way in.

The wrapper, the Python API and its callbacks, the importer, hooks and snapshots each redact what
they know to be secret by its name (an environment variable, an option, a config key). What they
cannot know is what the training prints: an exception message or the last lines before a hang carry
a token verbatim into `summary`, `evidence` and `events`. So `parts.write_part` (every Parquet part)
and `Journal.append` (every journal line) run every text column through the redactor, by the mode
its schema gives it (`Column.redaction`). Only these two write table rows, so no producer can
forget.

Redaction is idempotent (`***` stays `***`), so text that a producer already redacted comes out
the same. A part records the redactor's version in its metadata; compaction leaves parts of the
current version as they are and redacts older ones, so a store written before a rule existed is
cleaned by its next compaction.

The raw logs (`logs/` in the store) are not redacted or rewritten: they are the training's own
output, kept as it printed it for the crash classifier and for whoever reads the store's folder,
and never published (the chronicle does not copy them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from logbook import schema as schemas
from logbook.record.redact import redact_command, redact_field, redact_text

if TYPE_CHECKING:
    import pyarrow as pa

# Bump when a rule in logbook.record.redact changes, so that compaction redacts older parts again.
VERSION = "1"
_KEY = b"logbook.redacted"


@cache
def modes(table: str | None) -> dict[str, str]:
    """Column name -> redaction mode for `table`; {} for a table the schemas do not know."""
    if not table:
        return {}
    try:
        sch = schemas.load(table)
    except (FileNotFoundError, ValueError, KeyError):
        return {}
    return {c.name: c.redaction for c in sch.columns}


def redact_row(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of one row (a dict, as a journal keeps it) with every text field redacted.

    A key the schema does not list is redacted as text if it holds text: unknown means unchecked.
    """
    how = modes(table)  # shared, cached: read only
    return {k: _redact_value(how.get(k, "text"), v) for k, v in row.items()}


def _redact_value(mode: str, value: Any) -> Any:
    if mode == "none" or value is None:
        return value
    if isinstance(value, str):
        return redact_json(value) if mode == "json" else redact_text(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return redact_command(list(value)) if mode == "command" else [redact_text(v) for v in value]
    return value


def redact_json(text: str) -> str:
    """Redact a JSON document held as a string, keeping it valid JSON: each string inside it is
    redacted, decoded (so `password=\\"x\\"` is seen as `password="x"`), and a value under a key
    such as `password` or `api_token` is hidden whole. Text that is not a JSON object or list is
    redacted as text. An unchanged document keeps its exact bytes."""
    head = text.lstrip()[:1]
    if head not in ("{", "["):
        return redact_text(text)
    try:
        doc = json.loads(text)
    except ValueError:
        return redact_text(text)
    changed: list[bool] = []
    cleaned = _walk(doc, None, changed)
    return json.dumps(cleaned) if changed else text


def _walk(value: Any, name: str | None, changed: list[bool]) -> Any:
    """`value` with its strings redacted; appends to `changed` when one was (comparing documents
    instead would take a NaN, never equal to itself, for a change)."""
    if isinstance(value, str):
        out = redact_field(name, value) if name is not None else redact_text(value)
        if out != value:
            changed.append(True)
        return out
    if isinstance(value, dict):
        return {
            _walk(k, None, changed) if isinstance(k, str) else k: _walk(
                v, k if isinstance(k, str) else None, changed
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_walk(v, None, changed) for v in value]
    return value


def is_redacted(schema: pa.Schema) -> bool:
    """Whether a part with this schema was redacted by the current rules."""
    return (schema.metadata or {}).get(_KEY) == VERSION.encode()


def mark(data: pa.Table) -> pa.Table:
    """`data` with its schema saying it was redacted by the current rules."""
    return data.replace_schema_metadata(mark_schema(data.schema).metadata)


def mark_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` saying that data in it was redacted by the current rules."""
    return schema.with_metadata({**(schema.metadata or {}), _KEY: VERSION.encode()})


def redact_table(data: pa.Table, table: str | None) -> pa.Table:
    """`data` with every text column redacted by its mode, and marked; one already marked is
    returned as it is. Each distinct string is redacted once (through a dictionary): a metric
    name repeated a million times costs one regex scan."""
    import pyarrow as pa

    if is_redacted(data.schema):
        return data
    how = modes(table)
    columns = []
    for field, col in zip(data.schema, data.columns, strict=True):
        mode = how.get(field.name, "text")
        if mode != "none" and (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            col = by_dictionary(col, redact_json if mode == "json" else redact_text)
        elif (
            mode != "none"
            and pa.types.is_list(col.type)
            and pa.types.is_string(col.type.value_type)
        ):
            col = _lists(col, mode)
        columns.append(col)
    return mark(pa.Table.from_arrays(columns, schema=data.schema))


# Up to this many rows a column is cleaned value by value: importing pyarrow.compute costs ~30 ms,
# which every `logbook run` would pay at its first write.
SMALL_COLUMN = 4096


def by_dictionary(col: pa.ChunkedArray, clean: Callable[[str], str]) -> pa.ChunkedArray:
    """`clean` applied to each distinct string of a column; the column itself when none changed."""
    import pyarrow as pa

    if len(col) <= SMALL_COLUMN:  # lifecycle rows, events, samples: without pyarrow.compute
        values = col.to_pylist()
        seen: dict[str, str] = {}
        fresh = [None if v is None else seen.setdefault(v, clean(v)) for v in values]
        return col if fresh == values else pa.chunked_array([pa.array(fresh, col.type)], col.type)
    import pyarrow.compute as pc

    chunks = []
    changed = False
    for chunk in col.chunks:
        encoded = pc.dictionary_encode(chunk)
        words = encoded.dictionary.to_pylist()
        fresh = [None if w is None else clean(w) for w in words]
        if fresh == words:
            chunks.append(chunk)
            continue
        changed = True
        rebuilt = pa.DictionaryArray.from_arrays(encoded.indices, pa.array(fresh, chunk.type))
        chunks.append(rebuilt.cast(col.type))
    return pa.chunked_array(chunks, col.type) if changed else col


def _lists(col: pa.ChunkedArray, mode: str) -> pa.ChunkedArray:
    """A list<string> column row by row (argument lists: a few rows, each a command line)."""
    import pyarrow as pa

    rows = col.to_pylist()
    fresh = [_redact_value(mode, r) for r in rows]
    return col if fresh == rows else pa.chunked_array([pa.array(fresh, col.type)], col.type)
