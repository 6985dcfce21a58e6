"""The recipe to re-create an attempt, read from its launch snapshots: check out the commit, apply
the recorded diff, install the recorded packages, set the recorded environment, run the command
. `Recipe.as_text` is for people, `Recipe.as_script` a bash script.

Every value comes from the record and is treated as untrusted: the script quotes each one with
shlex.quote, the diff goes through a quoted heredoc whose delimiter it does not contain, and text
for people has its control characters escaped.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from logbook.repro.script import (
    clone_url,
    delimiter,
    dest,
    mix_lines,
    pins,
    printable,
    quote,
    relative_cwd,
    script,
)
from logbook.store import Store

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# PEP 508 names and PEP 440-ish versions: anything else pip could read as an option.
_PACKAGE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")
_BINARY_DIFF = re.compile(r"^Binary files .* differ$", re.M)


@dataclass
class GitState:
    """The checkout at launch, as recorded (None where it was not)."""

    root: str | None = None
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    diff: str | None = None
    diff_status: str | None = None  # ok, truncated or redacted
    diff_detail: str | None = None
    untracked: list[str] = field(default_factory=list)
    remote: str | None = None


@dataclass
class Recipe:
    """What it takes to re-create one attempt, every value from the store."""

    run: str
    label: str
    attempt_id: str
    git: GitState
    python: dict[str, str]
    packages: dict[str, str]
    env: dict[str, str]
    env_secret: list[str]  # redacted on record: set these yourself
    env_truncated: list[str]  # cut short on record: not reproducible
    env_skipped: list[str]  # the machine's, the session's or logbook's own: not exported
    argv: list[str]
    argv_redacted: bool
    cwd: str | None
    config: dict[str, str]  # path and sha256 of the --config file
    data_mix: dict[str, Any] | None
    missing: list[str]
    # Installed from a folder, an archive or a repository (the checkout itself, often): no pin
    # re-creates them, so they are named with where they came from.
    packages_from_source: dict[str, str] = field(default_factory=dict)

    @property
    def blockers(self) -> list[str]:
        """Why the recipe as recorded would run something else: the script stops (bar --force)."""
        out = []
        if self.git.diff_status == "truncated":
            out.append(f"the recorded diff is cut short ({self.git.diff_detail}) and cannot apply")
        elif self.git.diff_status == "redacted":
            out.append("secrets in the recorded diff were replaced with ***, so it is not the code")
        if _BINARY_DIFF.search(self.git.diff or ""):
            out.append("the recorded diff changes binary files, whose contents it does not hold")
        if self.argv_redacted:
            out.append("secret arguments of the command were recorded as ***")
        return out

    def as_dict(self) -> dict[str, Any]:
        """The recipe as JSON-safe data, `blockers` included.

        Returns:
            A dict of plain values (str, bool, None, lists and dicts of them).
        """
        return {**asdict(self), "blockers": self.blockers}

    def as_text(self) -> str:
        """The recipe as numbered steps for people, control characters escaped.

        Returns:
            The text, ending in a newline.
        """
        g, steps, warn = self.git, [], "\n   WARNING: "
        if g.commit and g.remote:
            steps.append(f"Get the code: git clone {quote(clone_url(g))} && cd {quote(dest(g))}")
        elif g.commit:
            steps.append(f"Go to your checkout of {g.root} (no remote on record).")
        if g.commit:
            steps.append(f"Check out the commit: git checkout --detach {quote(g.commit)}")
            if g.diff and g.diff_status == "truncated":
                steps.append("Apply the uncommitted changes: the record holds only part of them.")
            elif g.diff:
                steps.append(
                    f"Apply the uncommitted changes ({len(g.diff.splitlines())} lines): "
                    f"git apply <<'{delimiter(g.diff)}'\n{g.diff.rstrip(chr(10))}\n"
                    f"{delimiter(g.diff)}"
                )
            else:
                steps.append("The working tree was clean at launch: no diff to apply.")
            steps[-1] += "".join(f"{warn}{b}." for b in self.blockers if "diff" in b)
            if g.untracked:
                steps[-1] += f"\n   Untracked files, not on record: {', '.join(g.untracked)}"
        if self.packages:
            listed = "".join(f"\n     {p}" for p in pins(self.packages))
            steps.append(
                f"Install the packages in a fresh virtual environment of Python "
                f"{self.python.get('version', '(version unknown)')}: pip install --no-deps{listed}"
            )
        if self.packages_from_source:
            listed = "".join(f"\n     {n}: {s}" for n, s in self.packages_from_source.items())
            steps.append(f"Install these from their source yourself (no index has them):{listed}")
        if self.env or self.env_secret:
            exports = "".join(f"\n     export {n}={quote(v)}" for n, v in self.env.items())
            steps.append(f"Set the environment:{exports}")
            if self.env_secret:
                steps[-1] += f"\n   Set these yourself (secret): {', '.join(self.env_secret)}"
            if self.env_skipped:
                steps[-1] += f"\n   Left as they are here: {', '.join(self.env_skipped)}"
        if self.config:
            steps.append(
                f"Check the config file {self.config.get('path')}: sha256 "
                f"{self.config.get('sha256')}"
            )
        if self.data_mix:
            steps.append("Check the data: " + "; ".join(mix_lines(self.data_mix)))
        where = relative_cwd(self)
        place = f" in {where}" if where not in (None, ".") else ""
        steps.append(f"Run the command{place}: {shlex.join(self.argv)}")
        if self.argv_redacted:
            steps[-1] += f"{warn}secret arguments were recorded as ***: put them back."
        text = f"Re-create attempt {self.label} of run {self.run} (attempt id {self.attempt_id}):\n"
        text += "".join(f"\n{i}. {s}" for i, s in enumerate(steps, 1))
        if self.missing:
            text += "\n\nNot on record:" + "".join(f"\n  - {m}" for m in self.missing)
        return printable(text) + "\n"

    def as_script(self) -> str:
        """The recipe as a bash script, run as `SCRIPT [--no-install] [--force] [CHECKOUT]`.

        It clones the recorded remote (into CHECKOUT, or a folder named after the checkout; an
        existing checkout named by CHECKOUT is used as it is), or else works in the existing
        checkout CHECKOUT or the current folder; checks out the commit, applies the diff, pins the
        packages in a fresh virtual environment (not with --no-install), exports the environment,
        goes to the recorded folder and execs the command. Where `blockers` says the record
        cannot re-create the attempt, it stops before doing anything, unless --force.

        Returns:
            The script's text.
        """
        return script(self)


def recipe(store: Store, run: str, label: str) -> Recipe:
    """Read the recipe of one attempt from the store.

    Args:
        store: the open store.
        run: the run's name.
        label: the attempt's label ("1.00").

    Returns:
        The recipe; what is not on record is None or empty, and said in `missing`.

    Raises:
        NoSuchRun: the store has no such run.
        LogbookError: the run has no attempt with that label.
    """
    from logbook.query import read_attempt
    from logbook.record import datamix

    attempt = read_attempt(store, run, label)
    snaps = attempt_snapshots(store, attempt)
    missing: list[str] = []

    def ok(kind: str, name: str) -> str | None:
        row = snaps.get((kind, name))
        return row["value"] if row and row["status"] != "unknown" else None

    git = _git_state(snaps, missing, store.root)
    python = {k: v for k in ("version", "executable") if (v := ok("python", k)) is not None}
    packages: dict[str, str] = {}
    from_source: dict[str, str] = {}
    bad: list[str] = []
    for (kind, name), row in snaps.items():
        if kind != "package" or row["value"] is None:
            continue
        if (row["detail"] or "").startswith("installed from "):
            from_source[name] = row["detail"].removeprefix("installed from ").split(";")[0]
        elif _PACKAGE.fullmatch(name) and _VERSION.fullmatch(row["value"]):
            packages[name] = row["value"]
        else:
            bad.append(name)
    env, secret, truncated, skipped = _environment(snaps)
    argv_row = snaps.get(("command", "argv"))
    argv = recorded_argv(snaps, attempt)
    redacted = bool(argv_row and argv_row["status"] == "redacted") or "***" in argv
    config = {k: v for k in ("path", "sha256") if (v := ok("config_file", k)) is not None}
    data_mix = datamix.last_recorded(store, run, {attempt["attempt_id"]})

    if not python:
        missing.append("no Python on record")
    if not packages:
        missing.append("no packages on record")
    if bad:
        missing.append(f"package rows that are not name==version pins: {', '.join(sorted(bad))}")
    if secret:
        missing.append(f"the values of secret variables (set them yourself): {', '.join(secret)}")
    if not (env or secret or truncated or skipped):
        missing.append("no environment on record")
    if truncated:
        missing.append(f"variables cut short on record: {', '.join(truncated)}")
    if not argv:
        missing.append("no command on record")
    if data_mix is None:
        missing.append("no data mix on record (logbook run --data-mix declares one)")
    return Recipe(
        run=run,
        label=label,
        attempt_id=attempt["attempt_id"],
        git=git,
        python=python,
        packages=dict(sorted(packages.items())),
        packages_from_source=dict(sorted(from_source.items())),
        env=env,
        env_secret=secret,
        env_truncated=truncated,
        env_skipped=skipped,
        argv=argv,
        argv_redacted=redacted,
        cwd=ok("command", "cwd") or attempt.get("cwd"),
        config=config,
        data_mix=data_mix,
        missing=missing,
    )


def recorded_argv(snaps: dict[tuple[str, str], Any], attempt: dict[str, Any]) -> list[str]:
    """The attempt's command line: its `command argv` snapshot, else the attempts row's.

    Args:
        snaps: the attempt's snapshots, from `attempt_snapshots`.
        attempt: the attempt's row.

    Returns:
        The words; empty when neither is on record.
    """
    row = snaps.get(("command", "argv"))
    try:
        argv = json.loads(row["value"]) if row else []
    except (TypeError, ValueError):
        argv = []
    argv = [str(a) for a in argv] if isinstance(argv, list) else []
    return argv or [str(a) for a in attempt.get("command") or []]


def attempt_snapshots(store: Store, attempt: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """The launch snapshots of one attempt, {(kind, name): row}, the newest row of each.

    Every host of a launch over several snapshots itself: the attempt's own host is read, else
    the first host by name.

    Args:
        store: the open store.
        attempt: the attempt's row (from `logbook.query.read_attempt`).

    Returns:
        Rows with keys value, status and detail.
    """
    from logbook.query import run_sql

    rows = run_sql(
        store,
        "select kind, name, value, status, detail, host from snapshots "
        "where run = ? and attempt_id = ? order by time",
        [attempt["run"], attempt["attempt_id"]],
    ).to_pylist()
    hosts = {r["host"] for r in rows if r["host"] is not None}
    host = attempt.get("host") if attempt.get("host") in hosts else min(hosts, default=None)
    return {(r["kind"], r["name"]): r for r in rows if r["host"] in (host, None)}


def _git_state(snaps: dict[tuple[str, str], Any], missing: list[str], store_root: Path) -> GitState:
    def value(name: str) -> str | None:
        row = snaps.get(("git", name))
        return row["value"] if row and row["status"] != "unknown" else None

    repo = snaps.get(("git", "repository"))
    if repo is not None or not any(kind == "git" for kind, _ in snaps):
        why = f" ({repo['detail']})" if repo is not None and repo["detail"] else ""
        missing.append(f"no git repository: the code is not on record{why}")
        return GitState()
    diff_row = snaps.get(("git", "diff"))
    try:
        listed = json.loads(value("untracked") or "[]")
    except ValueError:
        listed = []
    untracked = [str(p) for p in listed] if isinstance(listed, list) else []
    root = value("root")
    if root is not None:  # the default store sits in the checkout: the record, not the code (#17)
        untracked = [p for p in untracked if not _is_within(Path(root) / p, store_root)]
    state = GitState(
        root=value("root"),
        commit=value("commit"),
        branch=value("branch"),
        dirty=None if value("dirty") is None else value("dirty") == "true",
        diff=value("diff"),
        diff_status=diff_row["status"] if diff_row else None,
        diff_detail=diff_row["detail"] if diff_row else None,
        untracked=untracked,
        remote=value("remote"),
    )
    if state.commit is None:
        missing.append("no git commit on record")
    if state.remote is None:
        missing.append("no git remote on record: the script works in an existing checkout")
    if state.diff is None and state.dirty:
        missing.append("the uncommitted changes (no diff on record)")
    if untracked:
        missing.append(f"{len(untracked)} untracked file(s): {', '.join(untracked)}")
    return state


def _is_within(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _environment(
    snaps: dict[tuple[str, str], Any],
) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """(exported, secret, truncated, skipped) from the env rows."""
    from logbook.repro.environment import is_exported

    names = {name: row for (kind, name), row in snaps.items() if kind == "env"}
    env: dict[str, str] = {}
    secret, truncated, skipped = [], [], []
    for name in sorted(names):
        row = names[name]
        # The machine's or the session's first (repro/environment.py): a CI runner's token is
        # not one to ask the reader for.
        if not _VAR_NAME.fullmatch(name) or row["value"] is None or not is_exported(name, names):
            skipped.append(name)
        elif row["status"] == "redacted":
            secret.append(name)
        elif row["status"] == "truncated":
            truncated.append(name)
        else:
            env[name] = row["value"]
    return env, secret, truncated, skipped
