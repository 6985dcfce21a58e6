"""A real recorded run for the chronicle tests, made once per session with `logbook run` on real
children in a real git repository: a crash and an automatic restart, a hand relaunch with a lower
learning rate and a changed data mix, notes (one with planted HTML), a secret in the environment,
and a secret that slipped into the record past the redaction at write time."""

from __future__ import annotations

import os
import subprocess
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import git, logbook_cmd

from logbook.record.events import event_row
from logbook.store import Store

SECRET = "hf_" + "Zq7" * 11  # a Hugging Face token, set in the environment of the run
SLIPPED = "ghp_" + "Xk9" * 10  # a GitHub token written straight into the store
HOST = "gpu-node-17.cluster.example"
USER = "alice"
PLANTED = '<script>alert("chronicle")</script><img src="http://198.51.100.7/x.png"> lowered the LR'

TRAIN = textwrap.dedent(
    """
    import json, math, os, pathlib, sys, time
    ck = pathlib.Path("ck"); ck.mkdir(exist_ok=True)
    done = sorted(int(p.name.split("-")[1]) for p in ck.glob("step-*"))
    start = done[-1] if done else 0
    if start:
        print(f"resumed from checkpoint step {start}", flush=True)
    lr = float(sys.argv[sys.argv.index("--lr") + 1])
    until = int(sys.argv[sys.argv.index("--until") + 1])
    for step in range(start + 1, until + 1):
        loss = 3.0 * math.exp(-step / 40) + (4.0 if step == 70 else 0.0)
        print(json.dumps({"step": step, "loss": loss, "lr": lr, "grad_norm": 1 + step % 7}), flush=True)
        if step % 10 == 0:
            (ck / f"step-{step}").write_text("x")
            print(f"saved checkpoint step {step}", flush=True)
        if step == 45 and not (ck / "crashed").exists():
            (ck / "crashed").write_text("1")
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        time.sleep(0.005)
    """
)


@dataclass
class Recorded:
    store: Path
    run: str
    work: Path


def _logbook(work: Path, env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        logbook_cmd(*args), cwd=work, env={**os.environ, **env}, capture_output=True, timeout=120
    )
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """The run `gpt`: 1.00 crashes (gpu_oom), 1.01 restarts and completes, 1.02 is relaunched by
    hand with lr 0.05 and a third data source."""
    work = tmp_path_factory.mktemp("chronicle") / "train"
    work.mkdir()
    (work / "train.py").write_text(TRAIN)
    (work / "cfg.yaml").write_text('lr: 0.1\nbatch: 32\n"tag|v": a\n')
    (work / "mix.yaml").write_text("web: 0.7\ncode: 0.3\n")
    (work / ".gitignore").write_text("ck/\n.logbook/\n")
    git(work, "init", "-q", "-b", "main")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "first")
    (work / "train.py").write_text(TRAIN + "# tuned\n")  # uncommitted: a diff on record
    store = work / ".logbook"
    env = {
        "HF_TOKEN": SECRET,
        "LOGBOOK_HOST": HOST,
        "HOME": f"/home/{USER}",
        "USER": USER,
        "LOGBOOK_STORE": str(store),
    }
    common = [
        "--run",
        "gpt",
        "--checkpoint-dir",
        "ck",
        "--config",
        "cfg.yaml",
        "--data-mix",
        "mix.yaml",
    ]
    _logbook(
        work,
        env,
        "run",
        *common,
        "--restarts",
        "2",
        "--backoff",
        "0s",
        "--",
        sys_python(),
        "train.py",
        "--lr",
        "0.1",
        "--until",
        "120",
    )
    _logbook(work, env, "note", "gpt", PLANTED, "--step", "70")
    _logbook(work, env, "note", "gpt", f"checkpoints copied to /home/{USER}/ckpt on {HOST}")
    (work / "cfg.yaml").write_text('lr: 0.05\nbatch: 32\n"tag|v": b\n')  # a pipe in a table
    (work / "mix.yaml").write_text("web: 0.5\ncode: 0.3\nbooks: 0.2\n")
    _logbook(
        work, env, "run", *common, "--", sys_python(), "train.py", "--lr", "0.05", "--until", "160"
    )
    s = Store.open(store)
    s.write(
        "events",
        "gpt",
        [event_row("gpt", None, "note", f"pushed with token={SLIPPED}", source="cli")],
    )
    # Two wrappers of 1.02 on its host, node 0 printing its steps at half the other's pace (#19).
    last = s.read("attempts", "gpt").sort_by("start_time")["attempt_id"][-1].as_py()
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    s.write(
        "node_steps",
        "gpt",
        [
            {"run": "gpt", "attempt_id": last, "node": node, "host": HOST, "step": step,
             "time": t0 + timedelta(seconds=step * (2.0 if node == 0 else 1.0))}
            for node in (0, 1)
            for step in range(20)
        ],
    )  # fmt: skip
    return Recorded(store, "gpt", work)


def sys_python() -> str:
    import sys

    return sys.executable
