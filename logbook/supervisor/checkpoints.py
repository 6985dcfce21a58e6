"""Checkpoints as they land in --checkpoint-dir: each new or rewritten entry (a file or a folder
such as `checkpoint-1200/`) is followed until it stops changing, then reported once with its
step, size, file count and how long it took to write.

Write time is from the first sign of the checkpoint (the oldest modification among its files, or
when we first saw it, whichever is earlier) to its last write. A checkpoint written between two
scans as one file shows 0 s: the scans, not the training, limit what we can see.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SETTLE_S = 1.0  # a checkpoint unchanged for this long, and across two scans, is complete
MAX_FILES = 10_000  # files measured per checkpoint folder
_NUMBER_IN_NAME = re.compile(r"(\d+)(?!.*\d)")  # the last number in a checkpoint's name


@dataclass
class Checkpoint:
    step: int | None
    time: datetime  # when it was complete (its last write), or when the output announced it
    path: str | None
    size: int | None = None
    files: int | None = None
    write_s: float | None = None
    seen_by: str = "folder"  # folder | output | folder+output


@dataclass
class _Shape:
    size: int
    files: int
    oldest: float  # modification times, seconds since the epoch
    newest: float


class FolderWatch:
    """The entries of one checkpoint folder, with the ones already there at the start known."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._done: dict[str, float] = {}  # name -> newest mtime when last reported
        self._pending: dict[str, tuple[float, _Shape]] = {}  # name -> (first seen, last shape)
        self.latest_at_start: Checkpoint | None = None
        for name, shape in self._entries():
            self._done[name] = shape.newest
            ckpt = self._checkpoint(name, shape, shape.newest)
            if (
                self.latest_at_start is None
                or shape.newest >= self.latest_at_start.time.timestamp()
            ):
                self.latest_at_start = ckpt

    def scan(self, now: float, *, final: bool = False) -> tuple[list[Checkpoint], bool]:
        """Checkpoints complete since the last scan (oldest first), and whether any entry is
        still being written (activity for the hang watch). `final`: the writer is gone, so
        whatever is pending is complete."""
        done: list[Checkpoint] = []
        busy = False
        for name, shape in self._entries():
            if self._done.get(name) == shape.newest and name not in self._pending:
                continue
            first_seen, before = self._pending.get(name, (now, None))
            settled = before == shape and now - shape.newest >= SETTLE_S
            if settled or final:
                self._pending.pop(name, None)
                self._done[name] = shape.newest
                done.append(self._checkpoint(name, shape, first_seen))
            else:
                self._pending[name] = (first_seen, shape)
                busy = True
        return sorted(done, key=lambda c: c.time), busy

    def _checkpoint(self, name: str, shape: _Shape, first_seen: float) -> Checkpoint:
        start = min(first_seen, shape.oldest)
        return Checkpoint(
            step=step_of_checkpoint(self.folder / name),
            time=datetime.fromtimestamp(shape.newest, timezone.utc),
            path=str(self.folder / name),
            size=shape.size,
            files=shape.files,
            write_s=round(max(0.0, shape.newest - start), 3),
        )

    def _entries(self) -> list[tuple[str, _Shape]]:
        try:
            names = [e.name for e in os.scandir(self.folder) if not e.name.startswith(".")]
        except OSError:
            return []
        out = []
        for name in names:
            shape = _measure(self.folder / name)
            if shape is not None:
                out.append((name, shape))
        return sorted(out, key=lambda x: x[1].newest)


def _measure(path: Path) -> _Shape | None:
    try:
        st = path.stat()
        if not path.is_dir():
            return _Shape(st.st_size, 1, st.st_mtime, st.st_mtime)
        # The folder's own mtime moves when an entry is added: activity, but not its start.
        size, files, oldest, newest = 0, 0, float("inf"), st.st_mtime
        for folder, _dirs, names in os.walk(path):
            for name in names:
                try:
                    fst = os.stat(os.path.join(folder, name))
                except OSError:  # removed while we looked (a rotating save)
                    continue
                size, files = size + fst.st_size, files + 1
                oldest, newest = min(oldest, fst.st_mtime), max(newest, fst.st_mtime)
                if files >= MAX_FILES:
                    break
            if files >= MAX_FILES:
                break
        return _Shape(size, files, min(oldest, newest), newest)
    except OSError:
        return None


def step_of_checkpoint(path: Path) -> int | None:
    """checkpoint-1200, step_1200.pt, global_step1200/ -> 1200; a small JSON with "step" -> its value."""
    m = _NUMBER_IN_NAME.search(path.name.split(".")[0])
    if m:
        return int(m.group(1))
    if path.suffix == ".json":
        try:
            if path.stat().st_size < 1 << 20:
                value = json.loads(path.read_text()).get("step")
                return int(value) if isinstance(value, (int, float)) else None
        except (OSError, ValueError, AttributeError):
            return None
    return None
