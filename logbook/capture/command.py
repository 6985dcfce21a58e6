"""The command line and working directory, secrets in arguments redacted."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from logbook.capture._row import Row, make_row
from logbook.record.redact import redact_command


def capture_command(command: Sequence[str], cwd: Path) -> list[Row]:
    """Describe the command line (as a JSON list, secrets redacted) and its directory.

    Args:
        command: the training command and its arguments.
        cwd: the directory it runs in.

    Returns:
        `command` rows named argv and cwd.
    """
    argv = redact_command(command)
    text = json.dumps(argv)
    if argv != list(command):
        row = make_row("command", "argv", text, "redacted", "secret arguments replaced with ***")
    else:
        row = make_row("command", "argv", text)
    # Absolute, so the record means the same thing read from anywhere.
    return [row, make_row("command", "cwd", os.path.abspath(cwd))]
