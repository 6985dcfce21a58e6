"""Backfill history from a file: attempts, events, notes and metrics with their own times.

A run kept by hand, or exported from another tracker, goes on record like a recorded one. The
file is JSON lines or CSV (the format: schemas/import.md). Every row is checked before anything
is written, and only what the store does not hold yet is added: attempt ids come from run and
label, event ids from the event's content, and a metric point is its (time, step, name, value);
so importing a file again, or after rows were appended to it, never duplicates a row.

>>> import_file(Store.open(Path(".logbook"), create=True), Path("examples/opt-history.jsonl"))
[Imported(run='opt-175b', attempts=7, attempts_updated=0, events=13, notes=5, metrics=20, ...)]
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.errors import LogbookError
from logbook.importing.collect import MAX_ERRORS, Collector
from logbook.importing.plan import Imported, Plan
from logbook.importing.read import Bad, format_of, jsonl_blocks, parse_line, read_csv
from logbook.store import Store, layout

if TYPE_CHECKING:
    import duckdb

__all__ = ["SOURCES", "Imported", "import_file"]
SOURCES = ("logbook", "sacct")  # what `logbook import --from` reads
_DOC = {"sacct": "sacct"}  # the page a bad file's error points to
_SAY_EVERY = 100_000  # lines between progress reports


def import_file(
    store: Store,
    path: Path,
    *,
    run: str | None = None,
    fmt: str | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    source: str = "logbook",
    tz: str | None = None,
) -> list[Imported]:
    """Import the history in `path` into `store`: check all of it, then add what is new.

    Args:
        store: the store to add to; a folder that does not exist yet is made when there is
            something to write.
        path: a JSON lines or CSV file in the format of schemas/import.md.
        run: the run of rows that name none.
        fmt: jsonl or csv; None guesses from the file's name, else from its first line.
        dry_run: check the file and count what would be added, writing nothing.
        progress: called with a few words before each stage, and as lines are read.
        source: `logbook` (the format of schemas/import.md) or `sacct` (SLURM's accounting:
            sacct --parsable2 or --json output, schemas/sacct.md).
        tz: with sacct, the zone of --parsable2's times (an IANA name, UTC, +02:00); default UTC.

    Returns:
        One Imported per run in the file, in the order of their first row.

    Raises:
        LogbookError: the file cannot be read, or has bad rows (each named by line and why);
            nothing is written then.
    """
    import tempfile

    import duckdb

    if run is not None:
        layout.check_run_name(run)
    if source not in SOURCES:
        raise LogbookError(f"source {source!r} is not one of {', '.join(SOURCES)}")
    if source == "sacct":
        if fmt is not None:
            raise LogbookError(
                "--format is for logbook's own format; sacct files are told apart "
                "by their first character ({: --json, else --parsable2)"
            )
        format_of(path, None)  # the file exists
        fmt = "sacct"
    else:
        if tz is not None:
            raise LogbookError(
                "--tz is for sacct files (--from sacct): logbook's own format "
                "gives times with their offset, and none means UTC"
            )
        fmt = format_of(path, fmt)
    with tempfile.TemporaryDirectory(prefix="logbook-import-") as spill:
        con = duckdb.connect(":memory:")
        try:
            con.execute("set TimeZone = 'UTC'")
            con.execute("set threads = 1")
            # A file larger than memory spills here, not into a .tmp/ in the working directory.
            con.execute(f"set temp_directory = '{spill.replace(chr(39), chr(39) * 2)}'")
            return _import(store, path, run, fmt, dry_run, con, progress or (lambda _: None), tz=tz)
        finally:
            con.close()


def _import(
    store: Store,
    path: Path,
    run: str | None,
    fmt: str,
    dry_run: bool,
    con: duckdb.DuckDBPyConnection,
    say: Callable[[str], None],
    *,
    tz: str | None = None,
) -> list[Imported]:
    if not dry_run and store.root.exists():
        # A writer folds what dead wrappers left, as `logbook run` does at its start: else their
        # `lost` rows, made afresh at each read, stay newer than what the file says of them.
        store.fold_dead_journals()
    say(f"reading {path.name}")
    found = Collector(run, con, csv_strings=fmt == "csv")
    warnings: list[str] = []
    # The rows are plain dicts and tuples, never cycles: the cyclic collector would only rescan
    # the batch held for DuckDB again and again (a tenth of the time of a big file).
    collecting = gc.isenabled()
    gc.disable()
    try:
        if fmt == "sacct":
            from logbook.importing.sacct import collect_sacct

            warnings = collect_sacct(store, path, found, run=run, tz=tz)
        elif fmt == "jsonl":
            _collect_jsonl(path, found, con, say)
        else:
            _collect(read_csv(path), found, path, say)
        found.flush()
    finally:
        if collecting:
            gc.enable()
    if len(found.errors) >= MAX_ERRORS or (found.errors and not found.runs):
        raise _bad_rows(path, found.errors, fmt)
    if not found.runs:
        raise LogbookError(f"{path} has no rows to import", hint="see schemas/import.md")
    say("checking the rows against the store")
    # Also with bad rows: its errors join theirs, so a file's errors come in one report.
    plan = Plan(store, found, con)  # checks rows against the store and each other
    if found.errors:
        raise _bad_rows(path, found.errors, fmt)
    if not dry_run:
        say("writing")
        plan.write()
    results = list(plan.results.values())
    results[0].warnings[:0] = warnings  # the file's own, before those of its runs
    return results


def _collect(
    rows: Iterable[tuple[int, dict[str, Any] | Bad]],
    found: Collector,
    path: Path,
    say: Callable[[str], None],
) -> None:
    """Check the rows one by one, until MAX_ERRORS of them are bad."""
    for line, row in rows:
        found.add(line, row)
        if line % _SAY_EVERY == 0:
            say(f"reading {path.name}: {line:,} lines")
        if len(found.errors) >= MAX_ERRORS:
            return


def _collect_jsonl(
    path: Path, found: Collector, con: duckdb.DuckDBPyConnection, say: Callable[[str], None]
) -> None:
    """A block of lines at a time: its plain metric rows in DuckDB (fast.py), the rest one by one,
    in the order of their lines, so errors come as they would row by row."""
    from logbook.importing.fast import take_metrics

    for block in jsonl_blocks(path):
        left, runs = take_metrics(con, block, found)
        for i in left:
            row = parse_line(block.line(i))
            if row is not None:
                found.add(block.first + i, row)
                if len(found.errors) >= MAX_ERRORS:
                    return
        for name, line in runs.items():
            found.note_run(name, line)
        say(f"reading {path.name}: {block.first + len(block) - 1:,} lines")


def _bad_rows(path: Path, errors: list[tuple[int, str]], fmt: str) -> LogbookError:
    errors = sorted(errors)[:MAX_ERRORS]
    listing = "\n".join(f"  line {line}: {why}" for line, why in errors)
    if len(errors) == 1:
        rows, them = "a bad row", "it"
    else:
        rows, them = f"{len(errors)} bad rows", "them"
    if len(errors) == MAX_ERRORS:
        rows += " (at least: reading stopped there)"
    return LogbookError(
        f"{path} has {rows}; nothing was imported:\n{listing}",
        hint=f"fix {them} and import again (the format: schemas/{_DOC.get(fmt, 'import')}.md)",
    )
