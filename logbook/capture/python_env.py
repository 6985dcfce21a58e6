"""The Python the command will run, and the packages installed in it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from logbook.capture._row import Row, make_row

PROBE_TIMEOUT_S = 20.0
# Printed by the interpreter under inspection. It must run on any Python 3 and import
# nothing beyond the standard library; metadata.get avoids the 3.12+ DeprecationWarning
# for distributions without a Name.
_PROBE = """\
import json, platform, re, sys
from importlib import metadata
packages, sources = {}, {}
for dist in metadata.distributions():
    name = dist.metadata.get("Name")
    if not name:
        continue
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in packages:  # shadowed by the first on sys.path, whose version (and source) counts
        continue
    packages[key] = dist.version
    try:  # PEP 610: installed from a folder, an archive or a repository, not from an index
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except Exception:
        direct = None
    if isinstance(direct, dict):
        url = str(direct.get("url", ""))
        if (direct.get("dir_info") or {}).get("editable"):
            sources[key] = "editable " + url
        elif "vcs_info" in direct:
            vcs = direct["vcs_info"]
            sources[key] = "vcs " + vcs.get("vcs", "git") + "+" + url + "@" + vcs.get("commit_id", "")
        else:
            sources[key] = ("archive " if "archive_info" in direct else "local ") + url
print(json.dumps({
    "sources": sources,
    "version": platform.python_version(),
    "executable": sys.executable,
    "implementation": platform.python_implementation(),
    "platform": platform.platform(),
    "packages": packages,
}))
"""
# pip/distlib write this two-line shebang when the interpreter path is too long or has
# spaces: "#!/bin/sh" then "'''exec' /path/to/python "$0" "$@"".
_SH_EXEC = re.compile(rb"^'''exec' (\"[^\"]+\"|\S+) \"\$0\" \"\$@\"", re.M)


def _is_python_name(path: str) -> bool:
    """Tell whether an executable's file name is a Python interpreter (python3.11, pypy3)."""
    return os.path.basename(path).lower().startswith(("python", "pypy"))


def _which(program: str, env: Mapping[str, str], cwd: Path) -> str | None:
    """Find `program` as the child will: on the env's PATH, or relative to its cwd."""
    if os.sep in program:
        candidate = program if os.path.isabs(program) else str(cwd / program)
        return candidate if os.path.isfile(candidate) else None
    return shutil.which(program, path=env.get("PATH", os.defpath))


def _shebang_python(script: str, env: Mapping[str, str], cwd: Path) -> str | None:
    """Return the Python named by a script's shebang (torchrun, accelerate), if any."""
    try:
        with open(script, "rb") as handle:
            head = handle.read(1024)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    if not words:
        return None
    if os.path.basename(words[0]) == "sh":
        found = _SH_EXEC.search(head)
        return found.group(1).decode("utf-8", "replace").strip('"') if found else None
    return _which(words[0], env, cwd) if _is_python_name(words[0]) else None


def find_interpreter(command: Sequence[str], env: Mapping[str, str], cwd: Path) -> tuple[str, str]:
    """Find the Python interpreter that `command` will run.

    Args:
        command: the training command (`python train.py`, `torchrun ...`, `srun python ...`).
        env: the environment the command gets (its PATH is used).
        cwd: the directory the command runs in.

    Returns:
        `(interpreter path, how it was found)`: "command" when the command (or, after a
        launcher such as srun or env, one of its arguments) is a Python; "shebang" when
        the command is a script whose shebang names one; "wrapper" (logbook's own
        interpreter) otherwise.
    """
    if command:
        resolved = _which(command[0], env, cwd)
        if resolved and _is_python_name(resolved):
            return resolved, "command"
        if resolved:
            shebang = _shebang_python(resolved, env, cwd)
            if shebang:
                return shebang, "shebang"
        # srun python ..., env X=1 python ..., mpirun -n 8 python ...
        for arg in command[1:]:
            if not arg.startswith("-") and _is_python_name(arg):
                found = _which(arg, env, cwd)
                if found:
                    return found, "command"
    return sys.executable, "wrapper"


def _probe(interpreter: str, env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    """Run the probe in `interpreter` with the command's environment and parse its JSON."""
    done = subprocess.run(
        [interpreter, "-c", _PROBE],
        env=dict(env),
        cwd=cwd if cwd.is_dir() else None,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=PROBE_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise RuntimeError(f"exit {done.returncode}: {' '.join(tail)}")
    # Only the last line: a sitecustomize may print before us.
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    info: dict[str, Any] = json.loads(lines[-1])
    return info


def _probe_here() -> dict[str, Any]:
    """Run the probe's logic in this process (the fallback when the subprocess fails)."""
    namespace: dict[str, Any] = {}
    lines: list[str] = []
    namespace["print"] = lines.append
    exec(compile(_PROBE, "<logbook probe>", "exec"), namespace)  # noqa: S102 - our own code
    info: dict[str, Any] = json.loads(lines[-1])
    return info


def capture_python(command: Sequence[str], env: Mapping[str, str], cwd: Path) -> list[Row]:
    """Describe the command's Python and its installed distributions.

    Args:
        command: the training command.
        env: the environment the command gets.
        cwd: the directory the command runs in.

    Returns:
        `python` rows (version, executable, implementation, platform, inspected_via)
        and one `package` row per distribution (normalized name, version). When the
        interpreter cannot be run, logbook's own interpreter is described instead and
        every row's detail says so.
    """
    interpreter, how = find_interpreter(command, env, cwd)
    detail: str | None = None
    try:
        info = _probe(interpreter, env, cwd)
    except Exception as exc:  # noqa: BLE001 - timeout, missing file, bad JSON: all fall back
        info = _probe_here()
        how = "wrapper"
        detail = (
            f"could not inspect {interpreter} ({type(exc).__name__}: {exc}); "
            f"showing logbook's own interpreter {sys.executable}"
        )
    rows = [
        make_row("python", key, str(info[key]), detail=detail)
        for key in ("version", "executable", "implementation", "platform")
    ]
    rows.append(make_row("python", "inspected_via", how, detail=detail))
    packages: dict[str, str] = info["packages"]
    sources: dict[str, str] = info.get("sources") or {}
    rows += [
        make_row("package", name, str(packages[name]), detail=_from(sources.get(name), detail))
        for name in sorted(packages)
    ]
    return rows


def _from(source: str | None, detail: str | None) -> str | None:
    """A package row's detail: where it was installed from when not from an index (PEP 610's
    direct_url.json), which a plain `name==version` pin cannot re-create."""
    if source is None:
        return detail
    from logbook.record.redact import redact_url

    how, _, url = source.partition(" ")
    said = f"installed from {how} {redact_url(url)}".strip()
    return f"{said}; {detail}" if detail else said
