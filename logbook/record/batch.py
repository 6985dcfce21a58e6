"""Output chunks -> metric columns: what `LineParser` finds, for many lines at once.

`ChunkParser.parse(data)` takes whole lines of raw log (bytes that end at a line end) and returns
columns: every point (line, name, value) and every step a line names (line, step), the step a
progress bar's counter gives where the line names none marked `counter`. The live reader, recovery
and `logbook reparse` all parse through it, so that they agree with each other line for line.

Lines end at `\\n`, `\\r\\n` or a lone `\\r`: a progress bar redrawn in place is a line per
drawing, read as it is drawn (empty lines are skipped and not counted).

This module is the contract; what it returns must equal `LineParser.parse` line by line (the
tests hold it to that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from logbook.record.parsers import LineParser

if TYPE_CHECKING:
    import pyarrow as pa

_LINE_END = re.compile(rb"\r\n|\r|\n")
# The step a line reports, for `--metrics none` (steps are progress, even without metrics).
_STEP = re.compile(
    rb"""(?:^|[\s,|{(\["'])(?:global_step|step|iteration|iter)["']?\s*[=:]?\s*(\d+)(?:\s*/\s*\d+)?(?=[\s,|})\]]|$)""",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedChunk:
    """The metrics of a chunk of lines.

    Attributes:
        lines: lines in the chunk (empty ones not counted); `line` columns index them from 0.
        points: `line` int32, `name` string, `value` float64: each value a line carries, in
            line order, with the names `LineParser` gives.
        steps: `line` int32, `step` int64, `counter` bool: the step each line names, or (counter
            true) a progress bar's counter on a line that names no step; lines with neither are
            absent.
    """

    lines: int
    points: pa.Table
    steps: pa.Table


def split_lines(data: bytes) -> list[bytes]:
    """The non-empty lines of `data`, split at `\\n`, `\\r\\n` and lone `\\r`."""
    return [line for line in _LINE_END.split(data) if line]


def find_step(line: bytes) -> int | None:
    """The training step a log line reports, if it reports one."""
    m = _STEP.search(line)
    return int(m.group(1)) if m else None


class ChunkParser:
    """Parses chunks of raw log the way `LineParser(mode)` parses lines.

    Args:
        mode: as `LineParser`'s ("auto", "none", "regex:PATTERN"); with "none" only the steps of
            `find_step` are found.

    Raises:
        ConfigError: as `LineParser`.
    """

    def __init__(self, mode: str = "auto") -> None:
        self.mode = mode
        self._line = LineParser(mode)

    def parse(self, data: bytes) -> ParsedChunk:
        """The points and steps of the whole lines in `data`. Never raises."""
        import pyarrow as pa

        lines = split_lines(data)
        p_line: list[int] = []
        p_name: list[str] = []
        p_value: list[float] = []
        s_line: list[int] = []
        s_step: list[int] = []
        s_counter: list[bool] = []
        for i, line in enumerate(lines):
            if self.mode == "none":
                step = find_step(line)
                if step is not None:
                    s_line.append(i)
                    s_step.append(step)
                    s_counter.append(False)
                continue
            parsed = self._line.parse(line)
            if parsed is None:
                continue
            counter = parsed.counter
            if parsed.step is not None or counter is not None:
                s_line.append(i)
                s_step.append(parsed.step if parsed.step is not None else counter)  # type: ignore[arg-type]
                s_counter.append(parsed.step is None)
            for name, value in parsed.values.items():
                p_line.append(i)
                p_name.append(name)
                p_value.append(value)
        points = pa.table(
            {
                "line": pa.array(p_line, pa.int32()),
                "name": pa.array(p_name, pa.string()),
                "value": pa.array(p_value, pa.float64()),
            }
        )
        steps = pa.table(
            {
                "line": pa.array(s_line, pa.int32()),
                "step": pa.array(s_step, pa.int64()),
                "counter": pa.array(s_counter, pa.bool_()),
            }
        )
        return ParsedChunk(len(lines), points, steps)
