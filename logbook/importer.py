"""Backfill history from a file: attempts, events, notes and metrics with their own times (#4).

A run kept by hand, or exported from another tracker, goes on record like a recorded one. The
file is JSON lines or CSV (the format: schemas/import.md). Every row is checked before anything
is written, and only what the store does not hold yet is added: attempt ids come from run and
label, event ids from the event's content, and a metric point is its (time, step, name, value);
so importing a file again, or after rows were appended to it, never duplicates a row.

>>> import_file(Store.open(Path(".logbook"), create=True), Path("examples/opt-history.jsonl"))
[Imported(run='opt-175b', attempts=7, attempts_updated=0, events=13, notes=5, metrics=20, ...)]
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import gc
import json
import math
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import compress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook import schema as schemas
from logbook.errors import LogbookError
from logbook.events import SEVERITIES, event_row, parse_fields
from logbook.store import Store, conform, layout, parts

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

FORMATS = ("jsonl", "csv")
TYPES = ("attempt", "event", "note", "metric")
STATUSES = ("running", "completed", "interrupted", "preempted", "hung", "crashed", "lost")
DECISIONS = ("restart", "stop", "gave_up")
MAX_ERRORS = 20  # bad rows listed before reading stops
_BATCH = 100_000  # metric rows parsed before they move into DuckDB (bounds Python's memory)
_PART_ROWS = 1_000_000  # rows per metrics part written
# Fixed, so the same run and label (or the same event) get the same id in every import.
_NAMESPACE = uuid.UUID("6f1c2d0e-55a4-4c55-9d0b-7a1e3f0c9b21")
_UTC = timezone.utc
_MIN_INT, _MAX_INT = -(2**63), 2**63 - 1  # steps land in int64 columns
_fromisoformat = datetime.fromisoformat

# Attempt fields that are not columns, or that name a column by a shorter word.
_ATTEMPT_ALIASES = {
    "start": "start_time",
    "time": "start_time",
    "end": "end_time",
    "outcome": "status",
    "reason": "summary",
    "class": "crash_class",
    "parent": "parent_label",
    "resumed_from": "resumed_from_step",
}
# Columns an import fills itself (duration from start and end, the name from the signal).
_ATTEMPT_DERIVED = {
    "run",
    "attempt_id",
    "parent_id",
    "duration_s",
    "recorded_at",
    "wrapper_pid",
    "logbook_version",
    "signal_name",
}
_EVENT_FIELDS = {"type", "run", "time", "kind", "message", "step", "severity", "attempt", "data"}
_NOTE_FIELDS = {"text", "tags"} | _EVENT_FIELDS - {"kind"}
_METRIC_FIELDS = {"type", "run", "time", "step", "name", "value", "metrics", "attempt"}


@dataclass
class Imported:
    """What an import wrote for one run (or, dry, would write)."""

    run: str
    attempts: int = 0  # new attempts
    attempts_updated: int = 0  # attempts already on record whose state the file changes
    events: int = 0  # new events, notes not counted
    notes: int = 0  # new notes
    metrics: int = 0  # new metric points
    skipped: int = 0  # attempts, events, notes and metrics of the file already on record
    new_run: bool = False

    def describe(self, *, dry_run: bool = False) -> str:
        """One line for people: 'imported into opt: 3 attempts, 2 events, 1 note, 9 metrics'."""

        def n(count: int, word: str) -> str:
            return f"{count:,} {word}{'' if count == 1 else 's'}"

        attempts = n(self.attempts, "new attempt" if self.attempts_updated else "attempt")
        if self.attempts_updated:
            attempts += f", {self.attempts_updated:,} updated"
        what = ", ".join(
            [attempts, n(self.events, "event"), n(self.notes, "note"), n(self.metrics, "metric")]
        )
        verb = "would import into" if dry_run else "imported into"
        new = " (a new run)" if self.new_run else ""
        tail = f"; {self.skipped:,} already on record" if self.skipped else ""
        return f"{verb} {self.run}{new}: {what}{tail}"


def import_file(
    store: Store,
    path: Path,
    *,
    run: str | None = None,
    fmt: str | None = None,
    dry_run: bool = False,
) -> list[Imported]:
    """Import the history in `path` into `store`: check all of it, then add what is new.

    Args:
        store: the store to add to; a folder that does not exist yet is made when there is
            something to write.
        path: a JSON lines or CSV file in the format of schemas/import.md.
        run: the run of rows that name none.
        fmt: jsonl or csv; None guesses from the file's name, else from its first line.
        dry_run: check the file and count what would be added, writing nothing.

    Returns:
        One Imported per run in the file, in the order of their first row.

    Raises:
        LogbookError: the file cannot be read, or has bad rows (each named by line and why);
            nothing is written then.
    """
    import tempfile

    import duckdb

    if run is not None:
        layout.check_run_name(run)
    fmt = _format_of(path, fmt)
    with tempfile.TemporaryDirectory(prefix="logbook-import-") as spill:
        con = duckdb.connect(":memory:")
        try:
            con.execute("set TimeZone = 'UTC'")
            # A file larger than memory spills here, not into a .tmp/ in the working directory.
            con.execute(f"set temp_directory = '{spill.replace(chr(39), chr(39) * 2)}'")
            return _import(store, path, run, fmt, dry_run, con)
        finally:
            con.close()


def _import(
    store: Store,
    path: Path,
    run: str | None,
    fmt: str,
    dry_run: bool,
    con: duckdb.DuckDBPyConnection,
) -> list[Imported]:
    rows = _read_jsonl(path) if fmt == "jsonl" else _read_csv(path)
    found = _Collector(run, con, csv_strings=fmt == "csv")
    # The rows are plain dicts and tuples, never cycles: the cyclic collector would only rescan
    # the batch held for DuckDB again and again (a tenth of the time of a big file).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for line, row in rows:
            found.add(line, row)
            if len(found.errors) >= MAX_ERRORS:
                break
        found.flush()
    finally:
        if collecting:
            gc.enable()
    if found.errors:
        raise _bad_rows(path, found.errors)
    if not found.runs:
        raise LogbookError(f"{path} has no rows to import", hint="see schemas/import.md")
    plan = _Plan(store, found, con)  # checks rows against the store and each other
    if found.errors:
        raise _bad_rows(path, found.errors)
    if not dry_run:
        plan.write()
    return list(plan.results.values())


def _format_of(path: Path, fmt: str | None) -> str:
    if not path.is_file():
        raise LogbookError(f"no file {path}" + (" (it is a folder)" if path.is_dir() else ""))
    if fmt is not None:
        if fmt not in FORMATS:
            raise LogbookError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if head[:1] in (b"{", b"#") else "csv"


def _bad_rows(path: Path, errors: list[tuple[int, str]]) -> LogbookError:
    errors = sorted(errors)[:MAX_ERRORS]
    listing = "\n".join(f"  line {line}: {why}" for line, why in errors)
    if len(errors) == 1:
        rows, them = "a bad row", "it"
    else:
        rows, them = f"{len(errors)} bad rows", "them"
    if len(errors) == MAX_ERRORS:
        rows += " (at least: reading stopped there)"
    return LogbookError(
        f"{path} has {rows}; nothing was imported:\n{listing}",
        hint=f"fix {them} and import again (the format: schemas/import.md)",
    )


# reading --------------------------------------------------------------------------------------


class _Bad(Exception):
    """What is wrong with one row; the collector adds the line."""


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | _Bad]]:
    """(line, object) per line; blank lines and lines starting with # are skipped."""
    decode = json.JSONDecoder().raw_decode  # json.loads(bytes) costs twice as much per line
    with open(path, "rb") as f:
        for line, raw in enumerate(f, 1):
            try:
                text = raw.decode().strip().lstrip("\ufeff")
            except UnicodeDecodeError as e:
                yield line, _Bad(f"not UTF-8: {e}")
                continue
            if not text or text[0] == "#":
                continue
            if text[0] != "{":
                yield line, _Bad("not a JSON object (one {...} per line)")
                continue
            try:
                obj, end = decode(text)
            except json.JSONDecodeError as e:
                yield line, _Bad(f"not JSON: {e.msg} at column {e.colno}")
                continue
            if end != len(text):
                yield line, _Bad(f"not JSON: more after the object at column {end + 1}")
                continue
            yield line, obj


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any] | _Bad]]:
    """(line, {column: cell}) per record, empty cells left out; the header is the first record."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, skipinitialspace=True)
        last = 0
        try:
            header: list[str] | None = None
            for cells in reader:
                line, last = last + 1, reader.line_num
                if header is None:
                    if not any(cells):
                        continue
                    header = [c.strip() for c in cells]
                    problem = _header_problem(header)
                    if problem:
                        yield line, _Bad(problem)
                        return
                    width = len(header)
                    continue
                if len(cells) > width:
                    yield line, _Bad(f"{len(cells)} cells, but the header names {width}")
                    continue
                row = dict(compress(zip(header, cells, strict=False), cells))  # non-empty ones
                if row:
                    yield line, row
        except (csv.Error, UnicodeDecodeError) as e:
            yield last + 1, _Bad(f"not CSV: {e}")


def _header_problem(header: list[str]) -> str | None:
    if "" in header:
        return f"column {header.index('') + 1} of the header has no name"
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        return f"the header names {', '.join(dups)} twice"
    if "type" not in header:
        return "the header has no type column (attempt, event, note or metric on each row)"
    return None


# checking one row -----------------------------------------------------------------------------


def _time(value: Any, field: str = "time") -> datetime:
    """ISO 8601 (no offset = UTC) or Unix seconds, as an aware UTC datetime."""
    if value is None:
        raise _Bad(f"no {field}")
    try:
        if isinstance(value, str):
            try:
                t = datetime.fromisoformat(value)
            except ValueError:
                return datetime.fromtimestamp(float(value), _UTC)
            return t.replace(tzinfo=_UTC) if t.tzinfo is None else t.astimezone(_UTC)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, _UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise _Bad(f"{field} {value!r} is not a time (write e.g. 2021-11-22T14:05:00Z)")


def _int(value: Any, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                f = math.nan
            if not f.is_integer():
                raise _Bad(f"{field} {value!r} is not a whole number") from None
            number = int(f)
    else:
        raise _Bad(f"{field} {value!r} is not a whole number")
    if not _MIN_INT <= number <= _MAX_INT:
        raise _Bad(f"{field} {value!r} is out of range")
    return number


def _float(value: Any, field: str) -> float | None:
    """A number; nan, inf and -inf (as JSON's NaN/Infinity or as text) are kept; null stays null."""
    if value is None:
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise _Bad(f"{field} {value!r} is not a number")


def _text(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _Bad(f"{field} {value!r} is not text")


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _Bad(f"{field} {value!r} is not true or false")


def _label(value: Any, field: str = "label") -> str:
    from logbook.supervisor import lineage

    if isinstance(value, float):  # 1.10 would come back as "1.1"
        raise _Bad(f'{field} {value!r} is a number: write it as text, e.g. "1.10"')
    text = _text(value, field).strip()
    try:
        lineage.place((), text)  # checks the characters, as `logbook run --label` does
    except LogbookError as e:
        raise _Bad(str(e)) from None
    return text


def _object(value: Any, field: str) -> dict[str, Any]:
    if isinstance(value, str):  # a CSV cell holding JSON
        try:
            value = json.loads(value)
        except ValueError:
            raise _Bad(f"{field} is not a JSON object") from None
    if not isinstance(value, dict):
        raise _Bad(f"{field} is not a JSON object")
    return value


def _command(value: Any) -> list[str]:
    import shlex

    if isinstance(value, list) and all(isinstance(a, str) for a in value):
        return value
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise _Bad(f"command {value!r}: {e}") from None
    raise _Bad("command is not text or a list of text")


def _redact(value: Any) -> Any:
    """Secrets out of free text and out of values with secret-looking names, at any depth."""
    from logbook.redact import REDACTED, is_secret_name, redact_text

    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, dict):
        # An hparam_change names its setting in `key` (not a secret by that name); the change of
        # a secret setting (key=api_key) hides old and new, as the config snapshot hides its value.
        secret_key = isinstance(value.get("key"), str) and is_secret_name(value["key"])
        hidden = {k for k in value if is_secret_name(k) and k != "key"}
        hidden |= {"old", "new"} if secret_key else set()
        return {
            k: REDACTED if k in hidden and v is not None else _redact(v) for k, v in value.items()
        }
    return value


def _attempt_converters() -> dict[str, Callable[[Any], Any]]:
    """Field of an attempt row -> its converter: every attempts column but the derived ones."""
    by_type: dict[str, Callable[[Any, str], Any]] = {
        "timestamp": _time,
        "int64": _int,
        "int32": _int,
        "float64": _float,
        "bool": _bool,
        "string": _text,
    }

    def named(convert: Callable[[Any, str], Any], name: str) -> Callable[[Any], Any]:
        return lambda value: convert(value, name)

    out = {
        c.name: named(by_type[c.type], c.name)
        for c in schemas.load("attempts").columns
        if c.name not in _ATTEMPT_DERIVED and c.type in by_type
    }
    out["label"] = _label
    out["parent_label"] = lambda v: _label(v, "parent")
    out["command"] = _command
    out["evidence"] = lambda v: v if isinstance(v, str) else json.dumps(v, default=str)
    return out


class _Collector:
    """Checks rows one by one and keeps what the plan needs: attempts and events as rows, metrics
    in DuckDB (batched, so a million points hold little Python memory)."""

    def __init__(
        self, run: str | None, con: duckdb.DuckDBPyConnection, *, csv_strings: bool
    ) -> None:
        from logbook.parsers import canonical_name

        self.default_run = run
        self.con = con
        self.csv_strings = csv_strings  # CSV cells are text: event extras are read as JSON
        self.errors: list[tuple[int, str]] = []
        self.runs: dict[str, int] = {}  # run -> first line
        self.attempts: dict[tuple[str, str], dict[str, Any]] = {}  # merged fields per label
        self.attempt_lines: dict[tuple[str, str], list[int]] = {}
        self.last_label: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []
        self.refs: dict[tuple[str, str], int] = {}  # attempt labels named by rows -> first line
        self.metric_count = 0
        self._canonical = canonical_name
        self._names: dict[str, str] = {}
        self._converters = _attempt_converters()
        self._points: list[tuple[Any, ...]] = []  # metric rows not yet moved into DuckDB
        con.execute(
            "create table m_new (run varchar, time timestamptz, step bigint, name varchar, "
            "value double, label varchar, line bigint)"
        )

    def add(self, line: int, row: dict[str, Any] | _Bad) -> None:
        try:
            if isinstance(row, _Bad):
                raise row
            kind = row.get("type")
            if kind == "metric":
                self._metric(line, row)
            elif kind in TYPES:
                getattr(self, f"_{kind}")(line, self._run(line, row), row)
            else:
                raise _Bad(f"type {kind!r} is not one of {', '.join(TYPES)}" if kind else "no type")
        except _Bad as e:
            self.errors.append((line, str(e)))

    def _run(self, line: int, row: dict[str, Any]) -> str:
        run = row.get("run") or self.default_run
        if run is None:
            raise _Bad("no run (give a run field, or --run)")
        if not isinstance(run, str):
            raise _Bad(f"run {run!r} is not text")
        if run not in self.runs:
            try:
                layout.check_run_name(run)
            except LogbookError as e:
                raise _Bad(str(e)) from None
            self.runs[run] = line
        return run

    def _attempt_ref(self, line: int, run: str, row: Mapping[str, Any]) -> str | None:
        value = row.get("attempt")
        if value is None:
            return None
        label = _label(value, "attempt")
        self.refs.setdefault((run, label), line)
        return label

    def _attempt(self, line: int, run: str, row: dict[str, Any]) -> None:
        fields: dict[str, Any] = {}
        for key, value in row.items():
            if key in ("type", "run", "label") or value is None:
                continue
            if key == "signal":
                fields.update(_signal(value))
                continue
            column = _ATTEMPT_ALIASES.get(key, key)
            convert = self._converters.get(column)
            if convert is None:
                raise _Bad(f"attempt rows have no field {key!r} (see schemas/import.md)")
            fields[column] = convert(value)
        status = fields.get("status")
        if status is not None and status not in STATUSES:
            raise _Bad(f"status {status!r} is not one of {', '.join(STATUSES)}")
        crash_class = fields.get("crash_class")
        if crash_class is not None:
            from logbook.forensics.rules import CLASSES

            if crash_class not in CLASSES:
                raise _Bad(f"class {crash_class!r} is not one of {', '.join(CLASSES)}")
        decision = fields.get("decision")
        if decision is not None and decision not in DECISIONS:
            raise _Bad(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
        if row.get("label") is not None:
            label = _label(row["label"])
        else:  # the next in the file's own lineage, so it is the same label in every import
            from logbook.supervisor.lineage import next_label

            previous = self.last_label.get(run)
            label = "1.00" if previous is None else next_label(previous)
            while (run, label) in self.attempts:
                label = next_label(label)
        self.last_label[run] = label
        self.attempts.setdefault((run, label), {}).update(fields)
        self.attempt_lines.setdefault((run, label), []).append(line)

    def _event(self, line: int, run: str, row: dict[str, Any]) -> None:
        kind = _text(row.get("kind") or "", "kind")
        if not kind or not kind.replace("_", "").replace("-", "").isalnum():
            raise _Bad(
                f"kind {kind!r} is not allowed (letters, digits, _ and -)" if kind else "no kind"
            )
        data = self._data(row, _EVENT_FIELDS)
        self._keep(line, run, row, kind, row.get("message"), data)

    def _note(self, line: int, run: str, row: dict[str, Any]) -> None:
        text = row.get("text", row.get("message"))
        if text is None or not _text(text, "text").strip():
            raise _Bad("no text")
        data = self._data(row, _NOTE_FIELDS)
        tags = row.get("tags")
        if tags is not None:
            if isinstance(tags, str):
                tags = [t.strip() for t in tags.split(",") if t.strip()]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise _Bad("tags is not a list of text (or text with commas)")
            data["tags"] = tags
        self._keep(line, run, row, "note", text, data)

    def _data(self, row: dict[str, Any], known: set[str]) -> dict[str, Any]:
        data = _object(row["data"], "data") if row.get("data") is not None else {}
        extras = {k: v for k, v in row.items() if k not in known and v is not None}
        if self.csv_strings and extras:
            extras = parse_fields([f"{k}={v}" for k, v in extras.items()])
        return {**data, **extras}

    def _keep(
        self,
        line: int,
        run: str,
        row: dict[str, Any],
        kind: str,
        message: Any,
        data: dict[str, Any],
    ) -> None:
        severity = row.get("severity") or "info"
        if severity not in SEVERITIES:
            raise _Bad(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        step = row.get("step")
        self.events.append(
            {
                "line": line,
                "run": run,
                "label": self._attempt_ref(line, run, row),
                "time": _time(row.get("time")),
                "step": None if step is None else _int(step, "step"),
                "kind": kind,
                "severity": severity,
                "message": None if message is None else _redact(_text(message, "message")),
                "data": _redact(data) if data else None,
            }
        )

    def _metric(self, line: int, row: dict[str, Any]) -> None:
        # The hot path (a million rows should take seconds): the common case checked inline.
        run = row.get("run") or self.default_run
        if type(run) is not str or run not in self.runs:
            run = self._run(line, row)
        if not row.keys() <= _METRIC_FIELDS:
            extra = sorted(row.keys() - _METRIC_FIELDS)
            raise _Bad(
                f"metric rows have no field {extra[0]!r} (several values go in a metrics object)"
            )
        text = row.get("time")
        try:  # Arrow takes an offset or none (UTC) as it is
            t = _fromisoformat(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            t = _time(text)
        step = row.get("step")
        if step is not None and (type(step) is not int or not _MIN_INT <= step <= _MAX_INT):
            step = _int(step, "step")
        label = self._attempt_ref(line, run, row) if "attempt" in row else None
        keep = self._points.append
        if "metrics" in row:
            if "name" in row or "value" in row:
                raise _Bad("give name and value, or a metrics object, not both")
            values = _object(row["metrics"], "metrics")
            if not values:
                raise _Bad("metrics is empty")
            for key, value in values.items():
                keep((run, t, step, self._name(key), _float(value, key), label, line))
        else:
            raw = row.get("name")
            name = self._names.get(raw) if type(raw) is str else None
            if name is None:
                name = self._name(raw)
            if "value" not in row:
                raise _Bad("no value")
            value = row["value"]
            if type(value) is not float:
                value = _float(value, "value")
            keep((run, t, step, name, value, label, line))
        if len(self._points) >= _BATCH:
            self.flush()

    def _name(self, raw: Any) -> str:
        if raw is None:
            raise _Bad("no name (or a metrics object)")
        name = self._names.get(raw) if isinstance(raw, str) else None
        if name is None:
            name = self._canonical(_text(raw, "name"))
            if not name:
                raise _Bad(f"metric name {raw!r} has no letters or digits")
            self._names[raw] = name
        return name

    def flush(self) -> None:
        """Move the parsed metric rows into DuckDB."""
        import pyarrow as pa

        if not self._points:
            return
        columns = list(zip(*self._points, strict=True))
        types = [pa.string(), pa.timestamp("us", tz="UTC"), pa.int64(), pa.string()]
        types += [pa.float64(), pa.string(), pa.int64()]
        names = ("run", "time", "step", "name", "value", "label", "line")
        batch = pa.table(
            [pa.array(c, t) for c, t in zip(columns, types, strict=True)], names=list(names)
        )
        self.con.register("_batch", batch)
        self.con.execute("insert into m_new select * from _batch")
        self.con.unregister("_batch")
        self.metric_count += len(self._points)
        self._points = []


def _signal(value: Any) -> dict[str, Any]:
    import signal as signals

    from logbook.exitcodes import signal_name

    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        name = value.strip().upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        try:
            return {"signal": int(signals.Signals[name]), "signal_name": name}
        except KeyError:
            raise _Bad(f"signal {value!r} is not a signal name (e.g. SIGKILL)") from None
    number = _int(value, "signal")
    return {"signal": number, "signal_name": signal_name(number)}


# planning and writing -------------------------------------------------------------------------


def _uuid(*parts: Any) -> str:
    return uuid.uuid5(_NAMESPACE, json.dumps(parts, default=str, sort_keys=True)).hex


class _Plan:
    """What to add for each run: the file's rows attached to their attempts, less what the store
    holds. Problems found on the way (unknown labels, clashes) go to the collector's errors."""

    def __init__(self, store: Store, found: _Collector, con: duckdb.DuckDBPyConnection) -> None:
        from logbook import __version__

        self.store = store
        self.found = found
        self.con = con
        self.version = __version__
        self.results = {run: Imported(run) for run in found.runs}
        self.attempt_rows: dict[str, list[dict[str, Any]]] = {r: [] for r in found.runs}
        self.event_rows: dict[str, list[dict[str, Any]]] = {r: [] for r in found.runs}
        self.run_rows: dict[str, dict[str, Any]] = {}
        self.stored = {run: _current_attempts(store, run) for run in found.runs}
        # run -> every attempt of it, the file's and the store's, by start time
        self.lineup = self._attempts()
        self._check_refs()
        if found.errors:
            return
        self._attach_metrics()
        if found.errors:
            return
        self._attach_events()
        self._steps()
        for run in found.runs:
            self._events(run, self._finish_attempts(run))
        self._new_metrics()

    def _error(self, line: int, why: str) -> None:
        self.found.errors.append((line, why))

    def _attempts(self) -> dict[str, list[dict[str, Any]]]:
        found = self.found
        lineup: dict[str, list[dict[str, Any]]] = {}
        for run in found.runs:
            mine = {label: a for (r, label), a in found.attempts.items() if r == run}
            merged = [dict(a) for a in self.stored[run] if a["label"] not in mine]
            for label, fields in mine.items():
                lines = found.attempt_lines[(run, label)]
                attempt_id = _uuid("attempt", run, label)
                other = next((a for a in self.stored[run] if a["label"] == label), None)
                if other is not None and other["attempt_id"] != attempt_id:
                    self._error(
                        lines[0],
                        f"run {run} already has an attempt {label} that logbook recorded; "
                        "give this one another label",
                    )
                    continue
                problem = _attempt_problem(label, fields)
                if problem:
                    self._error(lines[-1], problem)
                    continue
                merged.append({**fields, "label": label, "attempt_id": attempt_id, "_file": True})
            merged.sort(key=lambda a: (a["start_time"], a["label"]))
            if not merged:
                self._error(
                    found.runs[run],
                    f"run {run} has no attempts, in the file or the store: add an attempt row "
                    "for its events and metrics to belong to",
                )
            lineup[run] = merged
        return lineup

    def _check_refs(self) -> None:
        known = {(run, a["label"]) for run, attempts in self.lineup.items() for a in attempts}
        for (run, label), line in self.found.refs.items():
            if (run, label) not in known:
                self._error(line, _unknown_label(run, label, self.lineup[run]))
        for (run, label), fields in self.found.attempts.items():
            parent = fields.get("parent_label")
            if parent is not None and (run, parent) not in known:
                line = self.found.attempt_lines[(run, label)][0]
                self._error(line, "parent " + _unknown_label(run, parent, self.lineup[run]))

    def _attach_metrics(self) -> None:
        """Each point to its attempt: its own label, else the one running at its time."""
        import pyarrow as pa

        if not self.found.metric_count:
            return
        ts = pa.timestamp("us", tz="UTC")
        lineup = [a | {"run": run} for run, attempts in self.lineup.items() for a in attempts]
        self.con.register(
            "att",
            pa.table(
                {
                    "run": pa.array([a["run"] for a in lineup], pa.string()),
                    "label": pa.array([a["label"] for a in lineup], pa.string()),
                    "attempt_id": pa.array([a["attempt_id"] for a in lineup], pa.string()),
                    "start_time": pa.array([a["start_time"] for a in lineup], ts),
                    "end_time": pa.array([a.get("end_time") for a in lineup], ts),
                }
            ),
        )
        self.con.execute(
            """
            create table m as
            select m.run, m.time, m.step, m.name, m.value, m.line,
                   case when m.label is not null then x.attempt_id
                        when a.end_time is null or a.end_time >= m.time then a.attempt_id
                   end as attempt_id
            from m_new m
            left join att x on x.run = m.run and x.label = m.label
            asof left join att a on a.run = m.run and m.time >= a.start_time
            """
        )
        self.con.execute("drop table m_new")
        for r in self._rows(
            "select line, run, time from m where attempt_id is null order by line limit ?",
            [MAX_ERRORS],
        ):
            self._error(r["line"], _no_attempt_then(r["run"], r["time"]))

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        # Through Arrow: DuckDB's own Python timestamps with a zone need pytz.
        result = self.con.sql(sql, params=params)
        assert result is not None
        return result.to_arrow_table().to_pylist()  # type: ignore[no-any-return]

    def _steps(self) -> None:
        """First and last step of the file's attempts, from their metrics and events within their
        time, where the file does not say: `logbook show` and the incidents' lost steps read them."""
        spans: dict[str, list[tuple[int, datetime]]] = {}
        mine = {a["attempt_id"]: a for ats in self.lineup.values() for a in ats if a.get("_file")}
        for e in self.found.events:
            a = mine.get(e["attempt_id"])
            if a is not None and e["step"] is not None and _within(a, e["time"]):
                spans.setdefault(a["attempt_id"], []).append((e["step"], e["time"]))
        if self.found.metric_count:
            for r in self._rows(
                "select m.attempt_id, min(step) as lo, max(step) as hi, "
                "arg_min(time, step) as lo_t, arg_max(time, step) as hi_t from m "
                "join att a using (attempt_id) where step is not null and time >= a.start_time "
                "and (a.end_time is null or time <= a.end_time) group by m.attempt_id"
            ):
                spans.setdefault(r["attempt_id"], []).extend(
                    [(r["lo"], r["lo_t"]), (r["hi"], r["hi_t"])]
                )
        for attempt_id, span in spans.items():
            a = mine.get(attempt_id)
            if a is None:  # an attempt of the store's: its steps are on record already
                continue
            (lo, lo_t), (hi, hi_t) = min(span), max(span)
            found = {
                "first_step": lo,
                "first_step_time": lo_t,
                "last_step": hi,
                "last_step_time": hi_t,
            }
            for key, value in found.items():
                if a.get(key) is None:
                    a[key] = value

    def _attach_events(self) -> None:
        """Each event to its attempt: its own label, else the one running at its time, else none."""
        by_label = {
            (run, a["label"]): a["attempt_id"] for run, ats in self.lineup.items() for a in ats
        }
        starts = {run: [a["start_time"] for a in ats] for run, ats in self.lineup.items()}
        for e in self.found.events:
            run = e["run"]
            if e["label"] is not None:
                e["attempt_id"] = by_label[(run, e["label"])]
                continue
            i = bisect.bisect_right(starts[run], e["time"]) - 1
            a = self.lineup[run][i] if i >= 0 else None
            end = a.get("end_time") if a else None
            e["attempt_id"] = a["attempt_id"] if a and (end is None or end >= e["time"]) else None

    def _finish_attempts(self, run: str) -> list[dict[str, Any]]:
        """The rows of the file's attempts (each with its parent); those new or changed are kept
        for writing. Returns all of them."""
        result = self.results[run]
        stored = {a["attempt_id"]: a for a in self.stored[run]}
        by_label = {a["label"]: a for a in self.lineup[run]}
        previous: dict[str, Any] | None = None
        rows = []
        for a in self.lineup[run]:
            if a.pop("_file", False):
                parent = by_label[a["parent_label"]] if "parent_label" in a else previous
                row = _attempt_row(run, a, parent)
                rows.append(row)
                old = stored.get(a["attempt_id"])
                if old is not None and _same_attempt(old, row):
                    result.skipped += len(self.found.attempt_lines[(run, a["label"])])
                else:
                    self.attempt_rows[run].append({**row, "logbook_version": self.version})
                    result.attempts += old is None
                    result.attempts_updated += old is not None
            previous = a
        if not self.stored[run]:
            result.new_run = True
        if not _has_run_row(self.store, run):
            first = self.lineup[run][0]
            self.run_rows[run] = {
                "run": run,
                "created_at": first["start_time"],
                "host": first.get("host"),
                "user": first.get("user"),
                "description": None,
            }
        return rows

    def _events(self, run: str, attempts: list[dict[str, Any]]) -> None:
        result = self.results[run]
        mine = [e for e in self.found.events if e["run"] == run]
        rows: dict[str, dict[str, Any]] = {}
        for e in mine:
            row = event_row(
                run,
                e["attempt_id"],
                e["kind"],
                e["message"],
                source="import",
                at=e["time"],
                step=e["step"],
                severity=e["severity"],
                data=e["data"],
            )
            # The event's content is its identity: the same row in a later import is skipped.
            row["event_id"] = _uuid(
                "event", run, e["label"], row["time"].isoformat(), row["step"], row["kind"],
                row["severity"], row["message"], row["data"],
            )  # fmt: skip
            rows.setdefault(row["event_id"], row)
        result.skipped += len(mine) - len(rows)  # a row repeated in the file is one event
        # An attempt that did not complete gets the event the supervisor would have written
        # (crash, hang_stopped, ...), unless the file has one of that kind for it already.
        kinds = {(e["attempt_id"], e["kind"]) for e in mine}
        made = {}
        for a in attempts:
            end = _end_event(run, a)
            if end is not None and (a["attempt_id"], end["kind"]) not in kinds:
                made[end["event_id"]] = end
        on_record = _event_ids(self.store, run)
        for event_id, row in (rows | made).items():
            if event_id in on_record:
                result.skipped += event_id in rows
                continue
            self.event_rows[run].append(row)
            if row["kind"] == "note":
                result.notes += 1
            else:
                result.events += 1

    def _new_metrics(self) -> None:
        """The points not yet on record, as table m_add; a point is its (time, step, name, value)."""
        if not self.found.metric_count:
            return
        files = [p for run in self.found.runs for p in self.store.part_files("metrics", run)]
        old = (
            "select null::varchar as run, null::timestamptz as time, null::bigint as step, "
            "null::varchar as name, null::double as value where false"
        )
        if files:
            listing = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
            old = (
                f"select run, time, step, name, value from read_parquet([{listing}], "
                "hive_partitioning = true, union_by_name = true, hive_types = {'run': 'VARCHAR'}) "
                "where source = 'import'"
            )
        self.con.execute(
            f"create table m_add as select distinct run, attempt_id, time, step, name, value "
            f"from m where not exists (select 1 from ({old}) o where o.run = m.run "
            "and o.time = m.time and o.name = m.name and o.step is not distinct from m.step "
            "and o.value is not distinct from m.value)"
        )
        rows = {r["run"]: r["n"] for r in self._rows("select run, count(*) n from m group by run")}
        new = {
            r["run"]: r["n"] for r in self._rows("select run, count(*) n from m_add group by run")
        }
        self.con.execute("drop table m")
        for run, result in self.results.items():
            result.metrics = new.get(run, 0)
            result.skipped += rows.get(run, 0) - result.metrics

    def write(self) -> None:
        """Stage every part under a hidden name, then rename them all into place: metrics, events,
        attempts, runs. A failure in between leaves parts that a second import does not repeat.

        Raises:
            LogbookError: the store cannot be written (nothing is, or, failing between renames,
                part of it is: the message says to import again).
        """
        staged: list[tuple[Path, Path]] = []
        renamed = 0
        Store.open(self.store.root, create=True)  # the folder and its marker, if still missing
        try:
            if self.found.metric_count:
                for run in self.found.runs:
                    for data in self._metric_parts(run):
                        staged.append(self._stage("metrics", run, data))
            for table, rows_by_run in (
                ("events", self.event_rows),
                ("attempts", self.attempt_rows),
                ("runs", {r: [row] for r, row in self.run_rows.items()}),
            ):
                for run, rows in rows_by_run.items():
                    if rows:
                        staged.append(self._stage(table, run, parts.to_arrow(table, rows)))
            for tmp, final in staged:
                os.replace(tmp, final)
                renamed += 1
                parts._fsync_dir(final.parent)
        except OSError as e:
            done = "nothing was imported" if not renamed else "the import is incomplete"
            raise LogbookError(
                f"cannot write to {self.store.root}: {e}; {done}",
                hint="fix that and import again: what is on record already is not repeated",
            ) from e
        finally:
            for tmp, _ in staged[renamed:]:
                tmp.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # a run folder made for it, empty again
                    tmp.parent.rmdir()

    def _metric_parts(self, run: str) -> Iterator[pa.Table]:
        import pyarrow as pa

        target = schemas.load("metrics").arrow()
        result = self.con.sql(
            "select attempt_id, time, step, name, value, 'import' as source from m_add "
            "where run = ? order by time, step, name",
            params=[run],
        )
        assert result is not None
        batches: list[pa.RecordBatch] = []
        # DuckDB hands out batches of its own size: gather a part's worth of them.
        for batch in result.to_arrow_reader(_PART_ROWS):
            batches.append(batch)
            if sum(b.num_rows for b in batches) >= _PART_ROWS:
                yield conform(pa.Table.from_batches(batches), target)
                batches = []
        if any(b.num_rows for b in batches):
            yield conform(pa.Table.from_batches(batches, schema=batches[0].schema), target)

    def _stage(self, table: str, run: str, data: pa.Table) -> tuple[Path, Path]:
        directory = layout.run_dir(self.store.root, table, run)
        # A hidden .tmp name: readers skip it, and `logbook doctor` clears one left by a crash.
        tmp = parts.write_part(directory, data, name=f".import-{uuid.uuid4().hex}.tmp")
        return tmp, directory / layout.new_part_name("import")


def _current_attempts(store: Store, run: str) -> list[dict[str, Any]]:
    """The newest row of each attempt of `run` in the store."""
    rows = store.read("attempts", run=run).to_pylist()
    newest: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["recorded_at"]):
        newest[r["attempt_id"]] = r
    return list(newest.values())


def _has_run_row(store: Store, run: str) -> bool:
    return store.read("runs", run=run).num_rows > 0


def _event_ids(store: Store, run: str) -> set[str]:
    return set(store.read("events", run=run).column("event_id").to_pylist())


def _attempt_problem(label: str, a: Mapping[str, Any]) -> str | None:
    start, end, status = a.get("start_time"), a.get("end_time"), a.get("status")
    if start is None:
        return f"attempt {label} has no start"
    if end is not None and end < start:
        return f"attempt {label} ends before it starts"
    if status is None and end is not None:
        return f"attempt {label} has an end but no status (completed, crashed, hung, ...)"
    if status not in (None, "running") and end is None:
        return f"attempt {label} is {status} but has no end"
    if status == "running" and end is not None:
        return f"attempt {label} is running but has an end"
    return None


def _attempt_row(run: str, a: dict[str, Any], parent: dict[str, Any] | None) -> dict[str, Any]:
    from logbook.redact import redact_command, redact_text

    row = {k: v for k, v in a.items() if not k.startswith("_")}
    start, end = row["start_time"], row.get("end_time")
    row.update(
        run=run,
        status=row.get("status") or "running",
        parent_id=parent["attempt_id"] if parent else None,
        parent_label=parent["label"] if parent else None,
        duration_s=(end - start).total_seconds() if end else None,
        command=redact_command(row.get("command") or []),
        recorded_at=parts.now(),
    )
    for key in ("summary", "decision_reason", "evidence", "cwd"):
        if row.get(key) is not None:
            row[key] = redact_text(row[key])
    return row


def _same_attempt(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    ignore = {"recorded_at", "logbook_version", "run"}
    return all(
        old.get(c.name) == new.get(c.name)
        for c in schemas.load("attempts").columns
        if c.name not in ignore
    )


def _end_event(run: str, a: Mapping[str, Any]) -> dict[str, Any] | None:
    status = a.get("status")
    if status in (None, "running", "completed") or a.get("end_time") is None:
        return None
    kind = {"crashed": "crash", "hung": "hang_stopped"}.get(status, status)
    data = {"class": a.get("crash_class"), "exit_code": a.get("exit_code")}
    row = event_row(
        run,
        a["attempt_id"],
        kind,
        a.get("summary") or status,
        source="import",
        at=a["end_time"],
        step=a.get("last_step"),
        severity="error" if status in ("crashed", "hung") else "warning",
        data={k: v for k, v in data.items() if v is not None},
    )
    row["event_id"] = _uuid("end", run, a["label"], kind)
    return row


def _within(a: Mapping[str, Any], t: datetime) -> bool:
    return bool(a["start_time"] <= t and (a.get("end_time") is None or t <= a["end_time"]))


def _unknown_label(run: str, label: str, attempts: list[dict[str, Any]]) -> str:
    known = ", ".join(a["label"] for a in attempts[:12]) or "none"
    return f"attempt {label} is not in the file or the store (run {run} has: {known})"


def _no_attempt_then(run: str, t: datetime) -> str:
    return (
        f"no attempt of run {run} was running at {t.astimezone(_UTC):%Y-%m-%d %H:%M:%S} UTC: "
        "a metric needs one (give its attempt label, or add an attempt row that covers it)"
    )
