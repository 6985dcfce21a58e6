"""Reading an import file: which format it is, then (line, row) per record of it."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.errors import LogbookError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

FORMATS = ("jsonl", "csv")


class Bad(Exception):
    """What is wrong with one row; the collector adds the line."""


def format_of(path: Path, fmt: str | None) -> str:
    """jsonl or csv: `fmt` where given, else from the file's name, else from its first line.

    Raises:
        LogbookError: there is no such file, or `fmt` is not one of FORMATS.
    """
    if not path.is_file():
        raise LogbookError(f"no file {path}" + (" (it is a folder)" if path.is_dir() else ""))
    if fmt is not None:
        if fmt not in FORMATS:
            raise LogbookError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if head[:1] in (b"{", b"#") else "csv"


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | Bad]]:
    """(line, object) per line; blank lines and lines starting with # are skipped."""
    for block in jsonl_blocks(path):
        for i in range(len(block)):
            row = parse_line(block.line(i))
            if row is not None:
                yield block.first + i, row


@dataclass(frozen=True)
class Block:
    """Whole lines of a file, as read: their bytes and where each starts."""

    first: int  # the number of the first line
    data: bytes
    starts: npt.NDArray[np.int64]  # of each line, then the end of the last

    def __len__(self) -> int:
        return len(self.starts) - 1

    def line(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.starts[i + 1]]


def jsonl_blocks(path: Path, size: int = 32 << 20) -> Iterator[Block]:
    """The file in blocks of about `size` bytes of whole lines. Lines end at b"\\n" alone, as when
    iterating over a file opened in binary mode (a lone \\r is inside a line)."""
    import numpy as np

    first = 1
    with open(path, "rb") as f:
        while data := f.read(size):
            data += f.readline()  # the rest of the last line
            ends = np.flatnonzero(np.frombuffer(data, np.uint8) == ord(b"\n")) + 1
            if not ends.size or ends[-1] != len(data):  # the file's last line has no newline
                ends = np.append(ends, len(data))
            block = Block(first, data, np.concatenate(([0], ends)).astype(np.int64))
            yield block
            first += len(block)


def parse_line(raw: bytes) -> dict[str, Any] | Bad | None:
    """One line of JSON lines as an object, or what is wrong with it; None for a blank or # line."""
    try:
        text = raw.decode().strip().lstrip("\ufeff")
    except UnicodeDecodeError as e:
        return Bad(f"not UTF-8: {e}")
    if not text or text[0] == "#":
        return None
    if text[0] != "{":
        return Bad("not a JSON object (one {...} per line)")
    try:
        obj, end = _decode(text)
    except json.JSONDecodeError as e:
        return Bad(f"not JSON: {e.msg} at column {e.colno}")
    if end != len(text):
        return Bad(f"not JSON: more after the object at column {end + 1}")
    return obj  # type: ignore[no-any-return]


_decode = json.JSONDecoder().raw_decode  # json.loads(bytes) costs twice as much per line


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any] | Bad]]:
    """(line, {column: cell}) per record, empty cells left out; the header is the first record."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, skipinitialspace=True)
        last = 0
        try:
            header: list[str] | None = None
            for cells in reader:
                line, last = last + 1, reader.line_num
                if header is None:
                    if not any(cells):
                        continue
                    header = [c.strip() for c in cells]
                    problem = _header_problem(header)
                    if problem:
                        yield line, Bad(problem)
                        return
                    width = len(header)
                    continue
                if len(cells) > width:
                    yield line, Bad(f"{len(cells)} cells, but the header names {width}")
                    continue
                row = dict(compress(zip(header, cells, strict=False), cells))  # non-empty ones
                if row:
                    yield line, row
        except (csv.Error, UnicodeDecodeError) as e:
            yield last + 1, Bad(f"not CSV: {e}")


def _header_problem(header: list[str]) -> str | None:
    if "" in header:
        return f"column {header.index('') + 1} of the header has no name"
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        return f"the header names {', '.join(dups)} twice"
    if "type" not in header:
        return "the header has no type column (attempt, event, note or metric on each row)"
    return None
