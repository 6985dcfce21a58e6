"""Labels and parents of attempts: 1.00, 1.01, ... each following the previous attempt of its run."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from logbook.errors import ConfigError
from logbook.store import layout
from logbook.supervisor import attempt_index

if TYPE_CHECKING:
    from logbook.store import Store

_TRAILING_NUMBER = re.compile(r"^(.*[.:])(\d+)$")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@:-]{0,63}")  # ':' for labels like glm:42
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


def place(
    previous: Sequence[tuple[str, str]], label: str | None, claims: Path | None = None
) -> Placement:
    """Where a new attempt goes, given the run's attempts as (attempt_id, label), oldest first.

    The parent is the last of `previous`; the label is `label`, else the first free one after the
    parent's. With `claims` (the run's folder from `claims_dir`) the label is also claimed there,
    so that wrappers starting at once, on this host or on others sharing the store, never share
    one: what the store has recorded cannot tell them apart, as none has recorded its start yet.

    Raises:
        ConfigError: `label` is malformed, or already used or claimed in the run.
    """
    used = {lab for _, lab in previous} | claimed(claims)
    parent_id, parent_label = previous[-1] if previous else (None, None)
    if label is not None:
        if not _LABEL.fullmatch(label):
            raise ConfigError(
                f"label {label!r} is not allowed", hint="use letters, digits and . _ + @ : -"
            )
        if label in used or not _claim(claims, label, parent_id):
            raise ConfigError(
                f"label {label} is already used in this run",
                hint="pick another or leave --label out",
            )
        return Placement(label, parent_id, parent_label)
    new = "1.00" if parent_label is None else next_label(parent_label)
    while new in used or not _claim(claims, new, parent_id):
        new = next_label(new)  # always a larger number, so this ends
    return Placement(new, parent_id, parent_label)


def claims_dir(store: Store | None, run: str) -> Path | None:
    """The folder where `place` claims labels of `run`; None without a store (nothing to claim)."""
    return None if store is None else layout.labels_dir(store.root, run)


def claimed(claims: Path | None) -> set[str]:
    """Labels claimed so far; a shortcut for `place`, whose exclusive create is what decides."""
    if claims is None:
        return set()
    try:
        return {_label_of(name) for name in os.listdir(claims) if not name.startswith(".")}
    except OSError:
        return set()


def _claim(claims: Path | None, label: str, parent_id: str | None) -> bool:
    """Claim `label`: False if someone did first. An exclusive create is atomic on local file
    systems and on NFS v3 and later, so this needs no lock; in a remote store's spool, a
    conditional PUT then claims it among all hosts (store/remote.py `claim`). Claims stay:
    removing one would let a wrapper whose view of the store predates its attempt take it again."""
    if claims is None:
        return True
    try:
        claims.mkdir(parents=True, exist_ok=True)
        fd = os.open(claims / _file_name(label), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        if claims.is_dir():
            return False
        return True  # (a file in the folder's place) claims are out of reach, as below
    except OSError:  # a store we cannot claim in is one we can hardly record in: run anyway
        return True
    try:  # who claimed it, for a person looking; the file's existence is the claim
        from logbook.supervisor.nodes import host_name

        note = {"host": host_name(), "pid": os.getpid(), "parent_id": parent_id}
        os.write(fd, (json.dumps(note) + "\n").encode())
    except OSError:
        pass
    finally:
        os.close(fd)
    from logbook.store import remote

    return remote.claim(claims.parents[1], f"{layout.LABELS_DIR}/{claims.name}/{_file_name(label)}")


def _file_name(label: str) -> str:
    """Labels differing only in case stay two files on case-insensitive file systems (macOS)."""
    return re.sub(r"[A-Z]", lambda m: "=" + m.group().lower(), label)


def _label_of(name: str) -> str:
    return re.sub(r"=(.)", lambda m: m.group(1).upper(), name)


def previous_attempts(store: Store, run: str) -> list[tuple[str, str]]:
    """The run's attempts so far as (attempt_id, label), oldest first, for `place`."""
    return attempt_index.ordered(first_rows(store, run)[1])


def first_rows(
    store: Store, run: str, *, index: bool = True
) -> tuple[attempt_index.Key | None, list[attempt_index.First]]:
    """Each of the run's attempts' first row (id, label, start, recorded), from the run's index
    while it is current (no pyarrow), else read from the Parquet and indexed; with the key of the
    files they come from, or None where no index can vouch for them (attempt_index.py).
    `index=False`: the Parquet alone, nothing written (a remote store's spool and cache)."""
    key = attempt_index.current_key(store.root, run) if index else None
    if key is not None:
        if not key:
            return key, []  # no attempt yet: nothing to read
        cached = attempt_index.load(store.root, run, key)
        if cached is not None:
            return key, cached
    data = store.read("attempts", run=run)
    rows = sorted(
        data.select(["attempt_id", "label", "start_time", "recorded_at"]).to_pylist(),
        key=lambda r: (r["start_time"], r["recorded_at"]),
    )
    seen: dict[str, attempt_index.First] = {}
    for r in rows:
        seen.setdefault(
            r["attempt_id"], (r["attempt_id"], r["label"], r["start_time"], r["recorded_at"])
        )
    firsts = list(seen.values())
    if key is None or attempt_index.current_key(store.root, run) != key:
        return None, firsts  # the files changed while they were read: no index from this read
    attempt_index.save(store.root, run, key, firsts)
    return key, firsts


# The lineage a label belongs to, in SQL over `label` (the attempts view) and in Python: the label
# less its trailing number (11.05 -> 11, glm:42 -> glm), else the label itself.
LINEAGE_SQL = r"coalesce(nullif(regexp_extract(label, '^(.*)[.:][0-9]+$', 1), ''), label)"


def lineage_of(label: str) -> str:
    """11.05 -> 11, 12.00 -> 12, glm:42 -> glm, warmup.01 -> warmup, baseline -> baseline."""
    m = _TRAILING_NUMBER.match(label)
    return m.group(1)[:-1] or label if m else label


def next_label(label: str) -> str:
    """1.00 -> 1.01, 12.09 -> 12.10, glm:42 -> glm:43, warmup -> warmup.01."""
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
