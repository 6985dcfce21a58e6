"""How an attempt ended, from its exit status and the signals logbook passed on.

Issue #3 grows this into crash classes with evidence; for now: completed, failed, killed, interrupted.
"""

from __future__ import annotations

import signal
from typing import Any


def signal_name(number: int | None) -> str | None:
    """SIGKILL for 9; None for None or a number this platform does not name."""
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def end_of(returncode: int, *, forwarded: int | None, killed_after_grace: bool) -> dict[str, Any]:
    """The attempt's end columns for a command that returned `returncode` (negative: a signal).

    Args:
        returncode: as Popen reports it.
        forwarded: the stopping signal (SIGINT/SIGTERM/SIGHUP) logbook passed on, if any.
        killed_after_grace: logbook killed the group when the grace period ran out.
    """
    sig = -returncode if returncode < 0 else None
    if returncode == 0:
        status = "completed"
    elif forwarded is not None or killed_after_grace:
        status = "interrupted"
    elif sig is not None:
        status = "killed"
    else:
        status = "failed"
    return {
        "status": status,
        "exit_code": None if sig else returncode,
        "signal": sig,
        "signal_name": signal_name(sig),
        "forwarded_signal": signal_name(forwarded),
    }
