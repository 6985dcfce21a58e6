"""Lost work: the one definition that `logbook incidents`, `goodput`, `show` and the chronicle
all read (#15).

An attempt loses the steps it made that the run does not keep:

    lost_steps = its last step - the restart step            (never below 0)

The next attempt is the first whose parent it is within its lineage (query/lineages.py): the first
attempt of a new lineage follows it by a decision, not as a restart, so the old lineage's last
attempt is measured as one that no attempt followed. The restart step is, first that is known:

1. the step the next attempt (the one whose parent it is) resumed from, `resumed_from_step`, as
   its `resume_source` says (the training's resume line, the checkpoint it loaded);
2. the first step that next attempt logged (it cannot have resumed after it: a training that
   starts over logs its first step, and then everything is lost);
3. the attempt's own last checkpoint, when no attempt followed or the next one logged no step
   (what a relaunch could at best resume from).

An attempt that completed and was not relaunched lost nothing (0); one still running and not
relaunched, not known yet (null). A completed one that was relaunched is measured like the others
(a trainer that exits 0 on SIGTERM, as Lightning does, and is resumed from an older checkpoint).
With no last step, or no restart step, the lost steps are unknown: null, never 0.
`lost_work_s` is the lost steps at the failed attempt's own pace (`attempt_pace.s_per_step`),
at most the time it trained, from its first step to its last (#16: a rollback to an older attempt's checkpoint, or
a pace from two sparse points, must not lose more time than the attempt had).
"""

from __future__ import annotations

VIEW = """
create view lost_work as
with n as (  -- the first relaunch of each attempt within its lineage (lineages.py)
    select * exclude (_k) from (
        select c.*, row_number() over (partition by c.parent_id order by c.start_time) as _k
        from attempts c join attempt_lineage l using (attempt_id) where l.is_restart)
    where _k = 1
),
r as (
    select a.*, n.attempt_id as next_attempt_id, n.label as next_label,
           n.start_time as next_start_time, n.first_step_time as next_first_step_time,
           case when n.resumed_from_step is not null then n.resumed_from_step
                when n.first_step is not null then n.first_step
                when a.status <> 'running' then a.last_checkpoint_step end as restart_step,
           case when n.resumed_from_step is not null
                     then coalesce(n.resume_source, 'resume step of ' || n.label)
                when n.first_step is not null then 'first step logged by ' || n.label
                when a.status <> 'running' and a.last_checkpoint_step is not null
                     then 'last checkpoint' end as restart_basis
    from attempt_pace a left join n on n.parent_id = a.attempt_id
),
t as (  -- what it can have lost is at most the time it trained: its first step to its last
    select *, greatest(epoch(least(coalesce(last_step_time, end_at), end_at)
                             - least(coalesce(first_step_time, start_time), end_at)), 0)
              as trained_s
    from r
)
select run, label, attempt_id, status, last_step, restart_step, restart_basis,
       -- greatest() skips nulls: an unknown step must give an unknown loss, not 0
       case when status = 'completed' and next_attempt_id is null then 0
            when last_step is not null and restart_step is not null
            then greatest(last_step - restart_step, 0) end as lost_steps,
       case when status = 'completed' and next_attempt_id is null then 0
            when last_step is not null and restart_step is not null and s_per_step is not null
            then least(greatest(last_step - restart_step, 0) * s_per_step, trained_s)
            end as lost_work_s,
       next_attempt_id, next_label, next_start_time, next_first_step_time
from t
"""
