"""logbook reparse."""

from __future__ import annotations

from pathlib import Path

import click

from logbook.cli.options import format_option, open_store, store_option
from logbook.cli.render import render


@click.command()
@click.argument("run_name", metavar="RUN")
@click.option("--attempt", "label", metavar="LABEL", help="Only this attempt (default: all).")
@click.option(
    "--metrics",
    "spec",
    metavar="MODE",
    help="Parse with this mode (auto, regex:PATTERN, none) [default: each attempt's own].",
)
@click.option("--rest", is_flag=True, hidden=True, help="The background finish of logbook run.")
@click.option("--attempt-id", "attempt_id", hidden=True)
@store_option
@format_option
def reparse(
    run_name: str,
    label: str | None,
    spec: str | None,
    rest: bool,
    attempt_id: str | None,
    store: Path | None,
    fmt: str,
) -> None:
    """Rebuild an attempt's metrics from its raw logs (after fixing --metrics, or after a kill).

    \b
        logbook reparse gpt --attempt 1.02
        logbook reparse gpt --metrics 'regex:loss (?P<loss>[\\d.]+)'
    """
    import pyarrow as pa

    from logbook.record import reparse as lib

    opened = open_store(store)
    if rest:  # started by logbook run, detached: what its end left unparsed (record/finish.py)
        if attempt_id is None:
            raise click.UsageError("--rest needs --attempt-id")
        lib.finish_rest(opened, run_name, attempt_id)
        from logbook.store import remote

        url = remote.spool_url(opened.root)
        if url is not None:  # a remote store's spool: what the rest added goes up too
            remote.push(opened.root, remote.Remote(url))
        return
    done = lib.reparse(opened, run_name, attempt=label, metrics=spec)
    render(
        pa.Table.from_pylist(lib.as_rows(done)) if done else _empty(),
        fmt,
        priority=("attempt", "points", "lines", "first_step", "last_step"),
    )


def _empty():  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.table({"run": pa.array([], pa.string())})


COMMANDS = [reparse]
