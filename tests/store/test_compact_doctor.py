"""compact merges without losing or duplicating; doctor finds and quarantines damage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import event

from logbook.query import run_sql
from logbook.store import Store, compact, layout, parts


def _rows(store: Store) -> list[tuple]:
    return sorted(
        (r["run"], r["step"], r["message"]) for r in Store(store.root).read("events").to_pylist()
    )


def test_compact_merges_and_keeps_every_row(store: Store, invoke) -> None:  # type: ignore[no-untyped-def]
    for i in range(30):
        store.write(
            "events", "a" if i % 3 else "b", [event(i, "a" if i % 3 else "b"), event(100 + i)]
        )
    before = _rows(store)
    out = invoke(["compact", "--store", str(store.root)]).stdout
    assert out.startswith("merged 30 parts into 2 in 2 folders (60 rows)")
    assert _rows(store) == before
    for run in ("a", "b"):
        assert len(list(parts.iter_part_files(store.root, "events", run))) == 1
    assert invoke(["compact", "--store", str(store.root)]).stdout.startswith("merged 0 parts")


def test_an_interrupted_compaction_never_shows_rows_twice(store: Store) -> None:
    for i in range(4):
        store.write("events", "r", [event(i)])
    directory = layout.run_dir(store.root, "events", "r")
    inputs = sorted(p.name for p in directory.glob("*.parquet"))
    # Stop right after the merged part was written, before the inputs were deleted.
    merged = Store(store.root).read("events").drop(["run"])
    out = layout.new_part_name("c")
    (directory / f"{compact.MANIFEST_PREFIX}x.json").write_text(
        json.dumps({"output": out, "inputs": inputs})
    )
    parts.write_part(directory, merged, out)
    assert sorted(run_sql(Store(store.root), "select step from events").column(0).to_pylist()) == [
        0,
        1,
        2,
        3,
    ]
    compact.finish_interrupted(directory)
    assert [p.name for p in directory.glob("*.parquet")] == [out]
    assert sorted(run_sql(Store(store.root), "select step from events").column(0).to_pylist()) == [
        0,
        1,
        2,
        3,
    ]


def test_a_compaction_that_died_before_its_output_changes_nothing(store: Store) -> None:
    for i in range(3):
        store.write("events", "r", [event(i)])
    directory = layout.run_dir(store.root, "events", "r")
    (directory / f"{compact.MANIFEST_PREFIX}y.json").write_text(
        json.dumps({"output": "c-never.parquet", "inputs": ["whatever"]})
    )
    assert sorted(run_sql(Store(store.root), "select step from events").column(0).to_pylist()) == [
        0,
        1,
        2,
    ]
    compact.compact(Store(store.root))
    assert sorted(run_sql(Store(store.root), "select step from events").column(0).to_pylist()) == [
        0,
        1,
        2,
    ]
    assert not list(directory.glob(f"{compact.MANIFEST_PREFIX}*"))


def test_doctor_lists_and_quarantines_a_part_cut_in_half(store: Store, invoke) -> None:  # type: ignore[no-untyped-def]
    store.write("events", "r", [event(1)])
    bad = store.write("events", "r", [event(2)])
    assert bad is not None
    bad.write_bytes(bad.read_bytes()[:100])
    out = invoke(["doctor", "--store", str(store.root), "--format", "json"], code=1).stdout
    assert [p["path"] for p in json.loads(out)] == [f"events/run=r/{bad.name}"]
    assert not bad.exists()
    assert (store.root / "_quarantine" / "events" / "run=r" / bad.name).exists()
    r = invoke(["doctor", "--store", str(store.root)])
    assert "no problems found" in r.stderr
    fresh = Store(store.root)
    assert (
        run_sql(fresh, "select step from events").column(0).to_pylist() == [1]
        and not fresh.problems
    )


def test_doctor_dry_run_moves_nothing(store: Store, invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = store.write("events", "r", [event(1)])
    assert bad is not None
    bad.write_bytes(b"PAR1 garbage PAR1")
    out = invoke(
        ["doctor", "--store", str(store.root), "--dry-run", "--format", "json"], code=1
    ).stdout
    [problem] = json.loads(out)
    assert problem["path"] == f"events/run=r/{bad.name}" and problem["action"] == "none (dry run)"
    assert bad.exists()


def test_doctor_deletes_a_journal_that_names_no_wrapper(store: Store, invoke) -> None:  # type: ignore[no-untyped-def]
    """An empty journal (a kill while an old version made it) can never be folded: doctor says so
    and deletes it; a live journal beside it is left alone."""
    from logbook.store import layout

    folder = layout.journal_dir(store.root, "r")
    folder.mkdir(parents=True)
    empty = folder / "20261204T000000-0000000000000000.jsonl"
    empty.write_bytes(b"")
    live = store.journal("r")
    try:
        out = invoke(["doctor", "--store", str(store.root), "--format", "json"], code=1).stdout
        [problem] = json.loads(out)
        assert problem["path"] == f"_journal/run=r/{empty.name}"
        assert problem["action"] == "deleted" and not empty.exists()
        assert live.path.exists()
    finally:
        live.close()


@pytest.mark.parametrize("how", ["walking up", "--store", "LOGBOOK_STORE"])
def test_doctor_says_where_the_store_came_from(store: Store, run_logbook, how: str) -> None:  # type: ignore[no-untyped-def]
    deep = store.root.parent / "src" / "model"
    deep.mkdir(parents=True)
    args, env = ["doctor"], {k: v for k, v in os.environ.items() if k != "LOGBOOK_STORE"}
    if how == "--store":
        args += ["--store", str(store.root)]
    elif how == "LOGBOOK_STORE":
        env["LOGBOOK_STORE"] = str(store.root)
    p = run_logbook(*args, cwd=deep, env=env, check=0)
    first = p.stderr.decode().splitlines()[0]
    whence = {
        "walking up": f"found walking up from {deep}",
        "--store": "from --store",
        "LOGBOOK_STORE": "from LOGBOOK_STORE",
    }[how]
    assert first == f"store: {store.root} ({whence})"
