"""DuckDB views over the store's tables, free SQL, and the canned reports.

Every table in schemas/ is a view of the same name. `attempts` keeps the newest row of each
attempt (its current state); `attempt_changes` holds every row; `nodes` and `node_changes` do the
same for the hosts of a launch over several; `runs` keeps the first row of each run; `metrics`
leaves out the points parsed from the output that repeat a point of the Python API (see
METRICS_VIEW), and `all_metrics` holds every point. Reports bind user values as parameters; none is pasted into SQL.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from logbook import schema as schemas
from logbook.errors import BadQuery, ReadOnlyQuery, StoreCorrupt
from logbook.query import attempt_time, gpu_count, kept_metrics, lineages, lost_work
from logbook.store import Snapshot, Store, layout, parts

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as pads

    from logbook.record.unparsed import Unparsed

_STATUS_RANK = "case status when 'running' then 0 else 1 end"
# Tables of states appended over time: the view of the table's name keeps the newest row of each.
_CHANGES = {"attempts": "attempt_changes", "nodes": "node_changes"}
# Every metric point recorded; the `metrics` view leaves out the output's copies of API points.
_RAW = {**_CHANGES, "metrics": "all_metrics"}
# query/kept_metrics.py: the output's copies of API points left out (`_load` writes it anew)
METRICS_VIEW = kept_metrics.view(any_api=True)


def connect(
    store: Store, run: str | None = None, *, gpu_samples: bool = True
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of `store`; with `run`, the views
    hold that run's rows only, and only its journals and parts are read (a live view refreshes
    every few seconds on a store of many runs).

    The connection is read-only for the files: the views read pyarrow datasets registered on it,
    then external access is turned off and the settings locked, so no statement can write, attach,
    export, install or load a file, nor turn that back on (`allowed_directories` would still let
    COPY and ATTACH write inside the store).

    `gpu_samples=False` leaves `attempt_gpus` (and `goodput`) without the sampled GPU counts, for
    callers that never read them (see `_load`).

    Raises:
        StoreCorrupt: the store's parts kept vanishing while they were listed.
    """
    con = _connection()
    try:
        snap = store.reading(lambda: store.snapshot(schemas.tables(), run))
        _load(con, snap, gpu_samples=gpu_samples)
    except BaseException:
        con.close()
        raise
    return con


def _connection(sql: str | None = None, *, derived: bool = True) -> duckdb.DuckDBPyConnection:
    """The views over empty tables, locked; `_load` then gives them a snapshot of the store. The
    views are made first so that little time passes between listing the parts and reading them.
    With `sql`, only the derived views it names, and theirs (`_derived_for`): binding them all
    took DuckDB 0.3-1 s, every reading command's fixed cost (#19); none without `derived` (the
    SQL brings them along itself: `_inlined`)."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("set TimeZone = 'UTC'")
    con.execute("set enable_progress_bar = false")  # a library prints nothing (long scans drew one)
    _load(
        con,
        Snapshot({t: [] for t in schemas.tables()}, {t: [] for t in schemas.tables()}),
        views=False,
    )
    for table in schemas.tables():
        _create_view(con, table, _RAW.get(table, table))
    for table, key, replace in (
        ("attempts", "attempt_id", f" replace ({lineages.LINEAGE} as lineage)"),
        ("nodes", "attempt_id, node", ""),
    ):
        con.execute(
            f"create view {table} as select * exclude (_n){replace} from (select *, "
            f"row_number() over (partition by {key} order by recorded_at desc, "
            f"{_STATUS_RANK} desc) as _n from {_CHANGES[table]}) where _n = 1"
        )
    con.execute(METRICS_VIEW)
    con.execute(attempt_time.OPEN_VIEW)
    con.execute(attempt_time.open_points_view(False))
    con.execute(gpu_count.sampled_view([]))
    for view in _derived_for(sql) if derived else ():
        con.execute(view)
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")
    return con


_VIEW_NAME = re.compile(r"create\s+(?:or\s+replace\s+)?view\s+(\w+)", re.IGNORECASE)


@functools.cache
def _derived_views() -> tuple[tuple[str, str, frozenset[str]], ...]:
    """(name, SQL, the derived views it reads) of each derived view, in creation order."""
    named = []
    for view in _DERIVED_VIEWS:
        found = _VIEW_NAME.search(view)
        assert found is not None, view
        named.append((found.group(1), view))
    return tuple(
        (name, view, frozenset(n for n, _ in named if n != name and _names(view, n)))
        for name, view in named
    )


_LEADING_COMMENTS = re.compile(r"\s*(?:--[^\n]*(?:\n|$)\s*|/\*.*?\*/\s*)*", re.DOTALL)
_LITERALS_AND_COMMENTS = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.DOTALL)
_HEAD = re.compile(r"(select|with)\b(\s+recursive\b)?", re.IGNORECASE)


def _inlined(sql: str) -> str | None:
    """`sql` with the derived views it reads put in front of it as common table expressions, or
    None where that cannot be done for sure (more than one statement, WITH RECURSIVE, a statement
    that is not a query, a CTE of its own named like one of them): then the views are made.

    DuckDB binds a view when it is made and again in each query that reads it: for `incidents
    --by cause` at OPT's size the views cost 0.24 s of binding, and the query's own binding
    of their bodies 0.1 (#19)."""
    views = _derived_for(sql)
    if not views:
        return sql
    body = sql[_LEADING_COMMENTS.match(sql).end() :]  # type: ignore[union-attr]
    head = _HEAD.match(body)
    if (
        head is None
        or head.group(2)
        or ";" in _LITERALS_AND_COMMENTS.sub("", body).rstrip("; \n\t")
    ):
        return None
    ctes = []
    for view in views:
        found = _VIEW_NAME.search(view)
        assert found is not None, view
        name, rest = found.group(1), view[found.end() :].lstrip()
        if re.search(rf"\b{name}\s+as\s*(?:not\s+)?(?:materialized\s*)?\(", sql, re.I):
            return None
        assert rest[:2].lower() == "as", view
        ctes.append(f"{name} as (\n{rest[2:]}\n)")  # a newline: the body may end in a comment
    joined = ",\n".join(ctes)
    if head.group(1).lower() == "with":
        return f"with {joined},\n{body[head.end() :]}"
    return f"with {joined}\n{body}"


def _names(sql: str, view: str) -> bool:
    return re.search(rf"\b{view}\b", sql, re.IGNORECASE) is not None


def _derived_for(sql: str | None) -> list[str]:
    """The derived views `sql` may read, directly or through another (every one without `sql`);
    and those the load's own queries read (`gpu_count.NEEDS_SAMPLES`)."""
    views = _derived_views()
    if sql is None:
        return [view for _, view, _ in views]
    want = _wanted(sql + gpu_count.NEEDS_SAMPLES)
    return [view for name, view, _ in views if name in want]


@functools.lru_cache(maxsize=32)  # asked of one SQL by the inlining, the load and the checks
def _wanted(sql: str) -> frozenset[str]:
    """The names of the derived views `sql` reads, directly or through another (a name in a
    comment or a string literal reads none: `incidents --by cause` named goodput in comments)."""
    views = _derived_views()
    sql = _LITERALS_AND_COMMENTS.sub(" ", sql)
    want = {name for name, _, _ in views if _names(sql, name)}
    for name, _, deps in reversed(views):  # a view reads only views made before it
        if name in want:
            want |= deps
    return frozenset(want)


def _load(
    con: duckdb.DuckDBPyConnection,
    snap: Snapshot,
    *,
    views: bool = True,
    gpu_samples: bool = True,
    metrics: bool = True,
) -> None:
    """Point the views at `snap`: its parts as pyarrow datasets, its journal rows as tables;
    `views`: the views exist (not yet while `_connection` makes them), and then the views whose
    constant filters depend on the data are written; `gpu_samples`: also the GPU samples that
    `attempt_gpus` reads (a read of the launch snapshots, about 0.3 s at OPT's size, so only for
    SQL that reads them: `uses_gpu_samples`); `metrics`: the SQL may read the `metrics` view,
    whose test of the API's points is left out where there are none (a scan for them; without
    `metrics` the view keeps the test, which costs only where it is read)."""
    for table in schemas.tables():
        con.register(f"_parts_{table}", _dataset(table, snap.parts[table]))
        journal = parts.to_arrow(table, snap.journal_rows[table], with_partitions=True)
        con.register(f"_journal_{table}", journal)
    import pyarrow as pa

    held = pa.table({"attempt_id": pa.array(sorted(snap.journal_attempts), pa.string())})
    con.register("_journal_attempt_ids", held)
    if views:  # the open attempts' points: none to read most often (attempt_time.py)
        row = con.execute("select exists (select 1 from _open_attempts)").fetchone()
        con.execute(attempt_time.open_points_view(bool(row and row[0])))
        # Points of the Python API: none in most runs, and then no point is a copy of one.
        api = "select exists (select 1 from all_metrics where source = 'api')"
        row = con.execute(api).fetchone() if metrics else (True,)  # unread: the view with its test
        con.execute(kept_metrics.view(bool(row and row[0])))
    if views and gpu_samples:
        needs = [r[0] for r in con.execute(gpu_count.NEEDS_SAMPLES).fetchall()]
        con.execute(gpu_count.sampled_view(needs))


FAILURES = lineages.FAILURES
# An ended attempt's class as every report names it: the crash class, else "hung" for an attempt
# the hang watch stopped (the status's word, as `incidents` and `goodput` say it; the event is
# `hang`). One expression, so `show`, `incidents`, `goodput` and the chronicle agree (#16).
ATTEMPT_CLASS = "coalesce(a.crash_class, case when a.status = 'hung' then 'hung' end)"

# The phases goodput splits off (#19), in the order they are taken from the time: (phase, column).
GOODPUT_PHASES = (
    ("checkpoint_save", "checkpoint_s"),
    ("checkpoint_restore", "restore_s"),
    ("evaluation", "evaluation_s"),
    ("compilation", "compilation_s"),
    ("data_loading", "data_loading_s"),
)


def _goodput_view() -> str:
    """The `_goodput_time` view, `goodput` without the GPUs. A phase that began before the attempt's first step comes off its
    start-up, a later one off its trained time (after the lost work); each in turn, so that the
    parts never exceed the time they come from (least(time, sum of the first k) - least(time, sum
    of the first k-1)). Where several sources timed one phase (the output, the API, a callback),
    the one that saw the most counts, never their sum. A checkpoint save is the longer of the
    `phase` events and the writes --checkpoint-dir measured."""
    names = [p for p, _ in GOODPUT_PHASES]
    sums = ", ".join(
        f"sum(d) filter (where phase = '{p}' and pre) as {p}_pre, "
        f"sum(d) filter (where phase = '{p}' and not pre) as {p}_post"
        for p in names
    )
    maxes = ", ".join(f"max({p}_pre) as {p}_pre, max({p}_post) as {p}_post" for p in names)
    raw = ", ".join(
        f"coalesce(ph.{p}_pre, 0) as x_{p}_pre, "
        + (
            f"greatest(coalesce(ph.{p}_post, 0), coalesce(ck.checkpoint_s, 0)) as x_{p}_post"
            if p == "checkpoint_save"
            else f"coalesce(ph.{p}_post, 0) as x_{p}_post"
        )
        for p in names
    )

    def cum(k: int, when: str) -> str:
        return " + ".join([f"x_{p}_{when}" for p in names[:k]] or ["0"])

    def carved(k: int, when: str, avail: str) -> str:
        return f"(least({avail}, {cum(k + 1, when)}) - least({avail}, {cum(k, when)}))"

    pre_all = f"least(startup_part, {cum(len(names), 'pre')})"
    post_all = f"least(rest - coalesce(lost_part, 0), {cum(len(names), 'post')})"
    # of an attempt whose own time is unknown (known only to a day or range), every part is
    # unknown (#16)
    parts = ", ".join(
        f"case when wall is not null then"
        f" case when startup_part is not null then {carved(k, 'pre', 'startup_part')} else 0 end"
        f" + case when split_known then {carved(k, 'post', 'rest - coalesce(lost_part, 0)')}"
        f" else 0 end end as {col}"
        for k, (_, col) in enumerate(GOODPUT_PHASES)
    )
    cols = ", ".join(col for _, col in GOODPUT_PHASES)
    return f"""
    create view _goodput_time as
    with ck as (
        select attempt_id, sum(coalesce(try_cast(json_extract(data, '$.write_s') as double), 0))
               as checkpoint_s
        from events where kind = 'checkpoint' group by attempt_id
    ),
    pe as (  -- the phases (#19): before the first step or after, by source
        select e.attempt_id, json_extract_string(e.data, '$.phase') as phase,
               coalesce(json_extract_string(e.data, '$.how'), e.source) as how,
               greatest(coalesce(try_cast(json_extract(e.data, '$.duration_s') as double), 0), 0)
                   as d,
               t.first_step_time is null or e.time < t.first_step_time as pre
        from events e join attempt_time t using (attempt_id)
        where e.kind = 'phase'
    ),
    pb as (select attempt_id, how, {sums} from pe group by attempt_id, how),
    ph as (select attempt_id, {maxes} from pb group by attempt_id),
    s1 as (
        select p.*, {raw},
               p.counted_s as wall,
               -- the time an earlier attempt covered comes off the start (least() and greatest()
               -- skip nulls: unknown stays unknown only through the case)
               case when p.startup_time_s is not null
                    then least(greatest(p.startup_time_s - p.overlap_s, 0), p.counted_s) end
                   as startup_part,
               l.lost_steps, l.lost_work_s,
               p.status in ('completed', 'running') or l.lost_work_s is not null as lost_known
        from attempt_pace p left join ck using (attempt_id)
               left join lost_work l using (attempt_id) left join ph using (attempt_id)
    ),
    s2 as (
        select *, case when hung_time_s is not null
                       then least(hung_time_s, wall - coalesce(startup_part, 0)) end as hung_part
        from s1
    ),
    s3 as (
        select *, wall - coalesce(startup_part, 0) - coalesce(hung_part, 0) as rest,
               startup_part is not null and hung_part is not null as split_known
        from s2
    ),
    s4 as (
        select *, case when split_known and lost_known
                       then least(coalesce(lost_work_s, 0), rest) end as lost_part
        from s3
    ),
    s5 as (
        select *, {parts},
               case when split_known then {post_all} else 0 end as phases_post
        from s4
    )
    select run, label, attempt_id, status, start_time, wall as wall_s,
           -- time not split is filed under unknown, not productive (#16)
           case when split_known and lost_known then rest - lost_part - phases_post
                when wall is not null then 0 end as productive_s,
           lost_part as lost_s, lost_steps, hung_part as hung_s,
           startup_part - {pre_all} as startup_s, {cols},
           case when split_known and lost_known then 0
                when split_known then rest - phases_post else rest end as unknown_s,
           gap_before_s as downtime_before_s,
           is_open as open, overlap_s, case when overlap_s > 0 then covered_by end as overlapped_by,
           time_note as note
    from s5
    """


# The split with each attempt's GPUs: the time alone (`_goodput_time`) does without the launch
# snapshots, whose million rows on the OPT-size store cost more than the rest (#19).
GOODPUT_VIEW = """
create view goodput as
-- summed over the hosts of a launch over several, else the GPUs sampled (gpu_count.py); a GPU
-- count not on record is unknown, and so are its GPU-hours (#16), never 0
select t.run, t.label, t.attempt_id, t.status, t.start_time, g.gpus,
       coalesce(g.gpus_basis, 'unknown: no GPU count on record') as gpus_basis,
       t.* exclude (run, label, attempt_id, status, start_time)
from _goodput_time t left join attempt_gpus g using (attempt_id)
"""


_DERIVED_VIEWS = (
    gpu_count.VIEW,
    gpu_count.COUNT_VIEW,
    gpu_count.HOSTS_VIEW,
    gpu_count.ATTEMPT_GPUS_VIEW,
    lineages.ATTEMPT_LINEAGE_VIEW,
    attempt_time.VIEW,
    lineages.VIEW,
    # Each attempt with its pace in seconds per step (and its time, attempt_time.py).
    """
    create view attempt_pace as
    select *,
           -- Step times are when logbook read the lines (every 0.5 s): for a short attempt fall
           -- back on its whole time over the steps it made.
           case when last_step > first_step and epoch(last_step_time - first_step_time) >= 2
                then epoch(last_step_time - first_step_time) / (last_step - first_step)
                when last_step > coalesce(resumed_from_step, 0)
                then wall_s / (last_step - coalesce(resumed_from_step, 0)) end as s_per_step
    from attempt_time
    """,
    lost_work.VIEW,
    # Each attempt that did not complete beside the one that followed it: what its end cost (lost
    # work: lost_work.py; hung time and overlaps: attempt_time.py). A part not known is null, and
    # then so is the sum, time_lost_s; `unknown` says which part and why.
    """
    create view incidents as
    with i as (
        select a.run, a.label, a.lineage, a.attempt_id, a.status, a.start_time,
               coalesce(a.crash_class, a.status) as class,
               a.summary, a.end_time as time, a.last_step,
               l.restart_step, l.restart_basis, l.lost_steps, l.lost_work_s,
               a.hung_time_s as hung_s,
               -- a relaunch that started before this attempt ended waited for nothing
               case when l.next_start_time is not null and a.end_precision is null
                         and n.start_precision is null  -- to the day or a range: not known
                    then greatest(epoch(l.next_start_time - a.end_at), 0) end as downtime_s,
               l.next_start_time is not null as has_next,
               case when l.next_attempt_id is null then 0
                    when n.first_step_time is not null  -- from when this attempt had ended
                    then least(greatest(epoch(n.first_step_time
                                              - greatest(n.start_time, a.end_at)), 0), n.wall_s)
                    -- a recorded relaunch without steps: its time is its own incident
                    when n.wrapper_pid is not null then 0 end as restart_startup_s,
               l.next_label, a.decision, a.decision_reason, a.lost_h_stated,
               -- the second level of cause (#19): which part, planned or not, and who relaunched
               a.component, a.rule,
               coalesce(a.planned, case when a.status in ('interrupted', 'preempted') then true
                                        when a.status in ('crashed', 'hung', 'lost') then false
                                        end) as planned,
               -- an imported history's "restart" says nothing of who relaunched (#16: BLOOM's
               -- were by hand), so only a recorded one's (a wrapper decided) is automatic
               coalesce(a.handled, case when a.decision = 'restart' and a.wrapper_pid is not null
                                        then 'automatic'
                                        -- the next launch: by the policy, or a new logbook run
                                        when n.restart_count > 0 then 'automatic'
                                        when n.restart_count = 0 then 'manual' end) as handled,
               nullif(concat_ws('; ', a.time_note,
                   case when l.next_start_time < a.end_at
                        then printf('%s started %.0f s before it ended (counted once)',
                                    l.next_label, epoch(a.end_at - l.next_start_time)) end), '')
                   as note
        from attempt_time a join lost_work l using (attempt_id)
             left join attempt_time n on n.attempt_id = l.next_attempt_id
        where a.status not in ('completed', 'running')
    )
    select * exclude (has_next, lost_h_stated),
           -- hours lost as a history states them come first, and say so (time_lost_basis)
           coalesce(lost_h_stated * 3600, lost_work_s + hung_s
               + case when has_next then downtime_s else 0 end + restart_startup_s) as time_lost_s,
           case when lost_h_stated is not null then 'stated by the imported history'
                -- no basis for a figure that is not known (#16)
                when time_lost_s is not null then 'worked out' end as time_lost_basis,
           nullif(concat_ws('; ',
               case when lost_h_stated is not null then null
                    when has_next and downtime_s is null
                    then 'downtime: its end or the next start is known only to a day or range' end,
               case when lost_work_s is null
                    then 'lost work: ' || case when last_step is null then 'no step times'
                                               else 'no restart step' end end,
               case when hung_s is null then 'hung time: no step times' end,
               case when restart_startup_s is null
                    then 'start-up of ' || next_label || ': no step times' end), '') as unknown
    from i
    """,
    # Where each attempt's wall-clock time went, counted once where attempts overlap
    # (attempt_time.py): start-up until the first step, time hung, lost work (its steps the run
    # did not keep, lost_work.py), the phases (checkpoint saves and restores, evaluation,
    # compilation, data loading: `phase` events, #19, and checkpoint writes), the rest productive;
    # and unknown, what cannot be split: an attempt without step times, or a failed one whose lost
    # work is not known. Plus the downtime since the attempts before it. The parts add up to
    # wall_s.
    _goodput_view(),
    GOODPUT_VIEW,
)


def _create_view(con: duckdb.DuckDBPyConnection, table: str, name: str) -> None:
    cols = ", ".join(f'"{c}"' for c in schemas.load(table).names)
    source = (
        f"select {cols} from _parts_{table} union all by name select {cols} from _journal_{table}"
    )
    if table == "runs":  # the first declaration of each run wins
        source = (
            f"select {cols} from (select *, row_number() over (partition by run order by created_at) "
            f"as _n from ({source})) where _n = 1"
        )
    con.execute(f"create view {name} as select {cols} from ({source})")


# Strings that repeat on every row of the big tables (samples, metrics, events): read as
# dictionaries, they reach DuckDB about twice as fast (`logbook cost` groups samples by attempt
# and host). A column of mostly distinct strings (messages) is many times slower that way.
_DICTIONARY = frozenset(
    {"attempt_id", "host", "scope", "name", "source", "kind", "severity", "status", "launch"}
)


def _dataset(table: str, files: Sequence[Path]) -> pads.Dataset:
    """The parts of `table` as one pyarrow dataset: the table's schema (a part written before a
    column existed reads it as null), the run from each part's Hive folder. Made from the listing
    as it is, without opening a file; DuckDB pushes its projection and filters into the scan."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.fs

    fields = []
    for f in schemas.load(table).arrow(with_partitions=True):
        if f.type == pa.string() and f.name in _DICTIONARY:
            f = f.with_type(pa.dictionary(pa.int32(), pa.string()))
        fields.append(f.with_nullable(True))  # a part from before a column existed has none
    dictionary = [f.name for f in fields if pa.types.is_dictionary(f.type)]
    fmt = pads.ParquetFileFormat(
        read_options=pads.ParquetReadOptions(dictionary_columns=dictionary)
    )
    local = pyarrow.fs.LocalFileSystem()
    fragments = [
        fmt.make_fragment(
            str(path), local, partition_expression=pads.field("run") == layout.run_of(path.parent)
        )
        for path in files
    ]
    return pads.FileSystemDataset(fragments, pa.schema(fields), fmt, local)


def run_sql(store: Store, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pa.Table:
    """Run SQL over the views and return the result. A part that a compaction merged away between
    the listing and the read sends it back to list again (a few times).

    Raises:
        BadQuery: DuckDB refused the SQL; the message is DuckDB's.
        ReadOnlyQuery: the SQL would write or reach a file, or change a setting.
        StoreCorrupt: the store cannot be read, or kept changing while it was read.
    """
    import duckdb

    try:
        return _execute(store, sql, params)
    except _ViewsFailed as e:
        damaged = store.check_all_parts()
        if not damaged:
            raise StoreCorrupt(
                f"cannot read {store.where}: {e}", hint='run "logbook doctor"'
            ) from e
    except duckdb.Error as e:
        _refuse_writes(e)
        users_mistake = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)
        # A part can look whole and still be damaged inside: then check them all and try again.
        if isinstance(e, users_mistake) or not store.check_all_parts():
            raise BadQuery(str(e).strip()) from e
    try:
        return _execute(store, sql, params)
    except (duckdb.Error, _ViewsFailed) as e:
        _refuse_writes(e)
        raise BadQuery(str(e).strip()) from e


def _refuse_writes(error: Exception) -> None:
    """Raise ReadOnlyQuery if DuckDB refused `error`'s statement because the connection is locked."""
    import duckdb

    locked = isinstance(
        error, duckdb.InvalidInputException
    ) and "configuration has been locked" in str(error)
    if isinstance(error, duckdb.PermissionException) or locked:
        raise ReadOnlyQuery(
            f"logbook query is read-only: {str(error).strip()}",
            hint="it reads the store's tables, and refuses COPY ... TO, ATTACH, EXPORT DATABASE, "
            "INSTALL, LOAD, SET and reading or writing any other file",
        ) from error


def _reads_metrics(sql: str) -> bool:
    """Whether `sql` may read the `metrics` view, itself or through a derived view."""
    text = " ".join([sql, *_derived_for(sql)])
    return _names(_LITERALS_AND_COMMENTS.sub(" ", text), "metrics")


def uses_gpu_samples(sql: str) -> bool:
    """Whether `sql` may read `attempt_gpus` (itself, or a view built on it: `goodput`), or the
    samples it counts. `_goodput_time`, the split without the GPUs, does not: `incidents --by
    cause` paid the check of the GPU counts for nothing (#19)."""
    return _names(sql, "_sampled_gpus") or "attempt_gpus" in _wanted(sql)


class _ViewsFailed(Exception):
    """Our own views did not bind: a part's contents are damaged, not the user's SQL."""


def _execute(store: Store, sql: str, params: list[Any] | dict[str, Any] | None) -> pa.Table:
    """Run `sql` on a fresh connection over a fresh snapshot, again on a new one (a few times)
    when a part listed vanished before it was read."""
    import duckdb

    inlined = _inlined(sql)
    reads = {"gpu_samples": uses_gpu_samples(sql), "metrics": _reads_metrics(sql)}

    def attempt() -> pa.Table:
        try:
            con = _connection(sql, derived=inlined is None)
        except duckdb.Error as e:
            raise _ViewsFailed(str(e).strip()) from e
        try:
            _load(con, store.snapshot(schemas.tables()), **reads)
            if inlined is not None:
                try:
                    return con.sql(inlined, params=params or None).to_arrow_table()
                except duckdb.Error:
                    pass  # said again below, of the SQL as written: the message is of its text
                con.close()
                con = _connection(sql)
                _load(con, store.snapshot(schemas.tables()), **reads)
            result = con.sql(sql, params=params or None)
            if result is None:  # a statement with no result set (create view ...)
                import pyarrow as pa

                return pa.table({})
            return result.to_arrow_table()
        finally:
            con.close()

    return store.reading(attempt)


def wait_parsed(store: Store, run: str | None = None) -> list[Unparsed]:
    """Wait until no background parse of `run` (None: of any run) is at work, as the CLI's
    reading commands do first (record/unparsed.py); the ended attempts whose output is still
    unparsed after that (their finish was killed: `logbook reparse` parses them)."""
    from logbook.record.unparsed import settle

    return settle(store.root, run, say=lambda _message: None)


def list_runs(store: Store) -> pa.Table:
    """One row per run: attempts, status of the latest, first start, last end, total wall time
    (overlapping attempts counted once, open ones to their last evidence: attempt_time.py), and a
    note naming the attempts open or overlapping."""
    return run_sql(
        store,
        """
        select run,
               count(*) as attempts,
               -- of attempts started at one time (an imported range), the later label
               first(case when decision = 'gave_up' then 'gave_up' else status end
                     order by start_time desc, label desc) as latest_status,
               min(start_time) as first_start,
               max(end_at) as last_end,
               count(distinct lineage) as lineages,
               -- a sum over an attempt of unknown time is unknown, not the others' sum
               case when count(counted_s) = count(*) then sum(counted_s) end as wall_s,
               string_agg(label || ' ' || time_note, '; ' order by start_time, label) as note
        from attempt_time group by run order by first_start
        """,
    )


def show_run(store: Store, run: str) -> pa.Table:
    """The lineage of one run: one row per attempt, oldest first.

    Raises:
        NoSuchRun: the store has no such run.
    """
    store.check_run(run)
    return run_sql(
        store,
        f"""
        select a.label, a.lineage, a.parent_label as parent, a.status,
               {ATTEMPT_CLASS} as class,
               coalesce(cast(a.exit_code as varchar), a.signal_name) as exit,
               round(a.wall_s, 1) as duration_s,
               a.resumed_from_step as resumed_from,
               case when a.first_step is not null then concat(a.first_step, '-', a.last_step) end as steps,
               l.lost_steps, l.restart_basis, round(i.downtime_s, 1) as downtime_s,
               a.decision as then, a.summary, a.time_note as note,
               a.start_time, left(g.commit, 12) as git_commit, g.dirty as git_dirty,
               h.hosts
        from attempt_time a
        left join incidents i on i.attempt_id = a.attempt_id
        left join lost_work l on l.attempt_id = a.attempt_id
        left join (  -- every host of a launch snapshots the checkout: the leader's, else any
            select attempt_id,
                   arg_min(value, host is distinct from a_host) filter (where name = 'commit') as commit,
                   arg_min(value, host is distinct from a_host) filter (where name = 'dirty') = 'true' as dirty
            from snapshots join (select attempt_id, host as a_host from attempts) using (attempt_id)
            where kind = 'git' group by attempt_id
        ) g on g.attempt_id = a.attempt_id
        left join attempt_hosts h on h.attempt_id = a.attempt_id  -- query/gpu_count.py
        where a.run = ?
        order by a.start_time, a.label
        """,
        [run],
    )


def read_attempt(store: Store, run: str, label: str) -> dict[str, Any]:
    """The current state of one attempt, found by its label.

    Raises:
        NoSuchRun: the store has no such run.
        LogbookError: the run has no attempt with that label.
    """
    from logbook.errors import LogbookError

    store.check_run(run)
    rows = run_sql(
        store, "select * from attempts where run = ? and label = ?", [run, label]
    ).to_pylist()
    if not rows:
        labels = run_sql(
            store, "select label from attempts where run = ? order by start_time", [run]
        )
        known = ", ".join(labels.column(0).to_pylist())
        raise LogbookError(
            f'run "{run}" has no attempt {label} (it has: {known})',
            hint=f'see "logbook show {run}"',
        )
    return rows[0]  # type: ignore[no-any-return]


def incidents_by_class(store: Store, run: str) -> pa.Table:
    """Failures of a run by class: count, steps and time lost, mean time between failures (over
    the run's time, overlaps counted once and open attempts to their last evidence). A sum over
    parts that are all unknown is unknown (null), and so is "at least 0"; with some parts unknown
    it is the sum of the known ones, and `at_least` names the figures that are such a floor (#16);
    `unknown` says which parts are unknown and why, `note` what the time counts.

    Raises:
        NoSuchRun: the store has no such run.
    """
    store.check_run(run)
    failures = ", ".join(f"'{f}'" for f in FAILURES)
    figures = ("lost_steps", "time_lost_s", "hung_s", "downtime_s")

    def sums() -> str:
        # sum() skips nulls: the known parts, a floor when some are not known
        return ", ".join(
            f"case when count({c}) = count(*) or sum({c}) > 0 then round(sum({c}), 1) end as {c}"
            for c in figures
        )

    def floors() -> str:
        return "nullif(concat_ws(', ', {}), '') as at_least".format(
            ", ".join(
                f"case when count({c}) < count(*) and sum({c}) > 0 then '{c}' end" for c in figures
            )
        )

    # With several lineages, a row for each: its failures and MTBF within it (lineages.py).
    return run_sql(
        store,
        f"""
        with i as (
            -- an attempt that no attempt followed waited for nothing: its downtime is 0 in a sum
            select * replace (case when next_label is null then 0 else downtime_s end
                              as downtime_s)
            from incidents where run = $run
        ),
             total as (select sum(counted_s) as wall_s,
                              string_agg(label || ' ' || time_note, '; '
                                         order by start_time, label) as note
                       from attempt_time where run = $run),
             by_class as (
                 select class, count(*) as count, {sums()}, {floors()},
                        bool_or(status in ({failures})) as is_failure,
                        string_agg(label || ': ' || unknown, '; ' order by time, label) as unknown
                 from i group by class),
             failed as (
                 select count(*) as count, {sums()}, {floors()},
                        string_agg(label || ': ' || unknown, '; ' order by time, label) as unknown
                 from i where class in (select class from by_class where is_failure)),
             lin as (select lineage, started, mtbf_s, failures, counted_s from lineages
                     where run = $run and (select count(*) from lineages where run = $run) > 1),
             by_lineage as (
                 select lineage, count(*) as count, {sums()}, {floors()},
                        string_agg(label || ': ' || unknown, '; ' order by time, label) as unknown
                 from i where status in ({failures}) group by lineage),
             rows as (
                 select class, count, lost_steps, time_lost_s, hung_s, downtime_s,
                        case when is_failure then round((select wall_s from total) / count, 1)
                             end as mtbf_s,
                        at_least, unknown, null as note, 0 as part, null::timestamptz as started
                 from by_class
                 union all
                 select 'all failures', count,
                        -- no failure: nothing lost, rather than unknown
                        case when count = 0 then 0 else lost_steps end,
                        case when count = 0 then 0 else time_lost_s end,
                        case when count = 0 then 0 else hung_s end,
                        case when count = 0 then 0 else downtime_s end,
                        round((select wall_s from total) / nullif(count, 0), 1),
                        at_least, unknown, (select note from total), 1, null
                 from failed
                 union all
                 select 'all failures in lineage ' || lin.lineage, coalesce(b.count, 0),
                        -- a lineage without failures lost nothing; one with lost unknown
                        case when b.lineage is null then 0 else b.lost_steps end,
                        case when b.lineage is null then 0 else b.time_lost_s end,
                        case when b.lineage is null then 0 else b.hung_s end,
                        case when b.lineage is null then 0 else b.downtime_s end,
                        lin.mtbf_s, b.at_least, b.unknown,
                        case when lin.counted_s is null
                             then 'its time is unknown: an attempt known only to a day or range'
                             end, 2, lin.started
                 from lin left join by_lineage b using (lineage))
        select * exclude (part, started) from rows
        order by part, case when part = 0 then -count end, started, class
        """,
        {"run": run},
    )


def list_incidents(store: Store, run: str) -> pa.Table:
    """Every attempt of a run that did not complete, with what it cost, oldest first.

    Raises:
        NoSuchRun: the store has no such run.
    """
    store.check_run(run)
    return run_sql(
        store,
        """
        select label, time, class, summary, last_step, restart_step, restart_basis, lost_steps,
               round(lost_work_s, 1) as lost_work_s, round(hung_s, 1) as hung_s,
               round(downtime_s, 1) as downtime_s, round(time_lost_s, 1) as time_lost_s,
               time_lost_basis, next_label, decision, unknown, note
        from incidents where run = ? order by time
        """,
        [run],
    )


def read_metrics(
    store: Store,
    run: str,
    *,
    names: Sequence[str] = (),
    every: int | None = None,
    attempt: str | None = None,
) -> pa.Table:
    """A run's metrics, oldest step first; with `every`, the last value in each bucket of that many
    steps, the buckets ending on its multiples (steps 1..20, 21..40 for 20; step 0 alone).

    Raises:
        NoSuchRun: the store has no such run.
        LogbookError: `every` is not positive, or the run has no attempt `attempt`.
    """
    from logbook.errors import LogbookError

    store.check_run(run)
    if every is not None and every < 1:
        raise LogbookError("--every must be at least 1")
    if attempt is not None:
        read_attempt(store, run, attempt)  # an unknown label is an error, not an empty answer (#17)
    where = (
        "m.run = $run and (len($names) = 0 or list_contains($names, m.name)) "
        "and ($attempt is null or a.label = $attempt)"
    )
    base = (
        f"select a.label as attempt, m.step, m.name, m.value, m.time from metrics m "
        f"left join attempts a on a.attempt_id = m.attempt_id where {where}"
    )
    params: dict[str, Any] = {"run": run, "names": list(names), "attempt": attempt}
    if every:
        params["every"] = every
        sql = (
            f"select attempt, max(step) as step, name, arg_max(value, coalesce(step, 0)) as value, "
            f"max(time) as time from ({base}) group by attempt, name, (step + $every - 1) // $every "
            "order by min(time), step, name"
        )
    else:
        sql = f"{base} order by m.time, m.step, m.name"
    return run_sql(store, sql, params)
