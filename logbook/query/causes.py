"""Interruptions of a run by cause (#19), in the grain of the Llama 3 405B report's Table 5: per
component, how many, their share of the unexpected ones, the hours they lost, how many were
planned, and how many were relaunched by logbook's restart policy (automatic) or by a person
(manual); a total line with the run's effective training time (goodput's productive share).

The interruptions are the `incidents` view's (every attempt that did not complete, with the
component, planned and handled it has there) plus the `interruptions` table's counts, which an
imported history gives without times ("148 interruptions: faulty GPU"). What is not known stays
null, and a sum with an unknown part is unknown: hours lost of counts without times are unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.store import Store


# Hours lost over interruptions (#16): the sum when every one is known; with some unknown, the sum
# of the known ones where one is above 0, a floor that `at_least` names; else null. Never 0 for
# an unknown part, as `incidents` and `goodput` sum.
_HOURS_LOST_BARE = """case when count(time_lost_s) = count(*) or sum(time_lost_s) > 0
                          then round(sum(time_lost_s) / 3600, 2) end"""
_HOURS_LOST = f"{_HOURS_LOST_BARE} as hours_lost"
_FLOOR = "case when count(time_lost_s) < count(*) and sum(time_lost_s) > 0 then 'hours_lost' end"


def incidents_by_cause(store: Store, run: str) -> pa.Table:
    """One line per component (null: not known), most unexpected first, and a total line.

    Columns: component, cause (what the component covers), count, planned, unexpected,
    share_pct (of the run's unexpected interruptions), hours_lost (with some of the line's unknown:
    the known ones' sum as a floor, named in `at_least`, where above 0; else null), automatic, manual, handled_unknown, planned_unknown, effective_training_pct (total
    line only: goodput's productive share of the run's time; null when part of the time cannot
    be split, or the run has no times), at_least, count_approx (a count the history gives as
    approximate, "~90", is part of it).

    Raises:
        NoSuchRun: the store has no such run.
    """
    from logbook import query
    from logbook.forensics.components import COMPONENTS, rule_keys
    from logbook.query.goodput import CATEGORIES

    store.check_run(run)
    # No coalesce(..., 0): a part not known is null in its sum, and `whole` then withholds the share.
    sums = ", ".join(f"sum({col}) as {col}" for _, col in CATEGORIES)
    total = " + ".join(col for _, col in CATEGORIES)
    rule_components = ", ".join(f"('{k}', '{c}')" for k, c in rule_keys().items())
    causes = ", ".join(
        "('{}', '{}')".format(name, text.replace("'", "''")) for name, text in COMPONENTS.items()
    )
    return query.run_sql(
        store,
        f"""
        with rules(key, component) as (values {rule_components}),
        each as (
            -- attempts recorded before attempts v4 have no component: their rule's, as now
            select coalesce(i.component, r1.component, r2.component, r3.component, r4.component)
                       as component, planned, handled, 1::bigint as n, time_lost_s,
                   false as approx
            from incidents i
                 left join rules r1 on r1.key = 'rule:' || i.rule
                 left join rules r2 on r2.key = i.status || ':' || i.rule
                 left join rules r3 on r3.key = i.rule
                 left join rules r4 on r4.key = i.status
            where run = $run
            union all
            select component, planned, handled, count, lost_h_stated * 3600,
                   coalesce(count_approx, false)
            from interruptions where run = $run
        ),
        by_cause as (
            select component, sum(n) as count, bool_or(approx) as count_approx,
                   coalesce(sum(n) filter (where planned), 0) as planned,
                   coalesce(sum(n) filter (where not planned), 0) as unexpected,
                   {_HOURS_LOST},
                   coalesce(sum(n) filter (where handled = 'automatic'), 0) as automatic,
                   coalesce(sum(n) filter (where handled = 'manual'), 0) as manual,
                   coalesce(sum(n) filter (where handled is null), 0) as handled_unknown,
                   coalesce(sum(n) filter (where planned is null), 0) as planned_unknown,
                   {_FLOOR} as at_least
            from each group by component
        ),
        all_unexpected as (select nullif(sum(unexpected), 0) as n from by_cause),
        -- goodput's split of the run's time (query/goodput.py), in the same read
        split as (
            -- whole: every attempt's time and downtime known (an imported day or range is not,
            -- #16), else a share would be made of the known attempts only
            select {sums}, bool_and(wall_s is not null and downtime_before_s is not null
                                    and unknown_s is not null) as whole
            from _goodput_time where run = $run  -- goodput without the GPUs it needs not
        ),
        effective as (
            select case when ({total}) > 0 and unknown_s = 0 and whole
                        then round(100 * productive_s / ({total}), 1) end as pct
            from split
        ),
        lines as (
            select 0 as part, b.component, coalesce(d.cause, 'not known') as cause, b.count,
                   b.planned, b.unexpected,
                   round(100 * b.unexpected / (select n from all_unexpected), 1) as share_pct,
                   b.hours_lost, b.automatic, b.manual, b.handled_unknown, b.planned_unknown,
                   null::double as effective_training_pct, b.at_least, b.count_approx
            from by_cause b left join (values {causes}) d(component, cause) using (component)
            union all
            select 1, 'total', 'all interruptions', coalesce(sum(count), 0), coalesce(sum(planned), 0),
                   coalesce(sum(unexpected), 0),
                   case when (select n from all_unexpected) is not null then 100.0 end,
                   (select {_HOURS_LOST_BARE} from each),
                   coalesce(sum(automatic), 0), coalesce(sum(manual), 0),
                   coalesce(sum(handled_unknown), 0), coalesce(sum(planned_unknown), 0),
                   (select pct from effective), (select {_FLOOR} from each),
                   coalesce(bool_or(count_approx), false)
            from by_cause
        )
        select * exclude (part) from lines
        order by part, unexpected desc, count desc, component nulls last
        """,
        {"run": run},
    )
