"""What the telemetry sampler (#5) costs the wrapper: CPU while `sleep` runs, and rows and bytes.

    python benchmarks/sampler_bench.py                 # 60 s per interval, about 5 minutes
    python benchmarks/sampler_bench.py --seconds 20    # quicker, rougher

1. `logbook run --no-capture --sample-every X -- sleep SECONDS` for X = 0 (no sampler: the
   baseline), 1s and 10s. The wrapper's CPU time (user+sys, from /proc through psutil) is read
   once the start-up is over and again just before the end, so the figure is the steady state of
   a long training; the whole process's CPU (os.wait4's rusage, start-up and end included) is
   printed beside it. The sampler's cost is the difference from the baseline.
2. The same sampler in this process on a `sleep` child, for 1s and 10s: its thread's own CPU
   time (CLOCK_THREAD_CPUTIME_ID: exact, where /proc counts in 10 ms ticks), per reading too.
3. Rows and bytes written to the samples table, per hour: per GPU where there are GPUs, else per
   host (every scope). Parts are written every 60 s, so runs shorter than that overstate bytes.

Aims (#5): at most 0.05 CPU-seconds per minute at 10 s, under 1 % of one core at 1 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SETTLE_S = 5.0  # the wrapper's start-up is over by then (imports, first reading, journal)
AIM_10S = 0.05  # CPU-seconds per minute at --sample-every 10s
AIM_1S = 0.01  # share of one core at --sample-every 1s


def _cpu(times: Any) -> float:
    return float(times.user + times.system)


def wrapped(tmp: Path, every: str, seconds: float) -> dict[str, Any]:
    """One `logbook run -- sleep`: steady-state and total CPU of the wrapper, rows, bytes."""
    import psutil

    store = tmp / f"store-{every}"
    cmd = [sys.executable, "-m", "logbook", "run", "--store", str(store), "--run", "bench"]
    cmd += ["--no-capture", "--sample-every", every, "--", "sleep", f"{seconds:g}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    settle = min(SETTLE_S, seconds / 4)
    time.sleep(settle)
    t0, m0 = ps.cpu_times(), time.monotonic()
    time.sleep(max(0.0, seconds - settle - 1.0))
    t1, m1 = ps.cpu_times(), time.monotonic()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"logbook run exited {proc.returncode}: {stderr}")
    steady = _cpu(t1) - _cpu(t0)
    window = m1 - m0
    rows, by_scope, size, gpus = _written(store)
    return {
        "every": every,
        "steady_cpu_per_min": steady / window * 60,
        "total_cpu": usage.ru_utime + usage.ru_stime,
        "rows": rows,
        "by_scope": by_scope,
        "bytes": size,
        "gpus": gpus,
        "seconds": seconds,
        "stderr": stderr.strip(),
    }


def _written(store: Path) -> tuple[int, dict[str, int], int, int]:
    from logbook.store import Store

    parts = list((store / "samples").rglob("*.parquet"))
    if not parts:
        return 0, {}, 0, 0
    table = Store(store).read("samples").to_pylist()
    by_scope: dict[str, int] = {}
    for r in table:
        by_scope[r["scope"]] = by_scope.get(r["scope"], 0) + 1
    gpus = len({r["gpu_index"] for r in table if r["scope"] == "gpu"})
    return len(table), by_scope, sum(p.stat().st_size for p in parts), gpus


def in_process(tmp: Path, every_s: float, seconds: float) -> dict[str, float]:
    """The sampler's own thread CPU on a `sleep` child, in this process."""
    from logbook.record.attempt import attempt_row
    from logbook.store import Store
    from logbook.supervisor.lineage import Placement
    from logbook.supervisor.recorder import Recorder, _now
    from logbook.telemetry import Sampler

    store = Store.open(tmp / f"direct-{every_s:g}", create=True)
    rec = Recorder(store, "bench", "a")
    rec.started(
        attempt_row(
            "bench",
            "a",
            command=["sleep"],
            cwd=tmp,
            host="h",
            placement=Placement("1.00", None, None),
            start=_now(),
        ),
        first_of_run=True,
    )
    child = subprocess.Popen(["sleep", f"{seconds:g}"])
    sampler = Sampler(rec, child.pid, every_s, os.environ)
    sampler.start()
    child.wait()
    sampler.stop()
    rec.ended(status="completed", end_time=_now())
    readings = sampler.ticks + 1
    return {
        "cpu_s": sampler.cpu_s,
        "readings": readings,
        "per_reading_ms": sampler.cpu_s / readings * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each sleep")
    parser.add_argument("--tmp", type=Path, default=None, help="parent of the temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as t:
        tmp = Path(t)
        print(f"logbook run --no-capture -- sleep {args.seconds:g}: the wrapper's CPU")
        runs = {every: wrapped(tmp, every, args.seconds) for every in ("0", "1s", "10s")}
        base = runs["0"]["steady_cpu_per_min"]
        print(
            f"{'--sample-every':>15} {'steady CPU s/min':>17} {'over baseline':>14} {'whole run CPU s':>16}"
        )
        for every, r in runs.items():
            extra = r["steady_cpu_per_min"] - base
            print(
                f"{every:>15} {r['steady_cpu_per_min']:>17.3f} "
                f"{'' if every == '0' else f'{extra:+.3f}':>14} {r['total_cpu']:>16.2f}"
            )
        print(f"\nthe sampler thread alone (in this process, sleep {args.seconds:g})")
        direct = {every: in_process(tmp, every, args.seconds) for every in (1.0, 10.0)}
        for every, d in direct.items():
            per_min = d["cpu_s"] / args.seconds * 60
            print(
                f"  every {every:>4g} s: {d['cpu_s']:.3f} CPU s over {d['readings']:.0f} readings "
                f"({d['per_reading_ms']:.2f} ms each) = {per_min:.4f} CPU s/min, "
                f"{per_min / 60 * 100:.3f} % of a core"
            )
        ten = direct[10.0]["cpu_s"] / args.seconds * 60
        one = direct[1.0]["cpu_s"] / args.seconds
        print(
            f"  aims: <= {AIM_10S} CPU s/min at 10 s: {'ok' if ten <= AIM_10S else 'missed'}; "
            f"< {AIM_1S:.0%} of a core at 1 s: {'ok' if one < AIM_1S else 'missed'}"
        )
        print("\nwritten to samples, extrapolated to an hour")
        for every in ("1s", "10s"):
            r = runs[every]
            per_hour = 3600 / r["seconds"]
            unit = f"per GPU ({r['gpus']} GPUs)" if r["gpus"] else "per host (no GPU here)"
            rows = r["by_scope"].get("gpu", 0) / r["gpus"] if r["gpus"] else r["rows"]
            size = r["bytes"] / r["gpus"] if r["gpus"] else r["bytes"]
            scopes = ", ".join(f"{k} {v}" for k, v in sorted(r["by_scope"].items()))
            print(
                f"  every {every:>3}: {rows * per_hour:,.0f} rows/h, {size * per_hour / 1e3:,.0f} kB/h "
                f"{unit}; in {r['seconds']:g} s: {r['rows']} rows ({scopes}), {r['bytes']:,} bytes"
            )
        notes = {r["stderr"] for r in runs.values() if r["stderr"]}
        for n in notes:
            print(f"\nwrapper stderr: {n}")


if __name__ == "__main__":
    main()
