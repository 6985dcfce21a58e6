"""Linux tee(2) through ctypes: duplicate a pipe's bytes into another pipe without copying them.

With splice(2) (os.splice) for the raw log, a pipe-to-pipe passthrough never copies output through
the wrapper's memory: about twice the throughput of read/write here (benchmarks/).
"""

from __future__ import annotations

import os
import stat
import sys
from functools import cache

TYPE_CHECKING = False  # typing's own costs the pump's start-up
if TYPE_CHECKING:
    from collections.abc import Callable


@cache
def _libc_tee() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux") or not hasattr(os, "splice"):
        return None
    import ctypes  # here, not at import: the pump starts with every attempt and needs it for pipes only
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.tee
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_ssize_t
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint]
    return fn  # type: ignore[no-any-return]


def is_pipe(fd: int) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def widen_pipe(fd: int, size: int = 1 << 20) -> None:
    """Ask for a bigger pipe buffer (fewer wake-ups per megabyte); best effort."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except (OSError, AttributeError):
        pass


def available(src: int, dest: int) -> bool:
    """Can bytes go from `src` to `dest` by tee(2)? Both must be pipes, on Linux."""
    return is_pipe(src) and is_pipe(dest) and _libc_tee() is not None


def tee(src: int, dest: int, n: int) -> int:
    """Duplicate up to `n` bytes waiting in pipe `src` into pipe `dest`; 0 at end of input.

    Raises:
        OSError: as tee(2) fails (EPIPE when the reader of `dest` is gone).
    """
    fn = _libc_tee()
    assert fn is not None
    while True:
        done = fn(src, dest, n, 0)
        if done >= 0:
            return done
        import ctypes

        err = ctypes.get_errno()
        if err != 4:  # EINTR: a signal arrived (we forward many); try again
            raise OSError(err, os.strerror(err))
