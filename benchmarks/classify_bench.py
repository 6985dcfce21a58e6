"""How long crash classification takes on a 10 MB log (issue #3 aims under 0.2 s).

    .venv/bin/python benchmarks/classify_bench.py            # 10 MB, best of 5
    .venv/bin/python benchmarks/classify_bench.py --size-mb 100 --repeats 3

The log is training progress lines (`step=... loss=... lr=...`, some rank-prefixed) with a
Python traceback at the end; stdout.log and stderr.log both get the full size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from logbook.forensics import classify_end, load_rules

TRACEBACK = """\
Traceback (most recent call last):
  File "/work/train.py", line 212, in <module>
    main()
  File "/work/train.py", line 57, in main
    loss = step(model, batch)
  File "/work/train.py", line 31, in step
    raise ValueError("batch 5121 has no tokens")
ValueError: batch 5121 has no tokens
"""


def write_log(path: Path, size: int) -> None:
    """Write about `size` bytes of progress lines, then a traceback."""
    with open(path, "w") as f:
        written, step = 0, 0
        while written < size:
            line = (
                f"[rank{step % 8}]: step={step} loss={2.5 + (step % 97) / 1000:.4f} "
                f"lr=3.0e-04 grad_norm=0.{step % 1000:03d} tokens_per_s=181234 mem_gb=61.2\n"
            )
            f.write(line)
            written += len(line)
            step += 1
        f.write(TRACEBACK)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logs = [Path(tmp) / "stdout.log", Path(tmp) / "stderr.log"]
        for p in logs:
            write_log(p, int(args.size_mb * 1e6))
        t0 = time.perf_counter()
        rules = load_rules()
        load_s = time.perf_counter() - t0
        times, verdict = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            verdict = classify_end(returncode=1, log_paths=logs, rules=rules)
            times.append(time.perf_counter() - t0)
    assert verdict is not None
    print(f"log size       : {args.size_mb:g} MB x 2 files ({len(rules)} rules)")
    print(f"load rules     : {load_s * 1000:.1f} ms (once per process)")
    print(f"classify       : best {min(times) * 1000:.1f} ms, worst {max(times) * 1000:.1f} ms")
    print(f"verdict        : {verdict.status} / {verdict.crash_class} / {verdict.summary}")


if __name__ == "__main__":
    main()
