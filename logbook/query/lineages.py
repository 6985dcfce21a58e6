"""Lineages of a run: the attempts that continue one another, like OPT's 11.x and 12.x.

An attempt's lineage is the one set for it (`attempts.lineage`, from `logbook import`), else its
label's prefix (`supervisor.lineage.LINEAGE_SQL`): 11.05 and 11.06 are lineage 11, 12.00 starts
lineage 12. Within a lineage an attempt whose parent is of the same lineage is a restart; the first
attempt of a lineage is not (moving to a new lineage is a decision: new settings, an earlier
checkpoint, a fresh start), and `came_from` names the attempt of the other lineage it followed.
"""

from __future__ import annotations

from logbook.supervisor.lineage import LINEAGE_SQL

# How an attempt ends that counts as a failure (failed and killed: statuses of early stores).
FAILURES = ("crashed", "hung", "lost", "failed", "killed")

# Over the attempts table's rows: the lineage in force, explicit or from the label.
LINEAGE = f"coalesce(lineage, {LINEAGE_SQL})"

# An attempt beside its parent's lineage: `is_restart` when both are of one lineage.
ATTEMPT_LINEAGE_VIEW = """
create view attempt_lineage as
select a.run, a.attempt_id, a.label, a.lineage, a.parent_id, a.parent_label,
       p.lineage as parent_lineage,
       a.parent_id is not null and p.lineage is not distinct from a.lineage as is_restart,
       a.parent_id is not null and p.lineage is distinct from a.lineage as is_new_lineage
from attempts a left join attempts p on p.attempt_id = a.parent_id
"""

# Over attempt_time (created after it): failures and the mean time between them count within the
# lineage, over the time its attempts ran (overlaps once); unknown when an attempt's time is.
VIEW = f"""
create view lineages as
select a.run, a.lineage,
       count(*) as attempts,
       count(*) filter (where l.is_restart) as restarts,
       min(a.start_time) as started,
       -- (a time known only to a day or range counts as its first instant here)
       case when bool_and(a.end_time is not null) then max(a.end_time) end as ended,
       first(a.label order by a.start_time, a.label) as first_label,
       last(a.label order by a.start_time, a.label) as last_label,
       last(a.status order by a.start_time, a.label) as last_status,
       first(a.parent_label order by a.start_time, a.label)
           filter (where l.is_new_lineage) as came_from,
       max(a.last_step) as last_step,
       count(*) filter (where a.status in {FAILURES}) as failures,
       case when count(t.counted_s) = count(*) then round(sum(t.counted_s), 1) end as counted_s,
       case when count(t.counted_s) = count(*)
                 and count(*) filter (where a.status in {FAILURES}) > 0
            then round(sum(t.counted_s)
                       / count(*) filter (where a.status in {FAILURES}), 1) end as mtbf_s
from attempts a join attempt_lineage l using (attempt_id) join attempt_time t using (attempt_id)
group by a.run, a.lineage
"""
