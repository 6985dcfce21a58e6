"""Parse what the recorder did not: the raw logs are the write-ahead log of metrics.

A recorder killed mid-run, a catch-up cut short by its time limit, a disk that filled: each leaves
a coverage file (logbook/store/coverage.py) that does not reach the end of its logs. The next
command that writes (`logbook run`, `compact`, `doctor`) parses the rest here, writes its points
as the recorder would have, and marks the logs parsed. A recorder still alive is left alone.

Points found here carry the time the log was last written: when each line was printed is not on
record, and that is the latest it can have been.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.store import coverage, layout
from logbook.store import journal as journals

if TYPE_CHECKING:
    from logbook.store import Store

BATCH = 50_000  # points per part: memory stays bounded whatever the log holds


@dataclass
class Recovered:
    run: str
    attempt_id: str
    lines: int = 0
    points: int = 0


def recover_metrics(
    store: Store, runs: dict[str, set[str] | None] | None = None
) -> list[Recovered]:
    """Parse every stretch of every raw log whose recorder is gone without parsing it.

    Args:
        runs: only these attempts, as {run: {attempt_id, ...}}, or {run: None} for every attempt
            of a run; None: every attempt of every run.

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
        if doc is None or doc.get("complete") or _recorder_alive(store.root, doc):
            continue
        try:
            done = _parse_rest(store, log_dir, doc)
        except OSError:  # unreadable logs, or a store still full: the next writer tries again
            continue
        if done is not None:
            out.append(done)
    return out


def _recorder_alive(root: Path, doc: dict[str, Any]) -> bool:
    run, journal_id = doc.get("run"), doc.get("journal")
    if not run or not journal_id:
        return False
    jf = journals.read(layout.journal_dir(root, str(run)) / f"{journal_id}{journals.SUFFIX}")
    return jf is not None and jf.is_alive()


def _parse_rest(store: Store, log_dir: Path, doc: dict[str, Any]) -> Recovered | None:
    from logbook.record.metrics import Columns, metrics_table, write_metrics
    from logbook.record.parsers import LineParser
    from logbook.supervisor.progress import _last_redraw, parse_stretch

    run, attempt_id = str(doc["run"]), str(doc["attempt_id"])
    logs = {p.stem: p for p in (log_dir / "stdout.log", log_dir / "stderr.log") if p.exists()}
    sizes = {name: p.stat().st_size for name, p in logs.items()}
    todo = coverage.unparsed(doc, sizes)
    parser = LineParser(str(doc.get("metrics") or "auto"))
    stamp = datetime.fromtimestamp(
        max((p.stat().st_mtime for p in logs.values()), default=0.0), timezone.utc
    )
    result = Recovered(run, attempt_id)
    state: dict[str, Any] = {k: doc.get(k) for k in ("first_step", "last_step")}
    rows: Columns = ([], [], [], [])

    def flush() -> None:
        if rows[0]:
            write_metrics(store, run, metrics_table(attempt_id, rows))
            result.points += len(rows[0])
            for column in rows:
                column.clear()

    def line(text: bytes) -> None:
        result.lines += 1
        parsed = parser.parse(_last_redraw(text))
        if parsed is None:
            return
        if parsed.step is not None:
            if state["first_step"] is None:
                state["first_step"], state["first_step_time"] = parsed.step, stamp
            state["last_step"], state["last_step_time"] = parsed.step, stamp
        step = parsed.step if parsed.step is not None else state["last_step"]
        for name, value in parsed.values.items():
            rows[0].append(stamp)
            rows[1].append(step)
            rows[2].append(name)
            rows[3].append(value)
        if len(rows[0]) >= BATCH:
            flush()

    for name, stretches in todo.items():
        for start, end in sorted(stretches):
            parse_stretch(logs[name], _line_start(logs[name], start), end, line)
    flush()
    streams = {name: {"to": size, "holes": []} for name, size in sizes.items()}
    coverage.write(log_dir, {**doc, **state, "streams": streams, "complete": True})
    return result if result.lines else None


def _line_start(path: Path, offset: int) -> int:
    """`offset` if a line starts there, else where the next one does: a stretch that starts
    mid-line follows a skip, and the skipped stretch's parse finished that line."""
    if offset == 0:
        return 0
    with open(path, "rb") as f:
        f.seek(offset - 1)
        if f.read(1) == b"\n":
            return offset
        rest = f.readline()
    return offset + len(rest) - 1 if rest.endswith(b"\n") else offset + len(rest)


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


__all__ = ["Recovered", "progress_of", "recover_metrics", "recover_store"]
