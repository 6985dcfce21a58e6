"""Benchmarks of logbook's overhead: output passthrough, a fast-printing Python child, start-up,
and a query over many small parts before and after compaction.

    .venv/bin/python benchmarks/bench.py                  # defaults: a few minutes on 2 cores
    .venv/bin/python benchmarks/bench.py --size-mb 256 --parts 2000 --json
    .venv/bin/python benchmarks/bench.py --only startup,query

Every figure comes from this one invocation, so ratios compare like with like. Speed aims are
printed beside the figures and never fail the script; a failed correctness check (bytes lost,
counts that differ, a command that errs) makes it exit 1. Temporary folders are removed.
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
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import psutil

LINE_KINDS = (
    "step={i} loss={loss:.3f} lr=3.0e-04 grad_norm={g:.2f} tokens/s={t}\n",
    "epoch 1: {pct:3d}%|{bar:<20}| {i}/100000 [01:23<04:56, {it:.2f}it/s]\r",
    "[rank0] step={i} loss={loss:.4f} ppl={ppl:.2f} mem=38.1GiB\n",
)
PY_CHILD = """import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"step={i} loss={2.0 + (i % 997) / 1000:.3f} lr=3.0e-04 "
          f"grad_norm={(i % 89) / 31:.2f} tokens/s={12000 + i % 700}")
"""


def make_log_file(path: Path, size_mb: int) -> int:
    """Write ~size_mb MB of training-log lines: a varied ~4 MB block written repeatedly."""
    lines, i, size = [], 0, 0
    while size < 4 << 20:
        k = LINE_KINDS[i % 7 % 3]  # mostly step lines, some tqdm \r lines
        lines.append(
            k.format(
                i=i,
                loss=2 + (i % 997) / 1000,
                g=(i % 89) / 31,
                t=12000 + i % 777,
                pct=i % 100,
                bar="#" * (i % 20),
                it=7.5 + i % 13,
                ppl=7 + i % 5,
            )
        )
        size += len(lines[-1])
        i += 1
    block, target, written = "".join(lines).encode(), size_mb << 20, 0
    with open(path, "wb") as f:
        while written < target:
            chunk = block[: target - written]
            f.write(chunk)
            written += len(chunk)
    return written


def drain(cmd: list[str], *, watch_rss: bool = False, env: dict | None = None) -> dict:
    """Run cmd, its stdout to a pipe we read and discard: wall time, bytes, peak RSS of its pid."""
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env)
    peak, stop = [0], threading.Event()

    def poll() -> None:
        try:
            proc = psutil.Process(p.pid)
            while not stop.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                stop.wait(0.02)
        except psutil.Error:
            pass

    watcher = threading.Thread(target=poll, daemon=True)
    if watch_rss:
        watcher.start()
    fd, n = p.stdout.fileno(), 0
    while data := os.read(fd, 1 << 20):
        n += len(data)
    rc = p.wait()
    wall = time.perf_counter() - t0
    stop.set()
    if watch_rss:
        watcher.join()
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} exited {rc}: {stderr.strip()[-800:]}")
    return {"wall_s": wall, "bytes": n, "peak_rss_mb": peak[0] / 2**20, "stderr": stderr}


def raw_log_bytes(store: Path, stream: str = "stdout") -> list[int]:
    return [p.stat().st_size for p in sorted((store / "logs").glob(f"run=*/*/{stream}.log"))]


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.a, self.tmp, self.rows, self.failures = args, tmp, [], []
        self.lb = args.logbook

    def add(self, section: str, name: str, value, unit: str = "", aim: str = "", ok=None) -> None:
        self.rows.append(
            {"section": section, "figure": name, "value": value, "unit": unit, "aim": aim, "ok": ok}
        )

    def check(self, section: str, what: str, good: bool, detail: str = "") -> None:
        self.add(section, f"check: {what}", detail or ("same" if good else "DIFFERENT"), ok=good)
        if not good:
            self.failures.append(f"{section}: {what} {detail}")

    def passthrough(self) -> None:
        s, f = "passthrough", self.tmp / "train.log"
        t0 = time.perf_counter()
        size = make_log_file(f, self.a.size_mb)
        self.add(s, "generate file", round(time.perf_counter() - t0, 2), "s")
        drain(["cat", str(f)])  # warm the page cache
        base = drain(["cat", str(f)])
        tee = drain(["sh", "-c", 'cat "$1" | tee "$2"', "sh", str(f), str(self.tmp / "tee.log")])
        (self.tmp / "tee.log").unlink()
        store = self.tmp / "pt-store"
        wrapped = drain(
            [
                self.lb,
                "run",
                "--run",
                "pt",
                "--no-capture",
                "--store",
                str(store),
                "--",
                "cat",
                str(f),
            ],
            watch_rss=True,
        )
        mb = size / 2**20
        b, w, t = (mb / r["wall_s"] for r in (base, wrapped, tee))
        self.add(s, "file size", round(mb, 1), "MB")
        self.add(s, "cat FILE | reader", round(b, 1), "MB/s")
        self.add(s, "logbook run -- cat FILE | reader", round(w, 1), "MB/s")
        self.add(s, "ratio wrapped/plain", round(w / b, 3), "", ">= 0.5", w / b >= 0.5)
        self.add(s, "(reference) cat FILE | tee LOG | reader", round(t, 1), "MB/s")
        self.add(s, "(reference) ratio wrapped/tee", round(w / t, 3))
        self.add(
            s,
            "wrapper peak RSS",
            round(wrapped["peak_rss_mb"], 1),
            "MB",
            "< 100",
            wrapped["peak_rss_mb"] < 100,
        )
        self.check(
            s, "bytes passed through", wrapped["bytes"] == size, f"{wrapped['bytes']} of {size}"
        )
        logs = raw_log_bytes(store)
        self.check(s, "raw log size", logs == [size], f"{logs} vs {size}")

    def python_child(self) -> None:
        s, script = "python child", self.tmp / "child.py"
        script.write_text(PY_CHILD)
        plain_cmd = [sys.executable, str(script), str(self.a.py_lines)]
        store = self.tmp / "py-store"
        wrapped_cmd = [
            self.lb,
            "run",
            "--run",
            "py",
            "--no-capture",
            "--store",
            str(store),
            "--",
            *plain_cmd,
        ]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # block-buffered
        plain, wrapped = [], []
        for _ in range(self.a.repeats):
            plain.append(drain(plain_cmd, env=env))
            wrapped.append(drain(wrapped_cmd, env=env))
        p = statistics.median(r["wall_s"] for r in plain)
        w = statistics.median(r["wall_s"] for r in wrapped)
        self.add(s, "output per run", round(plain[0]["bytes"] / 2**20, 1), "MB")
        self.add(s, f"plain (median of {self.a.repeats})", round(p, 3), "s")
        self.add(s, f"wrapped (median of {self.a.repeats})", round(w, 3), "s")
        self.add(s, "ratio wrapped/plain", round(w / p, 3), "", "<= 1.05", w / p <= 1.05)
        n = plain[0]["bytes"]
        self.check(
            s,
            "bytes passed through",
            all(r["bytes"] == n for r in plain + wrapped),
            str(sorted({r["bytes"] for r in plain + wrapped})),
        )
        logs = raw_log_bytes(store)
        self.check(
            s, "raw logs", logs == [n] * len(wrapped), f"{len(logs)} logs of {set(logs)} bytes"
        )

    def startup(self) -> None:
        s, store = "start-up", self.tmp / "su-store"
        cases = {
            "true": ["true"],
            "logbook run -- true": [
                self.lb,
                "run",
                "--run",
                "su",
                "--store",
                str(store),
                "--",
                "true",
            ],
            "logbook run --no-capture -- true": [
                self.lb,
                "run",
                "--run",
                "su",
                "--no-capture",
                "--store",
                str(store),
                "--",
                "true",
            ],
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        noisy: set[str] = set()
        for cmd in cases.values():
            drain(cmd)  # warm-up (creates the store, fills caches)
        for _ in range(self.a.startup_runs):
            for k, cmd in cases.items():
                r = drain(cmd)
                times[k].append(r["wall_s"])
                if r["stderr"].strip() and k not in noisy:
                    noisy.add(k)
                    self.add(s, f"stderr of {k}", r["stderr"].strip()[:120])
        for k, ts in times.items():
            med = statistics.median(ts)
            aim = "" if k == "true" else "< 0.5"
            self.add(
                s, f"{k} (median of {len(ts)})", round(med, 3), "s", aim, med < 0.5 if aim else None
            )

    def query(self) -> None:
        s, store = "query", self.tmp / "q-store"
        from logbook.store import Store

        Store.open(store, create=True)
        parts, rows, runs = self.a.parts, self.a.rows_per_part, self.a.runs
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            jobs = [
                pool.submit(write_parts, str(store), f"r{k}", range(k, parts, runs), rows)
                for k in range(runs)
            ]
            written = sum(j.result() for j in jobs)
        self.add(
            s,
            f"build {parts} parts x {rows} rows in {runs} runs",
            round(time.perf_counter() - t0, 2),
            "s",
        )
        self.check(s, "parts written", written == parts, f"{written} of {parts}")
        sql = "select count(*) as n from events"

        before_t, before_n = timed_count(self.lb, sql, store)
        self.add(s, f"query before compact ({parts} parts)", round(before_t, 3), "s")
        t0 = time.perf_counter()
        drain([self.lb, "compact", "--store", str(store)])
        self.add(s, "compact", round(time.perf_counter() - t0, 2), "s")
        after_t, after_n = timed_count(self.lb, sql, store)
        files = len(list((store / "events").glob("run=*/*.parquet")))
        self.add(
            s, f"query after compact ({files} parts)", round(after_t, 3), "s", "< 1", after_t < 1
        )
        self.check(
            s,
            "count before = after = written",
            before_n == after_n == parts * rows,
            f"{before_n} / {after_n} / {parts * rows}",
        )


def timed_count(lb: str, sql: str, store: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    p = subprocess.run(
        [lb, "query", sql, "--store", str(store), "--format", "json"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"logbook query exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return wall, int(json.loads(p.stdout)[0]["n"])


def write_parts(store: str, run: str, indices: range, rows: int) -> int:
    from logbook.store import Store

    st, now = Store.open(Path(store)), datetime.now(timezone.utc)
    for i in indices:
        st.write(
            "events",
            run,
            [
                {
                    "attempt_id": f"a{i}",
                    "event_id": f"e{i}-{j}",
                    "time": now,
                    "step": i * 10 + j,
                    "kind": "note",
                    "severity": "info",
                    "source": "api",
                    "message": f"bench {i}/{j}",
                    "data": json.dumps({"i": i, "j": j}),
                }
                for j in range(rows)
            ],
        )
    return len(indices)


SECTIONS = {
    "passthrough": Bench.passthrough,
    "python": Bench.python_child,
    "startup": Bench.startup,
    "query": Bench.query,
}


def show(rows: list[dict], as_json: bool, meta: dict) -> None:
    if as_json:
        print(json.dumps({**meta, "figures": rows}, indent=2))
        return
    mark = {True: "ok", False: "MISSED", None: ""}
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"logbook benchmarks ({meta['cpus']} CPUs, {meta['python']})")
        for col in ("section", "figure", "value", "aim", ""):
            t.add_column(col, justify="right" if col == "value" else "left")
        for r in rows:
            m = (
                mark[r["ok"]]
                if r["aim"] or not r["figure"].startswith("check")
                else ("ok" if r["ok"] else "FAILED")
            )
            t.add_row(r["section"], r["figure"], f"{r['value']} {r['unit']}".strip(), r["aim"], m)
        Console(width=max(110, shutil.get_terminal_size().columns)).print(t)
    except ImportError:
        for r in rows:
            print(
                f"{r['section']:<13} {r['figure']:<45} {r['value']!s:>12} {r['unit']:<5} "
                f"{r['aim']:<8} {mark[r['ok']]}"
            )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_lb = Path(sys.executable).with_name("logbook")
    ap.add_argument(
        "--logbook",
        help="the logbook command (default: next to this Python, else on PATH)",
        default=str(default_lb) if default_lb.exists() else shutil.which("logbook"),
    )
    ap.add_argument("--size-mb", type=int, default=1024, help="passthrough file size (MB)")
    ap.add_argument(
        "--py-lines", type=int, default=2_700_000, help="lines the Python child prints (~200 MB)"
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="runs of each Python-child case (median)"
    )
    ap.add_argument(
        "--startup-runs", type=int, default=10, help="runs of each start-up case (median)"
    )
    ap.add_argument("--parts", type=int, default=10_000, help="events parts in the query store")
    ap.add_argument("--rows-per-part", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10, help="runs the parts are spread over")
    ap.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}"
    )
    ap.add_argument("--tmp", help="parent of the temporary folder (default: system temp)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = ap.parse_args()
    if not a.logbook:
        ap.error("no logbook command found; pass --logbook")
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "logbook": a.logbook}
    with tempfile.TemporaryDirectory(prefix="logbook-bench-", dir=a.tmp) as tmp:
        b = Bench(a, Path(tmp))
        for name in a.only.split(","):
            try:
                SECTIONS[name.strip()](b)
            except Exception as e:  # report and go on with the other sections
                b.check(name, "ran without error", False, f"{type(e).__name__}: {e}"[:300])
            print(f"[bench] {name} done", file=sys.stderr, flush=True)
    show(b.rows, a.json, {**meta, "failures": b.failures})
    sys.stdout.flush()
    for f in b.failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if b.failures else 0


if __name__ == "__main__":
    sys.exit(main())
