"""Pruning a remote store's spool: the bulk of what went up leaves this host's disk (#18).

A spool is the writer's local store; without pruning it keeps every part it uploaded forever. Pruned
are the parts of the bulk tables (metrics, samples) that the ledger says went up exactly as they are
here (and, given the store's listing, that the store lists at their size). Kept are what the next
writer and `logbook doctor` read here: the journals, raw logs and their parse coverage, the label
claims, the ledger, and the small tables (attempts, runs, events, snapshots, nodes, ...) from which
a relaunch takes its parent, its settings to compare and its checkpoints.

Each pruned part is first named in the ledger's guard (`Ledger.note(pruned=True)`), then deleted:
a kill between the two leaves a part here that goes up again (the same bytes under the same name),
never a part deleted in the store as if a compaction had replaced it.
"""

from __future__ import annotations

from pathlib import Path

from logbook.store import layout
from logbook.store import lock as locks
from logbook.store.remote import Ledger, Listed

PRUNED_TABLES = ("metrics", "samples")


def prune(root: Path, ledger: Ledger, *, listed: dict[str, Listed] | None = None) -> int:
    """Delete from the spool `root` the bulk parts that are in the ledger's store; how many.

    A folder whose lock is held (a compaction or reparse running) is left for next time.
    """
    ledger.reload()
    pruned = 0
    for table in PRUNED_TABLES:
        for folder in sorted(Path(root, table).glob("run=*")):
            held = locks.take(folder)
            if held is None:
                continue
            try:
                for path in sorted(folder.glob(f"*{layout.PART_SUFFIX}")):
                    rel = path.relative_to(root).as_posix()
                    if path.name.startswith(".") or not _up(path, rel, ledger, listed):
                        continue
                    ledger.note(rel, pruned=True)
                    path.unlink(missing_ok=True)
                    pruned += 1
            finally:
                held.release()
    return pruned


def _up(path: Path, rel: str, ledger: Ledger, listed: dict[str, Listed] | None) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    if ledger.sent.get(rel) != (st.st_size, st.st_mtime_ns):
        return False
    info = None if listed is None else listed.get(rel)
    return listed is None or (info is not None and info.size == st.st_size)
