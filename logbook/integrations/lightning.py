"""PyTorch Lightning: `LogbookLogger` is a Lightning logger, `LogbookCallback` records the rest.

    from logbook.integrations.lightning import LogbookCallback, LogbookLogger

    trainer = lightning.pytorch.Trainer(logger=LogbookLogger(), callbacks=[LogbookCallback()])

`LogbookLogger` does what a Lightning logger does (`Trainer(logger=...)`, alone or in a list
with others): `log_metrics` records what Lightning logs at the step Lightning gives its loggers
(as CSVLogger does: the count of optimizer steps before the one that logged), `log_hyperparams` the
hyperparameters as `config` snapshot rows, `save` and `finalize` write what is buffered. Its
`name` is "logbook" and its `version` the attempt's label, which name the checkpoint folder when it
is the first logger. The callback, beside it or alone, records the rest (below); beside a
`LogbookLogger` it leaves the metrics to the logger.

Works with the `lightning` package (`lightning.pytorch`), else with `pytorch_lightning`. What it
records, through logbook's default Recorder (or the one given), so the rows join the wrapper's
attempt under `logbook run` and start their own attempt otherwise:

- metrics: what Lightning sends its loggers (`self.log(...)`, LearningRateMonitor...), at step =
  `trainer.global_step`. The callback adds a relay to `trainer.loggers` at setup, after the
  trainer's own loggers (they, `trainer.logger` and the checkpoint folder stay as they were).
  With `logger=False` Lightning logs nothing, and no metrics are recorded;
- at train start a `train_start` event, and as `config` snapshot rows the module's hparams
  (`save_hyperparameters()`) and the datamodule's, `trainer.*` settings (max_epochs, max_steps,
  accumulate_grad_batches, precision, world_size...; `seed` when `seed_everything` set one) and
  `model.class`, `model.parameters`;
- a `checkpoint` event per `trainer.save_checkpoint` (ModelCheckpoint's or yours): the global step,
  and the path and size of the file ModelCheckpoint wrote (null for a save of your own). It is
  recorded at the next hook, once the file is written; a save made while handling an exception
  (`save_on_exception`) comes after the last hook and is not recorded;
- `train_end` at train end, and an `exception` event when `fit` raises (`on_exception`; for
  Ctrl-C, a warning). Lightning re-raises the exception, so the attempt ends as it would without
  the callback; after Ctrl-C Lightning calls `sys.exit(1)`, which a standalone Recorder records as
  crashed with exit code 1 (under `logbook run` the wrapper classifies the exit).

Only global rank zero records (`trainer.is_global_zero`), on top of the Recorder's own rank check.
Events and their data keys: see logbook.integrations._common.
"""

from __future__ import annotations

import os
import stat
import time
from typing import TYPE_CHECKING, Any

try:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import Logger
except ImportError as e:
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
        from pytorch_lightning.loggers import Logger  # type: ignore[assignment]
    except ImportError:  # pragma: no cover - exercised in a process without lightning
        raise ImportError(
            "logbook.integrations.lightning needs PyTorch Lightning: pip install lightning "
            f"(after the torch build you choose); importing it failed: {e}"
        ) from e

from logbook.integrations._common import CallbackBase, guarded, numbers

if TYPE_CHECKING:
    from logbook.api import Recorder

__all__ = ["LogbookCallback", "LogbookLogger"]

_MTIME_SLACK_NS = 2_000_000_000  # file systems with coarse timestamps: a file may look 1-2 s older


class LogbookCallback(pl.Callback, CallbackBase):
    """Records a Trainer's metrics, checkpoints, settings, start, end and exceptions; see the
    module docstring.

    Args:
        recorder: where rows go; default: logbook's default Recorder (shared with `logbook.log`).
    """

    framework = "lightning"
    version = pl.__version__

    def __init__(self, recorder: Recorder | None = None) -> None:
        CallbackBase.__init__(self, recorder)
        self._trainer: Any = None
        self._pending: list[tuple[int, int]] = []  # (global step, time ns) of saves under way
        self._seen: set[tuple[str, int]] = set()  # (path, mtime ns) of checkpoints recorded
        self._validating: int | None = None  # time ns the validation began (#19)

    def __getstate__(self) -> dict[str, Any]:
        state = CallbackBase.__getstate__(self)
        state["_trainer"] = None
        return state

    # setup, start, end -------------------------------------------------------------------------

    @guarded
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._trainer = trainer
        loggers = list(trainer.loggers)
        # Only beside loggers the user has: one of ours alone would become `trainer.logger` and
        # change what Lightning does (hparams checks, warnings, LearningRateMonitor's refusal).
        if loggers and not any(isinstance(lg, (_Relay, LogbookLogger)) for lg in loggers):
            trainer.loggers = [*loggers, _Relay(self, loggers[0])]

    @guarded
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self.record_train_start(trainer.global_step, max_steps)
        hparams: dict[str, Any] = {}
        datamodule = getattr(trainer, "datamodule", None)
        for owner in (datamodule, pl_module):
            hp = getattr(owner, "hparams", None) if owner is not None else None
            if hp:
                hparams.update(dict(hp))
        if hparams:
            self.recorder.config(hparams)
        settings: dict[str, Any] = {
            "max_epochs": trainer.max_epochs,
            "max_steps": trainer.max_steps,
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
            "precision": trainer.precision,
            "gradient_clip_val": trainer.gradient_clip_val,
            "world_size": trainer.world_size,
            "num_nodes": trainer.num_nodes,
            "num_devices": trainer.num_devices,
            "strategy": type(trainer.strategy).__name__,
            "log_every_n_steps": trainer.log_every_n_steps,
        }
        seed = os.environ.get("PL_GLOBAL_SEED")  # set by seed_everything
        if seed is not None:
            settings["seed"] = int(seed) if seed.lstrip("-").isdigit() else seed
        model = {
            "class": f"{type(pl_module).__module__}.{type(pl_module).__qualname__}",
            "parameters": sum(p.numel() for p in pl_module.parameters()),
        }
        self.recorder.config({"trainer": settings, "model": model})

    @guarded
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        self._record_saves(trainer)
        max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self.record_train_end(trainer.global_step, max_steps)

    @guarded
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if not trainer.is_global_zero:
            return
        self._record_saves(trainer)
        self.record_exception(exception, trainer.global_step)

    # checkpoints -------------------------------------------------------------------------------

    @guarded
    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Any) -> None:
        # Called as the checkpoint is put together, before it is written.
        if trainer.is_global_zero:
            self._pending.append((trainer.global_step, time.time_ns()))
            self.mark_phase_start("checkpoint_save")

    # Hooks after which a save made by ModelCheckpoint (ordered last) has been written.
    @guarded
    def on_train_batch_start(self, trainer: Any, *args: Any, **kw: Any) -> None:
        if self._pending:
            self._record_saves(trainer)

    @guarded
    def on_train_batch_end(self, trainer: Any, *args: Any, **kw: Any) -> None:
        if self._pending:
            self._record_saves(trainer)

    @guarded
    def on_train_epoch_start(self, trainer: Any, *args: Any, **kw: Any) -> None:
        if self._pending:
            self._record_saves(trainer)

    @guarded
    def on_train_epoch_end(self, trainer: Any, *args: Any, **kw: Any) -> None:
        if self._pending:
            self._record_saves(trainer)

    @guarded
    def on_validation_start(self, trainer: Any, *args: Any, **kw: Any) -> None:
        if self._pending:
            self._record_saves(trainer)
        self._validating = time.time_ns()
        if trainer.is_global_zero:
            self.mark_phase_start("evaluation")

    @guarded
    def on_validation_end(self, trainer: Any, *args: Any, **kw: Any) -> None:
        began, self._validating = self._validating, None
        if began is not None and trainer.is_global_zero:  # the sanity check's too: it is time
            self.record_phase("evaluation", began, trainer.global_step)
        if self._pending:
            self._record_saves(trainer)

    @guarded
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self._pending:
            self._record_saves(trainer)
        self.recorder.flush()

    def _record_saves(self, trainer: Any) -> None:
        """Record the saves under way, each with the first file ModelCheckpoint wrote after it
        began (a save of the user's own, not in ModelCheckpoint's paths, gets none)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        written: list[tuple[int, str]] = []
        for candidate in _checkpoint_paths(trainer):
            try:
                st = os.lstat(candidate)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):  # save_last="link": a link to a save, not a save
                continue
            if (candidate, st.st_mtime_ns) not in self._seen:
                written.append((st.st_mtime_ns, candidate))
        written.sort()
        for step, began in pending:
            found = next((w for w in written if w[0] >= began - _MTIME_SLACK_NS), None)
            if found is not None:
                written.remove(found)
                self._seen.add((found[1], found[0]))
            self.record_checkpoint(step, found[1] if found is not None else None)
            # the save from when it began to this hook, once written (#19)
            self.record_phase("checkpoint_save", began, step)

    # metrics (through _Relay) ------------------------------------------------------------------

    def _log_metrics(self, metrics: Any) -> None:
        trainer = self._trainer
        if trainer is None or not trainer.is_global_zero:
            return
        try:
            self.recorder.log(numbers(metrics), step=trainer.global_step)
        except Exception as e:
            self.failed("log_metrics", e)


def _checkpoint_paths(trainer: Any) -> list[str]:
    """The files the trainer's ModelCheckpoint callbacks know: last, best and top-k."""
    paths: dict[str, None] = {}
    for cb in getattr(trainer, "checkpoint_callbacks", []):
        # _last_checkpoint_saved is the file of the last save (Lightning 2.x); the public paths
        # cover versions without it.
        for p in (
            getattr(cb, "_last_checkpoint_saved", ""),
            getattr(cb, "last_model_path", ""),
            getattr(cb, "best_model_path", ""),
            *getattr(cb, "best_k_models", {}),
        ):
            if p:
                paths[os.fspath(p)] = None
    return list(paths)


class _Relay(Logger):
    """A Lightning logger that hands what Lightning logs to the callback."""

    def __init__(self, owner: LogbookCallback, first: Any) -> None:
        super().__init__()
        self._owner = owner
        self._first = first

    @property
    def name(self) -> str:
        return "logbook"

    @property
    def version(self) -> Any:
        # The progress bar joins the loggers' distinct versions: ours adds none.
        return self._first.version if self._first is not None else ""

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # recorded at train start from the module, also when there is no logger

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self._owner._log_metrics(metrics)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_owner=None, _first=None)
        return state


class LogbookLogger(Logger, CallbackBase):
    """A Lightning logger that records through logbook; see the module docstring.

    Args:
        recorder: where rows go; default: logbook's default Recorder (shared with `logbook.log`).
    """

    framework = "lightning"

    def __init__(self, recorder: Recorder | None = None) -> None:
        Logger.__init__(self)
        CallbackBase.__init__(self, recorder)

    @property
    def name(self) -> str:
        return "logbook"

    @property
    def version(self) -> str:  # type: ignore[override]  # the logger's, not the framework's
        return self.recorder.label or "0"

    @property
    def save_dir(self) -> str | None:
        return None  # checkpoints under the Trainer's default_root_dir

    @pl.utilities.rank_zero_only
    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        try:
            self.recorder.log(numbers(metrics), step=step)
        except Exception as e:
            self.failed("log_metrics", e)

    @pl.utilities.rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        try:
            values = params if isinstance(params, dict) else vars(params)
            self.recorder.config(dict(values))
        except Exception as e:
            self.failed("log_hyperparams", e)

    def save(self) -> None:
        self._flush("save")

    def finalize(self, status: str) -> None:
        self._flush("finalize")

    def _flush(self, hook: str) -> None:
        try:
            self.recorder.flush()
        except Exception as e:
            self.failed(hook, e)

    def __getstate__(self) -> dict[str, Any]:
        return CallbackBase.__getstate__(self)
