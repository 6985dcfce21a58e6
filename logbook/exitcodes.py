"""Exit codes of the logbook command. `logbook run` exits with the training's own code instead."""

from __future__ import annotations

import signal
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # a LogbookError: unknown run, unreadable store, ...
    USAGE = 2  # bad flags, missing command after --, bad SQL
    INTERNAL = 3  # a bug in logbook; the message says how to see the traceback
    SIGNAL_BASE = 128  # `logbook run`: 128 + N when signal N ended the command


def signal_name(number: int | None) -> str | None:
    """SIGKILL for 9; None for None or a number this platform does not name."""
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return None
