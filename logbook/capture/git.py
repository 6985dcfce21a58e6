"""Git state at launch: commit, branch, dirtiness, diff, untracked files, remote, root."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from logbook.capture._row import Row, make_row, unknown
from logbook.record.redact import redact_text, redact_url

KIND = "git"
DIFF_CAP_BYTES = 2 * 1024 * 1024
UNTRACKED_CAP = 1000
# git on a slow network filesystem can take a while; it must not hold the snapshot forever.
GIT_TIMEOUT_S = 30.0


def capture_git(cwd: Path) -> list[Row]:
    """Describe the git repository containing `cwd` (searching parent directories).

    Args:
        cwd: the directory the command runs in.

    Returns:
        Rows named commit, branch, dirty, diff, untracked, remote and root; or one
        row named repository with status unknown when there is no repository or
        git cannot be run.
    """
    try:
        # GitPython runs `git --version` on import, so it is imported only when needed.
        import git
    except ImportError as exc:
        return [unknown(KIND, "repository", f"git is not available: {exc}")]
    if not cwd.is_dir():
        return [unknown(KIND, "repository", f"directory does not exist: {cwd}")]
    try:
        repo = git.Repo(cwd, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return [unknown(KIND, "repository", "not a git repository")]
    with repo:
        if repo.working_tree_dir is None:
            return [unknown(KIND, "repository", f"bare repository: {repo.git_dir}")]
        root = Path(repo.working_tree_dir)
        rows = [_commit(repo), _branch(repo), _dirty(repo)]
        rows += [_diff(repo, root), _untracked(repo, root), _remote(repo)]
        rows.append(make_row(KIND, "root", str(root)))
    return rows


def _guard(name: str, func: Callable[[], Row]) -> Row:
    """Run one probe; a git error becomes an unknown row instead of losing the others."""
    try:
        row: Row = func()
    except Exception as exc:  # noqa: BLE001 - any git failure is "unknown", never a crash
        return unknown(KIND, name, f"{type(exc).__name__}: {exc}")
    return row


def _has_commits(repo: Any) -> bool:
    """Tell whether HEAD points at a commit (a fresh `git init` has none)."""
    try:
        repo.head.commit  # noqa: B018 - raises ValueError on an unborn branch
    except ValueError:
        return False
    return True


def _commit(repo: Any) -> Row:
    if not _has_commits(repo):
        return unknown(KIND, "commit", "no commits yet")
    return _guard("commit", lambda: make_row(KIND, "commit", repo.head.commit.hexsha))


def _branch(repo: Any) -> Row:
    def read() -> Row:
        if repo.head.is_detached:
            return unknown(KIND, "branch", f"detached HEAD at {repo.head.commit.hexsha}")
        return make_row(KIND, "branch", repo.active_branch.name)

    return _guard("branch", read)


def _dirty(repo: Any) -> Row:
    # Untracked files have their own row; "dirty" means tracked changes, as git describe.
    return _guard(
        "dirty", lambda: make_row(KIND, "dirty", str(repo.is_dirty(untracked_files=False)).lower())
    )


def _run_capped(repo: Any, args: list[str], root: Path, cap: int) -> tuple[bytes, int]:
    """Run git with output going to a temporary file, and read back at most `cap` bytes.

    A diff of regenerated data files can be gigabytes; a file keeps memory flat and a
    timeout still applies, which reading a pipe does not give.

    Returns:
        The first `cap` bytes and the full output size.
    """
    executable = repo.git.GIT_PYTHON_GIT_EXECUTABLE or "git"
    with tempfile.TemporaryFile() as out:
        subprocess.run(
            [executable, "-C", str(root), *args],
            stdout=out,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT_S,
            check=True,
        )
        size = out.tell()
        out.seek(0)
        return out.read(cap), size


def _diff(repo: Any, root: Path) -> Row:
    def read() -> Row:
        # Against HEAD covers staged and unstaged changes; with no commit yet, against the
        # empty tree (asked from git, so SHA-256 repositories work too).
        base = "HEAD" if _has_commits(repo) else repo.git.hash_object("-t", "tree", "/dev/null")
        args = ["diff", "--no-color", "--no-ext-diff", "--no-textconv", base, "--"]
        data, size = _run_capped(repo, args, root, DIFF_CAP_BYTES)
        text = data.decode("utf-8", errors="replace")
        redacted = redact_text(text)
        if size > DIFF_CAP_BYTES:
            detail = f"first {DIFF_CAP_BYTES} of {size} bytes"
            if redacted != text:
                detail += "; secrets replaced with ***"
            return make_row(KIND, "diff", redacted, "truncated", detail)
        if redacted != text:
            return make_row(KIND, "diff", redacted, "redacted", "secrets replaced with ***")
        return make_row(KIND, "diff", redacted)

    return _guard("diff", read)


def _untracked(repo: Any, root: Path) -> Row:
    def read() -> Row:
        # --directory lists a wholly untracked folder once (data/, not its million files).
        args = [
            "ls-files",
            "--others",
            "--exclude-standard",
            "--directory",
            "--no-empty-directory",
            "-z",
        ]
        data, size = _run_capped(repo, args, root, 1024 * 1024)
        paths = [p for p in data.decode("utf-8", errors="replace").split("\0") if p]
        if size > len(data):
            paths = paths[:-1]  # the last one may be cut in the middle
        if len(paths) > UNTRACKED_CAP or size > len(data):
            kept = paths[:UNTRACKED_CAP]
            detail = f"first {len(kept)} untracked paths"
            return make_row(KIND, "untracked", json.dumps(kept), "truncated", detail)
        return make_row(KIND, "untracked", json.dumps(paths))

    return _guard("untracked", read)


def _remote(repo: Any) -> Row:
    def read() -> Row:
        remotes = list(repo.remotes)
        if not remotes:
            return unknown(KIND, "remote", "no remote configured")
        chosen = next((r for r in remotes if r.name == "origin"), remotes[0])
        # Credentials in the URL (https://user:token@host) are dropped entirely.
        url = redact_url(chosen.url)
        if url != chosen.url:
            return make_row(KIND, "remote", url, "redacted", "credentials removed from the URL")
        return make_row(KIND, "remote", url)

    return _guard("remote", read)
