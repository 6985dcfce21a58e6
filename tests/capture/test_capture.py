"""End-to-end tests for capture_launch: every part together, never raising, never leaking."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from logbook.capture import capture_launch
from logbook.record.redact import REDACTED

Git = Callable[..., str]
KINDS = ["command", "git", "python", "package", "env", "host", "gpu", "launcher"]
HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"
PLAIN_SECRET = "correct-horse-battery"  # no token format: only its name gives it away
ARG_SECRET = "argument-secret-42"


def check_rows(rows: list[dict[str, str | None]]) -> None:
    """Every row has the schema's shape and a coherent status."""
    for row in rows:
        assert set(row) == {"kind", "name", "value", "status", "detail"}
        assert row["kind"] in KINDS
        assert isinstance(row["name"], str) and row["name"]
        assert row["value"] is None or isinstance(row["value"], str)
        assert row["status"] in ("ok", "unknown", "redacted", "truncated")
        assert (row["value"] is None) == (row["status"] == "unknown")
        if row["status"] in ("unknown", "redacted", "truncated"):
            assert row["detail"]


def test_full_snapshot(git_repo: Path, run_git: Git) -> None:
    run_git(git_repo, "remote", "add", "origin", f"https://me:{HF}@huggingface.co/x/y")
    (git_repo / "train.py").write_text(f"lr = 0.2\npassword = '{PLAIN_SECRET}'\n")
    env = {
        "PATH": os.path.dirname(sys.executable),
        "HF_TOKEN": HF,
        "DB_PASSWORD": PLAIN_SECRET,
        "NOTE": f"token is {HF}",
        "LR": "0.2",
        "RANK": "0",
        "GROUP_RANK": "0",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
    }
    command = ["python", "train.py", "--api-key", ARG_SECRET, "--lr", "0.2"]
    rows = capture_launch(command, env, git_repo)
    check_rows(rows)
    kinds = [row["kind"] for row in rows]
    assert sorted(set(kinds), key=kinds.index) == KINDS
    values = {(row["kind"], row["name"]): row for row in rows}
    assert json.loads(values["command", "argv"]["value"] or "") == [
        "python",
        "train.py",
        "--api-key",
        REDACTED,
        "--lr",
        "0.2",
    ]
    assert values["command", "cwd"]["value"] == str(git_repo)
    assert values["git", "remote"]["value"] == "https://huggingface.co/x/y"
    assert values["git", "dirty"]["value"] == "true"
    assert values["env", "LR"] == {
        "kind": "env",
        "name": "LR",
        "value": "0.2",
        "status": "ok",
        "detail": None,
    }
    assert values["env", "HF_TOKEN"]["value"] == REDACTED
    assert values["env", "NOTE"]["value"] == f"token is {REDACTED}"
    assert values["env", "NOTE"]["detail"] == "token-like value"
    assert values["python", "inspected_via"]["value"] == "command"
    assert values["launcher", "kind"]["value"] == "torchrun"
    assert values["host", "memory_bytes"]["status"] == "ok"
    text = json.dumps(rows)
    for secret in (HF, PLAIN_SECRET, ARG_SECRET):
        assert secret not in text


def test_secret_values_are_scrubbed_everywhere(tmp_path: Path, run_git: Git) -> None:
    # A secret with no token format, pasted into a tracked file, in an unrelated
    # argument and in a directory name: known from its variable's name only.
    run_git(tmp_path, "init", "-q")
    (tmp_path / "config.yaml").write_text(f"endpoint: x\nnote: {PLAIN_SECRET}\n")
    run_git(tmp_path, "add", ".")
    env = {"PATH": "", "SERVICE_CREDENTIALS": PLAIN_SECRET}
    rows = capture_launch(["train", f"--name={PLAIN_SECRET}"], env, tmp_path)
    check_rows(rows)
    assert PLAIN_SECRET not in json.dumps(rows)
    diff = next(row for row in rows if row["name"] == "diff")
    assert "+note: ***" in (diff["value"] or "")
    assert diff["status"] == "redacted"


@pytest.mark.parametrize(
    ("command", "env"),
    [
        (["python", "train.py"], {"PATH": ""}),
        (["no-such-program", "--token", "x"], {}),
        ([], {}),
    ],
)
def test_never_raises(tmp_path: Path, command: list[str], env: dict[str, str]) -> None:
    rows = capture_launch(command, env, tmp_path / "does" / "not" / "exist")
    check_rows(rows)
    values = {(row["kind"], row["name"]): row for row in rows}
    assert values["git", "repository"]["status"] == "unknown"
    assert values["gpu", "count"]["status"] in ("ok", "unknown")
    assert values["python", "inspected_via"]["value"] == "wrapper"
    assert values["launcher", "kind"]["value"] == "none"


def test_bad_input_gives_rows_not_errors(tmp_path: Path) -> None:
    # Wrong types from a careless caller still give rows.
    rows = capture_launch(None, {"PATH": ""}, tmp_path)  # type: ignore[arg-type]
    check_rows(rows)
    assert rows[0]["status"] == "unknown"
    assert rows[0]["detail"] == "capture failed: TypeError"
