"""logbook's Python API against MLflow, W&B (offline) and a bare Parquet write, on the same work (#4).

    python benchmarks/api_compare.py --setup /tmp/apibench-venv  # once: mlflow, wandb, logbook
    python benchmarks/api_compare.py --venv /tmp/apibench-venv   # 1,000,000 points, ~25 min here
    python benchmarks/api_compare.py --venv /tmp/apibench-venv --steps 2000            # ~30 s
    python benchmarks/api_compare.py --venv /tmp/apibench-venv --steps 1000000 --only logbook

MLflow and W&B are never dependencies of logbook: `--setup DIR` makes a virtual environment of
their own in DIR and installs them there, with logbook from this checkout (editable). Each system
then runs in its own subprocess under that environment's Python, in a temporary folder of its own:
the same values (10 metrics, fresh random numbers each step), one call per step, then the whole
history of `loss` and the last value of each metric read back. The script that drives them needs
only the standard library. Figures are printed beside their ratio to MLflow from the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METRICS = 10
SYSTEMS = ("logbook", "mlflow", "wandb", "parquet")
REPEATS = 3  # reads: the median of this many calls, each from a fresh client
AIMS = {"rate_x": 100.0, "rate": 590_000.0, "bytes": 10.0, "hist_s": 0.2, "rss_mb": 300.0}


# the work, the same for every system --------------------------------------------------------


def workload(steps: int) -> Iterator[tuple[int, dict[str, float]]]:
    """(step, values) for `steps` steps: as benchmarks/api_bench.py, fresh noise each step (noise
    does not compress), a decaying loss, a warm-up schedule and a grad norm. Making the values is
    counted in every system's time."""
    rng = random.Random(0)
    names = [f"metric_{i}" for i in range(METRICS - 3)]
    for step in range(steps):
        values = {n: rng.random() for n in names}
        values["loss"] = 2.0 * math.exp(-step / 50_000) + rng.random() * 0.05
        values["learning_rate"] = 3e-4 * min(1.0, step / 2000)
        values["grad_norm"] = 0.5 + rng.random()
        yield step, values


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reads(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(median seconds, first call's seconds, rows) over REPEATS calls of `fn`."""
    times, rows = [], 0
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times[0], rows


def _rss_mb() -> float:
    """The resident set now (Linux), else the peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return _max_rss_mb()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _logged(steps: int, log: Callable[[int, dict[str, float]], None]) -> dict[str, float]:
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    for step, values in workload(steps):
        log(step, values)
    return {"t0": t0, "log_s": time.perf_counter() - t0, "rss_before_mb": rss_before}


# one worker per system: log, close, read back; returns the figures ----------------------------


def run_logbook(tmp: Path, steps: int) -> dict[str, Any]:
    from logbook.api import Recorder

    store = tmp / "store"
    rec = Recorder(store=store, run="bench")
    r = _logged(steps, lambda step, values: rec.log(values, step=step))
    rec.close()
    r["total_s"] = time.perf_counter() - r.pop("t0")
    r["rss_peak_mb"] = _max_rss_mb()
    r["bytes"] = _dir_bytes(store)
    # The read side's imports after the peak RSS (a training process does not read) and before
    # the timings (MLflow's are imported by its logging already).
    import duckdb  # noqa: F401

    from logbook.query import read_metrics, run_sql
    from logbook.store import Store

    def history() -> int:
        return read_metrics(Store(store), "bench", names=["loss"]).num_rows

    def last() -> int:
        sql = "select name, arg_max(value, step) as value from metrics group by name"
        return run_sql(Store(store), sql).num_rows

    r["hist_s"], r["hist_first_s"], r["hist_rows"] = _reads(history)
    r["last_s"], r["last_first_s"], r["last_rows"] = _reads(last)
    r["read_note"] = "logbook.query.read_metrics; last: run_sql arg_max"
    return r


def run_mlflow(tmp: Path, steps: int) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("bench", artifact_location=(tmp / "artifacts").as_uri())
    run_id = client.create_run(exp).info.run_id

    def log(step: int, values: dict[str, float]) -> None:
        ms = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, ms, step) for k, v in values.items()])

    r = _logged(steps, log)
    client.set_terminated(run_id)
    r["total_s"] = time.perf_counter() - r.pop("t0")
    r["rss_peak_mb"] = _max_rss_mb()
    r["bytes"] = _dir_bytes(tmp)

    def history() -> int:
        return len(MlflowClient(tracking_uri=uri).get_metric_history(run_id, "loss"))

    def last() -> int:
        return len(MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics)

    r["hist_s"], r["hist_first_s"], r["hist_rows"] = _reads(history)
    r["last_s"], r["last_first_s"], r["last_rows"] = _reads(last)
    r["version"] = mlflow.__version__
    r["read_note"] = "MlflowClient.get_metric_history; last: get_run().data.metrics"
    return r


def run_wandb(tmp: Path, steps: int) -> dict[str, Any]:
    import wandb

    helpers, done = _watch_children()
    run = wandb.init(project="bench", dir=str(tmp), mode="offline")
    run_dir = Path(run.dir).parent  # wandb/offline-run-*/files -> the run's folder
    r = _logged(steps, lambda step, values: wandb.log(values, step=step))
    run.finish()
    r["total_s"] = time.perf_counter() - r.pop("t0")
    r["rss_peak_mb"] = _max_rss_mb()
    done.set()
    wandb.teardown()
    r["helpers_mb"] = helpers
    r["bytes"] = _dir_bytes(run_dir)
    # W&B has no API that reads an offline run: its history is in the .wandb transaction log
    # until `wandb sync` uploads it. The figures below are our own scan of that log with W&B's
    # protobuf classes, the least a local reader would have to do; they are marked as such.
    (log_file,) = run_dir.glob("*.wandb")
    r["hist_s"], r["hist_first_s"], r["hist_rows"] = _reads(
        lambda: len(_scan_wandb(log_file, "history", "loss"))
    )
    r["last_s"], r["last_first_s"], r["last_rows"] = _reads(
        lambda: len([k for k in _scan_wandb(log_file, "summary") if not k.startswith("_")])
    )
    r["version"] = wandb.__version__
    r["read_note"] = (
        "no local read API for offline runs; reads are our scan of the .wandb log (protobuf)"
    )
    r["read_is_scan"] = True
    return r


def _watch_children() -> tuple[dict[str, float], Any]:
    """W&B works in helper processes (wandb-core and its system monitor): the peak RSS of each
    child process, by name, sampled every 0.1 s until the returned event is set."""
    import threading

    import psutil

    peaks: dict[str, float] = {}
    done = threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not done.wait(0.1):
            for child in me.children(recursive=True):
                try:
                    name, rss = child.name(), child.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                peaks[name] = max(peaks.get(name, 0.0), rss)

    threading.Thread(target=sample, daemon=True).start()
    return peaks, done


def _scan_wandb(path: Path, kind: str, key: str = "") -> Any:
    """`kind` "history": [(step, value of `key`)]; "summary": {key: last value}. The .wandb
    file is a 7-byte header, then LevelDB-log records (32 KiB blocks, 7-byte record headers,
    types FULL/FIRST/MIDDLE/LAST) of wandb_internal_pb2.Record. Checksums are not verified."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    pos, block, buf = 7, 32768, b""
    points: list[tuple[int, Any]] = []
    summary: dict[str, Any] = {}
    rec = pb.Record()
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        size, typ = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk = data[pos + 7 : pos + 7 + size]
        pos += 7 + size
        if typ == 0:
            continue
        buf = chunk if typ in (1, 2) else buf + chunk
        if typ not in (1, 4):
            continue
        rec.ParseFromString(buf)
        which = rec.WhichOneof("record_type")
        if which != kind:
            continue
        if kind == "history":
            for item in rec.history.item:
                if (item.key or ".".join(item.nested_key)) == key:
                    points.append((rec.history.step.num, json.loads(item.value_json)))
        else:
            for item in rec.summary.update:
                summary[item.key or ".".join(item.nested_key)] = json.loads(item.value_json)
    return points if kind == "history" else summary


def run_parquet(tmp: Path, steps: int) -> dict[str, Any]:
    """The floor: the same columns as logbook's metrics (time, step, name, value) in plain
    arrays, one pyarrow.parquet.write_table with its defaults at the end."""
    from array import array

    import pyarrow as pa
    import pyarrow.parquet as pq

    times, step_col, values_col = array("q"), array("q"), array("d")
    names: list[str] = []

    def log(step: int, values: dict[str, float]) -> None:
        n = len(values)
        times.extend(array("q", (time.time_ns() // 1000,)) * n)
        step_col.extend(array("q", (step,)) * n)
        names.extend(values)
        values_col.extend(values.values())

    path = tmp / "metrics.parquet"
    r = _logged(steps, log)
    table = pa.table(
        {
            "time": pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "step": pa.array(step_col, pa.int64()),
            "name": pa.array(names, pa.string()),
            "value": pa.array(values_col, pa.float64()),
        }
    )
    pq.write_table(table, path)
    r["total_s"] = time.perf_counter() - r.pop("t0")
    r["rss_peak_mb"] = _max_rss_mb()
    r["bytes"] = path.stat().st_size

    def history() -> int:
        return pq.read_table(path, filters=[("name", "=", "loss")]).num_rows

    def last() -> int:
        t = pq.read_table(path).sort_by("step")
        return t.group_by("name", use_threads=False).aggregate([("value", "last")]).num_rows

    r["hist_s"], r["hist_first_s"], r["hist_rows"] = _reads(history)
    r["last_s"], r["last_first_s"], r["last_rows"] = _reads(last)
    r["version"] = pa.__version__
    r["read_note"] = "pyarrow.parquet.read_table with a filter; last: group_by last"
    return r


WORKERS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "logbook": run_logbook,
    "mlflow": run_mlflow,
    "wandb": run_wandb,
    "parquet": run_parquet,
}


def worker(name: str, tmp: Path, steps: int, result: Path) -> None:
    """Runs in the subprocess: one system's work, its figures as JSON into `result`."""
    r = WORKERS[name](tmp, steps)
    r["points"] = steps * METRICS
    if name == "logbook":
        from importlib.metadata import version

        r["version"] = version("training-logbook")
    result.write_text(json.dumps(r))


# the driver ----------------------------------------------------------------------------------


def setup(venv: Path) -> None:
    """A virtual environment of the benchmark's own in `venv`: mlflow, wandb, logbook (editable)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install"]
    subprocess.run([*pip, "mlflow", "wandb", "-e", str(ROOT)], check=True)


def _child_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGBOOK_", "WANDB_"))}
    env.update(
        WANDB_MODE="offline",  # never the network
        WANDB_SILENT="true",
        WANDB_DIR=str(tmp),
        WANDB_CACHE_DIR=str(tmp / "wandb-cache"),
        WANDB_CONFIG_DIR=str(tmp / "wandb-config"),
        WANDB_DATA_DIR=str(tmp / "wandb-data"),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def run_one(python: Path, name: str, steps: int, parent: Path | None, timeout: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"api-compare-{name}-", dir=parent))
    try:
        result = tmp / "result.json"
        work = tmp / "work"
        work.mkdir()
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", name]
        cmd += ["--steps", str(steps), "--work", str(work), "--result", str(result)]
        print(f"  {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, cwd=work, env=_child_env(work), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"error": f"no result in {timeout:.0f} s"}
        if proc.returncode != 0 or not result.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            return {"error": f"exit {proc.returncode}: " + "\n    ".join(tail)}
        r = json.loads(result.read_text())
        print(f"  {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _x(value: float | None, base: float | None, invert: bool = False) -> str:
    if not value or not base:
        return ""
    ratio = base / value if invert else value / base
    return f"{ratio:,.1f}x" if ratio < 100 else f"{ratio:,.0f}x"


def render(results: dict[str, dict], steps: int) -> str:
    base = results.get("mlflow", {})
    base = {} if "error" in base else base
    n = steps * METRICS
    lines = [
        f"{n:,} points ({METRICS} metrics x {steps:,} steps), one call per step; "
        f"reads: median of {REPEATS}, first call in ( )",
        "",
        f"{'':<9} {'version':<9} {'points/s':>11} {'vs MLflow':>9}  {'bytes/pt':>8} "
        f"{'smaller':>7}  {'history s':>16} {'faster':>7}  {'last values s':>16}  "
        f"{'peak RSS MB':>17}",
    ]
    notes = []
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{name:<9} FAILED: {r['error']}")
            continue
        rate = r["points"] / r["total_s"]
        per_pt = r["bytes"] / r["points"]
        star = "*" if r.get("read_is_scan") else " "
        hist = f"{r['hist_s']:.3f} ({r['hist_first_s']:.3f}){star}"
        last = f"{r['last_s']:.3f} ({r['last_first_s']:.3f}){star}"
        rss = f"{r['rss_peak_mb']:.0f} (from {r['rss_before_mb']:.0f})"
        base_rate = base["points"] / base["total_s"] if base else None
        base_pt = base["bytes"] / base["points"] if base else None
        lines.append(
            f"{name:<9} {r.get('version', ''):<9} {rate:>11,.0f} {_x(rate, base_rate):>9}  "
            f"{per_pt:>8.1f} {_x(per_pt, base_pt, True):>7}  {hist:>16} "
            f"{_x(r['hist_s'], base.get('hist_s'), True):>7}  {last:>16}  {rss:>17}"
        )
        if r["hist_rows"] != steps or r["last_rows"] != METRICS:
            notes.append(
                f"{name}: read {r['hist_rows']:,} history rows (want {steps:,}) and "
                f"{r['last_rows']} last values (want {METRICS})"
            )
        if r.get("helpers_mb"):
            helpers = ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(r["helpers_mb"].items()))
            notes.append(f"{name}: peak RSS of its child processes, beside the above: {helpers}")
        notes.append(f"{name} reads: {r['read_note']}")
    lines.append("")
    if any(r.get("read_is_scan") for r in results.values()):
        lines.append("* not the library's own read path: W&B cannot read an offline run locally")
    lines += ["  " + note for note in notes]
    lines += ["", _aims(results, base)]
    return "\n".join(lines)


def _aims(results: dict[str, dict], base: dict) -> str:
    """logbook's figures against #4's aims: ok / missed. The speed and size aims are set for
    1,000,000 points, the memory aim for 10,000,000: at other sizes a verdict is only a hint."""
    r = results.get("logbook", {})
    if not r or "error" in r:
        return "aims (#4): logbook did not run"
    n = r["points"]
    rate, per_pt = n / r["total_s"], r["bytes"] / n
    checks = []
    if base:
        x = rate / (base["points"] / base["total_s"])
        checks.append(
            (f">= {AIMS['rate_x']:.0f}x MLflow's rate", f"{x:,.0f}x", x >= AIMS["rate_x"])
        )
    checks += [
        (
            f">= {AIMS['rate']:,.0f} points/s (100x #4's 5,900)",
            f"{rate:,.0f}",
            rate >= AIMS["rate"],
        ),
        (f"<= {AIMS['bytes']:.0f} bytes/point", f"{per_pt:.2f}", per_pt <= AIMS["bytes"]),
        (f"history < {AIMS['hist_s']} s", f"{r['hist_s']:.3f}", r["hist_s"] < AIMS["hist_s"]),
    ]
    size = "" if n == 1_000_000 else f" (set for 1,000,000 points; this is {n:,})"
    out = [f"aims (#4), logbook{size}:"]
    out += [f"  {what}: {got}  {'ok' if good else 'missed'}" for what, got, good in checks]
    rss = f"{r['rss_peak_mb']:.0f} MB at {n:,} points"
    if n >= 10_000_000:
        good = r["rss_peak_mb"] < AIMS["rss_mb"]
        out.append(
            f"  peak RSS < {AIMS['rss_mb']:.0f} MB at 10M points: {rss}  "
            f"{'ok' if good else 'missed'}"
        )
    else:
        out.append(
            f"  peak RSS < {AIMS['rss_mb']:.0f} MB at 10M points: {rss}; "
            "for the verdict: --steps 1000000 --only logbook"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setup", type=Path, metavar="DIR", help="make the venv in DIR and stop")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/apibench-venv"), metavar="DIR")
    ap.add_argument("--steps", type=int, default=100_000, help="steps of 10 metrics each")
    ap.add_argument(
        "--only", default=",".join(SYSTEMS), help="comma-separated: " + ",".join(SYSTEMS)
    )
    ap.add_argument("--tmp", type=Path, help="parent of the temporary folders")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per system")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.work, args.steps, args.result)
        return
    if args.setup:
        setup(args.setup)
        print(f"ready: {sys.argv[0]} --venv {args.setup}", file=sys.stderr)
        return
    python = args.venv / "bin" / "python"
    if not python.exists():
        sys.exit(f"no {python}: make it with --setup {args.venv}")
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SYSTEMS)
    if unknown:
        sys.exit(f"unknown --only {','.join(sorted(unknown))}; known: {','.join(SYSTEMS)}")
    started = time.strftime("%Y-%m-%d %H:%M")
    results = {name: run_one(python, name, args.steps, args.tmp, args.timeout) for name in only}
    if args.json:
        print(json.dumps({"started": started, "steps": args.steps, "results": results}, indent=1))
    else:
        print(f"api_compare {started}, {os.cpu_count()} cores")
        print(render(results, args.steps))
    if any("error" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
