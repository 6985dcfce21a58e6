"""Parse what the recorder did not: the raw logs are the write-ahead log of metrics.

A recorder killed mid-run, an end whose parsing was cut short after 1 s, a disk that filled: each
leaves a coverage file (logbook/store/coverage.py) that does not reach the end of its logs. The
background finish that `logbook run` starts (`record/finish.py`), or else the next command that
writes (`logbook run`, `compact`, `doctor`), parses the rest here through the recorder's own path
(`record/stream.py`, going on from the state the coverage keeps), writes its points as the
recorder would have, and marks the logs parsed. A recorder or finisher still alive is left alone;
one parser of the rest at a time holds the lock of the attempt's log folder (`store/lock.py`).

Points found here carry the time the log was last written: when each line was printed is not on
record, and that is the latest it can have been.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.record import parse_pool
from logbook.record.stream import MetricStream, interleaved, line_start
from logbook.store import coverage, layout, owner
from logbook.store import journal as journals
from logbook.store import lock as locks

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.store import Store

BATCH = 500_000  # points per part: memory stays bounded whatever the log holds


@dataclass
class Recovered:
    run: str
    attempt_id: str
    lines: int = 0
    points: int = 0


def recover_metrics(
    store: Store, runs: dict[str, set[str] | None] | None = None, *, wait_s: float = 0.0
) -> list[Recovered]:
    """Parse every stretch of every raw log whose recorder is gone without parsing it.

    Args:
        runs: only these attempts, as {run: {attempt_id, ...}}, or {run: None} for every attempt
            of a run; None: every attempt of every run.
        wait_s: how long to wait for a recorder still alive to end (the background finish of
            `logbook run` waits for its own); 0: leave it alone.

    Returns:
        One entry per attempt whose logs were parsed here.
    """
    out = []
    logs = store.root / layout.LOGS_DIR
    if runs is None:
        dirs = sorted(logs.glob("run=*/*"))
    else:
        dirs = []
        for r, ids in runs.items():
            if ids is None:
                dirs += sorted(logs.glob(f"run={layout.check_run_name(r)}/*"))
            else:
                dirs += [layout.attempt_log_dir(store.root, r, a) for a in ids]
    for log_dir in dirs:
        doc = coverage.read(log_dir)
        if doc is None or doc.get("complete"):
            continue
        until = time.monotonic() + wait_s
        while recorder_alive(store.root, doc) and time.monotonic() < until:
            time.sleep(0.1)
            doc = coverage.read(log_dir) or doc
        if recorder_alive(store.root, doc) or finisher_alive(doc):
            continue
        held = locks.take(log_dir)  # one parser of the rest at a time (recovery, reparse)
        if held is None:
            continue
        try:
            doc = coverage.read(log_dir)  # again, under the lock: another may have finished it
            if doc is None or doc.get("complete"):
                continue
            done = _parse_rest(store, log_dir, doc)
        except OSError:  # unreadable logs, or a store still full: the next writer tries again
            continue
        finally:
            held.release()
        if done is not None:
            out.append(done)
    return out


def recorder_alive(root: Path, doc: dict[str, Any]) -> bool:
    run, journal_id = doc.get("run"), doc.get("journal")
    if not run or not journal_id:
        return False
    jf = journals.read(layout.journal_dir(root, str(run)) / f"{journal_id}{journals.SUFFIX}")
    return jf is not None and jf.is_alive()


def finisher_alive(doc: dict[str, Any]) -> bool:
    """Whether another process, the background finish `logbook run` handed the rest to, is at
    work on it (it is named before it takes the lock)."""
    f = doc.get("finisher")
    if not isinstance(f, dict) or f.get("pid") == os.getpid():
        return False
    return owner.is_alive(f, 0.0, locks.STALE_AFTER_S)


def log_files(log_dir: Path) -> dict[str, Path]:
    """An attempt's raw logs by stream name."""
    return {p.stem: p for p in (log_dir / "stdout.log", log_dir / "stderr.log") if p.exists()}


def parse_stretches(
    stream: MetricStream,
    stretches: dict[str, tuple[Path, list[tuple[int, int]]]],
    write: Callable[[pa.Table, dict[str, int], dict[str, Any]], None],
    stamp: datetime,
) -> tuple[int, int]:
    """Parse stretches of logs through `stream`, handing `write` a table of points (`time`,
    `step`, `name`, `value`) every BATCH points, with how far each log's whole lines were parsed
    for them ({log name: offset}) and the stream's `state()` after them; (lines, points).

    `write` runs in a thread of its own, one batch at a time, while the next is parsed: writing
    Parquet (which releases the GIL) took a third of a flood's finish when it waited its turn.
    A long stretch is parsed by worker processes (`record/parse_pool.py`), fed here in order.

    Raises:
        OSError: a log cannot be read, or `write` failed.
    """
    from concurrent.futures import Future, ThreadPoolExecutor
    from contextlib import closing

    import pyarrow as pa

    lines = points = pending = 0
    chunks: list[pa.Table] = []
    reached: dict[str, int] = {}
    time_type = pa.timestamp("us", tz="UTC")
    total = sum(b - a for _path, spans in stretches.values() for a, b in spans)
    parsed = parse_pool.parsed_in_order(
        stream.parser, interleaved(stretches), parse_pool.workers_for(total)
    )
    with closing(parsed), ThreadPoolExecutor(1, thread_name_prefix="logbook-write") as writer:
        written: Future[None] | None = None
        for name, chunk, offset in parsed:
            fed = stream.feed_parsed(chunk)
            reached[name] = offset
            lines += fed.lines
            n = fed.points.num_rows
            if n:
                times = pa.repeat(pa.scalar(stamp, time_type), n)
                chunks.append(fed.points.append_column("time", times))
                pending, points = pending + n, points + n
            if pending >= BATCH:
                if written is not None:
                    written.result()  # one batch in flight: memory stays bounded
                batch = pa.concat_tables(chunks)
                written = writer.submit(write, batch, dict(reached), stream.state())
                chunks, pending = [], 0
        if written is not None:
            written.result()
    if chunks:
        write(pa.concat_tables(chunks), dict(reached), stream.state())
    return lines, points


def write_printed(store: Store, run: str, attempt_id: str, settings: dict[str, float]) -> None:
    """Settings the command printed at start-up (a config echo), as snapshots of kind `printed`;
    not again for an attempt that has them (a finish killed after them parses its rest again)."""
    from logbook.record.hparams import printed_rows

    if not settings or has_printed(store, run, attempt_id):
        return
    stamp = datetime.now(timezone.utc)
    rows = [
        {**r, "run": run, "attempt_id": attempt_id, "time": stamp, "host": None}
        for r in printed_rows(settings)
    ]
    store.write("snapshots", run, rows)


def has_printed(store: Store, run: str, attempt_id: str) -> bool:
    """Whether the attempt's printed settings are on record."""
    import pyarrow.compute as pc

    snaps = store.read("snapshots", run=run)
    mine = pc.and_(pc.equal(snaps["attempt_id"], attempt_id), pc.equal(snaps["kind"], "printed"))
    return bool(pc.any(mine).as_py())


def _parse_rest(store: Store, log_dir: Path, doc: dict[str, Any]) -> Recovered | None:
    from logbook.record.metrics import part_path, points_table, write_metrics

    run, attempt_id = str(doc["run"]), str(doc["attempt_id"])
    logs = log_files(log_dir)
    sizes = {name: p.stat().st_size for name, p in logs.items()}
    todo = coverage.unparsed(doc, sizes)
    stream = MetricStream(str(doc.get("metrics") or "auto"), state=doc)
    stamp = datetime.fromtimestamp(
        max((p.stat().st_mtime for p in logs.values()), default=0.0), timezone.utc
    )
    result = Recovered(run, attempt_id)
    stretches = {
        name: (logs[name], [(line_start(logs[name], a), b) for a, b in spans])
        for name, spans in todo.items()
        if name in logs
    }

    def write(points: pa.Table, reached: dict[str, int], state: dict[str, Any]) -> None:
        """A part and the coverage it brings (named before it: see coverage.before_part), so
        that a finish killed at any moment leaves no point that the next parser of the rest
        would write again, and none it would miss."""
        streams = dict(doc.get("streams") or {})  # a log with nothing left keeps its own
        for name, (_path, spans) in stretches.items():
            streams[name] = coverage.stream_of(_left(spans, reached.get(name)), sizes[name])
        after = {**doc, **state, "streams": streams, "complete": False}
        part = part_path(store, run)
        coverage.before_part(log_dir, part, after)
        write_metrics(store, run, points_table(attempt_id, [points]), name=part.name)
        coverage.write(log_dir, after)

    result.lines, result.points = parse_stretches(stream, stretches, write, stamp)
    write_printed(store, run, attempt_id, stream.finish())
    state: dict[str, Any] = {"first_step": stream.first_step, "last_step": stream.last_step}
    if doc.get("first_step") is None and stream.first_step is not None:
        state["first_step_time"] = stamp
    if doc.get("last_step") != stream.last_step:
        state["last_step_time"] = stamp
    streams = {name: {"to": size, "holes": []} for name, size in sizes.items()}
    done = {**doc, **state, **stream.state(), "streams": streams, "complete": True}
    # The attempt's steps widened before the logs are marked parsed: a reader that waited for
    # this finish (record/unparsed.py) then sees them (only ever wider: a kill between is no harm)
    update_steps(store, run, attempt_id, stream.first_step, stream.last_step, stamp)
    coverage.write(log_dir, {**done, "finisher": None})
    return result if result.lines else None


def _left(spans: list[tuple[int, int]], reached: int | None) -> list[tuple[int, int]]:
    """What is left of `spans` (in order) once their whole lines are parsed to `reached`."""
    if reached is None:
        return list(spans)
    for k, (a, b) in enumerate(spans):
        if a <= reached < b:
            return [(reached, b), *spans[k + 1 :]]
        if reached == b:
            return list(spans[k + 1 :])
    return list(spans)


def update_steps(
    store: Store,
    run: str,
    attempt_id: str,
    first: int | None,
    last: int | None,
    stamp: datetime,
) -> bool:
    """Widen an ended attempt's first and last step to those its whole logs show, once they are
    parsed: the wrapper closed it with the steps it had read, and under a flood its end leaves most of the
    output to the background finish (#15). A new row with a later `recorded_at` (the attempts
    view takes the latest); an attempt not yet closed is left to whoever closes it (its close
    reads the coverage). Whether a row was written."""
    if last is None:
        return False  # no step in the logs (or in this mode): what the row says stays
    rows = [r for r in store.read("attempts", run).to_pylist() if r["attempt_id"] == attempt_id]
    if not rows:
        return False
    row = max(rows, key=lambda r: r["recorded_at"])
    if row.get("end_time") is None or row.get("status") in (None, "running"):
        return False
    # Only ever wider: a reparse in a narrower mode (a pattern for the eval lines alone) sees
    # fewer steps than the training made.
    known = [v for v in (row.get("first_step"), row.get("last_step")) if v is not None]
    first = min([*known, *([] if first is None else [first])])
    last = max([*known, last])
    if (row.get("first_step"), row.get("last_step")) == (first, last):
        return False
    new = {**row, "first_step": first, "last_step": last, "recorded_at": datetime.now(timezone.utc)}
    if row.get("last_step") != last:
        new["last_step_time"] = stamp
    if row.get("first_step") is None and first is not None:
        new["first_step_time"] = stamp
    store.write("attempts", run, [new])
    return True


def progress_of(root: Path, run: str, attempt_id: str) -> dict[str, Any]:
    """The steps an attempt's coverage file knows, for the row that closes it when its recorder
    is gone: first and last step and their times, and the step it resumed from."""
    doc = coverage.read(layout.attempt_log_dir(root, run, attempt_id)) or {}
    out: dict[str, Any] = {}
    for key in ("first_step", "last_step", "resumed_from_step"):
        if doc.get(key) is not None:
            out[key] = int(doc[key])
    for key in ("first_step_time", "last_step_time"):
        if doc.get(key):
            try:
                out[key] = datetime.fromisoformat(str(doc[key]))
            except ValueError:
                pass
    return out


def recover_store(store: Store, run: str | None = None) -> list[Recovered]:
    """What every command that writes does first: parse the logs that dead or finished recorders
    left unparsed (of `run` only, when given: `logbook run` at its start reads no other run's
    logs), then fold the journals of dead ones (their attempts closed as lost, with the steps the
    logs show, whatever their run)."""
    done = recover_metrics(store, None if run is None else {run: None})
    store.fold_dead_journals()
    return done


__all__ = [
    "Recovered",
    "finisher_alive",
    "has_printed",
    "log_files",
    "parse_stretches",
    "progress_of",
    "recover_metrics",
    "recover_store",
    "recorder_alive",
    "update_steps",
    "write_printed",
]
