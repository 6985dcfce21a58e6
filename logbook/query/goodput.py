"""Goodput: how much of a run's wall-clock and GPU time trained the model, and where the rest went.
The split per attempt is the `goodput` view (logbook/query/__init__.py), so it is queryable;
this module sums it per run. Attempts that overlap count their shared time once, an open one to
its last evidence (`query/attempt_time.py`), so the total is the run's first start to its last end.

Categories, each in seconds of wall-clock and in GPU-hours (seconds × the attempt's GPU count, from
its launch snapshot, else the GPUs its telemetry sampled: `attempt_gpus`, query/gpu_count.py; downtime counts the GPUs of the attempt that followed it, which were waiting):

- productive: training that moved the run forward;
- lost work: the steps of an attempt that did not complete which the run did not keep, from the
  step the next attempt restarted from to its last step, at its own pace (`query/lost_work.py`,
  the same steps `logbook incidents` and `logbook show` give; unknown, and then not split off
  productive time, where no restart step is known);
- hung: from the last sign of progress until logbook stopped the command;
- downtime: between the end of an attempt and the start of the next;
- start-up: from launch to the first step (all of an attempt that failed before one);
- checkpoints: saving checkpoints: the trainer's save lines, `logbook.phase("checkpoint_save")`
  or a callback (`phase` events, #19), or the writes `--checkpoint-dir` measured (the longer);
- checkpoint restore, evaluation, compilation, data loading: the `phase` events of each
  (logbook/record/phases.py: the trainers' lines, the API, the callbacks). A phase before the first
  step comes off start-up, a later one off the trained time; a phase no source saw is 0 in its
  category and its time stays in productive or start-up: these split what logbook can see;
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
    ("checkpoint restore", "restore_s"),
    ("evaluation", "evaluation_s"),
    ("compilation", "compilation_s"),
    ("data loading", "data_loading_s"),
    ("unknown", "unknown_s"),
)


def goodput(store: Store, run: str) -> pa.Table:
    """One line per category and a total: seconds, share of the wall-clock, GPU-hours, share of
    the GPU time. A part not known (an attempt known only to a day, a GPU count not on record)
    never counts as 0 (#16): with some parts unknown a figure is the sum of the known ones,
    `at_least` names it (a floor) and `unknown` says which attempts are missing; with none
    known, or only zeros known, it is null. A share is given only where the figure and the
    total are both whole.

    Raises:
        NoSuchRun: the store has no such run.
    """
    store.check_run(run)
    lines = " union all ".join(
        f"select {i} as o, '{name}' as category, {_sum(col)} as s, {_sum(f'{col} * gpus')} / 3600 "
        f"as gpu_h, {_missing(col)} as missing_s, {_missing(f'{col} * gpus')} as missing_h, "
        f"{_unknown(col)} as unknown from g"
        for i, (name, col) in enumerate(CATEGORIES)
    )
    any_missing = " or ".join(f"{col} is null" for _, col in CATEGORIES)
    # A part the view could not split off an attempt of known time is in its unknown_s already;
    # missing are the parts of an attempt whose time is unknown, and unknown downtimes.
    split = ", ".join(
        f"case when wall_s is not null then coalesce({col}, 0) end as {col}"
        for _, col in CATEGORIES
        if col != "downtime_before_s"
    )
    return query.run_sql(
        store,
        f"""
        with g as (select * replace ({split}) from goodput where run = $run),
        c as ({lines}),
        t as (  -- what is missing of the total: the attempts with a part unknown
            select sum(s) as s, sum(gpu_h) as gpu_h, max(o) + 1 as o,
                   (select count(*) filter (where {any_missing}) from g) as missing_s,
                   (select count(*) filter (where {any_missing} or gpus is null) from g)
                       as missing_h
            from c
        ),
        rows as (
            select o, category, s, gpu_h, missing_s, missing_h, unknown from c
            union all
            select o, 'total',
                   case when missing_s = 0 or s > 0 then s end,
                   case when missing_h = 0 or gpu_h > 0 then gpu_h end, missing_s, missing_h,
                   -- the attempts of unknown time, and those after an unknown downtime
                   (select nullif(concat_ws('; ', {_unknown("productive_s")},
                                            {_unknown("downtime_before_s")}), '') from g)
            from t
        )
        select category, round(s, 1) as seconds, round(s / 3600, 3) as hours,
               case when missing_s = 0 and (select missing_s from t) = 0
                    then round(100 * s / nullif((select s from t), 0), 1) end as pct,
               round(gpu_h, 3) as gpu_hours,
               case when missing_h = 0 and (select missing_h from t) = 0
                    then round(100 * gpu_h / nullif((select gpu_h from t), 0), 1) end as gpu_pct,
               -- the known part of a figure with unknown parts is a floor
               nullif(concat_ws(', ', case when missing_s > 0 and s is not null then 'seconds' end,
                                case when missing_h > 0 and gpu_h is not null then 'gpu_hours' end),
                      '') as at_least,
               nullif(concat_ws('; ', unknown,
                   case when (select count(*) filter (where gpus is null) from g) > 0
                        then printf('GPU-hours: no GPU count on record for %d of %d attempts',
                                    (select count(*) filter (where gpus is null) from g),
                                    (select count(*) from g)) end), '') as unknown
        from rows order by o
        """,
        {"run": run},
    )


def _sum(col: str) -> str:
    """SQL: the sum of the known parts (sum() skips nulls); null where none is known, or where
    the known ones are all 0 beside unknown ones: "at least 0 s" says nothing."""
    return f"case when count({col}) = count(*) or sum({col}) > 0 then sum({col}) end"


def _missing(col: str) -> str:
    return f"count(*) - count({col})"


def _unknown(col: str) -> str:
    """SQL: for a figure with unknown parts, which attempts they are."""
    return _unknown_text(
        f"count(*) - count({col})",
        f"list(label order by start_time, label) filter (where {col} is null)",
        "the downtime before" if col == "downtime_before_s" else "the time of",
    )


def _unknown_text(n: str, labels: str, what: str = "the time of") -> str:
    """SQL: 'the time of 4 of 21 attempts is not known (main.00, main.01, main.02, ...)'; null
    where nothing is missing."""
    return f"""case when {n} > 0 then
        printf('{what} %d of %d attempts is not known (%s%s)', {n}, count(*),
                  array_to_string(({labels})[1:3], ', '), case when {n} > 3 then ', ...' else '' end)
        end"""


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
        f"select label, status, gpus, gpus_basis, round(wall_s, 1) as wall_s, {cols}, lost_steps, open, "
        "round(overlap_s, 1) as overlap_s, overlapped_by, note "
        "from goodput where run = $run order by start_time",
        {"run": run},
    )


SLOW = 2.0  # a step this many times its attempt's running median is `slow`...
SLOW_BY_S = 1.0  # ...when its reading is also this much longer than the median would make it:
# readings come every 0.5 s, so a smaller excess is the reading's own jitter
MEDIAN_OF = 3  # readings before a running median is given


def step_deviation(store: Store, run: str) -> pa.Table:
    """Step-time deviation over time (#19): each step's time against the running median of the
    steps before it in its attempt, a line per reading, oldest first.

    Steps are timed when logbook read their lines (every 0.5 s or so while output flows), so steps
    read together share a time: a line is one reading, its `step` the last step it saw, `steps`
    how many it gained, `step_s` the time since the reading before over those steps. `median_s`
    is the median `step_s` of the attempt's readings before it (null before MEDIAN_OF of them),
    `deviation` step_s / median_s (null where unknown), `slow` whether that is at least SLOW and
    the reading took SLOW_BY_S longer than the median would make it (beyond the reading jitter).

    Raises:
        NoSuchRun: the run is unknown.
    """
    store.check_run(run)
    return query.run_sql(
        store,
        f"""
        with s as (  -- when each step was first seen
            select m.attempt_id, m.step, min(m.time) as t from metrics m
            where m.run = $run and m.step is not null group by m.attempt_id, m.step
        ),
        r as (  -- readings: the steps first seen at one time
            select attempt_id, t, max(step) as step from s group by attempt_id, t
        ),
        d as (
            select attempt_id, t, step,
                   step - lag(step) over w as steps,
                   epoch(t - lag(t) over w) / nullif(step - lag(step) over w, 0) as step_s
            from r window w as (partition by attempt_id order by t)
        ),
        m as (
            select *, case when count(*) over before >= {MEDIAN_OF}
                           then median(step_s) over before end as median_s
            from d where step_s is not null and step_s > 0
            window before as (partition by attempt_id order by t
                              rows between unbounded preceding and 1 preceding)
        )
        select a.label, m.t as time, m.step, m.steps, round(m.step_s, 3) as step_s,
               round(m.median_s, 3) as median_s,
               round(m.step_s / nullif(m.median_s, 0), 2) as deviation,
               m.step_s / nullif(m.median_s, 0) >= {SLOW}
                   and (m.step_s - m.median_s) * m.steps >= {SLOW_BY_S} as slow
        from m join attempts a using (attempt_id)
        order by a.start_time, m.t
        """,
        {"run": run},
    )
