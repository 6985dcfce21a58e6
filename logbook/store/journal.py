"""A small fsync'd journal of lifecycle rows, so that `kill -9` of the wrapper loses none of them.

A wrapper appends each lifecycle row (attempt start and end, signals, warnings) as one JSON line and
fsyncs it, and touches the file as a heartbeat. Once the command runs, it seals the rows so far (the
start) into parts as well, so plain Parquet readers see a running attempt (#17). At the end of the attempt it folds the journal into
Parquet parts named after the journal, then deletes it. Readers read a journal whose wrapper died
as it is, with its running attempts closed as `lost`; the next command that writes (`logbook run`,
`compact`, `doctor`) folds it so.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from logbook.store import layout, owner, redaction

# A wrapper touches its journal this often; one on another host silent for LOST_AFTER_S is lost.
HEARTBEAT_S = 15.0
LOST_AFTER_S = 8 * HEARTBEAT_S
SUFFIX = ".jsonl"
# Written at the start, overwritten in place at the end when the disk is full by then: writing
# over blocks a file already holds needs no free space, so the attempt's end is still on record.
RESERVE_BYTES = 64 * 1024


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


class Journal:
    """The journal of one wrapper for one run."""

    def __init__(self, root: Path, run: str) -> None:
        self.run = run
        self.id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:16]}"
        directory = layout.journal_dir(root, run)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{self.id}{SUFFIX}"
        self.root = root
        self.rows: list[tuple[str, dict[str, Any]]] = []  # kept so a fold never depends on the file
        self.sealed = 0  # the first rows, also in start parts (`seal`)
        self._lock = threading.Lock()
        # Made under a hidden name and renamed once its header is on disk: a kill at any moment
        # leaves either no journal or one that names its wrapper, never an empty file.
        hidden = directory / f".{self.id}{SUFFIX}.tmp"
        self._fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        header = {"journal": 1, "id": self.id, "run": run, **owner.me()}
        try:
            self._write_line(header)
            os.rename(hidden, self.path)
        except OSError:
            os.close(self._fd)
            hidden.unlink(missing_ok=True)
            raise
        self._reserve_fd = _reserve(reserve_path(self.path))

    def spill(self, rows: list[tuple[str, dict[str, Any]]]) -> bool:
        """Put rows the journal could not take (a full disk) into the space reserved at the start,
        as many as fit, first ones first; True if any did."""
        if self._reserve_fd is None:
            return False
        rows = [(table, redaction.redact_row(table, row)) for table, row in rows]  # as append does
        data = b""
        for table, row in rows:
            line = (json.dumps({"table": table, "row": row}, default=_json_default) + "\n").encode()
            if len(data) + len(line) >= RESERVE_BYTES:
                break
            data += line
        if not data:
            return False
        with self._lock:
            try:
                os.pwrite(self._reserve_fd, data, 0)
                os.fsync(self._reserve_fd)
            except OSError:
                return False
        self.rows.extend(rows[: data.count(b"\n")])
        return True

    def _write_line(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, default=_json_default, allow_nan=True) + "\n").encode()
        os.write(self._fd, data)
        os.fsync(self._fd)

    def append(self, table: str, row: dict[str, Any]) -> None:
        """Record one row durably before returning, its text fields redacted: a journal is read
        as the table by every reader while the wrapper lives, and folded into a part after."""
        row = redaction.redact_row(table, row)
        with self._lock:
            self._write_line({"table": table, "row": row})
            self.rows.append((table, row))

    def seal(self) -> None:
        """Write the rows so far as start parts too (once), so that plain Parquet readers see the
        attempt while it runs (#17); the journal keeps them for a kill.

        The line `{"sealed": n}` is on disk before any start part: a table's start part then
        holds that table's rows among the journal's first n, and readers and the fold leave those
        out of the journal (`unsealed`). A start part missing (a kill, a full disk) leaves them in.
        """
        with self._lock:
            if self.sealed or not self.rows:
                return
            self._write_line({"sealed": len(self.rows)})
            self.sealed = len(self.rows)
            rows = self.rows[: self.sealed]
        _write_parts(self.root, self.run, layout.start_part_name(self.id), rows)

    def touch(self) -> None:
        """Heartbeat: readers take a journal untouched for LOST_AFTER_S on another host as dead."""
        os.utime(self.path)

    def fold(self) -> None:
        """Write the rows as Parquet parts, then delete the journal."""
        with self._lock:
            write_folded(self.root, self.run, self.id, self.rows, self.sealed)
            self._close_fds()
            remove(self.path)

    def close(self) -> None:
        """Stop writing without folding (the rows stay for the next writer to fold)."""
        with self._lock:
            self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._fd, self._reserve_fd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._fd, self._reserve_fd = -1, None


def reserve_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.reserve")


def _reserve(path: Path) -> int | None:
    """A file of RESERVE_BYTES spaces, on disk; None when there is no room even for that."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        os.write(fd, b" " * RESERVE_BYTES)
        os.fsync(fd)
        return fd
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        return None


def remove(path: Path) -> None:
    """Delete a journal and its reserved space."""
    path.unlink(missing_ok=True)
    reserve_path(path).unlink(missing_ok=True)


def write_folded(
    root: Path, run: str, journal_id: str, rows: list[tuple[str, dict[str, Any]]], sealed: int = 0
) -> None:
    """Write a journal's rows as its parts, those its start parts hold left out."""
    kept = unsealed(rows, sealed, lambda t: _start_part(root, t, run, journal_id).exists())
    _write_parts(root, run, layout.journal_part_name(journal_id), kept)


def unsealed(
    rows: list[tuple[str, dict[str, Any]]], sealed: int, has_start_part: Callable[[str], bool]
) -> list[tuple[str, dict[str, Any]]]:
    """A journal's rows less those of its first `sealed` that a start part of their table holds."""
    if not sealed:
        return rows
    done = {t for t in {t for t, _ in rows[:sealed]} if has_start_part(t)}
    return [(t, r) for i, (t, r) in enumerate(rows) if i >= sealed or t not in done]


def _start_part(root: Path, table: str, run: str, journal_id: str) -> Path:
    return layout.run_dir(root, table, run) / layout.start_part_name(journal_id)


def _write_parts(
    root: Path, run: str, name: str, rows: Iterable[tuple[str, dict[str, Any]]]
) -> None:
    from logbook.store import parts

    by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for table, row in rows:
        by_table[table].append(row)
    for table, table_rows in by_table.items():
        data = parts.to_arrow(table, table_rows)
        parts.write_part(layout.run_dir(root, table, run), data, name)


@dataclass
class JournalFile:
    path: Path
    header: dict[str, Any]
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sealed: int = 0  # its first rows, also in start parts where those exist (Journal.seal)

    @property
    def id(self) -> str:
        return str(self.header.get("id") or self.path.stem)

    def is_alive(self) -> bool:
        """Is the wrapper that writes this journal still running?"""
        try:
            age = datetime.now(timezone.utc).timestamp() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        return owner.is_alive(self.header, age, LOST_AFTER_S)


def read(path: Path) -> JournalFile | None:
    """Parse a journal, skipping a torn last line; None if it vanished or has no header."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return None
    docs = []
    for line in lines:
        try:
            docs.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a kill mid-write
    if not docs or "journal" not in docs[0]:
        return None
    try:  # rows spilled into the reserved space when the disk was full
        for line in reserve_path(path).read_bytes().split(b"\n"):
            if line.strip():
                try:
                    docs.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    jf = JournalFile(path, docs[0])
    jf.rows = [(d["table"], d["row"]) for d in docs[1:] if "table" in d and "row" in d]
    jf.sealed = max((int(d["sealed"]) for d in docs[1:] if "sealed" in d), default=0)
    return jf


def list_journals(root: Path, run: str | None = None) -> list[Path]:
    base = root / layout.JOURNAL_DIR
    dirs = [layout.journal_dir(root, run)] if run else sorted(base.glob("run=*"))
    out: list[Path] = []
    for d in dirs:
        out.extend(sorted(d.glob(f"*{SUFFIX}")))
    return out


def lost_rows(jf: JournalFile) -> list[tuple[str, dict[str, Any]]]:
    """Rows that close what a dead wrapper left running, attempts and nodes: status lost,
    ended at its heartbeat."""
    from logbook.store import parts

    try:
        last_seen = datetime.fromtimestamp(jf.path.stat().st_mtime, timezone.utc)
    except FileNotFoundError:
        last_seen = parts.now()
    latest: dict[tuple[str, Any], tuple[str, dict[str, Any]]] = {}
    for table, row in jf.rows:
        if table in ("attempts", "nodes"):
            latest[(row["attempt_id"], row.get("node"))] = (table, row)
    from logbook.record.recover import progress_of

    root = jf.path.parent.parent.parent
    out: list[tuple[str, dict[str, Any]]] = []
    for table, row in latest.values():
        if row.get("status") != "running":
            continue
        start = (
            datetime.fromisoformat(row["start_time"])
            if isinstance(row["start_time"], str)
            else row["start_time"]
        )
        # The steps it reached, from its raw logs' coverage (complete once recovery has run).
        steps = progress_of(root, str(jf.header.get("run")), row["attempt_id"])
        closed = {
            **row,
            **steps,
            "status": "lost",
            "end_time": last_seen,
            "duration_s": max(0.0, (last_seen - start).total_seconds()),
            "recorded_at": parts.now(),
        }
        out.append((table, closed))
        if table == "nodes":  # the event goes with the attempts row, or with the node's row alone
            if any(t == "attempts" and r["attempt_id"] == row["attempt_id"] for t, r in jf.rows):
                continue
            what = f"node {row.get('node')} of attempt {row['attempt_id'][:8]}"
        else:
            what = f"attempt {row.get('label')}"
        out.append(
            (
                "events",
                {
                    "run": jf.header.get("run"),
                    "attempt_id": row["attempt_id"],
                    "event_id": uuid.uuid4().hex,
                    "time": last_seen,
                    "kind": "lost",
                    "severity": "error",
                    "source": "logbook",
                    "message": f"{what} lost: its wrapper stopped without recording an end "
                    f"(killed, or its host died); last sign of life {last_seen:%Y-%m-%d %H:%M:%S} UTC",
                    "data": json.dumps(
                        {"host": jf.header.get("host"), "wrapper_pid": jf.header.get("pid")}
                    ),
                    "host": row.get("host"),
                },
            )
        )
    return out
