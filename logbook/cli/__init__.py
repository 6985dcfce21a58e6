"""The `logbook` command: parse, call one library function, render. No heavy imports here."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from logbook.errors import BadQuery, LogbookError
from logbook.exitcodes import ExitCode

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class _WarningHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"Warning: {record.getMessage()}", err=True)


class _Failure(click.ClickException):
    exit_code = ExitCode.ERROR


class _BadQueryFailure(_Failure):
    exit_code = ExitCode.USAGE


class _InternalFailure(_Failure):
    exit_code = ExitCode.INTERNAL


# Each command's module, imported only when the command runs: `logbook run` starts the training
# sooner without the page, watch and query modules (25-30 ms of imports). tests/test_cli_lazy.py
# holds this table equal to the modules' COMMANDS.
COMMAND_MODULES = {
    "run": "commands_run",
    "query": "commands_query",
    "runs": "commands_query",
    "show": "commands_query",
    "incidents": "commands_query",
    "metrics": "commands_query",
    "goodput": "commands_query",
    "stragglers": "commands_query",
    "note": "commands_events",
    "event": "commands_events",
    "events": "commands_events",
    "data-mix": "commands_events",
    "doctor": "commands_store",
    "compact": "commands_store",
    "push": "commands_store",
    "schema": "commands_schema",
    "import": "commands_import",
    "cost": "commands_cost",
    "repro": "commands_repro",
    "diff": "commands_repro",
    "reparse": "commands_reparse",
    "chronicle": "commands_chronicle",
    "watch": "commands_watch",
    "demo": "commands_demo",
    "hooks": "commands_hooks",
}


def command_of(name: str) -> click.Command | None:
    """The command called `name`, its module imported now; None for no such command."""
    module_name = COMMAND_MODULES.get(name)
    if module_name is None:
        return None
    module = importlib.import_module(f"logbook.cli.{module_name}")
    return next((c for c in module.COMMANDS if c.name == name), None)


class LogbookGroup(click.Group):
    """The one boundary: LogbookError -> 'Error: ...' (exit 1, bad SQL 2); a bug -> one line (exit 3)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return command_of(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        _route_warnings()
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BadQuery as e:
            raise _BadQueryFailure(str(e)) from e
        except LogbookError as e:
            raise _Failure(str(e)) from e
        except Exception as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            chain: list[str] = []
            cur: BaseException | None = e
            while cur is not None:
                chain.append(f"{type(cur).__name__}: {cur}")
                cur = cur.__cause__ or cur.__context__
            raise _InternalFailure(
                f"logbook failed: {' <- '.join(chain)} (rerun with --debug for the traceback)"
            ) from e


def _route_warnings() -> None:
    logger = logging.getLogger("logbook")
    if not any(isinstance(h, _WarningHandler) for h in logger.handlers):
        logger.addHandler(_WarningHandler())
        logger.setLevel(logging.WARNING)
        logger.propagate = False


@click.group(cls=LogbookGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="training-logbook", prog_name="logbook")
@click.option("--debug", is_flag=True, help="Show the full traceback when logbook itself fails.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """An open-training logbook: wrap a training command, record every attempt, query it with SQL.

    \b
        logbook run --run gpt-small -- python train.py --lr 3e-4
        logbook runs
        logbook show gpt-small
        logbook query "select label, status, exit_code from attempts"
    """
    ctx.ensure_object(dict)["debug"] = debug


_AT_ONCE = False
_CONSOLE = False  # the process is the console command's own (`main`), not a caller's


def console_process() -> bool:
    """Whether the command runs from the console entry, in a process of its own."""
    return _CONSOLE


def exit_at_once() -> None:
    """The command has closed everything it wrote and every thread it started: the process may
    end without the interpreter's teardown, which took 0.23 s after `logbook run` (freeing the
    modules and objects of pyarrow, numpy, DuckDB), a wait the job's exit does not need. Only
    from the console entry (`main`): a caller in the same process (tests, `CliRunner`) goes on."""
    global _AT_ONCE
    _AT_ONCE = True


def main() -> Any:
    """Console-script entry point."""
    global _CONSOLE
    _CONSOLE = True
    from logbook.supervisor.arrow_pool import leave_pandas_out

    # No command gives pandas objects to pyarrow, and pyarrow.dataset alone imported pandas:
    # 0.3 s of every reading command's start.
    leave_pandas_out()
    try:
        return cli(prog_name="logbook")
    except SystemExit as e:
        if not _AT_ONCE:
            raise
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        logging.shutdown()
        os._exit(code)
