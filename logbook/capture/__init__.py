"""Snapshots of what was true at launch: command, git, Python and packages, env, host, GPUs.

`capture_launch` is the one entry point. It runs beside a starting training job, so it
never raises and imports its heavy helpers (GitPython, psutil) only when called.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from logbook.capture._row import Row, make_row, unknown
from logbook.record.redact import REDACTED, is_secret_name, redact_command, redact_text

__all__ = ["Row", "capture_launch"]

# Shorter values of secret-named variables ("1", "true") are switches, not secrets, and
# scrubbing them from every row would mangle ordinary text.
_MIN_SCRUB_CHARS = 6


def _parts(
    command: Sequence[str], env: Mapping[str, str], cwd: Path
) -> list[tuple[str, Callable[[], list[Row]]]]:
    """The capture parts, in row order; each is imported only when it runs."""

    def git() -> list[Row]:
        from logbook.capture.git import capture_git

        return capture_git(cwd)

    def python() -> list[Row]:
        from logbook.capture.python_env import capture_python

        return capture_python(command, env, cwd)

    def environment() -> list[Row]:
        from logbook.capture.environment import capture_env

        return capture_env(env)

    def command_line() -> list[Row]:
        from logbook.capture.command import capture_command

        return capture_command(command, cwd)

    def host() -> list[Row]:
        from logbook.capture.hardware import capture_host

        return capture_host()

    def gpu() -> list[Row]:
        from logbook.capture.hardware import capture_gpus

        return capture_gpus(env)

    def launcher() -> list[Row]:
        from logbook.capture.launcher import capture_launcher

        return capture_launcher(command, env)

    return [
        ("command", command_line),
        ("git", git),
        ("python", python),
        ("env", environment),
        ("host", host),
        ("gpu", gpu),
        ("launcher", launcher),
    ]


def _run_part(kind: str, part: Callable[[], list[Row]]) -> list[Row]:
    """Run one part; whatever goes wrong becomes one unknown row with the reason."""
    try:
        return part()
    except Exception as exc:  # noqa: BLE001 - a snapshot must never stop a launch
        return [unknown(kind, "capture", f"capture failed: {type(exc).__name__}: {exc}")]


def _known_secrets(command: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Values we already know are secret: secret-named variables and hidden arguments."""
    secrets = {value for name, value in env.items() if is_secret_name(name)}
    for original, shown in zip(command, redact_command(command), strict=True):
        # "--api-key=abc" shown as "--api-key=***", or "abc" shown as "***".
        if shown != original and shown.endswith(REDACTED):
            prefix = shown[: -len(REDACTED)]
            if original.startswith(prefix):
                secrets.add(original[len(prefix) :])
    return sorted((s for s in secrets if len(s) >= _MIN_SCRUB_CHARS), key=len, reverse=True)


def _scrub(rows: list[Row], secrets: list[str]) -> list[Row]:
    """Last line of defence: no known secret or token-like text in any value or detail.

    A token can turn up where no part looked for it: a secret pasted into a tracked
    file shows in the diff, a variable's value is echoed in a git error message.
    """
    known = re.compile("|".join(map(re.escape, secrets))) if secrets else None

    def clean(text: str, already_redacted: bool) -> str:
        if known is not None:
            text = known.sub(REDACTED, text)
        # The diff and env values went through redact_text already; once is enough.
        return text if already_redacted else redact_text(text)

    out: list[Row] = []
    for row in rows:
        value, detail = row["value"], row["detail"]
        done = (row["kind"], row["name"]) == ("git", "diff") or row["kind"] in ("env", "launcher")
        if value is not None:
            cleaned = clean(value, done)
            if cleaned != value:
                note = "secrets replaced with ***"
                status = "redacted" if row["status"] == "ok" else row["status"]
                joined = note if detail is None or note in detail else f"{detail}; {note}"
                row = make_row(row["kind"], row["name"], cleaned, status, joined)
        if row["detail"] is not None:
            row["detail"] = clean(row["detail"], False)
        out.append(row)
    return out


def capture_launch(command: list[str], env: Mapping[str, str], cwd: Path) -> list[Row]:
    """Take every launch snapshot for a command about to run.

    Parts run in parallel threads (git, the Python probe and nvidia-smi are separate
    processes) and each is guarded: a part that fails gives one row with status
    unknown and the reason instead. Secrets are redacted in every row.

    Args:
        command: the training command and its arguments.
        env: the environment the command gets.
        cwd: the directory it runs in.

    Returns:
        Rows with keys kind, name, value, status and detail, grouped by kind in the
        order command, git, python and package, env, host, gpu, launcher.
    """
    try:
        command = [str(arg) for arg in command]
        env = {str(k): str(v) for k, v in env.items()}
        cwd = Path(cwd)
        parts = _parts(command, env, cwd)
        with ThreadPoolExecutor(
            max_workers=len(parts), thread_name_prefix="logbook-capture"
        ) as pool:
            futures = [pool.submit(_run_part, kind, part) for kind, part in parts]
            rows = [row for future in futures for row in future.result()]
        return _scrub(rows, _known_secrets(command, env))
    except Exception as exc:  # noqa: BLE001 - see _run_part
        return [unknown("command", "capture", f"capture failed: {type(exc).__name__}")]
