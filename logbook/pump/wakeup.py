"""Sleep in the main thread until something happens, not until a timer says to look.

Python runs signal handlers in the main thread only, and the kernel may hand a process's signal to
any of its threads: a main thread asleep in a lock or a timed wait would run the handler (our
Ctrl-C forwarding) only when it next wakes, which is why the wrapper used to wake every fraction of
a second. Here the main thread sleeps in poll(2) on a self-pipe that is also the signal wake-up
fd (signal.set_wakeup_fd): a signal, on whichever thread, writes a byte into it, and so does any
thread that calls `poke()` (a child that exited, a copy that ended). Idle, nothing wakes it.
Standard library only: the pump uses it too.
"""

from __future__ import annotations

import math
import os
import select
import signal
import threading

MAX_SLEEP_S = 3600.0  # poll(2) takes a C int of milliseconds; callers look again when woken


class Wakeup:
    """A self-pipe the main thread waits on; signals and `poke()` wake it."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        for fd in (self._r, self._w):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        self._old_fd: int | None = None  # the wake-up fd we replaced, while ours is set
        self._lock = threading.Lock()  # a poke never writes into a closed (perhaps reused) fd

    def catch_signals(self) -> bool:
        """Make signals wake `wait()`; False outside the main thread, where Python refuses it
        (then the caller must wake on a timer to let handlers run)."""
        try:
            self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        except ValueError:
            return False
        return True

    def poke(self) -> None:
        """Wake the waiter (from any thread). Never blocks; a full pipe is already a wake-up."""
        with self._lock:
            if self._w < 0:
                return  # closed: nobody waits any more
            try:
                os.write(self._w, b"\0")
            except OSError:  # full: it wakes anyway
                pass

    def wait(self, timeout: float | None) -> None:
        """Sleep until a signal, a poke or `timeout` seconds (None: no limit), whichever is first.

        A signal handler runs before this returns (poll is retried after it, PEP 475)."""
        poller = select.poll()  # not select(2): a descriptor past 1024 would not fit its set
        poller.register(self._r, select.POLLIN)
        ms = None if timeout is None else max(0, math.ceil(min(timeout, MAX_SLEEP_S) * 1000))
        poller.poll(ms)
        try:
            while os.read(self._r, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Give the signal wake-up fd back, then close the pipe."""
        if self._old_fd is not None:
            try:
                signal.set_wakeup_fd(self._old_fd)
            except ValueError:
                pass
            self._old_fd = None
        with self._lock:
            for fd in (self._r, self._w):
                if fd >= 0:
                    os.close(fd)
            self._r = self._w = -1
