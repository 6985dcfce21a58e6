"""Start the command in its own session and process group, with a pty or a pipe per stream."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
import tty
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from logbook.pump import _zerocopy


@dataclass
class Stream:
    """One output stream of the child: the end it writes and the end we read."""

    name: str  # stdout or stderr
    ours: int  # the descriptor of the wrapper's own stream (1 or 2)
    read_fd: int
    write_fd: int
    is_pty: bool


def open_stream(name: str, ours: int, tty_mode: str) -> Stream:
    """A pty when `ours` is a terminal (or tty_mode is 'always'), else a pipe."""
    use_pty = tty_mode == "always" or (tty_mode == "auto" and os.isatty(ours))
    if use_pty:
        master, slave = os.openpty()
        # Raw on the child's side: bytes pass unchanged, our real terminal does its own processing.
        tty.setraw(slave)
        copy_window_size(ours, master)
        return Stream(name, ours, master, slave, True)
    r, w = os.pipe()
    _zerocopy.widen_pipe(w)
    return Stream(name, ours, r, w, False)


def copy_window_size(src_fd: int, pty_fd: int) -> None:
    """Give the pty the size of our terminal (no-op when ours is not one)."""
    try:
        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(pty_fd, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def spawn(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None,
    stdout: Stream,
    stderr: Stream,
) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of a new session (so of a new process group).

    Raises:
        OSError: the command could not be started (not found, not executable, bad cwd).
    """
    try:
        return subprocess.Popen(
            list(command),
            stdin=None,
            stdout=stdout.write_fd,
            stderr=stderr.write_fd,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        # The child holds its ends now; ours must close so that its exit reads as end of output.
        os.close(stdout.write_fd)
        os.close(stderr.write_fd)
