"""Merge small parts into one, without losing or duplicating a row even if interrupted.

In each `<table>/run=<name>/` folder: take a lock, write a manifest naming the inputs and the
output, write the merged part, delete the inputs, delete the manifest. A reader that finds a
manifest whose output exists ignores the inputs still there; one whose output is missing changed
nothing. Writers never take the lock: they only add parts with new names.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from logbook import schema as schemas
from logbook.store import journal as journals
from logbook.store import layout, parts

MANIFEST_PREFIX = "_compact-"
LOCK_NAME = "_compact.lock"
STALE_LOCK_S = 3600.0
SMALL_PART_BYTES = 32 * 1024 * 1024


def replaced_parts(directory: Path, names: Iterable[str]) -> set[str]:
    """Inputs of a finished but interrupted compaction in `directory`."""
    names = set(names)
    out: set[str] = set()
    for name in names:
        if not (name.startswith(MANIFEST_PREFIX) and name.endswith(".json")):
            continue
        try:
            doc = json.loads((directory / name).read_text())
        except (OSError, ValueError):
            continue
        if doc.get("output") in names:
            out.update(doc.get("inputs", []))
    return out


@dataclass
class CompactResult:
    folders: int = 0
    parts_before: int = 0
    parts_after: int = 0
    rows: int = 0
    skipped: list[str] = field(default_factory=list)


def compact(
    store,
    tables: Iterable[str] | None = None,
    *,
    run: str | None = None,  # type: ignore[no-untyped-def]
    min_parts: int = 2,
    progress: Callable[[str], None] | None = None,
    recover: bool = True,
) -> CompactResult:
    """Merge the small parts of every table and run of `store` (or of one run).

    Args:
        min_parts: leave a folder alone while it has fewer small parts than this.
        progress: called with the folder before each is looked at.
        recover: parse the raw logs that finished recorders left unparsed (a wrapper tidying its
            own run at its end leaves its catch-up's remainder to the next writer: its time limit
            is the user's).

    Returns:
        Counts of folders touched and parts before and after.
    """
    if recover:  # a writer: the metrics recorders left unparsed, the journals of dead ones
        from logbook.record.recover import recover_store

        recover_store(store)
    else:
        store.fold_dead_journals()
    live = {p.stem for p in journals.list_journals(store.root)}
    result = CompactResult()
    for table in tables or schemas.tables():
        pattern = f"run={layout.check_run_name(run)}" if run else "run=*"
        for directory in sorted((store.root / table).glob(pattern)):
            if progress is not None:
                progress(f"compacting {table}/{directory.name}")
            _compact_folder(store.root, table, directory, live, result, min_parts)
    return result


def _compact_folder(
    root: Path,
    table: str,
    directory: Path,
    live: set[str],
    result: CompactResult,
    min_parts: int = 2,
) -> None:
    finish_interrupted(directory)
    inputs = []
    for path in parts.iter_part_files(root, table, layout.run_of(directory)):
        if path.name.startswith("j-") and path.stem[2:] in live:
            continue  # its journal is still there; the pair must stay recognisable
        if not parts.looks_whole(path):
            result.skipped.append(str(path.relative_to(root)))
            continue
        if path.stat().st_size < SMALL_PART_BYTES:
            inputs.append(path)
    if len(inputs) < max(2, min_parts):
        return
    lock = directory / LOCK_NAME
    if not _take_lock(lock):
        result.skipped.append(f"{directory.relative_to(root)} (another compaction holds the lock)")
        return
    try:
        import pyarrow as pa

        target = schemas.load(table).arrow()
        pieces = []
        for path in inputs:
            try:
                pieces.append(_conform_stored(parts.read_part(path), target))
            except Exception:  # damaged inside; leave it for `logbook doctor`
                result.skipped.append(str(path.relative_to(root)))
        if len(pieces) < 2:
            return
        merged = pa.concat_tables(pieces)
        kept = [p for p in inputs if str(p.relative_to(root)) not in result.skipped]
        output = layout.new_part_name("c")
        manifest = directory / f"{MANIFEST_PREFIX}{uuid.uuid4().hex[:12]}.json"
        _write_durably(
            manifest, {"output": output, "inputs": [p.name for p in kept], "rows": len(merged)}
        )
        parts.write_part(directory, merged, output)
        for p in kept:
            p.unlink(missing_ok=True)
        manifest.unlink()
        result.folders += 1
        result.parts_before += len(kept)
        result.parts_after += 1
        result.rows += len(merged)
    finally:
        lock.unlink(missing_ok=True)


def _conform_stored(data, target):  # type: ignore[no-untyped-def]
    from logbook.store import conform

    return conform(data, target)


def finish_interrupted(directory: Path) -> None:
    """Complete or undo a compaction that was interrupted in `directory`."""
    names = [p.name for p in directory.iterdir()]
    for name in names:
        if not (name.startswith(MANIFEST_PREFIX) and name.endswith(".json")):
            continue
        manifest = directory / name
        try:
            doc = json.loads(manifest.read_text())
        except (OSError, ValueError):
            doc = {}
        if doc.get("output") in names:  # merged part is whole: finish deleting inputs
            for inp in doc.get("inputs", []):
                (directory / inp).unlink(missing_ok=True)
        manifest.unlink(missing_ok=True)


def _take_lock(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - lock.stat().st_mtime < STALE_LOCK_S:
                return False
            lock.unlink()
        except FileNotFoundError:
            pass
        return _take_lock(lock)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    return True


def _write_durably(path: Path, doc: dict) -> None:  # type: ignore[type-arg]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
