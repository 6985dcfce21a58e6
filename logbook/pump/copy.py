"""Copy one output stream of the child to where it was going and to a raw log, unchanged.

The copy moves fixed-size chunks, never lines, so memory stays bounded whatever the child prints,
and it does nothing else: parsing reads the raw log behind it. Between two pipes it uses tee(2)
and splice(2), so the bytes never pass through our memory; otherwise read/write. Standard library
only: it runs in the pump process, which must stay small and never load what the recorder loads.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time

from logbook.pump import _zerocopy

TYPE_CHECKING = False  # typing's own costs the pump's start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

CHUNK = 1 << 18
# A child writing line by line (Python unbuffered, logbook's default for its child) woke the pump
# once a line: two context switches a line, 1.4x the child's own wall under bench.py. After a
# move smaller than GATHER_BELOW the pump naps GATHER_S, so that the writes gather in the pipe
# without waking anyone: 0.8x instead (the unwrapped child wakes its reader once a line too).
# Output is held GATHER_S at most; a flood never naps. Not for a pty, whose buffer is a few KiB.
GATHER_S = 0.002
GATHER_BELOW = 64 << 10


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
        on_output: Callable[[], None] | None = None,
        on_gone: Callable[[str], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=f"logbook-pump-{name}", daemon=True)
        self.src = src
        self.dest = dest
        self.stream = name
        self.warn = warn
        self.on_output = on_output or (lambda: None)  # the hang watch's clock: must be cheap
        self.on_gone = on_gone or (lambda stream: None)  # our reader left: told before we close
        self.on_end = on_end or (lambda: None)  # the copy is over (wakes the pump's main thread)
        self.ended = False
        self.bytes = 0
        self.unlogged_bytes = 0
        self.reader_gone = False  # our own stdout/stderr was closed (e.g. `| head`)
        self._log_fd: int | None = None
        self._gather = _zerocopy.is_pipe(src)
        if self._gather:
            _zerocopy.widen_pipe(src)  # room for what gathers while we nap
        if log_path is not None:
            try:
                # Not O_APPEND: splice(2) refuses such files. We are the only writer of this log.
                self._log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT, 0o644)
                os.lseek(self._log_fd, 0, os.SEEK_END)
            except OSError as e:
                warn(
                    f"cannot write the raw {name} log {log_path}: {e.strerror}; output is not logged"
                )

    def run(self) -> None:
        try:
            try:
                if self.dest is not None and _zerocopy.available(self.src, self.dest):
                    _zerocopy.widen_pipe(self.dest)
                    self._copy_zero()
                else:
                    self._copy()
            except Exception as e:  # a bug of ours must not stop the training's output
                self.warn(f"{self.stream} copy failed ({e!r}); passing it on without the raw log")
                self._close_log()
                self._copy()
        finally:
            try:
                self._close_log()
                os.close(self.src)
            finally:
                self.ended = True
                self.on_end()

    def _nap(self, moved: int) -> None:
        if self._gather and moved < GATHER_BELOW:
            time.sleep(GATHER_S)

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
            self.on_output()
            self.bytes += len(data)
            if self.dest is not None:
                try:
                    write_all(self.dest, data)
                except OSError as e:
                    if e.errno in (errno.EPIPE, errno.EBADF):
                        # Our reader left; unwrapped, the child would now get EPIPE: close its side too.
                        self._gone()
                        return
                    self.warn(
                        f"cannot pass {self.stream} on ({e.strerror}); it still goes to the raw log"
                    )
                    self.dest = None
            if self._log_fd is not None:
                try:
                    write_all(self._log_fd, data)
                except OSError as e:
                    self._log_failed(e)
                    self.unlogged_bytes += len(data)
            else:
                self.unlogged_bytes += len(data)
            self._nap(len(data))

    def _copy_zero(self) -> None:
        assert self.dest is not None
        while True:
            try:
                n = _zerocopy.tee(self.src, self.dest, 1 << 20)
            except OSError as e:
                if e.errno == errno.EPIPE:
                    self._gone()
                    return
                if e.errno == errno.EINVAL:  # this kernel or these pipes cannot tee
                    self._copy()
                    return
                raise
            if n == 0:
                return
            self.on_output()
            self.bytes += n
            self._consume(n)
            self._nap(n)

    def _consume(self, n: int) -> None:
        """Take the `n` bytes just passed on out of the pipe: into the log, or dropped."""
        while n and self._log_fd is not None:
            try:
                n -= os.splice(self.src, self._log_fd, n)
            except InterruptedError:
                continue
            except OSError as e:
                self._log_failed(e)
        self.unlogged_bytes += n
        while n:
            n -= len(os.read(self.src, min(n, CHUNK)))

    def _gone(self) -> None:
        self.reader_gone = True
        self.on_gone(self.stream)

    def _log_failed(self, e: OSError) -> None:
        self.warn(f"raw {self.stream} log stopped: {e.strerror}; the output still reaches you")
        self._close_log()

    def _close_log(self) -> None:
        if self._log_fd is not None:
            try:
                os.close(self._log_fd)
            except OSError:
                pass
            self._log_fd = None
