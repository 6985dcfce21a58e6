"""What an import adds: the file's rows attached to their attempts, less what the store holds;
then writing it, every part staged first and renamed into place."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook import schema as schemas
from logbook.errors import LogbookError
from logbook.importing.collect import MAX_ERRORS, Collector
from logbook.record.events import event_row
from logbook.store import Store, conform, layout, parts

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_PART_ROWS = 1_000_000  # rows per metrics part written
# Dictionaries for the columns that repeat: tried on times, steps and values too, they cost over
# 40 % of writing a part of points and made it a third larger (2026-12-05, a million points).
_POINT_ENCODING = {"use_dictionary": ["attempt_id", "name", "source"]}
# Fixed, so the same run and label (or the same event) get the same id in every import.
_NAMESPACE = uuid.UUID("6f1c2d0e-55a4-4c55-9d0b-7a1e3f0c9b21")
_UTC = timezone.utc
# Columns a recorded attempt's new row gets afresh when a file completes it.
_REDONE = {"run", "recorded_at", "logbook_version", "duration_s", "parent_id", "parent_label"}


@dataclass
class Imported:
    """What an import wrote for one run (or, dry, would write)."""

    run: str
    attempts: int = 0  # new attempts
    attempts_updated: int = 0  # attempts already on record whose state the file changes
    events: int = 0  # new events, notes not counted
    notes: int = 0  # new notes
    metrics: int = 0  # new metric points
    interruptions: int = 0  # interruptions counted without times (#19), new
    skipped: int = 0  # attempts, events, notes and metrics of the file already on record
    enriched: int = 0  # attempts `logbook run` recorded that the file adds facts to (sacct)
    new_run: bool = False
    warnings: list[str] = field(default_factory=list)  # what was imported but looks wrong

    def describe(self, *, dry_run: bool = False) -> str:
        """One line for people: 'imported into opt: 3 attempts, 2 events, 1 note, 9 metrics'."""

        def n(count: int, word: str) -> str:
            return f"{count:,} {word}{'' if count == 1 else 's'}"

        attempts = n(self.attempts, "new attempt" if self.attempts_updated else "attempt")
        if self.attempts_updated:
            attempts += f", {self.attempts_updated:,} updated"
        counts = [attempts, n(self.events, "event"), n(self.notes, "note")]
        counts.append(n(self.metrics, "metric"))
        if self.interruptions:
            counts.append(n(self.interruptions, "counted interruption"))
        what = ", ".join(counts)
        verb = "would import into" if dry_run else "imported into"
        new = " (a new run)" if self.new_run else ""
        if self.enriched:
            what += f"; facts added to {n(self.enriched, 'recorded attempt')}"
        tail = f"; {self.skipped:,} already on record" if self.skipped else ""
        return f"{verb} {self.run}{new}: {what}{tail}"


def _uuid(*parts: Any) -> str:
    return uuid.uuid5(_NAMESPACE, json.dumps(parts, default=str, sort_keys=True)).hex


class Plan:
    """What to add for each run: the file's rows attached to their attempts, less what the store
    holds. Problems found on the way (unknown labels, clashes) go to the collector's errors."""

    def __init__(self, store: Store, found: Collector, con: duckdb.DuckDBPyConnection) -> None:
        from logbook import __version__

        self.store = store
        self.found = found
        self.con = con
        self.version = __version__
        self.results = {run: Imported(run) for run in found.runs}
        self.attempt_rows: dict[str, list[dict[str, Any]]] = {r: [] for r in found.runs}
        self.event_rows: dict[str, list[dict[str, Any]]] = {r: [] for r in found.runs}
        self.interruption_rows: dict[str, list[dict[str, Any]]] = {r: [] for r in found.runs}
        self.run_rows: dict[str, dict[str, Any]] = {}
        self.snapshot_rows: dict[str, list[dict[str, Any]]] = {r: [] for r in found.runs}
        self.stored = {run: _current_attempts(store, run) for run in found.runs}
        self._attempt_ids: pa.Array  # by index (ai in DuckDB), once the metrics are attached
        # run -> every attempt of it, the file's and the store's, by start time
        self.lineup = self._attempts()
        # Every check runs, so that a file's errors come in one report, not in stages.
        self._check_refs()
        self._attach_metrics()
        if found.errors:
            return
        for run, attempts in self.lineup.items():
            self.results[run].warnings = _overlaps(run, attempts)
        self._attach_events()
        self._steps()
        for run in found.runs:
            attempts = self._finish_attempts(run)
            self._events(run, attempts)
            self._declared_hardware(run, attempts)
            self._stated(run)
            self._interruptions(run)
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
                recorded = self.found.enrich.get((run, label))
                if other is not None and recorded is not None and recorded == other["attempt_id"]:
                    # A recorded attempt the file completes (#18, sacct): its own fields under
                    # the file's, its parent kept.
                    attempt_id = recorded
                    kept = {k: v for k, v in other.items() if k not in _REDONE}
                    fields = {**kept, **fields, "_parent": _parent_of(other)}
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
                    self.found.bad_attempts.add((run, label))
                    continue
                merged.append({**fields, "label": label, "attempt_id": attempt_id, "_file": True})
            merged.sort(key=lambda a: (a["start_time"], a["label"]))
            counted = any(i["run"] == run for i in found.interruptions)  # counts only (#19)
            if not merged and not counted and not any(r == run for r, _ in found.bad_attempts):
                self._error(
                    found.runs[run],
                    f"run {run} has no attempts, in the file or the store: add an attempt row "
                    "for its events and metrics to belong to",
                )
            lineup[run] = merged
        return lineup

    def _check_refs(self) -> None:
        known = {(run, a["label"]) for run, attempts in self.lineup.items() for a in attempts}
        known |= self.found.bad_attempts  # reported already
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
        self._attempt_ids = pa.array([a["attempt_id"] for a in lineup], pa.string())
        self.con.register(
            "att",
            pa.table(
                {
                    "ai": pa.array(range(len(lineup)), pa.int32()),
                    "run": pa.array([a["run"] for a in lineup], pa.string()),
                    "label": pa.array([a["label"] for a in lineup], pa.string()),
                    "attempt_id": self._attempt_ids,
                    "start_time": pa.array([a["start_time"] for a in lineup], ts),
                    "end_time": pa.array([a.get("end_time") for a in lineup], ts),
                }
            ),
        )
        # The attempt of each time once (a row's points share it), not of each point; and as its
        # index in att (ai): a million copies of a 32-character id cost more than the search.
        self.con.execute(
            """
            create table at_time as
            select t.run, t.time,
                   case when a.end_time is null or a.end_time >= t.time then a.ai end as ai
            from (select distinct run, time from m_new where label is null) t
            asof left join att a on a.run = t.run and t.time >= a.start_time
            """
        )
        # Each point once (the same point twice in a file is one point) with its attempt.
        self.con.execute(
            f"create table m as select distinct run, time, step, name, value, ai from {_ATTACHED}"
        )
        self._points_in_file = {
            r["run"]: r["n"] for r in self._rows("select run, count(*) n from m_new group by run")
        }
        if self._rows("select count(*) n from m where ai is null")[0]["n"]:
            self._no_attempt_errors()
        self.con.execute("drop table m_new; drop table at_time")

    def _no_attempt_errors(self) -> None:
        """The lines of points in no attempt. A run with a bad attempt row may have lost the
        attempt its points belong to: those points are not reported as well."""
        doubtful = {run for run, _ in self.found.bad_attempts}
        for r in self._rows(
            f"select line, run, time from {_ATTACHED} where ai is null order by line limit ?",
            [MAX_ERRORS],
        ):
            if r["run"] not in doubtful:
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
                "select a.attempt_id, min(step) as lo, max(step) as hi, "
                "arg_min(time, step) as lo_t, arg_max(time, step) as hi_t from m "
                "join att a using (ai) where step is not null and time >= a.start_time "
                "and (a.end_time is null or time <= a.end_time) group by a.attempt_id"
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
            if e["of_run"]:  # the file says it belongs to the run, whatever ran then
                e["attempt_id"] = None
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
                if "_parent" in a:  # a recorded attempt keeps its own
                    parent = a["_parent"]
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
        has_run_row = _has_run_row(self.store, run)
        if not self.stored[run] and not has_run_row:
            result.new_run = True
        if not has_run_row:
            # a run of interruption counts alone (#19) was first recorded by this import
            first = self.lineup[run][0] if self.lineup[run] else {"start_time": _now()}
            self.run_rows[run] = {
                "run": run,
                "created_at": first["start_time"],
                "host": first.get("host"),
                "user": first.get("user"),
                "description": None,
            }
        return rows

    def _interruptions(self, run: str) -> None:
        """Rows of interruptions counted without times (#19); the same row again adds nothing."""
        result = self.results[run]
        on_record = set(
            self.store.read("interruptions", run=run).column("interruption_id").to_pylist()
        )
        seen: dict[tuple[Any, ...], int] = {}
        ids = {a["label"]: a["attempt_id"] for a in self.lineup.get(run, [])}
        for row in (i for i in self.found.interruptions if i["run"] == run):
            content = tuple(sorted((k, v) for k, v in row.items() if k != "seq"))
            n = seen[content] = seen.get(content, 0) + 1  # the same content twice: two rows
            row_id = _uuid("interruptions", run, content, n)
            if row_id in on_record:
                result.skipped += 1
                continue
            label = row.get("label")
            fields = {k: v for k, v in row.items() if k != "label"}
            if label is not None:
                fields["attempt_id"] = ids.get(label)
            self.interruption_rows[run].append(
                {**fields, "interruption_id": row_id, "recorded_at": _now()}
            )
            result.interruptions += row["count"]

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
            # As the source gives them; not part of the identity, which older imports made.
            for key in ("time_precision", "time_until", "step_until", "step_approx"):
                row[key] = e[key]
            row["seq"] = e["line"]
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

    def _declared_hardware(self, run: str, attempts: list[dict[str, Any]]) -> None:
        """Each of the file's attempts gets the hardware declared for it: the run's last hardware
        row at or before its start, over which a row naming the attempt goes. They are snapshot
        rows of kind `declared`, which `logbook cost` reads where nothing was measured."""
        rows = sorted((h for h in self.found.hardware if h["run"] == run), key=lambda h: h["time"])
        if not rows:
            return
        on_record = _declared_on_record(self.store, run)
        for a in attempts:
            declared: dict[str, Any] = {}
            lines: list[int] = []
            for h in rows:
                if h["label"] is None and h["time"] <= a["start_time"]:
                    if h["declared"].keys() == {"spare_hosts"}:  # the spares change alone
                        declared, lines = declared | h["declared"], [*lines, h["line"]]
                    else:
                        declared, lines = {**h["declared"]}, [h["line"]]  # the latest in force
            for h in rows:
                if h["label"] == a["label"]:
                    declared |= h["declared"]
                    lines.append(h["line"])
            where = ", ".join(str(n) for n in lines)
            for name, value in declared.items():
                key = (a["attempt_id"], name, str(value))
                if key in on_record:
                    continue
                self.snapshot_rows[run].append(
                    {
                        "attempt_id": a["attempt_id"],
                        "time": a["start_time"],
                        "kind": "declared",
                        "name": name,
                        "value": str(value),
                        "status": "ok",
                        "detail": f"declared by the imported history (line {where})",
                    }
                )

    def _stated(self, run: str) -> None:
        """Facts the file states about attempts of the run, in the file or recorded (sacct's
        scheduler and declared rows), as snapshot rows at the attempt's start; each once."""
        rows = [s for s in self.found.stated if s["run"] == run]
        if not rows:
            return
        by_label = {a["label"]: a for a in self.lineup[run]}
        # The file's own attempts; the others (recorded ones) are enriched by these rows.
        mine = {lbl for r, lbl in self.found.attempts if r == run} - {
            lbl for r, lbl in self.found.enrich if r == run
        }
        on_record = _stated_on_record(self.store, run)
        enriched = set()
        for s in rows:
            a = by_label.get(s["label"])
            if a is None:  # reported by the checks of labels
                continue
            key = (a["attempt_id"], s["kind"], s["name"], s["value"])
            if key in on_record:
                continue
            on_record.add(key)
            self.snapshot_rows[run].append(
                {
                    "attempt_id": a["attempt_id"],
                    "time": a["start_time"],
                    "kind": s["kind"],
                    "name": s["name"],
                    "value": s["value"],
                    "status": "ok",
                    "detail": f"stated by the imported history (line {s['line']})",
                }
            )
            if a["label"] not in mine:
                enriched.add(a["attempt_id"])
        self.results[run].enriched = len(enriched)

    def _new_metrics(self) -> None:
        """The points not yet on record, as table m_add; a point is its (time, step, name, value)."""
        if not self.found.metric_count:
            return
        files = [p for run in self.found.runs for p in self.store.part_files("metrics", run)]
        if files:
            listing = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
            old = (
                f"select run, time, step, name, value from read_parquet([{listing}], "
                "hive_partitioning = true, union_by_name = true, hive_types = {'run': 'VARCHAR'}) "
                "where source = 'import'"
            )
            self.con.execute(
                f"create table m_add as select * from m where not exists (select 1 from ({old}) o "
                "where o.run = m.run and o.time = m.time and o.name = m.name "
                "and o.step is not distinct from m.step and o.value is not distinct from m.value)"
            )
            self.con.execute("drop table m")
        else:  # nothing imported before: every point is new
            self.con.execute("alter table m rename to m_add")
        new = {
            r["run"]: r["n"] for r in self._rows("select run, count(*) n from m_add group by run")
        }
        for run, result in self.results.items():
            result.metrics = new.get(run, 0)
            result.skipped += self._points_in_file.get(run, 0) - result.metrics

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
                        staged.append(self._stage("metrics", run, data, **_POINT_ENCODING))
            for table, rows_by_run in (
                ("events", self.event_rows),
                ("interruptions", self.interruption_rows),
                ("attempts", self.attempt_rows),
                ("snapshots", self.snapshot_rows),
                ("runs", {r: [row] for r, row in self.run_rows.items()}),
            ):
                for run, rows in rows_by_run.items():
                    if rows:
                        staged.append(self._stage(table, run, parts.to_arrow(table, rows)))
            for tmp, final in staged:
                os.replace(tmp, final)
                renamed += 1
                parts.fsync_dir(final.parent)
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
        # Sorted by the attempt's index, its id put in after: sorting rows that carry a 32-character
        # id cost three times as much.
        result = self.con.sql(
            "select ai, time, step, name, value, 'import' as source from m_add "
            "where run = ? order by time, step, name",
            params=[run],
        )
        assert result is not None
        batches: list[pa.RecordBatch] = []
        # DuckDB hands out batches of its own size: gather a part's worth of them.
        for batch in result.to_arrow_reader(_PART_ROWS):
            batches.append(batch)
            if sum(b.num_rows for b in batches) >= _PART_ROWS:
                yield conform(self._with_ids(pa.Table.from_batches(batches)), target)
                batches = []
        if any(b.num_rows for b in batches):
            table = pa.Table.from_batches(batches, schema=batches[0].schema)
            yield conform(self._with_ids(table), target)

    def _with_ids(self, points: pa.Table) -> pa.Table:
        """The attempt index `ai` of each point replaced by its attempt_id."""
        ids = self._attempt_ids.take(points.column("ai"))
        return points.drop_columns(["ai"]).add_column(0, "attempt_id", ids)

    def _stage(self, table: str, run: str, data: pa.Table, **options: Any) -> tuple[Path, Path]:
        directory = layout.run_dir(self.store.root, table, run)
        # A hidden .tmp name: readers skip it, and `logbook doctor` clears one left by a crash.
        tmp = parts.write_part(directory, data, name=f".import-{uuid.uuid4().hex}.tmp", **options)
        return tmp, directory / layout.new_part_name("import")


# The file's points with their attempt's index (ai): by their label, else the time's (at_time).
_ATTACHED = """(
    select m.run, m.time, m.step, m.name, m.value, m.line,
           case when m.label is not null then x.ai else t.ai end as ai
    from m_new m
    left join att x on x.run = m.run and x.label = m.label
    left join at_time t on m.label is null and t.run = m.run and t.time = m.time
)"""


def _current_attempts(store: Store, run: str) -> list[dict[str, Any]]:
    """The newest row of each attempt of `run` in the store."""
    rows = store.read("attempts", run=run).to_pylist()
    newest: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["recorded_at"]):
        newest[r["attempt_id"]] = r
    return list(newest.values())


def _has_run_row(store: Store, run: str) -> bool:
    return store.read("runs", run=run).num_rows > 0


def _stated_on_record(store: Store, run: str) -> set[tuple[str, str, str, str]]:
    """(attempt_id, kind, name, value) of the run's snapshot rows."""
    data = store.read("snapshots", run=run)
    rows = data.select(["attempt_id", "kind", "name", "value"]).to_pylist()
    return {(r["attempt_id"], r["kind"], r["name"], r["value"]) for r in rows}


def _parent_of(a: Mapping[str, Any]) -> dict[str, Any] | None:
    if a.get("parent_id") is None:
        return None
    return {"attempt_id": a["parent_id"], "label": a.get("parent_label")}


def _declared_on_record(store: Store, run: str) -> set[tuple[str, str, str]]:
    """(attempt_id, name, value) of the run's declared snapshot rows: an import adds each once."""
    data = store.read("snapshots", run=run)
    rows = data.select(["attempt_id", "kind", "name", "value"]).to_pylist()
    return {(r["attempt_id"], r["name"], r["value"]) for r in rows if r["kind"] == "declared"}


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
    from logbook.record.redact import redact_command, redact_text

    row = {k: v for k, v in a.items() if not k.startswith("_")}
    start, end = row["start_time"], row.get("end_time")
    row.update(
        run=run,
        status=row.get("status") or "running",
        parent_id=parent["attempt_id"] if parent else None,
        parent_label=parent["label"] if parent else None,
        # A start or end known only to a day or a range gives no duration (not its first instant's).
        duration_s=(end - start).total_seconds()
        if end and row.get("start_precision") is None and row.get("end_precision") is None
        else None,
        command=redact_command(row.get("command") or []),
        recorded_at=parts.now(),
    )
    for key in ("summary", "decision_reason", "evidence", "cwd", "citation"):
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
        a.get("summary") or ("ended; how is not known" if status == "ended" else status),
        source="import",
        at=a["end_time"],
        step=a.get("last_step"),
        severity="error" if status in ("crashed", "hung") else "warning",
        data={k: v for k, v in data.items() if v is not None},
    )
    row["event_id"] = _uuid("end", run, a["label"], kind)
    # dated as precisely as the attempt's end (#16): "2022-03-24" is a day, not its midnight
    row["time_precision"], row["time_until"] = a.get("end_precision"), a.get("end_until")
    return row


def _within(a: Mapping[str, Any], t: datetime) -> bool:
    return bool(a["start_time"] <= t and (a.get("end_time") is None or t <= a["end_time"]))


def _overlaps(run: str, attempts: list[dict[str, Any]]) -> list[str]:
    """Warnings for attempts (sorted by start) that overlap the next one: downtime and MTBF count
    their shared time once, but a history kept by hand more likely has a wrong time."""
    out = []
    for a, b in itertools.pairwise(attempts):
        end = a.get("end_time")
        if end is None and a.get("status", "running") == "running":
            out.append(
                f"run {run}: attempt {a['label']} has no end (running) but {b['label']} starts "
                "after it; give it an end and a status"
            )
        elif end is not None and end > b["start_time"]:
            hours = (end - b["start_time"]).total_seconds() / 3600
            out.append(
                f"run {run}: attempts {a['label']} and {b['label']} overlap by {hours:.1f} h "
                f"({b['label']} starts {_minute(b['start_time'])}, before {a['label']} ends "
                f"{_minute(end)})"
            )
    return out


def _minute(t: datetime) -> str:
    return f"{t.astimezone(_UTC):%Y-%m-%d %H:%M} UTC"


def _unknown_label(run: str, label: str, attempts: list[dict[str, Any]]) -> str:
    known = ", ".join(a["label"] for a in attempts[:12]) or "none"
    return f"attempt {label} is not in the file or the store (run {run} has: {known})"


def _no_attempt_then(run: str, t: datetime) -> str:
    return (
        f"no attempt of run {run} was running at {t.astimezone(_UTC):%Y-%m-%d %H:%M:%S} UTC: "
        "a metric needs one (give its attempt label, or add an attempt row that covers it)"
    )


def _now() -> datetime:
    return datetime.now(_UTC)
