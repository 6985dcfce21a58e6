"""What the wrapper knows of the training's progress: when it last printed, which step it is at,
which checkpoint it last saved, and the step it resumed from.

It reads the raw logs behind the passthrough (never in its way), parsing metrics from them, and,
with --checkpoint-dir, looks at that folder every CHECKPOINT_EVERY_S (checkpoints.py).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.supervisor.checkpoints import Checkpoint, FolderWatch

if TYPE_CHECKING:
    from logbook.record.parsers import LineParser

# `step=12`, `step: 12`, `global_step 12`, `iter 12`, `"step": 12`, Megatron `iteration   12/ 5000 |`.
_STEP = re.compile(
    rb"""(?:^|[\s,|{(\["'])(?:global_step|step|iteration|iter)["']?\s*[=:]?\s*(\d+)(?:\s*/\s*\d+)?(?=[\s,|})\]]|$)""",
    re.IGNORECASE,
)
_RESUMED = re.compile(rb"resum\w*\b[^\n]{0,80}?\bstep\D{0,3}(\d+)", re.IGNORECASE)
_SAVED = re.compile(
    rb"(?:sav\w*|wr[io]te?\w*)\b[^\n]{0,40}?checkpoint[^\n]{0,80}?\bstep\D{0,3}(\d+)", re.IGNORECASE
)
# The follower's wait policy. While output flows it reads every READ_EVERY_S (a chunk per read:
# parsing batches, and a flood costs the command little CPU). Once output has stopped for
# RECENT_S (the pump says "o" at most every 0.2 s, and before the bytes reach the log) it sleeps
# until the next "o" wakes it, or IDLE_READ_S at most (a belt, should a ping be lost), or the next
# checkpoint scan: an idle wrapper must cost next to nothing (benchmarks/bench.py, quiet).
READ_EVERY_S = 0.5
RECENT_S = 2.0
IDLE_READ_S = 10.0
CHECKPOINT_EVERY_S = 5.0
MAX_READ = (
    256 << 10
)  # bytes per log per read: about 60 ms of parsing, so a flood costs the command little CPU
SKIP_AHEAD_BYTES = 8 << 20  # a backlog larger than this is skipped...
TAIL_BYTES = 256 << 10  # ...but for its newest bytes
COUNT_S = 10.0  # then count the lines left unparsed for at most this long (else estimate)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def find_step(line: bytes) -> int | None:
    """The training step a log line reports, if it reports one."""
    m = _STEP.search(line)
    return int(m.group(1)) if m else None


class Progress:
    """Progress of one attempt, updated by the pumps (output activity) and by a follower thread."""

    def __init__(
        self,
        log_paths: list[Path],
        checkpoint_dir: Path | None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        parser: LineParser | None = None,
        on_metrics: Callable[[int | None, dict[str, float], datetime], None] | None = None,
        catch_up_s: float = 10.0,
        on_parsed: Callable[[dict[str, Any]], None] | None = None,
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
        self.skipped_bytes = 0  # output not scanned live because it came too fast
        self._skipped: list[tuple[Path, int, int, datetime]] = []  # (log, start, end, when)
        self._holes: list[tuple[Path, int, int]] = []  # skipped stretches not parsed yet
        self._on_parsed = on_parsed  # told the coverage after each chunk, in the parsing thread
        self.caught_up_lines = 0  # skipped lines parsed for metrics after the command ended
        self.unparsed_lines = 0  # skipped lines never parsed
        self.unparsed_estimated = False  # too many to count in COUNT_S: estimated from sizes
        self.catch_up_s = 0.0  # how long the catch-up took
        self._catch_up_budget = catch_up_s
        self._ckpt_dir = checkpoint_dir
        self._folder = FolderWatch(checkpoint_dir) if checkpoint_dir is not None else None
        self._announced: dict[int, tuple[Checkpoint, float]] = {}  # step -> (it, monotonic time)
        self._reported: set[int] = set()  # steps whose checkpoint is on record
        self._on_checkpoint = on_checkpoint
        self._parser = parser  # None: steps only, by find_step
        self._on_metrics = on_metrics
        self._stop = threading.Event()
        self._wake = threading.Event()  # output seen, or stop: the idle follower reads at once
        self._thread: threading.Thread | None = None
        if self._folder is not None and self._folder.latest_at_start is not None:
            self.resumed_from_step = self._folder.latest_at_start.step

    # --- fed by the pumps -------------------------------------------------------------------

    def saw_output(self) -> None:
        self.last_output = time.monotonic()
        self._wake.set()

    # --- the follower -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="logbook-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Read what is left of the logs, then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.read_logs(final=True)
        self._scan_checkpoints(final=True)
        if self._skipped:
            self._catch_up()

    def last_activity(self) -> float:
        """Monotonic time of the last output, step or checkpoint."""
        return max(self.last_output, self.last_step_mono, self.checkpoint_mono)

    def _follow(self) -> None:
        try:  # Linux niceness is per thread: parsing yields the CPU to the command and the passthrough
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
        except (OSError, AttributeError):
            pass
        next_ckpt = time.monotonic() + CHECKPOINT_EVERY_S
        while not self._idle_wait(next_ckpt if self._ckpt_dir is not None else None):
            try:
                self.read_logs()
                if self._ckpt_dir is not None and time.monotonic() >= next_ckpt:
                    next_ckpt = time.monotonic() + CHECKPOINT_EVERY_S
                    self._scan_checkpoints()
            except Exception:  # a bug here must never touch the training
                continue

    def _idle_wait(self, next_ckpt: float | None) -> bool:
        """Wait for the follower's next read (see READ_EVERY_S); True once stopped."""
        now = time.monotonic()
        if now - self.last_output < RECENT_S:
            return self._stop.wait(READ_EVERY_S)
        self._wake.clear()
        if time.monotonic() - self.last_output >= RECENT_S:  # no "o" since the clear: sleep
            until = min(now + IDLE_READ_S, next_ckpt if next_ckpt is not None else float("inf"))
            self._wake.wait(max(0.0, until - now))
        return self._stop.is_set()

    def read_logs(self, final: bool = False) -> None:
        """Scan what the logs gained since the last call, in bounded chunks. When the command
        prints faster than we scan (a flood of output), jump to the last TAIL_BYTES and count what
        was skipped: progress needs the newest lines, and the wrapper must never fall minutes
        behind, hold the backlog in memory, or take CPU from the command (benchmarks/)."""
        for path in self._paths:
            try:
                with open(path, "rb") as f:
                    while True:
                        size = os.fstat(f.fileno()).st_size
                        offset = self._offsets[path]
                        # At the end the wrapper waits for us: never more than a tail's worth.
                        if size - offset > (2 * TAIL_BYTES if final else SKIP_AHEAD_BYTES):
                            start = offset - len(self._partial[path])  # with the line cut short
                            self._skipped.append((path, start, size - TAIL_BYTES, _now()))
                            self._holes.append((path, start, size - TAIL_BYTES))
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
                        self._parsed()
                        if not final:
                            break
            except OSError:
                continue

    def _catch_up(self) -> None:
        """Parse the skipped stretches of the logs for metrics, now that the command has ended
        and the CPU is free, for at most --catch-up seconds; count the lines left (no metric line is
        dropped silently). Their points carry the time of the skip; their steps are their own."""
        started = time.monotonic()
        deadline = started + self._catch_up_budget
        for path, start, end, stamp in self._skipped:
            if self._parser is None or self._on_metrics is None or time.monotonic() > deadline:
                continue
            try:
                stopped_at = self._parse_stretch(path, start, end, stamp, deadline)
            except OSError:
                stopped_at = start
            self._holes = [h for h in self._holes if not (h[0] == path and h[2] == end)]
            if stopped_at < end:
                self._holes.append((path, stopped_at, end))
            self._parsed()
        left = list(self._holes)
        self.catch_up_s = time.monotonic() - started
        count_until = time.monotonic() + COUNT_S
        for path, start, end in left:
            counted, lines = _count_lines(path, start, end, count_until)
            lines += 1  # the line that crosses `end`, which the live reader skipped to the end of
            if counted < end - start:  # out of time: estimate from the bytes per line so far
                per_line = (counted / lines) if lines else 80.0
                lines += round((end - start - counted) / max(per_line, 1.0))
                self.unparsed_estimated = True
            self.unparsed_lines += lines

    def _parse_stretch(
        self, path: Path, start: int, end: int, stamp: datetime, deadline: float
    ) -> int:
        """Parse whole lines from `start` up to the line that crosses `end`; the offset reached."""
        parser, on_metrics = self._parser, self._on_metrics
        assert parser is not None and on_metrics is not None

        def line(text: bytes) -> None:
            self.caught_up_lines += 1
            parsed = parser.parse(_last_redraw(text))
            if parsed is not None and parsed.values:
                on_metrics(parsed.step, parsed.values, stamp)

        def chunk(offset: int) -> None:  # the hole shrinks as it is parsed: metrics flush in step
            hole = next((h for h in self._holes if h[0] == path and h[2] == end), None)
            if hole is not None:
                self._holes[self._holes.index(hole)] = (path, offset, end)
            self._parsed()

        return parse_stretch(path, start, end, line, deadline, on_chunk=chunk)

    def coverage(self) -> dict[str, Any]:
        """How far the logs are parsed (see logbook/store/coverage.py), and the steps seen."""
        streams = {
            p.stem: {
                "to": self._offsets[p] - len(self._partial[p]),
                "holes": [[a, b] for q, a, b in self._holes if q == p],
            }
            for p in self._paths
        }
        return {
            "streams": streams,
            "first_step": self.first_step,
            "first_step_time": self.first_step_time,
            "last_step": self.last_step,
            "last_step_time": self.last_step_time,
            "resumed_from_step": self.resumed_from_step,
        }

    def _parsed(self) -> None:
        if self._on_parsed is not None:
            self._on_parsed(self.coverage())

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
            line = _last_redraw(line)
            if b"esum" in line and (m := _RESUMED.search(line)):
                if self.resumed_from_step is None:
                    self.resumed_from_step = int(m.group(1))
                continue  # where it starts from is not progress
            if b"heckpoint" in line and (m := _SAVED.search(line)):
                self._announce(Checkpoint(int(m.group(1)), stamp, None, seen_by="output"))
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

    def _announce(self, ckpt: Checkpoint) -> None:
        """A save announced in the output. With --checkpoint-dir it waits for the folder to show
        the same step (one event, with the size); alone it is reported at once."""
        self.checkpoint_mono = time.monotonic()
        if self._folder is None:
            self._report(ckpt)
        elif ckpt.step not in self._reported:
            assert ckpt.step is not None  # _SAVED always has one
            self._announced.setdefault(ckpt.step, (ckpt, time.monotonic()))

    def _scan_checkpoints(self, *, final: bool = False) -> None:
        """Report the checkpoints complete in --checkpoint-dir, and announcements the folder did
        not confirm in time (a file rewritten in place may already hold a later step)."""
        if self._folder is None:
            return
        done, busy = self._folder.scan(time.time(), final=final)
        if busy:  # a long save with no output is not a hang
            self.checkpoint_mono = time.monotonic()
        for ckpt in done:
            if ckpt.step is None:
                ckpt.step = self.last_step  # a name with no number: the step we were at
        confirmed = {c.step for c in done if self._announced.pop(c.step or -1, None) is not None}
        late = time.monotonic() - 2 * CHECKPOINT_EVERY_S
        for step, (ckpt, seen) in sorted(self._announced.items()):
            if final or seen < late:
                del self._announced[step]
                self._report(ckpt)
        for ckpt in done:
            if ckpt.step in confirmed:
                ckpt.seen_by = "folder+output"
            self._report(ckpt)

    def _report(self, ckpt: Checkpoint) -> None:
        if ckpt.step is not None:
            if ckpt.step in self._reported:
                return
            self._reported.add(ckpt.step)
        latest = self.checkpoint
        if latest is None or latest.step is None or (ckpt.step or 0) >= latest.step:
            self.checkpoint = ckpt
        self.checkpoint_mono = time.monotonic()
        if self._on_checkpoint is not None:
            self._on_checkpoint(ckpt)


def parse_stretch(
    path: Path,
    start: int,
    end: int,
    on_line: Callable[[bytes], None],
    deadline: float | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Hand each whole line from `start` up to the line that crosses `end` to `on_line`; return
    the offset reached (a line's start when `deadline`, a monotonic time, cuts it short).

    Raises:
        OSError: the log cannot be read.
    """
    with open(path, "rb") as f:
        f.seek(start)
        offset, rest = start, b""
        while offset < end:
            if deadline is not None and time.monotonic() > deadline:
                return offset - len(rest)
            data = f.read(min(MAX_READ, end - offset))
            if not data:
                break
            offset += len(data)
            if offset >= end:  # finish the line the live reader skipped to the end of
                data += f.readline(65536)
            chunk = rest + data
            cut = chunk.rfind(b"\n") + 1
            chunk, rest = chunk[:cut], chunk[cut:]
            if len(rest) > 65536:  # a line with no end in sight: not a metric line
                rest = b""
            for line in chunk.split(b"\n"):
                if line:
                    on_line(line)
            if on_chunk is not None:  # every line before this offset has been handed over
                on_chunk(min(offset - len(rest), end))
        if rest:  # the last line of a log whose writer is gone, without its newline
            on_line(rest)
    return end


def _count_lines(path: Path, start: int, end: int, until: float) -> tuple[int, int]:
    """(bytes counted, newlines in them) of a stretch of a file, stopping at `until`."""
    counted = lines = 0
    try:
        with open(path, "rb") as f:
            f.seek(start)
            while counted < end - start and time.monotonic() < until:
                data = f.read(min(1 << 20, end - start - counted))
                if not data:
                    break
                counted, lines = counted + len(data), lines + data.count(b"\n")
    except OSError:
        pass
    return counted, lines


def _last_redraw(line: bytes) -> bytes:
    """A progress bar's line holds every redraw, `\\r` apart: the last one is what shows."""
    return line.rsplit(b"\r", 1)[-1] if b"\r" in line else line
