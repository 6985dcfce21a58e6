"""logbook doctor, compact."""

from __future__ import annotations

from pathlib import Path

import click

from logbook.cli.options import format_option, open_store, store_option
from logbook.cli.render import progress_on_stderr, render


@click.command()
@click.option("--dry-run", is_flag=True, help="Only list problems; move nothing.")
@store_option
@format_option
def doctor(dry_run: bool, store: Path | None, fmt: str) -> None:
    """Check every part of the store; set damaged ones aside in _quarantine/.

    Exits 1 if it found problems (listed, and quarantined unless --dry-run), 0 if none.

    \b
        logbook doctor --dry-run
    """
    import pyarrow as pa

    from logbook.store import doctor as doc

    s = open_store(store)
    click.echo(f"store: {s.root} ({_whence(s.source)})", err=True)
    problems = doc.examine(s, fix=not dry_run)
    if not problems:
        click.echo("no problems found", err=True)
        return
    render(
        pa.Table.from_pylist(
            [
                {"path": str(p.path), "problem": p.what, "action": p.action or "none (dry run)"}
                for p in problems
            ]
        ),
        fmt,
    )
    raise click.exceptions.Exit(1)


@click.command()
@store_option
def compact(store: Path | None) -> None:
    """Merge small parts into one per table and run, losing and duplicating nothing.

    \b
        logbook compact
    """
    from logbook.store.compact import compact as do_compact

    with progress_on_stderr() as progress:
        result = do_compact(open_store(store), progress=progress)
    click.echo(
        f"merged {result.parts_before} parts into {result.parts_after} in {result.folders} "
        f"folders ({result.rows} rows)"
    )
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    for s in result.skipped:
        click.echo(f"Warning: skipped {s}", err=True)


def _whence(source: str) -> str:
    """Where the store came from, as a phrase: 'from --store', 'from /x/logbook.toml', but 'found
    walking up from /y' as it is (#17: it read "from found walking up")."""
    return source if source.startswith(("found ", "default")) else f"from {source}"


COMMANDS = [doctor, compact]
