"""The first hour (#17): the README's Python, Transformers and Lightning sections, run as a newcomer
would, in order, each in a fresh process in an empty folder, on the real libraries.

The code is read from README.md itself (its ```python blocks under "From Python" and "Hugging Face
Transformers and PyTorch Lightning"), so the README cannot drift from what is tested. Only the
objects the README says are yours (`model`, `train_dataset`, `train_loader`) are made here, tiny.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from logbook.query import run_sql
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


def _run(folder: Path, name: str, code: str) -> None:
    script = folder / f"{name}.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGBOOK_", "RANK"))}
    env.pop("LOCAL_RANK", None)
    env.pop("SLURM_PROCID", None)
    done = subprocess.run(
        [sys.executable, script.name],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "logbook: warning" not in done.stderr, done.stderr[-3000:]


def _sql(folder: Path, sql: str) -> list[dict[str, Any]]:
    return run_sql(Store(folder / ".logbook"), sql).to_pylist()


def test_the_readme_integrations_in_order(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    pytest.importorskip("lightning")
    [python] = _blocks("From Python", "Hugging Face Transformers and PyTorch Lightning")
    hf, lightning = _blocks("Hugging Face Transformers and PyTorch Lightning", "torchrun")

    # From Python: a run named after the script, its attempt completed at exit.
    _run(tmp_path, "first_hour", python)
    assert _sql(tmp_path, "select run, status, exit_code from attempts") == [
        {"run": "first_hour", "status": "completed", "exit_code": 0}
    ]
    metrics = _sql(tmp_path, "select name, step, value from metrics order by step, name")
    assert metrics == [
        {"name": "learning_rate", "step": 1200, "value": 3e-4},  # lr, by the name it has
        {"name": "loss", "step": 1200, "value": 2.31},
        {"name": "train/loss", "step": 1201, "value": 2.29},  # no step: the next; flattened
    ]
    kinds = _sql(tmp_path, "select kind, step from events where source = 'api' order by kind")
    assert kinds == [
        {"kind": "data_mix", "step": 1200},
        {"kind": "eval", "step": 1200},
        {"kind": "note", "step": 1200},
    ]
    snapshots = _sql(
        tmp_path,
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
    _run(tmp_path, "first_hour_hf", YOUR_TRANSFORMERS_OBJECTS + hf)
    run = "run = 'first_hour_hf'"
    assert _sql(tmp_path, f"select status from attempts where {run}") == [{"status": "completed"}]
    steps = _sql(
        tmp_path,
        "select name, list(step order by step) as steps from metrics "
        f"where {run} and name in ('loss', 'learning_rate', 'grad_norm') group by 1 order by 1",
    )
    assert steps == [
        {"name": name, "steps": [2, 4, 6]} for name in ("grad_norm", "learning_rate", "loss")
    ]
    events = _sql(tmp_path, f"select kind, step from events where {run} order by time")
    assert events[0] == {"kind": "train_start", "step": 0}
    assert events[-1] == {"kind": "train_end", "step": 6}
    config = _sql(
        tmp_path,
        f"select name, value from snapshots where {run} and kind = 'api_config' "
        "and name in ('max_steps', 'logging_steps')",
    )
    assert sorted((r["name"], json.loads(r["value"])) for r in config) == [
        ("logging_steps", 2),
        ("max_steps", 6),
    ]

    # Lightning: the logger's metrics at Lightning's step, hyperparameters, start and end.
    _run(tmp_path, "first_hour_lit", YOUR_LIGHTNING_OBJECTS + lightning)
    run = "run = 'first_hour_lit'"
    assert _sql(tmp_path, f"select status from attempts where {run}") == [{"status": "completed"}]
    loss = _sql(
        tmp_path,
        f"select list(step order by step) as steps, count(distinct source) as sources "
        f"from metrics where {run} and name = 'train_loss'",
    )
    assert loss == [{"steps": [1, 3, 5], "sources": 1}]  # global step - 1, as CSVLogger
    hparams = _sql(
        tmp_path, f"select value from snapshots where {run} and kind = 'api_config' and name = 'lr'"
    )
    assert {r["value"] for r in hparams} == {"0.05"}
    events = _sql(tmp_path, f"select kind, step from events where {run} order by time")
    assert (events[0], events[-1]) == (
        {"kind": "train_start", "step": 0},
        {"kind": "train_end", "step": 6},
    )
