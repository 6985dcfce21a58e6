"""`logbook demo`, run for real once, and the faults of examples/train.py that it is made of (#7)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from logbook.query import run_sql
from logbook.store import Store

TRAIN = Path(__file__).resolve().parents[1] / "examples" / "train.py"


@pytest.fixture
def demo(demo_run: tuple[Path, str]) -> tuple[Path, str]:
    """The session's demo (tests/conftest.py): its folder and its output."""
    return demo_run


def test_the_story_is_on_record(demo: tuple[Path, str]) -> None:
    out, _ = demo
    store = Store(out / ".logbook")
    attempts = run_sql(
        store,
        "select label, parent_label, status, crash_class, resumed_from_step, last_step "
        "from attempts where run = 'demo' order by start_time",
    ).to_pylist()
    ends = [(a["label"], a["parent_label"], a["status"], a["crash_class"]) for a in attempts]
    assert ends == [
        ("1.00", None, "crashed", "python_exception"),
        ("1.01", "1.00", "hung", None),
        ("1.02", "1.01", "interrupted", None),
        ("1.03", "1.02", "completed", None),
    ]
    assert [a["resumed_from_step"] for a in attempts[:3]] == [None, 100, 200]
    # Stopped by hand at step 340 or just after: the relaunch resumes where it stopped.
    assert 340 <= attempts[2]["last_step"] <= attempts[3]["resumed_from_step"] < 350
    assert attempts[3]["last_step"] == 450

    events = run_sql(
        store,
        "select a.label, e.* from events e left join attempts a using (attempt_id) order by time",
    ).to_pylist()
    kinds = [(e["label"], e["kind"]) for e in events if e["kind"] not in ("checkpoint",)]
    for expected in [
        ("1.00", "crash"),
        ("1.00", "restart"),
        ("1.01", "hang"),
        ("1.01", "hang_stopped"),
        ("1.01", "restart"),
        ("1.02", "loss_spike"),
        ("1.02", "interrupted"),
        ("1.03", "hparam_change"),
        ("1.03", "data_mix_change"),
    ]:
        assert expected in kinds
    assert [k for _, k in kinds].count("restart") == 2
    [spike] = [e for e in events if e["kind"] == "loss_spike"]
    assert spike["step"] == 310
    [note] = [e for e in events if e["kind"] == "note"]
    assert note["step"] == 310 and "Lowering the LR" in note["message"]
    [lr] = [e for e in events if e["kind"] == "hparam_change"]
    assert json.loads(lr["data"])["key"] == "lr" and lr["message"] == "lr: 0.5 -> 0.2"
    [mix] = [e for e in events if e["kind"] == "data_mix_change"]
    assert "code weight 0.25 -> 0.4" in mix["message"]

    [last] = run_sql(
        store, "select max(step) as step from metrics where run = 'demo' and name = 'loss'"
    ).to_pylist()
    assert last["step"] == 450
    assert not any((out / name / "stale").exists() for name in (".logbook", "work", "chronicle"))


def test_the_chronicle_tells_it(demo: tuple[Path, str]) -> None:
    out, stdout = demo
    page = (out / "chronicle" / "index.html").read_text()
    for text in (
        "python_exception",
        "hung",
        "interrupted",
        "completed",
        "loss_spike",
        "Lowering the LR after the spike at step 310",
        "data_mix_change",
    ):
        assert text in page, text
    assert (out / "chronicle" / "chronicle.md").is_file()
    # The output tells the story and says where to look next.
    for text in (
        "1/4 Launch",
        "| RuntimeError: injected failure at step 130",
        "-- logbook relaunched it (restart 1)",
        "-- logbook's hang watch stopped it, and relaunched it (restart 2)",
        "^C at step 34",
        "1.02 loss_spike at step 310",
        "1.03 hparam_change: lr: 0.5 -> 0.2",
        f"Open {out / 'chronicle' / 'index.html'} in a browser",
        f"logbook show demo --store {out / '.logbook'}",
    ):
        assert text in stdout, text
    assert "Traceback" not in stdout


def test_a_folder_holding_other_things_is_refused(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke(["demo", "--out", str(tmp_path)], code=1)
    assert result.stderr == (
        f"Error: {tmp_path} holds other things (notes.txt); the demo writes only into a new or "
        "empty folder, or one an earlier demo made; choose another --out\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# examples/train.py alone: each fault fires at its step, once per checkpoint folder.


def train(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(TRAIN), "--ckpt-dir", str(tmp_path / "ck"), "--steps", "40",
         "--ckpt-every", "10", *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=timeout,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOGBOOK_")},
    )  # fmt: skip


def losses(stdout: str) -> dict[int, float]:
    pairs = (
        dict(kv.split("=") for kv in line.split())
        for line in stdout.splitlines()
        if line.startswith("step=")
    )
    return {int(p["step"]): float(p["loss"]) for p in pairs}


def test_a_crash_fires_once_per_checkpoint_folder(tmp_path: Path) -> None:
    first = train(tmp_path, "--crash-at", "25", "--crash-times", "2")
    assert first.returncode == 1
    assert first.stderr.splitlines()[-1] == "RuntimeError: injected failure at step 25"
    again = train(tmp_path, "--crash-at", "25", "--crash-times", "2")
    assert again.returncode == 1 and "resumed from checkpoint at step 20" in again.stdout
    last = train(tmp_path, "--crash-at", "25", "--crash-times", "2")
    assert last.returncode == 0 and last.stdout.splitlines()[-1] == "training complete"
    assert json.loads((tmp_path / "ck" / ".faults.json").read_text()) == {"crash": 2}


@pytest.mark.parametrize("name", ["KILL", "SEGV", "TERM"])
def test_a_signal(tmp_path: Path, name: str) -> None:
    proc = train(tmp_path, "--signal-at", "15", "--signal", name)
    assert proc.returncode == -getattr(signal, f"SIG{name}")
    assert max(losses(proc.stdout)) == 10
    assert train(tmp_path, "--signal-at", "15", "--signal", name).returncode == 0


def read_until(stream: IO[str], prefix: str) -> None:
    while not (line := stream.readline()).startswith(prefix):
        assert line, f"no line starting {prefix!r}"


def test_a_hang_stops_the_output_and_sleeps(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, str(TRAIN), "--ckpt-dir", str(tmp_path / "ck"), "--hang-at", "21"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        try:
            read_until(proc.stdout, "step=20 ")
            assert not select.select([proc.stdout], [], [], 1.5)[0]  # nothing more to read
            assert proc.poll() is None
        finally:
            proc.kill()


def test_a_loss_spike_then_recovery(tmp_path: Path) -> None:
    proc = train(tmp_path, "--steps", "80", "--log-every", "5", "--spike-at", "50")
    assert proc.returncode == 0
    loss = losses(proc.stdout)
    assert loss[50] > 5 * loss[45]
    assert loss[70] < 2 * loss[45]


def test_a_nan_stops_the_training(tmp_path: Path) -> None:
    proc = train(tmp_path, "--nan-at", "13")
    assert proc.returncode == 1
    last, stop = proc.stdout.splitlines()[-2:]
    assert last.startswith("step=13 loss=nan lr=0.5 ") and stop == "Loss is nan, stopping training"


def test_out_of_memory_on_the_host_and_on_a_gpu(tmp_path: Path) -> None:
    host = train(tmp_path, "--oom-at", "12")
    assert host.returncode == 1 and host.stderr.splitlines()[-1] == "MemoryError"
    cuda = train(tmp_path / "gpu", "--oom-at", "12", "--oom", "cuda")
    assert cuda.returncode == 1
    assert "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" in cuda.stderr


def test_ctrl_c_saves_a_checkpoint(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN), "--ckpt-dir", str(tmp_path / "ck"), "--steps", "1000",
         "--step-delay", "0.01"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    read_until(proc.stdout, "step=30 ")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    step = json.loads((tmp_path / "ck" / "latest.json").read_text())["step"]
    assert 30 <= step < 1000 and f"interrupted at step {step}" in err


def test_config_mix_and_flags(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text("# settings\nlr: 0.1   # small\nsteps: 20\nlog_every: 5\n")
    (tmp_path / "mix.yaml").write_text("sources:\n  web: {weight: 3}\n  code: 1\n")
    proc = train(tmp_path, "--config", "cfg.yaml", "--data-mix", "mix.yaml", "--lr", "0.3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "data mix: code 25%, web 75%"
    # The config's lr and log_every; the flags' lr and steps (40, from train()).
    assert "lr=0.3 " in proc.stdout and sorted(losses(proc.stdout)) == list(range(5, 45, 5))
    # Another mix is other data; the same mix, the same data.
    (tmp_path / "other.json").write_text('{"web": 1, "code": 3}')
    other = train(tmp_path / "b", "--steps", "20", "--data-mix", str(tmp_path / "other.json"))
    same = train(tmp_path / "c", "--steps", "20", "--data-mix", str(tmp_path / "other.json"))
    assert (
        losses(other.stdout)
        == losses(same.stdout)
        != losses(train(tmp_path / "d", "--steps", "20").stdout)
    )
    (tmp_path / "bad.yaml").write_text("lr: 0.1\nwarmup: 10\n")
    bad = train(tmp_path, "--config", "bad.yaml")
    assert bad.returncode == 2 and "bad.yaml: unknown setting 'warmup'" in bad.stderr


@pytest.mark.parametrize(
    ("fault", "status", "crash_class"),
    [
        (["--signal-at", "5", "--signal", "SEGV"], "crashed", "fatal_signal"),
        (["--oom-at", "5"], "crashed", "host_oom"),
        (["--oom-at", "5", "--oom", "cuda"], "crashed", "gpu_oom"),
        (["--nan-at", "5"], "crashed", "numerical"),
    ],
)
def test_logbook_names_each_fault(  # type: ignore[no-untyped-def]
    run_logbook, store_path: Path, tmp_path: Path, fault: list[str], status: str, crash_class: str
) -> None:
    run_logbook(
        "run", "--store", str(store_path), "--run", "f", "--no-capture", "--sample-every", "0",
        "--", sys.executable, str(TRAIN), "--ckpt-dir", str(tmp_path / "ck"), "--steps", "20",
        *fault,
    )  # fmt: skip
    [row] = run_sql(Store(store_path), "select status, crash_class from attempts").to_pylist()
    assert (row["status"], row["crash_class"]) == (status, crash_class)
