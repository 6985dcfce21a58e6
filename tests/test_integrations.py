"""The framework callbacks (#4): real Transformers and Lightning trainers on tiny CPU models.

The trainer tests skip where transformers or lightning is missing; `.ci/run` installs both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from logbook.api import Recorder
from logbook.query import run_sql
from logbook.store import Store

pytestmark = pytest.mark.integrations

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_lightning.py"
_ENV_VARS = (
    "LOGBOOK_STORE",
    "LOGBOOK_RUN",
    "LOGBOOK_ATTEMPT",
    "LOGBOOK_ATTEMPT_ID",
    "RANK",
    "SLURM_PROCID",
    "LOCAL_RANK",
    "PL_GLOBAL_SEED",  # seed_everything sets it
)
# Lightning 2.6 on torch 2.13 calls a deprecated pytree class on every dataloader (upstream).
_LEAFSPEC = r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _ENV_VARS:
        monkeypatch.setenv(var, "")  # recorded, so a value a test sets is undone too
        monkeypatch.delenv(var)


def _sql(root: Path, sql: str) -> list[dict[str, Any]]:
    return run_sql(Store(root), sql).to_pylist()


def _events(root: Path, kind: str) -> list[dict[str, Any]]:
    rows = _sql(
        root,
        f"select attempt_id, step, severity, message, data from events where kind = '{kind}' "
        "order by time, step",
    )
    for r in rows:
        r["data"] = json.loads(r["data"]) if r["data"] else None
    return rows


def _config(root: Path) -> dict[str, Any]:
    rows = _sql(root, "select name, value, status from snapshots where kind = 'api_config'")
    return {
        r["name"]: r["value"] if r["status"] == "redacted" else json.loads(r["value"]) for r in rows
    }


# Transformers --------------------------------------------------------------------------------


def _tiny_gpt2() -> Any:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # the Trainer needs it
    config = transformers.GPT2Config(
        vocab_size=32, n_positions=16, n_embd=8, n_layer=1, n_head=2, bos_token_id=0
    )
    return transformers.GPT2LMHeadModel(config)


class _Tokens:
    """48 random sequences of 8 tokens, labels = inputs (language modelling)."""

    def __init__(self) -> None:
        import torch

        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 32, (48, 8), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def test_transformers_records_metrics_checkpoints_settings(tmp_path: Path) -> None:
    model = _tiny_gpt2()
    from transformers import Trainer, TrainingArguments

    from logbook.integrations.transformers import LogbookCallback

    def trainer(rec: Recorder, max_steps: int) -> Trainer:
        args = TrainingArguments(
            output_dir=str(tmp_path / "out"),
            max_steps=max_steps,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            seed=7,
            logging_steps=2,
            save_steps=3,
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
        )
        cb = LogbookCallback(rec)
        return Trainer(model=model, args=args, train_dataset=_Tokens(), callbacks=[cb])

    store = tmp_path / "store"
    rec = Recorder(store, "hf")
    first = trainer(rec, 6)
    first.train()
    rec.close()
    # the saves as phases (#19), from the step's end to on_save
    saves = [
        (e["step"], e["data"]["how"], e["data"]["duration_s"]) for e in _events(store, "phase")
    ]
    assert [s[:2] for s in saves] == [(3, "callback"), (6, "callback")]
    assert all(0 < s[2] < 30 for s in saves)

    attempt = _sql(store, "select attempt_id, status from attempts")
    assert attempt == [{"attempt_id": rec.attempt_id, "status": "completed"}]
    steps = _sql(
        store,
        "select name, list(step order by step) as steps from metrics "
        "where name in ('loss', 'learning_rate', 'grad_norm', 'train_runtime') group by 1 order by 1",
    )
    assert steps == [
        {"name": "grad_norm", "steps": [2, 4, 6]},
        {"name": "learning_rate", "steps": [2, 4, 6]},
        {"name": "loss", "steps": [2, 4, 6]},
        {"name": "train_runtime", "steps": [6]},
    ]
    logged = [h["loss"] for h in first.state.log_history if "loss" in h]
    got = _sql(store, "select value from metrics where name = 'loss' order by step")
    assert [r["value"] for r in got] == pytest.approx(logged)

    checkpoints = _events(store, "checkpoint")
    assert [(c["step"], c["message"]) for c in checkpoints] == [
        (3, "checkpoint at step 3"),
        (6, "checkpoint at step 6"),
    ]
    for c in checkpoints:
        folder = Path(c["data"]["path"])
        assert folder == tmp_path / "out" / f"checkpoint-{c['step']}"
        on_disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        assert c["data"]["size_bytes"] == on_disk > 0
    start, end = _events(store, "train_start"), _events(store, "train_end")
    assert [(e["step"], e["data"]["framework"], e["data"]["max_steps"]) for e in start] == [
        (0, "transformers", 6)
    ]
    assert [(e["step"], e["message"]) for e in end] == [(6, "training ended at step 6")]
    assert {r["attempt_id"] for r in _sql(store, "select attempt_id from events")} == {
        rec.attempt_id
    }

    config = _config(store)
    assert (config["learning_rate"], config["seed"], config["max_steps"]) == (1e-3, 7, 6)
    assert config["per_device_train_batch_size"] == 4
    assert config["trainer.total_batch_size"] == 4 and config["trainer.max_steps"] == 6
    assert config["model.class"] == "transformers.models.gpt2.modeling_gpt2.GPT2LMHeadModel"
    assert config["model.parameters"] == sum(p.numel() for p in model.parameters())
    assert config["hub_token"] == "***"  # redacted by name

    # Relaunched from checkpoint-6: a new attempt, whose training starts at step 6.
    again = Recorder(store, "hf")
    trainer(again, 8).train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-6"))
    again.close()
    starts = _sql(
        store,
        "select a.label, e.step from events e join attempts a using (attempt_id) "
        "where e.kind = 'train_start' order by 1",
    )
    assert starts == [{"label": "1.00", "step": 0}, {"label": "1.01", "step": 6}]
    resumed = _sql(
        store,
        "select list(m.step order by m.step) as s from metrics m join attempts a "
        "using (attempt_id) where a.label = '1.01' and m.name = 'loss'",
    )
    assert resumed == [{"s": [8]}]


def test_transformers_standalone_crash_marks_its_own_attempt(tmp_path: Path) -> None:
    # No exception hook in the Trainer: the Recorder's excepthook marks the attempt crashed.
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    script = tmp_path / "hf_crash.py"
    script.write_text(
        "import torch\n"
        "from transformers import Trainer, TrainerCallback, TrainingArguments\n"
        "from logbook.integrations.transformers import LogbookCallback\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.lin = torch.nn.Linear(4, 1)\n"
        "    def forward(self, x, labels):\n"
        "        return {'loss': torch.nn.functional.mse_loss(self.lin(x).squeeze(-1), labels)}\n"
        "class Stop(TrainerCallback):\n"
        "    def on_step_end(self, args, state, control, **kw):\n"
        "        if state.global_step == 3:\n"
        "            raise ValueError('bad batch at step 3')\n"
        "data = [{'x': torch.randn(4), 'labels': torch.tensor(1.0)} for _ in range(32)]\n"
        "args = TrainingArguments(output_dir='out', max_steps=8, logging_steps=1,\n"
        "    save_strategy='no', report_to=[], use_cpu=True, disable_tqdm=True)\n"
        "Trainer(model=Net(), args=args, train_dataset=data,\n"
        "    callbacks=[LogbookCallback(), Stop()]).train()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
    env["LOGBOOK_STORE"] = str(tmp_path / "store")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "bad batch at step 3" in done.stderr, done.stderr[-2000:]
    store = tmp_path / "store"
    assert _sql(store, "select run, status, summary from attempts") == [
        {
            "run": "hf_crash",
            "status": "crashed",
            "summary": "ValueError at hf_crash.py:13 in on_step_end: bad batch at step 3",
        }
    ]
    # Step 3 raised in on_step_end, before the Trainer logged it.
    assert _sql(store, "select list(step order by step) as s from metrics where name = 'loss'") == [
        {"s": [1, 2]}
    ]
    assert [e["step"] for e in _events(store, "train_start")] == [0]
    assert _events(store, "train_end") == []


def test_a_failing_hook_warns_and_the_training_goes_on(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    from logbook.integrations.transformers import LogbookCallback

    rec = Recorder(tmp_path / "store", "hf")
    callback = LogbookCallback(rec)
    # A state the Trainer never passes: the hook fails inside, says so once, returns None.
    for _ in range(2):
        assert callback.on_log(None, None, None, logs={"loss": 1.0}) is None  # type: ignore[arg-type]
    rec.close()
    err = capfd.readouterr().err
    assert err.count("the logbook transformers callback failed in on_log (AttributeError") == 1
    warnings = _events(tmp_path / "store", "logbook_warning")
    assert [(w["severity"], w["data"]["hook"]) for w in warnings] == [("warning", "on_log")]


# Lightning -----------------------------------------------------------------------------------


def _lightning() -> Any:
    return pytest.importorskip("lightning.pytorch")


def _module(pl: Any, *, fail_at: int | None = None) -> Any:
    import torch

    class Regression(pl.LightningModule):
        def __init__(self, lr: float = 0.05, width: int = 4) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(width, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if self.global_step == fail_at:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    return Regression()


def _loader() -> Any:
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(-1))
    return torch.utils.data.DataLoader(data, batch_size=4)  # 8 steps an epoch


@pytest.mark.filterwarnings(_LEAFSPEC)
@pytest.mark.filterwarnings("ignore:The '\\w+_dataloader' does not have many workers")
def test_lightning_records_metrics_checkpoints_settings(tmp_path: Path) -> None:
    pl = _lightning()
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from logbook.integrations.lightning import LogbookCallback

    store = tmp_path / "store"
    rec = Recorder(store, "lit")
    pl.seed_everything(3, verbose=False)
    csv = CSVLogger(tmp_path / "logs")
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    trainer = pl.Trainer(
        max_steps=12,
        accelerator="cpu",
        logger=csv,
        log_every_n_steps=2,
        val_check_interval=8,
        callbacks=[ckpt, LogbookCallback(rec)],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = _module(pl)
    trainer.fit(model, _loader(), _loader())
    rec.close()

    assert trainer.logger is csv and len(trainer.loggers) == 2  # the user's logger comes first
    assert ckpt.dirpath == str(tmp_path / "ckpt")
    assert _sql(store, "select attempt_id, status from attempts") == [
        {"attempt_id": rec.attempt_id, "status": "completed"}
    ]
    steps = _sql(
        store,
        "select name, list(step order by step) as steps from metrics "
        "where name in ('train_loss', 'val_loss') group by 1 order by 1",
    )
    assert steps == [
        {"name": "train_loss", "steps": [2, 4, 6, 8, 10, 12]},
        {"name": "val_loss", "steps": [8]},
    ]
    # The same values the user's CSV logger wrote.
    lines = (Path(csv.log_dir) / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    csv_loss = {
        int(row[header.index("step")]): float(row[header.index("train_loss")])
        for row in (line.split(",") for line in lines[1:])
        if row[header.index("train_loss")]
    }
    got = _sql(store, "select step, value from metrics where name = 'train_loss'")
    # Lightning hands its loggers the count before the step (global_step - 1); logbook records
    # global_step, the step of ModelCheckpoint's file names and of the Transformers callback.
    assert {r["step"] - 1: r["value"] for r in got} == pytest.approx(csv_loss)

    checkpoints = _events(store, "checkpoint")
    assert [c["step"] for c in checkpoints] == [4, 8, 12]
    for c in checkpoints:
        path = Path(c["data"]["path"])
        assert path.parent == tmp_path / "ckpt" and f"step={c['step']}" in path.name
        assert c["data"]["size_bytes"] == path.stat().st_size > 0
    assert [(e["step"], e["data"]["max_steps"]) for e in _events(store, "train_start")] == [(0, 12)]
    assert [e["step"] for e in _events(store, "train_end")] == [12]

    config = _config(store)
    assert (config["lr"], config["width"]) == (0.05, 4)
    assert (config["trainer.max_steps"], config["trainer.seed"]) == (12, 3)
    assert config["trainer.precision"] == "32-true"
    assert config["model.parameters"] == 5


@pytest.mark.filterwarnings(_LEAFSPEC)
@pytest.mark.filterwarnings("ignore:The '\\w+_dataloader' does not have many workers")
def test_lightning_exception_is_an_event_with_its_class(tmp_path: Path) -> None:
    pl = _lightning()
    from logbook.integrations.lightning import LogbookCallback

    store = tmp_path / "store"
    rec = Recorder(store, "lit")
    trainer = pl.Trainer(
        max_steps=8,
        accelerator="cpu",
        logger=False,  # no loggers: none is added, so Lightning behaves as without the callback
        enable_checkpointing=False,
        callbacks=[LogbookCallback(rec)],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        trainer.fit(_module(pl, fail_at=3), _loader(), _loader())
    rec.close()

    assert trainer.loggers == [] and trainer.logger is None
    [event] = _events(store, "exception")
    assert event["attempt_id"] == rec.attempt_id
    assert (event["step"], event["severity"]) == (3, "error")
    assert event["data"]["class"] == "gpu_oom"  # the rules that classify a wrapped crash
    assert event["data"]["exception"]["type"] == "RuntimeError"
    assert event["data"]["exception"]["function"] == "training_step"
    assert "CUDA out of memory" in event["message"]
    assert [e["step"] for e in _events(store, "train_start")] == [0]
    assert _events(store, "train_end") == []
    assert _sql(store, "select count(*) as n from metrics") == [{"n": 0}]


def test_under_logbook_run_the_callback_joins_the_wrappers_attempt(
    run_logbook: Any, tmp_path: Path
) -> None:
    _lightning()
    store = tmp_path / "store"
    out = tmp_path / "out"
    run_logbook(
        "run",
        "--store",
        str(store),
        "--run",
        "lit",
        "--",
        sys.executable,
        str(EXAMPLE),
        "--max-steps",
        "20",
        "--ckpt-every",
        "10",
        "--out",
        str(out),
        check=0,
        timeout=180,
    )
    [attempt] = _sql(store, "select attempt_id, label, status from attempts where run = 'lit'")
    assert attempt["status"] == "completed"
    assert _sql(store, "select distinct attempt_id from metrics where source = 'api'") == [
        {"attempt_id": attempt["attempt_id"]}
    ]
    got = _sql(
        store,
        "select list(step order by step) as s from metrics where source = 'api' "
        "and name = 'train_loss'",
    )
    assert got == [{"s": [5, 10, 15, 20]}]
    checkpoints = _events(store, "checkpoint")
    assert {c["attempt_id"] for c in checkpoints} == {attempt["attempt_id"]}
    named = [(c["step"], Path(c["data"]["path"]).name) for c in checkpoints]
    assert [n for n in named if n[1] != "last.ckpt"] == [
        (10, "epoch=0-step=10.ckpt"),
        (20, "epoch=1-step=20.ckpt"),
    ]
    # save_last copies each save to last.ckpt (Lightning 2.4 also at each epoch's end).
    assert {step for step, name in named if name == "last.ckpt"} >= {10, 20}
    kinds = _sql(store, "select kind from events where source = 'api' order by time")
    assert kinds[0] == {"kind": "train_start"} and kinds[-1] == {"kind": "train_end"}
    assert _config(store)["trainer.max_steps"] == 20


# Without the libraries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "blocked", "hint"),
    [
        ("transformers", ["transformers"], "pip install transformers"),
        ("lightning", ["lightning", "pytorch_lightning"], "pip install lightning"),
    ],
)
def test_importing_without_the_library_says_what_to_install(
    module: str, blocked: list[str], hint: str
) -> None:
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None  # as if not installed\n"
        "import logbook.integrations\n"
        f"import logbook.integrations.{module}\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ImportError: logbook.integrations.{module} needs ")
    assert hint in last and "(after the torch build you choose)" in last


def test_checkpoints_in_the_wrappers_folder_are_left_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from logbook.integrations._common import CallbackBase

    watched, elsewhere = tmp_path / "ckpt", tmp_path / "other"
    for folder in (watched, elsewhere):
        (folder / "step-5").mkdir(parents=True)
        (folder / "step-5" / "model.bin").write_bytes(b"\0" * 10)
    monkeypatch.setenv("LOGBOOK_CHECKPOINT_DIR", str(watched))
    store = tmp_path / "store"
    callback = CallbackBase(Recorder(store, "cb"))
    callback.record_checkpoint(5, str(watched / "step-5"))  # `logbook run --checkpoint-dir` has it
    callback.record_checkpoint(5, str(elsewhere / "step-5"))
    callback.recorder.close()
    [event] = _events(store, "checkpoint")
    assert event["data"]["path"] == str(elsewhere / "step-5") and event["data"]["size_bytes"] == 10


@pytest.mark.filterwarnings(_LEAFSPEC)
@pytest.mark.filterwarnings("ignore:The '\\w+_dataloader' does not have many workers")
def test_lightning_logger_records_what_lightning_logs(tmp_path: Path) -> None:
    pl = _lightning()
    from lightning.pytorch.loggers import CSVLogger

    from logbook.integrations.lightning import LogbookCallback, LogbookLogger

    store = tmp_path / "store"
    rec = Recorder(store, "lit")
    ours, csv = LogbookLogger(rec), CSVLogger(tmp_path / "logs")
    trainer = pl.Trainer(
        max_steps=6,
        accelerator="cpu",
        logger=[ours, csv],
        log_every_n_steps=2,
        enable_checkpointing=False,
        callbacks=[LogbookCallback(rec)],  # beside the logger: no second copy of the metrics
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_module(pl), _loader(), _loader())
    rec.close()

    assert trainer.logger is ours
    lines = (Path(csv.log_dir) / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    csv_loss = {
        int(row[header.index("step")]): float(row[header.index("train_loss")])
        for row in (line.split(",") for line in lines[1:])
        if row[header.index("train_loss")]
    }
    got = _sql(store, "select step, value from metrics where name = 'train_loss' order by step")
    # A logger records the step Lightning gives its loggers, as the CSV logger does.
    assert {r["step"]: r["value"] for r in got} == pytest.approx(csv_loss)
    assert len(got) == len(csv_loss) == 3
    config = _config(store)
    assert (config["lr"], config["width"]) == (0.05, 4)  # log_hyperparams
    assert _sql(store, "select status from attempts") == [{"status": "completed"}]


@pytest.mark.filterwarnings(_LEAFSPEC)
@pytest.mark.filterwarnings("ignore:The '\\w+_dataloader' does not have many workers")
def test_lightning_times_validation_and_saves_as_phases(tmp_path: Path) -> None:
    """#19: on_validation_start/end and on_save_checkpoint give `phase` events."""
    pl = _lightning()
    from lightning.pytorch.callbacks import ModelCheckpoint

    from logbook.integrations.lightning import LogbookCallback

    store = tmp_path / "store"
    rec = Recorder(store, "lit")
    model = _module(pl)
    step = type(model).validation_step

    def slow_validation(self: Any, batch: Any, batch_idx: int) -> None:
        time.sleep(0.2)
        step(self, batch, batch_idx)

    type(model).validation_step = slow_validation  # type: ignore[method-assign]
    trainer = pl.Trainer(
        max_steps=8,
        accelerator="cpu",
        logger=False,
        val_check_interval=4,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        callbacks=[
            ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1),
            LogbookCallback(rec),
        ],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, _loader(), _loader())
    rec.close()
    got = [
        (e["data"]["phase"], e["step"], e["data"]["how"], e["data"]["duration_s"])
        for e in _events(store, "phase")
    ]
    evaluations = [g for g in got if g[0] == "evaluation"]
    assert [(p, s, how) for p, s, how, _ in evaluations] == [
        ("evaluation", 4, "callback"),
        ("evaluation", 8, "callback"),
    ]
    assert all(0.4 <= d < 3 for *_, d in evaluations)  # two batches of 0.2 s each
    saves = sorted(g[1] for g in got if g[0] == "checkpoint_save")
    assert saves == [4, 8]
