"""logbook import."""

from __future__ import annotations

from pathlib import Path

import click

from logbook.cli.options import store_option
from logbook.cli.render import progress_on_stderr


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--run", "run_name", metavar="NAME", help="Run of the rows that name none.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    help="Format of FILE. Default: from its name (.csv, .jsonl), else its first line.",
)
@click.option(
    "--from",
    "origin",
    type=click.Choice(["logbook", "sacct"]),
    default="logbook",
    show_default=True,
    help="What FILE is: logbook's import format, or SLURM's sacct --parsable2 or --json output "
    "(schemas/sacct.md).",
)
@click.option(
    "--tz",
    metavar="ZONE",
    help="With --from sacct: the cluster's zone, in which sacct --parsable2 prints times "
    "(Europe/Paris, UTC, +02:00). Default: UTC, with a warning.",
)
@click.option("--dry-run", is_flag=True, help="Check FILE and say what it adds; write nothing.")
@store_option
def import_(
    file: Path,
    run_name: str | None,
    fmt: str | None,
    origin: str,
    tz: str | None,
    dry_run: bool,
    store: Path | None,
) -> None:
    """Backfill a run's history (attempts, events, notes, metrics) from JSON lines or CSV.

    Rows keep their own times. Every row is checked first: one bad row imports nothing. Rows
    already on record are skipped, so a file can be imported again as it grows. The format:
    schemas/import.md. With --from sacct, each SLURM job record becomes an attempt, and a job
    `logbook run` recorded gets the scheduler's facts instead (schemas/sacct.md).

    \b
        logbook import examples/opt-history.jsonl --run opt-175b
        logbook import --from sacct sacct.txt --run gpt-13b --tz Europe/Paris
    """
    from logbook.importing import import_file
    from logbook.settings import find_store, store_url
    from logbook.store import Store, remote

    url = store_url(store)
    if url is not None:  # into this host's spool of it, then pushed (store/remote.py)
        root, source = remote.make_spool(url), f"the spool of {url}"
    else:
        root, source = find_store(store)
    # A new store is made when there is something to write: not for a bad file, nor a dry run.
    target = Store.open(root, source=source) if root.exists() else Store(root, source=source)
    with progress_on_stderr() as progress:
        results = import_file(
            target,
            file,
            run=run_name,
            fmt=fmt,
            dry_run=dry_run,
            progress=progress,
            source=origin,
            tz=tz,
        )
    for result in results:
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(result.describe(dry_run=dry_run), err=True)
    if dry_run:
        click.echo("nothing written (--dry-run)", err=True)
    elif url is not None:
        pushed = remote.push(root, remote.Remote(url), check=True)
        if pushed.error:
            raise remote.StoreUnreachable(
                f"imported into the spool {root}, but could not push to {url}: {pushed.error}",
                hint=f'run "logbook doctor --store {url}" once the store answers',
            )


COMMANDS = [import_]
