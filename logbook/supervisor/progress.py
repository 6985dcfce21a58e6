"""What the wrapper knows of the training's progress: when it last printed, which step it is at,
which checkpoint it last saved, and the step it resumed from.

It reads the raw logs behind the passthrough (never in its way) and, with --checkpoint-dir,
looks at that folder now and then. A later issue's metric parsers follow the logs the same way.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from logbook.parsers import LineParser

# `step=12`, `step: 12`, `global_step 12`, `iter 12`, `"step": 12`, Megatron `iteration   12/ 5000 |`.
_STEP = re.compile(
    rb"""(?:^|[\s,|{(\["'])(?:global_step|step|iteration|iter)["']?\s*[=:]?\s*(\d+)(?:\s*/\s*\d+)?(?=[\s,|})\]]|$)""",
    re.IGNORECASE,
)
_RESUMED = re.compile(rb"resum\w*\b[^\n]{0,80}?\bstep\D{0,3}(\d+)", re.IGNORECASE)
_SAVED = re.compile(
    rb"(?:sav\w*|wr[io]te?\w*)\b[^\n]{0,40}?checkpoint[^\n]{0,80}?\bstep\D{0,3}(\d+)", re.IGNORECASE
)
_NUMBER_IN_NAME = re.compile(r"(\d+)(?!.*\d)")  # the last number in a checkpoint's name
READ_EVERY_S = 0.5
CHECKPOINT_EVERY_S = 5.0
MAX_READ = (
    256 << 10
)  # bytes per log per read: about 60 ms of parsing, so a flood costs the command little CPU
SKIP_AHEAD_BYTES = 8 << 20  # a backlog larger than this is skipped...
TAIL_BYTES = 256 << 10  # ...but for its newest bytes


def _now() -> datetime:
    return datetime.now(timezone.utc)


def find_step(line: bytes) -> int | None:
    """The training step a log line reports, if it reports one."""
    m = _STEP.search(line)
    return int(m.group(1)) if m else None


@dataclass
class Checkpoint:
    step: int | None
    time: datetime
    path: str | None


class Progress:
    """Progress of one attempt, updated by the pumps (output activity) and by a follower thread."""

    def __init__(
        self,
        log_paths: list[Path],
        checkpoint_dir: Path | None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        parser: LineParser | None = None,
        on_metrics: Callable[[int | None, dict[str, float], datetime], None] | None = None,
    ) -> None:
        self.started = time.monotonic()
        self.last_output = self.started  # monotonic; written by the pumps, read by the hang watch
        self.last_output_time: datetime | None = None
        self.first_step: int | None = None
        self.last_step: int | None = None
        self.first_step_time: datetime | None = None
        self.last_step_time: datetime | None = None
        self.last_step_mono = self.started
        self.resumed_from_step: int | None = None
        self.checkpoint: Checkpoint | None = None
        self.checkpoint_mono = self.started
        self._paths = log_paths
        self._offsets = {p: 0 for p in log_paths}
        self._partial = {p: b"" for p in log_paths}
        self._resync = {p: False for p in log_paths}
        self.skipped_bytes = 0  # output never scanned for progress because it came too fast
        self._ckpt_dir = checkpoint_dir
        self._ckpt_seen: dict[str, float] = {}
        self._on_checkpoint = on_checkpoint
        self._parser = parser  # None: steps only, by find_step
        self._on_metrics = on_metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if checkpoint_dir is not None:
            latest = self._scan_checkpoints(report=False)
            if latest is not None:
                self.resumed_from_step = latest.step

    # --- fed by the pumps -------------------------------------------------------------------

    def saw_output(self) -> None:
        self.last_output = time.monotonic()

    # --- the follower -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="logbook-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Read what is left of the logs, then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.read_logs(final=True)
        self._scan_checkpoints(report=True)

    def last_activity(self) -> float:
        """Monotonic time of the last output, step or checkpoint."""
        return max(self.last_output, self.last_step_mono, self.checkpoint_mono)

    def _follow(self) -> None:
        try:  # Linux niceness is per thread: parsing yields the CPU to the command and the passthrough
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
        except (OSError, AttributeError):
            pass
        next_ckpt = time.monotonic() + CHECKPOINT_EVERY_S
        while not self._stop.wait(READ_EVERY_S):
            try:
                self.read_logs()
                if self._ckpt_dir is not None and time.monotonic() >= next_ckpt:
                    next_ckpt = time.monotonic() + CHECKPOINT_EVERY_S
                    self._scan_checkpoints(report=True)
            except Exception:  # a bug here must never touch the training
                continue

    def read_logs(self, final: bool = False) -> None:
        """Scan what the logs gained since the last call, in bounded chunks. When the command
        prints faster than we scan (a flood of output), jump to the last TAIL_BYTES and count what
        was skipped: progress needs the newest lines, and the wrapper must never fall minutes
        behind, hold the backlog in memory, or take CPU from the command (#2 benchmarks)."""
        for path in self._paths:
            try:
                with open(path, "rb") as f:
                    while True:
                        size = os.fstat(f.fileno()).st_size
                        offset = self._offsets[path]
                        # At the end the wrapper waits for us: never more than a tail's worth.
                        if size - offset > (2 * TAIL_BYTES if final else SKIP_AHEAD_BYTES):
                            self.skipped_bytes += size - TAIL_BYTES - offset
                            offset = self._offsets[path] = size - TAIL_BYTES
                            self._partial[path] = b""
                            self._resync[path] = True
                        f.seek(offset)
                        data = f.read(MAX_READ)
                        if not data:
                            break
                        self._offsets[path] += len(data)
                        self._take(path, data, final and len(data) < MAX_READ)
                        if not final:
                            break
            except OSError:
                continue

    def _take(self, path: Path, data: bytes, last: bool) -> None:
        if self._resync[path]:  # after a jump we are mid-line: start at the next one
            cut = data.find(b"\n")
            if cut < 0:
                return
            data, self._resync[path] = data[cut + 1 :], False
        data = self._partial[path] + data
        cut = data.rfind(b"\n")
        if cut < 0 and not last:
            self._partial[path] = data[-65536:]  # a line with no end yet; keep it bounded
            return
        lines, self._partial[path] = (
            (data, b"") if last or cut < 0 else (data[: cut + 1], data[cut + 1 :])
        )
        self._scan_lines(lines)

    def _scan_lines(self, chunk: bytes) -> None:
        stamp, mono = _now(), time.monotonic()
        self.last_output_time = stamp
        for line in chunk.split(b"\n"):
            if not line:
                continue
            line = (
                line.rsplit(b"\r", 1)[-1] if b"\r" in line else line
            )  # progress bars: the last redraw
            if b"esum" in line and (m := _RESUMED.search(line)):
                if self.resumed_from_step is None:
                    self.resumed_from_step = int(m.group(1))
                continue  # where it starts from is not progress
            if b"heckpoint" in line and (m := _SAVED.search(line)):
                self._saw_checkpoint(Checkpoint(int(m.group(1)), stamp, None))
                continue
            parsed = self._parser.parse(line) if self._parser is not None else None
            step = (
                parsed.step
                if parsed is not None
                else find_step(line)
                if self._parser is None
                else None
            )
            if step is not None:
                if self.first_step is None:
                    self.first_step, self.first_step_time = step, stamp
                if self.last_step is None or step != self.last_step:
                    self.last_step_mono = mono
                self.last_step, self.last_step_time = step, stamp
            if parsed is not None and parsed.values and self._on_metrics is not None:
                self._on_metrics(step if step is not None else self.last_step, parsed.values, stamp)

    def _saw_checkpoint(self, ckpt: Checkpoint) -> None:
        # The same checkpoint is often both announced in the output and seen in the folder.
        same = (
            self.checkpoint is not None
            and ckpt.step is not None
            and ckpt.step == self.checkpoint.step
        )
        self.checkpoint = ckpt if not same or ckpt.path else self.checkpoint
        self.checkpoint_mono = time.monotonic()
        if self._on_checkpoint is not None and not same:
            self._on_checkpoint(ckpt)

    def _scan_checkpoints(self, *, report: bool) -> Checkpoint | None:
        """The newest checkpoint in --checkpoint-dir; new ones are reported as seen."""
        if self._ckpt_dir is None:
            return None
        try:
            entries = [
                (e.name, e.stat().st_mtime)
                for e in os.scandir(self._ckpt_dir)
                if not e.name.startswith(".")
            ]
        except OSError:
            return None
        newest: Checkpoint | None = None
        for name, mtime in sorted(entries, key=lambda x: x[1]):
            step = _step_of_checkpoint(self._ckpt_dir / name)
            ckpt = Checkpoint(
                step, datetime.fromtimestamp(mtime, timezone.utc), str(self._ckpt_dir / name)
            )
            if report and self._ckpt_seen.get(name) != mtime:
                if ckpt.step is None:
                    ckpt.step = self.last_step  # a name with no number: the step we were at
                self._saw_checkpoint(ckpt)
            self._ckpt_seen[name] = mtime
            newest = ckpt
        return newest


def _step_of_checkpoint(path: Path) -> int | None:
    """checkpoint-1200, step_1200.pt, global_step1200/ -> 1200; a small JSON with "step" -> its value."""
    m = _NUMBER_IN_NAME.search(path.name.split(".")[0])
    if m:
        return int(m.group(1))
    if path.suffix == ".json":
        try:
            import json

            if path.stat().st_size < 1 << 20:
                value = json.loads(path.read_text()).get("step")
                return int(value) if isinstance(value, (int, float)) else None
        except (OSError, ValueError, AttributeError):
            return None
    return None
