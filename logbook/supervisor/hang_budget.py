"""How long an attempt may stay silent in its current phase before it is a hang, learned from the
run; and which steps are slow (#19).

What is learned, and from where:

- **Phases** (checkpoint_save, checkpoint_restore, evaluation, ...: `record/phases.py`): the
  longest duration seen, from this attempt's phases as they end and the run's earlier `phase`
  events (read once, off the command's path: `Session._recorded_phases`).
- **Training** (a step seen, no phase open): the longest silence between two outputs (the pump's
  "o", so to 0.2 s), and the median time per step of the follower's readings (as `logbook goodput
  --steps` reads them: the steps first seen at one reading, over the time since the one before).
  This attempt's only: a relaunch may train at another pace.
- **Start-up** (no step yet) is not learned: a relaunch loads a checkpoint, a first launch does
  not, and caches may be cold. The ceiling applies, as NVIDIA's fault tolerance keeps a separate
  `initial_rank_heartbeat_timeout`.

The budget of a phase is SAFETY x the longest seen (nvidia-resiliency-ext computes its timeouts
as the longest observed interval times `safety_factor`, 5 by default); for training also at least
HANG_OF_SLOW x the slow-step threshold, so that a slow step is flagged well before it could be a
hang. It is never below the floor (half the ceiling, 1 s at least: a learned budget must not
turn a rare pause never yet seen, like an epoch's first batch or a save that prints nothing, into
a kill of a healthy training; a tenth let a silent 4-minute save die under a 30-minute ceiling)
and never above
the ceiling, the user's `--hang-timeout`; a phase never seen gets the ceiling. A learned budget
is rounded up to the whole second (output is timed to 0.2-0.5 s). The longest seen
only grows, so a budget never shrinks under a training that once paused longer.

A step is slow when a reading's slowest step (its time less the others' at the median) is at
least SLOW x the attempt's running median and SLOW_BY_S beyond it (the readings' own jitter,
as `query/goodput.py` judges `slow`); a slow step is an event and the `on_slow_step` hooks, never
a stop.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

SAFETY = 5.0  # x the longest duration seen (nvidia-resiliency-ext's safety_factor default)
SLOW = 10.0  # a step this many times the running median is slow...
SLOW_BY_S = 1.0  # ...and this much longer than it (query/goodput.py's SLOW_BY_S)
HANG_OF_SLOW = 2.0  # training's budget is at least this many times the slow-step threshold
FLOOR_SHARE, MIN_FLOOR_S = 0.5, 1.0  # a budget is at least this share of the ceiling, and 1 s
MIN_GAPS = 5  # silences between outputs in training before its budget is learned
MIN_READINGS = 3  # readings of steps before a running median is given (goodput's MEDIAN_OF)
MEDIAN_WINDOW = 101  # the running median is over this many latest readings
TRAINING, START_UP = "training", "start_up"


@dataclass(frozen=True)
class Budget:
    """How long the current phase may stay silent, and why."""

    seconds: float
    phase: str  # TRAINING, START_UP or one of record/phases.PHASES
    how: str  # in words, for the hang event and its hooks
    learned: bool

    def evidence(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "budget_s": round(self.seconds, 2),
            "budget": self.how,
            "learned": self.learned,
        }


@dataclass(frozen=True)
class SlowStep:
    """A reading whose slowest step was SLOW x the median or more."""

    step_s: float  # the slowest step's estimated time
    median_s: float
    steps: int  # steps the reading gained

    @property
    def ratio(self) -> float:
        return self.step_s / self.median_s if self.median_s > 0 else float("inf")

    def message(self, step: int) -> str:
        return (
            f"step {step} took {self.step_s:.1f} s, {self.ratio:.0f} x the median "
            f"{self.median_s:.2f} s"
        )

    def evidence(self) -> dict[str, Any]:
        """The `slow_step` event's data."""
        return {
            "step_s": round(self.step_s, 3),
            "median_s": round(self.median_s, 4),
            "ratio": round(self.ratio, 1),
            "steps": self.steps,
            "rule": f">= {SLOW:g} x the running median and {SLOW_BY_S:g} s beyond it",
        }


class HangBudget:
    """What one attempt has learned; fed by the log follower and the pump's pings (two threads:
    each update is a few assignments, and a reader sees the old value or the new)."""

    def __init__(self, ceiling_s: float | None) -> None:
        self.ceiling_s = ceiling_s
        self.floor_s = min(ceiling_s or 0.0, max(MIN_FLOOR_S, FLOOR_SHARE * (ceiling_s or 0.0)))
        self.longest: dict[str, float] = {}  # phase -> longest duration, this attempt
        self.seen: dict[str, int] = {}
        self.prior: dict[str, tuple[int, float]] = {}  # phase -> (count, longest), earlier ones
        self.gaps, self.longest_gap = 0, 0.0
        self._window: deque[float] = deque()
        self._sorted: list[float] = []

    def learn_prior(self, rows: list[dict[str, Any]]) -> None:
        """The run's earlier phases: rows of `phase` and `duration_s`."""
        prior: dict[str, tuple[int, float]] = {}
        for r in rows:
            phase, d = r.get("phase"), r.get("duration_s")
            if isinstance(phase, str) and isinstance(d, (int, float)) and d >= 0:
                n, longest = prior.get(phase, (0, 0.0))
                prior[phase] = (n + 1, max(longest, float(d)))
        self.prior = prior

    def saw_phase(self, phase: str, duration_s: float) -> None:
        self.seen[phase] = self.seen.get(phase, 0) + 1
        self.longest[phase] = max(self.longest.get(phase, 0.0), duration_s)

    def saw_gap(self, gap_s: float) -> None:
        """A silence between two outputs while training."""
        self.gaps += 1
        self.longest_gap = max(self.longest_gap, gap_s)

    @property
    def median_s(self) -> float | None:
        if len(self._sorted) < MIN_READINGS:
            return None
        return self._sorted[len(self._sorted) // 2]

    def saw_reading(self, gap_s: float, steps: int) -> SlowStep | None:
        """A reading that gained `steps` steps `gap_s` after the one before; the slow step it
        holds, judged against the readings before it."""
        if steps <= 0 or gap_s <= 0:
            return None
        median, slow = self.median_s, None
        if median is not None:
            slowest = gap_s - (steps - 1) * median  # the others at the median
            if slowest >= SLOW * median and slowest - median >= SLOW_BY_S:
                slow = SlowStep(slowest, median, steps)
        per_step = gap_s / steps
        bisect.insort(self._sorted, per_step)
        self._window.append(per_step)
        if len(self._window) > MEDIAN_WINDOW:
            self._sorted.pop(bisect.bisect_left(self._sorted, self._window.popleft()))
        return slow

    def budget(self, phase: str | None, stepping: bool) -> Budget:
        """The budget of `phase` (an open phase's name; None: training once `stepping`, else
        start-up)."""
        ceiling = self.ceiling_s or float("inf")
        if phase is not None:
            n_prior, longest_prior = self.prior.get(phase, (0, 0.0))
            n = self.seen.get(phase, 0) + n_prior
            if n == 0:
                return Budget(ceiling, phase, f"the ceiling: no {phase} seen yet in the run", False)
            longest = max(self.longest.get(phase, 0.0), longest_prior)
            how = (
                f"{SAFETY:g} x the longest of {n} {phase} phases seen ({longest:.1f} s; "
                f"{n_prior} in earlier attempts)"
            )
            return self._clamp(SAFETY * longest, phase, how)
        if not stepping:
            return Budget(ceiling, START_UP, "the ceiling: start-up is not learned", False)
        median = self.median_s
        if self.gaps < MIN_GAPS or median is None:
            return Budget(ceiling, TRAINING, "the ceiling: too few steps seen to learn", False)
        threshold = max(SLOW * median, median + SLOW_BY_S)
        how = (
            f"the larger of {SAFETY:g} x the longest silence of {self.gaps} in training "
            f"({self.longest_gap:.1f} s) and {HANG_OF_SLOW:g} x the slow-step threshold "
            f"({threshold:.2f} s: {SLOW:g} x the median step {median:.3f} s, "
            f"{SLOW_BY_S:g} s beyond it at least)"
        )
        return self._clamp(max(SAFETY * self.longest_gap, HANG_OF_SLOW * threshold), TRAINING, how)

    def _clamp(self, seconds: float, phase: str, how: str) -> Budget:
        ceiling = self.ceiling_s or float("inf")
        seconds = math.ceil(seconds)  # whole seconds: the watch times output to 0.2-0.5 s
        if seconds >= ceiling:
            return Budget(ceiling, phase, f"the ceiling ({how} is longer)", False)
        if seconds < self.floor_s:
            return Budget(
                self.floor_s,
                phase,
                f"the floor, {FLOOR_SHARE:g} x the ceiling and {MIN_FLOOR_S:g} s at least ({how} is shorter)",
                True,
            )
        return Budget(seconds, phase, how, True)
