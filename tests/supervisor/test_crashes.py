"""Real crashes through `logbook run`: named, with evidence, as a user would see them (#3)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import logbook_cmd

from logbook.query import run_sql
from logbook.store import Store


def _attempt(store_path: Path) -> dict:
    [row] = run_sql(Store(store_path), "select * from attempts").to_pylist()
    return row


def _memory_cgroup(limit_bytes: int) -> Path:
    """A fresh memory cgroup (v1 or v2) with a hard limit, or skip."""
    name = f"logbook-test-{uuid.uuid4().hex[:8]}"
    for base, limit, extra in (
        (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
        (Path("/sys/fs/cgroup"), "memory.max", "memory.swap.max"),
        (Path("/sys/fs/cgroup/unified"), "memory.max", "memory.swap.max"),
    ):
        cg = base / name
        try:
            cg.mkdir()
        except OSError:
            continue
        if not (cg / limit).exists():
            cg.rmdir()
            continue
        (cg / limit).write_text(str(limit_bytes))
        if (cg / extra).exists():
            try:
                (cg / extra).write_text(str(limit_bytes) if "memsw" in extra else "0")
            except OSError:
                pass
        return cg
    pytest.skip("no writable memory cgroup here")


def _rmdir(cg: Path) -> None:
    import time

    for _ in range(50):
        try:
            cg.rmdir()
            return
        except OSError:
            time.sleep(0.1)


def test_an_oom_kill_before_the_wrapper_looks_is_still_counted() -> None:
    # The wrapper spawns the command, then imports pyarrow; a command killed at once by the OOM
    # killer was dead before the count was first read, and its kill went unproven (a SIGKILL
    # guessed as OOM). The count of the cgroup it starts in, read before the spawn, proves it.
    from logbook.supervisor.oom import OomWatch

    cg = _memory_cgroup(100 << 20)
    holder = subprocess.Popen(["sh", "-c", f"echo $$ > {cg}/cgroup.procs && exec sleep 30"])
    try:
        for _ in range(100):  # the holder stands for the wrapper, in the command's cgroup
            if cg.name in Path(f"/proc/{holder.pid}/cgroup").read_text():
                break
            time.sleep(0.05)
        before = OomWatch(holder.pid)
        assert before.file is not None and before.start is not None
        child = subprocess.Popen(
            ["sh", "-c", f"echo $$ > {cg}/cgroup.procs && exec {sys.executable} -c "
             "'x = bytearray(1 << 30)'"]
        )  # fmt: skip
        # dead, not yet reaped (as when the wrapper first looks): a zombie reads as in the root
        # cgroup under cgroup v1, whose count never rose
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert OomWatch(child.pid, before).kills_since_start() == 1
        assert child.wait(timeout=60) == -9
        assert OomWatch(child.pid, before).kills_since_start() == 1  # reaped: the same
    finally:
        holder.kill()
        holder.wait()
        _rmdir(cg)


def test_the_kernel_oom_killer_is_named_with_proof(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    cg = _memory_cgroup(300 << 20)
    try:
        # The wrapper and its child share a 300 MB limit; the child wants 1 GB.
        inner = " ".join(
            logbook_cmd(
                "run",
                "--store",
                str(store_path),
                "--run",
                "oom",
                "--no-capture",
                "--",
                sys.executable,
                "-c",
                "'x = bytearray(1 << 30)'",
            )
        )
        p = subprocess.run(
            ["sh", "-c", f"echo $$ > {cg}/cgroup.procs && exec {inner}"],
            capture_output=True,
            timeout=120,
        )
        assert p.returncode == 128 + 9, p.stderr.decode()[-2000:]
        row = _attempt(store_path)
        assert (row["status"], row["crash_class"], row["rule"]) == (
            "crashed",
            "host_oom",
            "cgroup-oom-kill",
        )
        assert row["summary"].startswith("killed by the kernel OOM killer (memory cgroup")
    finally:
        _rmdir(cg)


def test_a_segfault_is_a_fatal_signal(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    p = subprocess.run(
        logbook_cmd(
            "run",
            "--store",
            str(store_path),
            "--no-capture",
            "--",
            sys.executable,
            "-c",
            "import ctypes; ctypes.string_at(0)",
        ),
        capture_output=True,
        timeout=60,
    )
    assert p.returncode == 128 + 11
    row = _attempt(store_path)
    assert (row["status"], row["crash_class"], row["signal_name"]) == (
        "crashed",
        "fatal_signal",
        "SIGSEGV",
    )
    assert "segmentation fault" in row["summary"].lower()


def test_memory_error_under_a_limit_is_host_oom(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
        "x = bytearray(2 << 30)"
    )
    p = subprocess.run(
        logbook_cmd(
            "run", "--store", str(store_path), "--no-capture", "--", sys.executable, "-c", code
        ),
        capture_output=True,
        timeout=60,
    )
    assert p.returncode == 1 and b"MemoryError" in p.stderr
    row = _attempt(store_path)
    assert (row["status"], row["crash_class"], row["rule"]) == (
        "crashed",
        "host_oom",
        "python-memory-error",
    )


def test_a_child_that_ignores_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    import signal
    import time

    store_path = tmp_path / "store"
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen(
        logbook_cmd(
            "run",
            "--store",
            str(store_path),
            "--grace",
            "1",
            "--no-capture",
            "--",
            sys.executable,
            str(script),
        ),
        stdout=subprocess.PIPE,
        env={**os.environ},
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + 9 and time.monotonic() - t0 < 10
    row = _attempt(store_path)
    assert (row["status"], row["forwarded_signal"], row["signal_name"]) == (
        "interrupted",
        "SIGTERM",
        "SIGKILL",
    )
