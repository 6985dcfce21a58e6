"""Real things for the tests: a store folder, the CLI in-process and as a real subprocess, a trainer."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import logbook_cmd

from logbook.cli import cli
from logbook.store import Store


@pytest.fixture(autouse=True)
def _no_store_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOGBOOK_STORE", raising=False)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / ".logbook"


@pytest.fixture
def store(store_path: Path) -> Store:
    return Store.open(store_path, create=True)


def _invoke(args: list[str], *, code: int = 0, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in-process (capturing child processes too) and check its exit code."""
    result = CliRunner(capture="fd").invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == code, (
        f"exit {result.exit_code} != {code}\n{result.output}\n{result.stderr}"
    )
    return result


def _run_logbook(*args: str, check: int | None = None, **kw) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
    """`python -m logbook ARGS` as a real process (signals and exit codes are real)."""
    env = {**os.environ, **kw.pop("env", {})}
    proc = subprocess.run(
        logbook_cmd(*args), capture_output=True, env=env, timeout=kw.pop("timeout", 120), **kw
    )
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


TRAIN = textwrap.dedent(
    """
    import os, signal, sys, time
    mode = os.environ.get("TRAIN_MODE", "ok")
    steps = int(os.environ.get("TRAIN_STEPS", "5"))
    if mode == "trap":
        def on_term(sig, frame):
            print(f"got signal {sig}", flush=True)
            sys.exit(42)
        signal.signal(signal.SIGTERM, on_term)
    if mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for step in range(steps):
        print(f"step={step} loss={2.0 / (step + 1):.4f}")
        if mode == "raise" and step == 2:
            raise RuntimeError("boom at step 2")
    if mode in ("trap", "ignore", "sleep"):
        print("ready", flush=True)
        time.sleep(60)
    if mode == "exit":
        sys.exit(int(os.environ.get("TRAIN_EXIT", "3")))
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    print("done")
    """
)


@pytest.fixture
def train_script(tmp_path: Path) -> Path:
    """A tiny trainer that prints metrics and raises, exits, traps, ignores or dies when TRAIN_MODE asks."""
    path = tmp_path / "train.py"
    path.write_text(TRAIN)
    return path


@pytest.fixture
def invoke():  # type: ignore[no-untyped-def]
    """invoke(args, code=0): the CLI in-process via CliRunner(capture="fd")."""
    return _invoke


@pytest.fixture
def run_logbook():  # type: ignore[no-untyped-def]
    """run_logbook(*args, check=None, env={}, ...): `python -m logbook` as a real process."""
    return _run_logbook


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`python -m logbook demo --out DIR` once for the session (about 40 s): the folder and the
    demo's output. DIR holds an earlier demo's folders first, which the demo must replace."""
    import time

    out = tmp_path_factory.mktemp("demo") / "out"
    for name in (".logbook", "work", "chronicle"):
        (out / name).mkdir(parents=True)
        (out / name / "stale").write_text("from an earlier demo")
    (out / ".logbook-demo").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBOOK_")}
    began = time.monotonic()
    proc = subprocess.run(
        logbook_cmd("demo", "--out", str(out)),
        cwd=out.parent,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert time.monotonic() - began < 120  # about 40 s here
    return out, proc.stdout
