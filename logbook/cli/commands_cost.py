"""logbook cost."""

from __future__ import annotations

import math
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from logbook.cli.options import format_option, read_store, store_option, wait_option
from logbook.cli.render import render, text_width

if TYPE_CHECKING:
    import pyarrow as pa


@click.command()
@click.argument("run_name", metavar="RUN")
@click.option(
    "--gpu-price",
    metavar="USD",
    help="Price of one GPU-hour, over the price `logbook run --gpu-price` recorded, "
    "logbook.toml's [cost] gpu-price and the shipped price table.",
)
@click.option(
    "--pue",
    metavar="X",
    help="Power usage effectiveness of the data centre, 1.0 or more. "
    "Default: [cost] pue, else 1.56 (Uptime Institute 2024 industry average).",
)
@click.option(
    "--carbon-intensity",
    metavar="G_PER_KWH",
    help="Grid carbon intensity in gCO2e per kWh. "
    "Default: [cost] carbon-intensity, else 475 (world average, codecarbon from IEA 2019).",
)
@click.option(
    "--params",
    metavar="N",
    help="Model parameters for 6·N·D FLOPs, e.g. 7e9 or 7B. Default: [compute] params, "
    "else the attempt's config (params, n_params, num_parameters, model.params, ...).",
)
@click.option(
    "--tokens-per-step",
    metavar="N",
    help="Tokens per optimizer step (global batch × sequence length), e.g. 4M. "
    "Default: [compute] tokens-per-step, else the config (tokens_per_step, tokens_per_batch).",
)
@wait_option
@store_option
@format_option
def cost(
    run_name: str,
    gpu_price: str | None,
    pue: str | None,
    carbon_intensity: str | None,
    params: str | None,
    tokens_per_step: str | None,
    store: Path | None,
    fmt: str,
) -> None:
    """GPU-hours, money, energy, CO2, FLOPs and MFU of a run, by attempt and in total, each
    figure with its basis (measured or estimated, and from what).

    \b
        logbook cost gpt
        logbook cost gpt --gpu-price 2.10 --pue 1.1 --carbon-intensity 57 --format json
        logbook cost gpt --params 7B --tokens-per-step 4M
    """
    from logbook.cost import basis_notes, cost_report, resolve_settings
    from logbook.settings import find_config

    config_path, config = find_config()
    flags = {
        "gpu_price": gpu_price,
        "pue": pue,
        "carbon_intensity": carbon_intensity,
        "params": params,
        "tokens_per_step": tokens_per_step,
    }
    settings = resolve_settings(flags, config, config_path)
    report = cost_report(read_store(store, run_name), run_name, settings)
    if fmt not in ("table", "markdown"):
        render(report, fmt)
        return
    title = f"cost of {run_name}" if fmt == "table" else None
    render(_for_people(report), fmt, title=title, priority=COST_FIRST)
    notes = "".join(f"{line}\n" for line in _wrapped(basis_notes(report), text_width()))
    try:
        click.echo(f"\nBasis:\n{notes}", nl=False)
    except BrokenPipeError:  # `logbook cost gpt | head`: the reader had what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _wrapped(notes: list[str], width: int | None) -> list[str]:
    """The basis notes, indented, each wrapped to the table's width (whole when piped)."""
    import textwrap

    if width is None:
        return [f"  {note}" for note in notes]
    return [
        textwrap.fill(note, width, initial_indent="  ", subsequent_indent="    ") for note in notes
    ]


# Which columns a narrow terminal keeps first (the others follow in table order; --wide: all).
COST_FIRST = ("attempt", "status", "gpu_h", "cost_usd", "energy_kwh", "co2_kg", "mfu")


def _for_people(report: pa.Table) -> pa.Table:
    """The figures as text, "unknown" where one is null (the basis says why), no basis column."""
    import pyarrow as pa

    columns: dict[str, Any] = {}
    for name in report.column_names:
        if name == "basis":
            continue
        values = report.column(name).to_pylist()
        if name in ("attempt", "status"):
            columns[name] = pa.array(values, pa.string())
            continue
        attempts = report.column("attempt").to_pylist()
        columns[name] = pa.array(
            [
                _number(v) if v is not None else _blank(name, a)
                for v, a in zip(values, attempts, strict=True)
            ]
        )
    return pa.table(columns)


def _blank(figure: str, attempt: str) -> str:
    """A null figure: unknown, but for the total's GPUs, which are not summed."""
    return "" if figure == "gpus" and attempt == "total" else "unknown"


def _number(value: float | int | Decimal) -> str:
    if isinstance(value, Decimal):  # DuckDB's sums of integers
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 1e6 else str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e9 or abs(value) < 1e-4):
        return f"{value:.3e}"
    return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"


COMMANDS = [cost]
