"""The CLI imports a command's module only when that command runs."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import logbook.cli
from logbook.cli import COMMAND_MODULES, cli, command_of


def test_the_table_names_every_command_of_every_module_and_no_other() -> None:
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(logbook.cli.__path__):
        if not info.name.startswith("commands_"):
            continue
        module = importlib.import_module(f"logbook.cli.{info.name}")
        for command in module.COMMANDS:
            found[command.name] = info.name
    assert found == COMMAND_MODULES
    for name in COMMAND_MODULES:
        command = command_of(name)
        assert command is not None and command.name == name


def test_an_unknown_command_is_a_usage_error(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "logbook", "nosuch"], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 2
    assert "No such command 'nosuch'" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_does_not_import_the_other_commands(tmp_path) -> None:
    probe = (
        "import sys; from logbook.cli import cli\n"
        "try:\n"
        "    cli(['run', '--no-capture', '--', 'true'], prog_name='logbook')\n"
        "except SystemExit as e:\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith('logbook.cli.commands_'))\n"
        "    print(e.code, ','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"LOGBOOK_STORE": str(tmp_path / "store"), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.split() == ["0", "logbook.cli.commands_run"], out.stderr


def test_help_lists_every_command() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMAND_MODULES:
        assert f"  {name} " in result.output


def test_a_reading_command_loads_neither_pandas_nor_the_wrapper(tmp_path) -> None:
    # pyarrow.dataset imported pandas, and the lineage SQL of every query imported the whole
    # wrapper (its session): 0.45 s of each reading command's start together (#19).
    probe = (
        "import sys; from logbook.cli import main\n"
        "sys.argv = ['logbook', 'runs', '--format', 'json']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    heavy = ('pandas', 'logbook.supervisor.session')\n"
        "    print(e.code, [m for m in heavy if m in sys.modules], file=sys.stderr)\n"
    )
    env = {"LOGBOOK_STORE": str(tmp_path / "store"), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, "-m", "logbook", "run", "--run", "r", "--no-capture", "--", "true"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.stderr.splitlines()[-1] == "0 []", out.stderr
    assert [r["run"] for r in json.loads(out.stdout)] == ["r"]
