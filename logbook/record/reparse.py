"""An attempt's metrics rebuilt from its raw logs (`logbook reparse`, #15): after fixing a
`--metrics` pattern, or after a kill.

The raw logs are the source of truth: the attempt's parser-made points (source `parser`; never
the Python API's rows) are replaced by what the whole logs give through the recorder's own path
(`record/stream.py`), in one step that readers never see half-done, the way compaction replaces
parts (`store/compact.py`): under the lock of the run's metrics folder, the rows kept from the
parts that held the old points and the new points go into one hidden file, a manifest names it
and the parts it replaces, it is renamed into place, the old parts are deleted, then the
manifest. A kill at any point leaves either the old points or the new ones (the next compaction
tidies what is left). The logs' coverage is rewritten to say they are parsed, in that mode.

Refused while the attempt's recorder (or its background finish) is alive: it still writes
points. Settings printed at start-up (snapshots of kind `printed`) are written only if the
attempt has none yet. An ended attempt's first and last step are widened to those the logs show
in that mode (`recover.update_steps`; never narrowed: a mode may see fewer steps).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.errors import LogbookError
from logbook.record import recover
from logbook.record.stream import MetricStream
from logbook.store import coverage, layout, parts
from logbook.store import lock as locks

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.store import Store


@dataclass
class Reparsed:
    """What `reparse` did for one attempt."""

    run: str
    attempt: str
    attempt_id: str
    metrics: str  # the mode the logs were parsed in
    lines: int
    points: int  # written now
    replaced_points: int  # parser points of the attempt removed
    settings: int  # values printed at start-up, not metrics
    first_step: int | None
    last_step: int | None


def reparse(
    store: Store, run: str, *, attempt: str | None = None, metrics: str | None = None
) -> list[Reparsed]:
    """Rebuild the parser-made metrics of one attempt (`attempt`, a label) or of every attempt
    of `run` from their raw logs.

    Args:
        metrics: the `--metrics` mode to parse with; None: the one each attempt was parsed with.

    Raises:
        NoSuchRun: no such run.
        LogbookError: no such attempt, an attempt still being recorded, no raw logs, or another
            process holding the logs or the run's metrics folder.
        ConfigError: a bad mode.
    """
    from logbook.query import read_attempt, run_sql

    if metrics is not None:
        MetricStream(metrics)  # a bad mode fails before anything is touched
    store.check_run(run)
    if attempt is not None:
        rows = [read_attempt(store, run, attempt)]
    else:
        rows = run_sql(
            store,
            "select attempt_id, label from attempts where run = ? order by start_time, label",
            [run],
        ).to_pylist()
    targets = []
    for row in rows:
        log_dir = layout.attempt_log_dir(store.root, run, row["attempt_id"])
        if not recover.log_files(log_dir):
            if attempt is not None:
                raise LogbookError(f"attempt {row['label']} of run {run} has no raw logs")
            continue
        doc = coverage.read(log_dir)
        if doc is not None and (
            recover.recorder_alive(store.root, doc) or recover.finisher_alive(doc)
        ):
            raise LogbookError(
                f"attempt {row['label']} of run {run} is still being recorded",
                hint="reparse it once its `logbook run` has ended",
            )
        targets.append((row, log_dir, doc))
    return [_reparse_one(store, run, row, log_dir, doc, metrics) for row, log_dir, doc in targets]


def finish_rest(store: Store, run: str, attempt_id: str, wait_s: float = 600.0) -> int:
    """The background finish of `logbook run` (record/finish.py): wait for the recorder to close
    the attempt, then parse the rest of its logs; the points written."""
    done = recover.recover_metrics(store, {run: {attempt_id}}, wait_s=wait_s)
    return sum(r.points for r in done)


def _reparse_one(
    store: Store,
    run: str,
    row: dict[str, Any],
    log_dir: Path,
    doc: dict[str, Any] | None,
    metrics: str | None,
) -> Reparsed:
    label, attempt_id = str(row["label"]), str(row["attempt_id"])
    mode = metrics or str((doc or {}).get("metrics") or "auto")
    held_logs = locks.take(log_dir)
    if held_logs is None:
        raise LogbookError(f"another logbook process is parsing the logs of attempt {label}")
    try:
        folder = layout.run_dir(store.root, "metrics", run)
        folder.mkdir(parents=True, exist_ok=True)
        held = locks.take(folder)
        if held is None:
            raise LogbookError(
                f"a compaction of run {run}'s metrics is running", hint="try again when it ends"
            )
        try:
            return _replace(store, run, label, attempt_id, log_dir, doc, mode, folder)
        finally:
            held.release()
    finally:
        held_logs.release()


def _replace(
    store: Store,
    run: str,
    label: str,
    attempt_id: str,
    log_dir: Path,
    doc: dict[str, Any] | None,
    mode: str,
    folder: Path,
) -> Reparsed:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from logbook import schema as schemas
    from logbook.record.metrics import points_table
    from logbook.store import compact, redaction
    from logbook.store.compact import MANIFEST_PREFIX, OUTPUT_PREFIX

    compact.finish_interrupted(folder)  # with the lock held, as compaction does
    affected = [p for p in _parts(folder) if _holds_parser_points(p, attempt_id)]
    target = schemas.load("metrics").arrow()
    output = layout.new_part_name(OUTPUT_PREFIX)
    tmp = folder / f".{output}.tmp"
    logs = recover.log_files(log_dir)
    sizes = {name: p.stat().st_size for name, p in logs.items()}
    stamp = datetime.fromtimestamp(max(p.stat().st_mtime for p in logs.values()), timezone.utc)
    stream = MetricStream(mode)
    replaced = kept = 0
    strings = [f.name for f in target if pa.types.is_string(f.type)]
    try:
        marked = redaction.mark_schema(parts.part_schema(target))  # every part holds its run (#17)
        with pq.ParquetWriter(
            str(tmp), marked, compression="zstd", use_dictionary=strings
        ) as writer:
            for path in affected:
                for piece in compact._conformed(path, target, "metrics"):
                    mine = pc.and_(
                        pc.equal(piece["attempt_id"], attempt_id),
                        pc.equal(piece["source"], "parser"),
                    )
                    rest = piece.filter(pc.invert(pc.fill_null(mine, False)))
                    replaced += piece.num_rows - rest.num_rows
                    kept += rest.num_rows
                    if rest.num_rows:
                        writer.write_table(parts.with_run(rest, run))

            def write(points: pa.Table, _reached: dict[str, int], _state: dict[str, Any]) -> None:
                table = points_table(attempt_id, [points])
                table = table.take(pc.sort_indices(table, sort_keys=[("name", "ascending")]))
                table = redaction.redact_table(table, "metrics").cast(target)
                writer.write_table(parts.with_run(table, run))

            lines, points = recover.parse_stretches(
                stream, {name: (p, [(0, sizes[name])]) for name, p in logs.items()}, write, stamp
            )
        if points or kept or affected:
            _fsync(tmp)
            manifest = folder / f"{MANIFEST_PREFIX}{output.split('.')[0]}.json"
            compact._write_durably(
                manifest, {"output": output, "inputs": [p.name for p in affected]}
            )
            os.replace(tmp, folder / output)
            parts.fsync_dir(folder)
            for p in affected:
                p.unlink(missing_ok=True)
            parts.fsync_dir(folder)
            manifest.unlink()
    finally:
        tmp.unlink(missing_ok=True)
    settings = stream.finish()
    recover.write_printed(store, run, attempt_id, settings)
    base = doc or {"run": run, "attempt_id": attempt_id, "journal": None}
    streams = {name: {"to": size, "holes": []} for name, size in sizes.items()}
    coverage.write(
        log_dir,
        {
            **base,
            "metrics": mode,
            "first_step": stream.first_step,
            "last_step": stream.last_step,
            **stream.state(),
            "streams": streams,
            "complete": True,
            "finisher": None,
        },
    )
    recover.update_steps(store, run, attempt_id, stream.first_step, stream.last_step, stamp)
    return Reparsed(
        run,
        label,
        attempt_id,
        mode,
        lines,
        points,
        replaced,
        len(settings),
        stream.first_step,
        stream.last_step,
    )


def _parts(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix == ".parquet" and not p.name.startswith(".")
    )


def _holds_parser_points(path: Path, attempt_id: str) -> bool:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(path, columns=["attempt_id", "source"])
    except Exception as e:  # a damaged part: its rows cannot be told apart; doctor's to judge
        raise LogbookError(f"cannot read {path}: {e}", hint='see "logbook doctor"') from e
    mine = pc.and_(pc.equal(t["attempt_id"], attempt_id), pc.equal(t["source"], "parser"))
    return bool(pc.any(mine).as_py())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def as_rows(done: list[Reparsed]) -> list[dict[str, Any]]:
    return [asdict(d) for d in done]
