"""Chunks of a long stretch of log parsed in worker processes, handed back in order (#15).

The background finish of a flood parses what the live reader could not: a gigabyte is ~20 s on
one core. `ChunkParser.parse` is a function of the chunk alone (the plans it caches make it
faster, never different), so the chunks can be parsed anywhere and fed to the attempt's
`MetricStream` (steps, the gate of config echoes: the state that runs through the log) in their
order.

Workers are plain child processes (`python -c ...serve()`), not multiprocessing's: no fork of a
process with threads, no re-import of the caller's main module. Chunk i goes to worker i mod n,
each answers its chunks in order (a pickled `ParsedChunk` each), and a thread per worker feeds it
so that a worker blocked on its answer never blocks the feeding. A stretch too short to repay the
workers' start-up, or a machine of one core, is parsed here; a worker that fails costs only
speed: its chunks are parsed here.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Generator, Iterable
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from logbook.record.batch import ChunkParser, ParsedChunk

MIN_BYTES = 64 << 20  # below: parsed here (a worker's start-up, ~0.4 s, would not pay)
MAX_WORKERS = 4
AHEAD = 2  # chunks in flight per worker: memory stays bounded (4 MiB chunks)
_LENGTH = struct.Struct(">Q")


def workers_for(total_bytes: int) -> int:
    """How many worker processes a stretch of `total_bytes` is worth (0: parse it here).
    LOGBOOK_PARSE_WORKERS=N sets it whatever the size (0: never any, on a node whose CPUs the
    next job needs)."""
    forced = os.environ.get("LOGBOOK_PARSE_WORKERS", "").strip()
    if forced.isdigit():
        return min(int(forced), 64) if total_bytes else 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    if total_bytes < MIN_BYTES or cpus < 2:
        return 0
    return min(cpus, MAX_WORKERS)


def serve() -> None:
    """A worker: chunks (length, bytes) on stdin, their `ParsedChunk`s pickled on stdout."""
    from logbook.record.batch import ChunkParser

    parser = ChunkParser(sys.argv[1])
    src, out = sys.stdin.buffer, sys.stdout.buffer
    while head := src.read(_LENGTH.size):
        (n,) = _LENGTH.unpack(head)
        pickle.dump(parser.parse(src.read(n)), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


class _Worker:
    def __init__(self, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from logbook.record.parse_pool import serve; serve()", mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.todo: queue.Queue[bytes | None] = queue.Queue()
        self.ok = True
        self.feeder = threading.Thread(target=self._feed, daemon=True)
        self.feeder.start()

    def _feed(self) -> None:
        sink: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
        while (data := self.todo.get()) is not None:
            try:
                sink.write(_LENGTH.pack(len(data)))
                sink.write(data)
                sink.flush()
            except OSError:  # it died: what it was given is parsed by the caller
                self.ok = False
        try:
            sink.close()
        except OSError:
            pass

    def answer(self) -> ParsedChunk | None:
        """The next chunk it parsed; None once it failed."""
        if self.ok:
            try:
                return pickle.load(self.proc.stdout)  # type: ignore[arg-type]
            except Exception:
                self.ok = False
        return None

    def close(self) -> None:
        """Ends it: every answer wanted was read, or none is wanted any more (an error); killed
        first, so that a feeder blocked on a worker that no one reads ends at once."""
        self.proc.kill()
        self.todo.put(None)
        self.feeder.join(timeout=10)
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def parsed_in_order(
    parser: ChunkParser, chunks: Iterable[tuple[str, bytes, int]], workers: int
) -> Generator[tuple[str, ParsedChunk, int], None, None]:
    """(log name, parsed chunk, offset) for each of `chunks`, in their order: parsed by
    `workers` processes, or by `parser` here when 0 or where a worker fails."""
    if workers <= 0:
        for name, data, offset in chunks:
            yield name, parser.parse(data), offset
        return
    pool: list[_Worker] = []
    try:
        try:
            pool = [_Worker(parser.mode) for _ in range(workers)]
        except OSError:  # no process to start: all of it here
            pool = []
        flight: deque[tuple[str, bytes, int, _Worker | None]] = deque()
        for k, (name, data, offset) in enumerate(chunks):
            worker = pool[k % len(pool)] if pool else None
            if worker is not None:
                worker.todo.put(data)
            flight.append((name, data, offset, worker))
            if len(flight) >= max(len(pool), 1) * AHEAD:
                yield _take(parser, flight.popleft())
        while flight:
            yield _take(parser, flight.popleft())
    finally:
        for w in pool:
            w.close()


def _take(
    parser: ChunkParser, item: tuple[str, bytes, int, _Worker | None]
) -> tuple[str, ParsedChunk, int]:
    name, data, offset, worker = item
    parsed = worker.answer() if worker is not None else None
    return name, parsed if parsed is not None else parser.parse(data), offset


__all__ = ["MIN_BYTES", "parsed_in_order", "serve", "workers_for"]
