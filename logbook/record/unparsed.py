"""Output not yet parsed when a reading command starts: wait for its parse, or say what is missing.

`logbook run` returns at most 1 s after its command ends (#15) and hands the output its end left
unparsed to a background finish (`record/finish.py`). A reading command that answered at once
would count the points parsed so far as if they were all: a loss curve cut short, a NaN not yet
raised, an attempt's last step too low, and nothing to say so. So the reading commands first wait
for the background finishes of the runs they read (`settle`), saying on stderr what they wait for;
`--no-wait` answers at once; a finish whose coverage stays still for STALL_S is waited for no
more. Whatever stays unparsed is named in a warning, with who parses it.

Neither waited for nor named: an attempt still recorded (its `logbook run` is alive). A live
run's points come as it runs and its status says so, and a reader that run started (a hook) would
otherwise wait for its own wrapper's finish. Named, not waited for: output whose finish is gone
(killed); a reader never writes, so `logbook reparse` or the next command that writes parses it
(`record/recover.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logbook.record import recover
from logbook.store import coverage, layout

POLL_S = 0.1
SAY_EVERY_S = 15.0
# A finish writes its coverage with each part (every 500,000 points: about a second): one whose
# coverage stays still this long is stopped, or on another host, where it cannot be asked
# whether it is alive (a shared folder), so the wait ends there.
STALL_S = 60.0


@dataclass(frozen=True)
class Unparsed:
    """An ended attempt's raw logs that are not all parsed, and who is parsing them: `finisher`
    (the background finish, `pid`) or `nobody`."""

    run: str
    attempt_id: str
    log_dir: Path
    bytes: int
    parser: str
    pid: int | None = None


def unparsed_logs(root: Path, run: str | None = None) -> list[Unparsed]:
    """The ended attempts of `run` (None: of every run) whose logs are not all parsed."""
    logs = root / layout.LOGS_DIR
    if not logs.is_dir():
        return []
    try:
        pattern = "run=*" if run is None else f"run={layout.check_run_name(run)}"
    except ValueError:  # not a run name: the command says so itself
        return []
    dirs = sorted(logs.glob(f"{pattern}/*/{coverage.NAME}"))
    dirs += sorted(logs.glob(f"{pattern}/*/node-*/{coverage.NAME}"))
    return [u for u in (_unparsed(root, cov.parent) for cov in dirs) if u is not None]


def _unparsed(root: Path, log_dir: Path) -> Unparsed | None:
    doc = coverage.read(log_dir)
    if doc is None or recover.recorder_alive(root, doc):
        return None  # a live run: its points come as it runs, and its status says so
    finisher = doc.get("finisher") if isinstance(doc.get("finisher"), dict) else None
    busy = finisher is not None and recover.finisher_alive(doc)
    if doc.get("complete") and not busy:
        return None  # parsed, the attempt's steps widened first (recover._parse_rest)
    sizes = {}
    for name, path in recover.log_files(log_dir).items():
        try:
            sizes[name] = path.stat().st_size
        except OSError:
            continue
    left = sum(b - a for spans in coverage.unparsed(doc, sizes).values() for a, b in spans)
    if not busy and not left:
        return None
    pid = finisher.get("pid") if busy and finisher is not None else None
    return Unparsed(
        str(doc.get("run")), str(doc.get("attempt_id")), log_dir, left,
        "finisher" if busy else "nobody", pid,
    )  # fmt: skip


def settle(
    root: Path,
    run: str | None = None,
    *,
    wait: bool = True,
    say: Callable[[str], Any],
) -> list[Unparsed]:
    """Wait until no background finish of `run` (None: of any run) is at work (if `wait`), then
    warn, through `say`, of each attempt whose output is still unparsed; those attempts."""
    pending = unparsed_logs(root, run)
    if wait and any(u.parser == "finisher" for u in pending):
        pending = _wait(root, pending, say)
    for u in pending:
        say(_warning(u))
    return pending


def _wait(root: Path, pending: list[Unparsed], say: Callable[[str], Any]) -> list[Unparsed]:
    busy = [u for u in pending if u.parser == "finisher"]
    mb = sum(u.bytes for u in busy) / 1e6
    runs = ", ".join(sorted({u.run for u in busy}))
    say(
        f"logbook: waiting for the background parse of {mb:.1f} MB of output of run {runs} "
        "(--no-wait: answer at once with what is on record)"
    )
    t0 = last_said = last_moved = time.monotonic()
    marks = _marks(busy)
    while busy:
        time.sleep(POLL_S)
        busy = [
            u for u in (_unparsed(root, u.log_dir) for u in busy) if u and u.parser == "finisher"
        ]
        now, moved = time.monotonic(), _marks(busy)
        if moved != marks:
            marks, last_moved = moved, now
        elif busy and now - last_moved >= STALL_S:
            say(
                f"logbook: the background parse has written nothing for {STALL_S:.0f} s (stopped, "
                "or on a host whose processes this one cannot see); answering without waiting more"
            )
            break
        if busy and now - last_said >= SAY_EVERY_S:
            say(f"logbook: still waiting for the background parse ({now - t0:.0f} s)")
            last_said = now
    return [u for u in (_unparsed(root, u.log_dir) for u in pending) if u is not None]


def _marks(busy: list[Unparsed]) -> list[tuple[Path, int]]:
    """When each busy attempt's coverage last moved (the finish writes it with each part)."""
    out = []
    for u in busy:
        try:
            out.append((u.log_dir, coverage.path_in(u.log_dir).stat().st_mtime_ns))
        except OSError:
            out.append((u.log_dir, 0))
    return out


def _warning(u: Unparsed) -> str:
    what = (
        f"logbook: {u.bytes / 1e6:.1f} MB of output of run {u.run} (attempt {u.attempt_id}) "
        "are not parsed yet: their metrics and steps are missing from this answer"
    )
    if u.parser == "finisher":
        return f"{what}; a background parse (pid {u.pid}) is at work on them"
    return f"{what}; `logbook reparse {u.run}` (or the next logbook run in this store) parses them"


__all__ = ["Unparsed", "settle", "unparsed_logs"]
