"""Goodput: how much of a run's wall-clock and GPU time trained the model, and where the rest went.
The split per attempt is the `goodput` view (logbook/query/__init__.py), so it is queryable;
this module sums it per run. Attempts that overlap count their shared time once, an open one to
its last evidence (`query/attempt_time.py`), so the total is the run's first start to its last end.

Categories, each in seconds of wall-clock and in GPU-hours (seconds × the attempt's GPU count, from
its launch snapshot; downtime counts the GPUs of the attempt that followed it, which were waiting):

- productive: training that moved the run forward;
- lost work: the steps of an attempt that did not complete which the run did not keep, from the
  step the next attempt restarted from to its last step, at its own pace (`query/lost_work.py`,
  the same steps `logbook incidents` and `logbook show` give; unknown, and then not split off
  productive time, where no restart step is known);
- hung: from the last sign of progress until logbook stopped the command;
- downtime: between the end of an attempt and the start of the next;
- start-up: from launch to the first step (all of an attempt that failed before one);
- checkpoints: writing checkpoints, as `--checkpoint-dir` measured them;
- unknown: time that cannot be split (#16): an attempt without step times (imported ones, a
  recorded one that logged no step), a hung one with no sign of its last progress, or the trained
  part of a failed attempt whose lost work is not known. Never filed under start-up or productive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from logbook import query

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.store import Store

CATEGORIES = (
    ("productive", "productive_s"),
    ("lost work", "lost_s"),
    ("hung", "hung_s"),
    ("downtime", "downtime_before_s"),
    ("start-up", "startup_s"),
    ("checkpoints", "checkpoint_s"),
    ("unknown", "unknown_s"),
)


def goodput(store: Store, run: str) -> pa.Table:
    """One line per category and a total: seconds, share of the wall-clock, GPU-hours, share of
    the GPU time.

    Raises:
        NoSuchRun: the run is unknown.
    """
    store.check_run(run)
    sums = ", ".join(
        f"coalesce(sum({col}), 0) as {col}, coalesce(sum({col} * gpus), 0) / 3600 as {col}_gpu_h"
        for _, col in CATEGORIES
    )
    lines = " union all ".join(
        f"select {i} as o, '{name}' as category, {col} as s, {col}_gpu_h as gpu_h from t"
        for i, (name, col) in enumerate(CATEGORIES)
    )
    total_s = " + ".join(col for _, col in CATEGORIES)
    total_h = " + ".join(f"{col}_gpu_h" for _, col in CATEGORIES)
    return query.run_sql(
        store,
        f"""
        with g as (
            -- downtime waits with the GPUs of the attempt that follows it
            select * from goodput where run = $run
        ),
        t as (select {sums} from g),
        c as ({lines} union all
              select {len(CATEGORIES)}, 'total', {total_s}, {total_h} from t)
        select category, round(s, 1) as seconds, round(s / 3600, 3) as hours,
               round(100 * s / nullif((select {total_s} from t), 0), 1) as pct,
               round(gpu_h, 3) as gpu_hours,
               round(100 * gpu_h / nullif((select {total_h} from t), 0), 1) as gpu_pct
        from c order by o
        """,
        {"run": run},
    )


def goodput_by_attempt(store: Store, run: str) -> pa.Table:
    """The `goodput` view of one run, an attempt a line, oldest first (`lost_steps` as
    `logbook incidents` gives them); a part not known is null and its time is in `unknown_s`;
    `open`, `overlap_s`, `overlapped_by` and `note` say how its time was counted.

    Raises:
        NoSuchRun: the run is unknown.
    """
    store.check_run(run)
    cols = ", ".join(f"round({col}, 1) as {col}" for _, col in CATEGORIES)
    return query.run_sql(
        store,
        f"select label, status, gpus, round(wall_s, 1) as wall_s, {cols}, lost_steps, open, "
        "round(overlap_s, 1) as overlap_s, overlapped_by, note "
        "from goodput where run = $run order by start_time",
        {"run": run},
    )
