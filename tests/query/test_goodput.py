"""Goodput: where a run's wall-clock and GPU time went (#5, part 4)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cost.gpubox import gpu_samples
from helpers import T0

from logbook.query import run_sql
from logbook.store import Store

# Two attempts with round numbers (seconds after 00:00):
#   1.00  0-130, crashed: first step at 10, steps 1-100 at 1 s a step until 110, hung 15 s;
#         one checkpoint that took 5 s to write.
#   1.01  160-320 (30 s of downtime), resumed from step 50: steps 51-200 from 170 to 319, so
#         the steps 51-100 of 1.00 are lost (50 s at its pace of 1 s a step), counted in 1.00.
HISTORY = [
    {"type": "attempt", "label": "1.00", "start": "2026-01-01T00:00:00Z",
     "end": "2026-01-01T00:02:10Z", "status": "crashed", "class": "gpu_hardware",
     "first_step": 1, "first_step_time": "2026-01-01T00:00:10Z", "last_step": 100,
     "last_step_time": "2026-01-01T00:01:49Z", "hung_s": 15},
    {"type": "event", "time": "2026-01-01T00:01:00Z", "kind": "checkpoint", "step": 50,
     "write_s": 5.0},
    {"type": "attempt", "label": "1.01", "start": "2026-01-01T00:02:40Z",
     "end": "2026-01-01T00:05:20Z", "status": "completed", "resumed_from": 50,
     "first_step": 51, "first_step_time": "2026-01-01T00:02:50Z", "last_step": 200,
     "last_step_time": "2026-01-01T00:05:19Z"},
]  # fmt: skip


def test_each_part_of_the_time_is_counted_once(invoke, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    history = tmp_path / "h.jsonl"
    history.write_text("".join(json.dumps(row) + "\n" for row in HISTORY))
    invoke(["import", str(history), "--run", "g", "--store", str(store_path)])
    store = Store(store_path)
    ids = run_sql(store, "select attempt_id from attempts order by start_time").column(0)
    store.write(  # eight GPUs each, as the launch snapshot says
        "snapshots",
        "g",
        [
            {"attempt_id": a, "time": T0, "kind": "gpu", "name": "count", "value": "8",
             "status": "ok", "detail": None}
            for a in ids.to_pylist()
        ],
    )  # fmt: skip
    each = json.loads(
        invoke(["goodput", "g", "--each", "--store", str(store_path), "--format", "json"]).stdout
    )
    got = [
        {k: e[k] for k in ("label", "gpus", "wall_s", "productive_s", "lost_s", "hung_s",
                           "downtime_before_s", "startup_s", "checkpoint_s", "lost_steps")}
        for e in each
    ]  # fmt: skip
    assert got == [
        {"label": "1.00", "gpus": 8, "wall_s": 130, "productive_s": 50, "lost_s": 50,
         "hung_s": 15, "downtime_before_s": 0, "startup_s": 10, "checkpoint_s": 5,
         "lost_steps": 50},
        {"label": "1.01", "gpus": 8, "wall_s": 160, "productive_s": 150, "lost_s": 0,
         "hung_s": 0, "downtime_before_s": 30, "startup_s": 10, "checkpoint_s": 0,
         "lost_steps": 0},
    ]  # fmt: skip
    total = json.loads(
        invoke(["goodput", "g", "--store", str(store_path), "--format", "json"]).stdout
    )
    assert [(c["category"], c["seconds"], c["pct"], c["gpu_hours"]) for c in total] == [
        ("productive", 200, 62.5, round(200 * 8 / 3600, 3)),
        ("lost work", 50, 15.6, round(50 * 8 / 3600, 3)),
        ("hung", 15, 4.7, round(15 * 8 / 3600, 3)),
        ("downtime", 30, 9.4, round(30 * 8 / 3600, 3)),
        ("start-up", 20, 6.3, round(20 * 8 / 3600, 3)),
        ("checkpoints", 5, 1.6, round(5 * 8 / 3600, 3)),
        # no phase on record (#19): nothing split off
        ("checkpoint restore", 0, 0, 0),
        ("evaluation", 0, 0, 0),
        ("compilation", 0, 0, 0),
        ("data loading", 0, 0, 0),
        ("unknown", 0, 0, 0),  # every attempt has step times and a known restart step
        ("total", 320, 100, round(320 * 8 / 3600, 3)),
    ]
    # The view is there for SQL too.
    [share] = run_sql(
        store, "select sum(productive_s) / sum(wall_s + downtime_before_s) as g from goodput"
    ).to_pylist()
    assert share["g"] == 200 / 320


def test_without_a_declared_count_the_sampled_gpus_count(  # type: ignore[no-untyped-def]
    invoke, store_path: Path, tmp_path: Path
) -> None:
    """No launch snapshot: 1.00's telemetry read 4 GPUs, 1.01 has none on record (#16)."""
    history = tmp_path / "h.jsonl"
    history.write_text("".join(json.dumps(row) + "\n" for row in HISTORY))
    invoke(["import", str(history), "--run", "g", "--store", str(store_path)])
    store = Store(store_path)
    first = run_sql(store, "select attempt_id from attempts where label = '1.00'").column(0)[0]
    gpu_samples(store, "g", first.as_py(), start=0, seconds=130, gpus=4)
    args = ["--store", str(store_path), "--format", "json"]
    each = json.loads(invoke(["goodput", "g", "--each", *args]).stdout)
    assert [(e["label"], e["gpus"], e["gpus_basis"]) for e in each] == [
        ("1.00", 4, "measured: telemetry: 4 GPUs sampled"),
        ("1.01", None, "unknown: no GPU count on record"),
    ]
    cost = json.loads(invoke(["cost", "g", *args]).stdout)
    assert [c["gpus"] for c in cost[:2]] == [4, None]  # as cost counts them
    lost = next(c for c in json.loads(invoke(["goodput", "g", *args]).stdout)
                if c["category"] == "lost work")  # fmt: skip
    assert lost["gpu_hours"] == round(50 * 4 / 3600, 3)  # all in 1.00, whose count is known


def test_a_real_run_with_crashes(invoke, run_logbook, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train = Path(__file__).parents[2] / "examples" / "train.py"
    run_logbook(
        "run", "--store", str(store_path), "--run", "real", "--no-capture", "--restarts", "2",
        "--backoff", "0.5s", "--", sys.executable, str(train), "--steps", "300",
        "--crash-at", "200", "--crash-times", "1", "--ckpt-dir", str(tmp_path / "ck"),
        "--ckpt-every", "50", "--step-delay", "0.02", check=0,
    )  # fmt: skip
    rows = {
        r["category"]: r
        for r in json.loads(
            invoke(["goodput", "real", "--store", str(store_path), "--format", "json"]).stdout
        )
    }
    [wall] = run_sql(
        Store(store_path),
        "select sum(duration_s) + epoch(max(end_time) - min(start_time)) - sum(duration_s) as w "
        "from attempts",
    ).to_pylist()
    assert abs(rows["total"]["seconds"] - wall["w"]) < 0.2  # every second of the run, once
    assert rows["productive"]["seconds"] > rows["lost work"]["seconds"] > 0
    assert rows["downtime"]["seconds"] >= 0.4 and rows["hung"]["seconds"] == 0
    # --no-capture: no inventory, so the GPU count is unknown, and so are the GPU-hours (#16)
    assert rows["total"]["gpu_hours"] is None and rows["total"]["gpu_pct"] is None
    assert rows["total"]["unknown"] == "GPU-hours: no GPU count on record for 2 of 2 attempts"
    each = json.loads(
        invoke(["goodput", "real", "--each", "--store", str(store_path), "--format", "json"]).stdout
    )
    assert [e["lost_steps"] for e in each] == [40, 0]  # crashed at 190-ish, resumed from 150
    incidents = json.loads(
        invoke(
            ["incidents", "real", "--each", "--store", str(store_path), "--format", "json"]
        ).stdout
    )
    assert [i["lost_steps"] for i in incidents] == [40]  # the same definition


def test_goodput_of_an_unknown_run(invoke, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    Store.open(store_path, create=True)
    result = invoke(["goodput", "nope", "--store", str(store_path)], code=1)
    assert 'no run "nope"' in result.stderr


# 1.01 ended some time on 2026-01-02: its time, and the downtime after it, are not known.
PARTLY = [
    {"type": "attempt", "label": "1.00", "start": "2026-01-01T00:00:00Z",
     "end": "2026-01-01T01:00:00Z", "status": "crashed", "first_step": 1,
     "first_step_time": "2026-01-01T00:10:00Z", "last_step": 100,
     "last_step_time": "2026-01-01T00:59:00Z"},
    {"type": "attempt", "label": "1.01", "start": "2026-01-01T01:10:00Z", "end": "2026-01-02",
     "status": "crashed", "resumed_from": 100},
    {"type": "attempt", "label": "1.02", "start": "2026-01-03T00:00:00Z",
     "end": "2026-01-03T01:00:00Z", "status": "completed", "first_step": 101,
     "first_step_time": "2026-01-03T00:01:00Z", "last_step": 200,
     "last_step_time": "2026-01-03T00:59:00Z"},
]  # fmt: skip


def test_a_time_known_to_the_day_leaves_a_floor_and_no_share(  # type: ignore[no-untyped-def]
    invoke, store_path: Path, tmp_path: Path
) -> None:
    """#16: an unknown part never sums as 0; the known ones are a floor, named in at_least."""
    history = tmp_path / "h.jsonl"
    history.write_text("".join(json.dumps(row) + "\n" for row in PARTLY))
    invoke(["import", str(history), "--run", "p", "--store", str(store_path)])
    rows = {
        r["category"]: r
        for r in json.loads(
            invoke(["goodput", "p", "--store", str(store_path), "--format", "json"]).stdout
        )
    }
    got = {k: (r["seconds"], r["pct"], r["at_least"]) for k, r in rows.items()}
    assert got == {
        "productive": (6540, None, "seconds"),  # 1.00: 3000 s, 1.02: 3540 s
        "lost work": (None, None, None),  # 0 s known beside an unknown part: says nothing
        "hung": (None, None, None),
        "downtime": (600, None, "seconds"),  # before 1.01; before 1.02 not known
        "start-up": (660, None, "seconds"),
        "checkpoints": (None, None, None),
        "checkpoint restore": (None, None, None),  # the phases (#19): as lost work
        "evaluation": (None, None, None),
        "compilation": (None, None, None),
        "data loading": (None, None, None),
        "unknown": (None, None, None),
        "total": (7800, None, "seconds"),
    }
    assert rows["total"]["unknown"] == (
        "the time of 1 of 3 attempts is not known (1.01); the downtime before 1 of 3 attempts "
        "is not known (1.02); GPU-hours: no GPU count on record for 3 of 3 attempts"
    )
    # nor does the interruptions table make a share of the known time alone
    causes = json.loads(
        invoke(
            ["incidents", "p", "--by", "cause", "--store", str(store_path), "--format", "json"]
        ).stdout
    )
    assert causes[-1]["effective_training_pct"] is None
