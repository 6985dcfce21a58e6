"""The snapshot row every capture module returns (see schemas/snapshots.json)."""

from __future__ import annotations

from typing import Literal, TypedDict

Status = Literal["ok", "unknown", "redacted", "truncated"]


class Row(TypedDict):
    """One snapshot row: what (`kind`, `name`), its value, and how far to trust it."""

    kind: str
    name: str
    value: str | None
    status: Status
    detail: str | None


def make_row(
    kind: str, name: str, value: str | None, status: Status = "ok", detail: str | None = None
) -> Row:
    """Build a row; a missing value is always `unknown`, so readers can rely on it.

    Args:
        kind: git, python, package, env, host, gpu, launcher or command.
        name: what the value is (`commit`, a package name, a variable name).
        value: the value as text, or None when it could not be read.
        status: ok, unknown, redacted or truncated.
        detail: why the value is unknown, redacted or truncated.

    Returns:
        The row as a dict.
    """
    if value is None:
        status = "unknown"
    return Row(kind=kind, name=name, value=value, status=status, detail=detail)


def unknown(kind: str, name: str, detail: str) -> Row:
    """Build a row for a value that could not be read, with the reason."""
    return make_row(kind, name, None, "unknown", detail)
