"""logbook watch."""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from logbook.cli.options import open_store, store_option
from logbook.errors import LogbookError

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text

    from logbook.query.watch import WatchState

_BLOCKS = "▁▂▃▄▅▆▇█"
_STATUS_STYLE = {
    "running": "bold green",
    "completed": "bold cyan",
    "interrupted": "bold yellow",
    "preempted": "bold yellow",
}
_SEVERITY_STYLE = {"error": "red", "warning": "yellow"}


@click.command()
@click.argument("run_name", metavar="[RUN]", required=False)
@click.option(
    "--every",
    default="2s",
    show_default=True,
    metavar="DURATION",
    help="Read the store again this often, e.g. 500ms, 2s, 1m.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Print one frame and exit (plain text when piped or under NO_COLOR).",
)
@click.option(
    "--target-steps",
    type=click.IntRange(min=1),
    metavar="N",
    help="The step the training ends at, for the ETA. Default: the attempt's config or "
    "arguments (max_steps, total_steps, train_steps, ...; or total_tokens over tokens_per_step).",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="A metric to follow (repeatable). Default: loss first, then the others by name, 8 at most.",
)
@store_option
def watch(
    run_name: str | None,
    every: str,
    once: bool,
    target_steps: int | None,
    metrics: tuple[str, ...],
    store: Path | None,
) -> None:
    """Follow a run as it trains: attempt, step and pace, ETA, metrics, GPUs, incidents, events.

    Reads only the store, so it works from another shell or host that shares it. Without RUN,
    the run whose latest attempt is running (else the one started last). Ctrl-C stops it.

    \b
        logbook watch
        logbook watch gpt --every 5s --target-steps 100000
        logbook watch gpt --once
    """
    from logbook.query.watch import watch_state
    from logbook.settings import parse_duration

    try:
        every_s = parse_duration(every, what="--every")
    except LogbookError as e:
        raise click.BadParameter(str(e), param_hint="--every") from e
    if every_s < 0.1:
        raise click.BadParameter("refresh at most 10 times a second (0.1s)", param_hint="--every")
    s = open_store(store)

    opened = [True]  # open_store has just brought a remote store's cache up to date

    def read() -> WatchState:
        if s.url is not None and not opened:  # a remote store: what its writers uploaded since
            from logbook.store.remote import mirror

            mirror(s.url)
        opened.clear()
        return watch_state(s, run_name, target_steps=target_steps, metrics=metrics)

    console = _console()
    # DuckDB runs the handler from inside a query and may swallow the KeyboardInterrupt it raises
    # (or turn it into RuntimeError "Query interrupted"): the loops also look at `pressed`.
    pressed: list[int] = []

    def on_ctrl_c(signum: int, frame: Any) -> None:
        pressed.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        state = read()  # an unknown run or an empty store: "Error: ..." and exit 1
        if once:
            _print(console, _frame(state, s.root, None, width=_width(console)))
        elif console.is_terminal:
            _live(console, state, read, s.root, every_s, pressed)
        else:  # a pipe or a file: one frame after the other, as `top -b` does
            error = None
            while not pressed and _print(console, _frame(state, s.root, every_s, error)):
                time.sleep(every_s)
                state, error = _reread(read, state)
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends: exit 0, no traceback
        return
    except Exception:
        if not pressed:
            raise
    finally:
        signal.signal(signal.SIGINT, previous)


def _console() -> Console:
    from rich.console import Console

    console = Console(highlight=False)
    if os.environ.get("NO_COLOR") or not console.is_terminal:
        # No colour and no styles at all: plain text to read or grep. A pipe gets whole
        # lines, never folded to 80 columns.
        width = None if console.is_terminal else 1 << 16
        console = Console(highlight=False, color_system=None, width=width)
    return console


def _width(console: Console) -> int | None:
    return console.width if console.is_terminal else None


def _print(console: Console, frame: RenderableType) -> bool:
    """Print a frame and a blank line; False when the reader went away."""
    try:
        if console.is_terminal:
            console.print(frame)
            console.print()
        else:  # plain text: without the spaces that pad table cells to the right
            with console.capture() as captured:
                console.print(frame)
            sys.stdout.write("".join(f"{line.rstrip()}\n" for line in captured.get().splitlines()))
            sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `logbook watch --once | head`: the reader had what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True


def _live(
    console: Console, state: WatchState, read: Any, root: Path, every_s: float, pressed: list[int]
) -> None:
    from rich.live import Live

    with Live(console=console, auto_refresh=False, transient=False) as live:
        error = None
        while not pressed:
            live.update(_frame(state, root, every_s, error, width=console.width), refresh=True)
            time.sleep(every_s)
            state, error = _reread(read, state)


def _reread(read: Any, state: WatchState) -> tuple[WatchState, str | None]:
    """A fresh state, or the last one and why it could not be read (e.g. a store on a network
    filesystem gone a moment): the watch keeps refreshing, on a terminal or into a pipe."""
    try:
        return read(), None
    except LogbookError as e:
        return state, str(e)


# rendering ----------------------------------------------------------------------------------


def _frame(
    state: WatchState,
    root: Path,
    every_s: float | None,
    error: str | None = None,
    *,
    width: int | None = None,
) -> RenderableType:
    """One frame; `width`, on a terminal, cuts each event to one line."""
    from rich.console import Group
    from rich.text import Text

    parts: list[RenderableType] = [*_head(state), Text()]
    if state.metrics:
        parts += [*_metrics(state), Text()]
    parts += [*_machines(state), Text()]
    if state.events:
        parts += [Text("last events", style="bold"), _events(state, width), Text()]
    foot = f"store {root} · {state.now:%H:%M:%S} UTC"
    if every_s is not None:
        foot += f" · every {_number(every_s)}s · Ctrl-C to stop"
    parts.append(Text(foot, style="dim"))
    if error:
        parts.append(Text(f"Error: {error} (trying again)", style="red"))
    return Group(*parts)


def _head(state: WatchState) -> list[RenderableType]:
    from rich.text import Text

    line = Text.assemble((state.run, "bold"))
    if state.attempt is None:
        return [line + Text(" · no attempt yet")]
    status = state.status or "unknown"
    line.append(" · attempt ")
    line.append(state.attempt, style="bold")
    line.append(" ")
    line.append(status, style=_STATUS_STYLE.get(status, "bold red"))
    if state.ended is None:
        line.append(f" for {_duration(state.age_s)}")
    else:
        line.append(f" after {_duration(state.age_s)}, {_ago(state, state.ended)}")
    if state.host:
        line.append(f" on {state.host}")
    if state.started is not None:
        line.append(f" · started {state.started:%Y-%m-%d %H:%M:%S} UTC", style="dim")
    lines: list[RenderableType] = [line]
    if state.ended is not None and state.summary:
        lines.append(Text(f"  {state.summary}", style="dim"))

    pace = Text("step ")
    if state.step is None:
        pace.append("none yet", style="dim")
        if state.resumed_from is not None:
            pace.append(f" (resumed from {state.resumed_from:,})")
    else:
        pace.append(f"{state.step:,}", style="bold")
        if state.target:
            share = 100 * state.step / state.target
            pace.append(f" of {state.target:,} ({share:.1f}%, {state.target_from})")
        if state.step_time is not None:
            pace.append(f" · seen {_ago(state, state.step_time)}", style="dim")
    if state.rate is not None:
        pace.append(f" · {state.rate:.3g} steps/s")
    if state.eta_s is not None:
        pace.append(" · ETA ")
        pace.append(_duration(state.eta_s), style="bold")
    lines.append(pace)

    counts = Text(f"attempts {state.attempts} · restarts {state.restarts} · incidents ")
    total = sum(state.incidents.values())
    counts.append(str(total), style="bold red" if total else "")
    if total:
        shown = list(state.incidents.items())
        listing = ", ".join(f"{c} {n}" for c, n in shown[:8])
        more = f", {len(shown) - 8} more classes" if len(shown) > 8 else ""
        counts.append(f": {listing}{more}")
    lines.append(counts)
    return lines


def _metrics(state: WatchState) -> list[RenderableType]:
    from rich.table import Table
    from rich.text import Text

    points = max(len(v) for v in state.metrics.values())
    title = Text(f"metrics of attempt {state.metrics_attempt}, last {points} points", style="bold")
    if state.more_metrics:
        title.append(f" ({state.more_metrics} more: --metric NAME)", style="dim")
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style="bold")
    table.add_column("metric", no_wrap=True)
    table.add_column("last", justify="right", no_wrap=True)
    table.add_column("trend", no_wrap=True)
    table.add_column("change", justify="right", no_wrap=True)
    for name, values in state.metrics.items():
        table.add_row(
            Text(name), Text(_number(values[-1])), Text(_sparkline(values)), Text(_change(values))
        )
    return [title, table]


def _machines(state: WatchState) -> list[Text]:
    from rich.text import Text

    lines: list[Text] = []
    summary = state.gpu_summary
    if summary is None and not state.hosts:
        if state.ended is None and (state.age_s or 0) < 120:
            lines.append(
                Text("no readings yet: samples reach the store once a minute", style="dim")
            )
        else:
            lines.append(Text("no readings in the attempt's last 5 min", style="dim"))
    elif summary is None:
        lines.append(Text("GPUs: none read", style="dim"))
    elif summary.gpus <= 8:
        for g in state.gpus:
            where = f"GPU {g.index}" + (f" on {g.host}" if summary.hosts > 1 else "")
            lines.append(
                Text(
                    f"{where}: util {_pct(g.util_pct)} · power {_watts(g.power_w)} · memory "
                    f"{_memory(g.mem_used_bytes, g.mem_total_bytes)} · {_celsius(g.temperature_c)}"
                )
            )
    else:
        lines.append(
            Text(
                f"{summary.gpus} GPUs on {summary.hosts} hosts: util {_pct(summary.util_mean)} "
                f"mean ({_pct(summary.util_min)}-{_pct(summary.util_max)}) · power "
                f"{_watts(summary.power_mean_w)} mean, {_watts(summary.power_total_w)} in all · "
                f"memory {_memory(summary.mem_used_bytes, summary.mem_total_bytes)} · "
                f"hottest {_celsius(summary.temperature_max_c)}"
            )
        )
    if summary is not None:
        newest = max(g.time for g in state.gpus)
        lines[-1].append(f" · read {_ago(state, newest)}", style="dim")
    hosts = state.hosts
    if len(hosts) > 4:  # a launch over many hosts: the sums
        cpu = sum(h.cpu_pct or 0 for h in hosts)
        rss = sum(h.rss_bytes or 0 for h in hosts)
        lines.append(
            Text(f"process on {len(hosts)} hosts: CPU {cpu:,.0f}% in all · RSS {_bytes(rss)}")
        )
    for h in hosts if len(hosts) <= 4 else ():
        said = []
        if h.cpu_pct is not None or h.rss_bytes is not None:
            said.append(f"process CPU {_pct(h.cpu_pct)} · RSS {_bytes(h.rss_bytes)}")
        if h.host_cpu_pct is not None or h.mem_total_bytes:
            memory = _memory(h.mem_used_bytes, h.mem_total_bytes)
            said.append(f"host CPU {_pct(h.host_cpu_pct)} · memory {memory}")
        line = Text(f"{h.host or 'host'}: {' · '.join(said)}")
        line.append(f" · read {_ago(state, h.time)}", style="dim")
        lines.append(line)
    return lines


def _events(state: WatchState, width: int | None) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    today = state.now.date()
    rows = []
    for e in state.events:
        when = f"{e.time:%H:%M:%S}" if e.time.date() == today else f"{e.time:%Y-%m-%d %H:%M}"
        step = "" if e.step is None else f"{e.step:,}"
        message = Text((e.message or "").replace("\n", " "))  # markup off: training output
        rows.append(
            (
                Text(when),
                Text(step),
                Text(e.kind, style=_SEVERITY_STYLE.get(e.severity, "")),
                message,
            )
        )
    headers = ("time (UTC)", "step", "kind", "message")
    if width is not None:  # one line an event on a terminal: the message gives way
        fixed = sum(max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(headers[:3]))
        for r in rows:
            r[3].truncate(max(width - fixed - 2, 10), overflow="ellipsis")
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, justify="right" if header == "step" else "left", no_wrap=True)
    for r in rows:
        table.add_row(*r)
    return table


# values as people read them -----------------------------------------------------------------


def _sparkline(values: list[float]) -> str:
    """One block a point, low to high over the points shown; × for NaN or infinity."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append("×")
        elif high == low:
            out.append(_BLOCKS[0])
        else:
            out.append(_BLOCKS[round((v - low) / (high - low) * (len(_BLOCKS) - 1))])
    return "".join(out)


def _change(values: list[float]) -> str:
    """Last minus first of the points shown, and in percent of the first."""
    if len(values) < 2 or values[0] is None or values[-1] is None:
        return ""
    first, last = values[0], values[-1]
    if not (math.isfinite(first) and math.isfinite(last)):
        return "not finite"
    change = f"{last - first:+.3g}"
    if first != 0:
        change += f" ({100 * (last - first) / abs(first):+.1f}%)"
    return change


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:,.5g}" if abs(value) < 1e5 else f"{value:,.0f}"


def _duration(seconds: float | None) -> str:
    """45s, 12m 30s, 8h 52m, 3d 4h."""
    if seconds is None:
        return "?"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _ago(state: WatchState, when: datetime) -> str:
    return f"{_duration((state.now - when).total_seconds())} ago"


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}%"


def _watts(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value / 1000:,.2f} kW" if value >= 10_000 else f"{value:.0f} W"


def _celsius(value: float | None) -> str:
    return "? °C" if value is None else f"{value:.0f} °C"


def _bytes(value: float | None) -> str:
    if value is None:
        return "?"
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value / 1024:.0f} KiB"


def _memory(used: float | None, total: float | None) -> str:
    if used is None:
        return "?"
    if not total:
        return _bytes(used)
    return f"{_bytes(used)} of {_bytes(total)} ({100 * used / total:.0f}%)"


COMMANDS = [watch]
