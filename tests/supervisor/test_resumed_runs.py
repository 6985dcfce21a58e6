"""Resumed runs of a nanoGPT-like loop under `logbook run`, ended by kill -9, SIGTERM and Ctrl-C:
checkpoint events, the resume step and its source, and the lost steps every report agrees on
(#15). The real Transformers and Lightning Trainers: tests/test_resumed_trainers.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from lost_work_check import (
    PYTHON,
    assert_lost_agrees,
    attempts,
    checkpoint_steps,
    end_and_relaunch,
    steps_logged,
)

# nanoGPT's shape: `iter N: loss ...` lines, `out/ckpt.pt` rewritten in place every 20 iterations
# after "saving checkpoint to out", "Resuming training from out" on a relaunch. A step is done
# when its line is printed; the checkpoint after step N holds N and the relaunch goes on at N+1.
# First launch only: at step KILL_AT it ends itself (kill -9, SIGTERM), or writes MARKER and waits
# for the test's Ctrl-C.
NANO = textwrap.dedent(
    """
    import os, pickle, signal, sys, time
    out, how, kill_at, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    ckpt = os.path.join(out, "ckpt.pt")
    os.makedirs(out, exist_ok=True)
    step, first = 0, not os.path.exists(ckpt)
    if not first:
        print(f"Resuming training from {os.path.basename(out)}", flush=True)
        step = pickle.load(open(ckpt, "rb"))["iter_num"]
    while step < 70:
        step += 1
        print(f"iter {step}: loss {3 - step / 100:.4f}, time 50.1ms, mfu 0.01%", flush=True)
        if step % 20 == 0:
            print(f"step {step}: train loss {3 - step / 100:.4f}, val loss {3.1 - step / 100:.4f}")
            print(f"saving checkpoint to {os.path.basename(out)}", flush=True)
            with open(ckpt, "wb") as f:  # in place, as torch.save(checkpoint, ckpt) does
                pickle.dump({"iter_num": step, "model": b"w" * 100_000}, f)
        if first and step == kill_at:
            if how == "int":
                open(marker, "w").close()
                time.sleep(60)  # the test's Ctrl-C ends it here
            os.kill(os.getpid(), {"kill": signal.SIGKILL, "term": signal.SIGTERM}[how])
        time.sleep(0.1)  # saves 2 s apart: a rewrite is seen settled before the next
    print("done", flush=True)
    """
)
KILL_AT = 52  # 12 steps after the checkpoint at 40


@pytest.mark.parametrize("how", ["kill", "term", "int"])
def test_a_nanogpt_loop_resumed_after_its_end(
    how: str, invoke, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    script, out, marker = tmp_path / "train.py", tmp_path / "out", tmp_path / "at-kill"
    script.write_text(NANO)
    command = [PYTHON, str(script), str(out), how, str(KILL_AT), str(marker)]
    end_and_relaunch(store_path, "nano", out, command, marker, how)
    first, second = attempts(store_path, "nano")
    assert (first["label"], first["last_step"], second["parent_label"]) == ("1.00", KILL_AT, "1.00")
    # One event per write of the same file, with the step it holds (not the step logbook was at
    # when it looked); the relaunch's first write is at 60.
    assert checkpoint_steps(store_path, "nano") == {
        "1.00": [(20, "ckpt.pt"), (40, "ckpt.pt")],
        "1.01": [(60, "ckpt.pt")],
    }
    assert first["last_checkpoint_step"] == 40
    assert (second["resumed_from_step"], second["resume_source"]) == (
        40,
        "checkpoint record: ckpt.pt",
    )
    assert second["first_step"] == 41
    # Lost: 52 - 40 = 12 by every report, and exactly the steps logged twice.
    logged = steps_logged(store_path, "nano", "loss")
    assert len(logged["1.00"] & logged["1.01"]) == KILL_AT - 40
    assert_lost_agrees(invoke, store_path, "nano", "1.00", KILL_AT - 40)
