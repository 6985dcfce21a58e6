"""A query that reads derived views gets them as common table expressions in front of its text,
not as views made on the connection (#19: DuckDB binds a view when it is made and again where it
is read). The answers must be the views' answers, and a mistake in the SQL must be named in the
user's own text."""

from __future__ import annotations

from pathlib import Path

import pytest

from logbook import query
from logbook.errors import BadQuery
from logbook.query import _inlined, goodput, run_sql
from logbook.query.causes import incidents_by_cause
from logbook.store import Store


def as_views(sql: str) -> str:
    """The same query, read through the views made on the connection: WITH RECURSIVE is never
    inlined."""
    sql = sql.split("\n")[-1]  # past a leading comment
    if sql.startswith("with "):
        return "with recursive _views(x) as (select 1), " + sql[len("with ") :]
    return "with recursive _views(x) as (select 1) " + sql


@pytest.fixture(scope="module")
def demo_store(demo_run: tuple[Path, str]) -> Store:
    return Store(demo_run[0] / ".logbook")


@pytest.mark.parametrize(
    "sql",
    [
        "select * from incidents order by attempt_id",
        "select * from goodput order by attempt_id",
        "select * from lost_work order by attempt_id",
        "with i as (select * from incidents) select count(*) as n, round(sum(time_lost_s), 6) as s from i",
        "-- a comment first\nselect run, lineage, attempts from lineages order by all",
        "select label, '; not a second statement' as t from attempt_lineage order by label",
    ],
)
def test_an_inlined_query_answers_as_the_views_do(demo_store: Store, sql: str) -> None:
    assert _inlined(sql) not in (None, sql)  # inlined
    assert _inlined(as_views(sql)) is None
    inlined = run_sql(demo_store, sql)
    viewed = run_sql(demo_store, as_views(sql))
    assert inlined.num_rows > 0
    assert inlined.to_pylist() == viewed.to_pylist()


def test_the_reports_read_the_same_either_way(
    demo_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_sql(demo_store, "select run from runs").column("run")[0].as_py()
    reports = (incidents_by_cause, goodput.goodput, goodput.goodput_by_attempt)
    inlined = [report(demo_store, run).to_pylist() for report in reports]
    monkeypatch.setattr(query, "_inlined", lambda sql: None)  # every view made on the connection
    viewed = [report(demo_store, run).to_pylist() for report in reports]
    assert inlined == viewed
    by_cause = inlined[0]
    assert len(by_cause) > 1 and all(len(rows) > 0 for rows in inlined)


def test_what_cannot_be_inlined_for_sure_reads_the_views(demo_store: Store) -> None:
    assert _inlined("select 1; select * from incidents") is None
    assert _inlined("with recursive r(x) as (select 1) select * from goodput") is None
    assert _inlined("describe incidents") is None
    assert _inlined("select 1 as x") == "select 1 as x"  # no derived view: as written
    # a CTE of the user's own named like a derived view is the user's
    own = "with goodput as (select 42 as x) select x from goodput"
    assert _inlined(own) is None
    assert run_sql(demo_store, own).to_pylist() == [{"x": 42}]


def test_a_mistake_is_named_as_through_the_views(
    demo_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    mistakes = (
        "select no_such_column from incidents",
        "select * from goodput where",
        "select * from lost_work l join no_such_table t using (attempt_id)",
    )
    inlined = []
    for sql in mistakes:
        with pytest.raises(BadQuery) as caught:
            run_sql(demo_store, sql)
        inlined.append(str(caught.value))
    monkeypatch.setattr(query, "_inlined", lambda sql: None)
    for sql, message in zip(mistakes, inlined, strict=True):
        with pytest.raises(BadQuery) as caught:
            run_sql(demo_store, sql)
        assert message == str(caught.value)  # of the user's own text, not the views' bodies
    assert "no_such_column" in inlined[0] and "no_such_table" in inlined[2]


def test_a_view_named_in_a_comment_or_a_string_is_not_read() -> None:
    from logbook.query import uses_gpu_samples

    split = "select * from _goodput_time -- goodput's split, without its GPUs\n"
    assert not uses_gpu_samples(split)  # the check of the GPU counts is not paid for a comment
    assert not uses_gpu_samples("select 'goodput' as word from attempts")
    assert uses_gpu_samples("select * from goodput")
    assert uses_gpu_samples('select * from "attempt_gpus"')
    assert _inlined("select 'lost_work' as w, * from attempts /* incidents */") == (
        "select 'lost_work' as w, * from attempts /* incidents */"
    )


def test_the_scan_for_api_points_is_paid_only_by_sql_that_reads_metrics(demo_store: Store) -> None:
    from logbook import schema
    from logbook.query import _connection, _load, _reads_metrics

    assert _reads_metrics("select m.value from metrics m")
    assert not _reads_metrics("select * from goodput -- no metrics here")
    # made without the scan, the metrics view keeps its test of the API's points: the same points
    counted = "select count(*) as n, sum(value) as s, count(distinct attempt_id) as a from metrics"
    answers = []
    for scan in (True, False):
        con = _connection(counted)
        try:
            _load(con, demo_store.snapshot(schema.tables()), metrics=scan)
            answers.append(con.execute(counted).fetchall())
        finally:
            con.close()
    assert answers[0] == answers[1] and answers[0][0][0] > 0
