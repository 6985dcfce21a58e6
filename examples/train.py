"""A small real training, no dependencies: logistic regression by gradient descent on data it makes.

It reads a config file and a data mix, prints metrics the way trainers do, checkpoints every
--ckpt-every steps, resumes from its latest checkpoint, and can be made to fail in the ways real
trainings fail, so that `logbook run` sees the real thing (`logbook demo` runs it through a story):

    logbook run --run demo -- python examples/train.py --steps 300 --crash-at 180
    logbook run --run demo -- python examples/train.py --steps 300      # resumes from step 150

Settings: --config FILE (JSON, TOML, or YAML's simple form: `key: value` lines) holds any of
lr, batch, steps, dim, ckpt_every, log_every, step_delay; a flag given on the command line wins.
--data-mix FILE maps sources to weights (`web: 0.6`, or `web: {weight: 0.6}`, optionally under
`sources:`): each source is its own distribution of examples, and the data is drawn from them in
those proportions, so a changed mix changes the data.

Faults, each at a step N: --crash-at (an exception), --signal-at with --signal KILL|SEGV|TERM (the
process kills itself with that signal), --hang-at (stops printing and sleeps, as a stuck
collective does), --spike-at (a bad batch knocks the weights: the loss spikes, then recovers),
--nan-at (the loss turns NaN and the training stops itself), --oom-at (--oom host, on Linux:
allocates under a memory limit, RLIMIT_AS, until a real MemoryError; --oom cuda: prints PyTorch's
CUDA out-of-memory error and exits 1, as no GPU is needed here). Each fires once per checkpoint folder, --crash-at the first
--crash-times times: the ones fired are kept in CKPT_DIR/.faults.json (a dotfile, which logbook's
checkpoint watch ignores), so a relaunch, by logbook or by hand, goes past them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
import zlib

DEFAULTS = {
    "lr": 0.5,
    "batch": 64,
    "steps": 300,
    "dim": 16,
    "ckpt_every": 50,
    "log_every": 10,
    "step_delay": 0.0,
}
EXAMPLES = 4096


def read_settings(path: str) -> dict:
    """A JSON, TOML or simple YAML file as a dict."""
    with open(path) as f:
        text = f.read()
    if path.endswith(".json"):
        return json.loads(text)
    if path.endswith(".toml"):
        import tomllib  # Python 3.11+

        return tomllib.loads(text)
    return _simple_yaml(text, path)


def _simple_yaml(text: str, path: str) -> dict:
    """YAML's simple form, without a YAML library: `key: value` lines, `key: {a: 1, b: 2}`,
    `# comments`, and one level of indented keys under `key:`."""
    out: dict = {}
    parent: dict | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        key, sep, value = line.strip().partition(":")
        if not sep or not key:
            sys.exit(f"{path}:{n}: expected `key: value`, got {raw.strip()!r}")
        indented = line[0] in " \t"
        if indented and parent is None:
            sys.exit(f"{path}:{n}: an indented line with no `key:` above it")
        target = parent if indented and parent is not None else out
        if not indented:
            parent = None
        value = value.strip()
        if not value:
            parent = target[key.strip()] = {}
        elif value.startswith("{") and value.endswith("}"):
            target[key.strip()] = {
                k.strip(): _scalar(v)
                for k, _, v in (p.partition(":") for p in value[1:-1].split(",") if p.strip())
            }
        else:
            target[key.strip()] = _scalar(value)
    return out


def _scalar(text: str) -> object:
    text = text.strip().strip("\"'")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text.lower(), text)


def read_mix(path: str | None) -> dict[str, float]:
    """Source -> weight, normalized; one source when there is no mix."""
    if path is None:
        return {"synthetic": 1.0}
    mix = read_settings(path)
    mix = mix.get("sources", mix)
    weights = {
        str(name): float(v["weight"] if isinstance(v, dict) else v) for name, v in mix.items()
    }
    total = sum(weights.values())
    if not weights or total <= 0 or min(weights.values()) < 0:
        sys.exit(f"{path}: the data mix needs sources with weights >= 0 that add up to more than 0")
    return {name: w / total for name, w in weights.items()}


def make_data(
    mix: dict[str, float], n: int, dim: int, seed: int
) -> tuple[list[list[float]], list[int]]:
    """n examples drawn from the mix's sources: each source has its own inputs' centre and its
    own twist on the shared true weights, so the mix decides what the model has to fit."""
    rng = random.Random(seed)
    true_w = [rng.gauss(0, 1) for _ in range(dim)]
    xs, ys = [], []
    for name, weight in sorted(mix.items()):
        src = random.Random(zlib.crc32(name.encode()))  # the same source, the same data
        centre = [src.gauss(0, 0.5) for _ in range(dim)]
        w = [t + src.gauss(0, 0.7) for t in true_w]
        for _ in range(round(weight * n)):
            x = [c + rng.gauss(0, 1) for c in centre]
            p = 1 / (1 + math.exp(-sum(a * b for a, b in zip(w, x, strict=True))))
            xs.append(x)
            ys.append(1 if rng.random() < p else 0)
    return xs, ys


class Faults:
    """The injected faults that have fired, kept in the checkpoint folder so each fires once."""

    def __init__(self, ckpt_dir: str) -> None:
        self.path = os.path.join(ckpt_dir, ".faults.json")
        try:
            with open(self.path) as f:
                self.fired: dict[str, int] = json.load(f)
        except (OSError, ValueError):
            self.fired = {}

    def due(self, name: str, at: int | None, step: int, times: int = 1) -> bool:
        """Whether fault `name` set for step `at` fires now; if so it is written down first."""
        if at is None or step != at or self.fired.get(name, 0) >= times:
            return False
        self.fired[name] = self.fired.get(name, 0) + 1
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.fired, f)
        os.replace(self.path + ".tmp", self.path)
        return True


def exhaust_memory() -> None:
    """A real host OOM without hurting the machine: cap this process's address space a little
    above what it uses, then allocate until Python raises MemoryError."""
    import resource

    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), resource.RLIM_INFINITY))
    chunks = []
    try:
        while True:
            chunks.append(bytearray(16 << 20))
    except MemoryError:
        chunks.clear()  # room to print the traceback
        raise


def cuda_oom() -> int:
    """What PyTorch prints when a GPU runs out of memory (no GPU needed to read it)."""
    print(
        "Traceback (most recent call last):\n"
        '  File "train.py", line 212, in <module>\n'
        "    loss.backward()\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
        "total capacity of 79.10 GiB of which 1.12 GiB is free. Including non-PyTorch memory, "
        "this process has 77.97 GiB memory in use. Of the allocated memory 74.21 GiB is "
        "allocated by PyTorch, and 2.31 GiB is reserved by PyTorch but unallocated. If "
        "reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.",
        file=sys.stderr,
    )
    return 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="a JSON, TOML or simple YAML file of settings")
    ap.add_argument("--data-mix", help="a file mapping data sources to weights")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--dim", type=int)
    ap.add_argument("--ckpt-dir", default="ckpt")
    ap.add_argument("--ckpt-every", type=int)
    ap.add_argument("--log-every", type=int, help="steps between metric lines (default 10)")
    ap.add_argument("--step-delay", type=float, help="seconds to sleep per step")
    ap.add_argument("--crash-at", type=int, help="raise an error at this step")
    ap.add_argument(
        "--crash-times", type=int, default=1, help="crash the first N times the step is reached"
    )
    ap.add_argument("--signal-at", type=int, help="kill this process with --signal at this step")
    ap.add_argument("--signal", default="KILL", choices=["KILL", "SEGV", "TERM"])
    ap.add_argument("--hang-at", type=int, help="stop printing and sleep at this step")
    ap.add_argument("--spike-at", type=int, help="a bad batch at this step: the loss spikes")
    ap.add_argument("--nan-at", type=int, help="the loss turns NaN at this step")
    ap.add_argument("--oom-at", type=int, help="run out of memory at this step")
    ap.add_argument("--oom", default="host", choices=["host", "cuda"], help="which memory")
    args = ap.parse_args(argv)
    settings = dict(DEFAULTS)
    if args.config:
        for key, value in read_settings(args.config).items():
            key = key.replace("-", "_")
            if key not in DEFAULTS:
                ap.error(f"{args.config}: unknown setting {key!r} (known: {', '.join(DEFAULTS)})")
            settings[key] = type(DEFAULTS[key])(value)
    for key in DEFAULTS:  # a flag on the command line wins over the config
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    for key, value in settings.items():
        setattr(args, key, value)
    return args


def save(ckpt: str, step: int, w: list[float]) -> None:
    os.makedirs(os.path.dirname(ckpt), exist_ok=True)
    with open(ckpt + ".tmp", "w") as f:
        json.dump({"step": step, "w": w}, f)
    os.replace(ckpt + ".tmp", ckpt)
    print(f"saved checkpoint at step {step}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mix = read_mix(args.data_mix)
    xs, ys = make_data(mix, EXAMPLES, args.dim, seed=0)
    rng = random.Random(1)
    faults = Faults(args.ckpt_dir)
    w, start = [0.0] * args.dim, 0
    ckpt = os.path.join(args.ckpt_dir, "latest.json")
    if os.path.exists(ckpt):
        with open(ckpt) as f:
            state = json.load(f)
        w, start = state["w"], state["step"]
    print(f"data mix: {', '.join(f'{k} {v:.0%}' for k, v in sorted(mix.items()))}")
    if start:
        print(f"resumed from checkpoint at step {start}")
    done, t0, losses, norms = start, time.time(), [], []
    try:
        for step in range(start + 1, args.steps + 1):
            if faults.due("crash", args.crash_at, step, args.crash_times):
                raise RuntimeError(f"injected failure at step {step}")
            if faults.due("signal", args.signal_at, step):
                os.kill(os.getpid(), getattr(signal, f"SIG{args.signal}"))
            if faults.due("hang", args.hang_at, step):
                time.sleep(24 * 3600)
            if faults.due("oom", args.oom_at, step):
                if args.oom == "cuda":
                    return cuda_oom()
                exhaust_memory()
            idx = [rng.randrange(len(xs)) for _ in range(args.batch)]
            # A bad batch: scaled-up inputs with the labels flipped, one big step the wrong way.
            bad = 8.0 if faults.due("spike", args.spike_at, step) else 0.0
            grad, loss = [0.0] * args.dim, 0.0
            for i in idx:
                x, y = ([v * bad for v in xs[i]], 1 - ys[i]) if bad else (xs[i], ys[i])
                z = sum(a * b for a, b in zip(w, x, strict=True))
                p = 1 / (1 + math.exp(-max(-500.0, min(500.0, z))))
                loss -= math.log(max(p if y else 1 - p, 1e-12))
                for d in range(args.dim):
                    grad[d] += (p - y) * x[d]
            if faults.due("nan", args.nan_at, step):
                loss = float("nan")
            w = [wi - args.lr * g / args.batch for wi, g in zip(w, grad, strict=True)]
            done = step
            losses.append(loss / args.batch)
            norms.append(math.sqrt(sum(g * g for g in grad)) / args.batch)
            if step % args.log_every == 0 or math.isnan(loss):
                rate = len(losses) * args.batch / max(time.time() - t0, 1e-9)
                print(
                    f"step={step} loss={sum(losses) / len(losses):.4f} lr={args.lr:g} "
                    f"grad_norm={sum(norms) / len(norms):.4f} samples_per_s={rate:.0f}"
                )
                if math.isnan(loss):
                    print("Loss is nan, stopping training")
                    return 1
                t0, losses, norms = time.time(), [], []
            if step % args.ckpt_every == 0:
                save(ckpt, step, w)
            time.sleep(args.step_delay)
    except KeyboardInterrupt:  # Ctrl-C: keep the work done so far, as trainers do
        print(f"interrupted at step {done}", file=sys.stderr)
        if done > start:
            save(ckpt, done, w)
        return 130
    print("training complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
