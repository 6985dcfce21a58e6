"""The tail of an attempt's raw logs, ready for matching: what a crash says is at the end.

Reading only the last `TAIL_BYTES` of each file keeps classification fast whatever the log's size.
Rank prefixes that launchers add (`[rank3]:`, `[default0]:`, srun's `0: `) and ANSI colours are
removed for matching; the original lines are kept as evidence.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TAIL_BYTES = 1 << 20
"""How much of the end of each log is read (1 MiB)."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# PyTorch's `[rankN]:`, torchrun --tee's `[defaultN]:`, srun --label's `N: ` (ecosystem notes §2).
# Anchored on "\n" rather than ^ with re.MULTILINE: a literal start lets `re` skip ahead (3x faster).
_PREFIX = re.compile(r"\n(?:\[(?:rank|default)\d+\]: ?|\d{1,6}: )+")
_TAG = re.compile(r"^(?:\x1b\[[0-9;?]*[A-Za-z])*(?:\[(rank|default)(\d+)\]:|(\d{1,6}): )")


@dataclass
class LogTail:
    """The last lines of one log file.

    Attributes:
        path: the file.
        lines: the original lines (the first, partial one dropped when the file was cut).
        text: the lines without prefixes and colours, joined by "\\n"; line i of `text` is
            `lines[i]`, so a match's offset gives its line with `line_of`.
    """

    path: Path
    lines: list[str]
    text: str

    def __post_init__(self) -> None:
        self._starts: list[int] | None = None
        self._has: dict[str, bool] = {}

    def has(self, needle: str) -> bool:
        """Whether `needle` is in `text` (remembered: rules share needles)."""
        found = self._has.get(needle)
        if found is None:
            found = self._has[needle] = needle in self.text
        return found

    def line_of(self, offset: int) -> int:
        """The index of the line that holds `offset` of `text`."""
        if self._starts is None:
            self._starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        return bisect.bisect_right(self._starts, offset) - 1

    def start_of(self, index: int) -> int:
        """The offset in `text` where line `index` starts."""
        self.line_of(0)
        assert self._starts is not None
        return self._starts[index] if index < len(self._starts) else len(self.text)

    def stripped(self, index: int) -> str:
        """Line `index` without its prefix and colours."""
        start = self.start_of(index)
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)]


def read_tail(path: Path, max_bytes: int = TAIL_BYTES) -> LogTail:
    """Read the last `max_bytes` of `path` (decoded as UTF-8, bad bytes replaced).

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        start = max(0, size - max_bytes)
        f.seek(max(0, start - 1))
        before = f.read(1) if start else b"\n"
        data = f.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    if before != b"\n" and lines:
        lines = lines[1:]  # the cut fell inside this line
    text = "\n" + "\n".join(lines)
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    text = _PREFIX.sub("\n", text)[1:]
    return LogTail(path=path, lines=lines, text=text)


def read_tails(paths: Sequence[Path], max_bytes: int = TAIL_BYTES) -> list[LogTail]:
    """The tails of the logs that exist and can be read, stderr first.

    Errors go to stderr (Python, PyTorch, NCCL, shells), so its lines are searched first.
    """
    ordered = sorted(paths, key=lambda p: 0 if "stderr" in Path(p).name else 1)
    tails = []
    for p in ordered:
        try:
            tails.append(read_tail(Path(p), max_bytes))
        except OSError:
            continue  # a log that was never written is no evidence
    return tails


def rank_tag(line: str) -> tuple[str, int] | None:
    """The rank a prefixed line came from: ("rank", N), ("local", N) or ("task", N).

    `[rankN]:` names the global rank, torchrun's `[defaultN]:` the local rank, srun's `N: ` the task.
    """
    m = _TAG.match(line)
    if m is None:
        return None
    if m.group(3) is not None:
        return ("task", int(m.group(3)))
    return ("rank" if m.group(1) == "rank" else "local", int(m.group(2)))
