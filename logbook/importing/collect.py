"""Checking an import file row by row: attempts and events kept as rows, metrics in DuckDB."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from logbook.errors import LogbookError
from logbook.importing.fields import (
    MAX_INT,
    MIN_INT,
    attempt_converters,
    parse_bool,
    parse_duration,
    parse_float,
    parse_int,
    parse_label,
    parse_object,
    parse_step,
    parse_text,
    parse_time,
    parse_when,
    redact_value,
    relative_factor,
)
from logbook.importing.read import Bad
from logbook.record.events import SEVERITIES, parse_fields
from logbook.store import layout

if TYPE_CHECKING:
    import duckdb

TYPES = ("attempt", "event", "note", "metric", "hardware", "interruptions")
# `ended`: a history says when it ended but not how (not a failure, nor a completion).
STATUSES = ("running", "completed", "interrupted", "preempted", "hung", "crashed", "lost", "ended")
DECISIONS = ("restart", "stop", "gave_up")
MAX_ERRORS = 20  # bad rows listed before reading stops
_BATCH = 100_000  # metric rows parsed before they move into DuckDB (bounds Python's memory)
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
    "hours_lost": "lost_h_stated",
    "source": "citation",
}
_ATTEMPT_TIMES = ("start_time", "end_time")  # a day, month or range as well as an instant
_ATTEMPT_STEPS = ("resumed_from_step", "first_step", "last_step", "last_checkpoint_step")
_EVENT_FIELDS = {
    "type", "run", "time", "kind", "message", "step", "severity", "attempt", "data", "scope",
}  # fmt: skip
SCOPES = ("attempt", "run")
_HARDWARE_FIELDS = {"type", "run", "time", "attempt", "hosts", "gpus", "gpus_per_host", "gpu_model"}
_HARDWARE_FIELDS |= {"spare_hosts"}  # buffer hosts held but idle (#16)
_HARDWARE_FIELDS |= {"message", "note", "source"}
_NOTE_FIELDS = {"text", "tags"} | _EVENT_FIELDS - {"kind"}
_METRIC_FIELDS = {"type", "run", "time", "step", "name", "value", "metrics", "attempt"}
_INTERRUPTION_FIELDS = {
    "type", "run", "count", "component", "planned", "handled", "hours_lost", "reason", "source",
    "attempt", "time",
}  # fmt: skip


class Collector:
    """Checks rows one by one and keeps what the plan needs: attempts and events as rows, metrics
    in DuckDB (batched, so a million points hold little Python memory)."""

    def __init__(
        self, run: str | None, con: duckdb.DuckDBPyConnection, *, csv_strings: bool
    ) -> None:
        from logbook.record.parsers import canonical_name

        self.default_run = run
        self.con = con
        self.csv_strings = csv_strings  # CSV cells are text: event extras are read as JSON
        self.errors: list[tuple[int, str]] = []
        self.runs: dict[str, int] = {}  # run -> first line
        self.attempts: dict[tuple[str, str], dict[str, Any]] = {}  # merged fields per label
        self.attempt_lines: dict[tuple[str, str], list[int]] = {}
        self.bad_attempts: set[tuple[str, str]] = set()  # labels of attempt rows with errors
        self.hardware: list[dict[str, Any]] = []  # declared hardware, from a time on
        self.last_label: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []
        self.interruptions: list[dict[str, Any]] = []  # counts without times (#19)
        self.refs: dict[tuple[str, str], int] = {}  # attempt labels named by rows -> first line
        # Facts a source states about an attempt (sacct: kind scheduler and declared), as
        # {line, run, label, kind, name, value}: snapshot rows of the attempt, in the file or not.
        self.stated: list[dict[str, Any]] = []
        # (run, label) -> attempt_id of an attempt `logbook run` recorded whose fields the file
        # completes (sacct: the end of a lost one); its own fields stay under them.
        self.enrich: dict[tuple[str, str], str] = {}
        self.metric_count = 0
        self._canonical = canonical_name
        self._names: dict[str, str] = {}
        self._converters = attempt_converters()
        self._settings: dict[tuple[str, Any], Any] = {}  # (run, key) -> the last change's new value
        self._points: list[tuple[Any, ...]] = []  # metric rows not yet moved into DuckDB
        con.execute(
            "create table m_new (run varchar, time timestamptz, step bigint, name varchar, "
            "value double, label varchar, line bigint)"
        )

    def add(self, line: int, row: dict[str, Any] | Bad) -> None:
        try:
            if isinstance(row, Bad):
                raise row
            kind = row.get("type")
            if kind == "metric":
                self._metric(line, row)
            elif kind in TYPES:
                getattr(self, f"_{kind}")(line, self._run(line, row), row)
            else:
                raise Bad(f"type {kind!r} is not one of {', '.join(TYPES)}" if kind else "no type")
        except Bad as e:
            self.errors.append((line, str(e)))

    def _run(self, line: int, row: dict[str, Any]) -> str:
        run = row.get("run") or self.default_run
        if run is None:
            raise Bad("no run (give a run field, or --run)")
        if not isinstance(run, str):
            raise Bad(f"run {run!r} is not text")
        if run not in self.runs:
            try:
                layout.check_run_name(run)
            except LogbookError as e:
                raise Bad(str(e)) from None
            self.runs[run] = line
        return run

    def note_run(self, run: str, line: int) -> None:
        """A good run named first at `line` by rows checked in bulk (fast.py): `runs` stays in the
        order of first lines, as row by row."""
        if self.runs.get(run, line + 1) > line:
            self.runs[run] = line
            self.runs = dict(sorted(self.runs.items(), key=lambda item: item[1]))

    def _attempt_ref(self, line: int, run: str, row: Mapping[str, Any]) -> str | None:
        value = row.get("attempt")
        if value is None:
            return None
        label = parse_label(value, "attempt")
        self.refs.setdefault((run, label), line)
        return label

    def _attempt(self, line: int, run: str, row: dict[str, Any]) -> None:
        label = self._label(run, row)
        try:
            config = row.get("config")
            if config is not None:  # launch settings: kept as `logbook run` keeps a --config
                row = {k: v for k, v in row.items() if k != "config"}
                self._config(line, run, label, config)
            fields = self._attempt_fields(row)
        except Bad:
            # Known by label all the same: rows naming it are not also reported as naming none.
            self.bad_attempts.add((run, label))
            raise
        self.attempts.setdefault((run, label), {}).update(fields)
        self.attempt_lines.setdefault((run, label), []).append(line)

    def _config(self, line: int, run: str, label: str, config: Any) -> None:
        """An attempt's launch settings (`config`, #16): snapshot rows of kind config, flattened
        and redacted as `logbook run --config` writes them, which cost reads (params,
        tokens_per_step) and `logbook diff` compares."""
        from logbook.record.hparams import flatten
        from logbook.record.redact import redact_value as redact_setting

        settings = flatten(parse_object(config, "config"))
        if not settings:
            raise Bad("config is empty")
        for name, value in settings.items():
            shown, _ = redact_setting(name, json.dumps(value, default=str))
            self.stated.append(
                {"line": line, "run": run, "label": label, "kind": "config", "name": name,
                 "value": shown}
            )  # fmt: skip

    def _label(self, run: str, row: dict[str, Any]) -> str:
        if row.get("label") is not None:
            label = parse_label(row["label"])
        else:  # the next in the file's own lineage, so it is the same label in every import
            from logbook.supervisor.lineage import next_label

            previous = self.last_label.get(run)
            label = "1.00" if previous is None else next_label(previous)
            while (run, label) in self.attempts or (run, label) in self.bad_attempts:
                label = next_label(label)
        self.last_label[run] = label
        return label

    def _attempt_fields(self, row: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for key, value in row.items():
            if key in ("type", "run", "label") or value is None:
                continue
            if key == "signal":
                fields.update(_signal(value))
                continue
            if key == "duration":  # "ran ~3 days", the times known only to a day or range (#16)
                seconds, approx = parse_duration(value)
                fields["duration_stated_s"], fields["duration_approx"] = seconds, approx or None
                continue
            column = _ATTEMPT_ALIASES.get(key, key)
            if column in _ATTEMPT_TIMES:
                when = parse_when(value, key)
                fields[column] = when.time
                prefix = column.removesuffix("_time")
                fields[f"{prefix}_precision"], fields[f"{prefix}_until"] = (
                    when.precision,
                    when.until,
                )
                continue
            if column in _ATTEMPT_STEPS:
                step = parse_step(value, key)
                fields[column] = step.step
                if step.approx or step.until is not None:  # a range: its start, approximately
                    fields["steps_approx"] = True
                continue
            convert = self._converters.get(column)
            if convert is None:
                raise Bad(f"attempt rows have no field {key!r} (see schemas/import.md)")
            fields[column] = convert(value)
        status = fields.get("status")
        if status is not None and status not in STATUSES:
            raise Bad(f"status {status!r} is not one of {', '.join(STATUSES)}")
        crash_class = fields.get("crash_class")
        if crash_class is not None:
            from logbook.forensics.rules import CLASSES

            if crash_class not in CLASSES:
                raise Bad(f"class {crash_class!r} is not one of {', '.join(CLASSES)}")
        _check_cause(fields)
        decision = fields.get("decision")
        if decision is not None and decision not in DECISIONS:
            raise Bad(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
        return fields

    def _event(self, line: int, run: str, row: dict[str, Any]) -> None:
        kind = parse_text(row.get("kind") or "", "kind")
        if not kind or not kind.replace("_", "").replace("-", "").isalnum():
            raise Bad(
                f"kind {kind!r} is not allowed (letters, digits, _ and -)" if kind else "no kind"
            )
        data = self._data(row, _EVENT_FIELDS)
        message = row.get("message")
        if "took_effect" in data:  # a change made that did not take effect (a bug ignored it; #16)
            data["took_effect"] = parse_bool(data["took_effect"], "took_effect")
        words = None  # a message written from the data, where the row has none
        if kind == "hparam_change":
            self._setting_change(run, data)
            if "change" in data and data.get("key") is not None:
                words = _change_words(data)
        if kind == "software_change":
            words = _software_change(data)
        if words is None and data.get("took_effect") is False and "key" in data:
            words = _setting_words(data)
        if message is None and words is not None:
            message = words + (" (did not take effect)" if data.get("took_effect") is False else "")
        self._keep(line, run, row, kind, message, data)

    def _setting_change(self, run: str, data: dict[str, Any]) -> None:
        """A change given relative to the value before (`change`: ×0.5, /2, -10%, halved; #16):
        `factor` kept beside it, and the new value worked out from the old one (given, else the
        `new` of the file's last change of that key in the run), never guessed without one."""
        key = data.get("key")
        if "change" in data:
            factor = relative_factor(data["change"])
            data["factor"] = factor
            if "old" not in data and (run, key) in self._settings:
                data["old"] = self._settings[(run, key)]
            old = data.get("old")
            if "new" not in data and isinstance(old, (int, float)) and not isinstance(old, bool):
                data["new"] = float(f"{old * factor:.12g}")  # no float noise (1.2e-4 × 0.9)
        # A change that did not take effect leaves the setting as it was: a later relative change
        # (halved, -10%) is of the value in force.
        if key is not None and data.get("new") is not None and data.get("took_effect") is not False:
            self._settings[(run, key)] = data["new"]

    def _hardware(self, line: int, run: str, row: dict[str, Any]) -> None:
        """Hardware a source declares, from its time on (or for the attempt it names): hosts, GPUs
        and their model. It becomes the `declared` snapshot of the attempts it covers and a
        hardware_change event of the run."""
        extra = sorted(k for k in row if k not in _HARDWARE_FIELDS and row[k] is not None)
        if extra:
            raise Bad(f"hardware rows have no field {extra[0]!r} (see schemas/import.md)")
        counts = {
            key: parse_int(row[key], key)
            for key in ("hosts", "gpus", "gpus_per_host", "spare_hosts")
            if row.get(key) is not None
        }
        if any(v < (0 if k in ("gpus", "spare_hosts") else 1) for k, v in counts.items()):
            raise Bad("hosts and gpus_per_host are at least 1, gpus and spare_hosts at least 0")
        if "gpus" not in counts and {"hosts", "gpus_per_host"} <= counts.keys():
            counts["gpus"] = counts["hosts"] * counts["gpus_per_host"]
        model = row.get("gpu_model")
        declared: dict[str, Any] = {**counts}
        if model is not None:
            declared["gpu_model"] = redact_value(parse_text(model, "gpu_model").strip())
        if not declared.keys() & {"hosts", "gpus", "gpu_model", "spare_hosts"}:
            raise Bad("a hardware row needs hosts, gpus, gpu_model or spare_hosts")
        label = self._attempt_ref(line, run, row)
        self.hardware.append(
            {"line": line, "run": run, "label": label, "time": parse_when(row.get("time")).time}
            | {"declared": declared}
        )
        words = _hardware_words(declared)
        note = row.get("message", row.get("note"))
        message = words if note is None else f"{words}: {parse_text(note, 'message')}"
        event = {**row, "kind": "hardware_change", "scope": "attempt" if label else "run"}
        for key in (
            "type",
            "message",
            "note",
            *_HARDWARE_FIELDS - {"run", "time", "attempt", "source"},
        ):
            event.pop(key, None)
        source = event.pop("source", None)
        data = declared if source is None else {**declared, "source": redact_value(source)}
        self._keep(line, run, event, "hardware_change", message, data)

    def _interruptions(self, line: int, run: str, row: dict[str, Any]) -> None:
        """N interruptions of one cause with no times, as a report's table counts them (#19)."""
        extra = sorted(k for k in row if k not in _INTERRUPTION_FIELDS and row[k] is not None)
        if extra:
            raise Bad(f"interruptions rows have no field {extra[0]!r} (see schemas/import.md)")
        if row.get("count") is None:
            raise Bad("an interruptions row needs a count")
        # "~90 restarts": attempts a history says happened without detailing them (#16)
        given = parse_step(row["count"], "count")
        if given.until is not None:
            raise Bad(f"count {row['count']!r} is a range: give one number, approximate (~90)")
        count = given.step
        if count < 1:
            raise Bad(f"count {count} is not at least 1")
        convert = self._converters
        fields: dict[str, Any] = {"count": count}
        # Keys only where given: a row's identity is its content (plan.py), as before version 2.
        if given.approx:
            fields["count_approx"] = True
        label = self._attempt_ref(line, run, row)
        if label is not None:
            fields["label"] = label  # the attempt they happened in or around: its id in plan.py
        if row.get("time") is not None:
            when = parse_when(row["time"])
            fields["time"] = when.time
            if when.precision is not None:
                fields["time_precision"], fields["time_until"] = when.precision, when.until
        for key, column in (
            ("component", "component"),
            ("planned", "planned"),
            ("handled", "handled"),
            ("hours_lost", "lost_h_stated"),
            ("reason", "summary"),
            ("source", "citation"),
        ):
            if row.get(key) is not None:
                fields[column] = convert[column](row[key])
        _check_cause(fields)
        lost = fields.get("lost_h_stated")
        if lost is not None and not lost >= 0:
            raise Bad(f"hours_lost {lost} is not a number of hours")
        self.interruptions.append({"run": run, "seq": line, **fields})

    def _note(self, line: int, run: str, row: dict[str, Any]) -> None:
        text = row.get("text", row.get("message"))
        if text is None or not parse_text(text, "text").strip():
            raise Bad("no text")
        data = self._data(row, _NOTE_FIELDS)
        tags = row.get("tags")
        if tags is not None:
            if isinstance(tags, str):
                tags = [t.strip() for t in tags.split(",") if t.strip()]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise Bad("tags is not a list of text (or text with commas)")
            data["tags"] = tags
        self._keep(line, run, row, "note", text, data)

    def _data(self, row: dict[str, Any], known: set[str]) -> dict[str, Any]:
        data = parse_object(row["data"], "data") if row.get("data") is not None else {}
        # An explicit `"old": null` says the setting was not set before, which a missing `old`
        # does not (#16: "not set" against "not recorded"); a CSV cell cannot tell them apart.
        said = ("old", "new") if not self.csv_strings else ()
        extras = {k: v for k, v in row.items() if k not in known and (v is not None or k in said)}
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
            raise Bad(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        scope = row.get("scope") or "attempt"
        if scope not in SCOPES:
            raise Bad(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
        label = self._attempt_ref(line, run, row)
        if scope == "run" and label is not None:
            raise Bad("an event of the run (scope run) names no attempt")
        when = parse_when(row.get("time"))
        step = None if row.get("step") is None else parse_step(row["step"])
        self.events.append(
            {
                "line": line,
                "run": run,
                "label": label,
                "of_run": scope == "run",
                "time": when.time,
                "time_precision": when.precision,
                "time_until": when.until,
                "step": None if step is None else step.step,
                "step_until": None if step is None else step.until,
                "step_approx": True if step is not None and step.approx else None,
                "kind": kind,
                "severity": severity,
                "message": None
                if message is None
                else redact_value(parse_text(message, "message")),
                "data": redact_value(data) if data else None,
            }
        )

    def _metric(self, line: int, row: dict[str, Any]) -> None:
        # The hot path (a million rows should take seconds): the common case checked inline.
        run = row.get("run") or self.default_run
        if type(run) is not str or run not in self.runs:
            run = self._run(line, row)
        if not row.keys() <= _METRIC_FIELDS:
            extra = sorted(row.keys() - _METRIC_FIELDS)
            raise Bad(
                f"metric rows have no field {extra[0]!r} (several values go in a metrics object)"
            )
        text = row.get("time")
        try:  # Arrow takes an offset or none (UTC) as it is
            t = _fromisoformat(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            t = parse_time(text)
        step = row.get("step")
        if step is not None and (type(step) is not int or not MIN_INT <= step <= MAX_INT):
            step = parse_int(step, "step")
        label = self._attempt_ref(line, run, row) if "attempt" in row else None
        keep = self._points.append
        if "metrics" in row:
            if "name" in row or "value" in row:
                raise Bad("give name and value, or a metrics object, not both")
            values = parse_object(row["metrics"], "metrics")
            if not values:
                raise Bad("metrics is empty")
            for key, value in values.items():
                keep((run, t, step, self.name_of(key), parse_float(value, key), label, line))
        else:
            raw = row.get("name")
            name = self._names.get(raw) if type(raw) is str else None
            if name is None:
                name = self.name_of(raw)
            if "value" not in row:
                raise Bad("no value")
            value = row["value"]
            if type(value) is not float:
                value = parse_float(value, "value")
            keep((run, t, step, name, value, label, line))
        if len(self._points) >= _BATCH:
            self.flush()

    def name_of(self, raw: Any) -> str:
        """The name a metric is recorded by.

        Raises:
            Bad: `raw` is no name.
        """
        if raw is None:
            raise Bad("no name (or a metrics object)")
        name = self._names.get(raw) if isinstance(raw, str) else None
        if name is None:
            name = self._canonical(parse_text(raw, "name"))
            if not name:
                raise Bad(f"metric name {raw!r} has no letters or digits")
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
            raise Bad(f"signal {value!r} is not a signal name (e.g. SIGKILL)") from None
    number = parse_int(value, "signal")
    return {"signal": number, "signal_name": signal_name(number)}


def _setting_words(data: dict[str, Any]) -> str:
    """'lr: 0.0001 -> 5e-05', 'lr -> 5e-05' without the value before."""
    new = data.get("new")
    return f"{data['key']}: {data['old']} -> {new}" if "old" in data else f"{data['key']} -> {new}"


def _software_change(data: dict[str, Any]) -> str | None:
    """A software change (#16: a new PyTorch, NCCL or Megatron): `package` with its versions
    `old` and `new` (kept as text: "2.4" is not 2.40), and the words for a row with no message
    ('megatron-lm: 2.4 -> 2.6'). Rows without `package` are kept as they were imported before it
    (a `repo` or `key` names what changed), so a file imports as it did."""
    if "package" not in data:
        return None
    package = parse_text(data["package"], "package").strip()
    if not package:
        raise Bad("package is empty")
    data["package"] = package
    for key in ("old", "new"):
        if data.get(key) is not None:
            if isinstance(data[key], (bool, dict, list)):
                raise Bad(f'{key} {data[key]!r} is not a version (write it as text: "2.6")')
            data[key] = str(data[key])
    old, new = data.get("old"), data.get("new")
    return f"{package}: {old or 'not recorded'} -> {new or 'not recorded'}"


def _change_words(data: dict[str, Any]) -> str:
    """'lr: 0.0001 -> 5e-05 (halved)', or 'lr halved' where the value before is not known."""
    if data.get("new") is None:
        return f"{data['key']} {data['change']}"
    return f"{data['key']}: {data.get('old')} -> {data['new']} ({data['change']})"


def _hardware_words(declared: dict[str, Any]) -> str:
    """'992 GPUs (A100 80GB) on 124 hosts', from what a hardware row declares."""
    gpus, model, hosts = declared.get("gpus"), declared.get("gpu_model"), declared.get("hosts")
    spare = declared.get("spare_hosts")
    what = f"{gpus:,} GPU{'' if gpus == 1 else 's'}" if gpus is not None else "GPUs"
    if model:
        what += f" ({model})"
    if hosts is not None:
        what += f" on {hosts:,} host{'' if hosts == 1 else 's'}"
    if spare is not None:
        spares = f"{spare:,} spare host{'' if spare == 1 else 's'} (held, idle)"
        what = spares if declared.keys() == {"spare_hosts"} else f"{what}, and {spares}"
    return f"hardware: {what} (declared)"


def _check_cause(fields: Mapping[str, Any]) -> None:
    """The second level of cause (#19): a known component, and how it was handled."""
    from logbook.forensics.components import COMPONENTS, HANDLED

    component = fields.get("component")
    if component is not None and component not in COMPONENTS:
        raise Bad(f"component {component!r} is not one of {', '.join(COMPONENTS)}")
    handled = fields.get("handled")
    if handled is not None and handled not in HANDLED:
        raise Bad(f"handled {handled!r} is not one of {', '.join(HANDLED)}")
