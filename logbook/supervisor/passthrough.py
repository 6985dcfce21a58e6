"""The recorder's side of the training's output: start the pump process, hear what it says, and
take its work over if it dies.

The pump (logbook/pump) is a process of its own so that a crash or kill of the recorder leaves the
training and its output untouched. Should the pump itself die first, the recorder still holds a
copy of each stream's read end and goes on copying in threads of its own, as logbook did before it
had a pump; a stream whose reader went away (`| head`) is closed here too, so that the training
gets its broken pipe as it would unwrapped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import logbook
from logbook.exitcodes import signal_name
from logbook.pump.copy import Pump
from logbook.supervisor.launch import Stream


class Passthrough:
    """The output of one attempt on its way to where it was going and to the raw logs."""

    def __init__(
        self,
        streams: Sequence[Stream],
        log_dir: Path | None,
        *,
        warn: Callable[[str], None],
        on_output: Callable[[], None],
    ) -> None:
        self.streams = list(streams)
        self.logs = {s.name: (log_dir / f"{s.name}.log" if log_dir else None) for s in streams}
        self.warn = warn
        self.on_output = on_output
        self.reader_gone = False
        self.pump_pid: int | None = None
        self._open = {s.name: s.read_fd for s in streams}  # our copies, until the stream ends
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._threads: list[Pump] = []
        self._control: int | None = None  # our end of the pump's control pipe

    def start(self) -> None:
        """Start copying the streams, before the command starts writing into them."""
        try:
            self._start_pump()
        except OSError as e:  # no interpreter to start, no fds left: copy in our own threads
            self.warn(f"cannot start the output pump ({e}); logbook copies the output itself")
            self._take_over(list(self._open))

    def attach(self, pgid: int) -> None:
        """Tell the pump the command's process group, for the signals it forwards once we are
        gone; then the control pipe stays open until we exit (its end tells the pump so)."""
        if self._control is None:
            return
        try:
            os.write(self._control, f"pgid {pgid}\n".encode())
        except OSError:
            pass

    def _start_pump(self) -> None:
        status_r, status_w = os.pipe()
        control_r, control_w = os.pipe()
        os.set_inheritable(control_w, False)
        spec = {
            "parent": os.getpid(),
            "status": status_w,
            "control": control_r,
            "streams": [
                {
                    "name": s.name,
                    "fd": s.read_fd,
                    "dest": s.ours,
                    "log": str(self.logs[s.name]) if self.logs[s.name] else None,
                    "pty": s.is_pty,
                }
                for s in self.streams
            ],
        }
        # -S: no site-packages scan and no .pth side effects; the pump needs the standard library
        # and this very copy of logbook, which PYTHONPATH names.
        package_root = str(Path(logbook.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        try:
            proc = subprocess.Popen(
                [sys.executable, "-S", "-m", "logbook.pump", json.dumps(spec)],
                stdin=subprocess.DEVNULL,
                pass_fds=[status_w, control_r, *self._open.values()],
                env=env,
                close_fds=True,
            )
        except OSError:
            os.close(control_w)
            raise
        finally:
            os.close(status_w)
            os.close(control_r)
        self._control = control_w
        self.pump_pid = proc.pid
        threading.Thread(
            target=self._listen, args=(proc, status_r), name="logbook-pump-status", daemon=True
        ).start()

    def _listen(self, proc: subprocess.Popen[bytes], status_r: int) -> None:
        """Read the pump's status lines until it exits; then take over what it left unfinished."""
        with os.fdopen(status_r, "rb", buffering=0) as f:
            for raw in iter(f.readline, b""):
                word, _, rest = raw.decode("utf-8", "replace").rstrip("\n").partition(" ")
                if word == "o":
                    self.on_output()
                elif word == "gone":
                    self.reader_gone = True
                    self._close(rest)
                elif word == "done":
                    self._close(rest.split(" ")[0])
                elif word == "warn":
                    self.warn(rest)
        proc.wait()
        left = list(self._open)
        if left:
            _end_the_line(self.logs.get("stderr"))
            self.warn(
                f"the output pump stopped ({_how(proc.returncode)}); logbook copies the "
                f"output on itself ({', '.join(left)})"
            )
            self._take_over(left)
        else:
            self._done.set()

    def _take_over(self, names: list[str]) -> None:
        by_name = {s.name: s for s in self.streams}
        with self._lock:
            fds = {n: self._open.pop(n) for n in names if n in self._open}
        for name, fd in fds.items():
            s = by_name[name]
            pump = Pump(
                fd,
                s.ours,
                self.logs[name],
                name=name,
                warn=self.warn,
                on_output=self.on_output,
            )
            self._threads.append(pump)
            pump.start()  # it closes fd at its end
        self._done.set()

    def resize(self) -> None:
        """Give the ptys the size of our terminal (a SIGWINCH; the pump, in our process group, gets
        the kernel's own, but one sent to us alone must reach the training too)."""
        from logbook.supervisor.launch import copy_window_size

        with self._lock:
            for s in self.streams:
                if s.is_pty and s.name in self._open:
                    copy_window_size(s.ours, self._open[s.name])

    def _close(self, name: str) -> None:
        with self._lock:
            fd = self._open.pop(name, None)
        if fd is not None:
            os.close(fd)

    def join(self, timeout: float) -> None:
        """Wait, at most `timeout` seconds, for the output to end (grandchildren may hold it open;
        the pump goes on copying for them after we have gone)."""
        deadline = time.monotonic() + timeout
        self._done.wait(timeout)
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self.reader_gone = self.reader_gone or any(t.reader_gone for t in self._threads)


def _end_the_line(stderr_log: Path | None) -> None:
    """Put our warning on a line of its own when the training's stderr stopped mid-line (an
    unbuffered `print` writes the text and its newline apart): its raw log ends as it did."""
    if stderr_log is None:
        return
    try:
        with open(stderr_log, "rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return
            f.seek(-1, os.SEEK_END)
            if f.read(1) in (b"\n", b"\r"):
                return
        sys.stderr.write("\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _how(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal_name(-returncode) or f'signal {-returncode}'}"
    return f"exit {returncode}"
