"""Merge small parts into one, without losing or duplicating a row even if interrupted.

Compaction, in each `<table>/run=<name>/` folder:

1. Take the folder's lock (`lock`; a dead owner's lock is taken over at once). Nothing below
   happens without it, tidying included: another compaction's bookkeeping is never touched while
   that compaction lives.
2. Tidy what an earlier, interrupted compaction left (`finish_interrupted`), then pick the inputs.
3. Stream the inputs, batch by batch, into a hidden temporary file (`.c-....parquet.tmp`) and
   fsync it. Memory stays near one batch whatever the number of inputs.
4. Write the manifest `_compact-<id>.json` naming the output and the inputs, durably.
5. Rename the temporary file to the output `c-....parquet`: from now on the output holds the rows.
6. Delete the inputs.
7. Delete the manifest, then release the lock.

Readers take a consistent set from one listing of the folder (`replaced_parts`): a manifest whose
output is listed hides its inputs, so a row is read once from the output. A killed compaction
leaves, by the step it reached:

- 1-3: at most a hidden temporary file; readers see the inputs; the next holder deletes the file.
- 4: a manifest whose output does not exist; readers see the inputs; the next holder deletes it.
- 5-7: a manifest whose output exists and some of its inputs; readers see the output only; the
  next holder deletes the inputs left, then the manifest.

Writers never take the lock: they only add parts with new names, which no manifest lists.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from logbook import schema as schemas
from logbook.store import journal as journals
from logbook.store import layout, parts, redaction
from logbook.store import lock as locks
from logbook.store.lock import LOCK_NAME

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["LOCK_NAME", "compact", "finish_interrupted", "replaced_parts"]

MANIFEST_PREFIX = "_compact-"
OUTPUT_PREFIX = "c"
SMALL_PART_BYTES = 32 * 1024 * 1024
# One row group of the output is buffered before it is written: this bounds the merge's memory.
ROW_GROUP_ROWS = 64 * 1024
ROW_GROUP_BYTES = 8 * 1024 * 1024
BATCH_ROWS = 16 * 1024  # read from an input at a time
_PAUSE_ENV = "LOGBOOK_TEST_COMPACT_PAUSE"


def replaced_parts(directory: Path, names: Iterable[str]) -> set[str]:
    """Inputs of a finished but interrupted compaction in `directory`, given one listing of it."""
    names = set(names)
    out: set[str] = set()
    for name in names:
        doc = _manifest(directory, name)
        if doc is not None and doc.get("output") in names:
            out.update(doc.get("inputs", []))
    return out


@dataclass
class CompactResult:
    folders: int = 0
    parts_before: int = 0
    parts_after: int = 0
    rows: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # dead owners' locks taken over, tidied merges


def compact(
    store,
    tables: Iterable[str] | None = None,
    *,
    run: str | None = None,  # type: ignore[no-untyped-def]
    min_parts: int = 2,
    progress: Callable[[str], None] | None = None,
    recover: bool = True,
) -> CompactResult:
    """Merge the small parts of every table and run of `store` (or of one run).

    Args:
        min_parts: leave a folder alone while it has fewer small parts than this.
        progress: called with the folder before each is looked at.
        recover: parse the raw logs that finished recorders left unparsed (a wrapper tidying its
            own run at its end leaves its catch-up's remainder to the next writer: its time limit
            is the user's).

    Returns:
        Counts of folders touched and parts before and after.
    """
    if recover:  # a writer: the metrics recorders left unparsed, the journals of dead ones
        from logbook.record.recover import recover_store

        recover_store(store)
    else:
        store.fold_dead_journals()
    result = CompactResult()
    uploaded = _uploaded(store.root)
    for table in tables or schemas.tables():
        pattern = f"run={layout.check_run_name(run)}" if run else "run=*"
        for directory in sorted((store.root / table).glob(pattern)):
            if not _worth_locking(directory, min_parts):
                continue
            if progress is not None:
                progress(f"compacting {table}/{directory.name}")
            _compact_folder(store.root, table, directory, result, min_parts, uploaded)
    return result


def _uploaded(root: Path) -> set[str]:
    """In a remote store's spool, the parts already uploaded (by relative path): the store's own
    compaction (store/remote_compact.py) merges those there, and a merge of them here too would
    upload their rows a second time under the new part's name (#18). Empty elsewhere."""
    from logbook.store import remote

    url = remote.spool_url(root)
    return set(remote.Ledger(root, url).sent) if url is not None else set()


def _worth_locking(directory: Path, min_parts: int) -> bool:
    """Cheap look without the lock, deciding nothing but "nothing to do here": too few parts, and
    nothing left by an interrupted compaction. Whatever is done is decided again under the lock."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    n = 0
    for name in names:
        if name.startswith((MANIFEST_PREFIX, LOCK_NAME, f".{OUTPUT_PREFIX}-")):
            return True
        n += name.endswith(layout.PART_SUFFIX) and not name.startswith(".")
    return n >= max(2, min_parts)


def _compact_folder(
    root: Path,
    table: str,
    directory: Path,
    result: CompactResult,
    min_parts: int,
    uploaded: set[str],
) -> None:
    rel = directory.relative_to(root)
    try:
        held = locks.take(directory)
    except OSError as e:  # a store we may read but not change
        result.skipped.append(f"{rel} (cannot write there: {e.strerror or e})")
        return
    if held is None:
        result.skipped.append(f"{rel} (another compaction holds the lock)")
        return
    try:
        if held.took_over is not None:
            result.notes.append(
                f"{rel}: took over the lock of a compaction that died ({held.took_over.describe()})"
            )
        pause("locked")
        for name, what, action in finish_interrupted(directory):
            result.notes.append(f"{rel}/{name}: {what}; {action}")
        inputs = _inputs(root, table, directory, result, uploaded)
        if len(inputs) < max(2, min_parts):
            return
        _merge(root, table, directory, inputs, result, held)
    finally:
        held.release()


def _inputs(
    root: Path, table: str, directory: Path, result: CompactResult, uploaded: set[str]
) -> list[Path]:
    """The small whole parts of the folder, less those `uploaded`; taken with the lock held."""
    run = layout.run_of(directory)
    # Listed now, under the lock: a journal's parts (folded, or its start) must not be merged
    # while the journal is there, or folding it again would write their rows a second time.
    live = {p.stem for p in journals.list_journals(root, run)} if run else set()
    inputs = []
    for path in parts.iter_part_files(root, table, run):
        if layout.journal_of_part(path.name) in live:
            continue
        if uploaded and path.relative_to(root).as_posix() in uploaded:
            continue
        if not parts.looks_whole(path):
            result.skipped.append(str(path.relative_to(root)))
            continue
        if path.stat().st_size < SMALL_PART_BYTES:
            inputs.append(path)
    return inputs


class Damaged(Exception):
    """An input part that could not be read to its end."""

    def __init__(self, path: Path) -> None:
        self.path = path


def _merge(
    root: Path,
    table: str,
    directory: Path,
    inputs: list[Path],
    result: CompactResult,
    held: locks.Held,
) -> None:
    while True:
        if len(inputs) < 2:
            return
        output = layout.new_part_name(OUTPUT_PREFIX)
        tmp = directory / f".{output}.tmp"
        try:
            rows = write_merged(tmp, table, inputs)
        except Damaged as e:  # damaged inside; leave it for `logbook doctor`, merge the rest
            tmp.unlink(missing_ok=True)
            result.skipped.append(str(e.path.relative_to(root)))
            inputs = [p for p in inputs if p != e.path]
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        break
    try:
        uploaded = _uploaded(root)  # a spool's uploader may have sent one while we merged
        if uploaded and any(p.relative_to(root).as_posix() in uploaded for p in inputs):
            result.skipped.append(f"{directory.relative_to(root)} (uploaded while merged)")
            return
        if not held.still_ours():  # only if we stalled so long that another host took it over
            result.skipped.append(f"{directory.relative_to(root)} (lost the lock mid-merge)")
            return
        pause("manifest-before")
        manifest = directory / f"{MANIFEST_PREFIX}{uuid.uuid4().hex[:12]}.json"
        _write_durably(
            manifest, {"output": output, "inputs": [p.name for p in inputs], "rows": rows}
        )
        pause("manifest")
        os.replace(tmp, directory / output)
        parts.fsync_dir(directory)
    finally:
        tmp.unlink(missing_ok=True)
    pause("renamed")
    with locks.deleting(root / layout.MARKER) as free:
        if free:
            for i, p in enumerate(inputs):
                if i == len(inputs) // 2:
                    pause("deleting")
                p.unlink(missing_ok=True)
            parts.fsync_dir(directory)  # inputs gone for good before the manifest that hides them
            pause("deleted")
            manifest.unlink()
        else:  # long reads hold them: readers see the output; the next compaction deletes them
            result.notes.append(
                f"{directory.relative_to(root)}: merged parts kept until the reads using them end"
            )
    result.folders += 1
    result.parts_before += len(inputs)
    result.parts_after += 1
    result.rows += rows


def write_merged(tmp: Path, table: str, inputs: list[Path]) -> int:
    """Stream `inputs` into one Parquet file at `tmp`, fsync'd; returns its row count.

    Raises:
        Damaged: an input could not be read to its end.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = schemas.load(table).arrow()
    run = str(layout.run_of(tmp.parent))
    rows = 0
    buffer: list[pa.Table] = []
    # Dictionaries only for strings: the numbers (times, steps, values) are nearly all distinct, and
    # a dictionary per row group of them made the output twice the size of plain zstd pages.
    strings = [f.name for f in target if pa.types.is_string(f.type)]
    # Every piece is redacted by the current rules (`_conformed`), so the output says so.
    marked = redaction.mark_schema(parts.part_schema(target))
    with pq.ParquetWriter(str(tmp), marked, compression="zstd", use_dictionary=strings) as writer:
        for i, path in enumerate(inputs):
            for piece in _conformed(path, target, table):
                # a part written before #17 gets its run column here
                buffer.append(parts.with_run(piece, run))
                rows += len(piece)
                if sum(len(b) for b in buffer) >= ROW_GROUP_ROWS or (
                    sum(b.nbytes for b in buffer) >= ROW_GROUP_BYTES
                ):
                    writer.write_table(pa.concat_tables(buffer))
                    buffer.clear()
            if i == 0:
                pause("writing")
        if buffer:
            writer.write_table(pa.concat_tables(buffer))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return rows


def _conformed(path: Path, target: pa.Schema, table: str) -> Iterator[pa.Table]:
    """The batches of one part, each cast to the table's current schema and redacted by the
    current rules: a part that was written by them is taken as it is (scanning it again would
    only cost), one written before them is redacted now."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from logbook.store import conform

    try:
        with pq.ParquetFile(path) as f:
            done = redaction.is_redacted(f.schema_arrow)
            # One thread: decoding in a pool spreads allocations over per-thread heaps, which
            # raised the peak RSS by ~10 MB for no gain in speed on parts this small.
            for batch in f.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
                piece = conform(pa.Table.from_batches([batch]), target)
                yield piece if done else redaction.redact_table(piece, table)
    except Exception as e:  # pyarrow raises several types for damaged files
        raise Damaged(path) from e


def interrupted(directory: Path) -> list[tuple[str, dict | None, bool]]:  # type: ignore[type-arg]
    """Manifests of interrupted compactions: (name, contents or None if unreadable, output
    exists). Read-only; what `finish_interrupted` would act on."""
    try:
        names = set(os.listdir(directory))
    except OSError:
        return []
    out = []
    for name in sorted(names):
        if _is_manifest(name):
            doc = _manifest(directory, name)
            out.append((name, doc, doc is not None and doc.get("output") in names))
    return out


def finish_interrupted(directory: Path) -> list[tuple[str, str, str]]:
    """Complete or undo the compactions that were interrupted in `directory`.

    Call it only with the folder's lock held (`lock.take`): without it, the manifest could be that
    of a compaction still at work.

    Returns:
        (file, what was found, what was done) for each thing tidied.
    """
    done = []
    for name, doc, output_exists in interrupted(directory):
        manifest = directory / name
        if doc is None:  # we write manifests whole, so this came from outside; keep it for doctor
            continue
        inputs = doc.get("inputs", [])
        if output_exists:  # the merged part is whole: finish deleting its inputs
            left = [i for i in inputs if (directory / i).exists()]
            # The store's marker, two folders up (<store>/<table>/run=<name>/): reads lock it.
            with locks.deleting(directory.parent.parent / layout.MARKER) as free:
                if not free:  # still being read: the next compaction deletes them
                    continue
                for inp in left:
                    (directory / inp).unlink(missing_ok=True)
                parts.fsync_dir(directory)
            what = f"compaction interrupted after its merged part was written ({len(left)} of "
            action = "deleted the merged inputs left"
            done.append((name, f"{what}{len(inputs)} inputs left)", action))
        else:  # died before the rename: the inputs still hold every row
            done.append(
                (name, "compaction interrupted before its merged part was written", "undone")
            )
        manifest.unlink(missing_ok=True)
    for entry in os.scandir(directory):  # a dead holder's half-written output
        if entry.name.startswith(f".{OUTPUT_PREFIX}-") and entry.name.endswith(".tmp"):
            Path(entry.path).unlink(missing_ok=True)
            done.append((entry.name, "half-written output of a compaction that died", "deleted"))
    return done


def _is_manifest(name: str) -> bool:
    return name.startswith(MANIFEST_PREFIX) and name.endswith(".json")


def _manifest(directory: Path, name: str) -> dict | None:  # type: ignore[type-arg]
    if not _is_manifest(name):
        return None
    try:
        doc = json.loads((directory / name).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _write_durably(path: Path, doc: dict) -> None:  # type: ignore[type-arg]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    parts.fsync_dir(path.parent)


def pause(point: str) -> None:
    """Test-only: with LOGBOOK_TEST_COMPACT_PAUSE=<point>[,<point>...], say so on stderr and stop
    (SIGSTOP) there, so that a test can `kill -9` a compaction at a chosen step, or act and then
    let it go on (SIGCONT)."""
    if point in os.environ.get(_PAUSE_ENV, "").split(","):
        sys.stderr.write(f"logbook-compact-paused {point}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSTOP)
