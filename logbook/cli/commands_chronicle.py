"""logbook chronicle."""

from __future__ import annotations

from pathlib import Path

import click

from logbook.cli.options import read_store, store_option, wait_option
from logbook.cli.render import progress_on_stderr


@click.command()
@click.argument("run_name", metavar="RUN")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder to write: index.html, chronicle.md, img/ and data/. A chronicle already "
    "there is replaced.",
)
@click.option("--anonymize", is_flag=True, help="Replace host names, user names and home folders.")
@click.option(
    "--force",
    is_flag=True,
    help="Write into a folder that holds other things (they are left as they are).",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="A metric to plot (repeatable). Default: loss, then the metrics with most points.",
)
@click.option(
    "--samples/--no-samples",
    default=True,
    show_default=True,
    help="Publish the telemetry samples in data/ (often most of the bytes).",
)
@wait_option
@store_option
def chronicle(
    run_name: str,
    out: Path,
    anonymize: bool,
    force: bool,
    metrics: tuple[str, ...],
    samples: bool,
    store: Path | None,
) -> None:
    """Build a run's chronicle: a page that opens from disk with no network, the same as
    Markdown, and the data as Parquet, every secret left out.

    \b
        logbook chronicle gpt --out site/
        logbook chronicle gpt --out site/ --anonymize --metric loss --metric grad_norm
    """
    from logbook.chronicle.build import build
    from logbook.cost import resolve_settings
    from logbook.settings import find_config

    config_path, config = find_config()
    settings = resolve_settings({}, config, config_path)
    with progress_on_stderr() as progress:
        built = build(
            read_store(store, run_name),
            run_name,
            out,
            anonymize=anonymize,
            force=force,
            metrics=list(metrics) or None,
            settings=settings,
            samples=samples,
            progress=progress,
        )
    size = sum(f.bytes for f in built.data)
    click.echo(f"Wrote {built.folder / 'index.html'} and {built.folder / 'chronicle.md'}")
    click.echo(
        f"  {len(built.figures)} figures, data: {len(built.data)} files, {size / 1e6:,.1f} MB"
    )
    for why in built.missing.values():
        click.echo(f"  missing: {why}")


COMMANDS = [chronicle]
