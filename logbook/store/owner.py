"""Who owns a journal or a lock, and whether that process still lives.

A file that stands for a running process (a wrapper's journal, a compaction's lock) records its
owner: host, pid, the pid's start time and the pid namespace. On the same host and in the same pid
namespace the owner is alive exactly when that pid exists with that start time (a reused pid has
another). From another host, or another container, pids mean nothing: the owner touches its file
as a heartbeat, and one silent for longer than a limit counts as dead.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any


def pid_namespace() -> str | None:
    """Which pid namespace we are in: containers on one host share a hostname but not pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_start(pid: int) -> float | None:
    """When `pid` started; None if there is no such process, or only its zombie (killed, not yet
    waited for by its parent: it does nothing any more)."""
    if sys.platform.startswith("linux"):  # psutil's own figure, without its import (29 ms of
        return _linux_start(pid)  # `logbook run` before its command starts, #15)
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except (psutil.Error, OSError):
        return None


def _linux_start(pid: int) -> float | None:
    """/proc/PID/stat's start (clock ticks after boot) plus /proc/stat's boot time: what psutil's
    `create_time` computes on Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) "
        if fields[0] == b"Z":
            return None
        ticks = int(fields[19])
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def me() -> dict[str, Any]:
    """This process as an owner: host, pid, pid_start, pid_namespace."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": process_start(os.getpid()),
        "pid_namespace": pid_namespace(),
    }


def is_alive(doc: dict[str, Any], age_s: float, stale_after_s: float) -> bool:
    """Is the owner recorded in `doc` (as `me()` writes it) still running?

    Args:
        age_s: seconds since the owner last touched its file.
        stale_after_s: how long a silent owner we cannot ask the kernel about stays alive.
    """
    if doc.get("host") == socket.gethostname() and doc.get("pid_namespace") == pid_namespace():
        pid = doc.get("pid")
        if not isinstance(pid, int):
            return age_s < stale_after_s
        started = process_start(pid)
        want = doc.get("pid_start")
        return started is not None and (want is None or abs(started - float(want)) < 1.0)
    return age_s < stale_after_s
