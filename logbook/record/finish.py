"""The rest of an attempt's logs, parsed off the path of the job (#15).

`logbook run` parses what the command left for at most 1 s after it ends (--catch-up): the
job's exit is never held longer by parsing. What is still unparsed then is handed to a detached
process, `logbook reparse RUN --rest --attempt-id ID`, which waits for the recorder to close the
attempt, parses the rest through recovery (`record/recover.py`, the recorder's own path) and
marks the logs parsed. A detached process, not a thread: `logbook run` returns (and so does the
shell script or scheduler that waits for it) while it works. It is named in the coverage file
(`finisher`), so that no other writer parses the same rest meanwhile; if it dies, the coverage
still says what is unparsed, and the next writer's recovery (or `logbook reparse`) finishes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def start_background(store_root: Path, run: str, attempt_id: str) -> dict[str, Any] | None:
    """Start the background finish of one attempt; its owner record (see `store/owner.py`), or
    None if it could not be started (then the next writer finishes the logs)."""
    from logbook.store import owner

    if os.environ.get("LOGBOOK_TEST_NO_FINISHER"):  # tests: leave the rest to the next writer
        return None
    command = [
        sys.executable, "-m", "logbook", "reparse", run, "--rest",
        "--attempt-id", attempt_id, "--store", str(store_root),
    ]  # fmt: skip
    # Through a shell that exits at once: the finisher is nobody's child (no zombie, no wait).
    script = '"$@" </dev/null >/dev/null 2>&1 & echo $!'
    try:
        out = subprocess.run(
            ["/bin/sh", "-c", script, "sh", *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C at the terminal does not reach it
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            timeout=10,
            check=True,
        ).stdout
        pid = int(out.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return {
        **owner.me(),
        "pid": pid,
        "pid_start": owner.process_start(pid),
    }
