"""logbook repro, diff."""

from __future__ import annotations

import json
from pathlib import Path

import click

from logbook.cli.options import format_option, open_store, read_store, store_option, wait_option
from logbook.cli.render import render


@click.command()
@click.argument("run_name", metavar="RUN")
@click.argument("label", metavar="LABEL")
@click.option(
    "--script",
    "script",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the recipe as an executable bash script (- for stdout). Run it as "
    "FILE [--no-install] [--force] [CHECKOUT].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="text: numbered steps for people; json for scripts.",
)
@store_option
def repro(run_name: str, label: str, script: Path | None, fmt: str, store: Path | None) -> None:
    """The recipe to re-create an attempt: its commit, diff, packages, environment and command.

    \b
        logbook repro gpt 1.02
        logbook repro gpt 1.02 --script repro.sh && ./repro.sh --no-install
    """
    from logbook.repro import recipe

    found = recipe(open_store(store), run_name, label)
    if script is not None:
        if str(script) == "-":
            click.echo(found.as_script(), nl=False)
            return
        script.write_text(found.as_script())
        script.chmod(script.stat().st_mode | 0o111)
        click.echo(f"wrote {script}; run it as: {script} [--no-install] [--force] [CHECKOUT]")
        for blocker in found.blockers:
            click.echo(f"Warning: {blocker}: the script stops unless --force", err=True)
        return
    if fmt == "json":
        click.echo(json.dumps(found.as_dict(), indent=2))
    else:
        click.echo(found.as_text(), nl=False)


@click.command()
@click.argument("run_name", metavar="RUN")
@click.argument("a_label", metavar="A")
@click.argument("b_label", metavar="B")
@wait_option
@store_option
@format_option
def diff(run_name: str, a_label: str, b_label: str, store: Path | None, fmt: str) -> None:
    """What changed between two attempts: git, packages, config, command, environment,
    hardware, launcher and data mix.

    \b
        logbook diff gpt 1.00 1.01
        logbook diff gpt 1.00 2.00 --format json
    """
    from logbook.repro.diff import diff_attempts

    changes = diff_attempts(read_store(store, run_name), run_name, a_label, b_label)
    if changes.num_rows == 0 and fmt in ("table", "markdown"):
        click.echo("no differences")
        return
    title = f"{run_name}: {a_label} -> {b_label}" if fmt == "table" else None
    render(changes, fmt, title=title)


COMMANDS = [repro, diff]
