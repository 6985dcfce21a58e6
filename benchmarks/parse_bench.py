"""How fast logbook reads metrics from training output: per line and per chunk (issues #4, #15).

    .venv/bin/python benchmarks/parse_bench.py                 # ~20 MB per format
    .venv/bin/python benchmarks/parse_bench.py --size-mb 4     # quicker

For each format, and for a mixed log (the formats interleaved in runs, prose, and tqdm bars
redrawn with `\\r`), it builds about --size-mb of lines in memory and prints lines/s of
`LineParser("auto").parse` line by line, and of `ChunkParser("auto").parse` over 4 MiB chunks
of whole lines (the way the stream and `logbook reparse` call it), and the ratio, by the wall
clock and by CPU time (the same on an idle machine; on a shared one CPU time is the fairer).
Each chunk figure is the second pass over the data (the first learns the templates; a training
prints the same few lines all run long), and what the two give must be equal: a difference is
printed as `DIFFERS` and makes the script exit 1. Also the first chunk with nothing learnt yet,
`--metrics none`, and the peak memory (Arrow and numpy allocations) of one chunk over its size.

`--scan` times the wrapper's whole scan of a chunk instead (supervisor/progress.py
`_scan_chunk`: the parse, the checkpoint save and resume lines, the phase lines, #19) on the
mixed log, whose prose holds Transformers' save lines (3 % of its lines), and on the same log
without them: what a chunk without such lines pays for looking for them.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
import tracemalloc

from logbook.record.batch import ChunkParser, ParsedChunk, split_lines
from logbook.record.parsers import LineParser

FORMATS = {
    "key=value": lambda i, r: (
        f"step={i} loss={r.uniform(1, 3):.4f} lr=3.0e-04 grad_norm={r.random():.3f} tokens/s=181234"
    ),
    "json": lambda i, r: (
        f'{{"step": {i}, "loss": {r.uniform(1, 3):.4f}, "lr": 0.0003, "grad_norm": {r.random():.3f}}}'
    ),
    "hf dict": lambda i, r: (
        f"{{'loss': {r.uniform(1, 3):.4f}, 'grad_norm': {r.random():.3f}, 'learning_rate': 5e-05, 'epoch': {i / 1000:.2f}}}"
    ),
    "hf 5.x dict": lambda i, r: (
        f"{{'loss': '{r.uniform(1, 3):.4g}', 'grad_norm': '{r.random():.4g}', 'learning_rate': '{r.random() * 1e-3:.4g}', 'epoch': '{i / 1000:.4g}'}}"
    ),
    "megatron": lambda i, r: (
        f" iteration {i:8d}/  500000 | consumed samples: {i * 512:10d} | elapsed time per iteration (ms): "
        f"{r.uniform(900, 1100):.1f} | learning rate: 3.000E-04 | global batch size:   512 | lm loss: "
        f"{r.uniform(1, 3):.6E} | loss scale: 65536.0 | grad norm: {r.random():.3f} | number of skipped iterations:   0 |"
    ),
    "nanogpt": lambda i, r: (
        f"iter {i}: loss {r.uniform(1, 3):.4f}, time {r.uniform(200, 300):.2f}ms, mfu {r.uniform(0, 50):.2f}%"
        if i % 50
        else f"step {i}: train loss {r.uniform(1, 3):.4f}, val loss {r.uniform(1, 3):.4f}"
    ),
    "tqdm postfix": lambda i, r: (
        f"Epoch {i // 1000}:  50%|█████     | {i % 1000}/1000 [00:01<00:01, 4.20it/s, v_num=0, train_loss={r.uniform(1, 3):.3f}]"
    ),
    "prose": lambda i, r: r.choice(
        [
            f"2024-05-01 12:00:{i % 60:02d},123 INFO Loading {i % 7} shards from /data/shard-{i:05d}.bin",
            f"[12:00:{i % 60:02d}] rank {i % 8} finished warmup, waiting for the others",
            "torch 2.3.0 with CUDA 12.1, cudnn 8.9.2 - all devices visible",
            f"Saving model checkpoint to /ckpt/checkpoint-{i} (this may take a while)",
        ]
    ),
}


def _bar(i: int, total: int = 200) -> str:
    """A tqdm bar as Transformers draws it on stderr, redrawn in place with `\\r`."""
    n = i % (total + 1)
    fill = "█" * (n * 10 // total)
    return f"\r{n * 100 // total:3d}%|{fill:<10}| {n}/{total} [00:{n % 60:02d}<00:03, {20 + n % 9}.{n % 100:02d}it/s]"


def make(fmt: str, size: int) -> bytes:
    r, out, n, i = random.Random(0), [], 0, 0
    while n < size:
        line = FORMATS[fmt](i, r)
        out.append(line)
        n += len(line.encode()) + 1
        i += 1
    return ("\n".join(out) + "\n").encode()


def make_mixed(size: int) -> bytes:
    """Runs of each format in turn, prose between them, and tqdm bars redrawn with `\\r`."""
    r, parts, n, i = random.Random(1), [], 0, 0
    formats = [f for f in FORMATS if f != "prose"]
    while n < size:
        fmt = formats[(i // 200) % len(formats)]
        kind = r.random()
        if kind < 0.15:
            text = FORMATS["prose"](i, r) + "\n"
        elif kind < 0.30:
            text = "".join(_bar(i * 10 + k) for k in range(10)) + "\n"
        else:
            text = FORMATS[fmt](i, r) + "\n"
        parts.append(text)
        n += len(text.encode())
        i += 1
    return "".join(parts).encode()


def chunks(data: bytes, size: int = 4 << 20) -> list[bytes]:
    """`data` in pieces of about `size` bytes that end at a line end."""
    out, start = [], 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + size) + 1 if start + size < len(data) else len(data)
        if end <= start:
            end = min(len(data), start + size)
        out.append(data[start:end])
        start = end
    return out


def per_line(data: bytes) -> list:
    parse = LineParser().parse
    return [parse(line) for line in split_lines(data)]


def same(fast: list[ParsedChunk], expected: list) -> bool:
    """The chunks' columns equal LineParser's results line by line (nan equal to nan)."""
    points, steps, base = [], [], 0
    for c in fast:
        for line, name, value in zip(
            *(c.points.column(k).to_pylist() for k in ("line", "name", "value")), strict=True
        ):
            points.append((base + line, name, value))
        for line, step, counter in zip(
            *(c.steps.column(k).to_pylist() for k in ("line", "step", "counter")), strict=True
        ):
            steps.append((base + line, step, counter))
        base += c.lines
    want_points, want_steps = [], []
    for i, p in enumerate(expected):
        if p is None:
            continue
        if p.step is not None or p.counter is not None:
            want_steps.append((i, p.step if p.step is not None else p.counter, p.step is None))
        want_points += [(i, k, v) for k, v in p.values.items()]
    if base != len(expected) or steps != want_steps or len(points) != len(want_points):
        return False
    return all(
        a[:2] == b[:2] and (a[2] == b[2] or (math.isnan(a[2]) and math.isnan(b[2])))
        for a, b in zip(points, want_points, strict=True)
    )


def timed(fn):  # type: ignore[no-untyped-def]
    """Wall and CPU seconds of `fn()` (CPU time too: this machine may be shared), and its result."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - t0, time.process_time() - c0, result


def peak_ratio(chunk: bytes) -> float:
    """Peak memory (numpy and Python allocations, plus Arrow's pool) of parsing one chunk, / size."""
    import pyarrow as pa

    parser = ChunkParser()
    parser.parse(chunk)
    default = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(default)  # its own high-water mark, from this parse only
    pa.set_memory_pool(pool)
    try:
        tracemalloc.start()
        parser.parse(chunk)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        arrow = pool.max_memory()
    finally:
        pa.set_memory_pool(default)
    return (peak + arrow) / len(chunk)


def scan(data: bytes) -> tuple[int, float, float]:
    """Lines, and lines/s by the wall clock and by CPU time, of the wrapper's per-chunk scan over
    `data` in 4 MiB chunks, the second pass (the first learns the templates)."""
    import inspect
    from datetime import datetime, timezone

    from logbook.supervisor.progress import Progress

    pieces = chunks(data)
    phases = "on_phase" in inspect.signature(Progress).parameters  # (older trees: none)
    kw = {"on_phase": lambda _: None} if phases else {}
    progress = Progress([], None, parser=LineParser("auto"), **kw)

    def once() -> None:
        for c in pieces:
            progress._scan_chunk(c, datetime.now(timezone.utc))

    once()
    t, c, _ = timed(once)
    n = len(split_lines(data))
    return n, n / t, n / c


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=20)
    ap.add_argument("--scan", action="store_true", help="the wrapper's per-chunk scan (#19)")
    args = ap.parse_args()
    size = int(args.size_mb * 1e6)
    if args.scan:
        mixed = make_mixed(size)
        plain = b"".join(line for line in mixed.splitlines(True) if b"heckpoint" not in line)
        for name, data in (("mixed, with save lines", mixed), ("mixed, without", plain)):
            n, wall, cpu = scan(data)
            print(f"{name:<24} {n:>10,} lines {wall:>12,.0f} lines/s (CPU {cpu:,.0f})")
        return
    print(
        f"{'format':<14} {'lines':>10} {'LineParser/s':>13} {'ChunkParser/s':>14} {'MB/s':>6} {'x':>6}"
        f" {'CPU: Line/s':>12} {'Chunk/s':>10} {'x':>6}  check"
    )
    failed = False
    datasets = [(fmt, make(fmt, size)) for fmt in FORMATS] + [("mixed", make_mixed(size))]
    for name, data in datasets:
        pieces = chunks(data)
        t_line, c_line, expected = timed(lambda d=data: per_line(d))
        parser = ChunkParser()
        [parser.parse(c) for c in pieces]  # learn the templates (a training's first minutes)
        t_chunk, c_chunk, fast = timed(lambda p=pieces, cp=parser: [cp.parse(c) for c in p])
        ok = same(fast, expected) and parser.fallbacks == 0
        failed |= not ok
        n = len(expected)
        print(
            f"{name:<14} {n:>10,} {n / t_line:>13,.0f} {n / t_chunk:>14,.0f} "
            f"{len(data) / t_chunk / 1e6:>6.0f} {t_line / t_chunk:>6.1f} "
            f"{n / c_line:>12,.0f} {n / c_chunk:>10,.0f} {c_line / c_chunk:>6.1f}  "
            + ("same as LineParser" if ok else "DIFFERS")
        )
    mixed = datasets[-1][1]
    first = chunks(mixed)[0]
    cold_t, cold_c, _ = timed(lambda: ChunkParser().parse(first))
    n_first = len(split_lines(first))
    print(
        f"mixed, first chunk with no template known: {n_first / cold_t:,.0f} lines/s "
        f"(CPU {n_first / cold_c:,.0f})"
    )
    none = ChunkParser("none")
    t_none, c_none, _ = timed(lambda: [none.parse(c) for c in chunks(mixed)])
    n_mixed = len(split_lines(mixed))
    print(f"mixed, --metrics none: {n_mixed / t_none:,.0f} lines/s (CPU {n_mixed / c_none:,.0f})")
    print(f"peak memory of a 4 MiB chunk of the mixed log: {peak_ratio(first):.1f} x its size")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
