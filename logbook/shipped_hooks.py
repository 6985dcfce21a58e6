"""The lifecycle hooks logbook ships (hooks/ in the repository, logbook/_hooks in a wheel).

An installed user has no checkout to copy them from (#17): `logbook hooks list` and
`logbook hooks path NAME` find them where the package is, so a logbook.toml or `--hook` can point
at the file itself.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from logbook.errors import LogbookError

_HERE = Path(__file__).resolve().parent
# A wheel carries them as logbook/_hooks (pyproject's force-include); a checkout has hooks/ beside.
HOOK_DIRS = (_HERE / "_hooks", _HERE.parent / "hooks")


@dataclass(frozen=True)
class ShippedHook:
    name: str
    summary: str
    path: Path


def hooks_dir() -> Path:
    """The folder of the shipped hooks.

    Raises:
        LogbookError: neither an installed nor a checkout's folder exists (a broken install).
    """
    for folder in HOOK_DIRS:
        if folder.is_dir():
            return folder
    raise LogbookError(
        f"the shipped hooks are missing (looked in {', '.join(str(d) for d in HOOK_DIRS)})",
        hint="reinstall training-logbook",
    )


def list_hooks() -> list[ShippedHook]:
    """Every shipped hook, by name: the executable files of the hooks folder."""
    folder = hooks_dir()
    return [
        ShippedHook(path.name, _summary(path), path)
        for path in sorted(folder.iterdir())
        if path.is_file() and "." not in path.name
    ]


def hook_path(name: str) -> Path:
    """The file of the shipped hook `name`.

    Raises:
        LogbookError: no shipped hook has that name (the message names those that exist).
    """
    hooks = {hook.name: hook for hook in list_hooks()}
    if name not in hooks:
        raise LogbookError(
            f'no shipped hook "{name}" (shipped: {", ".join(hooks)})',
            hint='see "logbook hooks list"',
        )
    return hooks[name].path


def _summary(path: Path) -> str:
    """The first line of the script's docstring, less its 'name: a logbook hook that ' prefix."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError, UnicodeDecodeError):
        return ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    for prefix in (f"{path.name}: ", "a logbook hook that "):
        first = first.removeprefix(prefix)
    return first
