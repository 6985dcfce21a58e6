"""The CLI through its front door: exit codes, messages, formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_run_then_runs_show_query(invoke, store_path: Path, train_script: Path) -> None:
    r = invoke(
        ["run", "--store", str(store_path), "--run", "gpt-small", "--", "python", str(train_script)]
    )
    assert "step=4 loss=0.4000" in r.stdout and r.stdout.rstrip().endswith("done")

    runs = json.loads(invoke(["runs", "--store", str(store_path), "--format", "json"]).stdout)
    assert [(r["run"], r["attempts"], r["latest_status"]) for r in runs] == [
        ("gpt-small", 1, "completed")
    ]
    assert runs[0]["first_start"].endswith("+00:00") and runs[0]["wall_s"] > 0

    show = json.loads(
        invoke(["show", "gpt-small", "--store", str(store_path), "--format", "json"]).stdout
    )
    assert [(a["label"], a["parent"], a["status"], a["exit"]) for a in show] == [
        ("1.00", None, "completed", "0")
    ]

    sql = "select label, status, exit_code, duration_s from attempts where run = 'gpt-small'"
    csv = invoke(["query", sql, "--store", str(store_path), "--format", "csv"]).stdout.splitlines()
    assert csv[0] == "label,status,exit_code,duration_s"
    assert csv[1].startswith("1.00,completed,0,")


def test_table_format_when_piped_keeps_whole_values(invoke, store_path: Path) -> None:
    invoke(
        [
            "run",
            "--store",
            str(store_path),
            "--run",
            "a-rather-long-run-name-for-the-table",
            "--",
            "true",
        ]
    )
    out = invoke(["runs", "--store", str(store_path)]).stdout
    assert "a-rather-long-run-name-for-the-table" in out  # not folded across lines
    assert "\x1b[" not in out  # no colour on a pipe


def test_markdown_and_jsonl(invoke, store_path: Path) -> None:
    invoke(["run", "--store", str(store_path), "--run", "md", "--", "true"])
    md = invoke(
        [
            "query",
            "select run, status from attempts",
            "--store",
            str(store_path),
            "--format",
            "markdown",
        ]
    ).stdout
    assert md.splitlines()[:3] == ["| run | status |", "|---|---|", "| md | completed |"]
    jl = invoke(
        [
            "query",
            "select 1 as a union all select 2",
            "--store",
            str(store_path),
            "--format",
            "jsonl",
        ]
    ).stdout
    assert [json.loads(line)["a"] for line in jl.splitlines()] == [1, 2]


def test_bad_sql_is_exit_2_with_duckdb_message(invoke, store_path: Path) -> None:
    invoke(["run", "--store", str(store_path), "--run", "x", "--", "true"])
    r = invoke(["query", "selec nothing", "--store", str(store_path)], code=2)
    assert r.stderr.startswith("Error: Parser Error") and "Traceback" not in r.stderr
    r = invoke(["query", "select nope from attempts", "--store", str(store_path)], code=2)
    assert "nope" in r.stderr and "Traceback" not in r.stderr


def test_unknown_run_names_close_ones(invoke, store_path: Path) -> None:
    invoke(["run", "--store", str(store_path), "--run", "opt-175b", "--", "true"])
    r = invoke(["show", "opt-175", "--store", str(store_path)], code=1)
    assert r.stderr.strip() == (
        f'Error: no run "opt-175" in {store_path} (did you mean: opt-175b); see "logbook runs"'
    )


def test_missing_store_is_a_clear_error(invoke, tmp_path: Path) -> None:
    r = invoke(["runs", "--store", str(tmp_path / "nowhere")], code=1)
    assert "no logbook store at" in r.stderr and "Traceback" not in r.stderr


def test_missing_command_is_usage_error(invoke, store_path: Path) -> None:
    r = invoke(["run", "--store", str(store_path), "--"], code=2)
    assert "Missing argument" in r.stderr


def test_run_names_that_escape_the_store_are_refused(
    invoke, store_path: Path, tmp_path: Path
) -> None:
    for bad in ["../evil", "a/b", "..", "x\ny", ".hidden", "a..b", ""]:
        r = invoke(["run", "--store", str(store_path), "--run", bad, "--", "true"], code=1)
        assert "is not allowed" in r.stderr, bad
    assert not (tmp_path / "evil").exists()
    invoke(["run", "--store", str(store_path), "--run", "fine", "--", "true"])
    r = invoke(["show", "../x", "--store", str(store_path)], code=1)
    assert "is not allowed" in r.stderr


def test_help_is_short_flag_too(invoke) -> None:
    assert "Run SQL" in invoke(["query", "-h"]).stdout


def _every_command() -> list[tuple[str, ...]]:
    """Every command and group of the CLI, and each command of a group."""
    import click

    from logbook.cli import cli

    ctx = click.Context(cli)
    out: list[tuple[str, ...]] = []
    for name in cli.list_commands(ctx):
        out.append((name,))
        command = cli.get_command(ctx, name)
        if isinstance(command, click.Group):
            out.extend((name, sub) for sub in command.commands)
    return out


@pytest.mark.parametrize("words", _every_command(), ids=" ".join)
def test_each_commands_help_shows_an_example(words: tuple[str, ...], invoke) -> None:
    lines = invoke([*words, "--help"]).stdout.splitlines()
    examples = [line.strip() for line in lines if line.strip().startswith("logbook ")]
    command = f"logbook {' '.join(words)}"
    assert any(e == command or e.startswith(f"{command} ") for e in examples), lines
