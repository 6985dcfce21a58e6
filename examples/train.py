"""A small real training, no dependencies: logistic regression by gradient descent on data it makes.

It checkpoints every --ckpt-every steps, resumes from its latest checkpoint, prints metrics the way
trainers do, and can be made to fail (--crash-at N) so that `logbook run` sees a real crash:

    logbook run --run demo -- python examples/train.py --steps 300 --crash-at 180
    logbook run --run demo -- python examples/train.py --steps 300      # resumes from step 150
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time


def make_data(n: int, dim: int, seed: int) -> tuple[list[list[float]], list[int]]:
    rng = random.Random(seed)
    true_w = [rng.gauss(0, 1) for _ in range(dim)]
    xs, ys = [], []
    for _ in range(n):
        x = [rng.gauss(0, 1) for _ in range(dim)]
        p = 1 / (1 + math.exp(-sum(a * b for a, b in zip(true_w, x, strict=True))))
        xs.append(x)
        ys.append(1 if rng.random() < p else 0)
    return xs, ys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--ckpt-dir", default="ckpt")
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--crash-at", type=int, default=None, help="raise an error at this step")
    ap.add_argument(
        "--crash-times",
        type=int,
        default=1,
        help="crash only in the first N launches (LOGBOOK_RESTART_COUNT < N)",
    )
    ap.add_argument("--step-delay", type=float, default=0.0, help="seconds to sleep per step")
    args = ap.parse_args()

    xs, ys = make_data(4096, args.dim, seed=0)
    rng = random.Random(1)
    w, start = [0.0] * args.dim, 0
    ckpt = os.path.join(args.ckpt_dir, "latest.json")
    if os.path.exists(ckpt):
        with open(ckpt) as f:
            state = json.load(f)
        w, start = state["w"], state["step"]
        print(f"resumed from checkpoint at step {start}")
    t0 = time.time()
    for step in range(start + 1, args.steps + 1):
        launches = int(os.environ.get("LOGBOOK_RESTART_COUNT", "0"))
        if args.crash_at is not None and step == args.crash_at and launches < args.crash_times:
            raise RuntimeError(f"injected failure at step {step}")
        idx = [rng.randrange(len(xs)) for _ in range(args.batch)]
        grad, loss = [0.0] * args.dim, 0.0
        for i in idx:
            z = sum(a * b for a, b in zip(w, xs[i], strict=True))
            p = 1 / (1 + math.exp(-z))
            loss -= math.log(p if ys[i] else 1 - p + 1e-12)
            for d in range(args.dim):
                grad[d] += (p - ys[i]) * xs[i][d]
        w = [wi - args.lr * g / args.batch for wi, g in zip(w, grad, strict=True)]
        if step % 10 == 0:
            rate = (step - start) / max(time.time() - t0, 1e-9)
            print(f"step={step} loss={loss / args.batch:.4f} lr={args.lr:g} steps/s={rate:.1f}")
        if step % args.ckpt_every == 0:
            os.makedirs(args.ckpt_dir, exist_ok=True)
            with open(ckpt + ".tmp", "w") as f:
                json.dump({"step": step, "w": w}, f)
            os.replace(ckpt + ".tmp", ckpt)
            print(f"saved checkpoint at step {step}", file=sys.stderr)
        time.sleep(args.step_delay)
    print("training complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
