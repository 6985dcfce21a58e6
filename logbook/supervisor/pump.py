"""Copy one output stream of the child to the wrapper's own stream and to a raw log, unchanged.

The copy reads and writes fixed-size chunks, never lines, so memory stays bounded whatever the
child prints, and it does nothing else: parsing (a later issue) reads the raw log behind it.
"""

from __future__ import annotations

import errno
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 16


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte, waiting if the descriptor was left non-blocking by someone else."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


class Pump(threading.Thread):
    """Copies `src` to `dest` and to the file at `log_path` until the child closes it."""

    def __init__(
        self,
        src: int,
        dest: int | None,
        log_path: Path | None,
        *,
        name: str,
        warn: Callable[[str], None],
    ) -> None:
        super().__init__(name=f"logbook-pump-{name}", daemon=True)
        self.src = src
        self.dest = dest
        self.stream = name
        self.warn = warn
        self.bytes = 0
        self.unlogged_bytes = 0
        self.reader_gone = False  # our own stdout/stderr was closed (e.g. `| head`)
        self._log_fd: int | None = None
        if log_path is not None:
            try:
                self._log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as e:
                warn(
                    f"cannot write the raw {name} log {log_path}: {e.strerror}; output is not logged"
                )

    def run(self) -> None:
        try:
            self._copy()
        finally:
            if self._log_fd is not None:
                os.close(self._log_fd)
            os.close(self.src)

    def _copy(self) -> None:
        while True:
            try:
                data = os.read(self.src, CHUNK)
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.EIO:  # a pty whose child side is closed: end of output
                    return
                raise
            if not data:
                return
            self.bytes += len(data)
            if self.dest is not None:
                try:
                    write_all(self.dest, data)
                except (BrokenPipeError, OSError) as e:
                    if isinstance(e, BrokenPipeError) or e.errno in (errno.EPIPE, errno.EBADF):
                        # Our reader left; unwrapped, the child would now get EPIPE, so close its side too.
                        self.reader_gone = True
                        return
                    raise
            if self._log_fd is not None:
                try:
                    write_all(self._log_fd, data)
                except OSError as e:
                    self.warn(
                        f"raw {self.stream} log stopped: {e.strerror}; the output still reaches you"
                    )
                    os.close(self._log_fd)
                    self._log_fd = None
                    self.unlogged_bytes += len(data)
            else:
                self.unlogged_bytes += len(data)
