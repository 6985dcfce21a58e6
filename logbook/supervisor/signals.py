"""Pass the signals the wrapper gets on to the child's process group; kill it after a grace period.

The handlers only record the signal and call kill(2): a Python signal handler runs in the main
thread between two bytecodes, perhaps inside a lock (threading's own, an import's), so starting a
timer thread or importing there can deadlock the wrapper. The rest (the grace deadline, ranks
that left the group) is done by `service()`, which the main thread calls after every signal (a
signal wakes it: logbook/pump/wakeup.py) and at `next_due()`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from logbook.exitcodes import signal_name

__all__ = ["FORWARDED", "STOPPING", "Forwarder", "signal_name"]

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
# These ask the job to stop; SIGUSR1/2 are notices (a SLURM warning, a checkpoint request).
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Forwarder:
    """Installs handlers that forward to the command's process group, and restores the old ones."""

    def __init__(
        self,
        *,
        grace_s: float,
        on_signal: Callable[[int], None],
        on_winch: Callable[[], None] | None = None,
    ) -> None:
        self.pgid: int | None = None  # set by attach() once the command exists
        self.grace_s = grace_s
        self.on_signal = on_signal  # called in the handler: must only queue work (SimpleQueue.put)
        self.on_winch = on_winch
        self.received: list[int] = []  # signals for the current attempt
        self.asked_to_stop: int | None = None  # the first stopping signal of the whole session
        self.killed_after_grace = False
        self._kill_at: float | None = None  # monotonic deadline for SIGKILL
        self._unsent_to_strays: list[int] = []
        self._strays: set[int] = set()
        self._old: dict[int, object] = {}

    def install(self) -> None:
        for sig in FORWARDED:
            self._old[sig] = signal.signal(sig, self._handle)
        self._old[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._winch)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._old.clear()

    def attach(self, pgid: int) -> None:
        """Start forwarding to `pgid`, passing on what arrived while the command was being started."""
        self.pgid = pgid
        for sig in self.received:
            self._killpg(sig)
            self._unsent_to_strays.append(sig)

    def detach(self) -> None:
        """The command has ended: stop forwarding to its group (the next attempt attaches anew)."""
        self.pgid = None
        self.received.clear()
        self.killed_after_grace = False
        self._kill_at = None
        self._unsent_to_strays.clear()
        self._strays.clear()

    def stop_group(self, grace_s: float) -> None:
        """Stop the command ourselves (a hang): SIGTERM now, SIGKILL after `grace_s`."""
        self._find_strays()
        self._killpg(signal.SIGTERM)
        self._signal_strays(signal.SIGTERM)
        if self._kill_at is None:
            self._kill_at = time.monotonic() + grace_s

    def service(self) -> None:
        """Main-thread work the handlers leave: signal strays, kill when the grace period is over."""
        if self.pgid is None:
            return
        if self._unsent_to_strays:
            self._find_strays()
            while self._unsent_to_strays:
                self._signal_strays(self._unsent_to_strays.pop(0))
        if (
            self._kill_at is not None
            and time.monotonic() >= self._kill_at
            and not self.killed_after_grace
        ):
            self.killed_after_grace = True
            self._find_strays()
            self._killpg(signal.SIGKILL)
            self._signal_strays(signal.SIGKILL)

    def next_due(self) -> float | None:
        """The monotonic time `service()` must run by (the SIGKILL after the grace period), or
        None while nothing is due; a signal's own work is due at once, and its signal wakes us."""
        if self.pgid is None:
            return None
        if self._unsent_to_strays:
            return time.monotonic()
        return None if self.killed_after_grace else self._kill_at

    @property
    def stopping(self) -> bool:
        """Has logbook itself been asked to stop (so it must not relaunch)?"""
        return self.asked_to_stop is not None

    @property
    def stopping_signal(self) -> int | None:
        """The first signal of this attempt that asked the command to stop, if any."""
        return next((s for s in self.received if s in STOPPING), None)

    # --- in the signal handler: record and kill(2), nothing else ---------------------------------

    def _handle(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        self._killpg(signum)
        if signum in STOPPING:
            self._unsent_to_strays.append(signum)
            if self.asked_to_stop is None:
                self.asked_to_stop = signum
            if self._kill_at is None and self.grace_s >= 0:
                self._kill_at = time.monotonic() + self.grace_s
        self.on_signal(signum)

    def _winch(self, signum: int, frame: object) -> None:
        if self.on_winch is not None:
            self.on_winch()  # ioctl(2) calls only
        self._killpg(signum)

    def _killpg(self, signum: int) -> None:
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already

    # --- in the main thread ---------------------------------------------------------------------

    def _find_strays(self) -> None:
        """Remember the command's descendants: once its leader is dead they are out of reach."""
        import psutil

        try:
            self._strays.update(p.pid for p in psutil.Process(self.pgid).children(recursive=True))
        except (psutil.Error, OSError, ValueError):
            pass

    def _signal_strays(self, signum: int) -> None:
        """The same signal to descendants that left the group (setsid'd ranks, daemons): the whole
        tree stops together."""
        for pid in list(self._strays):
            try:
                if os.getpgid(pid) != self.pgid:
                    os.kill(pid, signum)
            except (ProcessLookupError, PermissionError):
                self._strays.discard(pid)
