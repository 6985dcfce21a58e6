"""Badput by cause (#19): the phases a wrapped training shows, and goodput's split of them."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from logbook.query import run_sql
from logbook.store import Store

# A trainer that prints what the Transformers Trainer prints around a save
# (transformers/trainer.py `_save_checkpoint`: "Saving model checkpoint to ...") and what 4.x
# printed at the start of an evaluation ("***** Running Evaluation *****"), and times a data
# load with the API.
TRAINER = textwrap.dedent(
    """
    import time, logbook
    def step(n):
        print(f"step {n}: loss={3.0 - n / 10:.2f}", flush=True)
        time.sleep(0.2)
    time.sleep(0.5)
    for n in range(1, 4):
        step(n)
    print("Saving model checkpoint to out/checkpoint-3", flush=True)
    time.sleep(1.6)
    for n in range(4, 6):
        step(n)
    print("***** Running Evaluation *****", flush=True)
    print("  Num examples = 64", flush=True)
    time.sleep(1.6)
    step(6)
    with logbook.phase("data_loading"):
        time.sleep(1.0)
    step(7)
    """
)

SPLIT = ("productive_s", "lost_s", "hung_s", "startup_s", "checkpoint_s", "restore_s",
         "evaluation_s", "compilation_s", "data_loading_s", "unknown_s")  # fmt: skip


def test_trainer_lines_and_api_phases_split_the_time(
    run_logbook, invoke, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "train.py"
    script.write_text(TRAINER)
    run_logbook("run", "--run", "p", "--store", str(store_path), "--", sys.executable, str(script),
                check=0)  # fmt: skip
    store = Store(store_path)
    phases = run_sql(
        store,
        "select json_extract_string(data, '$.phase') as phase, "
        "json_extract_string(data, '$.how') as how, "
        "try_cast(json_extract(data, '$.duration_s') as double) as d, step "
        "from events where kind = 'phase' order by time",
    ).to_pylist()
    assert [(p["phase"], p["how"], p["step"]) for p in phases] == [
        ("checkpoint_save", "output", 3),
        ("evaluation", "output", 5),
        ("data_loading", "api", None),
    ]
    [each] = json.loads(
        invoke(["goodput", "p", "--each", "--store", str(store_path), "--format", "json"]).stdout
    )
    # Lines are timed as the wrapper reads them (every 0.5 s while output flows), and a phase
    # that ends at the next step line holds that step's 0.2 s too.
    assert each["checkpoint_s"] == pytest.approx(1.8, abs=0.7)
    assert each["evaluation_s"] == pytest.approx(1.8, abs=0.7)
    assert each["data_loading_s"] == pytest.approx(1.0, abs=0.1)
    assert each["restore_s"] == 0 and each["compilation_s"] == 0
    assert each["startup_s"] > 0.3
    assert sum(each[c] for c in SPLIT) == pytest.approx(each["wall_s"], abs=0.3)  # rounding
    total = json.loads(
        invoke(["goodput", "p", "--store", str(store_path), "--format", "json"]).stdout
    )
    by = {c["category"]: c["seconds"] for c in total}
    assert by["evaluation"] == pytest.approx(each["evaluation_s"], abs=0.1)
    assert sum(v for k, v in by.items() if k != "total") == pytest.approx(by["total"], abs=0.5)


def test_a_phase_outside_the_vocabulary_is_refused(store_path: Path) -> None:
    from logbook.api import Recorder

    with Recorder(store=store_path, run="p") as rec:
        with pytest.raises(ValueError, match="unknown phase 'checkpoint'.*checkpoint_save"):
            with rec.phase("checkpoint"):
                pass
        with rec.phase("compilation", step=0):
            pass
    [row] = run_sql(
        Store(store_path), "select step, data from events where kind = 'phase'"
    ).to_pylist()
    assert row["step"] == 0 and json.loads(row["data"])["phase"] == "compilation"


SLOW_STEP = textwrap.dedent(
    """
    import time
    for n in range(1, 15):
        print(f"step {n}: loss={3.0 - n / 10:.2f}", flush=True)
        time.sleep(4.0 if n == 10 else 0.3)
    """
)


def test_step_deviation_names_the_slow_step(
    run_logbook, invoke, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "train.py"
    script.write_text(SLOW_STEP)
    run_logbook("run", "--run", "s", "--store", str(store_path), "--", sys.executable, str(script),
                check=0)  # fmt: skip
    rows = json.loads(
        invoke(["goodput", "s", "--steps", "--store", str(store_path), "--format", "json"]).stdout
    )
    assert rows and {r["label"] for r in rows} == {"1.00"}
    assert rows[0]["median_s"] is None and rows[0]["deviation"] is None  # nothing before it
    # the reading past the 4 s sleep after step 10: step 11, or on a busy machine 11 and the
    # steps after it read together; a late reading of the wrapper's may be slow too, never as
    # slow as that one
    slow = next(r for r in rows if r["step"] > 10)
    assert slow["slow"] is True
    assert slow["step_s"] * slow["steps"] == pytest.approx(4.0 + 0.3 * (slow["steps"] - 1), abs=0.6)
    assert slow["deviation"] >= 3
    assert max(rows, key=lambda r: r["deviation"] or 0) is slow
    assert [r["slow"] for r in rows[:3]] == [None, None, None]  # no median yet
    invoke(["goodput", "s", "--steps", "--each", "--store", str(store_path)], code=2)
    # the chronicle's figure of it (logbook/chronicle/plots.py step_deviation)
    site = tmp_path / "site"
    invoke(["chronicle", "s", "--store", str(store_path), "--out", str(site)])
    svg = (site / "img" / "step-deviation.svg").read_text()
    assert "slow step" in svg and "running median" in svg
    assert "img/step-deviation.svg" in (site / "chronicle.md").read_text()
