"""logbook demo."""

from __future__ import annotations

import shlex
from pathlib import Path

import click


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("logbook-demo"),
    show_default=True,
    help="Folder to write: .logbook/ (the store), work/ (the training's files) and chronicle/. "
    "It must be new, empty, or an earlier demo's (which is replaced).",
)
def demo(out: Path) -> None:
    """Show what logbook is for, in about a minute: a small real training crashes, hangs, spikes
    and is stopped, relaunched with new settings, recorded, and published as a chronicle.

    \b
        logbook demo
        logbook demo --out /tmp/logbook-demo
    """
    from logbook.demo import run_demo

    result = run_demo(out, say=click.echo)
    store = shlex.quote(str(result.store))
    sql = "select label, status, crash_class, first_step, last_step from attempts"
    click.echo(
        f"\nDone in {result.wall_s:.0f} s. Open {result.index} in a browser (it needs no network)."
        "\nThen ask the record yourself:\n"
        f"  logbook show {result.run} --store {store}\n"
        f"  logbook incidents {result.run} --store {store}\n"
        f"  logbook events {result.run} --kind loss_spike,note,hparam_change --store {store}\n"
        f'  logbook query "{sql}" --store {store}'
    )


COMMANDS = [demo]
