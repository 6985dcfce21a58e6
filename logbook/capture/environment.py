"""The environment the command gets, one row per variable, secrets redacted."""

from __future__ import annotations

from collections.abc import Mapping

from logbook.capture._row import Row, make_row
from logbook.record.redact import redact_value

# A few variables (LS_COLORS, exported shell functions) run to kilobytes; the cap keeps
# one odd variable from bloating every snapshot.
VALUE_CAP_CHARS = 32 * 1024


def capture_env(env: Mapping[str, str]) -> list[Row]:
    """Describe the environment, one `env` row per variable, sorted by name.

    Args:
        env: the environment the command gets.

    Returns:
        Rows with the value as it is (ok), hidden ("***", redacted, detail "secret
        name"), with secrets inside it replaced (redacted, "token-like value"), or cut
        at `VALUE_CAP_CHARS` (truncated).
    """
    rows = []
    for name in sorted(env):
        value, reason = redact_value(name, env[name])
        if reason:
            rows.append(make_row("env", name, value, "redacted", reason))
        elif len(value) > VALUE_CAP_CHARS:
            detail = f"first {VALUE_CAP_CHARS} of {len(value)} characters"
            rows.append(make_row("env", name, value[:VALUE_CAP_CHARS], "truncated", detail))
        else:
            rows.append(make_row("env", name, value))
    return rows
