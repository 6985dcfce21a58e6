"""The recipe to re-create an attempt, read from its launch snapshots: check out the commit, apply
the recorded diff, install the recorded packages, set the recorded environment, run the command
(#6, part 4). `Recipe.as_text` is for people, `Recipe.as_script` a bash script.

Every value comes from the record and is treated as untrusted: the script quotes each one with
shlex.quote, the diff goes through a quoted heredoc whose delimiter it does not contain, and text
for people has its control characters escaped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from logbook.store import Store

# Variables of the machine or the login session, and the ones logbook sets for each attempt:
# exported elsewhere they mislead (LOGBOOK_ATTEMPT would file the rerun under the original).
_SESSION_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "HOSTNAME"}
    | {"DISPLAY", "TMPDIR", "MAIL", "VIRTUAL_ENV", "COLUMNS", "LINES", "PS1"}
)
_SESSION_PREFIXES = ("LOGBOOK_", "SSH_", "XDG_")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# PEP 508 names and PEP 440-ish versions: anything else pip could read as an option.
_PACKAGE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")
_BINARY_DIFF = re.compile(r"^Binary files .* differ$", re.M)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
VENV = ".logbook-repro-venv"


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
            steps.append(f"Get the code: git clone {_q(_clone_url(g))} && cd {_q(_dest(g))}")
        elif g.commit:
            steps.append(f"Go to your checkout of {g.root} (no remote on record).")
        if g.commit:
            steps.append(f"Check out the commit: git checkout --detach {_q(g.commit)}")
            if g.diff and g.diff_status == "truncated":
                steps.append("Apply the uncommitted changes: the record holds only part of them.")
            elif g.diff:
                steps.append(
                    f"Apply the uncommitted changes ({len(g.diff.splitlines())} lines): "
                    f"git apply <<'{_delimiter(g.diff)}'\n{g.diff.rstrip(chr(10))}\n"
                    f"{_delimiter(g.diff)}"
                )
            else:
                steps.append("The working tree was clean at launch: no diff to apply.")
            steps[-1] += "".join(f"{warn}{b}." for b in self.blockers if "diff" in b)
            if g.untracked:
                steps[-1] += f"\n   Untracked files, not on record: {', '.join(g.untracked)}"
        if self.packages:
            pins = "".join(f"\n     {p}" for p in _pins(self.packages))
            steps.append(
                f"Install the packages in a fresh virtual environment of Python "
                f"{self.python.get('version', '(version unknown)')}: pip install --no-deps{pins}"
            )
        if self.env or self.env_secret:
            exports = "".join(f"\n     export {n}={_q(v)}" for n, v in self.env.items())
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
            steps.append("Check the data: " + "; ".join(_mix_lines(self.data_mix)))
        where = _relative_cwd(self)
        place = f" in {where}" if where not in (None, ".") else ""
        steps.append(f"Run the command{place}: {shlex.join(self.argv)}")
        if self.argv_redacted:
            steps[-1] += f"{warn}secret arguments were recorded as ***: put them back."
        text = f"Re-create attempt {self.label} of run {self.run} (attempt id {self.attempt_id}):\n"
        text += "".join(f"\n{i}. {s}" for i, s in enumerate(steps, 1))
        if self.missing:
            text += "\n\nNot on record:" + "".join(f"\n  - {m}" for m in self.missing)
        return _printable(text) + "\n"

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
        return _script(self)


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
    from logbook import datamix
    from logbook.query import read_attempt

    attempt = read_attempt(store, run, label)
    snaps = attempt_snapshots(store, attempt)
    missing: list[str] = []

    def ok(kind: str, name: str) -> str | None:
        row = snaps.get((kind, name))
        return row["value"] if row and row["status"] != "unknown" else None

    git = _git_state(snaps, missing)
    python = {k: v for k in ("version", "executable") if (v := ok("python", k)) is not None}
    packages: dict[str, str] = {}
    bad: list[str] = []
    for (kind, name), row in snaps.items():
        if kind != "package" or row["value"] is None:
            continue
        if _PACKAGE.fullmatch(name) and _VERSION.fullmatch(row["value"]):
            packages[name] = row["value"]
        else:
            bad.append(name)
    env, secret, truncated, skipped = _environment(snaps)
    argv_row = snaps.get(("command", "argv"))
    try:
        argv = json.loads(argv_row["value"]) if argv_row else []
    except (TypeError, ValueError):
        argv = []
    argv = [str(a) for a in argv] if isinstance(argv, list) else []
    argv = argv or [str(a) for a in attempt.get("command") or []]
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


def _git_state(snaps: dict[tuple[str, str], Any], missing: list[str]) -> GitState:
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


def _environment(
    snaps: dict[tuple[str, str], Any],
) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """(exported, secret, truncated, skipped) from the env rows."""
    from logbook.capture.launcher import is_launcher_variable

    names = {name: row for (kind, name), row in snaps.items() if kind == "env"}
    env: dict[str, str] = {}
    secret, truncated, skipped = [], [], []
    for name in sorted(names):
        row = names[name]
        if not _VAR_NAME.fullmatch(name) or row["value"] is None:
            skipped.append(name)
        elif row["status"] == "redacted":
            secret.append(name)
        elif row["status"] == "truncated":
            truncated.append(name)
        elif (
            name in _SESSION_NAMES
            or name.startswith(_SESSION_PREFIXES)
            or is_launcher_variable(name, names)
        ):
            skipped.append(name)
        else:
            env[name] = row["value"]
    return env, secret, truncated, skipped


def _mix_lines(mix: dict[str, Any]) -> list[str]:
    out = []
    for name, spec in mix.items():
        spec = spec if isinstance(spec, dict) else {}
        parts = [f"{k} {spec[k]:g}" for k in ("weight", "tokens") if _number(spec.get(k))]
        prints = spec.get("fingerprints")
        for path, fp in (prints if isinstance(prints, dict) else {}).items():
            parts.append(
                f"{path} {fp.get('hash') or fp.get('kind')}" if isinstance(fp, dict) else path
            )
        out.append(f"{name} {' '.join(parts)}".strip())
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pins(packages: dict[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in packages.items()]


def _q(text: str) -> str:
    return shlex.quote(text)


def _printable(text: str) -> str:
    """Control characters (terminal escapes among them) as \\xNN; newlines and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _comment(text: str) -> str:
    """Text safe inside a `#` comment: one line, no control characters."""
    return _printable(text).replace("\n", " ").replace("\t", " ")


def _clone_url(git: GitState) -> str:
    """The remote, a relative local path taken from the recorded checkout's root."""
    url = git.remote or ""
    local = "://" not in url and not re.match(r"[^/]+:", url)  # not scp-style host:path
    if local and not os.path.isabs(url) and git.root:
        return os.path.normpath(os.path.join(git.root, url))
    return url


def _dest(git: GitState) -> str:
    """The folder to clone into: the recorded checkout's name, else `checkout`."""
    name = os.path.basename((git.root or "").rstrip("/"))
    return name if name not in ("", ".", "..") else "checkout"


def _delimiter(diff: str) -> str:
    """A heredoc delimiter that is no line of `diff`."""
    lines, n = set(diff.splitlines()), 0
    while f"LOGBOOK_DIFF_{n}" in lines:
        n += 1
    return f"LOGBOOK_DIFF_{n}"


def _relative_cwd(r: Recipe) -> str | None:
    """The command's folder relative to the checkout's root; None when outside it or unknown."""
    if not r.cwd or not r.git.root:
        return None
    rel = os.path.relpath(r.cwd, r.git.root)
    return None if rel == ".." or rel.startswith("../") else rel


def _script(r: Recipe) -> str:
    g, q = r.git, _q
    out = [
        "#!/usr/bin/env bash",
        f"# Re-create attempt {_comment(r.label)} of run {_comment(r.run)}, written by logbook repro.",
        "# Usage: SCRIPT [--no-install] [--force] [CHECKOUT]",
        "#   --no-install  use the Python on PATH: no virtual environment, no package pins",
        "#   --force       go on where the record cannot re-create the attempt exactly",
        "#   CHECKOUT      an existing checkout to use, or where to clone the code",
        "set -euo pipefail",
        "install=1 force=0 fresh=0 checkout=",
        'for arg in "$@"; do',
        '  case "$arg" in',
        "    --no-install) install=0 ;;",
        "    --force) force=1 ;;",
        '    -h|--help) sed -n "2,6p" "$0"; exit 0 ;;',
        '    -*) echo "unknown option: $arg (see --help)" >&2; exit 2 ;;',
        "    *) checkout=$arg ;;",
        "  esac",
        "done",
        'say() { echo "logbook repro: $*" >&2; }',
    ]
    if r.blockers:
        out.append('if [ "$force" = 0 ]; then')
        out += [f"  say {q(b)}" for b in r.blockers]
        out += ["  say 'nothing was done; rerun with --force to go on anyway'", "  exit 1", "fi"]
    if g.commit:
        out += _checkout_lines(r)
    else:
        out += ['cd -- "${checkout:-.}"', "say 'no git commit on record: running in' \"$(pwd)\""]
    out.append("root=$(pwd)")
    if r.config.get("path") and r.config.get("sha256") and g.root:
        out += _config_lines(r)
    if r.packages:
        version = r.python.get("version", "")
        minor = re.match(r"\d+\.\d+", version)
        python = f"python{minor.group()}" if minor else "python3"
        out += [
            'if [ "$install" = 1 ]; then',
            f"  py={q(python)}",
            '  command -v "$py" >/dev/null || { say "$py not found, using python3"; py=python3; }',
            f'  venv="$root"/{VENV}',
            '  "$py" -m venv "$venv"',
            '  "$venv/bin/pip" install --no-deps \\',
            *[f"    {q(p)} \\" for p in _pins(r.packages)],
            "    ;",
            '  export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"',
            "fi",
        ]
    out += [f"export {name}={q(value)}" for name, value in r.env.items()]
    for name in r.env_secret:
        why = f"{name} is not set: the attempt had it, and its value is secret (set it yourself)"
        out.append(f'[ -n "${{{name}+x}}" ] || say {q(why)}')
    if r.data_mix:
        out += [
            "# The data it read:",
            *[f"#   {_comment(line)}" for line in _mix_lines(r.data_mix)],
        ]
    where = _relative_cwd(r)
    if where not in (None, "."):
        out.append(f'cd -- "$root"/{q(where or "")}')
    elif where is None and r.cwd:
        out += [
            f"say {q(f'the command ran outside the checkout, in {r.cwd}')}",
            f"cd -- {q(r.cwd)}",
        ]
    out.append(f"exec {shlex.join(r.argv)}" if r.argv else "say 'no command on record'; exit 1")
    return "\n".join(out) + "\n"


def _checkout_lines(r: Recipe) -> list[str]:
    g, q = r.git, _q
    commit = g.commit or ""
    if g.remote:
        out = [
            'if [ -n "$checkout" ] && [ -e "$checkout/.git" ]; then',
            '  cd -- "$checkout"',
            "else",
            f'  dest=$checkout; [ -n "$dest" ] || dest={q(_dest(g))}',
            f'  git clone --quiet --no-checkout -- {q(_clone_url(g))} "$dest"',
            '  cd -- "$dest"; fresh=1',
            "fi",
        ]
    else:
        out = ['cd -- "${checkout:-.}"']
    not_git = f"not a git checkout: give a checkout of {g.root} as the argument"
    out += [
        f"git rev-parse --git-dir >/dev/null 2>&1 || {{ say {q(not_git)}; exit 1; }}",
        'if [ "$fresh$force" = 00 ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then',
        '  say "$(pwd) has uncommitted changes: commit or stash them (or --force)"; exit 1',
        "fi",
        f"git cat-file -e {q(commit + '^{commit}')} 2>/dev/null || "
        f"{{ say {q(f'commit {commit} is not in this checkout: was it pushed? (git fetch)')}; exit 1; }}",
        f"git checkout --quiet --detach {q(commit)}",
    ]
    if g.diff:
        end = _delimiter(g.diff)
        body = g.diff if g.diff.endswith("\n") else g.diff + "\n"
        if r.blockers:
            note = "the recorded diff did not apply; going on without it (--force)"
            out += [
                f"if ! git apply --whitespace=nowarn <<'{end}'",
                body + end,
                "then",
                f"  say {q(note)}",
                "fi",
            ]
        else:
            out += [f"git apply --whitespace=nowarn <<'{end}'", body + end]
    if g.untracked:
        note = f"untracked files at launch, not on record: {', '.join(g.untracked)}"
        out.append(f"say {q(note)}")
    return out


def _config_lines(r: Recipe) -> list[str]:
    q, path = _q, r.config["path"]
    rel = os.path.relpath(path, r.git.root or "/")
    if rel == ".." or rel.startswith("../"):
        return [f"say {q(f'the config file was outside the checkout: {path}')}"]
    differs = f"{rel} differs from the config on record (sha256 {r.config['sha256']})"
    return [
        f"if [ ! -f {q(rel)} ]; then say {q(f'the config file {rel} is not in the checkout')}",
        "elif command -v sha256sum >/dev/null; then",
        f'  sum=$(sha256sum < {q(rel)}); [ "${{sum%% *}}" = {q(r.config["sha256"])} ] || say {q(differs)}',
        "fi",
    ]
