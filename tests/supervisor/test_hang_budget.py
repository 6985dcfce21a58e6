"""The hang watch's budgets per phase, learned from the run (#19), with real wrapped children:
a checkpoint save longer than training's budget is no hang, a stall past training's learned
budget is one long before the ceiling, and a slow step is an event and a hook, never a stop."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from logbook.query import run_sql
from logbook.record.attempt import attempt_row
from logbook.store import Store
from logbook.supervisor.lineage import Placement
from logbook.supervisor.recorder import Recorder, _now

# Steps every 0.05 s for 2.5 s: enough silences and readings (one every 0.5 s) to learn
# training's budget (3 s here: twice the slow-step threshold, 10 x 0.05 s and 1 s beyond it,
# rounded up), far below the ceiling, with room for a late reading on a busy machine.
STEPS = "import sys, time\nfor i in range(1, 51):\n    print(f'step={i}', flush=True)\n    time.sleep(0.05)\n"
CEILING = "10"


def _earlier_save(store_path: Path, seconds: float) -> None:
    """An earlier attempt of run h on record, whose checkpoint save took `seconds`."""
    rec = Recorder(Store.open(store_path, create=True), "h", "a0")
    row = attempt_row("h", "a0", command=["train"], cwd=store_path, host="h",
                      placement=Placement("1.00", None, None), start=_now())  # fmt: skip
    rec.started(row, first_of_run=True)
    data = {"phase": "checkpoint_save", "duration_s": seconds, "how": "output"}
    rec.event("phase", f"checkpoint_save {seconds} s", source="parser", data=data)
    rec.ended(status="completed", end_time=_now())


def test_a_save_within_its_learned_budget_is_no_hang_and_a_stall_past_trainings_is(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _earlier_save(store_path, 1.6)  # checkpoint_save's budget: 5 x 1.6 s
    script = tmp_path / "train.py"
    script.write_text(
        STEPS + "print('saving checkpoint at iteration 50 to ckpt', flush=True)\n"
        "time.sleep(6.0)\n"  # longer than training's budget (the floor, 5 s), within the save's
        "print('successfully saved checkpoint from iteration 50 to ckpt', flush=True)\n"
        "time.sleep(60)\n"
    )
    t0 = time.monotonic()
    run_logbook("run", "--store", str(store_path), "--run", "h", "--hang-timeout", CEILING,
                "--grace", "1", "--no-capture", "--", sys.executable, str(script), check=None)  # fmt: skip
    took = time.monotonic() - t0
    store = Store(store_path)
    [a] = run_sql(store, "select status, hung_s from attempts where attempt_id != 'a0'").to_pylist()
    assert a["status"] == "hung" and a["hung_s"] < 8, a  # the ceiling is 10 s
    [hang] = run_sql(store, "select message, data from events where kind = 'hang'").to_pylist()
    data = json.loads(hang["data"])
    assert data["lines"][-1].endswith("successfully saved checkpoint from iteration 50 to ckpt")
    assert data["phase"] == "training" and data["learned"] is True, data
    assert data["budget_s"] == 5 and "floor" in data["budget"], data
    assert "in training, over its learned budget of 5 s (--hang-timeout 10 s)" in hang["message"]
    [save] = run_sql(
        store, "select data from events where kind = 'phase' and attempt_id != 'a0'"
    ).to_pylist()
    assert json.loads(save["data"])["duration_s"] >= 5.5  # the save ran its course
    assert took < 30, took


def test_a_slow_step_is_an_event_and_a_hook_and_the_training_goes_on(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "train.py"
    script.write_text(
        STEPS + "time.sleep(1.6)\n"  # one step 30 x the others, under training's hang budget
        "for i in range(51, 59):\n    print(f'step={i}', flush=True)\n    time.sleep(0.05)\n"
    )
    hook, got = tmp_path / "hook.py", tmp_path / "payload.json"
    hook.write_text(f"import sys\nopen({str(got)!r}, 'w').write(sys.stdin.read())\n")
    run_logbook("run", "--store", str(store_path), "--run", "s", "--hang-timeout", CEILING,
                "--hook", f"on_slow_step={sys.executable} {hook}", "--no-capture", "--",
                sys.executable, str(script))  # fmt: skip
    store = Store(store_path)
    [a] = run_sql(store, "select status, last_step from attempts").to_pylist()
    assert a == {"status": "completed", "last_step": 58}
    [slow] = run_sql(store, "select step, data from events where kind = 'slow_step'").to_pylist()
    data = json.loads(slow["data"])
    assert 50 <= slow["step"] <= 58 and data["ratio"] >= 10 and data["step_s"] >= 1.0, slow
    payload = json.loads(got.read_text())
    assert payload["event"] == "on_slow_step" and payload["status"] == "running"
    assert payload["step"] == slow["step"] and payload["evidence"]["ratio"] == data["ratio"]
    [ran] = run_sql(store, "select data from events where kind = 'hook'").to_pylist()
    assert json.loads(ran["data"])["event"] == "on_slow_step"


def test_the_budgets_rules_as_documented() -> None:
    from logbook.supervisor.hang_budget import HangBudget

    b = HangBudget(600.0)  # floor: 300 s
    assert (b.budget(None, False).seconds, b.budget(None, False).phase) == (600.0, "start_up")
    assert b.budget("evaluation", True).seconds == 600.0  # never seen: the ceiling
    b.learn_prior([{"phase": "evaluation", "duration_s": 80.0}])
    assert (
        b.budget("evaluation", True).seconds == 400.0
        and "1 in earlier" in b.budget("evaluation", True).how
    )
    b.saw_phase("evaluation", 200.0)  # longer than 600 / 5: the ceiling
    assert b.budget("evaluation", True).seconds == 600.0
    for _ in range(5):
        b.saw_gap(2.0)
        assert b.saw_reading(2.0, 1) is None
    assert b.budget(None, True).seconds == 300.0  # 5 x 2 s and 2 x (10 x 2 s): under the floor
    slow = b.saw_reading(2.0 + 25.0, 2)  # one step at 2 s, the other 25 s: 12.5 x
    assert slow is not None and slow.step_s == 25.0 and slow.ratio == 12.5
    b.saw_gap(70.0)
    assert b.budget(None, True).seconds == 350.0  # 5 x the longest silence


def test_a_silent_save_marked_through_the_api_gets_the_saves_budget_not_trainings(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # A save that prints nothing, timed with `logbook.phase`: the hang watch reads the API's
    # marks (LOGBOOK_PHASE_MARKS) and gives it the save's budget (the ceiling: none seen yet),
    # where training's learned budget (the floor, 5 s) would have stopped it as hung.
    script = tmp_path / "train.py"
    script.write_text(
        STEPS + "import logbook\n"
        "with logbook.phase('checkpoint_save'):\n"
        "    time.sleep(7.0)\n"
        "print('step=51', flush=True)\n"
    )
    run_logbook("run", "--store", str(store_path), "--run", "m", "--hang-timeout", CEILING,
                "--grace", "1", "--no-capture", "--", sys.executable, str(script), check=0)  # fmt: skip
    store = Store(store_path)
    [a] = run_sql(store, "select status, hung_s, last_step from attempts").to_pylist()
    assert a == {"status": "completed", "hung_s": None, "last_step": 51}, a
    assert run_sql(store, "select * from events where kind = 'hang'").to_pylist() == []
    [save] = run_sql(store, "select data from events where kind = 'phase'").to_pylist()
    data = json.loads(save["data"])
    assert data["phase"] == "checkpoint_save" and data["how"] == "api"
    assert data["duration_s"] >= 6.9
    [marks] = store_path.glob("logs/run=m/*/phase-marks.jsonl")
    assert [json.loads(line)["what"] for line in marks.read_text().splitlines()] == ["start", "end"]
