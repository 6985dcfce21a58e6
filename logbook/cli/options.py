"""Options shared by several commands, written once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from logbook.cli.render import FORMATS

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
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table for people (plain when piped); csv, json, jsonl or markdown for scripts.",
    )(f)


def open_store(path: Path | None, *, create: bool = False):  # type: ignore[no-untyped-def]
    """The store the options name (see store_option), opened."""
    from logbook.settings import find_store
    from logbook.store import Store

    root, source = find_store(path)
    return Store.open(root, create=create, source=source)
