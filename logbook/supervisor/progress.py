"""What the wrapper knows of the training's progress: when it last printed, which step it is at,
which checkpoint it last saved, and the step it resumed from.

It reads the raw logs behind the passthrough (never in its way) and parses them in whole chunks
(`record/stream.py`, the path recovery and `logbook reparse` take too), and, with
--checkpoint-dir, looks at that folder every CHECKPOINT_EVERY_S (checkpoints.py).

It never skips output (#15): under a flood it falls behind and catches up in chunks sized to
about CHUNK_S of parsing each. When the command has ended it parses what is left if that fits in
`end_budget_s`, writing included (the job's exit is never held longer by parsing; a rest that
cannot fit is not started, so a flood's end holds the exit for nothing), and says in `unparsed`
what it left: the coverage file names it, and it is parsed off the path of the job
(`record/finish.py`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.record import phases
from logbook.record.keyword_lines import KeywordLines
from logbook.record.parsers import MAX_LINE as MAX_LINE_READ
from logbook.record.phase_marks import PhaseMarksFile
from logbook.record.stream import MAX_LINE, Fed, MetricStream, last_line_end
from logbook.supervisor.checkpoints import KEYWORDS as CHECKPOINT_KEYWORDS
from logbook.supervisor.checkpoints import Checkpoint, CheckpointMemory, Checkpoints
from logbook.supervisor.hang_budget import Budget, HangBudget, SlowStep

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.record.parsers import LineParser

# The follower's wait policy. While output flows it reads every READ_EVERY_S (a chunk per read:
# parsing batches, and a flood costs the command little CPU). Once output has stopped for
# RECENT_S (the pump says "o" at most every 0.2 s, and before the bytes reach the log) it sleeps
# until the next "o" wakes it, or IDLE_READ_S at most (a belt, should a ping be lost), or the next
# checkpoint scan: an idle wrapper must cost next to nothing (benchmarks/bench.py, quiet).
READ_EVERY_S = 0.5
RECENT_S = 2.0
IDLE_READ_S = 10.0
CHECKPOINT_EVERY_S = 5.0  # the checkpoint folder is looked at this often while no output flows
CHUNK_S = 0.2  # a chunk is sized to about this much parsing: the end and a stop wait no longer
MIN_READ, MAX_READ = 256 << 10, 768 << 10  # bytes per read of a log (the engine needs ~8x that;
# chaos.py hostile-output, aim < 150 MB peak RSS: 155 at 2 MiB, 148 at 1 MiB, later 151-155 at
# 1 MiB, 143-146 at 768 KiB, 140-146 at 512; bench.py's buffered python child 1.00 at 768 KiB)
MIN_TURN = 64 << 10  # bytes read from a log with a little left, beside one with a flood
END_BUDGET_S = 1.0  # after the command ends, parse for at most this long (#15)
END_RESERVE = 0.15  # of the budget, kept for the last part and the coverage after the parse
PRIOR_RATE = 25e6  # bytes/s parsed and written, until a chunk is measured (~27 for bench.py's
# python child: 42 MB/s parsed, a part of 200,000 points written every 4 MiB)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Progress:
    """Progress of one attempt, updated by the pumps (output activity) and by a follower thread.

    Args:
        on_metrics: called with each chunk's points (a table of `step`, `name`, `value`), the
            time they were read and the log's name (`stdout`, `stderr`).
        on_settings: called once at the end with the values printed before the first step that
            never recurred (a config echo: settings, not metrics).
        end_budget_s: how long `stop` may parse what the command left (--catch-up).
        on_steps: called with each chunk's steps and the time they were read.
    """

    def __init__(
        self,
        log_paths: list[Path],
        checkpoint_dir: Path | None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        parser: LineParser | None = None,
        on_metrics: Callable[[pa.Table, datetime, str], None] | None = None,
        end_budget_s: float = END_BUDGET_S,
        on_parsed: Callable[[dict[str, Any]], None] | None = None,
        on_settings: Callable[[dict[str, float]], None] | None = None,
        checkpoint_patterns: list[str] | None = None,
        checkpoint_memory: CheckpointMemory | None = None,
        on_phase: Callable[[phases.Phase], None] | None = None,
        hang_budget: HangBudget | None = None,
        on_slow_step: Callable[[int, SlowStep], None] | None = None,
        on_steps: Callable[[Any, datetime], None] | None = None,
        phase_marks: Path | None = None,
    ) -> None:
        self.started = time.monotonic()
        self.last_output = self.started  # monotonic; written by the pumps, read by the hang watch
        self.last_output_time: datetime | None = None
        self.first_step: int | None = None
        self.last_step: int | None = None
        self.first_step_time: datetime | None = None
        self.last_step_time: datetime | None = None
        self.last_step_mono = self.started
        self._paths = log_paths
        self._offsets = {p: 0 for p in log_paths}
        self._partial = {p: b"" for p in log_paths}
        self._on_parsed = on_parsed  # told the coverage after each chunk, in the parsing thread
        self.end_budget_s = end_budget_s
        self.end_parse_s = 0.0  # how long `stop` parsed after the command ended
        self.handed_over = False  # `stop` left the whole rest to the background: it could not fit
        self.unparsed: dict[str, int] = {}  # log -> bytes left unparsed by `stop`
        self.parsed_lines = 0
        self._ckpt_dir = checkpoint_dir
        self.checkpoints = Checkpoints(
            checkpoint_dir, on_checkpoint, checkpoint_patterns, checkpoint_memory, log_paths
        )
        # Without a parser (--metrics none), steps only.
        self.stream = MetricStream(parser.mode if parser is not None else "none")
        self._on_metrics = on_metrics
        self._on_settings = on_settings
        self._on_phase = on_phase
        self.phases = phases.PhaseMarks()  # checkpoint saves, evaluations... in the output (#19)
        # What the hang watch learns of this attempt's phases and steps (#19): fed here.
        self.hang_budget = hang_budget
        self._on_slow_step = on_slow_step
        self._last_reading: float | None = None  # monotonic time of the last reading of steps
        self._watching: tuple[float, Callable[[], None]] | None = None  # the hang watch's wake
        self._keyword_lines = KeywordLines(
            CHECKPOINT_KEYWORDS + (phases.KEYWORDS if on_phase is not None else ())
        )
        self._on_steps = on_steps  # each chunk's steps and when they were read (#19, node_steps)
        # The phases the API marks (`with logbook.phase(...)`), for the hang watch (#19).
        self.api_phases = PhaseMarksFile(phase_marks) if phase_marks is not None else None
        self._read = MIN_READ  # bytes per read, sized to CHUNK_S of parsing
        self._lock = threading.Lock()  # one parser at a time: the follower, or `stop`
        self._commit = threading.Lock()  # a parsed chunk is committed whole, or dropped
        self._abandoned = False  # `stop` gave up on the follower's chunk in flight
        self._state = self.stream.state()  # of the parse, as of the last chunk committed
        self._rate = PRIOR_RATE  # bytes parsed and written per CPU-second, as lately measured
        self._stop = threading.Event()
        self._wake = threading.Event()  # output seen, or stop: the idle follower reads at once
        self._thread: threading.Thread | None = None
        self._niced = False  # the follower yields the CPU once output floods (`_yield_cpu`)

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint on record (checkpoints.py)."""
        return self.checkpoints.latest

    @property
    def resumed_from_step(self) -> int | None:
        return self.checkpoints.resume(self.first_step)[0]

    @property
    def resume_source(self) -> str | None:
        """What gave resumed_from_step: the output's line, the checkpoint's name, ..."""
        return self.checkpoints.resume(self.first_step)[1]

    # --- fed by the pumps -------------------------------------------------------------------

    def saw_output(self) -> None:
        now = time.monotonic()
        if self.hang_budget is not None and self.last_step is not None and self.phases.open is None:
            try:  # in the passthrough's thread: nothing here may ever stop the output
                self.hang_budget.saw_gap(now - self.last_output)  # a silence while training
            except Exception:
                pass
        self.last_output = now
        self._wake.set()

    # --- the hang watch (#19) -----------------------------------------------------------------

    def hang_budget_now(self) -> Budget | None:
        """How long the phase the output shows now may stay silent (None: not learning)."""
        if self.hang_budget is None:
            return None
        open_phase = self.phases.open
        try:
            phase = self._api_phase()  # the API's, else the output's
            if phase is None and open_phase is not None:
                phase = open_phase[0]
            return self.hang_budget.budget(phase, self.last_step is not None)
        except Exception:  # a bug here leaves the fixed timeout in force, never the watch down
            return None

    def _api_phase(self) -> str | None:
        """The phase the API says is open now, once what it marked since is read; the phases
        that ended meanwhile teach the budget their duration."""
        if self.api_phases is None:
            return None
        for phase, seconds in self.api_phases.poll():
            if self.hang_budget is not None:
                self.hang_budget.saw_phase(phase, seconds)
        return self.api_phases.current()

    def watch_until(self, deadline: float | None, wake: Callable[[], None]) -> None:
        """The hang watch sleeps until `deadline` (monotonic); `wake` it if what is parsed
        brings the deadline sooner (a phase ended, training's budget learned). None: stopped."""
        self._watching = (deadline, wake) if deadline is not None else None

    def _sooner(self) -> None:
        watching = self._watching
        budget = self.hang_budget_now() if watching is not None else None
        if watching is not None and budget is not None:
            if self.last_activity() + budget.seconds < watching[0] - 0.05:
                watching[1]()  # Wakeup.poke: never raises, nor blocks

    # --- the follower -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="logbook-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Parse what is left of the logs for at most `end_budget_s`, then stop; what is still
        unparsed is in `unparsed` (and the coverage)."""
        started = time.monotonic()
        # The rest of the budget: the last part and the coverage (`_parsed`), the checks.
        deadline = started + max(0.0, self.end_budget_s - END_RESERVE)
        self._stop.set()
        self._wake.set()
        if self._thread is not None and not self._fits(deadline):
            # A flood: the rest, the follower's chunk in flight included, goes to the background
            # finish whatever that chunk does; waiting for it (up to CHUNK_S of parsing) held
            # the exit for points the finish parses anyway.
            self.handed_over = True
        elif self._thread is not None:
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._thread is not None and self._thread.is_alive():
            with self._commit:  # its chunk in flight is dropped: the coverage stays before it
                self._abandoned = True
        elif self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                if self._fits(deadline):
                    self._read_all(final=True, deadline=deadline)
                else:
                    self.handed_over = True
            except Exception:  # a bug here must never hold or fail the end of the job
                pass
            finally:
                self._lock.release()
        self.unparsed = self._left()
        if not self.unparsed and not self._abandoned:
            self._settle()
        self._parsed()  # the coverage names every log, and how far each is parsed
        self._phases_ended(self.phases.finish(self.last_output_time))
        self.end_parse_s = time.monotonic() - started
        self.checkpoints.scan(final=True)

    def _fits(self, deadline: float) -> bool:
        """Can what the command left be parsed and written before `deadline`? If not, none of it
        is parsed here: a part of a flood on record at the exit is worth less than the second the
        exit would wait for it, and the background finish parses it all anyway."""
        left = sum(self._left().values())
        return left <= 0.8 * self._rate * max(0.0, deadline - time.monotonic())

    def last_activity(self) -> float:
        """Monotonic time of the last output, step or checkpoint."""
        marked = self.api_phases.last_mark if self.api_phases is not None else -float("inf")
        return max(self.last_output, self.last_step_mono, self.checkpoints.activity, marked)

    def _follow(self) -> None:
        next_ckpt = time.monotonic() + CHECKPOINT_EVERY_S
        while not self._idle_wait(next_ckpt if self._ckpt_dir is not None else None):
            try:
                self.read_logs()
                self.checkpoints.scan()  # a stat per entry; folders walked every few seconds
                next_ckpt = time.monotonic() + CHECKPOINT_EVERY_S
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
        """Parse what the logs gained since the last call, chunk by chunk, until caught up (or
        stopped: `stop` takes over)."""
        with self._lock:
            self._read_all(final=final, deadline=None)

    def _read_all(self, *, final: bool, deadline: float | None) -> None:
        busy = True
        while busy:  # the logs in turn, a chunk each, so that steps on stderr meet stdout's points
            busy = False
            sizes = self._chunk_sizes()
            for path in self._paths:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                if deadline is None and self._stop.is_set():
                    return
                try:
                    busy |= self._read_chunk(path, final, deadline, sizes.get(path, self._read))
                except OSError:
                    continue

    def _chunk_sizes(self) -> dict[Path, int]:
        """Bytes to read from each log this turn: in proportion to what each has left, as
        recovery's `interleaved` reads (#17). Equal sizes drifted apart under a flood: a log that
        prints more bytes a step (a bar on stderr) fell further behind each turn, so its points
        took steps the other log had reached long after, and the detectors saw old losses as
        spikes."""
        left: dict[Path, int] = {}
        for p in self._paths:
            try:
                left[p] = max(0, os.stat(p).st_size - self._offsets[p])
            except OSError:
                continue
        total = sum(left.values())
        if total <= 0:
            return {}
        turn = self._read * len(self._paths)
        return {
            p: int(min(MAX_READ, max(MIN_TURN, turn * n / total))) if n else self._read
            for p, n in left.items()
        }

    def _read_chunk(
        self, path: Path, final: bool, deadline: float | None = None, size: int | None = None
    ) -> bool:
        """Read and parse one chunk of `path` (`size` bytes at most); whether there may be more."""
        size = self._read if size is None else size
        if deadline is not None:  # at the end, no more than the time left can parse
            size = min(size, int(0.8 * self._rate * (deadline - time.monotonic())))
            if size < 16 << 10:
                return False
        with open(path, "rb") as f:
            f.seek(self._offsets[path])
            data = f.read(size)
        if not data:
            if final and self._partial[path]:  # the command's last line, which never ended
                self._take(path, b"", True)
            return False
        # CPU time, not wall: the follower yields to the command, and the end's rate is wanted.
        t0 = time.thread_time()
        self._take(path, data, final and len(data) < size)  # at the end, a last unended line
        with self._commit:  # a `stop` that gives up on this thread waits for the part under way:
            if self._abandoned:  # the end writes the coverage, then the process may exit, and a
                return False  # part still being written then was lost (its points counted parsed)
            self._parsed()  # writes a part every so many points: its cost is the parse's too
        took = time.thread_time() - t0
        if len(data) == size and not self._niced and threading.current_thread() is self._thread:
            self._yield_cpu()
        if len(data) >= 64 << 10 and took > 0:  # size the next read to CHUNK_S of parsing
            self._rate = 0.5 * self._rate + 0.5 * len(data) / took
            self._read = int(min(MAX_READ, max(MIN_READ, self._rate * CHUNK_S)))
        return len(data) == size

    def _yield_cpu(self) -> None:
        """A flood: from now on the follower yields the CPU to the command and the passthrough.
        Only then, and for good (an unprivileged thread cannot take its priority back): a
        follower niced from the start starved on a busy machine, the end's second ran out
        before its first chunk was parsed, and the steps a non-leading host saw were lost."""
        self._niced = True
        try:  # Linux niceness is per thread
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
        except (OSError, AttributeError):
            pass

    def _left(self) -> dict[str, int]:
        left = {}
        for p in self._paths:
            try:
                size = os.stat(p).st_size
            except OSError:
                continue
            to = self._offsets[p] - len(self._partial[p])
            if size > to:
                left[p.stem] = size - to
        return left

    def _settle(self) -> None:
        """Every line is parsed: the values held before the first step that never recurred are
        settings."""
        settings = self.stream.finish()
        self._state = self.stream.state()
        if settings and self._on_settings is not None:
            self._on_settings(settings)

    def coverage(self) -> dict[str, Any]:
        """How far the logs are parsed (see logbook/store/coverage.py), the steps seen, and the
        state of the parse (`record/stream.py`), for whoever parses the rest."""
        streams = {
            p.stem: {"to": self._offsets[p] - len(self._partial[p]), "holes": []}
            for p in self._paths
        }
        return {
            "streams": streams,
            "first_step": self.first_step,
            "first_step_time": self.first_step_time,
            "last_step": self.last_step,
            "last_step_time": self.last_step_time,
            "resumed_from_step": self.resumed_from_step,
            "resume_source": self.resume_source,
            **self._state,
        }

    def _phases_ended(self, ended: list[phases.Phase]) -> None:
        for p in ended:
            if self.hang_budget is not None:
                self.hang_budget.saw_phase(p.phase, p.duration_s)
            if self._on_phase is not None:
                self._on_phase(p)

    def _time_steps(self, mono: float, gained: int, clean: bool) -> None:
        """A reading that gained steps: timed against the reading before unless a phase came
        between them (`clean`), and judged slow or not (#19)."""
        last, self._last_reading = self._last_reading, mono
        if last is None or not clean or self.hang_budget is None:
            return
        try:  # inside a chunk's parse: a bug here must not cost its points
            slow = self.hang_budget.saw_reading(mono - last, gained)
            if slow is not None and self._on_slow_step is not None and self.last_step is not None:
                self._on_slow_step(self.last_step, slow)
        except Exception:
            pass

    def _parsed(self) -> None:
        if self._on_parsed is not None:
            self._on_parsed(self.coverage())

    def _take(self, path: Path, data: bytes, last: bool) -> None:
        whole = self._partial[path] + data
        cut = len(whole) if last else last_line_end(whole)
        if cut == 0 and len(whole) > MAX_LINE:
            cut = len(whole)  # a line with no end in sight is no metric line: parse it as it is
        stamp = _now()
        # A line with no end: the parser reads its first MAX_LINE_READ bytes only, so only those
        # go to it (the engine's memory is a few times what it is given).
        chunk = whole[:cut] if last_line_end(whole[:cut]) else whole[: min(cut, MAX_LINE_READ)]
        fed = self._scan_chunk(chunk, stamp) if cut else None
        with self._commit:  # the points, the offset and the state of the parse move together
            if self._abandoned:
                return
            self._offsets[path] += len(data)
            self._partial[path] = whole[cut:]
            self._state = self.stream.state()
            if fed is not None and fed.points.num_rows and self._on_metrics is not None:
                self._on_metrics(fed.points, stamp, path.stem)

    def _scan_chunk(self, chunk: bytes, stamp: datetime) -> Fed:
        mono = time.monotonic()
        self.last_output_time = stamp
        at = self.checkpoints.written_by(stamp.timestamp())  # dates a checkpoint's step
        # Save and resume lines: their steps are not progress; each is told the step before it.
        # One search of the chunk finds them and the phase lines (#19).
        found = self._keyword_lines.find(chunk)
        marked = self.checkpoints.marked_lines(found)
        skip = frozenset(i for i, _ in marked)
        before = self.stream.last_step
        fed = self.stream.feed(chunk, skip_step_lines=skip)
        self.parsed_lines += fed.lines
        for i, line in marked:
            self.checkpoints.saw_line(line, at, fed.step_before(i, before))
        in_phase = self.phases.open is not None
        marks = []
        if self._on_phase is not None:
            marks = phases.marked_lines(found) if found else []
            if marks or self.phases.open is not None or fed.step_lines:
                step_lines = fed.step_line.tolist() if marks else [0] * bool(fed.step_lines)
                ended = self.phases.feed(
                    marks, step_lines, stamp, before, lambda i: fed.step_before(i, before)
                )
                self._phases_ended(ended)
        if fed.step_lines:  # one time for the whole chunk: its last step is the one that counts
            self.checkpoints.saw_step(at, int(fed.step_value[-1]))
        if fed.step_lines:
            if self.first_step is None:
                self.first_step, self.first_step_time = self.stream.first_step, stamp
            if self.stream.last_step != before:
                self.last_step_mono = mono
            self.last_step, self.last_step_time = self.stream.last_step, stamp
            now = self.stream.last_step
            if now is not None and now != before:
                gained = now - before if before is not None else 0
                self._time_steps(mono, gained, before is not None and not marks and not in_phase)
            if self._on_steps is not None:
                try:  # a side record: it must never stop the chunk's commit
                    self._on_steps(fed.step_value, stamp)
                except Exception:
                    pass
        self._sooner()
        return fed
