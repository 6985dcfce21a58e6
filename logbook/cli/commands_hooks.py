"""logbook hooks list, hooks path: the hooks that ship with logbook, for a config to point at."""

from __future__ import annotations

import click

from logbook.cli.options import format_option
from logbook.cli.render import render


@click.group()
def hooks() -> None:
    """The lifecycle hooks that ship with logbook (crash forensics, webhook, SLURM requeue).

    \b
        logbook hooks list
        logbook run --hook "on_crash=$(logbook hooks path crash-forensics)" -- python train.py
    """


@hooks.command("list")
@format_option
def hooks_list(fmt: str) -> None:
    """List the shipped hooks: name, what it does, and the file to point a config at.

    \b
        logbook hooks list
    """
    import pyarrow as pa

    from logbook.shipped_hooks import list_hooks

    shipped = list_hooks()
    render(
        pa.table(
            {
                "name": [h.name for h in shipped],
                "what it does": [h.summary for h in shipped],
                "path": [str(h.path) for h in shipped],
            }
        ),
        fmt,
    )


@hooks.command("path")
@click.argument("name")
def hooks_path(name: str) -> None:
    """Print the file of the shipped hook NAME, for `--hook` or logbook.toml's [hooks].

    \b
        logbook hooks path crash-forensics
        logbook run --hook "on_crash=$(logbook hooks path crash-forensics)" -- python train.py
    """
    from logbook.errors import LogbookError
    from logbook.shipped_hooks import hook_path

    try:
        click.echo(hook_path(name))
    except LogbookError as e:  # a name that is not one of the list: a usage error, as click's
        raise click.BadParameter(str(e), param_hint="NAME") from e


COMMANDS = [hooks]
