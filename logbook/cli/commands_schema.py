"""logbook schema."""

from __future__ import annotations

from pathlib import Path

import click

from logbook.cli.options import open_store, store_option

# Kept here as well as in logbook.ddl, so that `logbook schema -h` imports nothing more.
DIALECTS = ("spark", "trino", "athena", "bigquery")


@click.command()
@click.option(
    "--ddl",
    "dialect",
    type=click.Choice(DIALECTS),
    default=None,
    help="Print the statements that make every table an external table over the store's "
    "Parquet files, in this engine's SQL. Without it: the table reference (Markdown).",
)
@click.option(
    "--location",
    metavar="URL",
    default=None,
    help="Where the engine finds the store's folder (s3://BUCKET/PATH, gs://..., a path). "
    "Default: the store's own path.",
)
@click.option(
    "--database",
    default="logbook",
    show_default=True,
    help="The database (schema, dataset) the tables go in.",
)
@store_option
def schema(dialect: str | None, location: str | None, database: str, store: Path | None) -> None:
    """The tables of schemas/: their reference, or CREATE statements for Spark, Trino,
    Athena or BigQuery over the store's files (partitioned by run).

    \b
        logbook schema --ddl spark > logbook.sql && spark-sql -f logbook.sql
        logbook schema --ddl athena --location s3://ml-logbooks/archive
    """
    from logbook import ddl
    from logbook import schema as schemas

    if dialect is None:
        if location is not None:
            raise click.UsageError("--location goes with --ddl")
        click.echo(schemas.reference_markdown(), nl=False)
        return
    present = None
    if location is None:
        opened = open_store(store)
        root = opened.root.resolve()
        location = opened.url or str(root)  # a remote store: its URL, not this host's cache
        present = {t for t in schemas.tables() if (root / t).is_dir()}
    elif store is not None:
        root = open_store(store).root
        present = {t for t in schemas.tables() if (root / t).is_dir()}
    click.echo(ddl.external_tables(dialect, location, database, present=present), nl=False)


COMMANDS = [schema]
