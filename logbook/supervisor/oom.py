"""Did the kernel's OOM killer end the command? Its memory cgroup counts the kills.

cgroup v2 keeps `oom_kill N` in memory.events, v1 in memory.oom_control. We read the counter of
the command's cgroup when it starts and again when it ends; a rise, with the command dead of
SIGKILL, is proof rather than a guess. dmesg, where readable, adds the kernel's own line.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_ROOTS = (CGROUP_ROOT, CGROUP_ROOT / "memory", CGROUP_ROOT / "unified")
_KILLED = re.compile(
    r"(?:Out of memory|Memory cgroup out of memory): Killed process (\d+) \(([^)]*)\)"
)


def _counter_file(pid: int) -> Path | None:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hier, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.lstrip("/")
        if "memory" in controllers.split(","):  # v1
            f = CGROUP_ROOT / "memory" / rel / "memory.oom_control"
            if f.is_file():
                return f
        if hier == "0" and controllers == "":  # v2, mounted at the root or under unified/
            for base in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
                f = base / rel / "memory.events"
                if f.is_file():
                    return f
    return None


def _alive(pid: int) -> bool:
    """Whether `pid` runs (not a zombie, not gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] not in (["Z"], ["X"])


def _read_count(f: Path) -> int | None:
    try:
        for line in f.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


class OomWatch:
    """The OOM-kill counter of a process's memory cgroup, read at start and on demand."""

    def __init__(self, pid: int, before: OomWatch | None = None) -> None:
        """`before`: the wrapper's own cgroup read before the spawn, where the command starts.
        Read only after it, the count missed a command killed at once (a first allocation
        too big) while the wrapper was still importing, and its OOM kill went unproven."""
        # A command already dead (a zombie) reads as in the root cgroup (v1): then the cgroup it
        # started in is the wrapper's.
        own = _counter_file(pid) if _alive(pid) or before is None else None
        if before is not None and own is not None and own.parent in _ROOTS:
            own = None  # an exiting command is moved to the root cgroup (v1) before its zombie
        self.file: Path | None = own or (before.file if before is not None else None)
        self.start: int | None
        if before is not None and before.file == self.file:
            self.start = before.start
        else:
            self.start = _read_count(self.file) if self.file else None

    def kills_since_start(self) -> int:
        if self.file is None or self.start is None:
            return 0
        now = _read_count(self.file)
        return max(0, (now or 0) - self.start)

    @property
    def cgroup(self) -> str | None:
        return str(self.file.parent) if self.file else None


def kernel_lines(limit: int = 5) -> list[str]:
    """The kernel log's last OOM-kill lines, where dmesg may be read (often it may not)."""
    try:
        out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=3).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if _KILLED.search(line)][-limit:]
