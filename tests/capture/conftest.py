"""Fixtures for capture tests: real git repositories and fake nvidia-smi executables."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import git


@pytest.fixture
def run_git() -> Callable[..., str]:
    """The `git` helper, for tests that build repositories of their own."""
    return git


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A repository with one commit (train.py, README.md) on branch main."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("lr = 0.1\n")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path) -> Callable[[str, int], dict[str, str]]:
    """Make an `nvidia-smi` that prints `output` and exits with `code`.

    Returns a function giving an environment whose PATH finds only that executable.
    """

    def make(output: str, code: int = 0) -> dict[str, str]:
        bin_dir = tmp_path / "fake-bin"
        bin_dir.mkdir(exist_ok=True)
        script = bin_dir / "nvidia-smi"
        script.write_text(
            f"#!{sys.executable}\nimport sys\nsys.stdout.write({output!r})\nsys.exit({code})\n"
        )
        script.chmod(0o755)
        return {"PATH": str(bin_dir), "HOME": str(tmp_path)}

    return make
