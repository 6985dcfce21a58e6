"""Labels and parents of attempts: 1.00, 1.01, ... each following the previous attempt of its run."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from logbook.errors import ConfigError
from logbook.store import layout

if TYPE_CHECKING:
    from logbook.store import Store

_TRAILING_NUMBER = re.compile(r"^(.*\.)(\d+)$")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]{0,63}")
_LAUNCHERS = {
    "python",
    "python3",
    "torchrun",
    "accelerate",
    "deepspeed",
    "srun",
    "mpirun",
    "bash",
    "sh",
    "uv",
    "poetry",
    "conda",
    "env",
    "nohup",
    "time",
    "numactl",
    "taskset",
}


@dataclass(frozen=True)
class Placement:
    label: str
    parent_id: str | None
    parent_label: str | None


def place(previous: Sequence[tuple[str, str]], label: str | None) -> Placement:
    """Where a new attempt goes, given the run's attempts as (attempt_id, label), oldest first.

    Raises:
        ConfigError: `label` is malformed or already used in the run.
    """
    used = {lab for _, lab in previous}
    parent_id, parent_label = previous[-1] if previous else (None, None)
    if label is not None:
        if not _LABEL.fullmatch(label):
            raise ConfigError(
                f"label {label!r} is not allowed", hint="use letters, digits and . _ + @ -"
            )
        if label in used:
            raise ConfigError(
                f"label {label} is already used in this run",
                hint="pick another or leave --label out",
            )
        return Placement(label, parent_id, parent_label)
    new = "1.00" if parent_label is None else next_label(parent_label)
    while new in used:
        new = next_label(new)
    return Placement(new, parent_id, parent_label)


def previous_attempts(store: Store, run: str) -> list[tuple[str, str]]:
    """The run's attempts so far as (attempt_id, label), oldest first, for `place`."""
    data = store.read("attempts", run=run)
    rows = sorted(
        data.select(["attempt_id", "label", "start_time", "recorded_at"]).to_pylist(),
        key=lambda r: (r["start_time"], r["recorded_at"]),
    )
    seen: dict[str, str] = {}
    for r in rows:
        seen.setdefault(r["attempt_id"], r["label"])
    return list(seen.items())


def next_label(label: str) -> str:
    """1.00 -> 1.01, 12.09 -> 12.10, warmup -> warmup.01."""
    m = _TRAILING_NUMBER.match(label)
    if not m:
        return f"{label}.01"
    head, number = m.groups()
    return f"{head}{int(number) + 1:0{len(number)}d}"


def default_run_name(command: Sequence[str]) -> str:
    """A run name from the command: the script's stem (`python train.py` -> train), else the program."""
    for arg in command:
        if arg.startswith("-"):
            continue
        stem = Path(arg).stem if arg.endswith((".py", ".sh")) else None
        if stem:
            return _safe(stem)
    for arg in command:
        base = os.path.basename(arg)
        if (
            base
            and not arg.startswith("-")
            and base not in _LAUNCHERS
            and not base.startswith("python")
        ):
            return _safe(base)
    return _safe(os.path.basename(command[0]) if command else "run")


def _safe(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._+@-]+", "-", name).strip("-.")[:128] or "run"
    try:
        return layout.check_run_name(cleaned)
    except ConfigError:
        return "run"
