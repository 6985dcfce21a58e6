"""Find what is wrong in a store and set damaged parts aside."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from logbook import schema as schemas
from logbook.store import compact, layout, parts
from logbook.store import lock as locks

STALE_TMP_S = 3600.0


@dataclass
class Problem:
    path: Path  # relative to the store
    what: str
    action: str = ""  # what doctor did about it


def examine(store, *, fix: bool = True) -> list[Problem]:  # type: ignore[no-untyped-def]
    """Check every part of every table; with `fix`, quarantine bad parts and clear leftovers.

    A folder is fixed only under its compaction lock (a dead owner's lock is taken over); one whose
    lock a live compaction holds is checked but left alone.

    Returns:
        One Problem per damaged part, leftover file, interrupted compaction or dead owner's lock.
    """
    root: Path = store.root
    problems: list[Problem] = []
    if fix:
        from logbook.record.recover import recover_store

        for r in recover_store(store):
            problems.append(
                Problem(
                    Path(layout.LOGS_DIR) / f"run={r.run}" / r.attempt_id,
                    f"{r.lines:,} lines of raw log were never parsed (its recorder stopped first)",
                    f"parsed: {r.points:,} metric points recorded",
                )
            )
    for table in schemas.tables():
        for directory in sorted((root / table).glob("run=*")):
            if not fix:
                problems += _look(root, directory, table)
                continue
            rel = directory.relative_to(root)
            try:
                held = locks.take(directory)
            except OSError as e:  # a store we may read but not change
                why = f"none: cannot write in {rel} ({e.strerror or e})"
                held = None
            else:
                why = f"none: a compaction is at work in {rel}; run doctor again"
            if held is None:
                found = _look(root, directory, table, manifests=False)
                for p in found:
                    p.action = why
                problems += found
                continue
            try:
                problems += _fix(root, directory, table, held)
            finally:
                held.release()
    problems += _journals(root, fix=fix)
    return problems


def _journals(root: Path, *, fix: bool) -> list[Problem]:
    """Journals that name no wrapper: empty or headerless ones (a kill while one was made, by
    versions that did not make them atomically), and the hidden files of a journal being made,
    once old. Nothing can fold them; they only hide among the live ones."""
    from logbook.store import journal as journals

    found: list[Problem] = []
    base = root / layout.JOURNAL_DIR
    for path in sorted(base.glob("run=*/*")):
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            continue
        if path.name.endswith(journals.SUFFIX) and not path.name.startswith("."):
            if journals.read(path) is not None:
                continue
            what = "journal with no header (its wrapper was killed while making it)"
        elif path.name.endswith(".tmp") and age > STALE_TMP_S:
            what = "journal left half-made by a killed wrapper"
        else:
            continue
        problem = Problem(path.relative_to(root), what)
        if fix:
            path.unlink(missing_ok=True)
            problem.action = "deleted"
        found.append(problem)
    return found


def _look(
    root: Path, directory: Path, table: str, *, manifests: bool | None = None
) -> list[Problem]:
    """Problems of one folder, changing nothing.

    Args:
        manifests: report compaction manifests; by default unless a live compaction holds the lock
            (then they are its work in progress).
    """
    rel = directory.relative_to(root)
    found: list[Problem] = []
    state = locks.read(directory / locks.LOCK_NAME)
    if manifests is None:
        manifests = state is None or not state.alive
    if state is not None and not state.alive:
        found.append(
            Problem(rel / locks.LOCK_NAME, f"lock of a compaction that died ({state.describe()})")
        )
    if manifests:
        for name, doc, output_exists in compact.interrupted(directory):
            if doc is None:
                what = "unreadable compaction manifest"
            elif output_exists:
                what = "compaction interrupted after its merged part was written"
            else:
                what = "compaction interrupted before its merged part was written"
            found.append(Problem(rel / name, what))
    for path in parts.iter_part_files(root, table, layout.run_of(directory)):
        why = parts.check_part(path)
        if why and path.exists():  # a part a compaction deleted meanwhile is not damaged
            found.append(Problem(path.relative_to(root), why))
    for tmp in directory.glob(".*.tmp"):
        try:
            old = time.time() - tmp.stat().st_mtime > STALE_TMP_S
        except FileNotFoundError:
            continue
        if old:
            found.append(
                Problem(tmp.relative_to(root), "temporary file left by an interrupted write")
            )
    return found


def _fix(root: Path, directory: Path, table: str, held: locks.Held) -> list[Problem]:
    """Problems of one folder, fixed; the folder's lock is held."""
    rel = directory.relative_to(root)
    done: list[Problem] = []
    if held.took_over is not None:
        what = f"lock of a compaction that died ({held.took_over.describe()})"
        done.append(Problem(rel / locks.LOCK_NAME, what, "taken over and released"))
    for name, what, action in compact.finish_interrupted(directory):
        done.append(Problem(rel / name, what, action))
    found = _look(
        root, directory, table, manifests=True
    )  # what is left: damaged parts, old temporary files
    for p in found:
        src = root / p.path
        if p.path.name.endswith(".tmp"):
            src.unlink(missing_ok=True)
            p.action = "deleted"
        else:
            dest = root / layout.QUARANTINE_DIR / p.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(src, dest)
            p.action = f"moved to {dest.relative_to(root)}"
    return done + found
