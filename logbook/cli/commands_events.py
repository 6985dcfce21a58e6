"""logbook note, event add, events, data-mix."""

from __future__ import annotations

from pathlib import Path

import click

from logbook.cli.options import format_option, open_store, read_store, store_option, wait_option
from logbook.cli.render import render

# Which columns a narrow terminal keeps first (the others follow in table order; --wide: all).
EVENTS_FIRST = ("time", "attempt", "kind", "message", "step")
DATA_MIX_FIRST = ("attempt", "source", "weight", "change", "tokens")


@click.command()
@click.argument("run_name", metavar="RUN")
@click.argument("text")
@click.option(
    "--at", "at", metavar="TIME", help="When (ISO 8601; no zone = local time). Default: now."
)
@click.option("--step", type=int, help="Training step it refers to.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option(
    "--attempt",
    metavar="LABEL",
    help="Attempt it belongs to. Default: the one running at that time.",
)
@store_option
def note(
    run_name: str,
    text: str,
    at: str | None,
    step: int | None,
    tags: tuple[str, ...],
    attempt: str | None,
    store: Path | None,
) -> None:
    """Put a note on a run's record, as the OPT logbook's authors did by hand.

    \b
        logbook note gpt "Lowered LR to 0.8x after the spike at 23k" --step 23000 --tag lr
    """
    from logbook.record.events import add_event, parse_time

    row = add_event(
        open_store(store),
        run_name,
        "note",
        text,
        at=parse_time(at),
        step=step,
        data={"tags": list(tags)} if tags else None,
        attempt=attempt,
    )
    click.echo(f"noted on {run_name} at {row['time']:%Y-%m-%d %H:%M:%S} UTC", err=True)


@click.group()
def event() -> None:
    """Add events by hand.

    \b
        logbook event add gpt --kind lr_change -m "LR 3e-4 -> 1e-4" --step 23000 lr=1e-4
    """


@event.command("add")
@click.argument("run_name", metavar="RUN")
@click.argument("fields", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--kind", required=True, help="What happened, e.g. hardware_fault, lr_change.")
@click.option("--message", "-m", help="One line for people.")
@click.option(
    "--at", "at", metavar="TIME", help="When (ISO 8601; no zone = local time). Default: now."
)
@click.option("--step", type=int, help="Training step it refers to.")
@click.option(
    "--severity", type=click.Choice(["info", "warning", "error"]), default="info", show_default=True
)
@click.option(
    "--attempt",
    metavar="LABEL",
    help="Attempt it belongs to. Default: the one running at that time.",
)
@store_option
def event_add(
    run_name: str,
    fields: tuple[str, ...],
    kind: str,
    message: str | None,
    at: str | None,
    step: int | None,
    severity: str,
    attempt: str | None,
    store: Path | None,
) -> None:
    """Record an event of any kind, with KEY=VALUE details.

    \b
        logbook event add opt-175b --kind hardware_fault --step 41200 node=ip-10-0-3-7 xid=79
    """
    from logbook.record.events import add_event, parse_fields, parse_time

    add_event(
        open_store(store),
        run_name,
        kind,
        message,
        at=parse_time(at),
        step=step,
        severity=severity,
        data=parse_fields(fields),
        attempt=attempt,
    )


@click.command()
@click.argument("run_name", metavar="RUN")
@click.option("--kind", "kinds", metavar="KINDS", help="Only these kinds (comma-separated).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the last N.")
@wait_option
@store_option
@format_option
def events(
    run_name: str, kinds: str | None, limit: int | None, store: Path | None, fmt: str
) -> None:
    """A run's events in time order: crashes, restarts, hangs, signals, hooks, checkpoints, notes.

    \b
        logbook events gpt --kind crash,restart,note
    """
    from logbook.record.events import list_events

    wanted = [k.strip() for k in (kinds or "").split(",") if k.strip()]
    events = list_events(read_store(store, run_name), run_name, kinds=wanted, limit=limit)
    render(events, fmt, priority=EVENTS_FIRST)


@click.command("data-mix")
@click.argument("run_name", metavar="RUN")
@store_option
@format_option
def data_mix(run_name: str, store: Path | None, fmt: str) -> None:
    """A run's data-mix history: each declared mix, one line per source, with what changed, and
    the data-mix changes imported or added as events.

    \b
        logbook data-mix gpt
        logbook data-mix gpt --format json
    """
    from logbook.query.datamix import history

    table = history(open_store(store), run_name)
    if table.num_rows == 0:
        click.echo(
            f"no data mix on record for {run_name}; declare one with `logbook run --data-mix "
            "FILE` or logbook.data_mix(...), or import data_mix_change events",
            err=True,
        )
    render(table, fmt, priority=DATA_MIX_FIRST)


COMMANDS = [note, event, events, data_mix]
