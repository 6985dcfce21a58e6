"""The few lines of a chunk that hold a keyword, found without splitting the rest (#19).

The wrapper asks this of every chunk of output it parses (the checkpoint save and resume lines,
the phase lines). Most chunks hold none: they pay one RE2 pass over their bytes for all the
keywords at once, about 1.6 ms per MiB here, a third of what a substring search per keyword cost.
Only a chunk that holds one is cut into lines (numpy, as `chunk_lines` cuts them), and a second
RE2 pass picks out the lines with a keyword: the callers' Python sees those lines only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

_PLAIN = re.compile(rb"[A-Za-z0-9]")


def _literal(keyword: bytes) -> str:
    """`keyword` as an RE2 pattern over bytes (every other byte as `\\xHH`)."""
    return "".join(chr(b) if _PLAIN.match(bytes([b])) else f"\\x{b:02x}" for b in keyword)


class KeywordLines:
    """Finds the lines of a chunk that hold any of `keywords` (case matters).

    Args:
        keywords: non-empty byte strings without line ends.
    """

    def __init__(self, keywords: Iterable[bytes]) -> None:
        self.keywords = tuple(dict.fromkeys(k for k in keywords if k))
        self._pattern = "|".join(_literal(k) for k in self.keywords)

    def find(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """(index, line) of each line of `chunk` that holds a keyword, the index as
        `logbook.record.batch.split_lines` counts lines (non-empty ones, ended by `\\n`, `\\r\\n`
        or `\\r`). Never raises."""
        if not self.keywords or not chunk:
            return []
        try:
            return self._find(chunk)
        except Exception:  # pyarrow's RE2 refused: the plain way gives the same lines
            return self._find_slowly(chunk)

    def _find(self, chunk: bytes) -> list[tuple[int, bytes]]:
        import numpy as np
        import pyarrow.compute as pc

        from logbook.record.chunk_lines import line_spans

        if not pc.match_substring_regex(_binary(chunk, np.array([0])), self._pattern)[0].as_py():
            return []
        starts, lengths = line_spans(chunk)
        # each line runs to the next one's start: the line ends in it hold no keyword
        hit = pc.match_substring_regex(_binary(chunk, starts), self._pattern)
        rows = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
        return [(int(i), chunk[starts[i] : starts[i] + lengths[i]]) for i in rows]

    def _find_slowly(self, chunk: bytes) -> list[tuple[int, bytes]]:
        from logbook.record.batch import split_lines

        if not any(k in chunk for k in self.keywords):
            return []
        return [
            (i, line)
            for i, line in enumerate(split_lines(chunk))
            if any(k in line for k in self.keywords)
        ]


def _binary(body: bytes, starts: np.ndarray) -> pa.Array:
    """Binary values `body[starts[i]:starts[i + 1]]` (the last to the end), without a copy."""
    import numpy as np
    import pyarrow as pa

    wide = len(body) >= 2**31
    offsets = np.empty(len(starts) + 1, np.int64 if wide else np.int32)
    offsets[:-1] = starts
    offsets[-1] = len(body)
    kind = pa.large_binary() if wide else pa.binary()
    return pa.Array.from_buffers(
        kind, len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(body)]
    )
