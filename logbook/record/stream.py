"""Chunks of raw log -> metric points with their steps: the one path by which the live reader
(`supervisor/progress.py`), recovery (`record/recover.py`) and `logbook reparse` turn output into
points, so that they agree line for line.

Steps. A line's own step (`step 12`, `iter 12`) is the step; a progress bar's counter (`102/200`)
is the step only while the attempt has named no step of its own (#15: Transformers 5.x prints its
log dicts without a step, and the step is only in its tqdm bar). A point on a line with no step
gets the last step known, carried across chunks.

Junk gating (#15). Before the attempt's first step, a value on a line without a step may be a
config echo (`learning_rate = 1e6`, `number of parameters: 10.65M`) or a curve that prints no steps
(`print(f"loss={loss}")`). Such a value is held, one per name, and not recorded. A held name that
recurs on a line without a step is a curve: it becomes a metric, its held value included (at no
step). Names held when the first step comes stay candidates until the end (a dict on stdout may be
read before the bar on stderr that gives its step); those that never recur are settings of the
attempt, returned by `finish` (recorded as snapshots of kind `printed`).

The state of the gate is small (at most MAX_HELD names) and goes into the coverage file, so that
recovery after a kill goes on exactly where the live reader stopped: a held value is never lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.record.batch import ChunkParser

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.record.batch import ParsedChunk

MAX_HELD = 1000  # names held before the first step; beyond it, stepless values are dropped
MAX_LINE = 1 << 20  # a line with no end this long is no metric line: it is cut


def points_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("step", pa.int64()), ("name", pa.string()), ("value", pa.float64())])


@dataclass
class Fed:
    """What one chunk gave: its points (`step`, `name`, `value`), how many lines named a step,
    and which (`step_line`, numpy, ascending line indices) named which step (`step_value`)."""

    points: pa.Table
    step_lines: int
    lines: int
    step_line: Any = None
    step_value: Any = None

    def step_before(self, line: int, carried: int | None) -> int | None:
        """The last step named before `line` of the chunk (`carried`: the one before the chunk)."""
        import numpy as np

        if self.step_line is None:
            return carried
        k = int(np.searchsorted(self.step_line, line)) - 1
        return int(self.step_value[k]) if k >= 0 else carried


class MetricStream:
    """The points and steps of one attempt's logs, fed chunk by chunk (stdout and stderr in turn).

    Args:
        mode: the `--metrics` mode ("auto", "none", "regex:PATTERN").
        state: `state()` of a stream that parsed the logs so far (from the coverage file).

    Raises:
        ConfigError: a bad mode.
    """

    def __init__(self, mode: str = "auto", state: dict[str, Any] | None = None) -> None:
        self.mode = mode
        self.parser = ChunkParser(mode)
        s = state or {}
        self.first_step: int | None = _int(s.get("first_step"))
        self.last_step: int | None = _int(s.get("last_step"))
        self.own_steps = bool(s.get("own_steps"))
        gate = s.get("gate") or {}
        self.gating = bool(gate.get("gating", self.first_step is None))
        self.held: dict[str, float] = {
            str(k): float(v) for k, v in (gate.get("held") or {}).items()
        }
        self.recurring: set[str] = set(gate.get("recurring") or [])
        self.dropped_held = 0  # stepless values past MAX_HELD names, before any step

    def state(self) -> dict[str, Any]:
        """What a later stream needs to go on from here (JSON)."""
        return {
            "first_step": self.first_step,
            "last_step": self.last_step,
            "own_steps": self.own_steps,
            "gate": {
                "gating": self.gating,
                "held": dict(self.held),
                "recurring": sorted(self.recurring),
            },
        }

    def feed(self, data: bytes, *, skip_step_lines: frozenset[int] = frozenset()) -> Fed:
        """Parse whole lines (`data` ends at a line end); never raises for what the output holds.

        Args:
            skip_step_lines: lines whose step is not progress (a resume line names where the
                training starts from).
        """
        return self.feed_parsed(self.parser.parse(data), skip_step_lines=skip_step_lines)

    def feed_parsed(
        self, chunk: ParsedChunk, *, skip_step_lines: frozenset[int] = frozenset()
    ) -> Fed:
        """`feed` of a chunk already parsed (by a `ChunkParser` of this mode, maybe in another
        process: `record/parse_pool.py`)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        steps = chunk.steps
        if skip_step_lines and steps.num_rows:
            keep = pc.invert(pc.is_in(steps["line"], pa.array(sorted(skip_step_lines), pa.int32())))
            steps = steps.filter(keep)
        if steps.num_rows:
            own = pc.invert(steps["counter"])
            if pc.any(own).as_py():
                self.own_steps = True
            if self.own_steps:
                steps = steps.filter(own)
        s_line = steps["line"].to_numpy(zero_copy_only=False)
        s_step = steps["step"].to_numpy(zero_copy_only=False)
        points = chunk.points
        p_line = points["line"].to_numpy(zero_copy_only=False)
        # The step of each point: its line's, else the last named before it (in this chunk or
        # carried in from earlier ones).
        at = np.searchsorted(s_line, p_line, side="right") - 1
        known = at >= 0
        step_of = s_step[np.maximum(at, 0)] if len(s_step) else np.zeros(len(at), np.int64)
        carry = self.last_step
        if carry is not None:
            step_of = np.where(known, step_of, carry)
            mask = None
        else:
            mask = ~known
        step_arr = pa.array(step_of.astype(np.int64), pa.int64(), mask=mask)
        # A point on a line that names its own step is never gated; the others may be.
        own_line = np.zeros(len(p_line), bool)
        if len(s_line):
            pos = np.clip(np.searchsorted(s_line, p_line), 0, len(s_line) - 1)
            own_line = s_line[pos] == p_line
        table = pa.table(
            {"step": step_arr, "name": points["name"], "value": points["value"]},
            schema=points_schema(),
        )
        if len(s_step):
            if self.first_step is None:
                self.first_step = int(s_step[0])
            self.last_step = int(s_step[-1])
        if self.gating or self.held:
            first = int(s_line[0]) if len(s_line) else None
            table = self._gate(table, ~own_line, first, p_line)
        return Fed(table, len(s_step), chunk.lines, s_line, s_step)

    def _gate(
        self, table: pa.Table, stepless: Any, first_step_line: int | None, p_line: Any
    ) -> pa.Table:
        """Hold or release the values of lines without a step (see the module's docstring)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        names = table["name"]
        before = stepless.copy()
        if not self.gating:
            before[:] = False
        elif first_step_line is not None:
            before &= p_line < first_step_line
        released: list[tuple[str, float]] = []
        drop = np.zeros(len(before), bool)
        if before.any():
            pre_names = names.filter(pa.array(before))
            counts = pc.value_counts(pre_names)
            for entry in counts.to_pylist():
                name, n = entry["values"], entry["counts"]
                if name in self.recurring:
                    continue
                if name in self.held or n >= 2:
                    self.recurring.add(name)
                    if name in self.held:
                        released.append((name, self.held.pop(name)))
                    continue
                # Seen once: held, not recorded (yet).
                sel = np.flatnonzero(before & (names.to_numpy(zero_copy_only=False) == name))
                if len(self.held) < MAX_HELD:
                    self.held[name] = float(table["value"][int(sel[0])].as_py())
                else:
                    self.dropped_held += 1
                drop[sel] = True
        # Candidates held at the first step: released as metrics if they recur without a step.
        after = stepless & ~before
        if self.held and after.any():
            again = set(pc.unique(names.filter(pa.array(after))).to_pylist()) & set(self.held)
            for name in sorted(again):
                released.append((name, self.held.pop(name)))
        if first_step_line is not None and self.gating:
            self.gating = False  # the first step: stepless values are metrics at the last step
        if drop.any():
            table = table.filter(pa.array(~drop))
        if released:
            head = pa.table(
                {
                    "step": pa.nulls(len(released), pa.int64()),
                    "name": [n for n, _ in released],
                    "value": pa.array([v for _, v in released], pa.float64()),
                },
                schema=points_schema(),
            )
            table = pa.concat_tables([head, table])
        return table

    def finish(self) -> dict[str, float]:
        """The end of the logs: the held values that never recurred are settings (returned)."""
        settings, self.held = dict(self.held), {}
        self.gating = False
        return settings


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def last_line_end(data: bytes) -> int:
    """The offset just past the last line end in `data` (`\\n` or `\\r`); 0 if there is none."""
    return max(data.rfind(b"\n"), data.rfind(b"\r")) + 1


def line_start(path: Path, offset: int) -> int:
    """`offset` if a line starts there, else where the next one does (a stretch that starts
    mid-line follows a skip of an older recorder, whose parse finished that line)."""
    if offset == 0:
        return 0
    with open(path, "rb") as f:
        f.seek(offset - 1)
        if f.read(1) in (b"\n", b"\r"):
            return offset
        rest = f.read(MAX_LINE)
    ends = [i for i in (rest.find(b"\n"), rest.find(b"\r")) if i >= 0]
    return offset + (min(ends) + 1 if ends else len(rest))


def interleaved(
    stretches: dict[str, tuple[Path, list[tuple[int, int]]]],
    chunk_bytes: int = 4 << 20,
    deadline: float | None = None,
) -> Iterator[tuple[str, bytes, int]]:
    """Whole-line chunks of several logs' stretches, the logs in turn and in proportion to what
    each has left, so that a step one log names (a bar on stderr) reaches the points of the other
    (dicts on stdout) about when it did live: (log name, chunk, offset its whole lines reach).

    Stops early at `deadline` (monotonic). Raises OSError if a log cannot be read.
    """
    files = {name: open(path, "rb") for name, (path, _) in stretches.items()}  # noqa: SIM115
    try:
        todo = {name: sorted(s) for name, (_, s) in stretches.items() if s}
        pos = {name: todo[name][0][0] for name in todo}
        rest = {name: b"" for name in todo}
        while todo:
            left = {n: sum(b - a for a, b in todo[n]) - (pos[n] - todo[n][0][0]) for n in todo}
            total = max(sum(left.values()), 1)
            for name in list(todo):
                if deadline is not None and time.monotonic() > deadline:
                    return
                start, end = todo[name][0]
                want = max(64 << 10, int(chunk_bytes * left[name] / total))
                f = files[name]
                f.seek(pos[name])
                data = f.read(min(want, end - pos[name]))
                pos[name] += len(data)
                done = not data or pos[name] >= end
                if done and data:  # finish the line that crosses the stretch's end
                    data += f.readline(MAX_LINE)
                data = rest[name] + data
                cut = len(data) if done else last_line_end(data)
                if not done and cut == 0 and len(data) > MAX_LINE:
                    cut = len(data)  # no line end in sight: not a metric line, cut it
                rest[name] = data[cut:]
                if cut:
                    yield name, data[:cut], pos[name] - len(rest[name])
                if done:
                    todo[name].pop(0)
                    rest[name] = b""
                    if todo[name]:
                        pos[name] = todo[name][0][0]
                    else:
                        del todo[name]
    finally:
        for f in files.values():
            f.close()
