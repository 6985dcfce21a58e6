"""Xid lines from the kernel log, read as they come.

The NVIDIA driver reports GPU faults as `NVRM: Xid (PCI:0000:3b:00): 79, pid=..., GPU has fallen
off the bus.` in the kernel ring buffer. We open /dev/kmsg once per attempt, non-blocking, move to
its end, and each tick read the records that arrived since: no process started, no old lines
re-read. Where /dev/kmsg cannot be opened (kernel.dmesg_restrict without root, a container
without it), the sampler records that once and goes on without.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass

KMSG = "/dev/kmsg"
# Per tick, at most this many records: a storm of kernel messages costs the wrapper little, and
# what is left is read on the next tick.
MAX_RECORDS = 256
_READ_SIZE = 16384  # larger than any /dev/kmsg record (a read must take a whole one)
# The device and code as leptonai/gpud reads them (ecosystem.md 1.5); old drivers print the bus
# id without "PCI:".
_XID = re.compile(
    r"NVRM: Xid \((?P<device>(?:PCI:)?[0-9a-fA-F:.]+)\): (?P<xid>\d+),?\s*(?P<text>.*)"
)
# A /dev/kmsg record: "priority,sequence,microseconds,flags[,...];message".
_KMSG_HEADER = re.compile(r"^\d+,\d+,\d+,[^;]*;")
# Xids caused by the application rather than the machine (Determined AI's GPU-health convention).
APPLICATION_XIDS = frozenset({13, 31, 43, 45})


@dataclass(frozen=True)
class Xid:
    """One Xid report: its number, the GPU's PCI address, and the driver's words."""

    xid: int
    device: str
    text: str
    line: str

    @property
    def likely_cause(self) -> str:
        """ "application" for the Xids a program causes (13, 31, 43, 45), else "hardware"."""
        return "application" if self.xid in APPLICATION_XIDS else "hardware"


def parse_xid(line: str) -> Xid | None:
    """The Xid a kernel log line reports, if it reports one.

    Takes lines as dmesg prints them (`[12.3] NVRM: Xid ...`, `-T` times, journalctl's prefix) and
    as /dev/kmsg gives them (`3,1234,5678,-;NVRM: Xid ...`).
    """
    m = _XID.search(line)
    if m is None:
        return None
    return Xid(int(m.group("xid")), m.group("device"), m.group("text").strip(), line.strip())


class KernelLog:
    """The kernel log's lines that arrive after it is opened.

    Raises (on opening):
        OSError: the log cannot be read (EPERM under dmesg_restrict, ENOENT in some containers).
    """

    def __init__(self, path: str = KMSG) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.lseek(self._fd, 0, os.SEEK_END)  # on /dev/kmsg: after the newest record
        except OSError:
            os.close(self._fd)
            raise
        self._partial = b""

    def new_lines(self, limit: int = MAX_RECORDS) -> list[str]:
        """The lines that arrived since the last call (at most about `limit`), messages only."""
        chunks: list[bytes] = []
        for _ in range(limit):
            try:
                chunk = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break  # /dev/kmsg: nothing new
            except OSError as e:
                if e.errno == errno.EPIPE:
                    continue  # records were overwritten before we read them; go on with the next
                raise
            if not chunk:
                break  # a plain file: its end
            chunks.append(chunk)
        data = self._partial + b"".join(chunks)
        *whole, self._partial = data.split(b"\n")
        lines = []
        for raw in whole:
            if not raw or raw[:1] == b" ":
                continue  # /dev/kmsg's continuation lines (SUBSYSTEM=..., DEVICE=...)
            text = raw.decode("utf-8", "replace")
            lines.append(_KMSG_HEADER.sub("", text, count=1))
        return lines

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass
