"""What a chronicle shows, read from the store in one DuckDB connection: plain lists of dicts,
one entry per section, and for each section what is missing from the record.

Everything is aggregated in DuckDB (curves are downsampled there, samples summed by the hour), so
a run of OPT's size (150,000 steps × 10 metrics, a hundred million samples) is read in seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logbook import query
from logbook.chronicle import curves
from logbook.chronicle.journal import event_data

if TYPE_CHECKING:
    import duckdb

    from logbook.cost import CostSettings
    from logbook.store import Store


@dataclass
class Record:
    """Everything one chronicle shows, as plain values (the build escapes and renders them)."""

    run: str
    sections: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


def gather(
    store: Store,
    run: str,
    *,
    metrics: list[str] | None = None,
    settings: CostSettings | None = None,
) -> Record:
    """Read one run's whole record for its chronicle.

    Args:
        store: the open store.
        run: the run's name.
        metrics: metric names to plot; default: loss first, then the metrics with most points.
        settings: prices, PUE and carbon intensity for the cost section (defaults otherwise).

    Returns:
        A Record: sections by name, and a sentence for each section the record cannot fill.

    Raises:
        NoSuchRun: the store has no such run.
    """
    if not _has_any_rows(store, run):
        store.check_run(run)  # raises NoSuchRun, naming the runs there are
    rec = Record(run)
    con = query.connect(store, run, gpu_samples=False)
    try:
        rec.sections["run"] = _one(con, "select * from runs where run = $run", run) or {}
        attempts = _rows(
            con,
            f"""
            select a.*, l.lost_steps, l.lost_work_s, i.downtime_s, i.time_lost_s,
                   {query.ATTEMPT_CLASS} as class,
                   h.hosts, g.gpu_model
            from attempts a left join incidents i using (attempt_id)
            left join lost_work l using (attempt_id)  -- one definition (query/lost_work.py)
            -- hosts and GPU model as measured or declared (query/gpu_count.py)
            left join attempt_hosts h using (attempt_id)
            left join (select attempt_id, string_agg(distinct gpu_name, ', ' order by gpu_name) as gpu_model
                       from launch_gpus group by attempt_id) g using (attempt_id)
            where a.run = $run order by a.start_time, a.label
            """,
            run,
        )
        for a in attempts:
            a["evidence_lines"] = _evidence_lines(a.get("evidence"))
        rec.sections["attempts"] = attempts
        if not attempts:
            rec.missing["attempts"] = "No attempts are on record for this run."
        rec.sections["lineages"] = _rows(  # restarts within each: query/lineages.py
            con,
            "select lineage, attempts, restarts, failures, mtbf_s, first_label, last_label, "
            "last_status, came_from "
            "from lineages where run = $run order by started, lineage",
            run,
        )
        rec.sections["events"] = _events(con, run, attempts)
        rec.sections["hparams"] = [
            {**e, **event_data(e)} for e in rec.sections["events"] if e["kind"] == "hparam_change"
        ]
        curves.gather(con, rec, run, metrics)
        rec.sections["utilization"] = _rows(
            con,
            """
            -- hours as whole numbers: time_bucket over ~100 M samples took 2.5 s more (#16);
            -- the sampler's times are all after 1970, where // rounds down as time_bucket does
            select to_timestamp(hour * 3600) as time, avg(gpu_util_pct) as gpu_util_pct,
                   avg(power_w) as power_w
            from (select epoch_us(time) // 3600000000 as hour, gpu_util_pct, power_w
                  from samples where run = $run and gpu_index is not null)
            group by hour order by hour
            """,
            run,
        )
        rec.sections["hardware"] = _hardware(con, run)
        rec.sections["identities"] = _identities(con, run)
    finally:
        con.close()
    _reports(store, rec, settings)
    return rec


def _reports(store: Store, rec: Record, settings: CostSettings | None) -> None:
    """The sections that reuse logbook's own reports: incidents, goodput, cost, data mix."""
    from logbook.cost import basis_notes, cost_report
    from logbook.query import goodput
    from logbook.record import datamix

    run = rec.run
    if not rec.sections["attempts"]:  # the reports below want a run with attempts
        for name in ("incidents", "goodput", "cost", "cost_notes", "datamix", "step_deviation"):
            rec.sections[name] = []
    else:
        rec.sections["incidents"] = query.incidents_by_class(store, run).to_pylist()
        rec.sections["goodput"] = goodput.goodput(store, run).to_pylist()
        rec.sections["step_deviation"] = goodput.step_deviation(store, run).to_pylist()  # #19
        report = cost_report(store, run, settings)
        rec.sections["cost"] = report.to_pylist()
        rec.sections["cost_notes"] = basis_notes(report)
        rec.sections["datamix"] = datamix.history(store, run).to_pylist()
    # The Llama 3 report's table (#19): also for a run of counted interruptions alone
    from logbook.query.causes import incidents_by_cause

    # (a run of notes alone has neither attempts nor counts: no table)
    causes = incidents_by_cause(store, run).to_pylist() if run in store.run_names() else []
    rec.sections["causes"] = causes if causes and causes[-1]["count"] else []
    # Interruptions a history counts without detailing them ("~90 restarts", #16): beside the
    # attempts in the overview, never among them (they have no times to count with).
    counted = query.run_sql(
        store,
        "select sum(count) as n, coalesce(bool_or(count_approx), false) as approx "
        "from interruptions where run = ?",
        [run],
    ).to_pylist()
    rec.sections["uncounted"] = counted[0] if counted and counted[0]["n"] else {}
    rec.sections["stragglers"] = stragglers(store, run, rec.sections["attempts"])
    if not rec.sections["incidents"] and rec.sections["attempts"]:
        rec.missing["incidents"] = "No failures: every attempt completed, or is still running."
    if not rec.sections["datamix"]:
        rec.missing["datamix"] = (
            "No data mix was declared (logbook run --data-mix, logbook.data_mix)."
        )
    if not rec.sections["hparams"]:
        rec.missing["hparams"] = (
            "No hyperparameter changed between attempts (or none was recorded)."
        )
    if not rec.sections["utilization"]:
        rec.missing["utilization"] = "No GPU telemetry: no GPU, or the sampler was off."


def stragglers(store: Store, run: str, attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hosts that lagged the others of their launch (#19, `query/stragglers.py`)."""
    from logbook.query.stragglers import read_paces

    labels = {a["attempt_id"]: a.get("label") for a in attempts}
    return [
        {**p.as_row(), "label": labels.get(p.attempt_id)}
        for p in read_paces(store, run)
        if p.straggler
    ]


def _has_any_rows(store: Store, run: str) -> bool:
    """Whether any table holds rows of `run`: a run with notes or metrics and no attempt yet (an
    import, a damaged attempts part) still gets a chronicle that says so."""
    from logbook import schema
    from logbook.store import layout

    layout.check_run_name(run)
    return run in store.run_names() or any(
        store.part_files(table, run) for table in schema.tables()
    )


def _events(
    con: duckdb.DuckDBPyConnection, run: str, attempts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The run's events in time order, those of one time in the order they were recorded (a
    file's order, for an import; #16): read in the store's order (parts by name, rows as written;
    DuckDB keeps it without ORDER BY), then sorted stably by time."""
    rows = _rows(
        con,
        "select time, step, kind, severity, source, message, data, host, attempt_id, seq, "
        "time_precision, time_until, step_until, step_approx from events where run = $run",
        run,
    )
    labels = {a["attempt_id"]: a["label"] for a in attempts}
    for e in rows:
        e["attempt"] = labels.get(e.pop("attempt_id"))
    # Events of one time in their file's order (an imported history dates several to one day);
    # recorded ones (no seq) as read, the sort being stable.
    rows.sort(key=lambda e: (e["time"], e["seq"] is None, e["seq"] or 0))
    return rows


def _hardware(con: duckdb.DuckDBPyConnection, run: str) -> list[dict[str, Any]]:
    """Hosts grouped by what they had at launch: GPUs, driver, CPU, memory, OS."""
    return _rows(
        con,
        """
        with h as (
            select coalesce(s.host, a.host) as host,
                   max(value) filter (where kind = 'gpu' and name = 'count') as gpus,
                   max(value) filter (where kind = 'gpu' and name = '0.name') as gpu_name,
                   max(value) filter (where kind = 'gpu' and name = 'driver') as driver,
                   max(value) filter (where kind = 'host' and name = 'cpu_model') as cpu_model,
                   max(value) filter (where kind = 'host' and name = 'cpu_cores_logical') as cpus,
                   max(try_cast(value as double)) filter (where kind = 'host' and name = 'memory_bytes')
                       as memory_bytes,
                   max(value) filter (where kind = 'host' and name = 'os') as os,
                   count(distinct attempt_id) as attempts
            from snapshots s join attempts a using (attempt_id)
            where a.run = $run and s.kind in ('gpu', 'host') and s.status = 'ok'
            group by 1
        )
        select count(*) as hosts, list(host order by host)[1:3] as examples, gpus, gpu_name, driver,
               cpu_model, cpus, memory_bytes, os, max(attempts) as attempts
        from h group by all order by hosts desc
        """,
        run,
    )


def _identities(con: duckdb.DuckDBPyConnection, run: str) -> dict[str, list[str]]:
    """Every host and user name the record holds (the rows' own columns, and the names snapshots
    hold as values), for --anonymize to replace wherever they appear."""
    rows = _rows(
        con,
        """
        select distinct case when s.name in ('hostname', 'HOSTNAME') then 'host' else 'user' end
                   as what,
               case when s.name = 'HOME' then regexp_extract(s.value, '([^/]+)/?$', 1)
                    else s.value end as value
        from snapshots s join attempts a using (attempt_id)
        where a.run = $run and s.value is not null and s.status = 'ok'
          and ((s.kind = 'host' and s.name in ('hostname', 'user'))
               or (s.kind = 'env' and s.name in ('USER', 'LOGNAME', 'HOME', 'HOSTNAME')))
        union select 'host', host from node_changes where run = $run
        union select 'host', host from attempt_changes where run = $run
        union select 'user', "user" from attempt_changes where run = $run
        union select 'host', host from runs where run = $run
        union select 'user', "user" from runs where run = $run
        union select 'host', host from events where run = $run
        union select 'host', s.host from snapshots s join attempts a using (attempt_id)
              where a.run = $run
        """,
        run,
    )
    return {
        "hosts": sorted(r["value"] for r in rows if r["what"] == "host" and r["value"]),
        "users": sorted(r["value"] for r in rows if r["what"] == "user" and r["value"]),
    }


def _evidence_lines(evidence: str | None) -> list[str]:
    try:
        doc = json.loads(evidence) if evidence else {}
    except ValueError:
        return [evidence] if evidence else []
    lines = doc.get("lines") if isinstance(doc, dict) else None
    return [str(x) for x in lines][-20:] if isinstance(lines, list) else []


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, run: str, **params: Any
) -> list[dict[str, Any]]:
    result = con.sql(sql, params={"run": run, **params}).to_arrow_table()
    return result.to_pylist()  # type: ignore[no-any-return]


def _one(con: duckdb.DuckDBPyConnection, sql: str, run: str) -> dict[str, Any] | None:
    rows = _rows(con, sql, run)
    return rows[0] if rows else None
