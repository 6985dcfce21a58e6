"""Checkpoints in --checkpoint-dir: which entries, step, size, files and write time, one event
each, and the resume step of a relaunch (#4 part 7, #15)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from logbook.query import run_sql
from logbook.store import Store
from logbook.supervisor.checkpoints import (
    SETTLE_S,
    Checkpoint,
    CheckpointMemory,
    Checkpoints,
    FolderWatch,
    is_checkpoint,
    step_in_name,
)


def _write(path: Path, size: int, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    for p in (path, path.parent):
        os.utime(p, (mtime, mtime))


def test_a_checkpoint_is_reported_once_it_stops_changing(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    t0 = time.time()
    _write(ckpt / "checkpoint-100" / "model.bin", 1000, t0 - 100)
    watch = FolderWatch(ckpt)
    assert watch.latest_at_start is not None and watch.latest_at_start.step == 100
    assert watch.scan(t0) == ([], False)  # what was there at the start is not new

    _write(ckpt / "checkpoint-200" / "model.bin", 4000, t0 + 10)
    assert watch.scan(t0 + 10 + SETTLE_S + 1) == ([], True)  # first sight: still being written?
    _write(ckpt / "checkpoint-200" / "optimizer.bin", 8000, t0 + 11.5)
    assert watch.scan(t0 + 11.5 + SETTLE_S + 1) == ([], True)  # it grew
    [done], busy = watch.scan(t0 + 11.5 + SETTLE_S + 2)  # unchanged across two scans
    assert not busy
    assert (done.step, done.size, done.files, done.write_s) == (200, 12000, 2, 1.5)
    assert done.path == str(ckpt / "checkpoint-200")
    assert watch.scan(t0 + 20) == ([], False)  # reported once

    # A file rewritten in place is a new write, each time (#15); a small JSON's step is its own.
    for n, step in enumerate((300, 400)):
        (ckpt / "checkpoint.json").write_text(json.dumps({"step": step}) + " " * n)
        os.utime(ckpt / "checkpoint.json", (t0 + 30 + n, t0 + 30 + n))
        [done], _ = watch.scan(t0 + 40 + n, final=True)  # at the end: no waiting
        assert (done.step, done.files, done.step_source) == (step, 1, "content")


# Saves a two-file checkpoint folder every 20 steps, the optimizer state 0.4 s after the model,
# and says so in its output, as trainers do.
SAVER = textwrap.dedent(
    """
    import os, sys, time
    for step in range(1, 61):
        print(f"step={step} loss={1 / step:.4f}", flush=True)
        if step % 20 == 0:
            folder = os.path.join(sys.argv[1], f"checkpoint-{step}")
            os.makedirs(folder)
            open(os.path.join(folder, "model.bin"), "wb").write(b"m" * 200_000)
            time.sleep(0.4)
            open(os.path.join(folder, "optimizer.bin"), "wb").write(b"o" * 400_000)
            print(f"saved checkpoint at step {step}", flush=True)
    """
)


def _checkpoint_events(store_path: Path) -> list[tuple[int, dict]]:
    rows = run_sql(
        Store(store_path), "select step, data from events where kind = 'checkpoint' order by step"
    ).to_pylist()
    return [(r["step"], json.loads(r["data"])) for r in rows]


def test_checkpoints_under_logbook_run(run_logbook, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script, ckpt = tmp_path / "saver.py", tmp_path / "ckpt"
    script.write_text(SAVER)
    run_logbook(
        "run",
        "--store",
        str(store_path),
        "--no-capture",
        "--checkpoint-dir",
        str(ckpt),
        "--",
        sys.executable,
        str(script),
        str(ckpt),
        check=0,
    )
    events = _checkpoint_events(store_path)
    assert [step for step, _ in events] == [20, 40, 60]  # announced and seen: one event each
    for step, data in events:
        assert data["path"] == str(ckpt / f"checkpoint-{step}")
        assert (data["size_bytes"], data["files"], data["seen_by"]) == (
            600_000,
            2,
            "folder+output",
        )
        assert 0.3 <= data["write_s"] < 5
    [attempt] = run_sql(Store(store_path), "select last_checkpoint_step from attempts").to_pylist()
    assert attempt["last_checkpoint_step"] == 60


def test_without_a_folder_the_output_alone_reports_them(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    script, ckpt = tmp_path / "saver.py", tmp_path / "ckpt"
    script.write_text(SAVER)
    run_logbook(
        "run", "--store", str(store_path), "--no-capture", "--", sys.executable, str(script),
        str(ckpt), check=0,
    )  # fmt: skip
    events = _checkpoint_events(store_path)
    assert [(step, d["seen_by"], d["size_bytes"]) for step, d in events] == [
        (20, "output", None),
        (40, "output", None),
        (60, "output", None),
    ]


@pytest.mark.parametrize(
    ("name", "is_one", "step"),
    [
        ("checkpoint-1200", True, 1200),
        ("epoch=0-step=50.ckpt", True, 50),
        ("epoch=3.ckpt", True, None),
        ("last.ckpt", True, None),
        ("last-v1.ckpt", True, None),
        ("ckpt.pt", True, None),
        ("global_step1200", True, 1200),
        ("iter_0000100", True, 100),
        ("step_300.pt", True, 300),
        ("trainer_state.json", False, None),
        ("config.json", False, None),
        ("tokenizer.json", False, None),
        ("final", False, None),
        ("runs", False, None),
        ("model.safetensors", False, None),
        ("training_args.bin", False, None),
        ("latest_checkpointed_iteration.txt", False, None),
        (".faults.json", False, None),
        ("tmp-checkpoint-5", False, 5),
        ("checkpoint.json", True, None),  # a small JSON checkpoint, its step inside
        ("ckpt_100", True, 100),
        # #17: `--checkpoint-dir .` sees the training's other files; these are not checkpoints
        ("data_001.txt", False, 1),
        ("log2.txt", False, 2),
        ("step_times.csv", False, None),
        ("epoch_summary.json", False, None),
        ("iterate.py", False, None),
        ("metrics_step.jsonl", False, None),
        ("checkpoint_utils.py", False, None),
    ],
)
def test_which_entries_are_checkpoints(name: str, is_one: bool, step: int | None) -> None:
    assert is_checkpoint(name) is is_one
    assert step_in_name(name) == step


def test_a_folder_is_one_when_its_name_says_so_or_gives_a_step() -> None:
    assert is_checkpoint("global_step1200", folder=True)
    assert is_checkpoint("checkpoints", folder=True)
    assert is_checkpoint("epoch_3", folder=True)
    assert not is_checkpoint("epochs", folder=True)  # a word, no step: a folder of plots
    assert not is_checkpoint("step_times.csv")


# With `--checkpoint-dir .` (#17): the training writes data, logs and tables beside its checkpoint.
BESIDE = textwrap.dedent(
    """
    import time
    for step in range(1, 121):
        print(f"step {step} loss {2 - step / 1000:.4f}", flush=True)
        if step == 100:
            for name in ("data_001.txt", "log2.txt", "step_times.csv", "epoch_summary.json",
                         "iterate.py"):
                open(name, "w").write("x\\n")
            open("ckpt_100.pt", "wb").write(b"z" * 1000)
        time.sleep(0.002)
    """
)


def test_only_checkpoints_among_the_trainings_files(run_logbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "train.py").write_text(BESIDE)
    run_logbook(
        "run", "--no-capture", "--quiet", "--checkpoint-dir", ".", "--", sys.executable,
        "train.py", cwd=tmp_path, check=0,
    )  # fmt: skip
    events = _checkpoint_events(tmp_path / ".logbook")
    assert [(step, Path(d["path"]).name) for step, d in events] == [(100, "ckpt_100.pt")]


def test_patterns_replace_the_rule() -> None:
    assert is_checkpoint("model.pt", ["model*.pt"]) and is_checkpoint("MODEL_2.PT", ["model*.pt"])
    assert not is_checkpoint("checkpoint-100", ["model*.pt"])
    assert not is_checkpoint(".model.pt", ["*.pt"])  # hidden entries never are


def _tracker(folder: Path, reported: list[Checkpoint], **kw) -> Checkpoints:  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    return Checkpoints(folder, reported.append, **kw)


def _rewrite(path: Path, step: int, at: float) -> None:
    path.write_bytes(b"w" * (1000 + step))
    os.utime(path, (at, at))


def test_a_rewrite_holds_the_step_logged_before_it_started(tmp_path: Path) -> None:
    # The case: out/ckpt.pt rewritten at step 150 while the training went on to 160
    # before logbook looked; it was reported with 160.
    reported: list[Checkpoint] = []
    out = tmp_path / "out"
    t = time.time() + 5  # after the watch's start
    track = _tracker(out, reported)
    for step in range(100, 151):  # read every 0.1 s
        track.saw_step(t + (step - 100) * 0.1, step)
    _rewrite(out / "ckpt.pt", 150, t + 5.05)  # after step 150 was read, before 151
    for step in range(151, 161):
        track.saw_step(t + (step - 100) * 0.1, step)
    track.scan(t + 6.1)
    track.scan(t + 6.6)
    track.scan(t + 7.1)
    [ckpt] = reported
    assert (ckpt.step, ckpt.step_source, ckpt.seen_by) == (150, "last step logged", "folder")
    # Rewritten again at 200: a second event, with its own step.
    for step in range(161, 201):
        track.saw_step(t + (step - 100) * 0.1, step)
    _rewrite(out / "ckpt.pt", 200, t + 10.05)
    for now in (t + 11.1, t + 11.6, t + 12.1):
        track.scan(now)
    assert [(c.step, c.path) for c in reported] == [(150, str(out / "ckpt.pt"))] + [
        (200, str(out / "ckpt.pt"))
    ]


def test_a_save_line_without_a_step_gives_the_step_before_it(tmp_path: Path) -> None:
    # nanoGPT prints "saving checkpoint to out" just before torch.save: the step is the last one
    # logged before that line, however late logbook reads it.
    reported: list[Checkpoint] = []
    out = tmp_path / "out"
    t = time.time() + 5
    track = _tracker(out, reported)
    track.saw_step(t, 149)
    assert track.saw_line(b"saving checkpoint to out", t + 1.0, 150)  # read late, with 150 before
    track.saw_step(t + 1.0, 157)  # the same read had later steps
    _rewrite(out / "ckpt.pt", 150, t + 0.5)
    for now in (t + 1.2, t + 1.7, t + 2.2):
        track.scan(now)
    [ckpt] = reported
    assert (ckpt.step, ckpt.step_source, ckpt.seen_by) == (150, "save line", "folder+output")


def test_exports_and_state_files_are_not_checkpoints(tmp_path: Path) -> None:
    reported: list[Checkpoint] = []
    out = tmp_path / "out"
    track = _tracker(out, reported)
    track.saw_step(time.time() - 10, 20)
    (out / "checkpoint-20").mkdir()
    (out / "checkpoint-20" / "model.safetensors").write_bytes(b"m" * 100)
    (out / "checkpoint-20" / "trainer_state.json").write_text('{"global_step": 20}')
    (out / "final").mkdir()
    (out / "final" / "model.safetensors").write_bytes(b"m" * 100)
    (out / "runs" / "Dec01").mkdir(parents=True)
    (out / "trainer_state.json").write_text('{"global_step": 20}')
    (out / "model.safetensors").write_bytes(b"m" * 100)
    (out / "config.json").write_text("{}")
    track.scan(final=True)
    assert [(c.step, Path(c.path or "").name, c.files) for c in reported] == [
        (20, "checkpoint-20", 2)
    ]


@pytest.mark.parametrize(
    ("line", "step", "source"),
    [
        (b"  Continuing training from global step 100", 100, "output"),
        (b"  Resuming training from checkpoint with epoch 0 and global step 100", 100, "output"),
        (b"resumed from checkpoint at step 100", 100, "output"),
        (
            b"Restoring states from the checkpoint path at /x/out/epoch=0-step=50.ckpt",
            50,
            "checkpoint name: epoch=0-step=50.ckpt",
        ),
        (
            b"Restored all states from the checkpoint at out/last.ckpt",
            60,
            "checkpoint record: last.ckpt",
        ),
        (b"Resuming training from out", 60, "checkpoint record: last.ckpt"),
    ],
)
def test_the_resume_step_and_its_source(
    tmp_path: Path, line: bytes, step: int, source: str
) -> None:
    out = tmp_path / "out"
    reported: list[Checkpoint] = []
    memory = CheckpointMemory()
    first = _tracker(out, reported, memory=memory)  # the attempt that wrote last.ckpt at 60
    first.saw_step(time.time() - 30, 60)
    _rewrite(out / "last.ckpt", 60, time.time() - 20)
    first.scan(final=True)
    assert [c.step for c in reported] == [60]
    second = _tracker(out, [], memory=memory)  # the relaunch: last.ckpt as it was
    assert second.saw_line(line, time.time(), None)
    got_step, got_source = second.resume(first_step=None)
    assert got_step == step and got_source is not None and got_source.startswith(source)


def test_the_resume_from_the_folder_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(out / "checkpoint-50" / "model.safetensors", 10, time.time() - 60)
    _write(out / "checkpoint-100" / "model.safetensors", 10, time.time() - 30)
    (out / "state-x").mkdir()
    # Transformers' resume_from_checkpoint=True loads the newest, and prints nothing by default.
    assert _tracker(out, []).resume(first_step=101) == (100, "checkpoint name: checkpoint-100")
    # A first step before the newest checkpoint: the training started elsewhere (unknown here).
    assert _tracker(out, []).resume(first_step=1) == (None, None)
    # A folder with no step in its name: its trainer_state.json.
    _write(out / "checkpoint-last" / "model.safetensors", 10, time.time() - 5)
    (out / "checkpoint-last" / "trainer_state.json").write_text('{"global_step": 120}')
    assert _tracker(out, []).resume(first_step=121) == (
        120,
        "trainer_state.json: checkpoint-last",
    )


def test_a_file_written_with_a_named_one_holds_its_step(tmp_path: Path) -> None:
    # Lightning writes epoch=0-step=20.ckpt, then last.ckpt; a look may fall between the two, so
    # that last.ckpt settles a look before its sibling.
    reported: list[Checkpoint] = []
    out = tmp_path / "out"
    t = time.time() + 5
    track = _tracker(out, reported)
    _rewrite(out / "epoch=0-step=20.ckpt", 20, t)
    track.scan(t + 0.005)  # sees the named one only
    _rewrite(out / "last.ckpt", 20, t + 0.01)
    track.scan(t + 1.004)  # the named one settles... (unchanged for 1 s, seen twice)
    track.scan(t + 1.5)
    track.scan(t + 2.0)
    assert [(c.step, Path(c.path or "").name, c.step_source) for c in reported] == [
        (20, "epoch=0-step=20.ckpt", "name"),
        (20, "last.ckpt", "written with epoch=0-step=20.ckpt"),
    ]
    assert track.memory.recall(str(out / "last.ckpt"), _identity(out / "last.ckpt")) == 20
    # ...or the other way round: last.ckpt waits for it.
    _rewrite(out / "last.ckpt", 40, t + 10)
    track.scan(t + 10.2)
    _rewrite(out / "epoch=0-step=40.ckpt", 40, t + 10.5)
    for now in (t + 10.6, t + 11.2, t + 11.4, t + 11.7, t + 12.2):
        track.scan(now)
    assert [c.step for c in reported] == [20, 20, 40, 40]
    assert track.memory.recall(str(out / "last.ckpt"), _identity(out / "last.ckpt")) == 40


def _identity(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def test_save_lines_without_a_folder(tmp_path: Path) -> None:
    reported: list[Checkpoint] = []
    track = Checkpoints(None, reported.append)
    assert not track.saw_line(b"Will save checkpoints every 100 steps", time.time(), None)
    assert track.saw_line(b"saving checkpoint to out", time.time(), None)  # nothing logged yet
    assert track.saw_line(b"saving checkpoint to out", time.time(), 120)
    assert track.saw_line(b"Saving model checkpoint to out/checkpoint-150", time.time(), 149)
    assert [(c.step, c.step_source, c.seen_by) for c in reported] == [
        (120, "save line", "output"),
        (150, "output", "output"),
    ]


def test_checkpoint_patterns_from_the_flag_or_logbook_toml() -> None:
    from logbook.cli.commands_run import resolve_run_settings
    from logbook.errors import ConfigError

    def patterns(flag: tuple[str, ...], table: dict) -> list[str] | None:  # type: ignore[type-arg]
        return resolve_run_settings({"checkpoint_pattern": flag}, {"run": table}, (), None)[
            "checkpoint_patterns"
        ]

    assert patterns((), {}) is None  # the default rule
    assert patterns((), {"checkpoint-pattern": "model_*.pt"}) == ["model_*.pt"]
    assert patterns((), {"checkpoint-pattern": ["a*", "b*"]}) == ["a*", "b*"]
    assert patterns(("c*",), {"checkpoint-pattern": ["a*"]}) == ["c*"]  # the flag wins
    with pytest.raises(ConfigError, match="checkpoint-pattern"):
        patterns((), {"checkpoint-pattern": 3})


def test_a_pattern_under_logbook_run(run_logbook, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # model.pt rewritten in place is a checkpoint only when configured; export.pt never. Its step
    # is the last one printed before it was written, though read after it (the log's mtime).
    script, out = tmp_path / "train.py", tmp_path / "out"
    script.write_text(
        "import os, sys, time\nos.makedirs(sys.argv[1])\n"
        "for step in range(1, 7):\n"
        "    print(f'step={step} loss={1 / step}', flush=True)\n"
        "    if step % 3 == 0:\n"
        "        time.sleep(0.1)\n"
        "        open(os.path.join(sys.argv[1], 'model.pt'), 'wb').write(b'w' * step)\n"
        "    time.sleep(0.7)\n"
        "open(os.path.join(sys.argv[1], 'export.pt'), 'wb').write(b'w')\n"
    )
    run_logbook(
        "run", "--store", str(store_path), "--no-capture", "--sample-every", "0",
        "--checkpoint-dir", str(out), "--checkpoint-pattern", "model*.pt", "--",
        sys.executable, str(script), str(out), check=0,
    )  # fmt: skip
    events = _checkpoint_events(store_path)
    assert [(step, Path(d["path"]).name, d["step_source"]) for step, d in events] == [
        (3, "model.pt", "last step logged"),
        (6, "model.pt", "last step logged"),
    ]
