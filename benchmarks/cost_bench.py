"""`logbook cost` (#5) on a store of many samples, against a bare DuckDB GROUP BY over the same Parquet.

    python benchmarks/cost_bench.py                    # 100 million samples (~2 GB on disk)
    python benchmarks/cost_bench.py --rows 20e6        # quicker
    python benchmarks/cost_bench.py --keep /tmp/cb     # keep (and reuse) the store

1. A store like a long run's on `--hosts` (128) hosts of 8 GPUs: `--attempts` (3) attempts in a
   lineage, each launched over every host (one wrapper per host: an attempts row, and a nodes row
   per host), with each host's launch snapshots `logbook cost` reads (GPU count and model, host
   memory) written through `Store.write`, and `--rows` sample rows written with pyarrow in large
   batches, one part per host and attempt: per 10-second tick one row per GPU, one for the host and one for the process
   tree, every GPU with power and an energy counter, as NVML reports them.
2. Each timed in a fresh process (the Parquet in the page cache after a first, untimed pass),
   alternating, median of `--repeats` (3):
   - bare: `select host, avg(gpu_util_pct), max(power_w) from read_parquet(...) where run = ...
     group by host` in DuckDB (issue #5's comparison), connect and query;
   - library: `logbook.cost.cost_report(store, run)`, the store opened, views made, one query;
   - CLI: `logbook cost RUN --format json` end to end, Python start-up and imports included,
     beside `python -c` running the bare query the same way.
   Peak RSS of each process (its own ru_maxrss; os.wait4 for the CLI). The store is written by a
   process of its own: Linux keeps a process's peak RSS across fork and exec, so children of the
   writer would all report its peak.

Aim (#5): the library call at most 1.5 × the bare query, aggregating in DuckDB, not Python.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

AIM = 1.5
GPUS = 8
TICK_S = 10
RUN = "bench"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def build(root: Path, rows: int, hosts: int, attempts: int) -> dict[str, Any]:
    """Write the store; returns what it holds."""
    import numpy as np
    import pyarrow as pa

    from logbook import schema
    from logbook.store import Store
    from logbook.store.parts import write_part

    store = Store.open(root, create=True)
    per_tick = GPUS + 2
    ticks = max(2, rows // (hosts * attempts * per_tick))
    span = timedelta(seconds=ticks * TICK_S)
    sch = schema.load("samples").arrow(with_partitions=False)
    rng = np.random.default_rng(5)
    attempt_rows, node_rows, snapshot_rows, written = [], [], [], 0
    parent: str | None = None
    directory = root / "samples" / f"run={RUN}"
    for n in range(attempts):
        start = T0 + n * (span + timedelta(minutes=5))
        status = "completed" if n == attempts - 1 else "crashed"
        aid = uuid.uuid4().hex
        attempt_rows.append(
            {"attempt_id": aid, "label": f"1.{n:02d}", "status": status,
             "parent_id": parent, "start_time": start, "end_time": start + span,
             "duration_s": span.total_seconds(), "host": "node000", "command": ["train.py"],
             "first_step": n * 1000 + 1, "last_step": (n + 1) * 1000,
             "first_step_time": start + timedelta(seconds=60),
             "last_step_time": start + span, "resumed_from_step": n * 1000 or None,
             "recorded_at": start + span}
        )  # fmt: skip
        parent = aid
        for h in range(hosts):
            host = f"node{h:03d}"
            node_rows.append(
                {"attempt_id": aid, "node": h, "nodes": hosts, "launch": f"slurm:{n}.0:0",
                 "host": host, "status": status, "start_time": start, "end_time": start + span,
                 "duration_s": span.total_seconds(), "recorded_at": start + span}
            )  # fmt: skip
            snap = {"attempt_id": aid, "time": start, "status": "ok", "detail": None, "host": host}
            snapshot_rows += [
                {**snap, "kind": "gpu", "name": "count", "value": str(GPUS)},
                {**snap, "kind": "host", "name": "memory_bytes", "value": str(2 << 40)},
                *({**snap, "kind": "gpu", "name": f"{g}.name", "value": "NVIDIA H100 80GB HBM3"}
                  for g in range(GPUS)),
            ]  # fmt: skip
            written += _write_samples(
                write_part, directory, sch, rng, aid, host, start, ticks, pa, np
            )
    store.write("attempts", RUN, attempt_rows)
    store.write("nodes", RUN, node_rows)
    store.write("snapshots", RUN, snapshot_rows)
    size = sum(p.stat().st_size for p in directory.iterdir())
    return {
        "rows": written,
        "parts": hosts * attempts,
        "bytes": size,
        "attempt_rows": len(attempt_rows),
        "node_rows": len(node_rows),
    }


def _write_samples(write_part, directory, sch, rng, aid, host, start, ticks, pa, np) -> int:  # type: ignore[no-untyped-def]
    per_tick = GPUS + 2
    n = ticks * per_tick
    tick = np.repeat(np.arange(ticks), per_tick)
    slot = np.tile(np.arange(per_tick), ticks)  # 0-7 GPUs, 8 host, 9 process
    is_gpu = slot < GPUS
    micros = np.datetime64(start.replace(tzinfo=None), "us") + (tick * TICK_S * 1_000_000).astype(
        "timedelta64[us]"
    )
    power = rng.uniform(350.0, 700.0, n)
    cols: dict[str, Any] = {c: pa.nulls(n, sch.field(c).type) for c in sch.names}
    cols["attempt_id"] = pa.array(np.full(n, aid, dtype=object), pa.string())
    cols["time"] = pa.array(micros, pa.timestamp("us", tz="UTC"))
    cols["host"] = pa.array(np.full(n, host, dtype=object), pa.string())
    scope = np.where(is_gpu, "gpu", np.where(slot == GPUS, "host", "process")).astype(object)
    cols["scope"] = pa.array(scope, pa.string())
    cols["gpu_index"] = pa.array(np.where(is_gpu, slot, 0).astype(np.int32), mask=~is_gpu)
    cols["gpu_util_pct"] = pa.array(rng.uniform(0.0, 100.0, n), mask=~is_gpu)
    cols["power_w"] = pa.array(power, mask=~is_gpu)
    cols["energy_j"] = pa.array(1e9 + tick * TICK_S * 525.0, mask=~is_gpu)
    cols["cpu_pct"] = pa.array(rng.uniform(0.0, 100.0, n), mask=is_gpu)
    cols["mem_total_bytes"] = pa.array(np.full(n, 2 << 40, dtype=np.int64), mask=slot != GPUS)
    write_part(directory, pa.table([cols[c] for c in sch.names], schema=sch))
    return n


BARE = """
import resource, sys, time
import duckdb
t = time.perf_counter()
con = duckdb.connect()
rows = con.sql(
    "select host, avg(gpu_util_pct), max(power_w) from read_parquet(?, hive_partitioning = true) "
    "where run = ? group by host", params=[sys.argv[1] + "/samples/*/*.parquet", sys.argv[2]]
).fetchall()
print(time.perf_counter() - t, len(rows), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""
LIBRARY = """
import resource, sys, time
from pathlib import Path
import duckdb, pyarrow
from logbook.cost import cost_report
from logbook.store import Store
t = time.perf_counter()
table = cost_report(Store.open(Path(sys.argv[1])), sys.argv[2])
print(time.perf_counter() - t, table.num_rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

GOODPUT = LIBRARY.replace(
    "from logbook.cost import cost_report", "from logbook.query.goodput import goodput"
).replace("table = cost_report(", "table = goodput(")


def _child(code: str, root: Path) -> dict[str, float]:
    out = (
        subprocess.run(
            [sys.executable, "-c", code, str(root), RUN], capture_output=True, text=True, check=True
        )
        .stdout.splitlines()[-1]
        .split()
    )  # DuckDB may draw a progress bar above it
    return {"s": float(out[0]), "rows": float(out[1]), "rss": float(out[2])}


def _cli_wait(argv: list[str]) -> dict[str, float]:
    """Run argv, time it, and read its peak RSS from os.wait4."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{argv} exited {proc.returncode}: {err[-2000:]}")
    return {"s": wall, "rss": usage.ru_maxrss * 1024}


def measure(root: Path, repeats: int) -> dict[str, dict[str, float]]:
    logbook = [
        sys.executable,
        "-m",
        "logbook",
        "cost",
        RUN,
        "--store",
        str(root),
        "--format",
        "json",
    ]
    bare_cli = [sys.executable, "-c", BARE, str(root), RUN]
    _child(BARE, root)  # warm the page cache
    goodput_cli = [*logbook[:3], "goodput", *logbook[4:]]
    runs: dict[str, list[dict[str, float]]] = {
        "bare": [],
        "library": [],
        "bare_cli": [],
        "cli": [],
        "goodput": [],
        "goodput_cli": [],
    }
    for _ in range(repeats):
        runs["bare"].append(_child(BARE, root))
        runs["library"].append(_child(LIBRARY, root))
        runs["bare_cli"].append(_cli_wait(bare_cli))
        runs["cli"].append(_cli_wait(logbook))
        runs["goodput"].append(_child(GOODPUT, root))
        runs["goodput_cli"].append(_cli_wait(goodput_cli))
    return {
        k: {"s": statistics.median(r["s"] for r in v), "rss": max(r["rss"] for r in v)}
        for k, v in runs.items()
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=float, default=100e6, help="sample rows (default 100e6)")
    ap.add_argument("--hosts", type=int, default=128)
    ap.add_argument("--attempts", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="build the store here and keep it; reused if there")
    ap.add_argument("--tmp", type=Path, help="parent of the temporary store")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_only:  # in a process of its own: a child inherits its parent's peak RSS
        built = build(args.build_only, int(args.rows), args.hosts, args.attempts)
        print(json.dumps(built))
        return 0
    tmp = None
    if args.keep:
        root = args.keep
    else:
        tmp = Path(tempfile.mkdtemp(prefix="cost-bench-", dir=args.tmp))
        root = tmp / "store"
    try:
        t = time.perf_counter()
        if (root / "samples").exists():
            built = {"rows": None, "reused": str(root)}
        else:
            argv = [sys.executable, __file__, "--build-only", str(root), "--rows", str(args.rows)]
            argv += ["--hosts", str(args.hosts), "--attempts", str(args.attempts)]
            out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
            built = json.loads(out.splitlines()[-1])
        built["build_s"] = time.perf_counter() - t
        figures = measure(root, args.repeats)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    ratio = figures["library"]["s"] / figures["bare"]["s"]
    cli_ratio = figures["cli"]["s"] / figures["bare_cli"]["s"]
    if args.json:
        print(
            json.dumps({"store": built, "figures": figures, "ratio": ratio, "cli_ratio": cli_ratio})
        )
        return 0
    if built.get("rows"):
        print(
            f"store: {built['rows']:,} sample rows in {built['parts']} parts, "
            f"{built['bytes'] / 2**30:.2f} GiB, {built['attempt_rows']} attempts over "
            f"{built['node_rows'] // max(built['attempt_rows'], 1)} hosts; "
            f"written in {built['build_s']:.0f} s"
        )
    else:
        print(f"store: reused {root}")
    for name, what in (
        ("bare", "bare DuckDB GROUP BY host (in process)"),
        ("library", "logbook.cost.cost_report (in process)"),
        ("bare_cli", "python -c bare query (end to end)"),
        ("cli", "logbook cost --format json (end to end)"),
        ("goodput", "logbook.query.goodput.goodput (in process)"),
        ("goodput_cli", "logbook goodput --format json (end to end)"),
    ):
        f = figures[name]
        print(f"{what:42} {f['s']:7.2f} s   peak RSS {f['rss'] / 2**20:6.0f} MiB")
    verdict = "ok" if ratio <= AIM else "missed"
    print(f"library / bare: {ratio:.2f} (aim <= {AIM}: {verdict}); CLI / bare CLI: {cli_ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
