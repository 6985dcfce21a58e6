"""The store: a folder of Hive-partitioned Parquet parts plus the journals of live wrappers.

>>> store = Store.open(Path(".logbook"))
>>> store.read("attempts", run="gpt-small")      # a pyarrow Table, corrupt parts skipped
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from logbook import schema as schemas
from logbook.errors import NoSuchRun, StoreCorrupt
from logbook.store import journal as journals
from logbook.store import layout, parts
from logbook.store import lock as locks

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("logbook")
MARKER = layout.MARKER
FORMAT = 1
READ_TRIES = 5  # listings of the store a read makes before it gives up on a store that keeps moving
T = TypeVar("T")


class Store:
    """An open store. Cheap to make; reads the disk only when asked."""

    def __init__(self, root: Path, *, source: str = "given") -> None:
        self.root = Path(root)
        self.url: str | None = None  # a remote store's URL, when root is this host's cache of it
        self.source = source  # where the path came from: --store, LOGBOOK_STORE, logbook.toml, ...
        self.problems: list[str] = []  # parts skipped while reading, for the CLI to warn about
        self._folded = False  # fold_dead_journals ran
        self._damaged: set[Path] = set()  # found unreadable by check_all_parts

    @classmethod
    def open(cls, root: Path, *, create: bool = False, source: str = "given") -> Store:
        """Open the store at `root`, making it when `create` is true.

        Raises:
            StoreCorrupt: `root` is not a store (or is a file) and `create` is false.
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise StoreCorrupt(f"{root} is a file, not a logbook store")
        if not root.exists():
            if not create:
                raise StoreCorrupt(
                    f"no logbook store at {root}",
                    hint='record a run with "logbook run -- CMD" or pass --store',
                )
            root.mkdir(parents=True, exist_ok=True)
        marker = root / MARKER
        if create and not marker.exists():
            doc = {"format": FORMAT, "created": datetime.now(timezone.utc).isoformat()}
            marker.write_text(json.dumps(doc) + "\n")
        return cls(root, source=source)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @property
    def where(self) -> str:
        """The store as the user named it: its URL, or its folder."""
        return self.url or str(self.root)

    # writing ---------------------------------------------------------------------------------

    def write(self, table: str, run: str, rows: Sequence[Mapping[str, Any]]) -> Path | None:
        """Append rows to `table` as one new part; None when there is nothing to write."""
        if not rows:
            return None
        return parts.write_part(layout.run_dir(self.root, table, run), parts.to_arrow(table, rows))

    def journal(self, run: str) -> journals.Journal:
        """A new journal for one wrapper's lifecycle rows of `run`."""
        return journals.Journal(self.root, run)

    # reading ---------------------------------------------------------------------------------

    def run_names(self) -> list[str]:
        """Every run with at least one attempt, in the parts or in a live journal, or with
        interruptions an imported history counts without times (#19)."""
        names = {
            layout.run_of(p)
            for table in ("attempts", "interruptions")
            for p in (self.root / table).glob("run=*")
        }
        names |= {
            layout.run_of(p)
            for p in (self.root / layout.JOURNAL_DIR).glob("run=*")
            if any(p.iterdir())
        }
        return sorted(n for n in names if n)

    def check_run(self, run: str) -> str:
        """Return `run` if the store has it.

        Raises:
            NoSuchRun: with the closest known names.
        """
        layout.check_run_name(run)
        known = self.run_names()
        if run in known:
            return run
        import difflib

        close = difflib.get_close_matches(run, known, n=3, cutoff=0.5)
        listing = ", ".join(close or known[:8]) or "none yet"
        label = "did you mean" if close else "known"
        raise NoSuchRun(
            f'no run "{run}" in {self.where} ({label}: {listing})', hint='see "logbook runs"'
        )

    def part_files(self, table: str, run: str | None = None) -> list[Path]:
        """Parts of `table` that look whole, as one consistent set beside a running compaction;
        torn ones are skipped and noted in `problems`.

        Raises:
            StoreCorrupt: parts kept vanishing while they were listed.
        """
        return self.reading(lambda: self._part_files(table, run))

    def _part_files(self, table: str, run: str | None) -> list[Path]:
        good = []
        for path in parts.reader_part_files(self.root, table, run):
            if path in self._damaged:
                continue
            if parts.looks_whole(path):
                good.append(path)
            elif not path.exists():
                raise Vanished(f"{path} vanished while the store was listed")
            else:
                self._problem(
                    f"skipped {path.relative_to(self.root)}: torn or not Parquet "
                    '(run "logbook doctor" to quarantine it)'
                )
        return good

    def check_all_parts(self) -> int:
        """Read every part in full and leave out the damaged ones from now on (slow; used when a
        part that looked whole fails to read). Returns how many were newly found damaged."""
        found = 0
        for table in schemas.tables():
            for path in self.part_files(table):
                why = parts.check_part(path)
                if why:
                    self._damaged.add(path)
                    self._problem(
                        f"skipped {path.relative_to(self.root)}: {why} "
                        '(run "logbook doctor" to quarantine it)'
                    )
                    found += 1
        return found

    def snapshot(self, tables: Iterable[str], run: str | None = None) -> Snapshot:
        """The parts to read and the rows only journals hold, as one consistent set. Reads only:
        a dead wrapper's journal gives its rows plus the rows that close its attempts as lost, and
        stays where it is for a writer to fold.

        Raises:
            Vanished: a journal was folded and its part compacted while this looked; call again
                (see `reading`).
        """
        # Journals first, then parts: a journal folded in between is then skipped for its part.
        read = []
        for path in journals.list_journals(self.root, run):
            jf = journals.read(path)
            if jf is not None and not jf.is_alive():
                # Dead now, so what it holds is final; read again: it may have appended its end
                # (or been folded) since the first read.
                jf = journals.read(path)
                if jf is not None:
                    jf.rows = jf.rows + journals.lost_rows(jf)
            if jf is not None:
                read.append(jf)
        tables = list(tables)
        listed = {t: self._part_files(t, run) for t in tables}
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in tables}
        held = {str(r["attempt_id"]) for jf in read for t, r in jf.rows if t == "attempts"}
        for jf in read:
            jrun = str(jf.header.get("run") or layout.run_of(jf.path.parent))
            starts = {
                t for t in tables if _start_part(self.root, t, jrun, jf.id) in listed.get(t, ())
            }
            if starts and not jf.sealed:  # sealed after it was read: its mark is on disk now
                again = journals.read(jf.path)
                jf.sealed = again.sealed if again is not None else 0
            # the rows its start parts, listed above, hold are read from them
            kept = journals.unsealed(jf.rows, jf.sealed, starts.__contains__)
            for table in tables:
                mine = [r for t, r in kept if t == table]
                if not mine:
                    continue
                folded = layout.run_dir(self.root, table, jrun) / layout.journal_part_name(jf.id)
                if folded in listed[table]:
                    continue  # its part, listed above, holds these rows
                if not jf.path.exists() and not folded.exists():
                    raise Vanished(f"{jf.path} was folded and compacted while the store was read")
                rows[table].extend({**r, "run": jrun} for r in mine)
        return Snapshot(listed, rows, held)

    def reading(self, read: Callable[[], T]) -> T:
        """`read()`, called again (a few times) when a file it listed vanished before it was read:
        a compaction merged it, or a wrapper folded its journal; the next listing has its rows.

        Raises:
            StoreCorrupt: files kept vanishing.
        """
        last: Exception | None = None
        for attempt in range(READ_TRIES):
            try:
                with locks.reading(self.root / MARKER):  # compactions delete nothing meanwhile
                    return read()
            except Exception as e:
                if not vanished(e):
                    raise
                last = e
                log.debug("reading %s again: %s", self.root, e)
                time.sleep(0.05 * (attempt + 1))
        raise StoreCorrupt(
            f"cannot read {self.root}: its parts kept changing while they were read "
            f"({READ_TRIES} tries; the last: {str(last).strip()})",
            hint='try again; if it persists, run "logbook doctor"',
        )

    def read(self, table: str, run: str | None = None) -> pa.Table:
        """The whole of `table` (one run's, or all) as a pyarrow Table with the run column."""
        return self.reading(lambda: self._read(table, run))

    def _read(self, table: str, run: str | None) -> pa.Table:
        import pyarrow as pa

        target = schemas.load(table).arrow(with_partitions=True)
        snap = self.snapshot([table], run)
        pieces = []
        for path in snap.parts[table]:
            try:
                data = parts.read_part(path)
            except Exception as e:  # a damaged part must not stop the read
                if vanished(e):
                    raise
                self._problem(f"skipped {path.relative_to(self.root)}: {e}")
                continue
            # The folder names the run: parts written before #17 hold no run column.
            data = parts.with_run(data, str(layout.run_of(path.parent)))
            pieces.append(conform(data, target))
        pieces.append(parts.to_arrow(table, snap.journal_rows[table], with_partitions=True))
        return pa.concat_tables(pieces)

    def fold_dead_journals(self) -> None:
        """Fold the journals of wrappers that died into parts, marking their running attempts lost.
        For writers only (`logbook run` at its start, `compact`, `doctor`): readers never change the
        store. Once per Store."""
        if self._folded:
            return
        self._folded = True
        for path in journals.list_journals(self.root):
            jf = journals.read(path)
            if jf is None or jf.is_alive():
                continue
            run = str(jf.header.get("run") or layout.run_of(path.parent))
            try:
                # First what its recorder did not parse: the closing rows take its last step.
                from logbook.record.recover import recover_metrics

                ids: set[str] = {r["attempt_id"] for _, r in jf.rows if "attempt_id" in r}
                recover_metrics(self, {run: ids})
            except Exception as e:  # the logs stay; the next writer tries again
                log.warning("could not parse the raw logs of %s: %s", path.name, e)
            try:
                journals.write_folded(
                    self.root, run, jf.id, jf.rows + journals.lost_rows(jf), jf.sealed
                )
                journals.remove(path)
            except OSError as e:  # a read-only store: the rows are still read from the journal
                log.debug("cannot fold %s: %s", path, e)

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)
            log.warning(text)


def open_any(
    path: str | os.PathLike[str] | None = None, *, create: bool = False, env: Any = None
) -> Store:
    """The store `path` names (else LOGBOOK_STORE, logbook.toml, .logbook/; see settings), opened
    for reading. A remote store (`s3://...`) is mirrored into this host's cache first.

    Raises:
        StoreCorrupt: no store there.
        StoreUnreachable: a remote store did not answer.
    """
    from logbook.settings import find_store, store_url

    url = store_url(path, env=env)
    if url is None:
        root, source = find_store(path, env=env)
        return Store.open(root, create=create, source=source)
    from logbook.store import remote

    source = "--store" if path else "LOGBOOK_STORE"
    store = Store.open(remote.mirror(url), source=source)
    store.url = url
    return store


def _start_part(root: Path, table: str, run: str, journal_id: str) -> Path:
    return layout.run_dir(root, table, run) / layout.start_part_name(journal_id)


class Vanished(Exception):
    """A file listed a moment ago is gone: its rows moved to another part; list again."""


@dataclass
class Snapshot:
    """What a reader reads: part files by table, and the rows only journals hold, by table."""

    parts: dict[str, list[Path]]
    journal_rows: dict[str, list[dict[str, Any]]]
    # attempts a journal holds, alive or closed as lost (their rows may be read from start parts)
    journal_attempts: set[str] = field(default_factory=set)


def vanished(error: BaseException) -> bool:
    """Whether `error` (ours, the OS's, pyarrow's or DuckDB's) says a file listed is gone."""
    if isinstance(error, (Vanished, FileNotFoundError)):
        return True
    text = str(error)
    return any(s in text for s in _VANISHED_TEXTS)


# How pyarrow and DuckDB word a missing file ("[errno 2] No such file or directory" in both).
_VANISHED_TEXTS = ("No such file or directory", "Cannot open file")


def conform(data: pa.Table, target: pa.Schema) -> pa.Table:
    """Cast a part read from disk to the current schema: missing columns become null, extra ones go."""
    import pyarrow as pa

    cols = []
    for f in target:
        if f.name in data.column_names:
            col = data.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(len(data), f.type))
    return pa.Table.from_arrays(cols, schema=target)


def user_name() -> str | None:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return os.environ.get("USER")
