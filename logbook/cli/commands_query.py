"""logbook query, runs, show, incidents, metrics, goodput, stragglers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from logbook.cli.options import format_option, read_store, store_option, wait_option
from logbook.cli.render import render

# Which columns a narrow terminal keeps first (the others follow in table order; --wide: all).
RUNS_FIRST = ("run", "latest_status", "attempts", "wall_s", "last_end")
SHOW_FIRST = ("label", "status", "class", "summary", "steps", "exit", "duration_s", "lost_steps")
INCIDENTS_FIRST = ("label", "class", "summary", "time_lost_s", "lost_steps", "decision")


@click.command()
@click.argument("sql")
@wait_option
@store_option
@format_option
def query(sql: str, store: Path | None, fmt: str) -> None:
    """Run SQL (DuckDB) over the logbook's tables: runs, attempts, events, metrics, samples, snapshots.

    \b
        logbook query "select label, status, exit_code, duration_s from attempts where run = 'gpt-small'"
    """
    from logbook.query import run_sql

    render(run_sql(read_store(store), sql), fmt)


@click.command()
@wait_option
@store_option
@format_option
def runs(store: Path | None, fmt: str) -> None:
    """List the runs: attempts, status of the latest, first start, last end, total wall time.

    \b
        logbook runs --format json
    """
    from logbook.query import list_runs

    render(list_runs(read_store(store)), fmt, priority=RUNS_FIRST)


@click.command()
@click.argument("run_name", metavar="RUN")
@wait_option
@store_option
@format_option
def show(run_name: str, store: Path | None, fmt: str) -> None:
    """Show the lineage of a run: one line per attempt.

    \b
        logbook show gpt-small
    """
    from logbook.query import show_run

    render(
        show_run(read_store(store, run_name), run_name),
        fmt,
        title=f"run {run_name}" if fmt == "table" else None,
        priority=SHOW_FIRST,
    )


COMMANDS = [query, runs, show]


@click.command()
@click.argument("run_name", metavar="RUN")
@click.option("--each", is_flag=True, help="One line per incident instead of totals by class.")
@click.option(
    "--by",
    type=click.Choice(["class", "cause"]),
    default="class",
    show_default=True,
    help="Totals by crash class, or by cause: the component, planned or not, relaunched "
    "automatically or by hand, and the effective training time (#19).",
)
@wait_option
@store_option
@format_option
def incidents(run_name: str, each: bool, by: str, store: Path | None, fmt: str) -> None:
    """Failures of a run by class: count, steps and time lost, mean time between failures.

    \b
        logbook incidents opt-mini
        logbook incidents opt-mini --each --format json
        logbook incidents llama3-405b --by cause
    """
    from logbook.query import incidents_by_class, list_incidents

    if each and by == "cause":
        raise click.UsageError("--each lists incidents one by one; leave out --by cause")
    s = read_store(store, run_name)
    if by == "cause":
        from logbook.query.causes import incidents_by_cause

        data = incidents_by_cause(s, run_name)
    else:
        data = list_incidents(s, run_name) if each else incidents_by_class(s, run_name)
    title = f"incidents of {run_name}" if fmt == "table" else None
    render(data, fmt, title=title, priority=INCIDENTS_FIRST if each else ())
    if by == "class" and s.read("interruptions", run=run_name).num_rows:
        # counts an imported history gives without times have no class (#19)
        click.echo(
            f"note: {run_name} also has interruptions counted without times or classes; "
            f'see "logbook incidents {run_name} --by cause"',
            err=True,
        )


COMMANDS.append(incidents)


@click.command()
@click.argument("run_name", metavar="RUN")
@click.option("--name", "names", metavar="NAMES", help="Only these metrics (comma-separated).")
@click.option(
    "--every",
    type=click.IntRange(min=1),
    metavar="N",
    help="One point per N steps: the last of steps 1..N, N+1..2N, ... (step 0 alone).",
)
@click.option("--attempt", metavar="LABEL", help="Only this attempt.")
@wait_option
@store_option
@format_option
def metrics(
    run_name: str,
    names: str | None,
    every: int | None,
    attempt: str | None,
    store: Path | None,
    fmt: str,
) -> None:
    """A run's metrics: step, name, value, and the attempt that logged them.

    \b
        logbook metrics gpt --name loss --every 1000
    """
    from logbook.query import read_metrics

    wanted = [n.strip() for n in (names or "").split(",") if n.strip()]
    render(
        read_metrics(
            read_store(store, run_name), run_name, names=wanted, every=every, attempt=attempt
        ),
        fmt,
    )


COMMANDS.append(metrics)


@click.command()
@click.argument("run_name", metavar="RUN")
@click.option("--each", is_flag=True, help="One line per attempt instead of totals by category.")
@click.option(
    "--steps",
    is_flag=True,
    help="Step times instead: each against its attempt's running median (deviation).",
)
@wait_option
@store_option
@format_option
def goodput(run_name: str, each: bool, steps: bool, store: Path | None, fmt: str) -> None:
    """Where a run's wall-clock and GPU time went: productive training, lost work, hangs,
    downtime, start-up, checkpoint saves and restores, evaluation, compilation, data loading,
    with the share of each.

    \b
        logbook goodput gpt
        logbook goodput gpt --each --format json
        logbook goodput gpt --steps
    """
    from logbook.query.goodput import goodput as by_category
    from logbook.query.goodput import goodput_by_attempt, step_deviation

    if each and steps:
        raise click.UsageError("--each and --steps are two different tables: choose one")
    s = read_store(store, run_name)
    if steps:
        data = step_deviation(s, run_name)
    else:
        data = goodput_by_attempt(s, run_name) if each else by_category(s, run_name)
    render(data, fmt, title=f"goodput of {run_name}" if fmt == "table" else None)


COMMANDS.append(goodput)


@click.command()
@click.argument("run_name", metavar="RUN")
@click.option(
    "--only", is_flag=True, help="Only the hosts named stragglers (default: every host compared)."
)
@wait_option
@store_option
@format_option
def stragglers(run_name: str, only: bool, store: Path | None, fmt: str) -> None:
    """Hosts of a launch over several hosts that lagged the others, step by step (#19).

    \b
        logbook stragglers gpt
        logbook stragglers gpt --only --format json
    """
    import pyarrow as pa

    from logbook.query import run_sql
    from logbook.query.stragglers import read_paces

    s = read_store(store, run_name)
    s.check_run(run_name)
    rows = [p.as_row() for p in read_paces(s, run_name) if p.straggler or not only]
    labels = {
        r["attempt_id"]: r["label"]
        for r in run_sql(
            s, "select attempt_id, label from attempts where run = ?", [run_name]
        ).to_pylist()
    } if rows else {}  # fmt: skip
    for r in rows:
        r["attempt"] = labels.get(r["attempt_id"])
    schema = _pace_schema()
    data = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    render(data, fmt, title=f"host pace of {run_name}" if fmt == "table" else None)


def _pace_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("attempt", pa.string()),
            ("node", pa.int32()),
            ("host", pa.string()),
            ("straggler", pa.bool_()),
            ("ratio", pa.float64()),
            ("step_s", pa.float64()),
            ("others_step_s", pa.float64()),
            ("slow_steps", pa.int64()),
            ("steps", pa.int64()),
            ("attempt_id", pa.string()),
        ]
    )


COMMANDS.append(stragglers)
