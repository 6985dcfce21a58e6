"""Options shared by several commands, written once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from logbook.cli.render import FORMATS, WIDE

F = TypeVar("F", bound=Callable[..., Any])


def store_option(f: F) -> F:
    return click.option(
        "--store",
        "store",
        # No readable check here: a store logbook cannot read must not stop `logbook run` before
        # the training starts (it runs unrecorded and says so); readers report it themselves.
        type=click.Path(path_type=Path, readable=False),
        default=None,
        help="Store folder. Default: LOGBOOK_STORE, else the nearest .logbook/ (or logbook.toml "
        "[store] path) walking up from here, else ./.logbook.",
    )(f)


def format_option(f: F) -> F:
    """--format, and --wide for the table (kept in the context: render reads it there, so no
    command has to pass it on)."""
    f = click.option(
        "--wide",
        is_flag=True,
        expose_value=False,
        callback=_keep_wide,
        help="Show every column of the table, whole, however wide the terminal.",
    )(f)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table for people, fitted to the terminal (plain when piped); csv, json, jsonl or "
        "markdown for scripts.",
    )(f)


def _keep_wide(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta[WIDE] = value


def open_store(path: Path | None, *, create: bool = False):  # type: ignore[no-untyped-def]
    """The store the options name (see store_option), opened."""
    from logbook.config import find_store
    from logbook.store import Store

    root, source = find_store(path)
    return Store.open(root, create=create, source=source)
