"""What the supervisor writes about one attempt. It never raises: a store that is unwritable or
full becomes one warning on stderr saying what was not recorded, and the training goes on."""

from __future__ import annotations

import functools
import queue
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.record.attempt import AttemptJournal, runs_row
from logbook.record.events import event_row
from logbook.store import Store, journal, layout
from logbook.supervisor.nodes import host_name

if TYPE_CHECKING:
    from logbook.supervisor.nodes import Node


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Recorder:
    """Records the lifecycle of one attempt of `run` into `store` (None: record nothing).

    Under a launch over several hosts (`node`), the leader writes the attempts row and every node
    its own `nodes` row; events and snapshots carry the host they come from.
    """

    def __init__(
        self,
        store: Store | None,
        run: str,
        attempt_id: str,
        *,
        warn_stream: Any = None,
        host: str | None = None,
        node: Node | None = None,
    ) -> None:
        self.store = store
        self.run = run
        self.attempt_id = attempt_id
        self.host = host or host_name()
        self.node = node
        self._warned: set[str] = set()
        self._stream = warn_stream or sys.stderr
        self._journal: AttemptJournal | None = None
        self._queue: queue.SimpleQueue[tuple[str, dict[str, Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.attempt: dict[str, Any] = {}
        self._unjournaled: list[tuple[str, dict[str, Any]]] = []  # rows a full disk refused
        self._ended = False
        self._ending = threading.RLock()  # `event` against `ended`: no event falls between
        self._log_dir: Path | None = None

    # safety ----------------------------------------------------------------------------------

    def warn(self, text: str, *, event: bool = True) -> None:
        """One line on stderr (once per text) and, when possible, a logbook_warning event."""
        if text in self._warned:
            return
        self._warned.add(text)
        try:
            self._stream.write(f"logbook: warning: {text}\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass
        if event and self._journal is not None:
            self.event("logbook_warning", text, severity="warning", source="logbook")

    def _safe(self, what: str, fn: Callable[[], Any]) -> Any:
        if self.store is None:
            return None
        try:
            return fn()
        except Exception as e:  # anything: the training must not notice
            reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
            self.warn(
                f"could not record {what} in {self.store.root}: {reason}; the training goes on",
                event=False,
            )
            return None

    # lifecycle -------------------------------------------------------------------------------

    def log_dir(self) -> Path | None:
        """The attempt's raw-log folder, made on first use; None when it cannot be."""
        if self._log_dir is not None:
            return self._log_dir

        def make() -> Path:
            assert self.store is not None
            rank = self.node.rank if self.node else None
            d = layout.attempt_log_dir(self.store.root, self.run, self.attempt_id, rank)
            d.mkdir(parents=True, exist_ok=True)
            return d

        self._log_dir = self._safe("the raw logs", make)
        return self._log_dir

    def started(self, attempt: dict[str, Any], *, first_of_run: bool) -> None:
        """Journal the start (durably) and begin the heartbeat."""
        self.attempt = dict(attempt)

        def begin() -> None:
            assert self.store is not None
            self._journal = AttemptJournal(self.store, self.run)
            first = [("runs", runs_row(attempt))] if first_of_run and self.leads else []
            self._journal.start([*self._state_rows(), *first])

        self._safe("the start of the attempt", begin)
        self._thread = threading.Thread(target=self._heartbeat, name="logbook-journal", daemon=True)
        self._thread.start()

    def seal_start(self) -> None:
        """Write the start as Parquet too, so plain Parquet readers see the running attempt (#17).
        Called once the command runs: it never waits for these writes."""
        if self._journal is not None:
            self._safe("the start of the attempt as Parquet", self._journal.seal)

    def event(
        self,
        kind: str,
        message: str,
        *,
        severity: str = "info",
        source: str = "supervisor",
        data: dict[str, Any] | None = None,
        step: int | None = None,
        at: datetime | None = None,
    ) -> None:
        """Queue an event (at `at`, default now); safe to call from a signal handler (no import,
        no lock but the queue's)."""
        row = event_row(
            self.run,
            self.attempt_id,
            kind,
            message,
            source=source,
            step=step,
            severity=severity,
            data=data,
            at=at,
        )
        row["host"] = self.host
        with self._ending:  # (reentrant: a signal handler may run inside `ended`'s hold)
            late = self._ended
            if not late:
                self._queue.put(("events", row))
        if late:  # its journal is folded: a late event (a hook still running) is a part
            self._safe("a late event", lambda: self.store.write("events", self.run, [row]))  # type: ignore[union-attr]

    def snapshots(self, rows: Sequence[Mapping[str, Any]]) -> None:
        stamp = _now()
        full = [
            {**r, "run": self.run, "attempt_id": self.attempt_id, "time": stamp, "host": self.host}
            for r in rows
        ]
        self._safe("the launch snapshot", lambda: self.store.write("snapshots", self.run, full))  # type: ignore[union-attr]

    def ended(self, **fields: Any) -> None:
        """Journal the end, then fold the journal into Parquet."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._ending:  # an event queued after the heartbeat's last read goes in the end
            self._ended = True
            left = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    left.append(item)
        self.attempt.update(fields, recorded_at=_now())
        j = self._journal
        if j is None:  # no journal: its events went nowhere either
            return
        how = j.finish([*left, *self._state_rows()], self._unjournaled)
        if how == "reserved":  # a full disk: the next writer folds it once there is room again
            self.warn(
                "the end of the attempt is kept in the space its journal reserved", event=False
            )
        elif how == "lost":
            self.warn("could not record the end of the attempt: the disk is full", event=False)
        elif how == "journaled":
            self.warn(
                "the attempt's rows stay in its journal; the next logbook command folds them",
                event=False,
            )

    @property
    def journal_id(self) -> str | None:
        """The id of this attempt's journal, once it has one."""
        return self._journal.id if self._journal is not None else None

    @property
    def leads(self) -> bool:
        """Whether this wrapper writes the attempts row: alone, or node 0 of a launch."""
        return self.node is None or self.node.leader

    def _state_rows(self) -> list[tuple[str, dict[str, Any]]]:
        """The attempt's state: its attempts row (the leader's), and this node's row."""
        rows: list[tuple[str, dict[str, Any]]] = []
        if self.leads:
            rows.append(("attempts", self.attempt))
        if self.node is not None:
            node = self.node
            rows.append(
                (
                    "nodes",
                    {**self.attempt, "node": node.rank, "nodes": node.size, "launch": node.launch},
                )
            )
        return rows

    def _heartbeat(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=journal.HEARTBEAT_S)
            except queue.Empty:
                if self._journal is not None:
                    self._safe("the heartbeat", self._journal.touch)
                continue
            if item is None:
                return
            if self._journal is not None:
                table, row = item
                append = functools.partial(self._journal.append, table, row)
                if not self._safe(f"a {row.get('kind', 'row')} event", append):
                    if len(self._unjournaled) < 100:  # for the reserve, at the end
                        self._unjournaled.append(item)
