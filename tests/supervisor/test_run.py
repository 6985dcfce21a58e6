"""`logbook run` as a real process: exit codes, signals, output passthrough, lineage, lost attempts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import logbook_cmd, training_process

from logbook.query import run_sql
from logbook.store import Store


def attempts(store_path: Path, run: str) -> list[dict]:
    return run_sql(
        Store(store_path), "select * from attempts where run = ? order by start_time", [run]
    ).to_pylist()


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_exit_code_and_output_pass_through(
    run_logbook, store_path: Path, train_script: Path
) -> None:
    p = run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "t",
        "--",
        sys.executable,
        str(train_script),
        env={"TRAIN_MODE": "exit", "TRAIN_EXIT": "7"},
        check=7,
    )
    assert p.stdout.decode().splitlines() == [
        f"step={i} loss={2.0 / (i + 1):.4f}" for i in range(5)
    ]
    [a] = attempts(store_path, "t")
    assert (a["status"], a["exit_code"], a["signal"]) == ("crashed", 7, None)
    assert a["command"] == [sys.executable, str(train_script)]
    assert a["pid"] and a["wrapper_pid"] and a["host"] and a["cwd"] == os.getcwd()
    assert a["duration_s"] > 0 and a["end_time"] > a["start_time"]


def test_python_exception_keeps_traceback_and_logs(
    run_logbook, store_path: Path, train_script: Path
) -> None:
    p = run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "t",
        "--",
        sys.executable,
        str(train_script),
        env={"TRAIN_MODE": "raise"},
        check=1,
    )
    assert b"RuntimeError: boom at step 2" in p.stderr
    [a] = attempts(store_path, "t")
    logs = store_path / "logs" / "run=t" / a["attempt_id"]
    assert (logs / "stdout.log").read_bytes() == p.stdout
    assert b"RuntimeError: boom at step 2" in (logs / "stderr.log").read_bytes()


def test_killed_by_signal_exits_128_plus_n(
    run_logbook, store_path: Path, train_script: Path
) -> None:
    run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "k",
        "--",
        sys.executable,
        str(train_script),
        env={"TRAIN_MODE": "kill"},
        check=128 + 9,
    )
    [a] = attempts(store_path, "k")
    assert (a["status"], a["exit_code"], a["signal"], a["signal_name"]) == (
        "crashed",
        None,
        9,
        "SIGKILL",
    )


def test_bytes_pass_unchanged(run_logbook, store_path: Path, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 64 + b"\x1b[31mred\x1b[0m\r 10%\r 50%\r100%\n" + b"no newline at end"
    src = tmp_path / "blob.bin"
    src.write_bytes(blob)
    p = run_logbook("run", "--store", str(store_path), "--run", "b", "--", "cat", str(src), check=0)
    assert p.stdout == blob
    [a] = attempts(store_path, "b")
    assert (store_path / "logs" / "run=b" / a["attempt_id"] / "stdout.log").read_bytes() == blob


def test_child_sees_its_attempt_and_runs_unbuffered(run_logbook, store_path: Path) -> None:
    code = (
        "import os, json; print(json.dumps({k: os.environ.get(k) for k in "
        "['LOGBOOK_RUN','LOGBOOK_ATTEMPT','LOGBOOK_STORE','PYTHONUNBUFFERED']}))"
    )
    p = run_logbook(
        "run", "--store", str(store_path), "--run", "env", "--", sys.executable, "-c", code, check=0
    )
    assert json.loads(p.stdout) == {
        "LOGBOOK_RUN": "env",
        "LOGBOOK_ATTEMPT": "1.00",
        "LOGBOOK_STORE": str(store_path),
        "PYTHONUNBUFFERED": "1",
    }
    p = run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "env",
        "--",
        sys.executable,
        "-c",
        code,
        env={"PYTHONUNBUFFERED": ""},
        check=0,
    )
    assert (
        json.loads(p.stdout)["PYTHONUNBUFFERED"] == ""
        and json.loads(p.stdout)["LOGBOOK_ATTEMPT"] == "1.01"
    )


def test_the_wrappers_memory_pool_stays_out_of_the_childs_environment(
    run_logbook, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """logbook run picks pyarrow's system pool for itself through ARROW_DEFAULT_MEMORY_POOL
    (supervisor.arrow_pool); the training gets the environment it was given."""
    code = "import os; print(os.environ.get('ARROW_DEFAULT_MEMORY_POOL', 'unset'))"
    base = ["run", "--store", str(store_path), "--run", "pool", "--", sys.executable, "-c", code]
    assert run_logbook(*base, check=0).stdout.strip() == b"unset"
    given = run_logbook(*base, env={"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}, check=0)
    assert given.stdout.strip() == b"jemalloc"


def test_lineage_labels_and_parents(run_logbook, store_path: Path) -> None:
    base = ["run", "--store", str(store_path), "--run", "lin"]
    run_logbook(*base, "--", "true", check=0)
    run_logbook(*base, "--", "false", check=1)
    run_logbook(*base, "--label", "12.00", "--", "true", check=0)
    run_logbook(*base, "--", "true", check=0)
    p = run_logbook(*base, "--label", "1.01", "--", "true", check=1)
    assert b"label 1.01 is already used" in p.stderr
    rows = attempts(store_path, "lin")
    assert [(r["label"], r["parent_label"], r["status"]) for r in rows] == [
        ("1.00", None, "completed"),
        ("1.01", "1.00", "crashed"),
        ("12.00", "1.01", "completed"),
        ("12.01", "12.00", "completed"),
    ]
    assert rows[1]["parent_id"] == rows[0]["attempt_id"]


def test_command_not_found_is_127_and_recorded(run_logbook, store_path: Path) -> None:
    p = run_logbook(
        "run", "--store", str(store_path), "--run", "nf", "--", "no-such-program-xyz", check=127
    )
    assert b"cannot run no-such-program-xyz" in p.stderr
    [a] = attempts(store_path, "nf")
    assert (a["status"], a["exit_code"], a["crash_class"]) == ("crashed", 127, "configuration")


def _start(store_path: Path, train_script: Path, mode: str, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        logbook_cmd(
            "run",
            "--store",
            str(store_path),
            "--run",
            "sig",
            *extra,
            "--",
            sys.executable,
            str(train_script),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TRAIN_MODE": mode},
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the trainer has installed its handlers
        if line.strip() == b"ready":
            return proc
    raise AssertionError(proc.stderr.read() if proc.stderr else "no output")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_stopping_signals_are_forwarded_to_the_group(
    store_path: Path, train_script: Path, sig: int
) -> None:
    proc = _start(store_path, train_script, "trap" if sig == signal.SIGTERM else "sleep")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    seen = (
        proc.returncode,
        out,
        err,
        attempts(store_path, "sig"),
        run_sql(Store(store_path), "from events"),
    )
    if sig == signal.SIGTERM:
        assert proc.returncode == 42 and b"got signal 15" in out, seen
    else:  # the trainer dies of it (KeyboardInterrupt for SIGINT): the wrapper says so the shell way
        assert proc.returncode == 128 + sig, seen
    [a] = attempts(store_path, "sig")
    assert a["status"] == "interrupted" and a["forwarded_signal"] == signal.Signals(sig).name
    events = run_sql(
        Store(store_path), "select kind, message from events where kind = 'signal'"
    ).to_pylist()
    assert events == [
        {"kind": "signal", "message": f"received {signal.Signals(sig).name}; passed to the command"}
    ]


def test_group_is_killed_after_grace(store_path: Path, train_script: Path) -> None:
    proc = _start(store_path, train_script, "ignore", "--grace", "1")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + 9 and 0.9 < time.monotonic() - t0 < 10
    [a] = attempts(store_path, "sig")
    assert (a["status"], a["signal_name"], a["forwarded_signal"]) == (
        "interrupted",
        "SIGKILL",
        "SIGTERM",
    )


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2])
def test_usr_signals_are_passed_on_without_stopping(
    store_path: Path, tmp_path: Path, sig: int
) -> None:
    # The trainer checkpoints on the notice and runs on past the grace period: nobody kills it.
    script = tmp_path / "usr.py"
    script.write_text(
        "import signal, sys, time\n"
        f"signal.signal({int(sig)}, lambda s, f: print('checkpoint now', flush=True))\n"
        "print('ready', flush=True)\ntime.sleep(1.5)\ntime.sleep(0.5)\n"
    )
    proc = subprocess.Popen(
        logbook_cmd(
            "run",
            "--store",
            str(store_path),
            "--run",
            "u",
            "--grace",
            "0.5",
            "--",
            sys.executable,
            str(script),
        ),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert out == b"checkpoint now\n" and proc.returncode == 0
    [a] = attempts(store_path, "u")
    assert a["status"] == "completed" and a["forwarded_signal"] is None


def test_kill_9_of_the_wrapper_leaves_a_lost_attempt(store_path: Path, train_script: Path) -> None:
    proc = _start(store_path, train_script, "sleep")
    child = training_process(proc.pid)
    deadline = time.monotonic() + 10  # the child may print before the wrapper journals its start
    while not (found := attempts(store_path, "sig")) and time.monotonic() < deadline:
        time.sleep(0.05)
    [a] = found
    assert a["status"] == "running"  # read from the live journal
    proc.kill()
    child.kill()  # it outlives the wrapper (its output goes through the pump, which lives on)
    proc.communicate()
    [a] = attempts(store_path, "sig")
    assert a["status"] == "lost" and a["end_time"] is not None
    assert list((store_path / "_journal").rglob("*.jsonl"))  # a read leaves it to the writers
    cmd = logbook_cmd("run", "--store", str(store_path), "--run", "sig", "--", "true")
    assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
    assert not list((store_path / "_journal").rglob("*.jsonl"))  # the next run folded it
    assert [a["status"] for a in attempts(store_path, "sig")] == ["lost", "completed"]
    lost = run_sql(
        Store(store_path), "select kind, severity from events where kind = 'lost'"
    ).to_pylist()
    assert lost == [{"kind": "lost", "severity": "error"}]


@pytest.mark.parametrize("shape", ["one huge line", "log lines"])
def test_wrapper_memory_stays_bounded_whatever_the_child_prints(
    store_path: Path, shape: str
) -> None:
    # 300 MB as fast as Python can write it: with no newline at all, or as step lines that the
    # progress follower scans; the wrapper's RSS is watched until it has exited.
    line = (
        "b'x' * (1 << 20)"
        if shape == "one huge line"
        else "b'step=12345 loss=1.2345 ' * 32 + b'\\n'"
    )
    code = (
        f"import sys\nline = {line}\nchunk = line * ((1 << 20) // len(line))\n"
        "for _ in range(300): sys.stdout.buffer.write(chunk)\n"
    )
    proc = subprocess.Popen(
        logbook_cmd(
            "run",
            "--store",
            str(store_path),
            "--run",
            "big",
            "--no-capture",
            "--",
            sys.executable,
            "-c",
            code,
        ),
        stdout=subprocess.PIPE,
    )
    peak = [0]

    def watch() -> None:
        # Anonymous memory is what the wrapper allocates; its RSS also counts the pages of
        # pyarrow's libraries that happen to be in the page cache (about 15 MB more in a venv
        # installed a minute ago than in an old one), which says nothing about buffering.
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    anon = next(line for line in f if line.startswith("RssAnon:"))
                peak[0] = max(peak[0], int(anon.split()[1]) << 10)
            except (OSError, StopIteration):
                return
            time.sleep(0.02)

    import threading

    watcher = threading.Thread(target=watch)
    watcher.start()
    total = 0
    assert proc.stdout is not None
    while chunk := proc.stdout.read(1 << 20):
        total += len(chunk)
    proc.stdout.close()
    assert proc.wait() == 0 and total >= 290 << 20
    watcher.join()
    # About 32 MB (one huge line) and 45 MB (log lines, caught up after the end) here.
    # Bounded, far below the 300 MB printed: the chunk engine holds ~8x its reads (numpy).
    assert 0 < peak[0] < 100 << 20, f"wrapper's anonymous memory peaked at {peak[0] >> 20} MiB"


def _in_tiny_filesystem(
    tmp_path: Path, options: str, inner: str
) -> subprocess.CompletedProcess[bytes]:
    """Run `inner` (a shell line) with a fresh tmpfs mounted at tmp_path/mnt, in a private namespace."""
    import shutil

    if not shutil.which("unshare"):
        pytest.skip("unshare is not installed")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = f"mount -t tmpfs -o {options} tmpfs {mnt} && {inner}"
    probe = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            f"mount -t tmpfs tmpfs {mnt}",
        ],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs in a user namespace here: {probe.stderr.decode().strip()}"
        )
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        timeout=120,
    )


def test_full_store_never_stops_the_child(tmp_path: Path) -> None:
    # 2 MB of output into a 256 KiB filesystem: the raw log fills it, then every write fails.
    code = (
        "import sys\nfor i in range(20000): print(f'step={i} loss=1.0 ' + 'x' * 80)\nsys.exit(4)\n"
    )
    script = tmp_path / "chatty.py"
    script.write_text(code)
    cmd = " ".join(
        logbook_cmd(
            "run",
            "--store",
            str(tmp_path / "mnt" / "store"),
            "--run",
            "full",
            "--",
            sys.executable,
            str(script),
        )
    )
    p = _in_tiny_filesystem(tmp_path, "size=256k", cmd)
    assert p.returncode == 4, p.stderr[-2000:]
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 20000 and lines[-1].startswith("step=19999 ")
    assert b"logbook: warning: raw stdout log stopped: No space left on device" in p.stderr


def test_a_full_store_records_the_end_once_space_returns(tmp_path: Path) -> None:
    """The end of an attempt that finished on a full disk is kept in the space its journal reserved
    at the start: once there is room again it reads as it ended (exit 4), not as lost."""
    code = (
        "import sys\nfor i in range(20000): print(f'step={i} loss=1.0 ' + 'x' * 80)\nsys.exit(4)\n"
    )
    script = tmp_path / "chatty.py"
    script.write_text(code)
    store = tmp_path / "mnt" / "store"
    run = " ".join(
        logbook_cmd(
            "run", "--store", str(store), "--run", "full", "--", sys.executable, str(script)
        )
    )
    query = " ".join(
        logbook_cmd(
            "query", "--store", str(store), "--format", "csv",
            "\"select concat_ws(' ', status, exit_code, crash_class) as s from attempts\"",
        )
    )  # fmt: skip
    compact = " ".join(logbook_cmd("compact", "--store", str(store)))
    inner = (
        f"{run} > /dev/null; echo exit=$?; rm -rf {store}/logs; {query}; {compact} >/dev/null; "
        f"ls {store}/_journal/run=full | wc -l; {query}"
    )
    p = _in_tiny_filesystem(tmp_path, "size=256k", inner)
    out = [line for line in p.stdout.decode().splitlines() if line != "s"]  # less csv headers
    assert out[0] == "exit=4", p.stderr[-2000:]
    assert out[1] == "crashed 4 unknown", p.stderr[-2000:]
    assert out[2].strip() == "0"  # compact folded the journal (and its reserve) into Parquet
    assert out[3] == "crashed 4 unknown"


def test_read_only_store_never_stops_the_child(tmp_path: Path, train_script: Path) -> None:
    cmd = " ".join(
        logbook_cmd(
            "run",
            "--store",
            str(tmp_path / "mnt" / "store"),
            "--",
            sys.executable,
            str(train_script),
        )
    )
    p = _in_tiny_filesystem(tmp_path, "ro", f"TRAIN_MODE=exit TRAIN_EXIT=5 {cmd}")
    assert p.returncode == 5, p.stderr[-2000:]
    assert p.stdout.decode().count("step=") == 5
    assert (
        b"logbook: warning: cannot write to the store" in p.stderr and b"not recorded" in p.stderr
    )


def test_store_path_that_is_a_file_never_stops_the_child(
    run_logbook, tmp_path: Path, train_script: Path
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a store")
    p = run_logbook(
        "run", "--store", str(blocker), "--", sys.executable, str(train_script), check=0
    )
    assert p.stdout.decode().splitlines()[-1] == "done"
    assert (
        b"logbook: warning: cannot write to the store" in p.stderr and b"not recorded" in p.stderr
    )


def test_output_to_a_file_passes_unchanged(store_path: Path, tmp_path: Path) -> None:
    # stdout a file, not a pipe: the read/write path rather than tee/splice.
    blob = b"".join(b"step=%d loss=1.5\r\x1b[1mbold\x1b[0m\n" % i for i in range(50000))
    src, dest = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(blob)
    with open(dest, "wb") as f:
        code = subprocess.run(
            logbook_cmd("run", "--store", str(store_path), "--run", "f", "--", "cat", str(src)),
            stdout=f,
            timeout=60,
        ).returncode
    assert code == 0 and dest.read_bytes() == blob
    [a] = attempts(store_path, "f")
    assert (store_path / "logs" / "run=f" / a["attempt_id"] / "stdout.log").read_bytes() == blob


def test_a_reader_that_leaves_stops_the_command_as_without_logbook(store_path: Path) -> None:
    # `yes | head -1`: when head leaves, yes gets SIGPIPE; wrapped, the same must happen.
    p = subprocess.run(
        f"{' '.join(logbook_cmd('run', '--store', str(store_path), '--run', 'y', '--', 'yes'))} | head -1",
        shell=True,
        capture_output=True,
        timeout=60,
    )
    assert p.stdout == b"y\n"
    [a] = attempts(store_path, "y")
    assert (a["status"], a["signal_name"]) == ("interrupted", "SIGPIPE")


def test_a_storm_of_signals_while_starting_never_deadlocks(
    store_path: Path, tmp_path: Path
) -> None:
    # Handlers run between two bytecodes of the main thread, maybe inside threading's own locks
    # while it starts the pumps and watchers right after the command is spawned: they must take
    # no lock. Signals land all through that window here; the wrapper must never hang.
    script = tmp_path / "quiet.py"
    script.write_text(
        "import signal, time\nsignal.signal(signal.SIGUSR1, signal.SIG_IGN)\ntime.sleep(30)\n"
    )
    for _ in range(6):
        proc = subprocess.Popen(
            logbook_cmd(
                "run",
                "--store",
                str(store_path),
                "--run",
                "storm",
                "--grace",
                "1",
                "--no-capture",
                "--",
                sys.executable,
                str(script),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wrapper = psutil.Process(proc.pid)
        deadline = time.monotonic() + 30
        while not wrapper.children() and time.monotonic() < deadline:
            time.sleep(0.0005)  # handlers are installed before the command is spawned
        end = time.monotonic() + 0.5
        while time.monotonic() < end and proc.poll() is None:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        # A deadlocked wrapper never gets past this wait. The command itself may die of an early
        # SIGUSR1 (before it set SIG_IGN; 128+10), and the wrapper of a late one (after restoring
        # its handlers on the way out; -10): both are the shell's normal answers.
        code = proc.wait(timeout=30)
        assert code in (128 + signal.SIGTERM, 128 + signal.SIGUSR1, -signal.SIGUSR1), code
