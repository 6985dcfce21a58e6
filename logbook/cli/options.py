"""Options shared by several commands, written once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from logbook.cli.render import FORMATS, WIDE

F = TypeVar("F", bound=Callable[..., Any])


class _StoreParam(click.Path):
    """A store folder (a Path) or a remote store's URL (`s3://bucket/prefix`, kept a str: a Path
    would fold its '//'). No readable check: a store logbook cannot read must not stop `logbook
    run` before the training starts (it runs unrecorded and says so); readers report it."""

    def __init__(self) -> None:
        super().__init__(path_type=Path, readable=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from logbook.store.remote import is_url

        if isinstance(value, str) and is_url(value):
            return value
        return super().convert(value, param, ctx)


def store_option(f: F) -> F:
    return click.option(
        "--store",
        "store",
        type=_StoreParam(),
        default=None,
        help="Store folder, or a remote store's URL (s3://bucket/prefix). Default: "
        "LOGBOOK_STORE, else the nearest .logbook/ (or logbook.toml [store] path) walking up from "
        "here, else ./.logbook.",
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


class _Duration(click.ParamType):
    """A flag's duration ('90', '90s', '30m', '1h30m') in seconds. A bad one is a usage error, exit 2,
    as click's own value errors are (#17); the same value from logbook.toml is a ConfigError (1)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        from logbook.errors import ConfigError
        from logbook.settings import parse_duration

        try:
            return parse_duration(value)
        except ConfigError as e:
            self.fail(str(e).removeprefix("duration: "), param, ctx)


DURATION = _Duration()


def _keep_wide(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta[WIDE] = value


def open_store(path: Path | str | None, *, create: bool = False):  # type: ignore[no-untyped-def]
    """The store the options name (see store_option), opened; a remote one is read through this
    host's cache of it, brought up to date first (store/remote.py)."""
    from logbook.store import open_any

    return open_any(path, create=create)


def wait_option(f: F) -> F:
    """--no-wait for the commands that read metrics (kept in the context, as --wide is: the
    command's `read_store` reads it there)."""
    return click.option(
        "--no-wait",
        is_flag=True,
        expose_value=False,
        callback=_keep_no_wait,
        help="Answer at once, without waiting for the background parse of output a run's end "
        "left unparsed (its metrics and steps are then missing, and a warning says so).",
    )(f)


def _keep_no_wait(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta["logbook.no_wait"] = value


def read_store(path: Path | str | None, run: str | None = None):  # type: ignore[no-untyped-def]
    """open_store for a command that reads metrics: the background parses of `run` (None: of
    every run) are waited for first, and output left unparsed is named on stderr
    (record/unparsed.py)."""
    from logbook.record.unparsed import settle

    s = open_store(path)
    ctx = click.get_current_context(silent=True)
    wait = not (ctx is not None and ctx.meta.get("logbook.no_wait"))
    settle(s.root, run, wait=wait, say=lambda m: click.echo(m, err=True))
    return s
