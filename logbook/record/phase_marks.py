"""The phases the training marks through the API (`with logbook.phase("checkpoint_save"):`), seen
live by the hang watch (#19).

A phase the output does not show (a save that prints nothing) was known only once it ended: the
API records its `phase` event then. Under `--hang-timeout` the wrapper names a file in the
attempt's log folder (LOGBOOK_PHASE_MARKS, `child_env`); the API appends a line to it when a phase
starts and when it ends (`mark`), and the hang watch reads what was added (`PhaseMarksFile.poll`) each
time it looks, so a long silent save gets the save's budget, not training's. The events stay the
API's: the marks only time the watch, and teach it each phase's duration as it ends.

Each process of the command marks its own phases (torchrun's workers share the file: a line is
one write under the pipe-size limit, so lines never interleave); the phase in force is the
earliest still open.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

FILE_NAME = "phase-marks.jsonl"
ENV = "LOGBOOK_PHASE_MARKS"
MAX_LINE = 1024  # a mark is ~80 bytes; a longer line is no mark of ours
MAX_OPEN = 1024  # processes with a phase open at once; beyond, marks are ignored


def mark(what: str, phase: str, seconds: float | None = None) -> None:
    """Append a mark for the wrapper's hang watch, if this process runs under one that asked
    for them. Never raises: the training goes on whatever happens here."""
    path = os.environ.get(ENV)
    if not path:
        return
    doc = {"what": what, "phase": phase, "pid": os.getpid(), "t": time.time()}
    if seconds is not None:
        doc["s"] = round(seconds, 3)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(doc) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


class PhaseMarksFile:
    """What the marks file says: the phases open now, and those ended since the last poll."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.open: dict[int, tuple[str, float]] = {}  # pid -> (phase, monotonic start)
        self.last_mark = -float("inf")  # monotonic time of the latest mark
        self._offset = 0
        self._partial = b""
        self._lock = threading.Lock()  # the hang watch and the follower both poll

    def poll(self) -> list[tuple[str, float]]:
        """Read what was added; the (phase, seconds) of the phases that ended in it. Never
        raises: an unreadable file is no marks."""
        with self._lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    data = f.read(1 << 20)
            except OSError:
                return []
            self._offset += len(data)
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            if len(self._partial) > MAX_LINE:
                self._partial = b""
            ended: list[tuple[str, float]] = []
            for line in lines:
                self._take(line, ended)
            return ended

    def current(self) -> str | None:
        """The phase in force: the earliest still open (None: none)."""
        with self._lock:
            if not self.open:
                return None
            return min(self.open.values(), key=lambda v: v[1])[0]

    def _take(self, line: bytes, ended: list[tuple[str, float]]) -> None:
        if len(line) > MAX_LINE:
            return
        try:
            doc = json.loads(line)
            what, phase, pid, t = doc["what"], str(doc["phase"]), int(doc["pid"]), float(doc["t"])
        except (ValueError, KeyError, TypeError):
            return
        at = time.monotonic() - max(0.0, time.time() - t)  # the mark's time on this clock
        self.last_mark = max(self.last_mark, at)
        if what == "start" and (pid in self.open or len(self.open) < MAX_OPEN):
            self.open[pid] = (phase, at)
        elif what == "end":
            started = self.open.pop(pid, None)
            seconds = doc.get("s")
            if not isinstance(seconds, (int, float)):
                seconds = at - started[1] if started is not None else None
            if seconds is not None and seconds >= 0:
                ended.append((phase, float(seconds)))
