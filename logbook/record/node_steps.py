"""When this host saw each step, under a launch over several hosts (#19): the rows that let
`query/stragglers.py` compare hosts at the same step.

Every node writes them, the leader too, whether or not it parses metrics: the steps come from the
log follower's step finder, which runs under `--metrics none` as well. Only steps beyond the last
one seen are kept (a step printed on several lines, or again after a resume, keeps its first
sighting), so memory stays bounded however long the run. Rows are written every FLUSH_S, so other
hosts' wrappers see them while the launch runs, and at the end.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logbook.supervisor.recorder import Recorder


class NodeSteps:
    """One node's step sightings of one attempt, on their way to the `node_steps` table."""

    FLUSH_S = 60.0

    def __init__(self, recorder: Recorder, node: int) -> None:
        self.recorder = recorder
        self.node = node
        self.last: int | None = None
        self.rows: list[dict[str, Any]] = []
        self._next_flush = time.monotonic() + self.FLUSH_S
        self._lock = threading.Lock()

    def add(self, steps: Any, at: datetime) -> None:
        """A chunk's steps (ascending line order), all read at `at`."""
        with self._lock:
            for value in steps:
                step = int(value)
                if self.last is None or step > self.last:
                    self.last = step
                    self.rows.append({"step": step, "time": at})
        if time.monotonic() >= self._next_flush:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, self.rows = self.rows, []
            self._next_flush = time.monotonic() + self.FLUSH_S
        store, rec = self.recorder.store, self.recorder
        if not rows or store is None:
            return
        full = [
            {**r, "run": rec.run, "attempt_id": rec.attempt_id, "node": self.node, "host": rec.host}
            for r in rows
        ]
        rec._safe("the steps this host saw", lambda: store.write("node_steps", rec.run, full))
