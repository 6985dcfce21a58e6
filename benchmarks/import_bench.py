"""`logbook import` of a large hand-kept history: rows per CPU-second (#16 keeps >= 140,000).

    python benchmarks/import_bench.py                 # 1,000,000 rows
    python benchmarks/import_bench.py --rows 200000 --json

The file is JSON lines shaped like a long run's history: a metric row for most lines (loss, lr,
grad_norm at a step), and among them attempts (one in 5,000 rows, with day or range times on some),
hardware rows, hyperparameter changes with approximate steps and notes. `logbook import` runs in a
fresh process (`sys.executable -m logbook`, so PYTHONPATH picks the code under test) into a fresh
store; its CPU time is the child's user + system time. A second import of the same file must add
nothing (checked). Prints one table, or JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

AIM_ROWS_PER_CPU_S = 140_000


def write_history(path: Path, rows: int, seed: int = 16, *, plain: bool = False) -> dict[str, int]:
    """A history of `rows` lines; returns the count of each row type. `plain`: only what imports
    before #16 read (no hardware rows, days, ranges, approximate steps, sources or `ended`)."""
    rng = random.Random(seed)
    start = datetime(2022, 3, 11, tzinfo=timezone.utc)
    counts = dict.fromkeys(("attempt", "metric", "event", "note", "hardware"), 0)
    step, attempt, t, prev = 0, 0, start, ""
    with path.open("w") as f:

        def put(row: dict[str, object]) -> None:
            f.write(json.dumps(row) + "\n")
            counts[str(row["type"])] += 1

        if not plain:
            put({"type": "hardware", "time": "2022-03", "hosts": 48, "gpus_per_host": 8,
                 "gpu_model": "A100 80GB", "source": "benchmark"})  # fmt: skip
        while sum(counts.values()) < rows:
            if step % 5000 == 0:  # a new attempt, its predecessor ended at its last point
                label = f"{1 + attempt // 40}.{attempt % 40:02d}"
                if attempt:
                    ends = ["crashed", "hung"] if plain else ["crashed", "hung", "ended"]
                    put({"type": "attempt", "label": prev, "end": iso(t), "status": rng.choice(ends)}
                        | ({} if plain else {"source": "benchmark"}))  # fmt: skip
                    t += timedelta(days=1)  # down a day: a start known to the day is after the end
                by_day = attempt % 7 == 3 and not plain
                begin = t.strftime("%Y-%m-%d") if by_day else iso(t)
                if by_day:
                    t = t.replace(hour=12)  # its points after its start, whatever the day's hour
                put({"type": "attempt", "label": label, "start": begin, "status": "running",
                     "resumed_from": max(step - 100, 0) if plain else f"≈ {max(step - 100, 0):,}"})  # fmt: skip
                prev, attempt = label, attempt + 1
            if step % 997 == 0:
                put({"type": "event", "time": iso(t), "kind": "hparam_change", "key": "lr",
                     "old": 1e-4, "new": 9e-5, "step": step if plain else f"{step}-{step + 50}"})  # fmt: skip
            if step % 1499 == 0:
                put({"type": "note", "time": iso(t), "text": f"checked the loss at {step}",
                     "tags": ["watch"]})  # fmt: skip
            put({"type": "metric", "time": iso(t), "step": step,
                 "metrics": {"loss": 3.0 - step * 1e-6 + rng.random() * 0.01,
                             "lr": 1e-4, "grad_norm": rng.random()}})  # fmt: skip
            step += 1
            t += timedelta(seconds=30)
        put({"type": "attempt", "label": prev, "end": iso(t), "status": "completed"})
    return counts


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def timed_import(path: Path, store: Path) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of `logbook import` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "logbook",
            "import",
            str(path),
            "--run",
            "bench",
            "--store",
            str(store),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"logbook import failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plain", action="store_true", help="only rows imports before #16 read")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        path = Path(tmp) / "history.jsonl"
        counts = write_history(path, args.rows, plain=args.plain)
        lines = sum(counts.values())
        metric_points = counts["metric"] * 3
        wall, cpu, said = timed_import(path, Path(tmp) / "store")
        _, cpu_again, said_again = timed_import(path, Path(tmp) / "store")
        if "0 attempts, 0 events, 0 notes, 0 metrics" not in said_again:
            raise SystemExit(f"a second import added rows: {said_again.strip()}")
        rate = lines / cpu
        figures = {
            "rows": lines,
            "by_type": counts,
            "metric_points": metric_points,
            "file_mb": round(path.stat().st_size / 1e6, 1),
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "rows_per_cpu_s": round(rate),
            "again_cpu_s": round(cpu_again, 2),
            "aim_rows_per_cpu_s": AIM_ROWS_PER_CPU_S,
            "met": rate >= AIM_ROWS_PER_CPU_S,
            "said": said.strip().splitlines()[-1],
        }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"logbook import, {lines:,} rows ({figures['file_mb']} MB; {counts})")
        print(f"  {figures['said']}")
        print(f"  wall {wall:.2f} s, CPU {cpu:.2f} s: {rate:,.0f} rows per CPU-second "
              f"(aim >= {AIM_ROWS_PER_CPU_S:,}: {'met' if figures['met'] else 'missed'})")  # fmt: skip
        print(f"  the same file again: CPU {cpu_again:.2f} s, nothing added (checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
