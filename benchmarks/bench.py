"""Benchmarks of logbook's overhead: output passthrough, a fast-printing Python child, start-up,
and a query over many small parts before and after compaction.

    .venv/bin/python benchmarks/bench.py                  # defaults: ~3 minutes on 2 cores
    .venv/bin/python benchmarks/bench.py --size-mb 256 --parts 2000 --json
    .venv/bin/python benchmarks/bench.py --only startup,query

Every figure comes from this one invocation, so ratios compare like with like; every command's
stdout goes to a pipe that this script drains. Speed aims are printed beside the figures and never
fail the script; a failed correctness check (bytes lost, counts that differ, a command that errs)
makes it exit 1. Temporary folders are removed. See benchmarks/README.md.
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
from functools import partial
from pathlib import Path

import duckdb
import psutil

LINES = (  # mostly step lines, some tqdm-like \r lines
    "step={i} loss={x:.3f} lr=3.0e-04 grad_norm={g:.2f} tokens/s={t}\n",
    "epoch 1: {p:3d}%|{bar:<20}| {i}/100000 [01:23<04:56, {g:.2f}it/s]\r",
    "[rank0] step={i} loss={x:.4f} ppl={g:.2f} mem=38.1GiB\n",
)
PY_CHILD = """import sys
for i in range(int(sys.argv[1])):
    print(f"step={i} loss={2 + i % 997 / 1000:.3f} lr=3.0e-04 grad_norm={i % 89 / 31:.2f} "
          f"tokens/s={12000 + i % 700}")
"""


def make_log_file(path: Path, size_mb: int) -> int:
    """Write size_mb MB of training-log lines: a varied ~4 MB block, repeated."""
    lines, size, i = [], 0, 0
    while size < 4 << 20:
        kind, x, g = LINES[i % 7 % 3], 2 + i % 997 / 1000, i % 89 / 31
        lines.append(kind.format(i=i, x=x, g=g, t=12000 + i % 777, p=i % 100, bar="#" * (i % 20)))
        size, i = size + len(lines[-1]), i + 1
    block, left = "".join(lines).encode(), size_mb << 20
    with open(path, "wb") as f:
        while left > 0:
            left -= f.write(block[:left])
    return size_mb << 20


def drain(cmd: list[str], *, watch_rss: bool = False, env: dict | None = None, keep=False) -> dict:
    """Run cmd, its stdout to a pipe we read (and discard unless keep): time, bytes, peak RSS."""
    err = tempfile.TemporaryFile()
    peak, stop = [0], threading.Event()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env)

    def poll() -> None:
        try:
            proc = psutil.Process(p.pid)
            while not stop.wait(0.02):
                peak[0] = max(peak[0], proc.memory_info().rss)
        except psutil.Error:  # it ended
            pass

    watcher = threading.Thread(target=poll, daemon=True)
    if watch_rss:
        watcher.start()
    fd, n, out = p.stdout.fileno(), 0, []
    while data := os.read(fd, 1 << 20):
        n += len(data)
        out.append(data) if keep else None
    rc = p.wait()
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join() if watch_rss else None
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd[:8])} exited {rc}: {stderr.strip()[-800:]}")
    out = b"".join(out).decode(errors="replace")
    return {"wall_s": wall, "bytes": n, "rss_mb": peak[0] / 2**20, "stderr": stderr, "out": out}


NO_FINISHER = {**os.environ, "LOGBOOK_TEST_NO_FINISHER": "1"}


def loss_points(store: Path) -> int:
    """Points named loss in a store's metrics parts (0 if there are none)."""
    if not list(store.glob("metrics/**/*.parquet")):
        return 0
    [(n,)] = duckdb.execute(
        f"select count(*) from read_parquet('{store}/metrics/**/*.parquet') where name = 'loss'"
    ).fetchall()
    return int(n)


LOSSES = "select count(*) from metrics where name = 'loss'"


def logbook_count(logbook: str, store: Path, sql: str) -> int:
    """The one number a `logbook query` answers (which waits for background parses first)."""
    out = subprocess.run([logbook, "query", sql, "--store", str(store), "--format", "csv"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(out.splitlines()[1])


def end_report(store: Path) -> dict:
    """The wrapper's report of what its end left unparsed, if it left any."""
    if not list(store.glob("events/**/*.parquet")):
        return {}
    rows = duckdb.execute(
        f"select data from read_parquet('{store}/events/**/*.parquet') "
        "where kind = 'logbook_warning' and data like '%end_parse_s%'"
    ).fetchall()
    return json.loads(rows[0][0]) if rows else {}


def remove(store: Path) -> None:
    """Remove a store a background finish may still be tidying (a compaction's lock file comes
    and goes under the removal): again until it is gone."""
    for _ in range(50):
        shutil.rmtree(store, ignore_errors=True)
        if not store.exists():
            return
        time.sleep(0.2)
    shutil.rmtree(store)


def wait_parsed(store: Path, timeout: float = 1800.0) -> float:
    """Seconds until every raw log of the store is marked parsed (the background finish)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        docs = [p.read_text() for p in store.glob("logs/run=*/*/parsed.json")]
        if docs and all(json.loads(d).get("complete") for d in docs):
            break
        time.sleep(0.1)
    return round(time.perf_counter() - t0, 1)


def wait_finishers(store: Path, timeout: float = 60.0) -> None:
    """Wait until the background finishes named in the store's coverage have exited: one still
    writes (the attempt's widened steps) after the logs are marked parsed, and a store removed
    under it fails the removal ("Directory not empty")."""
    pids = set()
    for p in store.glob("logs/run=*/*/parsed.json"):
        pid = (json.loads(p.read_text()).get("finisher") or {}).get("pid")
        if pid:
            pids.add(int(pid))
    end = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < end:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.05)


def count_in(path: Path, token: bytes) -> int:
    """How often `token` occurs in the file, read in 16 MiB chunks (one split across two is
    counted too: the last bytes of a chunk, too few to hold it, start the next)."""
    n, tail = 0, b""
    with path.open("rb") as f:
        for chunk in iter(partial(f.read, 1 << 24), b""):
            data = tail + chunk
            n += data.count(token)
            tail = data[-(len(token) - 1) :]
    return n


def raw_logs(store: Path) -> list[int]:
    return [p.stat().st_size for p in sorted(store.glob("logs/run=*/*/stdout.log"))]


def med(results: list[dict]) -> float:
    return statistics.median(r["wall_s"] for r in results)


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.a, self.tmp, self.rows, self.failures = args, tmp, [], []

    def wrap(self, store: Path, *cmd: str, capture: bool = False, opts: tuple = ()) -> list[str]:
        """`logbook run` of cmd into store."""
        opts = (*opts, *([] if capture else ["--no-capture"]))
        return [self.a.logbook, "run", "--run", "bench", *opts, "--store", str(store), "--", *cmd]

    def add(self, sec: str, name: str, value, unit: str = "", aim: str = "", ok=None) -> None:
        self.rows.append(dict(section=sec, figure=name, value=value, unit=unit, aim=aim, ok=ok))

    def check(self, sec: str, what: str, good: bool, detail: str) -> None:
        self.rows.append(dict(section=sec, figure=f"check: {what}", value=detail, unit="",
                              aim="", ok=good, check=True))  # fmt: skip
        if not good:
            self.failures.append(f"{sec}: {what}: {detail}")

    def passthrough(self) -> None:
        s, f, n = "passthrough", self.tmp / "train.log", self.a.repeats
        t0 = time.perf_counter()
        size = make_log_file(f, self.a.size_mb)
        self.add(s, "generate the file (once)", round(time.perf_counter() - t0, 2), "s")
        drain(["cat", str(f)])  # warm the page cache
        base, wrapped, unparsed, tee = [], [], [], []
        for k in range(n):  # alternate the cases; each run's log is checked, then removed
            base.append(drain(["cat", str(f)]))
            store = self.tmp / f"pt-store-{k}"
            # --catch-up 0 and no background finish: the output's throughput, not the parsing
            # after the end (timed below); --metrics none: the same without the parser, whose
            # cost it separates.
            for opts, into in ((("--catch-up", "0"), wrapped),
                               (("--catch-up", "0", "--metrics", "none"), unparsed)):  # fmt: skip
                cmd = self.wrap(store, "cat", str(f), opts=opts)
                into.append(drain(cmd, watch_rss=True, env=NO_FINISHER))
                logs = raw_logs(store)
                self.check(s, f"raw log size, run {len(into)}{'' if into is wrapped else ' (--metrics none)'}",
                           logs == [size], f"{logs} vs {size}")  # fmt: skip
                remove(store)
            tee.append(drain(["sh", "-c", 'cat "$1" | tee "$2"', "-", str(f), str(store)]))
            os.unlink(store)
        mb = size / 2**20
        b, w, u, t = (mb / med(r) for r in (base, wrapped, unparsed, tee))
        self.add(s, "file size", round(mb, 1), "MB")
        self.add(s, f"cat FILE | reader (median of {n})", round(b, 1), "MB/s")
        self.add(s, f"logbook run -- cat FILE | reader (median of {n})", round(w, 1), "MB/s")
        self.add(s, "ratio wrapped/plain", round(w / b, 3), "", ">= 0.5", w / b >= 0.5)
        self.add(s, "the same with --metrics none", round(u, 1), "MB/s")
        self.add(s, "ratio wrapped (--metrics none)/plain", round(u / b, 3))
        self.add(s, "(reference) cat FILE | tee LOG | reader", round(t, 1), "MB/s")
        self.add(s, "(reference) ratio wrapped/tee", round(w / t, 3))
        rss = max(r["rss_mb"] for r in wrapped + unparsed)
        self.add(s, "wrapper peak RSS", round(rss, 1), "MB", "< 100", rss < 100)
        got = {r["bytes"] for r in base + wrapped + unparsed + tee}
        self.check(s, "bytes passed through", got == {size}, f"{sorted(got)} of {size}")
        self.catch_up(f)

    def catch_up(self, f: Path) -> None:
        """The same file with the defaults: how many of its metric lines are on record when
        `logbook run` returns, and when the background finish has them all (#15)."""
        s, store = "passthrough", self.tmp / "pt-catch-up"
        lines = count_in(f, b"loss=")
        r = drain(self.wrap(store, "cat", str(f)))
        at_return = loss_points(store)
        t0 = time.perf_counter()
        read = logbook_count(
            self.a.logbook, store, "select count(*) from metrics where name = 'loss'"
        )
        read_s = time.perf_counter() - t0
        report = end_report(store)
        self.add(s, "metric lines in the file (loss=)", lines)
        self.add(s, "of them in the Parquet files when logbook run returns", at_return)
        self.add(s, "of them in `logbook query` run at once after logbook run returns", read, "",
                 "all", read == lines)  # fmt: skip
        self.add(s, "that query's wall time (it waits for the background parse)",
                 round(read_s, 1), "s")  # fmt: skip
        self.add(s, "wall time of logbook run (defaults)", round(r["wall_s"], 1), "s")
        self.add(s, "parsing after the command ended (the wrapper's report)",
                 report.get("end_parse_s", "none needed"), "s" if report else "", "<= 1",
                 report.get("end_parse_s", 0) <= 1.0)  # fmt: skip
        waited = wait_parsed(store)
        final = loss_points(store)
        self.add(s, "background finish done after logbook run returned", waited, "s")
        self.check(s, "every loss= line on record after the finish", final == lines,
                   f"{final} of {lines}")  # fmt: skip
        wait_finishers(store)
        remove(store)

    def python_child(self) -> None:
        """The child alone and wrapped, with the same buffering each time (logbook run sets
        PYTHONUNBUFFERED=1 for its child unless it is set, even to '')."""
        s, script = "python child", self.tmp / "child.py"
        script.write_text(PY_CHILD)
        child = [sys.executable, str(script), str(self.a.py_lines)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # block-buffered
        unbuffered = {**env, "PYTHONUNBUFFERED": "1"}
        buffered = {**env, "PYTHONUNBUFFERED": ""}  # empty: Python buffers, and logbook keeps it
        cases = {
            "plain, buffered": (child, buffered, None),
            "wrapped, buffered": (child, buffered, "py-buf"),
            "plain, PYTHONUNBUFFERED=1": (child, unbuffered, None),
            "wrapped, unbuffered (logbook's default)": (child, env, "py-unbuf"),
        }
        res: dict[str, list[dict]] = {k: [] for k in cases}
        on_record: dict[str, list[tuple[int, float]]] = {k: [] for k in cases if cases[k][2]}
        for k_run in range(self.a.repeats):
            for k, (cmd, e, store_name) in cases.items():
                store = self.tmp / f"{store_name}-{k_run}" if store_name else None
                res[k].append(drain(self.wrap(store, *cmd) if store else cmd, env=e))
                if store is not None:  # untimed: the background finish must not slow the next
                    at_return = loss_points(store)  # in the Parquet files
                    t0 = time.perf_counter()
                    read = logbook_count(self.a.logbook, store, LOSSES)  # waits for the finish
                    on_record[k].append((at_return, time.perf_counter() - t0))
                    res[k][-1]["read"] = read
                    res[k][-1]["final"] = loss_points(store)
                    wait_finishers(store)
                    remove(store)
        t = {k: med(r) for k, r in res.items()}
        self.add(s, "output per run", round(res["plain, buffered"][0]["bytes"] / 2**20, 1), "MB")
        for k in cases:
            self.add(s, f"{k} (median of {self.a.repeats})", round(t[k], 3), "s")
        for plain, wrapped in (("plain, buffered", "wrapped, buffered"),
                               ("plain, PYTHONUNBUFFERED=1", "wrapped, unbuffered (logbook's default)")):  # fmt: skip
            r = t[wrapped] / t[plain]
            self.add(s, f"ratio {wrapped} / {plain}", round(r, 3), "", "<= 1.1", r <= 1.1)
        n = self.a.py_lines
        for k, runs in on_record.items():
            read = min(x["read"] for x in res[k])
            self.add(s, f"{k}: metric lines in the Parquet files at return (of {n})",
                     min(a for a, _ in runs))  # fmt: skip
            self.add(s, f"{k}: in `logbook query` run at once after the return (of {n})",
                     read, "", "all", read == n)  # fmt: skip
            self.add(s, f"{k}: that query's wall time (it waits for the background finish)",
                     round(max(w for _, w in runs), 1), "s")  # fmt: skip
            finals = sorted({x["final"] for x in res[k]})
            self.check(s, f"{k}: every metric line on record after the finish", finals == [n],
                       f"{finals} of {n}")  # fmt: skip
        got, size = (
            {x["bytes"] for v in res.values() for x in v},
            res["plain, buffered"][0]["bytes"],
        )
        self.check(s, "bytes passed through", got == {size}, str(sorted(got)))

    def startup(self) -> None:
        s, store = "start-up", self.tmp / "su-store"
        cases = {
            "true": ["true"],
            "logbook run -- true": self.wrap(store, "true", capture=True),
            "logbook run --no-capture -- true": self.wrap(store, "true"),
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        for k, cmd in cases.items():  # warm-up: creates the store, fills the caches
            if err := drain(cmd)["stderr"].strip():
                self.add(s, f"stderr of {k}", err[:150])
        for _ in range(self.a.startup_runs):
            for k, cmd in cases.items():
                times[k].append(drain(cmd)["wall_s"])
        for k, ts in times.items():
            m, aim = statistics.median(ts), "" if k == "true" else "< 0.5"
            self.add(
                s, f"{k} (median of {len(ts)})", round(m, 3), "s", aim, m < 0.5 if aim else None
            )

    def query(self) -> None:
        from logbook.store import Store

        s, store, lb = "query", self.tmp / "q-store", self.a.logbook
        Store.open(store, create=True)
        parts, rows, runs = self.a.parts, self.a.rows_per_part, self.a.runs
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            jobs = [pool.submit(write_parts, store, f"r{k}", range(k, parts, runs), rows)
                    for k in range(runs)]  # fmt: skip
            written = sum(j.result() for j in jobs)
        took = round(time.perf_counter() - t0, 2)
        self.add(s, f"build {parts} parts x {rows} rows in {runs} runs (Store.write)", took, "s")
        self.check(s, "parts written", written == parts, f"{written} of {parts}")
        cmd = [lb, "query", "select count(*) as n from events", "--store", str(store), "--format"]
        before = drain([*cmd, "json"], keep=True)
        self.add(
            s, f"query count(*) before compact ({parts} parts)", round(before["wall_s"], 3), "s"
        )
        took = drain([lb, "compact", "--store", str(store)])["wall_s"]
        self.add(s, "logbook compact", round(took, 2), "s")
        after = drain([*cmd, "json"], keep=True)
        files = len(list(store.glob("events/run=*/*.parquet")))
        t = after["wall_s"]
        self.add(s, f"query count(*) after compact ({files} parts)", round(t, 3), "s", "< 1", t < 1)
        counts = [json.loads(r["out"])[0]["n"] for r in (before, after)]
        want = parts * rows
        ok = counts == [want, want]
        self.check(s, "count before = after = written", ok, f"{counts[0]} / {counts[1]} / {want}")


def quiet(self: Bench) -> None:
    """The wrapper idle (#3, #15): `sleep` under `logbook run` with the hang watch, the checkpoint
    scan and the sampler at 10 s on. The steady state (after start-up) of the recorder and the pump
    together, in CPU-s per minute, from /proc's per-thread run time (ns; psutil's 10 ms ticks where
    there is none), and their wake-ups per minute; then the whole run's CPU, start-up included."""
    s, secs = "quiet child", self.a.quiet_s
    cmd = self.wrap(self.tmp / "quiet-store", "sleep", f"{secs:g}")
    if self.a.quiet_steps:  # steps first, then silence: the hang watch's learned budget (#19)
        s = f"quiet child after {self.a.quiet_steps} steps"
        n, script = self.a.quiet_steps, "import sys, time\nfor i in range(1, {n} + 1):\n" \
            "    print(f'step={{i}}', flush=True); time.sleep(0.02)\ntime.sleep({secs})\n"  # fmt: skip
        cmd = self.wrap(
            self.tmp / "quiet-store",
            sys.executable,
            "-c",
            script.format(n=n, secs=max(0.0, secs - 0.02 * n)),
        )
    cmd[cmd.index("--") : cmd.index("--")] = ["--hang-timeout", "1h", "--checkpoint-dir",
                                              str(self.tmp), "--sample-every", "10s"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settle = min(QUIET_SETTLE_S, secs / 4)
    time.sleep(settle)
    pids = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children()
                        if "logbook.pump" in " ".join(c.cmdline()))]  # fmt: skip
    t0, a = time.monotonic(), [_idle_cpu(p) for p in pids]
    time.sleep(max(0.0, secs - settle - 1.0))
    t1, b = time.monotonic(), [_idle_cpu(p) for p in pids]
    _, status, usage = os.wait4(proc.pid, 0)  # its children too: the pump and `sleep`, reaped
    per_min = [(y[0] - x[0]) / (t1 - t0) * 60 for x, y in zip(a, b, strict=True)]
    wakes = [(y[1] - x[1]) / (t1 - t0) * 60 for x, y in zip(a, b, strict=True)]
    total = sum(per_min)
    name = "recorder + pump" if len(pids) == 2 else "recorder (no pump found)"
    self.add(s, f"{name}, steady, sampler at 10 s", round(total, 4), "CPU-s/min", "<= 0.05",
             total <= 0.05)  # fmt: skip
    for who, cpu, w in zip(("recorder", "pump"), per_min, wakes, strict=False):
        self.add(s, f"  {who}", round(cpu, 4), f"CPU-s/min, {w:.0f} wake-ups/min")
    share = 100 * (usage.ru_utime + usage.ru_stime) / secs
    self.add(s, f"whole run over a {secs:g} s quiet child, start-up included", round(share, 2),
             "% of a core", "< 1", share < 1)  # fmt: skip
    self.check(s, "exit status", os.waitstatus_to_exitcode(status) == 0, str(status))


QUIET_SETTLE_S = 6.0  # start-up (imports, journal, first reading) is over by then


def _idle_cpu(pid: int) -> tuple[float, int]:
    """(CPU seconds, voluntary context switches: wake-ups) of a process, summed over its threads."""
    tasks = Path(f"/proc/{pid}/task")
    if not (tasks / str(pid) / "schedstat").exists():  # not Linux: psutil's ticks, no wake-ups
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system, 0
    cpu, wakes = 0.0, 0
    for t in tasks.iterdir():
        try:
            cpu += int((t / "schedstat").read_text().split()[0]) / 1e9
            wakes += int((t / "status").read_text().split("voluntary_ctxt_switches:")[1].split()[0])
        except (OSError, IndexError, ValueError):  # a thread that just ended
            continue
    return cpu, wakes


def write_parts(store: Path, run: str, indices: range, rows: int) -> int:
    from logbook.store import Store

    st, now = Store.open(store), datetime.now(timezone.utc)
    for i in indices:
        data = [
            dict(attempt_id=f"a{i}", event_id=f"e{i}-{j}", time=now, step=i * 10 + j, kind="note",
                 severity="info", source="api", message=f"bench {i}/{j}", data=f'{{"j": {j}}}')
            for j in range(rows)
        ]  # fmt: skip
        st.write("events", run, data)
    return len(indices)


SECTIONS = {"passthrough": Bench.passthrough, "python": Bench.python_child,
            "startup": Bench.startup, "query": Bench.query, "quiet": quiet}  # fmt: skip


def show(rows: list[dict], meta: dict) -> None:
    def mark(r: dict) -> str:
        if r.get("check"):
            return "ok" if r["ok"] else "FAILED"
        return {True: "ok", False: "missed", None: ""}[r["ok"]]

    from rich.console import Console  # rich is a dependency of logbook
    from rich.table import Table

    t = Table(title=f"logbook benchmarks ({meta['cpus']} CPUs, Python {meta['python']})")
    for col in ("section", "figure", "value", "aim", ""):
        t.add_column(col, justify="right" if col == "value" else "left")
    for r in rows:
        t.add_row(r["section"], r["figure"], f"{r['value']} {r['unit']}".strip(), r["aim"], mark(r))
    Console(width=max(120, shutil.get_terminal_size().columns)).print(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    here = Path(sys.executable).with_name("logbook")
    default = str(here) if here.exists() else shutil.which("logbook")
    ap.add_argument("--logbook", default=default, help="the command (default: beside this Python)")
    ap.add_argument("--size-mb", type=int, default=1024, help="passthrough file size (MB)")
    ap.add_argument("--py-lines", type=int, default=2_700_000, help="lines the Python child prints")
    ap.add_argument("--repeats", type=int, default=3, help="runs per case in sections 1-2 (median)")
    ap.add_argument("--startup-runs", type=int, default=10, help="runs per start-up case (median)")
    ap.add_argument("--parts", type=int, default=10_000, help="events parts in the query store")
    ap.add_argument("--rows-per-part", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10, help="runs the parts are spread over")
    ap.add_argument("--quiet-s", type=float, default=60.0, help="how long the quiet child sleeps")
    ap.add_argument("--quiet-steps", type=int, default=0,
                    help="the quiet child prints this many steps (0.02 s apart) first (#19)")  # fmt: skip
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"some of {','.join(SECTIONS)}")
    ap.add_argument("--tmp", help="parent of the temporary folder (default: the system's)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = ap.parse_args()
    if not a.logbook:
        ap.error("no logbook command found; pass --logbook")
    if bad := set(a.only.split(",")) - set(SECTIONS):
        ap.error(f"unknown sections {sorted(bad)}; choose from {list(SECTIONS)}")
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "logbook": a.logbook}
    with tempfile.TemporaryDirectory(prefix="logbook-bench-", dir=a.tmp) as tmp:
        b = Bench(a, Path(tmp))
        for name in a.only.split(","):
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            try:
                SECTIONS[name](b)
            except Exception as e:  # report it and go on with the other sections
                b.check(name, "ran without error", False, f"{type(e).__name__}: {e}"[:400])
    if a.json:
        print(json.dumps({**meta, "failures": b.failures, "figures": b.rows}, indent=2))
    else:
        show(b.rows, meta)
    sys.stdout.flush()
    for f in b.failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if b.failures else 0


if __name__ == "__main__":
    sys.exit(main())
