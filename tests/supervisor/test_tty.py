"""On a terminal the command gets a pseudo-terminal per stream, with our window size, kept current."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from helpers import logbook_cmd

PROBE = """
import os, signal, sys, time
def report(*_):
    cols, rows = os.get_terminal_size(1)
    print(f"tty={sys.stdout.isatty()},{sys.stderr.isatty()} size={cols}x{rows}", flush=True)
signal.signal(signal.SIGWINCH, report)
report()
print("\\x1b[32mgreen\\x1b[0m line one\\nline two", flush=True)
time.sleep(float(sys.argv[1]))
"""


def _read_until(fd: int, needle: bytes, timeout: float = 20.0) -> bytes:
    out = b""
    end = time.monotonic() + timeout
    while needle not in out:
        assert time.monotonic() < end, out
        try:
            out += os.read(fd, 4096)
        except OSError:
            break
    return out


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_command_on_a_terminal_sees_a_terminal_of_our_size(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    master, slave = os.openpty()
    _set_size(slave, 123, 45)
    proc = subprocess.Popen(
        logbook_cmd(
            "run",
            "--store",
            str(tmp_path / "s"),
            "--run",
            "tty",
            "--no-capture",
            "--",
            sys.executable,
            str(script),
            "3",
        ),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    try:
        out = _read_until(master, b"line two")
        assert b"tty=True,True size=123x45" in out
        # Bytes unchanged: our terminal (the outer pty) adds its own \r before \n, the inner one adds none.
        assert b"\x1b[32mgreen\x1b[0m line one\r\nline two" in out
        _set_size(master, 90, 20)
        time.sleep(0.2)
        proc.send_signal(signal.SIGWINCH)  # what the kernel sends our group when the window changes
        assert b"size=90x20" in _read_until(master, b"size=90x20")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


def test_no_tty_forces_pipes(tmp_path: Path) -> None:
    master, slave = os.openpty()
    proc = subprocess.Popen(
        logbook_cmd(
            "run",
            "--store",
            str(tmp_path / "s"),
            "--no-tty",
            "--no-capture",
            "--",
            sys.executable,
            "-c",
            "import sys; print(sys.stdout.isatty(), sys.stderr.isatty())",
        ),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    try:
        assert b"False False" in _read_until(master, b"False False")
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(master)


def test_tty_forces_a_pty_on_pipes(run_logbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = run_logbook(
        "run",
        "--store",
        str(tmp_path / "s"),
        "--tty",
        "--no-capture",
        "--",
        sys.executable,
        "-c",
        "import sys; print(sys.stdout.isatty(), sys.stderr.isatty())",
        check=0,
    )
    assert p.stdout == b"True True\n"
