"""Pass the signals the wrapper gets on to the child's process group; kill it after a grace period."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
# These ask the job to stop; SIGUSR1/2 are notices (a SLURM warning, a checkpoint request).
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def signal_name(number: int | None) -> str | None:
    """SIGKILL for 9; None for None or a number this platform does not name."""
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


class Forwarder:
    """Installs handlers that forward to process group `pgid`, and restores the old ones."""

    def __init__(
        self,
        *,
        grace_s: float,
        on_signal: Callable[[int], None],
        on_winch: Callable[[], None] | None = None,
    ) -> None:
        self.pgid: int | None = None  # set by attach() once the child exists
        self.grace_s = grace_s
        self.on_signal = on_signal  # called in the main thread; must only queue work
        self.on_winch = on_winch
        self.received: list[int] = []  # signals for the current attempt
        self.asked_to_stop: int | None = None  # the first stopping signal of the whole session
        self._strays: set[int] = set()
        self.killed_after_grace = False
        self._timer: threading.Timer | None = None
        self._old: dict[int, object] = {}

    def install(self) -> None:
        for sig in FORWARDED:
            self._old[sig] = signal.signal(sig, self._handle)
        self._old[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._winch)

    def attach(self, pgid: int) -> None:
        """Start forwarding to `pgid`, passing on what arrived while the child was being started."""
        self.pgid = pgid
        for sig in self.received:
            self._send(sig)
        if self.killed_after_grace:
            self._send(signal.SIGKILL)

    def detach(self) -> None:
        """The command has ended: stop forwarding to its group (the next attempt attaches anew)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self.pgid = None
        self._strays.clear()
        self.received.clear()
        self.killed_after_grace = False

    def stop_group(self, grace_s: float) -> None:
        """Stop the command ourselves (a hang): SIGTERM now, SIGKILL after `grace_s`."""
        self._send(signal.SIGTERM)
        if self._timer is None:
            self._timer = threading.Timer(grace_s, self._kill)
            self._timer.daemon = True
            self._timer.start()

    @property
    def stopping(self) -> bool:
        """Has logbook itself been asked to stop (so it must not relaunch)?"""
        return self.asked_to_stop is not None

    def restore(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._old.clear()

    @property
    def stopping_signal(self) -> int | None:
        """The first signal received that asked the job to stop, if any."""
        return next((s for s in self.received if s in STOPPING), None)

    def _handle(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if signum in STOPPING and self.asked_to_stop is None:
            self.asked_to_stop = signum
        self._send(signum)
        self.on_signal(signum)
        if signum in STOPPING and self._timer is None and self.grace_s >= 0:
            self._timer = threading.Timer(self.grace_s, self._kill)
            self._timer.daemon = True
            self._timer.start()

    def _winch(self, signum: int, frame: object) -> None:
        if self.on_winch is not None:
            self.on_winch()
        self._send(signum)

    def _kill(self) -> None:
        self.killed_after_grace = True
        self._send(signal.SIGKILL)

    def _send(self, signum: int) -> None:
        if self.pgid is None:
            return
        stopping = signum in (*STOPPING, signal.SIGKILL)
        if stopping:
            self._find_strays()  # before the signal: once the leader is dead its tree is out of reach
        try:
            os.killpg(self.pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already
        if stopping:
            self._send_to_strays(signum)

    def _find_strays(self) -> None:
        import psutil

        try:
            self._strays.update(p.pid for p in psutil.Process(self.pgid).children(recursive=True))
        except (psutil.Error, OSError):
            pass

    def _send_to_strays(self, signum: int) -> None:
        """The same signal to descendants that left the group (setsid'd ranks, daemons): the whole
        tree stops together (#3). Those seen once are remembered, for after their parent died."""
        for pid in list(self._strays):
            try:
                if os.getpgid(pid) != self.pgid:
                    os.kill(pid, signum)
            except (ProcessLookupError, PermissionError):
                self._strays.discard(pid)
