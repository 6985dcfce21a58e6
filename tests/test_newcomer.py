"""The first hour (#17): the README's Python, Transformers and Lightning sections, run as a newcomer
would, in order, each as its own script in one folder, on the real libraries.

The code is read from README.md itself (its ```python blocks under "From Python" and "Hugging Face
Transformers and PyTorch Lightning"), so the README cannot drift from what is tested. Only the
objects the README says are yours (`model`, `train_dataset`, `train_loader`) are made here, tiny.

Importing torch, Transformers and Lightning is most of the time (about 10 s of 12 per script on
two shared cores), so the two trainer scripts are forked from one process that imported them once
(`_PRELOAD`): each still starts with no logbook imported, runs as `__main__` under its own name and
ends as a script does (threads joined, atexit run, its own exit status). The plain Python section
runs in a fresh interpreter, without torch, as a newcomer's first script would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from logbook.query import connect
from logbook.store import Store

pytestmark = pytest.mark.integrations

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()

YOUR_TRANSFORMERS_OBJECTS = """
import torch, transformers
model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
    vocab_size=32, n_positions=16, n_embd=8, n_layer=1, n_head=2))
ids = torch.randint(0, 32, (48, 8), generator=torch.Generator().manual_seed(0))
train_dataset = [{"input_ids": i, "labels": i} for i in ids]
"""

YOUR_LIGHTNING_OBJECTS = """
import torch, lightning.pytorch as pl

class Regression(pl.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
        self.log("train_loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

model = Regression()
x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
train_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(-1)), batch_size=4)
"""


def _blocks(section: str, until: str) -> list[str]:
    text = README.split(f"### {section}\n", 1)[1].split(f"### {until}\n", 1)[0]
    return [textwrap.dedent(b) for b in re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGBOOK_", "RANK"))}
    env.pop("LOCAL_RANK", None)
    env.pop("SLURM_PROCID", None)
    return env


def _check(name: str, returncode: int, stderr: str) -> None:
    assert returncode == 0, f"{name}: {stderr[-3000:]}"
    assert "logbook: warning" not in stderr, f"{name}: {stderr[-3000:]}"


def _run(folder: Path, name: str, code: str) -> None:
    """One script in a fresh interpreter."""
    (folder / f"{name}.py").write_text(code)
    done = subprocess.run(
        [sys.executable, f"{name}.py"],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    _check(name, done.returncode, done.stderr)


# Imports the libraries once, then forks one child per script, in order. A child leaves the loop
# and falls off the end of this file, so the interpreter ends it as it ends a script.
_PRELOAD = """
import json, os, runpy, sys
import torch, transformers, lightning.pytorch
from transformers import GPT2LMHeadModel, Trainer, TrainingArguments
assert not any(m == "logbook" or m.startswith("logbook.") for m in sys.modules)
codes = {}
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        for fd, ext in ((1, "out"), (2, "err")):
            f = os.open(f"{name}.{ext}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(f, fd)
            os.close(f)
        sys.argv = [f"{name}.py"]
        runpy.run_path(f"{name}.py", run_name="__main__")
        break
    codes[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
else:
    print(json.dumps(codes))
"""


def _run_forked(folder: Path, scripts: dict[str, str]) -> None:
    """The scripts in order, each forked from one process that imported the libraries."""
    for name, code in scripts.items():
        (folder / f"{name}.py").write_text(code)
    (folder / "_preload.py").write_text(_PRELOAD)
    done = subprocess.run(
        [sys.executable, "_preload.py", *scripts],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    codes = json.loads(done.stdout)
    for name in scripts:
        _check(name, codes[name], (folder / f"{name}.err").read_text())


def _reader(folder: Path) -> Callable[[str], list[dict[str, Any]]]:
    """SQL over the store as it is now, through one connection (each costs a listing)."""
    con = connect(Store(folder / ".logbook"))
    return lambda sql: con.sql(sql).to_arrow_table().to_pylist()


def test_the_readme_integrations_in_order(tmp_path: Path) -> None:
    # find_spec, not importorskip: importing them here would cost as much as the scripts
    for lib in ("transformers", "accelerate", "lightning"):
        if importlib.util.find_spec(lib) is None:
            pytest.skip(f"{lib} is not installed")
    [python] = _blocks("From Python", "Hugging Face Transformers and PyTorch Lightning")
    hf, lightning = _blocks("Hugging Face Transformers and PyTorch Lightning", "torchrun")

    # From Python: a run named after the script, its attempt completed at exit.
    _run(tmp_path, "first_hour", python)
    sql = _reader(tmp_path)
    assert sql("select run, status, exit_code from attempts") == [
        {"run": "first_hour", "status": "completed", "exit_code": 0}
    ]
    metrics = sql("select name, step, value from metrics order by step, name")
    assert metrics == [
        {"name": "learning_rate", "step": 1200, "value": 3e-4},  # lr, by the name it has
        {"name": "loss", "step": 1200, "value": 2.31},
        {"name": "train/loss", "step": 1201, "value": 2.29},  # no step: the next; flattened
    ]
    kinds = sql("select kind, step from events where source = 'api' order by kind")
    assert kinds == [
        {"kind": "data_mix", "step": 1200},
        {"kind": "eval", "step": 1200},
        {"kind": "note", "step": 1200},
        {"kind": "phase", "step": 1201},  # the last step logged before it
    ]
    snapshots = sql(
        "select kind, name, value from snapshots where kind in ('tag', 'group', 'api_config') "
        "order by kind, name",
    )
    assert snapshots == [
        {"kind": "api_config", "name": "optim.betas", "value": "[0.9, 0.95]"},
        {"kind": "api_config", "name": "optim.lr", "value": "0.0003"},
        {"kind": "group", "name": "group", "value": "sweep-3"},
        {"kind": "tag", "name": "tag", "value": "baseline"},
    ]

    # Transformers: the metrics the Trainer logs at its global step, settings, start and end.
    _run_forked(
        tmp_path,
        {
            "first_hour_hf": YOUR_TRANSFORMERS_OBJECTS + hf,
            "first_hour_lit": YOUR_LIGHTNING_OBJECTS + lightning,
        },
    )
    sql = _reader(tmp_path)
    run = "run = 'first_hour_hf'"
    assert sql(f"select status from attempts where {run}") == [{"status": "completed"}]
    steps = sql(
        "select name, list(step order by step) as steps from metrics "
        f"where {run} and name in ('loss', 'learning_rate', 'grad_norm') group by 1 order by 1",
    )
    assert steps == [
        {"name": name, "steps": [2, 4, 6]} for name in ("grad_norm", "learning_rate", "loss")
    ]
    events = sql(f"select kind, step from events where {run} order by time")
    assert events[0] == {"kind": "train_start", "step": 0}
    assert events[-1] == {"kind": "train_end", "step": 6}
    config = sql(
        f"select name, value from snapshots where {run} and kind = 'api_config' "
        "and name in ('max_steps', 'logging_steps')",
    )
    assert sorted((r["name"], json.loads(r["value"])) for r in config) == [
        ("logging_steps", 2),
        ("max_steps", 6),
    ]

    # Lightning: the logger's metrics at Lightning's step, hyperparameters, start and end.
    run = "run = 'first_hour_lit'"
    assert sql(f"select status from attempts where {run}") == [{"status": "completed"}]
    loss = sql(
        f"select list(step order by step) as steps, count(distinct source) as sources "
        f"from metrics where {run} and name = 'train_loss'",
    )
    assert loss == [{"steps": [1, 3, 5], "sources": 1}]  # global step - 1, as CSVLogger
    hparams = sql(
        f"select value from snapshots where {run} and kind = 'api_config' and name = 'lr'"
    )
    assert {r["value"] for r in hparams} == {"0.05"}
    events = sql(f"select kind, step from events where {run} order by time")
    assert (events[0], events[-1]) == (
        {"kind": "train_start", "step": 0},
        {"kind": "train_end", "step": 6},
    )
