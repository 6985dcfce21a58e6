"""The store on real files: round trips, many writers at once, torn parts, journals."""

from __future__ import annotations

import logging
import multiprocessing
import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
from helpers import T0, event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logbook.query import run_sql
from logbook.store import Store, journal, layout


def test_parts_are_hive_partitioned_and_atomic(store: Store) -> None:
    path = store.write("events", "r", [event(1), event(2)])
    assert path is not None and path.parent == store.root / "events" / "run=r"
    assert path.name.startswith("part-") and path.suffix == ".parquet"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    # the run is in the path and in the part (#17), whatever the rows said
    assert pq.read_table(path).column("run").to_pylist() == ["r", "r"]
    assert store.read("events").column("message").to_pylist() == ["note 1", "note 2"]


_metric = st.fixed_dictionaries(
    {
        "step": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        "name": st.text(min_size=1, max_size=30),
        "value": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        "source": st.sampled_from(["parser", "api"]),
    }
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_metric, min_size=1, max_size=20))
def test_metrics_round_trip(tmp_path: Path, rows: list[dict]) -> None:
    store = Store.open(tmp_path / f"s{uuid.uuid4().hex}", create=True)
    full = [{**r, "run": "r", "attempt_id": "a", "time": T0} for r in rows]
    store.write("metrics", "r", full)
    back = store.read("metrics").to_pylist()
    for want, got in zip(full, back, strict=True):
        assert got["name"] == want["name"] and got["step"] == want["step"]
        if want["value"] != want["value"]:  # NaN stays NaN
            assert got["value"] != got["value"]
        else:
            assert got["value"] == want["value"]


def _writer(root: str, worker: int, n: int) -> None:
    store = Store(Path(root))
    for i in range(n):
        store.write("events", "shared", [event(worker * 1000 + i, "shared")])


def test_many_processes_write_at_once_and_lose_nothing(store: Store) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(store.root), w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    steps = (
        run_sql(store, "select step from events where run = 'shared' order by step")
        .column(0)
        .to_pylist()
    )
    assert steps == sorted(w * 1000 + i for w in range(4) for i in range(40))


def test_a_part_cut_in_half_is_skipped_with_a_warning(store: Store, caplog) -> None:  # type: ignore[no-untyped-def]
    store.write("events", "r", [event(1)])
    bad = store.write("events", "r", [event(2), event(3)])
    assert bad is not None
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="logbook"):
        fresh = Store(store.root)
        assert run_sql(fresh, "select step from events").column(0).to_pylist() == [1]
    assert any(
        "torn or not Parquet" in r.getMessage() and bad.name in r.getMessage()
        for r in caplog.records
    )
    assert fresh.problems and "logbook doctor" in fresh.problems[0]


def test_journal_rows_are_read_while_the_writer_lives_and_folded_once(store: Store) -> None:
    j = store.journal("r")
    j.append("events", event(7))
    assert Store(store.root).read("events").column("step").to_pylist() == [
        7
    ]  # live: from the journal
    j.fold()
    assert not j.path.exists()
    folded = layout.run_dir(store.root, "events", "r") / layout.journal_part_name(j.id)
    assert folded.exists()
    journal.write_folded(store.root, "r", j.id, j.rows)  # a second fold replaces, never duplicates
    assert Store(store.root).read("events").column("step").to_pylist() == [7]


def test_a_sealed_start_reads_before_the_rest_of_its_journal(store: Store) -> None:
    """A start part (`j-<id>.start`) sorts after its fold (`j-<id>`) by name: read in part order,
    the attempt's first row must still come first, before and after a compaction."""
    j = store.journal("r")
    j.append("events", event(1))
    j.seal()
    j.append("events", event(2))
    j.fold()
    assert Store(store.root).read("events").column("step").to_pylist() == [1, 2]
    from logbook.store import compact

    result = compact.compact(Store(store.root))
    assert (result.parts_before, result.parts_after) == (2, 1)
    assert Store(store.root).read("events").column("step").to_pylist() == [1, 2]


def test_a_torn_last_journal_line_is_skipped(store: Store) -> None:
    j = store.journal("r")
    j.append("events", event(1))
    j.close()
    with open(j.path, "ab") as f:
        f.write(b'{"table": "events", "row": {"ste')  # killed mid-write
    jf = journal.read(j.path)
    assert jf is not None and [r["step"] for _, r in jf.rows] == [1]


def test_a_journal_left_on_another_host_is_lost_after_its_heartbeat_stops(store: Store) -> None:
    j = store.journal("r")
    row = {
        "run": "r",
        "attempt_id": "x",
        "label": "1.00",
        "status": "running",
        "start_time": T0,
        "command": ["train"],
        "recorded_at": T0,
    }
    j.append("attempts", row)
    j.close()
    # Rewrite the header as if another host wrote it, then age the file past LOST_AFTER_S.
    lines = j.path.read_text().splitlines()
    lines[0] = lines[0].replace(f'"host": "{os.uname().nodename}"', '"host": "elsewhere"')
    j.path.write_text("\n".join(lines) + "\n")
    assert Store(store.root).read("attempts").column("status").to_pylist() == ["running"]
    old = (datetime.now(timezone.utc) - timedelta(seconds=journal.LOST_AFTER_S + 5)).timestamp()
    os.utime(j.path, (old, old))
    rows = run_sql(Store(store.root), "select status from attempts").to_pylist()
    assert rows == [{"status": "lost"}] and j.path.exists()  # a reader leaves it to writers
    Store(store.root).fold_dead_journals()
    rows = run_sql(Store(store.root), "select status from attempts").to_pylist()
    assert rows == [{"status": "lost"}] and not j.path.exists()


def test_a_part_damaged_inside_is_skipped_with_a_warning(store: Store, caplog) -> None:  # type: ignore[no-untyped-def]
    store.write("events", "r", [event(1)])
    bad = store.write("events", "r", [event(i) for i in range(2, 200)])
    assert bad is not None
    data = bytearray(bad.read_bytes())
    data[8:-64] = b"\xff" * (len(data) - 72)  # magic bytes intact, contents garbage
    bad.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="logbook"):
        fresh = Store(store.root)
        assert run_sql(fresh, "select step from events").column(0).to_pylist() == [1]
    assert any(bad.name in r.getMessage() for r in caplog.records)


def test_views_of_one_run_read_only_its_parts(store: Store) -> None:
    """connect(store, run) reads that run's parts alone: another run's damaged part is not read."""
    from logbook.query import connect

    store.write("events", "a", [event(1, run="a")])
    store.write("events", "b", [event(2, run="b")])
    con = connect(store)
    assert con.sql("select distinct run from events order by 1").fetchall() == [("a",), ("b",)]
    con.close()
    (part,) = (store.root / "events" / "run=b").glob("*.parquet")
    part.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")  # looks whole, is not
    con = connect(store, "a")
    assert con.sql("select run, step from events").fetchall() == [("a", 1)]
    con.close()
