"""How fast logbook.record.parsers reads training output, per format, against a bare loop (issue #4).

    .venv/bin/python benchmarks/parse_bench.py                 # ~50 MB per format
    .venv/bin/python benchmarks/parse_bench.py --size-mb 10    # quicker

For each format it builds about --size-mb of lines in memory and prints: lines/s and MB/s of
`LineParser("auto").parse` over `data.split(b"\\n")`, of a bare loop that only iterates those lines,
and the ratio (how many times slower than the bare loop parsing is).

Then two prototypes of a bulk path for catching up on a backlog of `key=value` lines, vectorised
with no Python per line, and their MB/s (these live here, not in the package):

- pyarrow: split the chunk into lines, lines into tokens, `extract_regex` `name=number` on every
  token, cast the numbers; a list-parent index gives each pair its line.
- DuckDB: `regexp_extract_all` over the lines of the chunk.

Each prototype's pairs are checked against LineParser's on the same lines (counts of lines with a
metric and of pairs). Also a prefilter for prose: one regex over the whole chunk that finds the
lines that could hold a metric, so only those reach LineParser.
"""

from __future__ import annotations

import argparse
import random
import re
import time

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
    "megatron": lambda i, r: (
        f" iteration {i:8d}/  500000 | consumed samples: {i * 512:10d} | elapsed time per iteration (ms): "
        f"{r.uniform(900, 1100):.1f} | learning rate: 3.000E-04 | global batch size:   512 | lm loss: "
        f"{r.uniform(1, 3):.6E} | loss scale: 65536.0 | grad norm: {r.random():.3f} | number of skipped iterations:   0 |"
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


def make(fmt: str, size: int) -> bytes:
    r, out, n, i = random.Random(0), [], 0, 0
    while n < size:
        line = FORMATS[fmt](i, r)
        out.append(line)
        n += len(line.encode()) + 1
        i += 1
    return ("\n".join(out) + "\n").encode()


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def bare_loop(data: bytes) -> int:
    n = 0
    for line in data.split(b"\n"):
        if line:
            n += 1
    return n


def parse_all(data: bytes) -> list:
    parse = LineParser().parse
    return [parse(line) for line in data.split(b"\n") if line]


# A line that might hold a metric: a separator followed by a number (or a `|`/`,`-separated
# `name number`, or a `{`); everything else is skipped without a Python call per line.
_CANDIDATE = re.compile(
    rb"^[^\n]*?(?:(?<![\w./\-])[A-Za-z_][\w./\-]*[)\]\"'%]?\s*[=:]\s*[\[\"']?[-+]?(?:\.?\d|nan|inf)"
    rb"|(?:^|[|,:])\s*[A-Za-z_][\w./\-]*\s+[-+]?\.?\d)[^\n]*$",
    re.M | re.I,
)  # logbook.record.parsers' own pre-check, over the whole chunk (bytes) instead of line by line


def prefiltered(data: bytes) -> list:
    parse = LineParser().parse
    return [parse(m.group()) for m in _CANDIDATE.finditer(data)]


_KV = r"^(?P<key>[A-Za-z_][\w./\-]*)=(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf))$"


def bulk_pyarrow(data: bytes) -> tuple[int, int]:
    """key=value pairs of every line, vectorised; returns (lines with a pair, pairs)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.array([data.decode("utf-8", "replace")], pa.large_string())
    lines = pc.list_flatten(pc.split_pattern(text, "\n"))
    tokens_list = pc.split_pattern(lines, " ")
    tokens = pc.list_flatten(tokens_list)
    line_of = pc.list_parent_indices(tokens_list)
    matched = pc.match_substring_regex(tokens, _KV)
    pairs = pc.extract_regex(pc.filter(tokens, matched), _KV)
    names = pairs.field("key")
    values = pc.cast(pairs.field("value"), pa.float64())  # a real path would also canonicalise
    lines_hit = pc.count_distinct(pc.filter(line_of, matched)).as_py()
    assert len(names) == len(values)
    return lines_hit, len(values)


def bulk_duckdb(data: bytes) -> tuple[int, int]:
    """The same with DuckDB's regexp_extract_all over the chunk's lines."""
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.array([data.decode("utf-8", "replace")], pa.large_string())
    lines = pa.table({"line": pc.list_flatten(pc.split_pattern(text, "\n"))})  # noqa: F841
    pattern = r"([A-Za-z_][\w./\-]*)=([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)(?:\s|$)"
    con = duckdb.connect()
    row = con.execute(
        f"""
        with p as (
            select regexp_extract_all(line, '{pattern}', 1) as k,
                   regexp_extract_all(line, '{pattern}', 2) as v
            from lines
        )
        select count(*) filter (where len(k) > 0), sum(len(v))::bigint,
               sum(list_sum(list_transform(v, lambda x: x::double)))  -- the cast to numbers
        from p
        """
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=50)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    size = int(args.size_mb * 1e6)
    print(
        f"{'format':<14} {'lines':>9} {'bare lines/s':>13} {'parse lines/s':>14} {'parse MB/s':>11} {'x bare':>7}  metric lines"
    )
    for fmt in FORMATS:
        data = make(fmt, size)
        t_bare, n = best_of(lambda d=data: bare_loop(d), args.repeats)
        t_parse, results = best_of(lambda d=data: parse_all(d), args.repeats)
        hits = sum(r is not None for r in results)  # type: ignore[union-attr]
        print(
            f"{fmt:<14} {n:>9,} {n / t_bare:>13,.0f} {n / t_parse:>14,.0f} "
            f"{len(data) / t_parse / 1e6:>11.1f} {t_parse / t_bare:>7.0f}  {hits:,}"
        )
        if fmt in ("prose", "key=value"):
            t_pre, pre = best_of(lambda d=data: prefiltered(d), args.repeats)
            pre_hits = sum(r is not None for r in pre)  # type: ignore[union-attr]
            print(
                f"{'  prefiltered':<14} {'':>9} {'':>13} {n / t_pre:>14,.0f} "
                f"{len(data) / t_pre / 1e6:>11.1f} {t_pre / t_bare:>7.0f}  {pre_hits:,}"
                + ("" if pre_hits == hits else "  MISMATCH")
            )
        if fmt == "key=value":
            expected_pairs = sum(len(r.values) + (r.step is not None) for r in results if r)  # type: ignore[union-attr]
            for name, fn in (("bulk pyarrow", bulk_pyarrow), ("bulk duckdb", bulk_duckdb)):
                t_bulk, (b_lines, b_pairs) = best_of(lambda d=data, f=fn: f(d), args.repeats)  # type: ignore[misc]
                agree = (
                    "same as LineParser"
                    if (b_lines, b_pairs) == (hits, expected_pairs)
                    else (f"DIFFERS: {b_lines} lines/{b_pairs} pairs vs {hits}/{expected_pairs}")
                )
                print(
                    f"{'  ' + name:<14} {'':>9} {'':>13} {n / t_bulk:>14,.0f} "
                    f"{len(data) / t_bulk / 1e6:>11.1f} {t_bulk / t_bare:>7.1f}  {b_lines:,} ({agree})"
                )


if __name__ == "__main__":
    main()
