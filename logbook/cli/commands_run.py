"""logbook run."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from logbook.cli.options import store_option


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
    }
)
@click.option("--run", "run_name", metavar="NAME", help="Run name. Default: the script's name.")
@click.option(
    "--label",
    metavar="LABEL",
    help="Label of this attempt, e.g. 12.00 to start a new lineage. "
    "Default: the previous attempt's label plus one (1.00, 1.01, ...).",
)
@click.option(
    "--tty/--no-tty",
    "tty",
    default=None,
    help="Force a pseudo-terminal (or pipes) for the command's output. Default: a "
    "pseudo-terminal for each of stdout and stderr that is a terminal here.",
)
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="Seconds between passing on SIGINT/SIGTERM/SIGHUP and killing the command's group.",
)
@click.option(
    "--no-capture", is_flag=True, help="Skip the launch snapshot (git, packages, env, hardware)."
)
@store_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
def run(
    run_name: str | None,
    label: str | None,
    tty: bool | None,
    grace_s: float,
    no_capture: bool,
    store: Path | None,
    command: tuple[str, ...],
) -> None:
    """Run a training command and record it as an attempt of a run.

    \b
        logbook run --run gpt-small -- python train.py --lr 3e-4

    Exits with the command's own exit code (128+N if signal N ended it).
    """
    from logbook import supervisor
    from logbook.config import find_store

    root, source = find_store(store)
    opts = supervisor.RunOptions(
        command=list(command),
        store=root,
        store_source=source,
        run=run_name,
        label=label,
        tty={None: "auto", True: "always", False: "never"}[tty],
        grace_s=grace_s,
        capture=not no_capture,
    )
    sys.exit(supervisor.run(opts))


COMMANDS = [run]
