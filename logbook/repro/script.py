"""The bash script of `logbook repro --script`, and the shell-safe pieces the recipe's text
shares with it. Every value comes from the record and is untrusted: each goes through shlex.quote,
the diff through a quoted heredoc whose delimiter it does not contain, comments lose their line
breaks and control characters."""

from __future__ import annotations

import os
import re
import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logbook.repro import GitState, Recipe

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
VENV = ".logbook-repro-venv"


def mix_lines(mix: dict[str, Any]) -> list[str]:
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


def pins(packages: dict[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in packages.items()]


def quote(text: str) -> str:
    return shlex.quote(text)


def printable(text: str) -> str:
    """Control characters (terminal escapes among them) as \\xNN; newlines and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def comment(text: str) -> str:
    """Text safe inside a `#` comment: one line, no control characters."""
    return printable(text).replace("\n", " ").replace("\t", " ")


def clone_url(git: GitState) -> str:
    """The remote, a relative local path taken from the recorded checkout's root."""
    url = git.remote or ""
    local = "://" not in url and not re.match(r"[^/]+:", url)  # not scp-style host:path
    if local and not os.path.isabs(url) and git.root:
        return os.path.normpath(os.path.join(git.root, url))
    return url


def dest(git: GitState) -> str:
    """The folder to clone into: the recorded checkout's name, else `checkout`."""
    name = os.path.basename((git.root or "").rstrip("/"))
    return name if name not in ("", ".", "..") else "checkout"


def delimiter(diff: str) -> str:
    """A heredoc delimiter that is no line of `diff`."""
    lines, n = set(diff.splitlines()), 0
    while f"LOGBOOK_DIFF_{n}" in lines:
        n += 1
    return f"LOGBOOK_DIFF_{n}"


def relative_cwd(r: Recipe) -> str | None:
    """The command's folder relative to the checkout's root; None when outside it or unknown."""
    if not r.cwd or not r.git.root:
        return None
    rel = os.path.relpath(r.cwd, r.git.root)
    return None if rel == ".." or rel.startswith("../") else rel


def script(r: Recipe) -> str:
    g, q = r.git, quote
    out = [
        "#!/usr/bin/env bash",
        f"# Re-create attempt {comment(r.label)} of run {comment(r.run)}, written by logbook repro.",
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
            *[f"    {q(p)} \\" for p in pins(r.packages)],
            "    ;",
            '  export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"',
            "fi",
        ]
    for name, source in r.packages_from_source.items():
        out.append(f"say {q(f'install {name} from its source yourself: {source}')}")
    out += [f"export {name}={q(value)}" for name, value in r.env.items()]
    for name in r.env_secret:
        why = f"{name} is not set: the attempt had it, and its value is secret (set it yourself)"
        out.append(f'[ -n "${{{name}+x}}" ] || say {q(why)}')
    if r.data_mix:
        out += [
            "# The data it read:",
            *[f"#   {comment(line)}" for line in mix_lines(r.data_mix)],
        ]
    where = relative_cwd(r)
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
    g, q = r.git, quote
    commit = g.commit or ""
    if g.remote:
        out = [
            'if [ -n "$checkout" ] && [ -e "$checkout/.git" ]; then',
            '  cd -- "$checkout"',
            "else",
            f'  dest=$checkout; [ -n "$dest" ] || dest={q(dest(g))}',
            f'  git clone --quiet --no-checkout -- {q(clone_url(g))} "$dest"',
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
        end = delimiter(g.diff)
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
    q, path = quote, r.config["path"]
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
