"""The pump process: copy the training's streams, tell the recorder what it sees, outlive it.

Started by the recorder as `python -m logbook.pump SPEC`, where SPEC is JSON:

    {"parent": PID, "status": FD, "control": FD,
     "streams": [{"name": "stdout", "fd": FD, "dest": 1, "log": PATH | null, "pty": false}, ...]}

It starts before the training (so that no output is ever written into a pipe nobody reads, even
if the recorder dies a moment after the spawn), and learns the training's process group from the
control pipe: one line `pgid N`.

It writes one line per fact to the status pipe, never blocking on it (a recorder that is busy or
dead must not hold the training's output back; a line that does not fit is dropped):

    o                          output was seen (at most every PING_S): the hang watch's clock
    gone NAME                  NAME's reader went away (`| head`): the recorder closes its copy
    warn TEXT                  something the recorder should say (a raw log that stopped)
    done NAME BYTES UNLOGGED   NAME reached its end

While the recorder lives, the stopping signals are its to forward; the pump ignores them and ends
when the training's output does. Once the recorder is gone (its pid is no longer our parent), the
pump forwards them to the training's process group itself, so Ctrl-C and `scancel` still reach it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import threading
import time

from logbook.pump.copy import Pump
from logbook.pump.wakeup import Wakeup

PING_S = 0.2  # "o" at most this often: the recorder's hang watch and log follower need no more
END_CHECK_S = 30.0
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


class Status:
    """The write end of the status pipe: non-blocking, and silent once the recorder is gone."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self._lock = threading.Lock()
        self._last_ping = 0.0
        if fd is not None:
            os.set_blocking(fd, False)

    def say(self, line: str) -> None:
        if self.fd is None:
            return
        data = (line.replace("\n", " ") + "\n").encode("utf-8", "replace")
        with self._lock:
            try:
                os.write(self.fd, data)
            except BlockingIOError:
                pass  # the recorder is behind: a status line is worth less than the output
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.EBADF):
                    self.fd = None  # the recorder is gone; we go on without it

    def ping(self) -> None:
        now = time.monotonic()
        if now - self._last_ping >= PING_S:
            self._last_ping = now
            self.say("o")


def main(argv: list[str]) -> int:
    try:
        spec = json.loads(argv[0])
        parent = int(spec["parent"])
        streams = list(spec["streams"])
    except (IndexError, ValueError, KeyError, TypeError) as e:
        print(f"logbook pump: bad spec: {e}", file=sys.stderr)
        return 2
    status = Status(spec.get("status"))
    wake = Wakeup()  # the main thread sleeps until a copy ends or a signal comes, nothing else
    wake.catch_signals()
    ptys = [(s["fd"], s["dest"]) for s in streams if s.get("pty")]
    group: list[int] = []  # the training's process group, once the recorder names it
    if spec.get("control") is not None:
        threading.Thread(target=_listen, args=(spec["control"], group), daemon=True).start()
    _handle_signals(parent, group, ptys)
    pumps = [
        Pump(
            s["fd"],
            s["dest"],
            s.get("log"),
            name=s["name"],
            warn=lambda text: status.say(f"warn {text}"),
            on_output=status.ping,
            on_gone=lambda name: status.say(f"gone {name}"),
            on_end=wake.poke,
        )
        for s in streams
    ]
    for p in pumps:
        p.start()
    pending = list(pumps)
    while pending:
        # Signal handlers run in this thread only: it sleeps on the wake-up pipe, which signals
        # and the end of each copy write into (a timer here would cost CPU through a whole
        # training). The timeout is a belt: a copy that ended without its poke is seen anyway.
        wake.wait(END_CHECK_S)
        for p in [p for p in pending if p.ended or not p.is_alive()]:
            p.join()
            pending.remove(p)
            status.say(f"done {p.stream} {p.bytes} {p.unlogged_bytes}")
    return 0


def _listen(fd: int, group: list[int]) -> None:
    """Read `pgid N` from the recorder's control pipe (it closes the pipe when it dies)."""
    with os.fdopen(fd, "rb", buffering=0) as f:
        for line in iter(f.readline, b""):
            word, _, value = line.decode("ascii", "replace").strip().partition(" ")
            if word == "pgid" and value.isdigit():
                group[:] = [int(value)]


def _handle_signals(parent: int, group: list[int], ptys: list[tuple[int, int]]) -> None:
    def stopping(sig: int, frame: object) -> None:
        if os.getppid() == parent or not group:
            return  # the recorder got it too, and forwards it (or there is no training yet)
        try:
            os.killpg(group[0], sig)
        except OSError:
            pass

    def winch(sig: int, frame: object) -> None:
        import fcntl
        import termios

        for pty_fd, dest in ptys:
            try:
                size = fcntl.ioctl(dest, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(pty_fd, termios.TIOCSWINSZ, size)
            except OSError:
                pass

    for name in FORWARDED:
        signal.signal(getattr(signal, name), stopping)
    if ptys:
        signal.signal(signal.SIGWINCH, winch)
