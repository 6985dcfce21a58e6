"""Structured reports found in logs: Python tracebacks and torchrun's failure report."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logbook.forensics.logtail import LogTail, rank_tag

_TRACEBACK = "Traceback (most recent call last):"
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?$')
_EXC = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")
_LIBRARY = re.compile(r"[/\\](?:site-packages|dist-packages|lib[/\\]python\d)|^<")
_MAX_TRACEBACK_LINES = 400


@dataclass(frozen=True)
class Frame:
    """One `File "...", line N, in f` of a traceback."""

    file: str
    line: int
    function: str | None


@dataclass(frozen=True)
class PythonException:
    """The exception at the end of a traceback, where it was raised, and the lines that say so.

    Attributes:
        type: as printed, e.g. "torch.OutOfMemoryError".
        message: the first line of the message.
        frames: outermost first.
        lines: the indices of its lines in the tail (other ranks' lines in between left out).
    """

    type: str
    message: str
    frames: tuple[Frame, ...]
    lines: tuple[int, ...]

    @property
    def innermost(self) -> Frame | None:
        """The frame that raised."""
        return self.frames[-1] if self.frames else None

    @property
    def user_frame(self) -> Frame | None:
        """The innermost frame outside site-packages and the standard library, if any."""
        for f in reversed(self.frames):
            if not _LIBRARY.search(f.file):
                return f
        return None

    def to_json(self) -> dict[str, Any]:
        """The evidence form: type, message, file, line, function (innermost frame), user_frame."""
        inner, user = self.innermost, self.user_frame
        out: dict[str, Any] = {
            "type": self.type,
            "message": self.message[:500],
            "file": inner.file if inner else None,
            "line": inner.line if inner else None,
            "function": inner.function if inner else None,
        }
        if user is not None and user != inner:
            out["user_frame"] = {"file": user.file, "line": user.line, "function": user.function}
        return out


def last_exception(
    tail: LogTail, accept: Callable[[int], bool] | None = None
) -> PythonException | None:
    """The last traceback in `tail` (on a line `accept` allows), parsed; None when there is none.

    Tracebacks that Python printed and carried on from ("Exception ignored in: ...") are skipped.
    When the traceback's lines carry a rank prefix, only lines with the same prefix are read, so
    other ranks' interleaved output does not break it.
    """
    end = len(tail.text)
    while (pos := tail.text.rfind(_TRACEBACK, 0, end)) >= 0:
        end = pos
        first = tail.line_of(pos)
        if first > 0 and tail.stripped(first - 1).startswith("Exception ignored"):
            continue
        if accept is not None and not accept(first):
            continue
        found = _parse_traceback(tail, first)
        if found is not None:
            return found
    return None


def _parse_traceback(tail: LogTail, first: int) -> PythonException | None:
    tag = rank_tag(tail.lines[first])
    frames: list[Frame] = []
    used = [first]
    frame_indent = 0
    stop = min(len(tail.lines), first + _MAX_TRACEBACK_LINES)
    for i in range(first + 1, stop):
        if tag is not None and rank_tag(tail.lines[i]) != tag:
            continue
        line = tail.stripped(i)
        if not line.strip():
            continue
        used.append(i)
        indent = len(line) - len(line.lstrip())
        m = _FRAME.match(line)
        if m:
            frames.append(Frame(m["file"], int(m["line"]), m["func"]))
            frame_indent = indent
            continue
        if not frames or indent >= frame_indent:
            continue  # source lines, ^^^^ markers, "[Previous line repeated N more times]"
        m = _EXC.match(line.strip())
        if m is None:
            return None
        return PythonException(m["type"], m["message"] or "", tuple(frames), tuple(used))
    return None


@dataclass(frozen=True)
class TorchrunFailure:
    """The "Root Cause (first observed failure)" of a torchrun failure report.

    `line` and `end_line` bound the root cause's block (its traceback included) in the tail.
    """

    rank: int | None
    local_rank: int | None
    exitcode: int | None
    pid: int | None
    host: str | None
    time: str | None
    error_file: str | None
    failures: int
    line: int
    end_line: int

    @property
    def signal(self) -> int | None:
        """The signal that killed the root-cause rank (torchrun reports it as a negative exitcode)."""
        return -self.exitcode if self.exitcode is not None and self.exitcode < 0 else None

    def to_json(self) -> dict[str, Any]:
        """The evidence form."""
        return {
            "rank": self.rank,
            "local_rank": self.local_rank,
            "exitcode": self.exitcode,
            "pid": self.pid,
            "host": self.host,
            "time": self.time,
            "error_file": self.error_file,
            "failures": self.failures,
        }

    def is_root_line(self, line: str) -> bool:
        """Whether a prefixed log line came from the root-cause rank."""
        tag = rank_tag(line)
        if tag is None:
            return False
        kind, n = tag
        return n == (self.local_rank if kind == "local" else self.rank)


_ROOT = "Root Cause (first observed failure):"
_FIELD = re.compile(
    r"^\s*(?P<key>time|host|rank|exitcode|error_file|traceback)\s*: ?(?P<value>.*)$"
)
_RANK = re.compile(r"(-?\d+) \(local_rank: (\d+)\)")
_EXIT = re.compile(r"(-?\d+) \(pid: (\d+)\)")


def torchrun_failure(tail: LogTail) -> TorchrunFailure | None:
    """The root cause of the last torchrun failure report in `tail`, or None."""
    pos = tail.text.rfind(_ROOT)
    if pos < 0:
        return None
    first = tail.line_of(pos)
    fields: dict[str, str] = {}
    end = min(len(tail.lines), first + 40)
    for i in range(first + 1, end):
        line = tail.stripped(i)
        if line.startswith("==="):
            end = i
            break
        m = _FIELD.match(line)
        if m and m["key"] not in fields:
            fields[m["key"]] = m["value"].strip()
    rank = _RANK.match(fields.get("rank", ""))
    code = _EXIT.match(fields.get("exitcode", ""))
    start = tail.text.rfind("Failures:", 0, pos)
    listed = tail.text[start:pos] if start >= 0 else ""
    error_file = fields.get("error_file")
    return TorchrunFailure(
        rank=int(rank[1]) if rank else None,
        local_rank=int(rank[2]) if rank else None,
        exitcode=int(code[1]) if code else None,
        pid=int(code[2]) if code else None,
        host=fields.get("host"),
        time=fields.get("time"),
        error_file=None if error_file in (None, "<N/A>") else error_file,
        failures=1 + len(re.findall(r"^\s*\[\d+\]:\s*$", listed, re.MULTILINE)),
        line=first,
        end_line=end,
    )
