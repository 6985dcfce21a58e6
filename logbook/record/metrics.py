"""Metric rows parsed from the output, on their way to the store, in step with the raw logs.

Points are written as Parquet parts every FLUSH_S or FLUSH_ROWS, at chunk boundaries of the parser,
and after each part the coverage file beside the raw logs (logbook/store/coverage.py) says how far
the logs are parsed. The two move together: whatever the coverage names is in a part, and whatever
it does not is parsed again by logbook/record/recover.py. Once a part cannot be written (a full
disk), no more are, and the coverage stays where it was: recovery parses the rest once space is
back, so a point is never lost and never written twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.supervisor.recorder import Recorder

Columns = tuple[list[Any], list[int | None], list[str], list[float]]  # time, step, name, value


def metrics_table(attempt_id: str, rows: Columns, source: str = "parser") -> pa.Table:
    """Columns of points as a `metrics` table (without the run, which the folder names)."""
    import pyarrow as pa

    from logbook import schema as schemas

    schema = schemas.load("metrics").arrow()
    n = len(rows[0])
    columns = {
        "attempt_id": pa.repeat(pa.scalar(attempt_id, pa.string()), n),
        "time": pa.array(rows[0], schema.field("time").type),
        "step": pa.array(rows[1], pa.int64()),
        "name": pa.array(rows[2], pa.string()),
        "value": pa.array(rows[3], pa.float64()),
        "source": pa.repeat(pa.scalar(source, pa.string()), n),
    }
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def points_table(attempt_id: str, chunks: list[pa.Table], source: str = "parser") -> pa.Table:
    """Chunks of points (`time`, `step`, `name`, `value` columns) as one `metrics` table."""
    import pyarrow as pa

    from logbook import schema as schemas

    schema = schemas.load("metrics").arrow()
    data = pa.concat_tables([c.select(["time", "step", "name", "value"]) for c in chunks])
    n = data.num_rows
    columns = {
        "attempt_id": pa.repeat(pa.scalar(attempt_id, pa.string()), n),
        "time": data["time"].cast(schema.field("time").type),
        "step": data["step"],
        "name": data["name"],
        "value": data["value"],
        "source": pa.repeat(pa.scalar(source, pa.string()), n),
    }
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


class MetricBuffer:
    """Points of one attempt, taken as columns (a chunk of the parser at a time, #15: a Python
    call per point cannot keep up with a million points a second). At most MAX_NAMES distinct
    names: a line full of ids must not explode the table; the rest are counted and reported."""

    FLUSH_S = 10.0
    FLUSH_ROWS = 200_000  # about 8 MB of columns; at a million points a second, 5 parts a second
    MAX_NAMES = 1000

    def __init__(self, recorder: Recorder, *, mode: str = "auto") -> None:
        self.recorder = recorder
        self.mode = mode  # the parser's, so that recovery parses the rest the same way
        self.chunks: list[pa.Table] = []  # time, step, name, value
        self.rows = 0
        self.names: set[str] = set()
        self.dropped_names: set[str] = set()
        self.dropped_points = 0
        self.written = 0
        self.coverage: dict[str, Any] | None = None  # as of the last point added
        self.on_disk: dict[str, Any] | None = None  # the coverage as last written
        self.failed = False  # a part could not be written: leave the rest to recovery
        self._next_flush = time.monotonic() + self.FLUSH_S
        self._lock = threading.Lock()

    def begin(self) -> None:
        """Say, before any output, that this attempt's logs are parsed by a live recorder."""
        self.coverage = {"streams": {}}
        self._write_coverage(complete=False)

    def add(self, step: int | None, values: Mapping[str, float], at: datetime) -> None:
        """One line's points."""
        import pyarrow as pa

        n = len(values)
        points = pa.table(
            {
                "step": pa.array([step] * n, pa.int64()),
                "name": pa.array(list(values), pa.string()),
                "value": pa.array(list(values.values()), pa.float64()),
            }
        )
        self.add_points(points, at)

    def add_points(self, points: pa.Table, at: datetime) -> None:
        """A chunk's points: a table of `step` (int64), `name` (string), `value` (float64)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not points.num_rows:
            return
        with self._lock:
            new = set(pc.unique(points["name"]).to_pylist()) - self.names
            if new:
                room = max(0, self.MAX_NAMES - len(self.names))
                taken = sorted(new)[:room]
                self.names.update(taken)
                refused = new.difference(taken)
                if refused:
                    keep = pc.is_in(points["name"], pa.array(sorted(self.names), pa.string()))
                    kept = points.filter(keep)
                    self.dropped_points += points.num_rows - kept.num_rows
                    if len(self.dropped_names) < 100_000:  # the count stays bounded too
                        self.dropped_names.update(refused)
                    points = kept
            times = pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), points.num_rows)
            self.chunks.append(points.append_column("time", times))
            self.rows += points.num_rows

    def parsed(self, coverage: dict[str, Any]) -> None:
        """The parser finished a chunk: every point up to `coverage` has been added."""
        self.coverage = coverage
        if self.rows >= self.FLUSH_ROWS or time.monotonic() >= self._next_flush:
            self.flush()

    def flush(self, *, complete: bool = False) -> None:
        with self._lock:
            chunks, self.chunks, count, self.rows = self.chunks, [], self.rows, 0
            self._next_flush = time.monotonic() + self.FLUSH_S
        store = self.recorder.store
        if store is None or self.failed:
            return
        if count:
            table = points_table(self.recorder.attempt_id, chunks)
            part = part_path(store, self.recorder.run)
            if self.coverage is not None:  # the part named first: a kill between is no harm
                self.recorder._safe(
                    "how far the raw logs are parsed",
                    lambda: self._write_coverage(complete, before=part),
                )
            if self.recorder._safe(
                "metrics", lambda: write_metrics(store, self.recorder.run, table, name=part.name)
            ):
                self.written += count
            else:
                self.failed = True
                return
        if self.coverage is not None:
            self.recorder._safe(
                "how far the raw logs are parsed", lambda: self._write_coverage(complete)
            )

    def _write_coverage(self, complete: bool, before: Path | None = None) -> None:
        """The coverage; `before` a part: the coverage that part brings, named ahead of it."""
        from logbook.store import coverage

        log_dir = self.recorder.log_dir()
        journal = self.recorder.journal_id
        if log_dir is None or journal is None or self.coverage is None:
            return
        doc = {
            "run": self.recorder.run,
            "attempt_id": self.recorder.attempt_id,
            "journal": journal,
            "metrics": self.mode,
            **self.coverage,
            "complete": complete,
        }
        if before is not None:
            coverage.before_part(log_dir, before, doc)
            return
        coverage.write(log_dir, doc)
        self.on_disk = self.coverage

    def close(self) -> None:
        """Write what is left, mark the logs parsed if they all are, say what was dropped."""
        self.flush(complete=self._all_parsed())
        self._say_dropped()

    def _say_dropped(self) -> None:
        if self.dropped_points:
            self.recorder.event(
                "logbook_warning",
                f"{len(self.names)} metric names recorded; {self.dropped_points} values of "
                f"{len(self.dropped_names)} more names were not (at most {self.MAX_NAMES} per attempt)",
                severity="warning",
                source="logbook",
                data={
                    "dropped_points": self.dropped_points,
                    "example_names": sorted(self.dropped_names)[:20],
                },
            )

    def hand_over(self, finisher: dict[str, Any] | None) -> dict[str, int] | None:
        """The end hands the rest of the logs to the background finish (`finisher`; None: to the
        next writer): the points parsed since the last part are not written here, the exit does
        not wait for them, and the finish parses them again from where the coverage on disk
        says. Returns the bytes of each log that are not on record (None: nothing written)."""
        if self.on_disk is None or self.failed:
            return None
        with self._lock:
            self.chunks, self.rows = [], 0
        self.coverage = {**self.on_disk, "finisher": finisher}
        self.recorder._safe(
            "how far the raw logs are parsed", lambda: self._write_coverage(complete=False)
        )
        self._say_dropped()
        return self._left(self.on_disk)

    def _left(self, cov: dict[str, Any]) -> dict[str, int]:
        """Bytes of each raw log beyond what `cov` says is parsed."""
        log_dir = self.recorder.log_dir()
        streams = cov.get("streams") or {}
        left: dict[str, int] = {}
        for log in Path(log_dir).glob("*.log") if log_dir is not None else ():
            try:
                size = log.stat().st_size
            except OSError:
                continue
            n = size - int((streams.get(log.stem) or {}).get("to") or 0)
            if n > 0:
                left[log.stem] = n
        return left

    def _all_parsed(self) -> bool:
        log_dir = self.recorder.log_dir()
        if self.coverage is None or log_dir is None:
            return False
        streams = self.coverage.get("streams") or {}
        for log in Path(log_dir).glob("*.log"):  # a log the coverage does not name is unparsed
            try:
                size = log.stat().st_size
            except OSError:
                continue
            cov = streams.get(log.stem) or {}
            if cov.get("holes") or int(cov.get("to") or 0) < size:
                return False
        return True


# Encodings for metrics parts: names, times and steps in a few bits each (about 10 bytes a point).
METRICS_PARQUET: dict[str, Any] = {
    "use_dictionary": ["attempt_id", "name", "source"],
    "column_encoding": {
        "time": "DELTA_BINARY_PACKED",
        "step": "DELTA_BINARY_PACKED",
        "value": "BYTE_STREAM_SPLIT",
    },
}


def write_metrics(
    store: Any, run: str, table: pa.Table, *, by_name: bool = False, name: str | None = None
) -> Path:
    """Write points as one metrics part, the one way every producer does (the wrapper's parser,
    recovery, the Python API): sorted by name, stably so that each name's points stay in time
    order, and encoded so. `by_name`: the caller sorted them already. `name`: the part's, named
    beforehand (`part_path`) in the coverage that waits for it.

    Returns:
        The new part.

    Raises:
        OSError: the part could not be written.
    """
    from logbook.store import layout, parts

    if not by_name:
        table = table.take(name_order(table["name"]))
    return parts.write_part(
        layout.run_dir(store.root, "metrics", run), table, name, **METRICS_PARQUET
    )


def part_path(store: Any, run: str) -> Path:
    """Where a new metrics part of `run` will be (its name, for `write_metrics(name=...)`)."""
    from logbook.store import layout

    return layout.run_dir(store.root, "metrics", run) / layout.new_part_name()


def name_order(names: pa.ChunkedArray | pa.Array) -> Any:
    """Indices that sort `names`, stably: a few distinct names, ranked once and sorted as small
    integers (a string sort of every point costs about twice the whole part's write, #15)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks()
    if names.null_count:
        return pc.sort_indices(names)  # stable too; no producer writes a null name
    codes = pc.dictionary_encode(names)
    rank = np.argsort(pc.array_sort_indices(codes.dictionary).to_numpy())
    return np.argsort(rank[codes.indices.to_numpy()], kind="stable")
