"""Where things live inside a store, and which run names are safe to put there.

<store>/<table>/run=<name>/<part>.parquet   Hive-partitioned, immutable parts
<store>/<table>/run=<name>/j-<id>.start.parquet   a live journal's first rows, for Parquet readers
<store>/_journal/run=<name>/<id>.jsonl      fsync'd lifecycle rows of live wrappers
<store>/_labels/run=<name>/<label>          claims on attempt labels, one empty-ish file each
<store>/logs/run=<name>/<attempt_id>/stdout.log, stderr.log   raw output per attempt (node-N/ for host N > 0)
<store>/_quarantine/<table>/run=<name>/...  parts that `logbook doctor` set aside: outside every
                                            table's folder, so no reader's glob meets them
<store>/_pushed/<url key>.jsonl             what went to a remote store, one ledger per URL (#18)
<store>/_spool.json                         in a remote store's spool: the URL (store/remote.py)

A remote store (`s3://bucket/prefix`) holds the same layout under its prefix.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

from logbook.errors import ConfigError

PART_SUFFIX = ".parquet"
MARKER = (
    "logbook-store.json"  # says a folder is a store; reads hold their lock on it (lock.reading)
)
JOURNAL_DIR = "_journal"
LABELS_DIR = "_labels"
QUARANTINE_DIR = "_quarantine"
# The raw logs are the training's own output, kept as it printed it: never redacted or rewritten
# (the tables are, on their way in), and never published (the chronicle does not copy them).
LOGS_DIR = "logs"
# Letters, digits and . _ + @ - only: a name must be one path component on every filesystem and
# object store, survive Hive partition parsing unescaped, and never be read as a path.
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]{0,127}")


def check_run_name(name: str) -> str:
    """Return `name` if it is a safe run name.

    Raises:
        ConfigError: the name could escape the store or break partitioning.
    """
    if not _RUN_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"run name {name!r} is not allowed",
            hint="use letters, digits and . _ + @ - (at most 128, starting with a letter or "
            "digit, no '..')",
        )
    return name


def run_dir(root: Path, table: str, run: str) -> Path:
    return root / table / f"run={check_run_name(run)}"


def journal_dir(root: Path, run: str) -> Path:
    return root / JOURNAL_DIR / f"run={check_run_name(run)}"


def labels_dir(root: Path, run: str) -> Path:
    """Where the wrappers of `run`, on any host sharing the store, claim labels (see lineage)."""
    return root / LABELS_DIR / f"run={check_run_name(run)}"


def attempt_log_dir(root: Path, run: str, attempt_id: str, node: int | None = None) -> Path:
    """Raw logs of an attempt; node N > 0 of a launch over several hosts writes in node-N/ (the
    wrappers of one launch share the attempt id, and must not write into each other's files)."""
    base = root / LOGS_DIR / f"run={check_run_name(run)}" / attempt_id
    return base / f"node-{node}" if node else base


def run_of(path: Path) -> str | None:
    """The run named by a `run=<name>` folder, or None."""
    name = path.name
    return name[4:] if name.startswith("run=") else None


def new_part_name(prefix: str = "part") -> str:
    """A part name no other writer on any host will pick: time first, so `ls` sorts by age."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:16]}{PART_SUFFIX}"


def journal_part_name(journal_id: str) -> str:
    """The part a journal folds into: fixed, so folding twice replaces instead of duplicating."""
    return f"j-{journal_id}{PART_SUFFIX}"


def start_part_name(journal_id: str) -> str:
    """The part holding a journal's first rows (its attempt's start) while the journal lives."""
    return f"j-{journal_id}.start{PART_SUFFIX}"


def part_order(name: str) -> tuple[str, bool]:
    """Sort key of a folder's parts: names in order, but a journal's start part before the part
    it folds into (plain sorting puts `j-<id>.start` after `j-<id>`), so rows read in part order
    keep the attempt's running row before its end."""
    stem = name.removesuffix(PART_SUFFIX)
    return stem.removesuffix(".start"), not stem.endswith(".start")


def journal_of_part(name: str) -> str | None:
    """The id of the journal a part was written from (folded, or its start), or None."""
    if not (name.startswith("j-") and name.endswith(PART_SUFFIX)):
        return None
    return name[2 : -len(PART_SUFFIX)].removesuffix(".start")
