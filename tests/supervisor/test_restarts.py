"""Supervised restarts, hang watch and lost work, with real children (#3)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import logbook_cmd

from logbook.query import run_sql
from logbook.store import Store

# Crashes at step 135 on its first launch and at 235 on its second, then finishes; checkpoints
# every 50 steps into ckpt/latest.json and resumes from it, as real trainers do.
FLAKY = textwrap.dedent(
    """
    import json, os, sys, time
    restart = int(os.environ.get("LOGBOOK_RESTART_COUNT", "0"))
    ckpt = os.path.join(sys.argv[1], "latest.json")
    step = 0
    if os.path.exists(ckpt):
        step = json.load(open(ckpt))["step"]
        print(f"resumed from checkpoint at step {step}")
    while step < 300:
        step += 1
        if restart < 2 and step == 135 + 100 * restart:
            raise RuntimeError(f"injected failure at step {step}")
        if step % 10 == 0:
            print(f"step={step} loss={1 / step:.5f}")
        if step % 50 == 0:
            os.makedirs(sys.argv[1], exist_ok=True)
            json.dump({"step": step}, open(ckpt + ".tmp", "w"))
            os.replace(ckpt + ".tmp", ckpt)
            print(f"saved checkpoint at step {step}", file=sys.stderr)
        time.sleep(0.001)
    print("done")
    """
)


def _attempts(store_path: Path, run: str) -> list[dict]:
    return run_sql(
        Store(store_path), "select * from attempts where run = ? order by start_time", [run]
    ).to_pylist()


def _run(
    store_path: Path, *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        logbook_cmd("run", "--store", str(store_path), *args),
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def test_crashes_twice_then_succeeds_from_its_checkpoint(
    store_path: Path, tmp_path: Path, invoke
) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY)
    ckpt = tmp_path / "ckpt"
    p = _run(
        store_path,
        "--run",
        "flaky",
        "--restarts",
        "5",
        "--backoff",
        "0.1",
        "--checkpoint-dir",
        str(ckpt),
        "--no-capture",
        "--",
        sys.executable,
        str(script),
        str(ckpt),
    )
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    assert p.stdout.decode().splitlines()[-1] == "done"
    rows = _attempts(store_path, "flaky")
    got = [
        (
            r["label"],
            r["parent_label"],
            r["status"],
            r["crash_class"],
            r["restart_count"],
            r["decision"],
            r["first_step"],
            r["last_step"],
            r["resumed_from_step"],
            r["last_checkpoint_step"],
        )
        for r in rows
    ]
    assert got == [
        ("1.00", None, "crashed", "python_exception", 0, "restart", 10, 130, None, 100),
        ("1.01", "1.00", "crashed", "python_exception", 1, "restart", 110, 230, 100, 200),
        ("1.02", "1.01", "completed", None, 2, "stop", 210, 300, 200, 300),
    ]
    assert (
        "RuntimeError" in rows[0]["summary"]
        and "injected failure at step 135" in rows[0]["summary"]
    )
    incidents = run_sql(
        Store(store_path),
        "select label, class, lost_steps, downtime_s from incidents "
        "where run = 'flaky' order by time",
    ).to_pylist()
    assert [(i["label"], i["class"], i["lost_steps"]) for i in incidents] == [
        ("1.00", "python_exception", 30),
        ("1.01", "python_exception", 30),
    ]
    assert all(0.05 < i["downtime_s"] < 30 for i in incidents)
    out = invoke(["incidents", "flaky", "--store", str(store_path), "--format", "json"]).stdout
    by_class = {r["class"]: r for r in json.loads(out)}
    assert (
        by_class["python_exception"]["count"] == 2
        and by_class["python_exception"]["lost_steps"] == 60
    )
    assert by_class["all failures"]["mtbf_s"] > 0
    show = json.loads(
        invoke(["show", "flaky", "--store", str(store_path), "--format", "json"]).stdout
    )
    assert [
        (s["label"], s["steps"], s["resumed_from"], s["lost_steps"], s["then"]) for s in show
    ] == [
        ("1.00", "10-130", None, 30, "restart"),
        ("1.01", "110-230", 100, 30, "restart"),
        ("1.02", "210-300", 200, 0, "stop"),  # completed, not relaunched: nothing lost
    ]
    events = run_sql(
        Store(store_path), "select kind, count(*) as n from events group by kind"
    ).to_pylist()
    counts = {e["kind"]: e["n"] for e in events}
    assert counts["crash"] == 2 and counts["restart"] == 2 and counts["checkpoint"] >= 6
    twice = run_sql(
        Store(store_path),
        "select attempt_id, step from events where kind = 'checkpoint' "
        "group by all having count(*) > 1",
    ).to_pylist()
    assert twice == []  # announced in the output and seen in the folder: one event


def test_a_hang_is_caught_stopped_and_restarted(store_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text(
        "import os, time\nprint('step=1', flush=True)\n"
        "if os.environ['LOGBOOK_RESTART_COUNT'] == '0':\n    time.sleep(600)\nprint('step=2 done')\n"
    )
    t0 = time.monotonic()
    p = _run(
        store_path,
        "--run",
        "h",
        "--hang-timeout",
        "1.5",
        "--restarts",
        "1",
        "--backoff",
        "0",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
    )
    assert p.returncode == 0 and time.monotonic() - t0 < 60, p.stderr.decode()[-2000:]
    rows = _attempts(store_path, "h")
    assert [(r["label"], r["status"], r["rule"], r["decision"]) for r in rows] == [
        ("1.00", "hung", "hang-timeout", "restart"),
        ("1.01", "completed", None, "stop"),
    ]
    assert 1.4 < rows[0]["hung_s"] < 10 and rows[0]["signal_name"] == "SIGTERM"
    assert re.fullmatch(
        r"hung: no output and no new step for \d+ s; logbook stopped it", rows[0]["summary"]
    )
    [hang] = run_sql(
        Store(store_path), "select message, data from events where kind = 'hang'"
    ).to_pylist()
    assert hang["message"].startswith("no output and no progress for")
    assert json.loads(hang["data"])["lines"] == ["stdout: step=1"]


def test_a_crash_loop_gives_up(store_path: Path, tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "loop.py"
    script.write_text("raise ConnectionResetError('[Errno 104] Connection reset by peer')\n")
    p = _run(
        store_path,
        "--run",
        "loop",
        "--restarts",
        "10",
        "--backoff",
        "0",
        "--max-same-failures",
        "3",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
    )
    assert p.returncode == 1
    rows = _attempts(store_path, "loop")
    assert [r["decision"] for r in rows] == ["restart", "restart", "gave_up"]
    assert "3 times in a row with no progress" in rows[-1]["decision_reason"]
    runs = json.loads(invoke(["runs", "--store", str(store_path), "--format", "json"]).stdout)
    assert runs[0]["latest_status"] == "gave_up"


def test_configuration_errors_are_not_retried(store_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "cfg.py"
    script.write_text("import no_such_module_for_logbook_tests\n")
    p = _run(
        store_path,
        "--run",
        "cfg",
        "--restarts",
        "5",
        "--backoff",
        "0",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
    )
    assert p.returncode == 1
    [row] = _attempts(store_path, "cfg")
    assert (row["status"], row["crash_class"], row["retryable"], row["decision"]) == (
        "crashed",
        "configuration",
        False,
        "stop",
    )


def test_restart_on_limits_the_classes(store_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "boom.py"
    script.write_text("raise ValueError('bad value')\n")
    p = _run(
        store_path,
        "--run",
        "r",
        "--restarts",
        "5",
        "--backoff",
        "0",
        "--no-restart-on",
        "python_exception",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
    )
    assert p.returncode == 1
    [row] = _attempts(store_path, "r")
    assert row["decision"] == "stop" and "not in --restart-on" in row["decision_reason"]


def test_unknown_class_and_bad_duration_are_refused_before_start(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    cmd = ["--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    p = run_logbook(
        "run", "--store", str(store_path), "--restart-on", "gpu_oom,cosmic_rays", *cmd, check=1
    )
    assert b"unknown class cosmic_rays" in p.stderr and not marker.exists()
    p = run_logbook("run", "--store", str(store_path), "--hang-timeout", "soon", *cmd, check=2)
    assert b"'soon' is not a duration" in p.stderr and not marker.exists()


def test_resume_cmd_is_used_for_relaunches(store_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "r.py"
    script.write_text(
        "import sys\nprint(' '.join(sys.argv[1:]))\nsys.exit(0 if '--resume' in sys.argv else 3)\n"
    )
    p = _run(
        store_path,
        "--run",
        "rc",
        "--restarts",
        "2",
        "--backoff",
        "0",
        "--resume-cmd",
        f"{sys.executable} {script} --resume",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
    )
    assert p.returncode == 0 and p.stdout.decode().splitlines() == ["", "--resume"]
    assert [r["command"][-1] for r in _attempts(store_path, "rc")] == [str(script), "--resume"]


def test_sigterm_under_a_scheduler_is_preemption_and_not_relaunched(
    store_path: Path, tmp_path: Path
) -> None:
    script = tmp_path / "s.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen(
        logbook_cmd(
            "run",
            "--store",
            str(store_path),
            "--run",
            "pre",
            "--restarts",
            "3",
            "--no-capture",
            "--",
            sys.executable,
            str(script),
        ),
        stdout=subprocess.PIPE,
        env={**os.environ, "SLURM_JOB_ID": "4242"},
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    [row] = _attempts(store_path, "pre")
    assert (row["status"], row["forwarded_signal"], row["decision"]) == (
        "preempted",
        "SIGTERM",
        "stop",
    )


@pytest.mark.parametrize("where", ["flag", "toml"])
def test_hooks_get_the_event(store_path: Path, tmp_path: Path, where: str) -> None:
    got = tmp_path / "got"
    hook = tmp_path / "hook.sh"
    hook.write_text(
        f'#!/bin/sh\ncat >> {got}\necho " $LOGBOOK_EVENT $LOGBOOK_CRASH_CLASS" >> {got}\necho hook-said-hi\n'
    )
    hook.chmod(0o755)
    script = tmp_path / "oom.py"
    script.write_text(
        "import sys\nprint('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. "
        "GPU 0 has a total capacity of 79.10 GiB', file=sys.stderr)\nsys.exit(1)\n"
    )
    args = ["--run", "hk", "--no-capture"]
    if where == "flag":
        args += ["--hook", f"on_crash={hook}", "--hook", f"on_end={hook}"]
    else:
        (tmp_path / "logbook.toml").write_text(
            f'[hooks]\non_crash = "{hook}"\non_end = ["{hook}"]\n'
        )
    p = subprocess.run(
        logbook_cmd("run", "--store", str(store_path), *args, "--", sys.executable, str(script)),
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert p.returncode == 1, p.stderr
    text = got.read_text()
    assert " on_crash gpu_oom" in text and " on_end gpu_oom" in text
    payload = json.loads(text.split(" on_crash")[0])
    assert (
        payload["schema"] == "logbook.hook/1"
        and payload["run"] == "hk"
        and payload["attempt"] == "1.00"
    )
    assert payload["crash_class"] == "gpu_oom" and "CUDA out of memory" in payload["summary"]
    assert (payload["component"], payload["planned"]) == ("user", False)  # #19
    hooks = run_sql(
        Store(store_path), "select message, data from events where kind = 'hook'"
    ).to_pylist()
    assert len(hooks) == 2 and json.loads(hooks[0]["data"])["output"].strip() == "hook-said-hi"


def test_a_hook_that_is_not_executable_is_refused_before_start(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\ntrue\n")
    p = run_logbook(
        "run", "--store", str(store_path), "--hook", f"on_crash={hook}", "--", "true", check=1
    )
    assert b"Error:" in p.stderr and b"chmod" in p.stderr


def test_a_hang_stops_the_whole_tree_even_ranks_that_left_the_group(
    store_path: Path, tmp_path: Path
) -> None:
    # A launcher whose two "ranks" hang; one of them left the process group with setsid.
    pids = tmp_path / "pids"
    script = tmp_path / "launcher.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, subprocess, sys, time
        rank = [sys.executable, "-c", "import time; time.sleep(600)"]
        a = subprocess.Popen(rank)
        b = subprocess.Popen(rank, start_new_session=True)
        open({str(pids)!r}, "w").write(f"{{a.pid}} {{b.pid}}")
        print("step=1", flush=True)
        time.sleep(600)
    """)
    )
    p = _run(
        store_path,
        "--run",
        "tree",
        "--hang-timeout",
        "1.5",
        "--grace",
        "1",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
    )
    assert p.returncode in (128 + 15, 128 + 9), p.stderr.decode()[-2000:]
    import psutil

    for pid in map(int, pids.read_text().split()):
        try:
            proc = psutil.Process(pid)
            proc.wait(timeout=5)
        except psutil.NoSuchProcess:
            pass
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    [row] = _attempts(store_path, "tree")
    assert row["status"] == "hung"


def test_on_hang_hooks_run_while_the_command_is_still_alive(
    store_path: Path, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    hook = tmp_path / "on_hang.sh"
    hook.write_text(
        f'#!/bin/sh\nif kill -0 "$LOGBOOK_PID"; then echo alive > {seen}; else echo dead > {seen}; fi\n'
    )
    hook.chmod(0o755)
    script = tmp_path / "hang.py"
    script.write_text("import time\nprint('step=1', flush=True)\ntime.sleep(600)\n")
    p = _run(
        store_path,
        "--run",
        "oh",
        "--hang-timeout",
        "1",
        "--hook",
        f"on_hang={hook}",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
    )
    assert p.returncode == 128 + 15, p.stderr.decode()[-2000:]
    assert seen.read_text().strip() == "alive"


def test_a_rule_from_logbook_toml_names_the_crash(store_path: Path, tmp_path: Path) -> None:
    (tmp_path / "logbook.toml").write_text(
        '[[crash.rule]]\nid = "lustre-evicted"\npattern = \'lustre: .* evicted\'\nclass = "data_io"\n'
        'summary = "the Lustre client was evicted"\n'
    )
    script = tmp_path / "evicted.py"
    script.write_text(
        "import sys\nprint('lustre: client 42 evicted by the MDS', file=sys.stderr)\nsys.exit(5)\n"
    )
    p = subprocess.run(
        logbook_cmd(
            "run",
            "--store",
            str(store_path),
            "--run",
            "lu",
            "--no-capture",
            "--",
            sys.executable,
            str(script),
        ),
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert p.returncode == 5
    [row] = _attempts(store_path, "lu")
    assert (row["crash_class"], row["rule"], row["summary"]) == (
        "data_io",
        "lustre-evicted",
        "the Lustre client was evicted",
    )
    (tmp_path / "logbook.toml").write_text(
        '[[crash.rule]]\nid = "x"\npattern = \'(\'\nclass = "data_io"\n'
    )
    p = subprocess.run(
        logbook_cmd("run", "--store", str(store_path), "--", "true"),
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert p.returncode == 1 and b"Error:" in p.stderr and b"Traceback" not in p.stderr


def test_a_run_with_many_parts_is_merged_when_logbook_run_ends(store_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    store = Store.open(store_path, create=True)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(70):  # as many restarts' worth of parts
        store.write(
            "attempts",
            "many",
            [
                {
                    "attempt_id": f"a{i}",
                    "label": f"1.{i:02d}",
                    "status": "crashed",
                    "start_time": t0 + timedelta(minutes=i),
                    "command": ["train"],
                    "recorded_at": t0 + timedelta(minutes=i),
                }
            ],
        )
    p = _run(store_path, "--run", "many", "--no-capture", "--", "true")
    assert p.returncode == 0
    rows = _attempts(store_path, "many")
    assert len(rows) == 71 and rows[-1]["label"] == "1.70" and rows[-1]["parent_label"] == "1.69"
    assert len(list((store_path / "attempts" / "run=many").glob("*.parquet"))) <= 2


def test_a_start_hook_that_outlives_the_attempt_still_records_its_event(
    store_path: Path, tmp_path: Path
) -> None:
    """The hook's event comes after the attempt's end (its journal is folded): it is still kept."""
    hook = tmp_path / "slow_start.sh"
    hook.write_text("#!/bin/sh\nsleep 2\necho started late\n")
    hook.chmod(0o755)
    p = _run(
        store_path, "--run", "late", "--hook", f"on_start={hook}", "--no-capture", "--", "true"
    )
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    rows = run_sql(
        Store(store_path), "select message, data from events where kind = 'hook'"
    ).to_pylist()
    assert len(rows) == 1 and rows[0]["message"].startswith("on_start hook ")
    assert json.loads(rows[0]["data"])["output"].strip() == "started late"


def test_a_slow_hang_hook_does_not_hold_back_a_ctrl_c(store_path: Path, tmp_path: Path) -> None:
    """While an on_hang hook runs (60 s here), Ctrl-C still reaches the command, and a command
    that ignores it is killed after the grace period, as at any other time."""
    hook = tmp_path / "slow_hang.sh"
    hook.write_text("#!/bin/sh\nsleep 60\n")
    hook.chmod(0o755)
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('step=1', flush=True)\ntime.sleep(600)\n"
    )
    wrapper = subprocess.Popen(
        logbook_cmd(
            "run", "--store", str(store_path), "--run", "hh", "--hang-timeout", "1",
            "--grace", "1", "--hook", f"on_hang={hook}", "--no-capture", "--",
            sys.executable, str(script),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(store_path.glob("_journal/*/*.jsonl")):
        time.sleep(0.1)
    time.sleep(3)  # hung by now, its hook sleeping
    started = time.monotonic()
    wrapper.send_signal(signal.SIGINT)
    wrapper.communicate(timeout=30)
    assert time.monotonic() - started < 15
    assert wrapper.returncode == 128 + signal.SIGKILL
