"""One attempt on record, whoever keeps it: the wrapper (logbook/supervisor/recorder.py) or the
Python API run on its own (logbook/api.py). Both make its rows here, claim its label here, and keep
its lifecycle in a journal the same way: the start and end are fsync'd before anything else, and at
the end the journal is folded into Parquet. Rows are redacted by the store on their way in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.store import user_name

if TYPE_CHECKING:
    from logbook.store import Store
    from logbook.store.journal import Journal
    from logbook.supervisor.attempt_index import First
    from logbook.supervisor.lineage import Placement

Rows = list[tuple[str, dict[str, Any]]]


def place(store: Store, run: str, label: str | None = None, *, url: str | None = None) -> Placement:
    """Claim the new attempt's label after the run's attempts so far (unique under any number
    of simultaneous starts: see logbook/supervisor/lineage.py).

    Args:
        url: the remote store `store` is this host's spool of: its attempts count too.

    Raises:
        ConfigError: `label` is malformed or already taken.
    """
    from logbook.supervisor import attempt_index, lineage

    # a spool keeps no attempt index (the run's attempts are also elsewhere): the Parquet
    firsts = lineage.first_rows(store, run, index=url is None)[1]
    if url is not None:
        firsts = previous_elsewhere(url, store, run, firsts)
    return lineage.place(attempt_index.ordered(firsts), label, lineage.claims_dir(store, run))


def previous_elsewhere(url: str, store: Store, run: str, previous: list[First]) -> list[First]:
    """The first rows of the run's attempts that the remote store has and this host's spool
    lacks (another host recorded them, or the spool was cleared), with the spool's. Waits for the
    store at most a second; a store that does not answer leaves the spool's alone."""
    from logbook.store import Store, remote
    from logbook.supervisor import lineage

    try:
        cache = remote.catch_up(url, store.root, run)
        if cache is None:
            return previous
        theirs = lineage.first_rows(Store(cache), run, index=False)[1]
    except Exception:  # the uploads say so once; the training comes first
        return previous
    known = {p[0] for p in previous}
    if all(t[0] in known for t in theirs):
        return previous
    return theirs + [p for p in previous if p[0] not in {t[0] for t in theirs}]


def attempt_row(
    run: str,
    attempt_id: str,
    *,
    command: Sequence[str],
    cwd: Path,
    host: str,
    placement: Placement,
    start: datetime,
    restart_count: int = 0,
    pid: int | None = None,
) -> dict[str, Any]:
    """The attempts row of a new attempt, running (the command already redacted by the caller's
    `redact_command`; the store redacts every text column again on its way in)."""
    from logbook import __version__

    return {
        "run": run,
        "attempt_id": attempt_id,
        "host": host,
        "user": user_name(),
        "wrapper_pid": os.getpid(),
        "command": list(command),
        "cwd": str(cwd),
        "logbook_version": __version__,
        "label": placement.label,
        "parent_id": placement.parent_id,
        "parent_label": placement.parent_label,
        "restart_count": restart_count,
        "status": "running",
        "start_time": start,
        "pid": pid,
        "recorded_at": start,
    }


def runs_row(attempt: dict[str, Any]) -> dict[str, Any]:
    """The runs row a run's first attempt declares."""
    return {
        "run": attempt["run"],
        "created_at": attempt["start_time"],
        "host": attempt.get("host"),
        "user": attempt.get("user"),
        "description": None,
    }


class AttemptJournal:
    """The fsync'd journal of one attempt's lifecycle rows.

    Raises (every method but `finish`): OSError when the store cannot take the rows; the callers
    turn that into one warning, the training never sees it.
    """

    def __init__(self, store: Store, run: str) -> None:
        self.journal: Journal = store.journal(run)

    @property
    def id(self) -> str:
        return self.journal.id

    def start(self, rows: Rows) -> None:
        for table, row in rows:
            self.journal.append(table, row)

    def seal(self) -> None:
        """The start as Parquet too, for plain readers (#17): call it once the command runs."""
        self.journal.seal()

    def append(self, table: str, row: dict[str, Any]) -> bool:
        self.journal.append(table, row)
        return True

    def touch(self) -> None:
        """The heartbeat: readers take a journal untouched for long on another host as dead."""
        self.journal.touch()

    def finish(self, end: Rows, unjournaled: Rows = ()) -> str:  # type: ignore[assignment]
        """Journal the end, then fold the journal into Parquet. Never raises.

        Returns:
            "folded"; "journaled" (the end is in the journal, which the next writer folds);
            "reserved" (a full disk: the end, and the rows refused before, went into the space
            the journal reserved at its start); or "lost" (not even that).
        """
        j = self.journal
        try:
            for table, row in end:
                j.append(table, row)
        except OSError:
            kept = j.spill([*end, *unjournaled])
            j.close()
            return "reserved" if kept else "lost"
        try:
            j.fold()
        except Exception:  # a full disk or a damaged folder: the rows stay in the journal
            j.close()
            return "journaled"
        j.close()
        return "folded"
