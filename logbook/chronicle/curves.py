"""Training curves for the chronicle: each chosen metric downsampled in DuckDB to at most
POINTS buckets of equal step width (the last value of each bucket, with its finite min and max, so
a spike inside a bucket still shows as the band), the steps where it was NaN or infinite, and the
markers drawn on every curve: restarts, hyperparameter and data-mix changes, detections.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from logbook.chronicle.journal import describe
from logbook.chronicle.scrub import Numbers

if TYPE_CHECKING:
    import duckdb

    from logbook.chronicle.collect import Record

POINTS = 2000
MOST_CURVES = 6
MOST_NONFINITE = 500  # NaN/inf steps marked per metric
MARKED_KINDS = (
    "hparam_change",
    "data_mix_change",
    "loss_spike",
    "nan",
    "grad_norm_explosion",
    "loss_scale_collapse",
    "throughput_drop",
)


def gather(con: duckdb.DuckDBPyConnection, rec: Record, run: str, chosen: list[str] | None) -> None:
    """Fill rec.sections["curves"] ({name, points, markers}) and ["final_metrics"]."""
    counts = {
        r[0]: (r[1], r[2])
        for r in con.execute(
            "select name, count(step), count(*) from metrics where run = $run group by name "
            "order by count(step) desc, name",
            {"run": run},
        ).fetchall()
    }
    names = _choose(counts, chosen, rec)
    rec.sections["final_metrics"] = _final(con, run)
    if not counts:
        rec.missing["curves"] = "No metrics were recorded (none parsed from the output or logged)."
    markers = _markers(con, run)
    # Lineages (like OPT's 11.x and 12.x) each have their own steps: a line each, in its own
    # colour, never one line across both (a lineage without points draws none).
    several = (
        con.execute(
            "select count(distinct lineage) from attempts where run = $run", {"run": run}
        ).fetchall()[0][0]
        > 1
    )
    rec.sections["curves"] = []
    for n in names:
        each = _points_by_lineage(con, run, n, by_lineage=several)
        points = sorted((p for ps in each.values() for p in ps), key=lambda p: p[0])
        curve = {"name": n, "points": Numbers(points), "markers": _for(markers, n)}
        rec.sections["curves"].append(curve | ({"lineages": each} if several else {}))


def _choose(counts: dict[str, tuple[int, int]], chosen: list[str] | None, rec: Record) -> list[str]:
    if chosen:
        unknown = [n for n in chosen if n not in counts]
        if unknown:
            rec.missing["chosen_metrics"] = (
                f"Not on record, so not plotted: {', '.join(unknown)} "
                f"(recorded: {', '.join(counts) or 'none'})."
            )
        return [n for n in chosen if n in counts and counts[n][0]]
    stepped = [n for n, (with_step, _) in counts.items() if with_step]
    first = [n for n in ("loss", "train_loss", "lm_loss") if n in stepped][:1]
    return (first + [n for n in stepped if n not in first])[:MOST_CURVES]


def _points_by_lineage(
    con: duckdb.DuckDBPyConnection, run: str, name: str, *, by_lineage: bool
) -> dict[str, list[tuple[Any, ...]]]:
    """For each lineage (or all as one, ""), (step, value, lo, hi) per bucket of its own step
    range, then (step, nan, nan, nan) per non-finite step: one scan of the metric."""
    lineage = "a.lineage" if by_lineage else "''"
    rows = con.execute(
        f"""
        with m as (select {lineage} as lineage, m.step, m.value, m.time
                   from metrics m left join attempts a using (attempt_id)
                   where m.run = $run and m.name = $name and m.step is not null),
        r as (select lineage, min(step) as lo,
                     greatest(1, ceil((max(step) - min(step) + 1) / $n)) as width
              from m group by lineage)
        select lineage, max(step), arg_max(value, (time, step)) filter (where isfinite(value)),
               min(value) filter (where isfinite(value)), max(value) filter (where isfinite(value))
        from m join r using (lineage) group by lineage, (step - lo) // width
        having count(*) filter (where isfinite(value)) > 0
        union all
        select * from (
            select distinct lineage, step, 'nan'::double, 'nan'::double, 'nan'::double
            from m where not isfinite(value))
        qualify row_number() over (partition by lineage order by step) <= $most
        """,
        {"run": run, "name": name, "n": POINTS, "most": MOST_NONFINITE},
    ).fetchall()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for key, *point in rows:
        out.setdefault(key or "", []).append(tuple(point))
    return {k: Numbers(sorted(v, key=lambda p: p[0])) for k, v in out.items()}


def _final(con: duckdb.DuckDBPyConnection, run: str) -> list[dict[str, Any]]:
    """Each metric's value at the furthest step (the newest reading of it)."""
    rows = con.execute(
        "select name, arg_max(value, (coalesce(step, -1), time)), max(step), count(*) "
        "from metrics where run = $run group by name order by name",
        {"run": run},
    ).fetchall()
    return [{"name": n, "value": v, "step": s, "points": c} for n, v, s, c in rows]


def _markers(con: duckdb.DuckDBPyConnection, run: str) -> list[dict[str, Any]]:
    """Restarts (where each later attempt resumed) and the marked events, at their step."""
    restarts = con.execute(  # within a lineage; the first attempt of a new one is a decision
        """
        select coalesce(a.resumed_from_step, a.first_step), a.label,
               coalesce(p.crash_class, p.status), a.lineage
        from attempts a join attempts p on p.attempt_id = a.parent_id
        where a.run = $run and coalesce(a.resumed_from_step, a.first_step) is not null
          and p.lineage = a.lineage
        """,
        {"run": run},
    ).fetchall()
    out = [
        {"step": s, "kind": "restart", "label": f"{label} after {why}", "metric": None,
         "lineage": lineage}
        for s, label, why, lineage in restarts
    ]  # fmt: skip
    kinds = list(MARKED_KINDS)
    events = con.execute(
        """
        select coalesce(e.step, a.resumed_from_step, a.first_step), e.kind, e.message, e.data,
               a.lineage
        from events e left join attempts a using (attempt_id)
        where e.run = $run and list_contains($kinds, e.kind)
          and coalesce(e.step, a.resumed_from_step, a.first_step) is not null
        order by e.time
        """,
        {"run": run, "kinds": kinds},
    ).fetchall()
    for step, kind, message, data, lineage in events:
        said = describe({"kind": kind, "message": message, "data": data})
        out.append(
            {"step": step, "kind": kind, "label": said, "metric": _metric(data), "lineage": lineage}
        )
    return out


def _metric(data: str | None) -> str | None:
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        return None
    return doc.get("metric") if isinstance(doc, dict) else None


def _for(markers: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The markers for one curve: every restart and change, detections on that metric only."""
    return [
        {k: m[k] for k in ("step", "kind", "label")}
        for m in markers
        if m["metric"] is None or m["metric"] == name
    ]
