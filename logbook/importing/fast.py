"""Metric rows of JSON lines checked in DuckDB, a block of lines at once (#16).

A big history is mostly metric rows of one plain shape; parsing and checking them one by one in
Python was most of an import's time. Here DuckDB parses a block's lines and takes the metric rows
whose every field has the plain shape: known fields once each, `time` an ISO 8601 instant, `step` a
JSON integer, values finite JSON numbers or null, no `attempt`. Every other line, bad ones
included, goes back to the row-by-row checks (`Collector.add`), so each error is reported there,
by its line and in the same words, in the same single pass; a row taken here is one those checks
would have taken with the same points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from logbook.errors import LogbookError
from logbook.importing.read import Bad, Block
from logbook.store import layout

if TYPE_CHECKING:
    import duckdb

    from logbook.importing.collect import Collector

# The instants Python's datetime.fromisoformat and DuckDB read alike (others: row by row).
_INSTANT = (
    r"^\d{4}-\d{2}-\d{2}([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?)?$"
)
_FIELDS = ["type", "run", "time", "step", "metrics", "name", "value"]
_PATHS = "[" + ", ".join(f"'$.{f}'" for f in _FIELDS) + "]"
_PRESENT = " + ".join(f"(f[{i}] is not null)::int" for i in range(1, len(_FIELDS) + 1))

# One row per line that may be a plain metric row: its fields as JSON, parsed once. A row with a
# field of another name, or one field twice, has more keys than known fields present. DuckDB's
# JSON reader allows a trailing comma, which Python's does not: such lines go row by row.
_PARSE = """
create or replace temp table _rows as
select line, f[2] as run_json, f[3] ->> '$' as time_text, f[4] as step_json,
       f[5] as metrics, f[6] as name_json, f[7] as value_json
from (
    select line, json_extract(text, $paths) as f, len(json_keys(text)) as keys
    from _lines
    where json_valid(text) and not regexp_matches(text, ',\\s*[}\\]]')
)
where f[1]::varchar = '"metric"' and keys = $present
"""

# The plain rows; `run` null where the row gives none (or null, or "": the default).
_PLAIN = """
create or replace temp table _plain as
select * exclude (run_ok, step_ok, time_text) from (
    select line,
           case when run_json is null or run_json in ('null', '""') then null
                else run_json ->> '$' end as run,
           run_json is null or run_json in ('null', '""') or json_type(run_json) = 'VARCHAR'
               as run_ok,
           try_cast(time_text as timestamptz) as time, time_text,
           case when step_json is null or step_json = 'null' then null
                else try_cast(step_json as bigint) end as step,
           step_json is null or step_json = 'null'
               or (json_type(step_json) in ('BIGINT', 'UBIGINT')
                   and try_cast(step_json as bigint) is not null) as step_ok,
           case when metrics is not null then json_keys(metrics) else [name_json ->> '$'] end
               as names,
           case when metrics is not null then json_extract(metrics, '$.*') else [value_json] end
               as vals
    from _rows
    where (metrics is not null and name_json is null and value_json is null
           and json_type(metrics) = 'OBJECT')
       or (metrics is null and json_type(name_json) = 'VARCHAR' and value_json is not null)
)
where run_ok and step_ok and time is not null and regexp_matches(time_text, $instant)
  and len(names) > 0
"""

# Their points; `plain` false for a point whose value is not a finite JSON number or null. Rows
# that name a metric twice are left out ($twice): Python's json keeps the last value of a name.
_POINTS = """
create or replace temp table _points as
select line, run, time, step, raw, try_cast(val as double) as value,
       json_type(val) = 'NULL' or json_type(val) in ('DOUBLE', 'BIGINT', 'UBIGINT')
           and coalesce(isfinite(try_cast(val as double)), false) as plain
from (select line, run, time, step, unnest(names) as raw, unnest(vals) as val
      from _plain $twice)
"""

# Rows with a point that is not plain after all: a value, a name or a run the row-by-row checks
# would refuse or read otherwise.
_LEAVE = """
create or replace temp table _leave as
select distinct line from _points
where not plain or not coalesce(raw in (select raw from _names), false)
   or case when run is null then $default is null else run not in (select run from _runs) end
"""

_INSERT = """
insert into m_new
select coalesce(p.run, $default), p.time, p.step, n.name, p.value, null, p.line
from _points p join _names n using (raw) anti join _leave using (line)
"""


def take_metrics(
    con: duckdb.DuckDBPyConnection, block: Block, found: Collector
) -> tuple[list[int], dict[str, int]]:
    """Add the plain metric rows of `block` to `found`'s metric table.

    Returns:
        The indexes in `block` of the rows left for the row-by-row checks, in order; and the runs
        of the rows taken, each with its first line (for `Collector.note_run`, after those rows).
    """
    import numpy as np
    import pyarrow as pa

    first, count = block.first, len(block)
    # The lines as Arrow strings over the bytes read, not copied line by line.
    text = pa.StringArray.from_buffers(
        count, pa.py_buffer(block.starts.astype(np.int32)), pa.py_buffer(block.data)
    )
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:  # a line is not UTF-8: row by row, which names it
        return list(range(count)), {}
    con.register("_lines", pa.table({"line": np.arange(first, first + count), "text": text}))
    try:
        con.execute(_PARSE.replace("$paths", _PATHS).replace("$present", _PRESENT))
        con.execute(_PLAIN.replace("$instant", "'" + _INSTANT + "'"))
    finally:
        con.unregister("_lines")
    names, twice = _names(con, found)
    con.execute(_POINTS.replace("$twice", _not_in(twice)), twice or None)
    runs = _good_runs(con)
    con.register("_runs", pa.table({"run": pa.array(runs, pa.string())}))
    con.register("_names", pa.table({"raw": list(names), "name": list(names.values())}))
    default = [found.default_run]
    try:
        con.execute(_LEAVE.replace("$default", "?::varchar"), default)
        con.execute(_INSERT.replace("$default", "?::varchar"), default)
    finally:
        con.unregister("_runs")
        con.unregister("_names")
    con.execute(
        "create or replace temp table _taken as select coalesce(run, ?::varchar) as run, line, "
        "count(*) as points from _points anti join _leave using (line) group by all",
        default,
    )
    found.metric_count += _one(con, "select coalesce(sum(points), 0) from _taken")
    first_lines = dict(con.execute("select run, min(line) from _taken group by run").fetchall())
    left = np.ones(count, dtype=bool)
    left[con.execute("select line from _taken").fetchnumpy()["line"] - first] = False
    return np.flatnonzero(left).tolist(), first_lines


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _good_runs(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The runs the plain rows name whose names are good (the others go row by row)."""
    out = []
    for (run,) in con.execute("select distinct run from _points where run is not null").fetchall():
        try:
            layout.check_run_name(run)
        except LogbookError:
            continue
        out.append(run)
    return out


def _names(con: duckdb.DuckDBPyConnection, found: Collector) -> tuple[dict[str, str], list[Any]]:
    """Each metric name of the plain rows -> the name recorded, where it has one; and the lists
    of names that name one twice. Rows have few lists of names (most have one), read once each."""
    names: dict[str, str] = {}
    twice = []
    for (listed,) in con.execute("select distinct names from _plain").fetchall():
        if len(set(listed)) < len(listed):
            twice.append(listed)
        for raw in listed:
            if raw not in names:
                try:
                    names[raw] = found.name_of(raw)
                except Bad:
                    continue
    return names, twice


def _not_in(twice: list[Any]) -> str:
    """The condition that leaves out rows of the lists of names in `twice`, if any."""
    return f"where names not in ({', '.join('?' for _ in twice)})" if twice else ""
