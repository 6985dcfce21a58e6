"""Phases: the stretches of an attempt that are not training steps (#19), as `phase` events.

A phase is one of PHASES. It comes from three places, each an event of kind `phase` whose time is
the phase's start and whose data holds `phase`, `duration_s`, `end` and `how` (output, api,
callback):

- the trainers' own lines in the output (`PhaseMarks`, fed by the wrapper's parse): a start line
  opens a phase, which lasts until an end line, the next step line, the next phase's start line or
  the attempt's end. Lines are timed when the wrapper reads them (every 0.5 s while output flows),
  so a phase is known to about half a second, and one that ends at the next step line includes
  that step's own time;
- `with logbook.phase("checkpoint_save"):` in the training (logbook/api.py);
- the Transformers and Lightning callbacks (logbook/integrations).

The lines read (each cited from the library that prints it):

- Transformers: `Saving model checkpoint to DIR` (transformers/trainer.py, `_save_checkpoint`),
  `Loading model from DIR.` (its resume, `_load_from_checkpoint`), and 4.x's
  `***** Running Evaluation *****` (`evaluation_loop`; 5.x prints no start of evaluation);
- Lightning: `Restoring states from the checkpoint path at PATH` until `Restored all states from
  the checkpoint at PATH` (lightning/pytorch/trainer/connectors/checkpoint_connector.py), and its
  tqdm validation bar `Validation DataLoader 0:` (callbacks/progress/tqdm_progress.py);
- Megatron-LM: `saving checkpoint at iteration N to DIR` until `successfully saved checkpoint
  from iteration N to DIR`, `loading checkpoint from DIR at iteration N` (also `loading release
  checkpoint`) until `successfully loaded checkpoint from DIR`, and `validation loss at iteration
  N`, printed when the evaluation ends: that one closes an evaluation from the step line before it.

Compilation and data loading have no reliable line (torch._dynamo says nothing by default): they
come from the API and the callbacks only.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The vocabulary of phases (README, `logbook goodput`). Start-up (launch to the first step) is
# not a phase: goodput finds it from the first step's time.
PHASES = ("checkpoint_save", "checkpoint_restore", "evaluation", "compilation", "data_loading")

# (pattern, phase, what the line does): start opens the phase, end closes it (from its start, or
# from the last step line when none is open: Megatron's validation line), both case-blind.
_MARKS: tuple[tuple[re.Pattern[bytes], str, str], ...] = (
    (re.compile(rb"successfully saved checkpoint", re.I), "checkpoint_save", "end"),
    (re.compile(rb"successfully loaded checkpoint", re.I), "checkpoint_restore", "end"),
    (re.compile(rb"restored all states from", re.I), "checkpoint_restore", "end"),
    (
        re.compile(rb"\bsaving (?:model )?checkpoint (?:to|at iteration)\b", re.I),
        "checkpoint_save",
        "start",
    ),
    (
        re.compile(
            rb"\b(?:loading model from|restoring states from the checkpoint"
            rb"|loading (?:release )?checkpoint from)\b",
            re.I,
        ),
        "checkpoint_restore",
        "start",
    ),
    (
        re.compile(rb"\*+ Running Evaluation \*+|\bValidation DataLoader \d+:"),
        "evaluation",
        "start",
    ),
    (re.compile(rb"\bvalidation loss at iteration\b"), "evaluation", "end"),
)
# What every marked line holds, as the trainers print them (every save and restore line names a
# checkpoint but Transformers' `Loading model from`): the wrapper finds the lines that hold one
# in the same search of a chunk as the save lines (logbook/record/keyword_lines.py), so a chunk
# without them pays nothing more here.
KEYWORDS = (
    b"heckpoint",
    b"Running Evaluation",
    b"Validation DataLoader",
    b"validation loss at",
    b"Loading model from",
)


@dataclass
class Phase:
    """One phase that has ended."""

    phase: str
    start: datetime
    end: datetime
    step: int | None
    marker: str

    @property
    def duration_s(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())

    def data(self, how: str) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "duration_s": round(self.duration_s, 3),
            "end": self.end.isoformat(),
            "how": how,
            "marker": self.marker,
        }


def marked_lines(found: list[tuple[int, bytes]]) -> list[tuple[int, str, str, bytes]]:
    """The phase lines among `found`, the (index, line) of a chunk's lines that hold one of
    KEYWORDS (logbook/record/keyword_lines.py): (index, phase, start or end, line)."""
    out = []
    for i, line in found:
        if not any(k in line for k in KEYWORDS):
            continue
        for pattern, phase, what in _MARKS:
            if pattern.search(line):
                out.append((i, phase, what, line))
                break
    return out


class PhaseMarks:
    """The phases an attempt's output shows, fed chunk by chunk in the order of the lines."""

    def __init__(self) -> None:
        self.open: tuple[str, datetime, int | None, str] | None = None
        self.last_step_at: datetime | None = None

    def feed(
        self,
        marks: list[tuple[int, str, str, bytes]],
        step_lines: list[int],
        stamp: datetime,
        last_step: int | None,
        step_at: Callable[[int], int | None] | None = None,
    ) -> list[Phase]:
        """The phases ended by this chunk (read at `stamp`); `step_lines`: the indexes of its
        lines that named a step, in order; `step_at`: the last step before a line of the chunk
        (else `last_step`, the step before the chunk). Never raises."""
        done: list[Phase] = []
        try:
            first_step = step_lines[0] if len(step_lines) else None
            for i, phase, what, line in marks:
                if first_step is not None and first_step < i:
                    self._close(done, stamp)  # a step between the last mark and this one
                text = line.decode(errors="replace").strip()[:200]
                # a chunk can hold steps before the mark: a save names the last of them
                step = step_at(i) if step_at is not None else last_step
                if what == "start":
                    if self.open is not None and self.open[0] == phase:
                        continue  # the same bar redrawn, a second line of one save
                    self._close(done, stamp)
                    self.open = (phase, stamp, step, text)
                elif self.open is not None and self.open[0] == phase:
                    self._close(done, stamp)
                elif self.open is None and self.last_step_at is not None:
                    done.append(Phase(phase, self.last_step_at, stamp, step, text))
                k = bisect.bisect_right(step_lines, i)  # the first step line after this one
                first_step = step_lines[k] if k < len(step_lines) else None
            if first_step is not None:
                self._close(done, stamp)
            if step_lines:
                self.last_step_at = stamp
        except Exception:  # a bug here must never touch the training
            pass
        return done

    def finish(self, at: datetime | None) -> list[Phase]:
        """The phase still open when the attempt ended, ended at `at` (its last output)."""
        done: list[Phase] = []
        if at is not None:
            self._close(done, at)
        return done

    def _close(self, done: list[Phase], at: datetime) -> None:
        if self.open is not None:
            phase, start, step, text = self.open
            done.append(Phase(phase, start, max(at, start), step, text))
            self.open = None
