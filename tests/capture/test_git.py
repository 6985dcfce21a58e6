"""Tests for logbook.capture.git on real repositories made with the git CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from logbook.capture._row import Row
from logbook.capture.git import DIFF_CAP_BYTES, capture_git

Git = Callable[..., str]
TOKEN = "ghp_" + "Zz9" * 12


def by_name(rows: list[Row]) -> dict[str, Row]:
    assert all(row["kind"] == "git" for row in rows)
    return {row["name"]: row for row in rows}


def test_clean_repository(git_repo: Path, run_git: Git) -> None:
    rows = by_name(capture_git(git_repo))
    assert list(rows) == ["commit", "branch", "dirty", "diff", "untracked", "remote", "root"]
    assert rows["commit"]["value"] == run_git(git_repo, "rev-parse", "HEAD").strip()
    assert rows["branch"]["value"] == "main"
    assert rows["dirty"]["value"] == "false"
    assert rows["diff"] == {
        "kind": "git",
        "name": "diff",
        "value": "",
        "status": "ok",
        "detail": None,
    }
    assert rows["untracked"]["value"] == "[]"
    assert rows["remote"]["status"] == "unknown"
    assert rows["remote"]["detail"] == "no remote configured"
    assert rows["root"]["value"] == str(git_repo)


def test_found_from_a_subdirectory(git_repo: Path) -> None:
    sub = git_repo / "configs" / "deep"
    sub.mkdir(parents=True)
    rows = by_name(capture_git(sub))
    assert rows["root"]["value"] == str(git_repo)
    assert rows["untracked"]["value"] == "[]"  # empty directories are not untracked files


def test_staged_and_unstaged_changes_are_in_the_diff(git_repo: Path, run_git: Git) -> None:
    (git_repo / "train.py").write_text("lr = 0.05\n")
    run_git(git_repo, "add", "train.py")
    (git_repo / "README.md").write_text("# demo\nunstaged line\n")
    rows = by_name(capture_git(git_repo))
    assert rows["dirty"]["value"] == "true"
    diff = rows["diff"]["value"]
    assert diff is not None
    assert "-lr = 0.1\n+lr = 0.05" in diff
    assert "+unstaged line" in diff
    assert rows["diff"]["status"] == "ok"


def test_untracked_files(git_repo: Path) -> None:
    (git_repo / "notes.txt").write_text("x")
    (git_repo / "data").mkdir()
    for i in range(3):
        (git_repo / "data" / f"shard{i}.bin").write_bytes(b"\0")
    (git_repo / ".gitignore").write_text("*.log\n")
    (git_repo / "run.log").write_text("ignored")
    rows = by_name(capture_git(git_repo))
    assert json.loads(rows["untracked"]["value"] or "") == [".gitignore", "data/", "notes.txt"]
    # Untracked files alone do not make the tree dirty (as git describe --dirty).
    assert rows["dirty"]["value"] == "false"


def test_remote_credentials_never_appear(git_repo: Path, run_git: Git) -> None:
    run_git(git_repo, "remote", "add", "backup", "git@github.com:x/backup.git")
    run_git(git_repo, "remote", "add", "origin", f"https://user:{TOKEN}@github.com/x/y.git")
    rows = capture_git(git_repo)
    remote = by_name(rows)["remote"]
    assert remote["value"] == "https://github.com/x/y.git"
    assert remote["status"] == "redacted"
    for row in rows:
        assert TOKEN not in json.dumps(row)
        assert "user:" not in (row["value"] or "")


def test_first_remote_when_no_origin(git_repo: Path, run_git: Git) -> None:
    run_git(git_repo, "remote", "add", "upstream", "git@github.com:org/repo.git")
    remote = by_name(capture_git(git_repo))["remote"]
    assert (remote["value"], remote["status"]) == ("git@github.com:org/repo.git", "ok")


def test_token_in_diff_is_redacted(git_repo: Path) -> None:
    (git_repo / "train.py").write_text(f"lr = 0.1\nHF_TOKEN = '{TOKEN}'\n")
    diff = by_name(capture_git(git_repo))["diff"]
    assert TOKEN not in (diff["value"] or "")
    assert "+HF_TOKEN = '***'" in (diff["value"] or "")
    assert diff["status"] == "redacted"


def test_large_diff_is_truncated(git_repo: Path) -> None:
    line = "x = 1  # padding padding padding padding padding padding padding\n"
    (git_repo / "train.py").write_text(line * (DIFF_CAP_BYTES // len(line) + 1000))
    diff = by_name(capture_git(git_repo))["diff"]
    assert diff["status"] == "truncated"
    assert len((diff["value"] or "").encode()) <= DIFF_CAP_BYTES
    assert diff["detail"] is not None and diff["detail"].startswith(f"first {DIFF_CAP_BYTES} of")


def test_detached_head(git_repo: Path, run_git: Git) -> None:
    sha = run_git(git_repo, "rev-parse", "HEAD").strip()
    run_git(git_repo, "checkout", "-q", "--detach")
    branch = by_name(capture_git(git_repo))["branch"]
    assert branch["value"] is None
    assert branch["status"] == "unknown"
    assert branch["detail"] == f"detached HEAD at {sha}"


def test_not_a_repository(tmp_path: Path) -> None:
    assert capture_git(tmp_path) == [
        {
            "kind": "git",
            "name": "repository",
            "value": None,
            "status": "unknown",
            "detail": "not a git repository",
        }
    ]


def test_missing_directory(tmp_path: Path) -> None:
    rows = capture_git(tmp_path / "nope")
    assert [(r["name"], r["status"]) for r in rows] == [("repository", "unknown")]
    assert "does not exist" in (rows[0]["detail"] or "")


def test_repository_without_commits(tmp_path: Path, run_git: Git) -> None:
    run_git(tmp_path, "init", "-q", "-b", "trunk")
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "staged.py").write_text("staged = True\n")
    run_git(tmp_path, "add", "staged.py")
    rows = by_name(capture_git(tmp_path))
    assert rows["commit"]["status"] == "unknown"
    assert rows["commit"]["detail"] == "no commits yet"
    assert rows["branch"]["value"] == "trunk"
    assert "+staged = True" in (rows["diff"]["value"] or "")
    assert json.loads(rows["untracked"]["value"] or "") == ["train.py"]
    assert rows["dirty"]["value"] == "true"


def test_git_missing_from_path(git_repo: Path) -> None:
    # GitPython looks for git when first imported, so this needs a fresh interpreter.
    package_root = Path(capture_git.__code__.co_filename).parents[2]
    code = "import json, pathlib, sys; from logbook.capture.git import capture_git; "
    code += "print(json.dumps(capture_git(pathlib.Path(sys.argv[1]))))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(git_repo)],
        env={"PATH": "", "PYTHONPATH": str(package_root)},
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(done.stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("repository", "unknown")]
    assert rows[0]["detail"].startswith("git is not available")
