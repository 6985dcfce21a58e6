"""Chaos suite: real `python -m logbook` processes through hostile trials.

Each trial is one function that runs in its own temporary folder, is bounded in time, catches its
own exceptions and returns one row: trial | runs | expected | found | ok. The table is a
measurement, not a test: a row that is not ok says what was found.

    python benchmarks/chaos.py                  # full run (the 10M-line part takes a few minutes)
    python benchmarks/chaos.py --quick          # small counts, < 2 minutes on 2 cores
    python benchmarks/chaos.py --only wrapper-kill --only secrets --json

Every logbook call is `sys.executable -m logbook`, so PYTHONPATH picks the code under test.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import psutil

Row = dict[str, Any]
RNG = random.Random(int(os.environ.get("CHAOS_SEED", "14")))


# helpers ------------------------------------------------------------------------------------------


def lb(*args: str) -> list[str]:
    return [sys.executable, "-m", "logbook", *args]


def query(
    store: Path, sql: str, env: dict[str, str] | None = None
) -> tuple[int, list[list[str]], str]:
    """`logbook query --format csv`: exit code, rows without the header, stderr."""
    p = subprocess.run(
        lb("query", "--store", str(store), "--format", "csv", sql),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    rows = list(csv.reader(io.StringIO(p.stdout)))[1:] if p.returncode == 0 else []
    return p.returncode, rows, p.stderr


def scalar(store: Path, sql: str) -> int | None:
    rc, rows, _ = query(store, sql)
    if rc != 0 or not rows or not rows[0] or rows[0][0] == "":
        return None
    return int(float(rows[0][0]))


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # zombies of our own children count as gone
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def training_started(pid: int) -> bool:
    """Whether a descendant of `pid` runs the training (`python -c ...`)."""
    try:
        return any("-c" in c.cmdline() for c in psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return False


def ended(marker: Path | None, pgid: int) -> bool:
    """Whether the marker exists or the process group is gone."""
    return (marker is not None and marker.exists()) or not group_alive(pgid)


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def event_row(i: int, run: str = "r") -> dict[str, Any]:
    """An events row with step i (as tests/helpers.py `event`)."""
    return {
        "run": run,
        "attempt_id": "a",
        "event_id": uuid.uuid4().hex,
        "time": datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=i),
        "step": i,
        "kind": "note",
        "severity": "info",
        "source": "cli",
        "message": f"note {i}",
        "data": None,
    }


def small_parts(store: Path, n: int, start: int = 0) -> None:
    from logbook.store import Store

    s = Store(store)
    for i in range(start, start + n):
        s.write("events", "r", [event_row(i)])


def row(trial: str, runs: int, expected: str, found: str, ok: bool | None) -> Row:
    return {"trial": trial, "runs": runs, "expected": expected, "found": found, "ok": ok}


# trials -------------------------------------------------------------------------------------------

TRAIN = """
import time
for i in range({n}):
    print(f'step={{i}} loss={{1.0 / (i + 1):.6f}}', flush=True)
    time.sleep(0.01)
open({marker!r}, 'w').write('done')
"""


def wrapper_kill(tmp: Path, quick: bool) -> Row:
    n_kills, n_lines = (3 if quick else 20), 300
    alive = lost = missing = no_steps = unlaunched = 0
    notes: list[str] = []
    for k in range(n_kills):
        d = tmp / f"k{k}"
        d.mkdir()
        store, marker = d / "S", d / "done"
        with open(d / "out.log", "wb") as out, open(d / "err.log", "wb") as err:
            p = subprocess.Popen(
                lb("run", "--store", str(store), "--run", "r", "--", sys.executable, "-c",
                   TRAIN.format(n=n_lines, marker=str(marker))),
                stdout=out, stderr=err, start_new_session=True,
            )  # fmt: skip
        t0 = time.monotonic()
        if k % 4 == 1:  # right after the training's launch
            wait_for(partial(training_started, p.pid), 20, 0.005)
            time.sleep(RNG.uniform(0, 0.05))
        else:  # anywhere from start-up to the end
            time.sleep(RNG.uniform(0, 0.3) if k % 4 == 0 else RNG.uniform(0, 3.0))
        moment = time.monotonic() - t0
        p.send_signal(signal.SIGKILL)
        p.wait()
        # the training ends with the marker; the group ends with the pump's last copy
        wait_for(partial(ended, marker, p.pid), 30)
        done = marker.exists()
        wait_for(partial(ended, None, p.pid), 15)
        kill_group(p.pid)
        printed = sum(
            1 for ln in (d / "out.log").read_bytes().splitlines() if ln.startswith(b"step=")
        )
        # the raw log as the killed recorder left it (doctor may move it once parsed)
        raw = sum(
            sum(1 for ln in f.read_bytes().splitlines() if ln.startswith(b"step="))
            for f in store.glob("logs/run=r/*/stdout.log")
        )
        subprocess.run(lb("doctor", "--store", str(store)), capture_output=True, timeout=120)
        metrics = scalar(store, "select count(*) from metrics where name = 'loss'") or 0
        attempts = scalar(store, "select count(*) from attempts") or 0
        if not done and printed == 0 and raw == 0 and attempts == 0:
            unlaunched += 1  # killed during start-up, before the training existed
            continue
        if done and printed == n_lines:
            alive += 1
        else:
            notes.append(f"k{k}@{moment:.2f}s: marker={done} lines={printed}")
        lost += max(0, raw - metrics)
        missing += max(0, 1 - attempts)
        if raw and attempts:
            steps = scalar(
                store, "select count(*) from attempts where first_step is null or last_step is null"
            )
            no_steps += steps or 0
        if raw != metrics or attempts != 1:
            notes.append(f"k{k}@{moment:.2f}s: raw={raw} metrics={metrics} attempts={attempts}")
    launched = n_kills - unlaunched
    ok = alive == launched and lost == 0 and missing == 0 and no_steps == 0
    found = (
        f"alive+complete {alive}/{launched} (+{unlaunched} killed before launch), "
        f"metric lines lost {lost}, attempts missing {missing}, "
        f"without first/last step {no_steps}"
    )
    if notes:
        found += " [" + "; ".join(notes[:4]) + "]"
    return row(
        "wrapper-kill", n_kills, "every launched training alive, lost 0, missing 0", found, ok
    )


def concurrent_labels(tmp: Path, quick: bool) -> Row:
    store, n = tmp / "S", 10
    procs = [
        subprocess.Popen(
            lb(
                "run",
                "--store",
                str(store),
                "--run",
                "same",
                "--",
                sys.executable,
                "-c",
                "import time; time.sleep(1)",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(n)
    ]
    codes = [p.wait(timeout=120) for p in procs]
    rc, rows, err = query(store, "select label from attempts order by label")
    labels = [r[0] for r in rows]
    distinct = len(set(labels))
    found = f"{distinct} distinct of {len(labels)} labels, exits {sorted(set(codes))}"
    if distinct != n:
        found += f" {labels}"
    return row("concurrent-labels", n, f"{n} distinct labels", found, distinct == n and rc == 0)


def compact_kill(tmp: Path, quick: bool) -> Row:
    n_kills, n_parts = (2 if quick else 6), 200
    bad: list[str] = []
    for k in range(n_kills):
        store = tmp / f"S{k}"
        small_parts(store, n_parts)
        delay = RNG.uniform(0, 0.3)
        p = subprocess.Popen(
            lb("compact", "--store", str(store)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        first = scalar(store, "select count(*) from events")
        again = subprocess.run(
            lb("compact", "--store", str(store)), capture_output=True, timeout=120
        )
        second = scalar(store, "select count(*) from events")
        if first != n_parts or second != n_parts or again.returncode != 0:
            bad.append(
                f"@{delay * 1000:.0f}ms: after kill {first}, compact exit {again.returncode}, "
                f"after compact {second}"
            )
    found = f"{n_kills - len(bad)}/{n_kills} exact" + (" [" + "; ".join(bad) + "]" if bad else "")
    return row("compact-kill", n_kills, f"{n_parts} rows after each kill and after compact",
               found, not bad)  # fmt: skip


def listing(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (
                st.st_size if name in filenames else -1,
                st.st_mtime_ns,
            )
    return out


def query_writes(tmp: Path, quick: bool) -> Row:
    store, home = tmp / "S", tmp / "home"
    home.mkdir()
    subprocess.run(
        lb("run", "--store", str(store), "--run", "r", "--", sys.executable, "-c",
           "print('step=1 loss=1.0')"),
        capture_output=True, timeout=120,
    )  # fmt: skip
    env = {**os.environ, "HOME": str(home)}  # INSTALL would write under ~/.duckdb
    statements = [
        f"COPY (select 1) TO '{store}/x.parquet'",
        f"ATTACH '{store}/x.db'",
        f"EXPORT DATABASE '{store}/exp'",
        "INSTALL httpfs",
    ]
    wrote, wrong_exit = [], []
    for sql in statements:
        before, home_before = listing(store), listing(home)
        rc, _, _ = query(store, sql, env=env)
        if listing(store) != before or listing(home) != home_before:
            wrote.append(sql.split()[0])
        if rc != 1:
            wrong_exit.append(f"{sql.split()[0]} exit {rc}")
    found = f"writes {len(wrote)} {wrote}; exits not 1: {wrong_exit or 'none'}"
    return row("query-writes", len(statements), "exit 1, no file created or changed", found,
               not wrote and not wrong_exit)  # fmt: skip


def queries_during_compaction(tmp: Path, quick: bool) -> Row:
    store, n_queries = tmp / "S", (10 if quick else 30)
    batch = 50 if quick else 100
    small_parts(store, batch * 2)
    stop = threading.Event()
    compactions = [0]

    def churn() -> None:
        start = batch * 2
        while not stop.is_set():
            subprocess.run(lb("compact", "--store", str(store)), capture_output=True, timeout=120)
            compactions[0] += 1
            small_parts(store, batch, start)
            start += batch

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    failures: list[str] = []
    for _ in range(n_queries):
        rc, _, err = query(store, "select count(*) from events")
        if rc != 0:
            lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
            first = next((ln for ln in lines if "rror" in ln), lines[0] if lines else "")
            failures.append(f"exit {rc}: {first[:100]}")
    stop.set()
    t.join(timeout=120)
    found = f"{len(failures)} failed during {compactions[0]} compactions"
    if failures:
        found += " [" + "; ".join(sorted(set(failures))[:3]) + "]"
    return row("queries-during-compaction", n_queries, "0 failed", found, not failures)


def full_disk(tmp: Path, quick: bool) -> Row:
    expected = "wrapper exit 4; then attempts says crashed / 4"
    if not shutil.which("unshare"):
        return row("full-disk", 0, expected, "skipped: unshare is not installed", None)
    mnt = tmp / "mnt"
    mnt.mkdir()
    ns = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
    probe = subprocess.run([*ns, f"mount -t tmpfs tmpfs {mnt}"], capture_output=True)
    if probe.returncode != 0:
        why = probe.stderr.decode(errors="replace").strip()
        return row("full-disk", 0, expected, f"skipped: cannot mount a tmpfs here: {why}", None)
    script = tmp / "chatty.py"
    script.write_text(
        "import sys\nfor i in range(20000): print(f'step={i} loss=1.0 ' + 'x' * 80)\nsys.exit(4)\n"
    )
    store = mnt / "S"
    run = " ".join(
        lb("run", "--store", str(store), "--run", "full", "--", sys.executable, str(script))
    )
    q = " ".join(lb("query", "--store", str(store), "--format", "csv",
                    "\"select concat_ws(' ', status, exit_code) as s from attempts\""))  # fmt: skip
    inner = f"{run} > /dev/null 2>&1; echo exit=$?; rm -rf {store}/logs; {q}"
    p = subprocess.run(
        [*ns, f"mount -t tmpfs -o size=256k tmpfs {mnt} && {inner}"],
        capture_output=True,
        timeout=300,
    )
    out = [ln for ln in p.stdout.decode().splitlines() if ln != "s"]
    ok = out[:2] == ["exit=4", "crashed 4"]
    return row("full-disk", 1, expected, " / ".join(out) or p.stderr.decode()[-200:], ok)


GHP = "ghp_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c"  # 36 after the prefix
HF = "hf_" + "Zy9xWv8uTs7rQp6oNm5lKj4iHg3fEd2cBa"  # 34 after the prefix
PASSWORD = "password=hunter2secret"
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"
SECRETS = {"ghp": GHP, "hf": HF, "password": PASSWORD, "slack": SLACK}


def _strings_of(path: Path) -> str:
    """Every string a file holds: a Parquet file's values, else its bytes."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return json.dumps(pq.read_table(path).to_pylist(), default=str)
        except Exception:
            pass
    return path.read_bytes().decode("latin-1")


def _search(
    store: Path, site: Path, secrets: dict[str, str]
) -> tuple[list[str], dict[str, list[Path]]]:
    """Which secrets are in the store's Parquet strings, its journals, the chronicle's files."""
    places = {
        "tables": sorted(store.rglob("*.parquet")),
        "journals": sorted(p for p in (store / "_journal").rglob("*") if p.is_file()),
        "chronicle": sorted(p for p in site.rglob("*") if p.is_file()),
    }
    hits: list[str] = []
    for place, files in places.items():
        for f in files:
            text = _strings_of(f)
            where = f.relative_to(store).parts[0] if place == "tables" else place
            hits += [f"{name} in {where}" for name, s in secrets.items() if s in text]
    return sorted(set(hits)), places


def secrets(tmp: Path, quick: bool) -> Row:
    store, site = tmp / "S", tmp / "site"
    config = tmp / "config.json"
    config.write_text(
        json.dumps({"lr": 0.1, "token": GHP, "hub": HF, "db": PASSWORD, "hook": SLACK})
    )
    train = tmp / "train.py"
    train.write_text(
        "import os, sys\n"
        "for i in range(5):\n"
        f"    print(f'step={{i}} loss=1.0 using {GHP} {HF} {PASSWORD} {SLACK}', flush=True)\n"
        f"raise RuntimeError('upload failed: {GHP} {HF} {PASSWORD} {SLACK}')\n"
    )
    env = {**os.environ, "HF_TOKEN": HF, "NOTIFY_URL": SLACK}
    subprocess.run(
        lb("run", "--store", str(store), "--run", "r", "--config", str(config), "--",
           sys.executable, str(train), "--token", GHP, "--hook", SLACK, PASSWORD),
        capture_output=True, env=env, timeout=180,
    )  # fmt: skip
    subprocess.run(
        lb("chronicle", "r", "--out", str(site), "--store", str(store)),
        capture_output=True, timeout=180,
    )  # fmt: skip
    hits, places = _search(store, site, SECRETS)
    n_files = sum(len(f) for f in places.values())
    found = f"{len(hits)} found in {n_files} files" + (f" [{', '.join(hits)}]" if hits else "")
    if not places["chronicle"]:
        found += " (no chronicle was built)"
    return row("secrets", len(SECRETS), "0 of 4 secrets in tables, journals, chronicle", found,
               not hits and bool(places["chronicle"]))  # fmt: skip


HOSTILE = """
import sys
out = sys.stdout.buffer
out.write(b'bad utf8: \\xff\\xfe\\xc3( \\xed\\xa0\\x80 end\\n')
out.write(b'nul: a\\x00b\\x00\\x00c\\n')
out.write(b'\\x1b[31mred\\x1b[0m \\x1b[1;32mbold green\\x1b[0m step=1 loss=2.5\\n')
for i in range(0, 101, 5):
    out.write(b'\\r%3d%%|' % i + b'#' * (i // 5) + b' step=%d loss=1.0' % i)
out.write(b'\\n')
out.flush()
chunk = b'y' * (1 << 20)
for _ in range({big_mb}):
    out.write(chunk)
out.write(b'\\n')
n, i = {lines}, 0
while i < n:
    j = min(n, i + 100000)
    out.write(b''.join(b'step=%d loss=0.5\\n' % k for k in range(i, j)))
    i = j
out.flush()
sys.exit(3)
"""


def hostile_output(tmp: Path, quick: bool) -> Row:
    big_mb, lines = (5, 100_000) if quick else (50, 10_000_000)
    child = tmp / "hostile.py"
    child.write_text(HOSTILE.format(big_mb=big_mb, lines=lines))
    ref = tmp / "ref.out"
    with open(ref, "wb") as f:
        plain = subprocess.run([sys.executable, str(child)], stdout=f, timeout=600)
    out = tmp / "wrapped.out"
    with open(out, "wb") as f:
        p = subprocess.Popen(
            lb("run", "--store", str(tmp / "S"), "--run", "h", "--", sys.executable, str(child)),
            stdout=f, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        peak_wrapper = peak_pump = 0
        wrapper = psutil.Process(p.pid)
        deadline = time.monotonic() + 900
        while p.poll() is None and time.monotonic() < deadline:
            try:
                peak_wrapper = max(peak_wrapper, wrapper.memory_info().rss)
                for c in wrapper.children():
                    if "pump" in " ".join(c.cmdline()):
                        peak_pump = max(peak_pump, c.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
        if p.poll() is None:
            p.kill()
        code = p.wait()

    def digest(path: Path) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while b := f.read(1 << 20):
                h.update(b)
        return h.hexdigest()

    same = digest(ref) == digest(out)
    mb = peak_wrapper / 2**20
    ok = code == plain.returncode and same and mb < 150
    found = (
        f"exit {code} (child {plain.returncode}), output {'identical' if same else 'DIFFERENT'} "
        f"({out.stat().st_size} vs {ref.stat().st_size} bytes), wrapper peak RSS {mb:.0f} MB "
        f"(pump {peak_pump / 2**20:.0f} MB)"
    )
    return row("hostile-output", 1,
               f"child's exit, identical bytes, wrapper RSS < 150 MB at {lines:,} lines",
               found, ok)  # fmt: skip


GIT_TOKEN = "ghp_" + "Qw3eRt6yUi9oPa2sDf5gHj8kLz1xCv4bNm7W"  # 36 after the prefix
GIT_REMOTE = f"https://user:{GIT_TOKEN}@github.com/org/repo.git"


def secrets_git(tmp: Path, quick: bool) -> Row:
    """A token in the git remote's URL, captured from inside a real repository."""
    store, site, repo = tmp / "S", tmp / "site", tmp / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(
        "for i in range(5):\n    print(f'step={i} loss=1.0', flush=True)\n"
    )
    git = ["git", "-C", str(repo), "-c", "user.name=chaos", "-c", "user.email=chaos@invalid"]
    for args in (["init", "-q"], ["add", "train.py"], ["commit", "-qm", "init"],
                 ["remote", "add", "origin", GIT_REMOTE]):  # fmt: skip
        subprocess.run([*git, *args], check=True, capture_output=True, timeout=60)
    p = subprocess.run(
        lb("run", "--store", str(store), "--run", "r", "--", sys.executable, "train.py"),
        capture_output=True, cwd=repo, timeout=180,
    )  # fmt: skip
    subprocess.run(
        lb("chronicle", "r", "--out", str(site), "--store", str(store)),
        capture_output=True, timeout=180,
    )  # fmt: skip
    hits, places = _search(store, site, {"ghp": GIT_TOKEN})
    # the remote must have been captured at all, or 0 found would prove nothing
    remote = any("github.com/org/repo" in _strings_of(f) for f in places["tables"])
    n_files = sum(len(f) for f in places.values())
    found = (
        f"{len(hits)} found in {n_files} files, run exit {p.returncode}, "
        f"remote recorded {'yes' if remote else 'NO'}"
    ) + (f" [{', '.join(hits)}]" if hits else "")
    if not places["chronicle"]:
        found += " (no chronicle was built)"
    ok = not hits and remote and bool(places["chronicle"]) and p.returncode == 0
    return row("secrets-git", 1, "0 in tables, journals, chronicle; the remote recorded",
               found, ok)  # fmt: skip


STEP_EXIT_3 = "print('step=1 loss=2'); import sys; sys.exit(3)"


def _first_logbook_line(err: str) -> str:
    return next((ln.strip()[:110] for ln in err.splitlines() if ln.startswith("logbook:")), "")


def _ro_store(tmp: Path) -> tuple[list[str] | None, Path, str]:
    """A prefix that runs a command with store S read-only, S, or why that cannot be done.

    chmod alone does not stop root, so as root S is also bind-mounted read-only in a user+mount
    namespace."""
    store = tmp / "S"
    subprocess.run(
        lb("run", "--store", str(store), "--run", "r", "--", sys.executable, "-c",
           "print('step=0 loss=1')"),
        capture_output=True, timeout=120,
    )  # fmt: skip
    for p in [store, *store.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    if os.geteuid() != 0:
        return [], store, ""
    if not shutil.which("unshare"):
        return None, store, "unshare is not installed"
    mount = f"mount --bind {store} {store} && mount -o remount,bind,ro {store}"
    ns = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
    probe = subprocess.run(
        [*ns, f"{mount} && ! touch {store}/probe 2>/dev/null"], capture_output=True, timeout=60
    )
    if probe.returncode != 0:
        why = probe.stderr.decode(errors="replace").strip() or "the store stayed writable"
        return None, store, f"cannot mount it read-only: {why}"
    return [*ns, f'{mount} && exec "$0" "$@"'], store, ""


def stores(tmp: Path, quick: bool) -> Row:
    train = [sys.executable, "-c", STEP_EXIT_3]
    prefix, ro, why = _ro_store(tmp / "ro")
    a_file = tmp / "file"
    a_file.write_text("not a store\n")
    # name, store, prefix, whether logbook can record there
    cases = [
        ("missing", tmp / "missing" / "deep" / "S", [], True),
        ("file", a_file, [], False),
        ("under-file", Path("/dev/null/x"), [], False),
    ]
    parts: list[str] = []
    if prefix is None:
        parts.append(f"read-only: skipped, {why}")
    else:
        cases.insert(0, ("read-only", ro, prefix, False))
    bad = 0
    for name, store, pre, records in cases:
        p = subprocess.run(
            [*pre, *lb("run", "--store", str(store), "--run", "r", "--", *train)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        printed = "step=1 loss=2" in p.stdout
        tb = "Traceback" in p.stderr
        warned = "logbook: warning:" in p.stderr
        desc = f"{name}: exit {p.returncode}, output {'yes' if printed else 'NO'}"
        good = p.returncode == 3 and printed and not tb
        if tb:
            desc += ", TRACEBACK"
        if records:
            attempts = scalar(store, "select count(*) from attempts")
            desc += f", created {'yes' if store.is_dir() else 'NO'}, attempts {attempts}"
            good = good and attempts == 1
        else:
            desc += f", warning {'yes' if warned else 'NO'}"
            good = good and warned
            if warned:
                desc += f" ({_first_logbook_line(p.stderr)})"
        if name == "file" and a_file.read_text() != "not a store\n":
            desc, good = desc + ", the file was CHANGED", False
        bad += not good
        parts.append(desc)
    return row("stores", len(cases),
               "exit 3, output through, `logbook: warning:` where it cannot record, no traceback",
               "; ".join(parts), bad == 0)  # fmt: skip


WRITER = """
import time
for i in range({n}):
    print(f'step={{i}} loss={{1.0 / (i + 1):.6f}}', flush=True)
    time.sleep(0.005)
"""


def mixed_writers(tmp: Path, quick: bool) -> Row:
    store = tmp / "S"
    n_runs, n_lines = (4, 100) if quick else (10, 200)
    procs = [
        subprocess.Popen(
            lb(
                "run",
                "--store",
                str(store),
                "--run",
                f"r{i}",
                "--",
                sys.executable,
                "-c",
                WRITER.format(n=n_lines),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for i in range(n_runs)
    ]
    stop = threading.Event()
    failed: dict[str, list[str]] = {"compact": [], "query": []}
    done = {"compact": 0, "query": 0}

    def loop(kind: str, args: list[str]) -> None:
        while not stop.is_set():
            p = subprocess.run(lb(*args), capture_output=True, text=True, timeout=120)
            done[kind] += 1
            if p.returncode != 0:
                lines = [ln.strip() for ln in p.stderr.splitlines() if ln.strip()]
                first = next((ln for ln in lines if "rror" in ln), lines[-1] if lines else "")
                failed[kind].append(f"exit {p.returncode}: {first[:100]}")

    threads = [
        threading.Thread(target=loop, args=("compact", ["compact", "--store", str(store)])),
        threading.Thread(
            target=loop,
            args=("query", ["query", "--store", str(store), "select count(*) from metrics"]),
        ),
    ]
    # a query before the first wrapper made the store fails by design ("no logbook store")
    wait_for(store.is_dir, 60)
    for t in threads:
        t.start()
    try:
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=150)
    codes = [p.returncode for p in procs]
    tracebacks = sum("Traceback" in (err or b"").decode(errors="replace") for _, err in results)
    rc, rows, _ = query(
        store, "select run, count(*) from metrics where name = 'loss' group by run order by run"
    )
    counts = {r[0]: int(r[1]) for r in rows}
    wrong = {k: v for k, v in counts.items() if v != n_lines}
    missing = n_runs - len(counts)
    attempts = scalar(store, "select count(*) from attempts")
    found = (
        f"exits {sorted(set(codes))}, failed compactions {len(failed['compact'])}/"
        f"{done['compact']}, failed queries {len(failed['query'])}/{done['query']}, "
        f"runs with {n_lines} losses {len(counts) - len(wrong)}/{n_runs}, attempts {attempts}"
    )
    if wrong or missing:
        found += f" [counts {counts}]"
    if tracebacks:
        found += f", {tracebacks} wrappers printed a traceback"
    for kind in ("compact", "query"):
        if failed[kind]:
            found += f" [{kind}: " + "; ".join(sorted(set(failed[kind]))[:2]) + "]"
    ok = (
        set(codes) == {0}
        and not failed["compact"]
        and not failed["query"]
        and rc == 0
        and not wrong
        and not missing
        and attempts == n_runs
        and not tracebacks
    )
    return row("mixed-writers", n_runs,
               f"exits 0, 0 failed compactions/queries, {n_lines} losses per run, "
               f"{n_runs} attempts", found, ok)  # fmt: skip


TRIALS: dict[str, Callable[[Path, bool], Row]] = {
    "wrapper-kill": wrapper_kill,
    "concurrent-labels": concurrent_labels,
    "compact-kill": compact_kill,
    "query-writes": query_writes,
    "queries-during-compaction": queries_during_compaction,
    "full-disk": full_disk,
    "secrets": secrets,
    "hostile-output": hostile_output,
    "stores": stores,
    "mixed-writers": mixed_writers,
    "secrets-git": secrets_git,
}


def run_trial(name: str, quick: bool) -> Row:
    tmp = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
    t0 = time.monotonic()
    try:
        r = TRIALS[name](tmp, quick)
    except Exception as e:
        tb = traceback.format_exc().strip().splitlines()
        r = row(
            name, 0, "the trial runs", f"error: {type(e).__name__}: {e} ({tb[-3].strip()})", False
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r["seconds"] = round(time.monotonic() - t0, 1)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts (< 2 minutes on 2 cores)")
    ap.add_argument("--only", action="append", choices=list(TRIALS), help="a trial (repeatable)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    rows = []
    for name in args.only or list(TRIALS):
        rows.append(run_trial(name, args.quick))
        if not args.json:
            print(f"  {name}: {rows[-1]['seconds']} s", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| trial | runs | expected | found | ok |\n|---|---|---|---|---|")
    for r in rows:
        ok = "skip" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        print(f"| {r['trial']} | {r['runs']} | {r['expected']} | {r['found']} | {ok} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
