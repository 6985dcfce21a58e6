"""`logbook run` into a local store and into S3 (moto's server on localhost), and what `logbook
show` costs on S3 (#18).

    python benchmarks/remote_bench.py [--steps 200] [--pause 0.01] [--reps 3]

Prints, for each store: the wrapped training's wall time, its start-up (from `logbook run` to the
training's first line), and for S3 the requests (as the server counts them) of a `logbook show`
with an empty cache and with a warm one.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from s3server import S3Server  # noqa: E402

TRAIN = textwrap.dedent(
    """
    import sys, time
    print(f"started {time.time()}", flush=True)
    n, pause = int(sys.argv[1]), float(sys.argv[2])
    for i in range(1, n + 1):
        print(f"step={i} loss={1.0 / i:.4f}", flush=True)
        time.sleep(pause)
    print(f"ended {time.time()}", flush=True)
    """
)


def wrapped(
    store: str, train: Path, steps: int, pause: float, env: dict[str, str]
) -> tuple[float, float, float]:
    """`logbook run`'s wall, its start-up (to the training's first line), and the training's own
    wall (its first line to its last, as it measures them)."""
    cmd = [sys.executable, "-m", "logbook", "run", "--run", "bench", "--store", store, "--"]
    t0 = time.time()
    out = subprocess.run(
        [*cmd, sys.executable, str(train), str(steps), str(pause)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    wall = time.time() - t0
    lines = out.stdout.splitlines()
    started, ended = float(lines[0].split()[1]), float(lines[-1].split()[1])
    return wall, started - t0, ended - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--pause", type=float, default=0.01)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="logbook-remote-bench-"))
    train = tmp / "train.py"
    train.write_text(TRAIN)
    server = S3Server().start()
    try:
        server.make_bucket("bench")
        env = server.env(
            LOGBOOK_SPOOL=str(tmp / "spool"),
            LOGBOOK_CACHE=str(tmp / "cache"),
            LOGBOOK_TEST_NO_FINISHER="1",
        )
        bare = []
        for _ in range(args.reps):
            t0 = time.time()
            subprocess.run(
                [sys.executable, str(train), str(args.steps), str(args.pause)],
                capture_output=True,
                check=True,
            )
            bare.append(time.time() - t0)
        results: dict[str, list[tuple[float, float, float]]] = {"local": [], "s3": []}
        for i in range(args.reps):  # alternated, so the machine's load falls on both alike
            results["local"].append(
                wrapped(str(tmp / f"local{i}"), train, args.steps, args.pause, env)
            )
            results["s3"].append(wrapped(f"s3://bench/r{i}", train, args.steps, args.pause, env))
        print(f"unwrapped: wall {statistics.median(bare):.2f} s (median of {args.reps})")
        medians = {}
        for name, rows in results.items():
            walls, starts, owns = zip(*rows, strict=True)
            medians[name] = statistics.median(walls), statistics.median(owns)
            print(
                f"{name:6} wall {statistics.median(walls):.2f} s  start-up "
                f"{statistics.median(starts):.3f} s  training's own wall "
                f"{statistics.median(owns):.3f} s  (median of {args.reps}; "
                f"walls {', '.join(f'{w:.2f}' for w in walls)})"
            )
        (s3_wall, s3_own), (local_wall, local_own) = medians["s3"], medians["local"]
        print(
            f"s3 / local: logbook run's wall {s3_wall / local_wall:.3f}, the training's own wall "
            f"{s3_own / local_own:.3f} (aim <= 1.05)"
        )
        server.record()
        wrapped("s3://bench/counted", train, args.steps, args.pause, env)
        print(f"one s3 run: {server.request_count()} requests (its catch-up, uploads)")
        for what in ("cold", "warm"):
            server.record()
            t0 = time.time()
            subprocess.run(
                [sys.executable, "-m", "logbook", "show", "bench", "--store", "s3://bench/r0"],
                capture_output=True,
                env=env,
                check=True,
            )
            print(
                f"show ({what} cache): {time.time() - t0:.2f} s, {server.request_count()} requests"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
