"""Benchmark of the Python API (#4): 10 metrics x N/10 steps, one `Recorder.log` call per step,
standalone recorder into a temporary store.

    python benchmarks/api_bench.py                      # 1,000,000 points
    python benchmarks/api_bench.py --points 10000000    # the peak-memory figure

Prints points/s, bytes per point on disk, the time to read back one metric's whole history and the
last value of each metric (logbook.query.run_sql), and the peak RSS while logging, each beside its
aim. The aims come from #4: 100x MLflow's quoted 5,900 points/s, a bare Parquet write's ~8.5 bytes.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import tempfile
import threading
import time
from pathlib import Path

METRICS = 10


def _bytes_on_disk(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "metrics").rglob("*.parquet"))


def log_points(store: Path, points: int) -> dict[str, float]:
    """Log `points` points; returns the rates and the peak RSS (sampled every 10 ms)."""
    import psutil

    from logbook.api import Recorder

    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rng = random.Random(0)
    names = [f"metric_{i}" for i in range(METRICS - 3)]
    steps = points // METRICS
    # Realistic values, fresh each step (noise does not compress): a decaying noisy loss, a
    # schedule, a grad norm and noisy others. Making them is counted in the time.
    rss_before = proc.memory_info().rss
    rec = Recorder(store=store, run="bench")
    t0 = time.perf_counter()
    for step in range(steps):
        values = {n: rng.random() for n in names}
        values["loss"] = 2.0 * math.exp(-step / 50_000) + rng.random() * 0.05
        values["learning_rate"] = 3e-4 * min(1.0, step / 2000)
        values["grad_norm"] = 0.5 + rng.random()
        rec.log(values, step=step)
    t_log = time.perf_counter() - t0
    rec.close()
    t_all = time.perf_counter() - t0
    done.set()
    sampler.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    return {
        "log_s": t_log,
        "total_s": t_all,
        "points": steps * METRICS,
        "rss_before": rss_before,
        "peak_rss": peak[0],
    }


def read_back(store: Path) -> tuple[float, float, int]:
    from logbook.query import run_sql
    from logbook.store import Store

    s = Store(store)
    t0 = time.perf_counter()
    hist = run_sql(s, "select step, value from metrics where name = 'loss' order by step")
    t_hist = time.perf_counter() - t0
    s = Store(store)
    t0 = time.perf_counter()
    last = run_sql(
        s, "select name, arg_max(value, step) as value from metrics group by name order by name"
    )
    t_last = time.perf_counter() - t0
    assert last.num_rows == METRICS, last
    return t_hist, t_last, hist.num_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        os.environ.pop("LOGBOOK_ATTEMPT_ID", None)
        r = log_points(store, args.points)
        n = int(r["points"])
        rate = n / r["total_s"]
        size = _bytes_on_disk(store)
        t_hist, t_last, hist_rows = read_back(store)
        mb = 1024 * 1024
        print(f"logbook Python API, {n:,} points ({METRICS} metrics x {n // METRICS:,} steps)")
        print(f"  log calls only        {n / r['log_s']:>12,.0f} points/s")
        print(f"  incl. final flush     {rate:>12,.0f} points/s   aim >= 590,000 (100x MLflow)")
        print(f"  on disk               {size / n:>12.2f} bytes/point aim <= 10")
        print(f"  one metric's history  {t_hist:>12.3f} s ({hist_rows:,} rows)  aim < 0.2 s")
        print(f"  last value of each    {t_last:>12.3f} s")
        print(
            f"  peak RSS              {r['peak_rss'] / mb:>12.0f} MB "
            f"(before logging {r['rss_before'] / mb:.0f} MB)  aim < 300 MB"
        )


if __name__ == "__main__":
    main()
