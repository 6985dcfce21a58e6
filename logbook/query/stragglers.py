"""Stragglers (#19): a host of a launch over several hosts persistently slower than the others,
found by comparing when each host saw the same steps (the `node_steps` table).

At each step that every host of the attempt printed, a host's step time is the time it took over
the last WINDOW of those common steps, per step: the wrapper dates a step when it reads its line
(every half second while output flows), and a window smooths that out. Steps read together in one
chunk share its date, which is true only of the last of them: a backlog (the lines a child printed
while its wrapper was still starting, or under load) would read as steps taking no time and then
one taking all of it. So a host's time at a step is interpolated between the last steps of its
chunks, and steps before its first chunk's last are not judged. The host is compared with
the median of the other hosts at the same step. It straggles when it is at least RATIO times as
slow on at least SHARE of the last LAST common steps, with at least MIN_STEPS of them compared.

In a synchronous data-parallel job every rank waits for the slowest at each collective, so hosts
that print their own steps print them together; what this finds is a host whose printed progress
lags (its own loop, its data loading, its output): a rank that prints its step after its own
compute, or loosely coupled workers.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

WINDOW = 5  # common steps a step time is measured over
LAST = 20  # common steps judged: the attempt's last ones
RATIO = 1.2  # this many times the other hosts' median is slow
SHARE = 0.8  # of the judged steps, this share slow makes a straggler
MIN_STEPS = 5  # fewer judged steps: no verdict


@dataclass(frozen=True)
class HostPace:
    """One host's pace against the others' in one attempt."""

    attempt_id: str
    node: int
    host: str | None
    steps: int  # common steps judged
    slow_steps: int  # of them, those where it was at least RATIO times the others' median
    step_s: float | None  # its median step time over the judged steps (s)
    others_step_s: float | None  # the other hosts' median step time over them (s)
    ratio: float | None  # median of its step time over the others' median, step by step
    straggler: bool

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def host_paces(
    rows: Iterable[Mapping[str, Any]],
    *,
    window: int = WINDOW,
    last: int = LAST,
    ratio: float = RATIO,
    share: float = SHARE,
    min_steps: int = MIN_STEPS,
) -> list[HostPace]:
    """Each host's pace against the others', for every attempt with two hosts or more on record.

    Args:
        rows: `node_steps` rows (attempt_id, node, host, step, time).

    Returns:
        One HostPace a host of each such attempt, by attempt and node; a host with no verdict
        (too few common steps) has `steps` below `min_steps`, null times and `straggler` False.
    """
    seen: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    hosts: dict[tuple[str, int], str | None] = {}
    for r in rows:
        at = seen[r["attempt_id"]][int(r["node"])]
        t = r["time"].timestamp()
        step = int(r["step"])
        at[step] = min(t, at.get(step, t))  # a step seen twice (a part written twice) counts once
        hosts[(r["attempt_id"], int(r["node"]))] = r.get("host")
    out: list[HostPace] = []
    for attempt_id in sorted(seen):
        by_node = seen[attempt_id]
        if len(by_node) < 2:
            continue
        dated = {node: _chunk_ends(steps) for node, steps in by_node.items()}
        common = sorted(
            set.intersection(
                *(
                    {s for s in steps if dated[node][0][0] <= s <= dated[node][-1][0]}
                    for node, steps in by_node.items()
                )
            )
        )
        times = {node: {s: _at(dated[node], s) for s in common} for node in by_node}
        judged = range(max(window, len(common) - last), len(common))
        for node in sorted(by_node):
            mine, theirs, ratios, slow = [], [], [], 0
            for i in judged:
                own = _pace(times[node], common, i, window)
                med = statistics.median(
                    _pace(times[n], common, i, window) for n in by_node if n != node
                )
                mine.append(own)
                theirs.append(med)
                if own > 0 and own >= ratio * med:
                    slow += 1
                if med > 0:
                    ratios.append(own / med)
            n = len(mine)
            verdict = n >= min_steps
            out.append(
                HostPace(
                    attempt_id,
                    node,
                    hosts[(attempt_id, node)],
                    n,
                    slow,
                    round(statistics.median(mine), 4) if verdict else None,
                    round(statistics.median(theirs), 4) if verdict else None,
                    round(statistics.median(ratios), 3) if verdict and ratios else None,
                    verdict and slow >= share * n,
                )
            )
    return out


def _chunk_ends(steps: Mapping[int, float]) -> list[tuple[int, float]]:
    """(step, time) of the last step read at each distinct time, by step: the steps whose date is
    true to within one read."""
    last: dict[float, int] = {}
    for step, t in steps.items():
        last[t] = max(step, last.get(t, step))
    return sorted((step, t) for t, step in last.items())


def _at(ends: list[tuple[int, float]], step: int) -> float:
    """The time of `step`, interpolated between the chunk ends around it (within their span)."""
    i = bisect.bisect_left(ends, (step, float("-inf")))
    if ends[i][0] == step:
        return ends[i][1]
    (s0, t0), (s1, t1) = ends[i - 1], ends[i]
    return t0 + (t1 - t0) * (step - s0) / (s1 - s0)


def _pace(times: Mapping[int, float], common: list[int], i: int, window: int) -> float:
    """Seconds a step over the `window` common steps up to the i-th."""
    a, b = common[i - window], common[i]
    return (times[b] - times[a]) / (b - a)


def read_paces(store: Any, run: str, attempt_id: str | None = None, **knobs: Any) -> list[HostPace]:
    """`host_paces` over a run's `node_steps` on record (or one attempt's). Only the last
    `last` + `window` common steps of each attempt are read: a long run on many hosts holds a
    row a step a host, and the wrapper's end must not pay for all of them."""
    from logbook.query import run_sql

    keep = knobs.get("last", LAST) + knobs.get("window", WINDOW)
    rows = run_sql(store, _LAST_COMMON, {"run": run, "attempt": attempt_id, "keep": keep})
    return host_paces(rows.to_pylist(), **knobs)


# Each attempt's rows at its last `keep` steps that every one of its nodes saw.
_LAST_COMMON = """
with s as (
    select attempt_id, node, any_value(host) as host, step, min(time) as time from node_steps
    where run = $run and ($attempt is null or attempt_id = $attempt) group by attempt_id, node, step
), n as (select attempt_id, count(distinct node) as nodes from s group by attempt_id),
common as (
    select attempt_id, step,
           row_number() over (partition by attempt_id order by step desc) as k
    from s join n using (attempt_id)
    group by attempt_id, step, nodes having count(*) = any_value(nodes)
)
select s.attempt_id, s.node, s.host, s.step, s.time from s join common using (attempt_id, step)
where common.k <= $keep
"""
