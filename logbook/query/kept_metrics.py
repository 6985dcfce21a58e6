"""Which metric points the `metrics` view keeps: all but the output's copies of API points.

A point the output printed is the API's point printed (#17) when it is of the same attempt,
name and step, and agrees to the digits printed (0.5%: three significant digits, as the
shortest trainers print); or when it has no step and the API records that name in the attempt
(the Transformers Trainer prints every dict it logs, with no step). The API's point is kept: it
has the exact value and the trainer's step. NaN agrees with NaN.

The test pairs points of one attempt only, so it gives the same answer over any relation that
holds whole attempts: `attempt_time` asks it of the open attempts' points alone, not of every
point of the run (#19: 1.5 s of CPU a read on the OPT-size store, for no open attempt at all).
"""

from __future__ import annotations


def kept(points: str) -> str:
    """A select of the points of the relation `points` (all_metrics' columns, whole attempts)
    that the `metrics` view keeps."""
    return f"""
    select * from {points} where source is distinct from 'parser'
    union all
    select * from {points} m where m.source = 'parser'
      and not exists (
        select 1 from {points} a
        where a.source = 'api' and a.run = m.run and a.attempt_id = m.attempt_id
          and a.name = m.name and a.step = m.step
          and (a.value = m.value or abs(a.value - m.value) <= 0.005 * abs(a.value)
               or (isnan(a.value) and isnan(m.value))))
      and (m.step is not null or not exists (
        select 1 from {points} a
        where a.source = 'api' and a.run = m.run and a.attempt_id = m.attempt_id
          and a.name = m.name))
"""


def view(any_api: bool) -> str:
    """The `metrics` view for a snapshot with (`any_api`) or without points of the Python API
    (`query._load` asks). Without any, every point is kept and the test is left out: it is the
    same set, and the test's anti-join cost 1-1.6 s of CPU a read of the metrics on the OPT-size
    store, where the chronicle reads them a dozen times (#16)."""
    if any_api:
        return "create or replace view metrics as" + kept("all_metrics")
    return "create or replace view metrics as select * from all_metrics"
