"""The README keeps its promises (#7): every query of its SQL cookbook runs on the store `logbook
demo` leaves and answers; every command of its command table exists, and every command is in it;
every logbook.toml key it documents is one logbook reads. And the examples parse: the shell
scripts, the Kubernetes manifest and the logbook.toml.

The queries, commands and keys are read from README.md itself, between its `<!-- cookbook -->`,
`<!-- commands -->` and `<!-- toml-reference -->` markers, so the README and this test cannot drift.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from logbook.settings import find_store, load_toml
from logbook.store import MARKER

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXAMPLES = ROOT / "examples"

# Queries whose answer may be empty on the demo's store, why, and a query that says when it may
# not be: if the demo's store has rows of that kind, the cookbook's query must find them.
MAY_BE_EMPTY: dict[str, tuple[str, str | None]] = {
    "Hottest GPUs": (
        "the demo trains on the CPU; a machine with no GPU has no gpu samples",
        "select 1 from samples where scope = 'gpu'",
    ),
    "Hosts with the most hardware faults": (
        "nothing to fault without a GPU (ECC counters, Xid lines) unless one is added by hand",
        "select 1 from events where kind = 'hardware_fault'",
    ),
    "Packages that changed from the parent attempt": (
        "the demo's attempts all run in one environment",
        None,
    ),
    "How each host of a launch over several ended": (
        "the demo runs on one host: a lone wrapper writes no nodes rows",
        "select 1 from nodes",
    ),
}


def _section(name: str) -> str:
    """The README between `<!-- name -->` and `<!-- /name -->`."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    assert README.count(start) == 1 and README.count(end) == 1, f"README needs one {start}...{end}"
    return README.split(start, 1)[1].split(end, 1)[0]


def _fenced(text: str, lang: str) -> list[str]:
    """The bodies of the ```lang blocks in text, indented ones (in a list item) too."""
    blocks = re.findall(rf"^[ ]*```{lang}\n(.*?)^[ ]*```", text, flags=re.MULTILINE | re.DOTALL)
    return [textwrap.dedent(b) for b in blocks]


def cookbook() -> list[tuple[str, list[str]]]:
    """(title, argv) of each `$ logbook query ...` in the cookbook, argv split as a shell would."""
    out: list[tuple[str, list[str]]] = []
    title = None
    lines = iter(_section("cookbook").splitlines())
    in_console = False
    for line in lines:
        if line.startswith("### "):
            title = line[4:].strip()
        elif line.startswith("```"):
            in_console = line == "```console" and not in_console
        elif in_console and line.startswith("$ logbook query"):
            command = line[2:]
            while True:
                try:
                    argv = shlex.split(command)
                    break
                except ValueError:  # the quoted SQL goes on over the next lines
                    command += "\n" + next(lines)
            assert title is not None, f"a query before the first heading: {command}"
            out.append((title, argv))
    return out


def readme_commands() -> list[tuple[str, ...]]:
    """The commands of the README's command table: ('run',), ('event', 'add'), ..."""
    out = []
    for line in _section("commands").splitlines():
        m = re.match(r"\| `logbook ([^`]*)`", line)
        if m:
            words = []
            for word in m.group(1).split():
                if not re.fullmatch(r"[a-z][a-z-]*", word):
                    break
                words.append(word)
            out.append(tuple(words))
    return out


def cli_commands() -> list[tuple[str, ...]]:
    """Every command the CLI has, a group's as (group, command)."""
    import click

    from logbook.cli import cli

    out: list[tuple[str, ...]] = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        if isinstance(command, click.Group):
            out.extend((name, sub) for sub in command.commands)
        else:
            out.append((name,))
    return out


# The cookbook ---------------------------------------------------------------------------------


@pytest.fixture
def demo_store(demo_run: tuple[Path, str]) -> Path:
    """The store `logbook demo --out DIR` leaves (the session's demo, tests/conftest.py)."""
    out, _ = demo_run
    markers = sorted(out.rglob(MARKER))
    assert len(markers) == 1, f"one store expected under {out}: {markers}"
    return markers[0].parent


def _rows(invoke: Any, store: Path, argv: list[str]) -> list[dict[str, Any]]:
    assert argv[:2] == ["logbook", "query"], argv
    result = invoke([*argv[1:], "--store", str(store), "--format", "json"])
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_the_cookbook_has_its_queries() -> None:
    titles = [title for title, _ in cookbook()]
    assert len(titles) >= 12, titles
    assert len(titles) == len(set(titles)), "one query per heading, each heading once"
    assert set(MAY_BE_EMPTY) <= set(titles), "MAY_BE_EMPTY names a query the README no longer has"


@pytest.mark.parametrize("argv", [argv for _, argv in cookbook()], ids=[t for t, _ in cookbook()])
def test_each_query_pastes_into_a_shell(argv: list[str]) -> None:
    """The SQL sits in double quotes: nothing in it may end them or be expanded by the shell."""
    sql = argv[2]
    assert not re.search(r'["`!]|\$[\w{(@*#?$!-]', sql), sql


# A first look -----------------------------------------------------------------------------------

# Columns whose values depend on the machine and the moment (times, durations, Python's version).
VARIES = {"time", "first_start", "last_end", "wall_s", "time_lost_s", "hung_s", "downtime_s"}
VARIES |= {"mtbf_s", "python"}


def first_look() -> list[tuple[list[str], list[list[str]]]]:
    """(argv, rows with the header first) of each command in the README's "A first look"."""
    block = _fenced(README.split("## A first look\n", 1)[1], "console")[0]
    out: list[tuple[list[str], list[list[str]]]] = []
    for part in block.split("$ ")[1:]:
        command, *lines = part.strip("\n").split("\n")
        if "--format csv" in command:
            rows = list(csv.reader(lines))
        else:  # a table: the header, a rule, then rows
            rows = [[c.strip() for c in line.split("|")] for line in lines if line.strip()]
            del rows[1]
        out.append((shlex.split(command), rows))
    return out


def test_the_first_look_is_what_the_demo_answers(demo_store: Path, invoke: Any) -> None:
    """#17: the README showed a hang summary the demo no longer printed."""
    looks = first_look()
    assert len(looks) >= 5
    for argv, rows in looks:
        assert argv[0] == "logbook", argv
        args = [a for a in argv[1:] if a not in ("--format", "csv")]
        got = list(csv.reader(io.StringIO(invoke([*args, "--store", str(demo_store), "--format",
                                                   "csv"]).stdout)))  # fmt: skip
        assert got[0] == rows[0], f"{argv}: columns"
        keep = [i for i, name in enumerate(got[0]) if name not in VARIES]
        assert [[r[i] for i in keep] for r in got[1:]] == [
            [r[i] for i in keep] for r in rows[1:]
        ], argv


@pytest.mark.parametrize(("title", "argv"), cookbook(), ids=[t for t, _ in cookbook()])
def test_each_query_answers_on_the_demo_store(
    title: str, argv: list[str], demo_store: Path, invoke: Any
) -> None:
    rows = _rows(invoke, demo_store, argv)
    if rows:
        return
    assert title in MAY_BE_EMPTY, f"{title}: no rows on the demo's store"
    _why, when_not = MAY_BE_EMPTY[title]
    if when_not is not None:
        present = _rows(invoke, demo_store, ["logbook", "query", when_not])
        assert not present, f"{title}: the store has such rows, the query found none"


# The commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize("words", readme_commands(), ids=" ".join)
def test_each_command_in_the_readme_exists(words: tuple[str, ...], invoke: Any) -> None:
    result = invoke([*words, "-h"])
    usage = result.stdout.splitlines()[0]  # "Usage: cli event add [OPTIONS] ..." in-process
    assert f" {' '.join(words)} " in usage, usage


def test_every_command_is_in_the_readme() -> None:
    documented = set(readme_commands())
    missing = [" ".join(c) for c in cli_commands() if c not in documented]
    assert not missing, f"commands missing from the README's command table: {missing}"


# logbook.toml ---------------------------------------------------------------------------------

# The tables logbook reads: [store] (logbook/settings.py), [run], [crash] and [detectors]
# (logbook/cli/commands_run.py), [hooks] (logbook/supervisor/hook_runner.py), [cost] and [compute]
# (logbook/cost/settings.py). Every other table would be ignored, so documenting one is a mistake.
TABLES = {"store", "run", "hooks", "crash", "detectors", "cost", "compute"}


def _check_loads(path: Path) -> dict[str, Any]:
    """Load a logbook.toml through logbook's loaders, each strict about the keys of its table, as
    `logbook run`, `logbook cost` and `logbook chronicle` read it; the working directory must hold
    what its [run] and [hooks] name."""
    from logbook.cli.commands_run import resolve_run_settings
    from logbook.cost import resolve_settings

    config = load_toml(path)
    assert set(config) <= TABLES, f"tables logbook does not read: {set(config) - TABLES}"
    assert set(config.get("store", {})) <= {"path"}, config["store"]
    resolve_run_settings({}, config, (), path)  # [run], [hooks], [[crash.rule]], [detectors]
    resolve_settings({}, config, path)  # [cost], [compute]
    root, source = find_store(cwd=path.parent, env={})
    if "path" in config.get("store", {}):
        assert source == str(path) and root.is_absolute()
    return config


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with logbook's hooks/ and the files a [run] table may name."""
    (tmp_path / "hooks").symlink_to(ROOT / "hooks")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _provide_run_files(project: Path, config: dict[str, Any]) -> None:
    run = config.get("run", {})
    for key, text in (("config", "optim:\n  lr: 3.0e-4\n"), ("data-mix", "web: 0.7\ncode: 0.3\n")):
        if key in run:
            (project / run[key]).write_text(text)


def _keys(config: dict[str, Any]) -> set[tuple[str, str]]:
    keys = set()
    for table, value in config.items():
        if table == "crash":
            keys |= {("crash.rule", k) for rule in value["rule"] for k in rule}
        else:
            keys |= {(table, k) for k in value}
    return keys


def _documented_keys() -> set[tuple[str, str]]:
    keys, table = set(), None
    for line in _section("toml-reference").splitlines():
        heading = re.match(r"### `\[\[?([\w.]+)\]\]?`", line)
        if heading:
            table = heading.group(1)
        row = re.match(r"\| `([\w-]+)` \|", line)
        if row and table:
            keys.add((table, row.group(1)))
    return keys


def test_the_toml_reference_shows_every_key_it_documents(project: Path) -> None:
    (block,) = _fenced(_section("toml-reference"), "toml")
    path = project / "logbook.toml"
    path.write_text(block)
    assert _keys(load_toml(path)) == _documented_keys()


def test_every_key_in_the_toml_reference_is_one_logbook_reads(project: Path) -> None:
    (block,) = _fenced(_section("toml-reference"), "toml")
    path = project / "logbook.toml"
    path.write_text(block)
    config = load_toml(path)
    _provide_run_files(project, config)
    assert _check_loads(path) == config


@pytest.mark.parametrize("block", _fenced(README, "toml"))
def test_every_toml_snippet_in_the_readme_loads(block: str, project: Path) -> None:
    path = project / "logbook.toml"
    path.write_text(block)
    _provide_run_files(project, load_toml(path))
    _check_loads(path)


# The examples ---------------------------------------------------------------------------------


def test_the_example_logbook_toml_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # its hooks are found from the repository's root
    config = _check_loads(EXAMPLES / "logbook.toml")
    assert {"store", "run", "hooks", "crash", "detectors", "cost"} <= set(config)


@pytest.mark.parametrize("script", ["slurm/train.sbatch", "torchrun.sh"])
def test_the_example_scripts_parse(script: str) -> None:
    path = EXAMPLES / script
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "logbook run --run" in path.read_text()


def test_the_kubernetes_example_is_an_indexed_job_with_the_launch_variables() -> None:
    docs = list(yaml.safe_load_all((EXAMPLES / "kubernetes" / "job.yaml").read_text()))
    (job,) = [d for d in docs if d["kind"] == "Job"]
    assert job["spec"]["completionMode"] == "Indexed"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert {"LOGBOOK_LAUNCH_ID", "LOGBOOK_NODE_RANK", "LOGBOOK_NODES"} <= set(env)
    assert env["LOGBOOK_NODE_RANK"]["value"] == "$(JOB_COMPLETION_INDEX)"
    assert int(env["LOGBOOK_NODES"]["value"]) == job["spec"]["completions"]
    assert container["command"][:2] == ["logbook", "run"] and container["command"][-1] == "--"


# logbook and torchrun as this environment has them, first on the PATH of the example scripts.
_PATH = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.mark.skipif(shutil.which("torchrun", path=_PATH) is None, reason="torch is not installed")
def test_torchrun_workers_wrapped_one_by_one_record_one_attempt(tmp_path: Path) -> None:
    """The example's --no-python -- logbook run: each worker a wrapper, one attempt between them."""
    (tmp_path / "tiny.py").write_text(
        "for i in range(1, 21):\n    print(f'step={i} loss={1 / i:.3f}', flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBOOK_")}
    env.update(PATH=_PATH, NPROC_PER_NODE="2", TRAIN="tiny.py")
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "torchrun.sh"), "per-worker"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    from logbook.query import run_sql
    from logbook.store import Store

    store = Store.open(tmp_path / ".logbook")
    attempts = run_sql(store, "select label, status from attempts").to_pylist()
    assert attempts == [{"label": "1.00", "status": "completed"}]
    nodes = run_sql(store, "select node, nodes from nodes order by node").to_pylist()
    assert nodes == [{"node": 0, "nodes": 2}, {"node": 1, "nodes": 2}]
