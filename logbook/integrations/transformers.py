"""Hugging Face Transformers: `LogbookCallback` records a `Trainer`'s training.

    from logbook.integrations.transformers import LogbookCallback

    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[LogbookCallback()])

What it records, through logbook's default Recorder (or the one given), so the rows join the
wrapper's attempt under `logbook run` and start their own attempt otherwise:

- metrics: every dict the Trainer logs (`on_log`: loss, grad_norm, learning_rate, epoch, eval_*,
  train_runtime...), its numbers only, at step = `state.global_step`;
- at train begin a `train_start` event, and as `config` snapshot rows the TrainingArguments
  (`args.to_dict()`, secrets redacted by name), `trainer.max_steps`, `trainer.world_size`,
  `trainer.total_batch_size` and `model.class`, `model.parameters`;
- a `checkpoint` event per save (`on_save`): the global step, the `checkpoint-N` folder in
  output_dir and its size; a `train_end` event at train end.

Exceptions: the Trainer has no hook for them. One that ends the process is recorded as it would be
without the callback: standalone, the Recorder's excepthook marks the attempt crashed; under
`logbook run`, the wrapper classifies the crash from the output. One the caller catches leaves no
mark (call `logbook.event(...)` in the handler).

Only the world's process zero records (`state.is_world_process_zero`), on top of the Recorder's
own rank check. Events and their data keys: see logbook.integrations._common.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

try:
    import transformers
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - exercised in a process without transformers
    raise ImportError(
        "logbook.integrations.transformers needs Hugging Face Transformers: "
        "pip install transformers accelerate (after the torch build you choose); "
        f"importing it failed: {e}"
    ) from e

from logbook.integrations._common import CallbackBase, guarded, numbers

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from logbook.api import Recorder

__all__ = ["LogbookCallback"]


class LogbookCallback(TrainerCallback, CallbackBase):
    """Records a Trainer's metrics, checkpoints, settings, start and end; see the module docstring.

    Args:
        recorder: where rows go; default: logbook's default Recorder (shared with `logbook.log`).
    """

    framework = "transformers"
    version = transformers.__version__

    def __init__(self, recorder: Recorder | None = None) -> None:
        CallbackBase.__init__(self, recorder)
        # When the trainer last stood between two things (#19): the end of a step, its training
        # log, an evaluation. `_maybe_log_save_evaluate` (transformers/trainer.py) runs after
        # on_step_end: the training log (on_log), the evaluation (its on_log, then on_evaluate),
        # the save (then on_save); so an evaluation and a save each run from this mark to their hook.
        self._mark: int | None = None

    @guarded
    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._mark = time.time_ns()

    @guarded
    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if state.is_world_process_zero and self._mark is not None:
            self.record_phase("evaluation", self._mark, state.global_step)
        self._mark = time.time_ns()

    @guarded
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        self.record_train_start(state.global_step, state.max_steps)
        self.recorder.config(args.to_dict())
        batch = state.train_batch_size or args.per_device_train_batch_size
        settings: dict[str, Any] = {
            "trainer": {
                "max_steps": state.max_steps,
                "world_size": args.world_size,
                "total_batch_size": batch * args.gradient_accumulation_steps * args.world_size,
            }
        }
        model = kw.get("model")
        if model is not None:
            settings["model"] = {
                "class": f"{type(model).__module__}.{type(model).__qualname__}",
                "parameters": sum(p.numel() for p in model.parameters()),
            }
        self.recorder.config(settings)

    @guarded
    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        if state.is_world_process_zero and logs:
            self.recorder.log(numbers(logs), step=state.global_step)
        if logs and not any(str(k).startswith("eval_") for k in logs):
            self._mark = time.time_ns()  # the training log: an evaluation starts after it

    @guarded
    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        path = os.path.join(args.output_dir or "", f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        # A hyperparameter search saves under a trial's folder: no path rather than a wrong one.
        self.record_checkpoint(state.global_step, path if os.path.isdir(path) else None)
        if self._mark is not None:
            self.record_phase("checkpoint_save", self._mark, state.global_step)
            self._mark = None

    @guarded
    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if state.is_world_process_zero:
            self.record_train_end(state.global_step, state.max_steps)
