"""How long each attempt ran, as every time figure counts it: the `attempt_time` view, the one
definition that `runs`, `show`, `incidents`, `goodput`, the lost work and the chronicle read (#16).

- **The end it counts to** (`end_at`): its end time; for one still open, now only while its
  recorder runs (its journal is alive: a dead one adds a `lost` row with an end). An attempt open
  without a running recorder (imported as `running`, or from an old store) counts to its last
  evidence: its last step, output or checkpoint, event or metric (a note is a person's words, not
  a sign of life), and is flagged `is_open`. Never to now.
- **Counted once**: attempts of a run that overlap count their shared time once (the union of
  their intervals). Each second goes to the earliest-started attempt running then: an attempt's
  counted span starts where the attempts before it stop covering; `overlap_s` is the rest of its
  wall, and `covered_by` the attempt that covered it. `gap_before_s`, the downtime before it, is
  never below 0.
- **Known only to a day, month or range** (an imported history's `start_precision` or
  `end_precision`): its wall and counted time are unknown (null), and so is the downtime before
  it, or after it until the next attempt: 11.04 "between Nov 5 and Nov 11" ran for an unknown time.
- **Hung time**: the `hung_s` on record (the hang watch measured it), else, for a hung attempt,
  from its last progress (step or output) to its end; unknown (null) without either. Always
  within its wall; 0 for an attempt that did not hang.
- **Start-up**: from its start to its first step time; for a recorded attempt that saw no step
  while the run's others did, the whole of it (it stopped, or runs, before its first step);
  otherwise unknown (null): an imported attempt without step times says nothing of how it ran.
"""

from __future__ import annotations

from logbook.query.kept_metrics import kept
from logbook.query.precision import as_known

# Attempts with no end on record that no running recorder holds (a dead journal closes its own
# as lost; `_journal_attempt_ids`, not the journal's attempts rows: a start part holds some).
OPEN_VIEW = """
create view _open_attempts as
select attempt_id from attempts
where end_time is null and attempt_id not in (select attempt_id from _journal_attempt_ids)
"""


def open_points_view(any_open: bool) -> str:
    """The `_open_points` view: the points of the open attempts, their last evidence. With none
    open (`query._load` asks), no point, and the metrics are not read at all: a scan of them
    that finds nothing still read most of them, 1-2 s of CPU and 600 MB on the OPT-size store
    (#19)."""
    where = "attempt_id in (select attempt_id from _open_attempts)" if any_open else "false"
    return f"create or replace view _open_points as select * from all_metrics where {where}"


VIEW = """
create view attempt_time as
with o as (select attempt_id from _open_attempts),
ev as (
    select attempt_id, max(time) as t from events
    where kind <> 'note' and attempt_id in (select attempt_id from o) group by attempt_id
),
mt as (  -- the points the metrics view keeps (kept_metrics.py) of the open attempts alone
    select attempt_id, max(time) as t from ({KEPT}) group by attempt_id
),
stepped as (  -- runs in which the recorder saw steps: there, no step means start-up
    select run, bool_or(first_step_time is not null) as has_steps from attempts group by run
),
e as (
    select a.*, a.end_time is null and o.attempt_id is not null as is_open,
           case when a.end_time is not null then a.end_time
                when o.attempt_id is null then greatest(now(), a.start_time)
                else greatest(a.start_time, a.last_step_time, a.last_output_time,
                              a.last_checkpoint_time, ev.t, mt.t) end as end_at,
           st.has_steps,
           a.start_precision is not null or a.end_precision is not null as imprecise
    from attempts a left join o using (attempt_id) left join ev using (attempt_id)
         left join mt using (attempt_id) left join stepped st using (run)
),
w as (
    select *, case when not imprecise then epoch(end_at - start_time) end as wall_s,
           max(end_at) over before as covered_until,
           arg_max(label, end_at) over before as covered_by,
           arg_max(end_precision is not null, end_at) over before as covered_imprecise
    from e
    window before as (partition by run order by start_time, label
                      rows between unbounded preceding and 1 preceding)
),
c as (
    select *,
           case when not imprecise
                then epoch(end_at - least(greatest(start_time, covered_until), end_at))
                end as counted_s,
           case when covered_until is null then 0
                when start_precision is not null or covered_imprecise then null
                else greatest(epoch(start_time - covered_until), 0) end as gap_before_s,
           greatest(last_step_time, last_output_time) as last_progress_time
    from w
)
select *, wall_s - counted_s as overlap_s,
       case when hung_s is not null then least(greatest(hung_s, 0), wall_s)
            when status <> 'hung' then 0
            when last_progress_time is not null
            then least(greatest(epoch(end_at - last_progress_time), 0), wall_s) end as hung_time_s,
       case when first_step_time is not null
            then least(greatest(epoch(first_step_time - start_time), 0), wall_s)
            when wrapper_pid is not null and status <> 'completed' and has_steps
            then wall_s end as startup_time_s,
       nullif(concat_ws('; ',
           case when is_open and imprecise  -- its time is not counted at all (wall_s null)
                then 'open: no end on record and no recorder running; its time is unknown'
                when is_open and end_at > start_time
                then 'open: no end on record and no recorder running; counted to its last '
                     || 'evidence, ' || strftime(end_at, '%Y-%m-%d %H:%M:%S') || ' UTC'
                when is_open
                then 'open: no end on record, no recorder running and no evidence after its '
                     || 'start; counted as 0 s'
                when end_time is null then 'running: counted to now' end,
           case when wall_s > counted_s
                then printf('overlaps %s by %.0f s (counted once)', covered_by, wall_s - counted_s)
                end,
           case when start_precision is not null
                then 'started ' || {START} end,
           case when end_precision is not null
                then 'ended ' || {END} end
           ), '') as time_note
from c
"""

# Said in `time_note`: a start or end an imported history knew only to a day, month or range.
VIEW = VIEW.replace("{START}", as_known("start")).replace("{END}", as_known("end"))
VIEW = VIEW.replace("{KEPT}", kept("_open_points"))
