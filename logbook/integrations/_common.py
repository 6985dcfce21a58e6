"""What the framework callbacks share: the Recorder they write to, and the rows they make.

Their events have source `api`, like `logbook.event`, and use the wrapper's kinds and keys where
it has one, so `logbook events` and the chronicle read them alike:

- `checkpoint`: step, message "checkpoint at step N" and data `path` as the wrapper writes them
  (it sees checkpoints in the output or in --checkpoint-dir); plus `size_bytes`, the file's size or
  the folder's total (null past MAX_SIZE_ENTRIES entries or when unreadable). None for a path
  inside `logbook run --checkpoint-dir` (LOGBOOK_CHECKPOINT_DIR): the wrapper records those.
- `train_start`, `train_end`: at the trainer's global step (a resumed run starts past 0); data
  `framework`, `version`, `max_steps`.
- `phase` (#19): an evaluation or a checkpoint save the trainer's hooks timed, as
  `logbook.phase` records it, with data `how` = callback (logbook/record/phases.py).
- `exception`: an exception the trainer saw, with the message and data of the wrapper's `crash`
  event: `class` (from logbook.forensics' rules: gpu_oom, numerical, data_io...), `exception`
  (type, message, file, line, function) and `lines` (the traceback's last lines). It is not a
  `crash`: the caller may catch it, and under `logbook run` the wrapper writes the `crash` when the
  process dies of it (standalone, the Recorder's excepthook marks the attempt crashed).

A callback never breaks the training: a failure inside one is a warning on stderr and a
`logbook_warning` event, once per hook, and the hook returns as if it had done nothing.
"""

from __future__ import annotations

import functools
import os
import stat
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from logbook.api import Recorder

MAX_SIZE_ENTRIES = 10_000  # a checkpoint folder with more files is not summed (size_bytes null)

F = TypeVar("F", bound=Callable[..., Any])


class CallbackBase:
    """The part of a framework callback that is about logbook.

    Args:
        recorder: where rows go; default: logbook's default Recorder (the one `logbook.log` uses),
            made on first use, so the callback and `logbook.log` calls share one attempt.
    """

    framework = ""
    version = ""

    def __init__(self, recorder: Recorder | None = None) -> None:
        self._recorder = recorder
        self._failed: set[str] = set()

    @property
    def recorder(self) -> Recorder:
        """The Recorder this callback writes to."""
        if self._recorder is None:
            from logbook.api import get_recorder

            self._recorder = get_recorder()
        return self._recorder

    def __getstate__(self) -> dict[str, Any]:
        # A Recorder holds locks and a thread; a copy (ddp_spawn pickles callbacks) uses the
        # default Recorder of the process it lands in.
        state = self.__dict__.copy()
        state["_recorder"] = None
        return state

    # rows ----------------------------------------------------------------------------------

    def record_train_start(self, step: int, max_steps: int | None) -> None:
        self._record_train("start", step, max_steps)

    def record_train_end(self, step: int, max_steps: int | None) -> None:
        self._record_train("end", step, max_steps)
        self.recorder.flush()

    def _record_train(self, what: str, step: int, max_steps: int | None) -> None:
        self.recorder.event(
            f"train_{what}",
            f"training {what}ed at step {step}",
            step=step,
            framework=self.framework,
            version=self.version,
            max_steps=max_steps,
        )

    def record_checkpoint(self, step: int | None, path: str | None) -> None:
        if path and _watched_by_the_wrapper(path):
            return  # `logbook run --checkpoint-dir` records it, with its write time: one event
        self.recorder.event(
            "checkpoint",
            f"checkpoint at step {step}" if step is not None else "checkpoint",
            step=step,
            path=path,
            size_bytes=size_of(path) if path else None,
        )

    def record_phase(self, name: str, began_ns: int, step: int | None) -> None:
        """A phase from `began_ns` (time.time_ns()) until now."""
        from datetime import datetime, timezone

        from logbook.record import phase_marks

        start = datetime.fromtimestamp(began_ns / 1e9, timezone.utc)
        seconds = (time.time_ns() - began_ns) / 1e9
        phase_marks.mark("end", name, seconds)  # the wrapper's hang watch learns it now
        self.recorder.record_phase(name, start, seconds, step=step, how="callback")

    def mark_phase_start(self, name: str) -> None:
        """A phase begins: the wrapper's hang watch gives the silence that follows its budget."""
        from logbook.record import phase_marks

        phase_marks.mark("start", name)

    def record_exception(self, exc: BaseException, step: int | None) -> None:
        from logbook.forensics.exceptions import describe_exception

        message, data = describe_exception(exc)
        severity = "warning" if isinstance(exc, KeyboardInterrupt) else "error"
        self.recorder.event("exception", message, step=step, severity=severity, **data)
        self.recorder.flush()  # the process may be about to die

    def failed(self, hook: str, e: Exception) -> None:
        """Say once per hook that it failed; the training goes on."""
        if hook in self._failed:
            return
        self._failed.add(hook)
        text = (
            f"the logbook {self.framework} callback failed in {hook} "
            f"({type(e).__name__}: {e}); the training goes on"
        )
        try:
            self.recorder.warn(text)
            self.recorder.event("logbook_warning", text, severity="warning", hook=hook)
        except Exception:
            pass


def _watched_by_the_wrapper(path: str) -> bool:
    folder = os.environ.get("LOGBOOK_CHECKPOINT_DIR")
    if not folder:
        return False
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(folder)]) == (
            os.path.realpath(folder)
        )
    except ValueError:
        return False


def guarded(fn: F) -> F:
    """A callback hook that never raises into the training (see `CallbackBase.failed`)."""

    @functools.wraps(fn)
    def hook(self: CallbackBase, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except Exception as e:
            self.failed(fn.__name__, e)
            return None

    return hook  # type: ignore[return-value]


def numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries of `values` that are numbers (Python, NumPy or one-element tensor scalars)."""
    out: dict[str, float] = {}
    for name, value in values.items():
        if not isinstance(name, str) or isinstance(value, (bool, str, bytes)):
            continue
        if isinstance(value, (int, float)) or getattr(value, "ndim", None) == 0:
            try:
                out[name] = float(value)
            except (TypeError, ValueError, OverflowError):
                continue
    return out


def size_of(path: str | os.PathLike[str]) -> int | None:
    """Bytes in a file, or in the files under a folder; None if unreadable or past
    MAX_SIZE_ENTRIES entries (a sharded checkpoint of many thousand files is not worth a walk)."""
    try:
        st = os.stat(path)
        if not stat.S_ISDIR(st.st_mode):
            return st.st_size
        total, entries, folders = 0, 0, [os.fspath(path)]
        while folders:
            with os.scandir(folders.pop()) as found:
                for entry in found:
                    entries += 1
                    if entries > MAX_SIZE_ENTRIES:
                        return None
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        return total
    except OSError:
        return None
