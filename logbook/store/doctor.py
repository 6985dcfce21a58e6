"""Find what is wrong in a store and set damaged parts aside."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from logbook import schema as schemas
from logbook.store import compact, layout, parts

STALE_TMP_S = 3600.0


@dataclass
class Problem:
    path: Path  # relative to the store
    what: str
    action: str = ""  # what doctor did about it


def examine(store, *, fix: bool = True) -> list[Problem]:  # type: ignore[no-untyped-def]
    """Check every part of every table; with `fix`, quarantine bad parts and clear leftovers.

    Returns:
        One Problem per damaged part or leftover file.
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
            if fix:
                compact.finish_interrupted(directory)
            for path in parts.iter_part_files(root, table, layout.run_of(directory)):
                why = parts.check_part(path)
                if why:
                    problems.append(Problem(path.relative_to(root), why))
            for tmp in directory.glob(".*.tmp"):
                if time.time() - tmp.stat().st_mtime > STALE_TMP_S:
                    problems.append(
                        Problem(
                            tmp.relative_to(root), "temporary file left by an interrupted write"
                        )
                    )
    if fix:
        for p in problems:
            src = root / p.path
            if p.path.name.endswith(".tmp"):
                src.unlink(missing_ok=True)
                p.action = "deleted"
            else:
                dest = root / layout.QUARANTINE_DIR / p.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(src, dest)
                p.action = f"moved to {dest.relative_to(root)}"
    return problems
