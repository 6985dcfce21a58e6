"""logbook repro: the recipe of real attempts, recorded in a real git checkout, and its script run."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import git, logbook_cmd

from logbook.repro import GitState, Recipe, recipe
from logbook.store import Store

HF_TOKEN = "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345678"
API_KEY = "sk-live-9f8e7d6c5b4a3f2e1d0c"
# Shell that must stay one word: run unquoted, it would leave files named PWNED behind.
HOSTILE = ["; touch PWNED", "$(touch PWNED2)", "`touch PWNED3`"]
TRAIN = textwrap.dedent(
    """
    import json, os, sys
    STATE = "committed"
    with open("ran.json", "w") as out:
        json.dump({"argv": sys.argv[1:], "state": STATE, "foo": os.environ.get("FOO")}, out)
    print("step=1 loss=1.0")
    """
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without logbook's own variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBOOK_")}
    return {**env, **extra}


@dataclass
class Recorded:
    """Two attempts of run `r` in `store`, launched from `repo` (src/ as the working folder)."""

    store: Path
    repo: Path
    remote: Path
    commit: str
    settings: Path


def record_two_attempts(tmp: Path) -> Recorded:
    """Attempt 1.00 (lr 0.1, FOO=one, web 0.6) and 1.01 (lr 0.2, FOO=two, web 0.5), both with the
    same uncommitted change to src/train.py, in a checkout with a local bare remote."""
    remote, repo, settings = tmp / "remote.git", tmp / "repo", tmp / "settings"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    (repo / "src").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "src" / "train.py").write_text(TRAIN)
    (repo / ".gitignore").write_text("ran.json\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    train = repo / "src" / "train.py"
    train.write_text(train.read_text().replace('"committed"', '"uncommitted"'))

    (settings / "data").mkdir(parents=True)
    (settings / "data" / "shard-0.txt").write_text("tokens\n")
    store = tmp / ".logbook"
    for n, (lr, foo, web) in enumerate([("0.1", "one", 0.6), ("0.2", "two", 0.5)]):
        (settings / f"config-{n}.yaml").write_text(f"lr: {lr}\nbatch: 32\n")
        (settings / f"mix-{n}.yaml").write_text(
            f"web: {web}\ncode: {{weight: {1 - web:.1f}, tokens: 1000, path: data/}}\n"
        )
        args = ["run", "--store", str(store), "--run", "r"]
        args += ["--config", str(settings / f"config-{n}.yaml")]
        args += ["--data-mix", str(settings / f"mix-{n}.yaml")]
        args += ["--", sys.executable, "train.py", "--lr", lr, *HOSTILE]
        env = clean_env(FOO=foo, HF_TOKEN=HF_TOKEN, MY_API_KEY=API_KEY)
        done = subprocess.run(
            logbook_cmd(*args), cwd=repo / "src", env=env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode()
    commit = git(repo, "rev-parse", "HEAD").strip()
    return Recorded(store, repo, remote, commit, settings)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_two_attempts(tmp_path_factory.mktemp("repro"))


def test_recipe_reads_the_record(recorded: Recorded) -> None:
    r = recipe(Store.open(recorded.store), "r", "1.00")
    assert (r.run, r.label) == ("r", "1.00")
    assert r.git.commit == recorded.commit
    assert (r.git.branch, r.git.dirty, r.git.diff_status) == ("main", True, "ok")
    assert r.git.remote == str(recorded.remote) and r.git.root == str(recorded.repo)
    assert '+STATE = "uncommitted"' in (r.git.diff or "") and r.git.untracked == []
    assert r.python["version"] == ".".join(map(str, sys.version_info[:3]))
    assert r.packages["pyarrow"] and r.packages["click"]
    # logbook itself is installed editable here: not a pin (no index has it), but its source
    assert "training-logbook" not in r.packages
    assert r.packages_from_source["training-logbook"].startswith("editable file://")
    assert r.argv == [sys.executable, "train.py", "--lr", "0.1", *HOSTILE]
    assert not r.argv_redacted and r.cwd == str(recorded.repo / "src")
    assert r.env["FOO"] == "one"
    assert r.env_secret == ["HF_TOKEN", "MY_API_KEY"]
    assert "PATH" in r.env_skipped and "LOGBOOK_ATTEMPT" in r.env_skipped
    assert not any(name.startswith("LOGBOOK_") or name == "PATH" for name in r.env)
    assert r.config["path"] == str(recorded.settings / "config-0.yaml")
    assert len(r.config["sha256"]) == 64
    assert r.data_mix is not None and r.data_mix["web"]["weight"] == 0.6
    assert r.blockers == []
    assert r.missing == ["the values of secret variables (set them yourself): HF_TOKEN, MY_API_KEY"]


def test_text_names_commit_diff_packages_and_command(recorded: Recorded, invoke) -> None:  # type: ignore[no-untyped-def]
    out = invoke(["repro", "r", "1.01", "--store", str(recorded.store)]).output
    assert out.startswith("Re-create attempt 1.01 of run r (attempt id ")
    assert f"git clone {recorded.remote} && cd repo" in out
    assert f"git checkout --detach {recorded.commit}" in out
    assert "Apply the uncommitted changes (" in out and '+STATE = "uncommitted"' in out
    assert "pip install --no-deps" in out and "\n     pyarrow==" in out
    assert "Install these from their source yourself" in out and "training-logbook: editable" in out
    assert "export FOO=two" in out
    assert "Set these yourself (secret): HF_TOKEN, MY_API_KEY" in out
    assert "web weight 0.5" in out
    assert (
        f"Run the command in src: {shlex.join([sys.executable, 'train.py', '--lr', '0.2', *HOSTILE])}"
        in out
    )


def test_script_rebuilds_the_attempt(recorded: Recorded, invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "repro.sh"
    out = invoke(["repro", "r", "1.00", "--script", str(script), "--store", str(recorded.store)])
    assert (
        out.output == f"wrote {script}; run it as: {script} [--no-install] [--force] [CHECKOUT]\n"
    )
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("exec "))
    assert shlex.split(exec_line)[1:] == [sys.executable, "train.py", "--lr", "0.1", *HOSTILE]

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    done = subprocess.run(
        ["bash", str(script), "--no-install"],
        cwd=fresh,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    clone = fresh / "repo"
    assert git(clone, "remote", "get-url", "origin").strip() == str(recorded.remote)
    assert git(clone, "rev-parse", "HEAD").strip() == recorded.commit
    assert git(clone, "status", "--porcelain").strip() == "M src/train.py"
    ran = json.loads((clone / "src" / "ran.json").read_text())
    assert ran == {"argv": ["--lr", "0.1", *HOSTILE], "state": "uncommitted", "foo": "one"}
    assert not [p for p in fresh.rglob("PWNED*")] + [p for p in tmp_path.rglob("PWNED*")]
    assert "HF_TOKEN is not set" in done.stderr
    assert "the config file was outside the checkout" in done.stderr

    again = subprocess.run(
        ["bash", str(script), "--no-install", str(clone)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "has uncommitted changes" in again.stderr


def test_secrets_never_leave_the_store(recorded: Recorded, invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = ["--store", str(recorded.store)]
    script = tmp_path / "s.sh"
    outputs = [
        invoke(["repro", "r", "1.00", *base]).output,
        invoke(["repro", "r", "1.00", "--format", "json", *base]).output,
        invoke(["repro", "r", "1.00", "--script", "-", *base]).output,
        invoke(["diff", "r", "1.00", "1.01", "--format", "json", *base]).output,
    ]
    invoke(["repro", "r", "1.01", "--script", str(script), *base])
    outputs.append(script.read_text())
    for text in outputs:
        assert HF_TOKEN not in text and API_KEY not in text
        assert HF_TOKEN[3:20] not in text
    doc = json.loads(outputs[1])
    assert doc["env_secret"] == ["HF_TOKEN", "MY_API_KEY"] and "HF_TOKEN" not in doc["env"]
    assert doc["git"]["commit"] == recorded.commit and doc["blockers"] == []


def test_redacted_diff_stops_the_script(tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    repo, store = tmp_path / "repo", tmp_path / ".logbook"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print('step=1 loss=1')\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "train.py").write_text(f"TOKEN = {HF_TOKEN!r}\nprint('step=1 loss=1')\n")
    args = ["run", "--store", str(store), "--run", "leak", "--", sys.executable, "train.py"]
    done = subprocess.run(logbook_cmd(*args), cwd=repo, env=clean_env(), capture_output=True)
    assert done.returncode == 0, done.stderr

    r = recipe(Store.open(store), "leak", "1.00")
    assert r.git.diff_status == "redacted" and HF_TOKEN not in (r.git.diff or "")
    assert r.blockers == [
        "secrets in the recorded diff were replaced with ***, so it is not the code"
    ]
    assert "WARNING: secrets in the recorded diff were replaced with ***" in r.as_text()
    assert "no git remote on record: the script works in an existing checkout" in r.missing

    script = tmp_path / "repro.sh"
    invoke(["repro", "leak", "1.00", "--script", str(script), "--store", str(store)])
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(repo), str(work))
    stopped = subprocess.run(
        ["bash", str(script), "--no-install", str(work)], capture_output=True, text=True
    )
    assert stopped.returncode == 1
    assert "replaced with ***" in stopped.stderr and "rerun with --force" in stopped.stderr
    assert git(work, "status", "--porcelain") == ""  # stopped before touching anything
    forced = subprocess.run(
        ["bash", str(script), "--no-install", "--force", str(work)],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert forced.returncode == 0, forced.stderr
    assert "TOKEN = '***'" in (work / "train.py").read_text()


def test_unknown_run_or_label(recorded: Recorded, invoke) -> None:  # type: ignore[no-untyped-def]
    base = ["--store", str(recorded.store)]
    r = invoke(["repro", "nope", "1.00", *base], code=1)
    assert r.stderr.startswith('Error: no run "nope"') and "Traceback" not in r.stderr
    r = invoke(["repro", "r", "9.00", *base], code=1)
    assert r.stderr.startswith('Error: run "r" has no attempt 9.00 (it has: 1.00, 1.01)')
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_hostile_record_stays_quoted(tmp_path: Path) -> None:
    """Values are untrusted: a label with a newline, a variable full of shell, a diff holding the
    heredoc's first delimiter. The script parses, and the command gets each value exactly."""
    weird = 'a\'b\n$(touch PWNED) `touch PWNED2` "$HOME" ; touch PWNED3'
    show_env = "import json, os; print(json.dumps([os.environ['WEIRD'], os.getcwd()]))"
    r = Recipe(
        run="r",
        label="1.00\ntouch PWNED4",
        attempt_id="x",
        git=GitState(),
        python={},
        packages={},
        env={"WEIRD": weird},
        env_secret=[],
        env_truncated=[],
        env_skipped=[],
        argv=[sys.executable, "-c", show_env],
        argv_redacted=False,
        cwd=None,
        config={},
        data_mix={"web\ntouch PWNED5": {"weight": 1.0}},
        missing=[],
    )
    script = tmp_path / "s.sh"
    script.write_text(r.as_script())
    done = subprocess.run(
        ["bash", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,  # a line injected before the script's first cd would write here
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [weird, str(tmp_path)]
    assert not list(tmp_path.rglob("PWNED*"))
    assert "\x1b" not in Recipe(**{**r.__dict__, "label": "\x1b[31mred"}).as_text()

    with_diff = GitState(commit="0" * 40, diff="LOGBOOK_DIFF_0\n")
    text = Recipe(**{**r.__dict__, "git": with_diff}).as_script()
    assert "<<'LOGBOOK_DIFF_1'\nLOGBOOK_DIFF_0\nLOGBOOK_DIFF_1\n" in text


def test_the_store_is_not_an_untracked_file_and_the_session_is_not_exported(
    tmp_path: Path, invoke
) -> None:  # type: ignore[no-untyped-def]
    """The default store sits in the checkout (`.logbook/` where the user runs), and a terminal's
    environment is full of variables no training reads (#17)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text(TRAIN)
    (repo / ".gitignore").write_text("ran.json\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "notes.txt").write_text("mine\n")
    session = {
        "LS_COLORS": "rs=0:di=01;34",
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus",
        "TMUX": "/tmp/tmux-1000/default,1,0",
        "EDITOR": "vim",
        "COLORTERM": "truecolor",
        "WINDOWID": "123",
        "TERM_PROGRAM": "vscode",
        # the machine's tools, paths and trackers: no training reads them, or reads them to
        # find this machine's files
        "NVM_DIR": "/home/me/.nvm",
        "CONDA_DEFAULT_ENV": "base",
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
        "WANDB_PROJECT": "mine",
        "HTTPS_PROXY": "http://proxy:3128",
        "GITHUB_TOKEN": "ghp_" + "a" * 36,  # a CI runner's secret: not one to ask for
    }
    shaping = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "2"}
    env = clean_env(FOO="one", NCCL_DEBUG="INFO", **shaping, **session)
    done = subprocess.run(
        logbook_cmd("run", "--run", "r", "--", sys.executable, "train.py"),
        cwd=repo,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert (repo / ".logbook").is_dir()
    r = recipe(Store.open(repo / ".logbook"), "r", "1.00")
    assert r.git.untracked == ["notes.txt"]
    assert r.env["FOO"] == "one" and r.env["NCCL_DEBUG"] == "INFO"
    assert {k: r.env[k] for k in shaping} == shaping
    assert not set(session) & set(r.env), "session variables exported"
    assert set(session) <= set(r.env_skipped)
    assert r.env_secret == []
    text = invoke(["repro", "r", "1.00", "--store", str(repo / ".logbook")]).stdout
    assert ".logbook" not in text.split("Untracked files", 1)[-1].splitlines()[0]
    assert "export LS_COLORS" not in text and "export FOO=one" in text
