"""The real Transformers and Lightning Trainers resumed after kill -9, SIGTERM and Ctrl-C under
`logbook run --checkpoint-dir` (#15): checkpoint events and their steps, exports not taken for
checkpoints, the resume step of the relaunch and its source, and lost steps that incidents,
goodput, show and the chronicle agree on. The trainers: tests/trainers/.

The steps these trainers print are not all parsed yet (Transformers 5.x prints its step only in
the progress bar; Lightning's bar under a pipe): where an attempt's last step is unknown, its lost
steps are unknown too (null in every report, never 0), and the check against the steps really
repeated is an expected failure until they are.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lost_work_check import (
    assert_lost_agrees,
    attempts,
    checkpoint_steps,
    end_and_relaunch,
)

pytestmark = [
    pytest.mark.integrations,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
TRAINERS = Path(__file__).resolve().parent / "trainers"
KILL_AT = 25  # 5 steps after the checkpoint at 20


def _resumed_run(how: str, script: str, store: Path, tmp_path: Path) -> tuple[dict, dict]:
    """Run `script` until it ends itself (or is interrupted) at KILL_AT, then its relaunch; the
    two attempts."""
    out, marker = tmp_path / "out", tmp_path / "at-kill"
    command = [sys.executable, str(TRAINERS / script), str(out), how, str(KILL_AT), str(marker)]
    # Lightning catches both: SIGTERM stops it as if done (exit 0), Ctrl-C exits 1.
    end_and_relaunch(store, "t", out, command, marker, how, interrupted=(0, 1))
    first, second = attempts(store, "t")
    assert (first["label"], second["parent_label"]) == ("1.00", "1.00")
    return first, second


def _lost_steps(invoke, store: Path, first: dict) -> None:  # type: ignore[no-untyped-def]
    """The failed attempt's lost steps, the same in every report; equal to the steps really
    repeated (KILL_AT - 20) once the trainer's steps are parsed."""
    if first["last_step"] is None:
        assert_lost_agrees(invoke, store, "t", "1.00", None)  # unknown: null, never 0
        # Lightning's default bar (Rich, when installed) draws nothing on a pipe until the end:
        # after a kill -9 the output holds no step at all, so unknown is the right answer.
        pytest.xfail("the trainer printed no step before it was killed")
    assert first["last_step"] == KILL_AT
    assert_lost_agrees(invoke, store, "t", "1.00", KILL_AT - 20)


# Each stop once across the two trainers (CI's 20 minutes): SIGKILL and SIGINT for Transformers,
# SIGTERM for Lightning; tests/supervisor/test_resumed_runs.py takes all three on a nanoGPT loop.
@pytest.mark.parametrize("how", ["kill", "int"])
def test_transformers_trainer_resumed(how: str, invoke, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    first, second = _resumed_run(how, "resumed_hf.py", store_path, tmp_path)
    # checkpoint-N folders, one event each; the exported final/ model is not a checkpoint.
    assert checkpoint_steps(store_path, "t") == {
        "1.00": [(10, "checkpoint-10"), (20, "checkpoint-20")],
        "1.01": [(30, "checkpoint-30"), (40, "checkpoint-40")],
    }
    assert (first["last_checkpoint_step"], second["last_checkpoint_step"]) == (20, 40)
    # resume_from_checkpoint=True loads the newest checkpoint-N, and says nothing by default.
    assert (second["resumed_from_step"], second["resume_source"]) == (
        20,
        "checkpoint name: checkpoint-20",
    )
    _lost_steps(invoke, store_path, first)


@pytest.mark.parametrize("how", ["term"])
def test_lightning_trainer_resumed(how: str, invoke, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("lightning")
    first, second = _resumed_run(how, "resumed_lightning.py", store_path, tmp_path)
    # epoch=0-step=N.ckpt and last.ckpt: two writes, the second holding the step of the first
    # (two rewrites of last.ckpt closer than a look or two make one write).
    events = checkpoint_steps(store_path, "t")
    named = {k: [e for e in v if e[1] != "last.ckpt"] for k, v in events.items()}
    assert named == {
        "1.00": [(10, "epoch=0-step=10.ckpt"), (20, "epoch=0-step=20.ckpt")],
        "1.01": [(30, "epoch=0-step=30.ckpt")],
    }
    last = {k: [e[0] for e in v if e[1] == "last.ckpt"] for k, v in events.items()}
    assert last["1.00"][-1:] == [20] and set(last["1.00"]) <= {10, 20} and last["1.01"] == [30]
    assert (first["last_checkpoint_step"], second["last_checkpoint_step"]) == (20, 30)
    # "Restoring states from the checkpoint path at .../last.ckpt": a name with no step, found
    # as it was when written at step 20 (in this run's record, also across `logbook run`s).
    assert (second["resumed_from_step"], second["resume_source"]) == (
        20,
        "checkpoint record: last.ckpt",
    )
    _lost_steps(invoke, store_path, first)
