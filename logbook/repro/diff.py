"""What changed between two attempts of a run: git, packages, config, command, environment,
hardware, launcher and data mix, one row per difference."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from logbook.store import Store

if TYPE_CHECKING:
    import pyarrow as pa

SECTIONS = ("git", "packages", "config", "command", "env", "hardware", "launcher", "data_mix")
# Snapshot kinds compared name by name, by section; the key is "<kind> <name>" where a section
# holds several kinds.
_KINDS = {
    "packages": ("package",),
    "config": ("config", "config_file", "arg", "api_config"),
    "env": ("env",),
    "hardware": ("host", "gpu"),
    "launcher": ("launcher",),
}
_COLUMNS = ("section", "key", "a", "b")
_GIT = ("commit", "branch", "dirty", "remote")
# Set by logbook for each attempt: they always differ and say nothing about the attempts.
_PER_ATTEMPT_ENV = frozenset({"LOGBOOK_ATTEMPT", "LOGBOOK_ATTEMPT_ID", "LOGBOOK_RESTART_COUNT"})


def diff_attempts(store: Store, run: str, a_label: str, b_label: str) -> pa.Table:
    """Compare two attempts of a run, as their launch snapshots and data mixes recorded them.

    Args:
        store: the open store.
        run: the run's name.
        a_label: the first attempt's label ("1.00").
        b_label: the second attempt's label.

    Returns:
        A table of the differences only, with string columns section, key, a and b (null where
        an attempt has no such value: added or removed), sorted by section in the order of
        `SECTIONS`, then by key. The git diff is summed up as "changed (N -> M lines)".

    Raises:
        NoSuchRun: the store has no such run.
        LogbookError: the run has no attempt with one of the labels.
    """
    import pyarrow as pa

    from logbook.query import read_attempt
    from logbook.repro import attempt_snapshots

    attempt_a, attempt_b = read_attempt(store, run, a_label), read_attempt(store, run, b_label)
    a, b = attempt_snapshots(store, attempt_a), attempt_snapshots(store, attempt_b)
    rows: list[tuple[str, str, str | None, str | None]] = []

    def add(section: str, key: str, x: Any, y: Any) -> None:
        if x != y:
            rows.append((section, key, _text(x), _text(y)))

    for name in _GIT:
        add("git", name, _value(a, "git", name), _value(b, "git", name))
    diff_a, diff_b = _value(a, "git", "diff"), _value(b, "git", "diff")
    if diff_a != diff_b:
        n_a, n_b = _lines(diff_a), _lines(diff_b)
        shown = f"{n_a} lines" if diff_a is not None else None
        changed = f"changed ({n_a} -> {n_b} lines)" if diff_b is not None else None
        rows.append(("git", "diff", shown, changed))
    for section, kinds in _KINDS.items():
        for kind in kinds:
            names = {n for k, n in a.keys() | b.keys() if k == kind}
            if kind == "env":
                names -= _PER_ATTEMPT_ENV
            for name in names:
                key = name if len(kinds) == 1 else f"{kind} {name}"
                add(section, key, _value(a, kind, name), _value(b, kind, name))
    add("hardware", "attempt host", attempt_a.get("host"), attempt_b.get("host"))
    add("command", "argv", _argv(a, attempt_a), _argv(b, attempt_b))
    add("command", "cwd", _value(a, "command", "cwd"), _value(b, "command", "cwd"))
    rows += _mix_rows(store, run, attempt_a["attempt_id"], attempt_b["attempt_id"])

    rows.sort(key=lambda r: (SECTIONS.index(r[0]), r[1]))
    return pa.table(
        {n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(_COLUMNS)}
    )


def _value(snaps: Mapping[tuple[str, str], Any], kind: str, name: str) -> str | None:
    row = snaps.get((kind, name))
    return None if row is None else row["value"]  # type: ignore[no-any-return]


def _lines(diff: str | None) -> int:
    return len((diff or "").splitlines())


def _argv(snaps: dict[tuple[str, str], Any], attempt: dict[str, Any]) -> str | None:
    """The command line as shell words (repro.recorded_argv), None when not on record."""
    from logbook.repro import recorded_argv

    argv = recorded_argv(snaps, attempt)
    return shlex.join(argv) if argv else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _mix_rows(
    store: Store, run: str, id_a: str, id_b: str
) -> list[tuple[str, str, str | None, str | None]]:
    """Data mix differences per source: added or removed, weight, tokens, paths, fingerprints."""
    from logbook.record import datamix

    mix_a = datamix.last_recorded(store, run, {id_a}) or {}
    mix_b = datamix.last_recorded(store, run, {id_b}) or {}
    rows = []
    for change in datamix.changes(mix_a, mix_b):
        source, what = change["source"], change["field"]
        if what == "source":
            key = source
        elif what == "data":
            key = f"{source} fingerprint {change['path']}"
        else:
            key = f"{source} {what}"
        rows.append(("data_mix", key, _text(change["old"]), _text(change["new"])))
    return rows
