"""Times as precisely as an imported history knew them, in SQL for people: a day, a month, a year,
or a range of days or instants (`*_precision`, `*_until` beside a time column; #16)."""

from __future__ import annotations


def between(low: str, high: str) -> str:
    """SQL text '2021-11-05 and 2021-11-11' for a range of whole days (the stored end is the next
    midnight, exclusive), else '2021-11-05 10:00 and 2021-11-05 14:00' (UTC)."""
    days = f"date_trunc('day', {low}) = {low} and date_trunc('day', {high}) = {high}"
    return (
        f"case when {days} then strftime({low}, '%Y-%m-%d') || ' and ' "
        f"|| strftime(({high}) - interval 1 day, '%Y-%m-%d') "
        f"else strftime({low}, '%Y-%m-%d %H:%M') || ' and ' "
        f"|| strftime({high}, '%Y-%m-%d %H:%M') || ' UTC' end"
    )


def known_to(base: str) -> str:
    """SQL: how precisely `{base}_time` (or `{base}`) is known: 'day', 'month', 'year', or
    'between … and …'; null for an instant. `base` is e.g. `e.time` or `start`."""
    time = base if base.endswith("time") else f"{base}_time"
    stem = base.removesuffix("_time")
    return (
        f"case when {stem}_precision = 'range' then 'between ' || "
        f"{between(time, f'{stem}_until')} else {stem}_precision end"
    )


def as_known(base: str) -> str:
    """SQL: `{base}_time` written as precisely as it is known: '2021-11-05', '2021-11', '2021',
    'between 2021-11-05 and 2021-11-11'; null for an instant."""
    time, stem = f"{base}_time", base
    return (
        f"case {stem}_precision when 'range' then 'between ' || {between(time, f'{stem}_until')} "
        f"when 'day' then strftime({time}, '%Y-%m-%d') when 'month' then strftime({time}, '%Y-%m') "
        f"when 'year' then strftime({time}, '%Y') end"
    )
