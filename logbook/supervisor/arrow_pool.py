"""How pyarrow is set up in the wrapper: its memory pool, and no pandas.

The pool: the system allocator, in the wrapper and never in the training.

Parsing makes and frees arrays by the megabyte; pyarrow's default pool (mimalloc or jemalloc)
keeps what they free, the system's gives it back: the chaos suite's hostile-output trial (10 M
lines) peaked at 196-201 MB with mimalloc, 135-148 with the system pool (aim < 150). Arrow reads
ARROW_DEFAULT_MEMORY_POOL once, on the pool's first use (`pa.set_memory_pool` does not reach the
compute kernels), so the variable is set before anything of the wrapper may touch Arrow, and
taken away once the command runs: pyarrow's import (about 0.1 s) comes after the spawn (#15),
unless the wrapper needed Arrow before it (a store whose attempts it had to read).

No pandas: pyarrow imports pandas, if installed, the first time it converts Python values
(`pa.array`, `Table.from_pylist`: every row the wrapper writes), to recognise pandas objects. The
wrapper never hands it any, and the import took 0.18 s of the 2.7 M-line bench's wrapped run
(#15). The console's `logbook run` leaves pandas out of its process (`leave_pandas_out`); a
caller in a process of its own (tests, notebooks) keeps it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_KEY = "ARROW_DEFAULT_MEMORY_POOL"
_asked = False  # the variable is ours, not the user's


def ask() -> None:
    """Set the variable for this process, unless the user chose a pool (then theirs holds)."""
    global _asked
    if _KEY not in os.environ:
        os.environ[_KEY] = "system"
        _asked = True


def settle() -> None:
    """Choose the pool now (importing pyarrow) and take the variable away again: the training's
    environment, and any process the wrapper starts from here on, never has it."""
    global _asked
    if not _asked:
        return
    try:
        import pyarrow as pa

        pa.default_memory_pool()
    except Exception:  # no pyarrow to ask: the default is right too
        pass
    finally:
        os.environ.pop(_KEY, None)
        _asked = False


class _NoPandas:
    """A finder that says pandas is not there (pyarrow then goes on without it)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is left out of the wrapper's process")


def leave_pandas_out() -> None:
    """For a process that never gives pandas objects to pyarrow and never imported pandas: make
    its import fail, so that pyarrow does not load it (Arrow C++ tries on every conversion until
    it succeeds, so the finder stays)."""
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())
