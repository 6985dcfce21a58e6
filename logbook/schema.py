"""Table schemas, built from the JSON files in schemas/ and nowhere else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

_HERE = Path(__file__).resolve().parent
# An installed wheel carries the files as logbook/_schemas; a source checkout has them beside the package.
SCHEMA_DIRS = (_HERE / "_schemas", _HERE.parent / "schemas")


# How the store redacts a column on every write (logbook/store/redaction.py): "text" runs the
# redactor over each string, "json" over each string inside a JSON document (so the document stays
# valid JSON), "command" over an argument list as a command line; "none" leaves it. A column says
# so with "redact" in its schema file; without it, text columns (string and list<string>) are
# "text" and others "none", so a text column added later is redacted without anyone remembering to.
REDACT_MODES = ("text", "json", "command", "none")
_TEXT_TYPES = ("string", "list<string>")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    description: str
    redact: str | None = None  # as the schema file says; `redaction` gives the mode in force

    @property
    def redaction(self) -> str:
        """How the store redacts this column on write: text, json, command or none."""
        if self.redact is not None:
            return self.redact
        return "text" if self.type in _TEXT_TYPES else "none"


@dataclass(frozen=True)
class TableSchema:
    table: str
    version: int
    description: str
    partitioning: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def stored_columns(self) -> tuple[Column, ...]:
        """Columns inside a part file: the partition keys live in the path."""
        return tuple(c for c in self.columns if c.name not in self.partitioning)

    def arrow(self, *, with_partitions: bool = False) -> pa.Schema:
        """The pyarrow schema of a part file (or of the whole table with `with_partitions`)."""
        import pyarrow as pa

        cols = self.columns if with_partitions else self.stored_columns
        return pa.schema(
            [pa.field(c.name, _arrow_type(c.type), nullable=c.nullable) for c in cols],
            metadata={"logbook.table": self.table, "logbook.schema_version": str(self.version)},
        )


def _arrow_type(name: str) -> Any:
    import pyarrow as pa

    simple = {
        "string": pa.string(),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    if name in simple:
        return simple[name]
    if name.startswith("list<") and name.endswith(">"):
        return pa.list_(_arrow_type(name[5:-1]))
    raise ValueError(f"unknown column type {name!r} in schemas/")


def _redact_note(col: Column) -> str:
    """How the reference shows a text column's redaction when it is not the default."""
    if col.type not in _TEXT_TYPES:
        return ""
    notes = {
        "json": " Redacted inside the JSON.",
        "command": " Redacted as a command line.",
        "none": " Not redacted (logbook makes it).",
    }
    return notes.get(col.redaction, "")


def schema_dir() -> Path:
    for d in SCHEMA_DIRS:
        if d.is_dir():
            return d
    raise FileNotFoundError(
        f"no schemas/ folder beside the logbook package (looked in {SCHEMA_DIRS})"
    )


@cache
def load(table: str) -> TableSchema:
    """Read the schema of one table from schemas/<table>.json."""
    doc = json.loads((schema_dir() / f"{table}.json").read_text())
    return TableSchema(
        table=doc["table"],
        version=int(doc["version"]),
        description=doc["description"],
        partitioning=tuple(doc.get("partitioning", ())),
        columns=tuple(_column(table, c) for c in doc["columns"]),
    )


def _column(table: str, doc: dict[str, Any]) -> Column:
    col = Column(**doc)
    mode = col.redaction
    fits = {"text": _TEXT_TYPES, "json": ("string",), "command": ("list<string>",)}
    if mode not in REDACT_MODES or (mode != "none" and col.type not in fits[mode]):
        raise ValueError(
            f"schemas/{table}.json: column {col.name} ({col.type}) cannot have redact {mode!r} "
            f"(text for string or list<string>, json for string, command for list<string>, none)"
        )
    return col


@cache
def tables() -> tuple[str, ...]:
    """Names of every table, from the files in schemas/."""
    return tuple(
        sorted(p.stem for p in schema_dir().glob("*.json") if not p.stem.startswith("hook"))
    )


def reference_markdown() -> str:
    """The table reference in schemas/README.md, generated from the JSON files (tests check it)."""
    out = [
        "# Tables",
        "",
        "Generated from the JSON files here by `python -m logbook.schema > schemas/README.md`;",
        "a test fails when it is out of date. Each file is the single source of truth for one table:",
        "the code builds its pyarrow schemas from them and nowhere else.",
        "",
        "Every text column (string, list<string>) is redacted as it is written, whoever writes it:",
        "secrets become `***`. A column's `redact` in its file says otherwise: `json` (the strings",
        "inside the JSON document are redacted, and it stays valid JSON), `command` (redacted as a",
        "command line), `none` (ids and values logbook itself makes, never user text).",
        "",
    ]
    for name in tables():
        t = load(name)
        out += [
            f"## {t.table} (version {t.version})",
            "",
            t.description,
            "",
            "| column | type | null | description |",
            "|---|---|---|---|",
        ]
        out += [
            f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.description}"
            f"{_redact_note(c)} |"
            for c in t.columns
        ]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(reference_markdown(), end="")
