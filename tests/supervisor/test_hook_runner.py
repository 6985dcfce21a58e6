"""logbook.supervisor.hook_runner with real hook scripts written into tmp_path (#3)."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import textwrap
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from logbook.errors import ConfigError
from logbook.supervisor.hook_runner import (
    EVENTS,
    KILL_GRACE_S,
    OUTPUT_LIMIT,
    PAYLOAD_SCHEMA,
    Hook,
    check_hooks,
    hooks_from_config,
    parse_hook_option,
    run_hook,
    run_hooks,
)

PAYLOAD: dict[str, Any] = {
    "run": "opt-mini",
    "attempt": "1.00",
    "attempt_id": "a1b2",
    "status": "crashed",
    "crash_class": "gpu_oom",
    "retryable": True,
    "summary": "torch.OutOfMemoryError: CUDA out of memory",
    "exit_code": 1,
    "signal": None,
    "restart_count": 0,
    "loss": math.nan,
    "time": datetime(2026, 1, 1, tzinfo=timezone.utc),
    "evidence": {"lines": ["CUDA out of memory. Tried to allocate 2.00 GiB"]},
}


def write_script(path: Path, body: str, *, executable: bool = True) -> Path:
    """A Python script at `path` run by this interpreter."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755 if executable else 0o644)
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("LOGBOOK_TRACE_HOOKS", raising=False)
    return {k: v for k, v in os.environ.items() if not k.startswith("LOGBOOK_")}


def is_gone(pid: int, within: float = 2.0) -> bool:
    """The process has exited (a zombie counts: it runs no more), waiting up to `within` s."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_payload_arrives_as_json_on_stdin_and_as_env(tmp_path: Path, env: dict[str, str]) -> None:
    got = tmp_path / "got.json"
    write_script(
        tmp_path / "hook",
        """
        import json, os, sys
        data = json.load(sys.stdin)
        seen = {k: v for k, v in os.environ.items() if k.startswith("LOGBOOK_") or k == "FROM_ENV"}
        json.dump({"stdin": data, "env": seen, "argv": sys.argv[1:], "cwd": os.getcwd()}, open(sys.argv[1], "w"))
        print("to stdout")
        print("to stderr", file=sys.stderr)
        """,
    )
    hook = Hook("on_crash", f"./hook {got} 'two words'", timeout_s=10)
    result = run_hook(hook, PAYLOAD, env={**env, "FROM_ENV": "yes"}, cwd=tmp_path)

    assert (result.exit_code, result.timed_out, result.error, result.ok) == (0, False, None, True)
    assert result.output.splitlines() == ["to stdout", "to stderr"]
    seen = json.loads(got.read_text())
    assert seen["argv"] == [str(got), "two words"]
    assert seen["cwd"] == str(tmp_path)
    assert seen["stdin"] == {
        "schema": PAYLOAD_SCHEMA,
        "event": "on_crash",
        **{k: v for k, v in PAYLOAD.items() if k not in ("loss", "time")},
        "loss": None,  # NaN is not JSON
        "time": "2026-01-01T00:00:00+00:00",
    }
    assert seen["env"] == {
        "FROM_ENV": "yes",
        "LOGBOOK_SCHEMA": PAYLOAD_SCHEMA,
        "LOGBOOK_EVENT": "on_crash",
        "LOGBOOK_RUN": "opt-mini",
        "LOGBOOK_ATTEMPT": "1.00",
        "LOGBOOK_ATTEMPT_ID": "a1b2",
        "LOGBOOK_STATUS": "crashed",
        "LOGBOOK_CRASH_CLASS": "gpu_oom",
        "LOGBOOK_RETRYABLE": "true",
        "LOGBOOK_SUMMARY": "torch.OutOfMemoryError: CUDA out of memory",
        "LOGBOOK_EXIT_CODE": "1",
        "LOGBOOK_RESTART_COUNT": "0",
        "LOGBOOK_TIME": "2026-01-01T00:00:00+00:00",
        # signal (null), loss (NaN) and evidence (nested) are only on stdin
    }


def test_payload_cannot_override_schema_or_event(tmp_path: Path, env: dict[str, str]) -> None:
    got = tmp_path / "got.json"
    write_script(tmp_path / "hook", "import sys; open(sys.argv[1], 'w').write(sys.stdin.read())\n")
    run_hook(Hook("on_end", f"./hook {got}"), {"event": "x", "schema": "y"}, env=env, cwd=tmp_path)
    assert json.loads(got.read_text()) == {"schema": PAYLOAD_SCHEMA, "event": "on_end"}


def test_exit_code_crash_and_signal_are_reported(tmp_path: Path, env: dict[str, str]) -> None:
    write_script(tmp_path / "three", "raise SystemExit(3)\n")
    write_script(tmp_path / "boom", "raise RuntimeError('hook bug')\n")
    write_script(tmp_path / "killed", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n")
    three, boom, killed = (
        run_hook(Hook("on_end", f"./{name}"), PAYLOAD, env=env, cwd=tmp_path)
        for name in ("three", "boom", "killed")
    )
    assert (three.exit_code, three.ok, three.error) == (3, False, None)
    assert boom.exit_code == 1 and "RuntimeError: hook bug" in boom.output
    assert killed.exit_code == -signal.SIGKILL and not killed.timed_out


def test_timeout_kills_the_hooks_whole_group(tmp_path: Path, env: dict[str, str]) -> None:
    pids = tmp_path / "pids"
    write_script(
        tmp_path / "hang",
        """
        import os, subprocess, sys, time
        child = subprocess.Popen(["sleep", "300"])
        open(sys.argv[1], "w").write(f"{os.getpid()} {child.pid}")
        print("waiting", flush=True)
        time.sleep(300)
        """,
    )
    t0 = time.monotonic()
    result = run_hook(
        Hook("on_hang", f"./hang {pids}", timeout_s=1), PAYLOAD, env=env, cwd=tmp_path
    )
    took = time.monotonic() - t0

    assert (result.exit_code, result.timed_out, result.error) == (None, True, None)
    assert result.output == "waiting\n"
    assert 1 <= took < 1.5  # SIGTERM was enough: no wait for the grace period
    hook_pid, grandchild = map(int, pids.read_text().split())
    assert is_gone(hook_pid) and is_gone(grandchild)


def test_timeout_kills_a_group_that_ignores_sigterm(tmp_path: Path, env: dict[str, str]) -> None:
    pids = tmp_path / "pids"
    write_script(
        tmp_path / "stubborn",
        """
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the grandchild through exec
        child = subprocess.Popen(["sleep", "300"])
        open(sys.argv[1], "w").write(f"{os.getpid()} {child.pid}")
        time.sleep(300)
        """,
    )
    t0 = time.monotonic()
    result = run_hook(
        Hook("on_hang", f"./stubborn {pids}", timeout_s=0.5), PAYLOAD, env=env, cwd=tmp_path
    )
    took = time.monotonic() - t0

    assert result.timed_out and result.exit_code is None
    assert 0.5 + KILL_GRACE_S - 0.1 <= took < 0.5 + KILL_GRACE_S + 1
    hook_pid, grandchild = map(int, pids.read_text().split())
    assert is_gone(hook_pid) and is_gone(grandchild)


def test_a_background_grandchild_holding_the_output_does_not_delay_us(
    tmp_path: Path, env: dict[str, str]
) -> None:
    pids = tmp_path / "pids"
    write_script(
        tmp_path / "detach",
        """
        import subprocess, sys
        child = subprocess.Popen(["sleep", "30"])  # inherits our stdout, keeps the pipe open
        open(sys.argv[1], "w").write(str(child.pid))
        print("left a child behind")
        """,
    )
    t0 = time.monotonic()
    result = run_hook(
        Hook("on_end", f"./detach {pids}", timeout_s=20), PAYLOAD, env=env, cwd=tmp_path
    )
    try:
        assert time.monotonic() - t0 < 2
        assert result.ok and result.output == "left a child behind\n"
    finally:
        os.kill(int(pids.read_text()), signal.SIGKILL)


def test_fifty_megabytes_of_output_is_cut_and_memory_stays_bounded(
    tmp_path: Path, env: dict[str, str]
) -> None:
    write_script(
        tmp_path / "chatty",
        """
        import sys
        out = sys.stdout.buffer
        out.write(b"BEGIN\\n")
        line = b"x" * 1023 + b"\\n"
        for _ in range(50 * 1024):
            out.write(line)
        out.write(b"END\\n")
        """,
    )
    tracemalloc.start()
    try:
        result = run_hook(
            Hook("on_crash", "./chatty", timeout_s=60), PAYLOAD, env=env, cwd=tmp_path
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.ok
    assert peak < 2 * 1024 * 1024
    assert len(result.output) <= OUTPUT_LIMIT
    assert result.output.startswith("BEGIN\nxxx") and result.output.endswith("xxx\nEND\n")
    total = 6 + 50 * 1024 * 1024 + 4
    cut = int(result.output.split("\n[... ")[1].split(" bytes cut ...]\n")[0])
    head, tail = result.output.split(f"\n[... {cut} bytes cut ...]\n")
    assert len(head) + cut + len(tail) == total


def test_a_hook_that_never_reads_a_large_payload_is_fine(
    tmp_path: Path, env: dict[str, str]
) -> None:
    write_script(tmp_path / "deaf", "import os; os.close(0); print('closed stdin')\n")
    big = {**PAYLOAD, "evidence": {"lines": ["x" * 1000] * 2000}}  # 2 MB, far past a pipe's buffer
    result = run_hook(Hook("on_crash", "./deaf"), big, env=env, cwd=tmp_path)
    assert result.ok and result.output == "closed stdin\n"


def test_undecodable_output_is_replaced(tmp_path: Path, env: dict[str, str]) -> None:
    write_script(tmp_path / "bytes", "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe done')\n")
    result = run_hook(Hook("on_end", "./bytes"), PAYLOAD, env=env, cwd=tmp_path)
    assert result.output == "ok \ufffd\ufffd done"


def test_missing_or_not_executable_hooks(tmp_path: Path, env: dict[str, str]) -> None:
    write_script(tmp_path / "plain", "print('hi')\n", executable=False)
    (tmp_path / "noshebang").write_text("echo hi\n")
    (tmp_path / "noshebang").chmod(0o755)
    (tmp_path / "adir").mkdir()
    cases = {
        "./plain": f"{tmp_path / 'plain'} is not executable; chmod +x {tmp_path / 'plain'}",
        "./gone --flag": f"{tmp_path / 'gone'} does not exist",
        "no-such-hook-program": "'no-such-hook-program' is not on PATH",
        "./adir": "is a directory",
    }
    for command, message in cases.items():
        hook = Hook("on_crash", command)
        with pytest.raises(ConfigError) as e:
            check_hooks([hook], tmp_path, env)
        assert f"hook on_crash ({command!r})" in str(e.value) and message in str(e.value)
        result = run_hook(hook, PAYLOAD, env=env, cwd=tmp_path)
        assert (result.exit_code, result.timed_out, result.output) == (None, False, "")
        assert result.error is not None and message in result.error

    # Executable but not a program the kernel can start: found only when run.
    check_hooks([Hook("on_end", "./noshebang")], tmp_path, env)
    result = run_hook(Hook("on_end", "./noshebang"), PAYLOAD, env=env, cwd=tmp_path)
    assert result.exit_code is None and "Exec format error" in (result.error or "")


def test_check_hooks_names_every_bad_hook(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as e:
        check_hooks([Hook("on_start", "./a"), Hook("on_end", "./b")], tmp_path, env)
    assert "hook on_start ('./a')" in str(e.value) and "hook on_end ('./b')" in str(e.value)


def test_programs_are_found_on_envs_path_or_relative_to_cwd(
    tmp_path: Path, env: dict[str, str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_script(bin_dir / "my-hook", "print('from PATH')\n")
    (tmp_path / "hooks").mkdir()
    write_script(tmp_path / "hooks" / "local", "print('from cwd')\n")
    path_env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
    hooks = [Hook("on_start", "my-hook"), Hook("on_start", "hooks/local")]

    check_hooks(hooks, tmp_path, path_env)
    with pytest.raises(ConfigError, match="not on PATH"):
        check_hooks(hooks[:1], tmp_path, env)
    results = run_hooks("on_start", hooks, PAYLOAD, env=path_env, cwd=tmp_path)
    assert [r.output for r in results] == ["from PATH\n", "from cwd\n"]


def test_run_hooks_runs_only_the_events_hooks_in_order(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "log"
    write_script(
        tmp_path / "say", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')\n"
    )
    hooks = [
        Hook("on_crash", f"./say {log} first"),
        Hook("on_end", f"./say {log} not-me"),
        Hook("on_crash", f"./say {log} second"),
    ]
    results = run_hooks("on_crash", hooks, PAYLOAD, env=env, cwd=tmp_path)
    assert [r.hook for r in results] == [hooks[0], hooks[2]]
    assert log.read_text() == "first\nsecond\n"
    assert run_hooks("on_restart", hooks, PAYLOAD, env=env, cwd=tmp_path) == []
    with pytest.raises(ValueError, match="unknown hook event 'on_boom'"):
        run_hooks("on_boom", hooks, PAYLOAD, env=env, cwd=tmp_path)


def test_trace_hooks_prints_call_payload_exit_and_duration(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    write_script(tmp_path / "hook", "raise SystemExit(2)\n")
    run_hook(Hook("on_end", "./hook --x", timeout_s=5), {"run": "r"}, env=env, cwd=tmp_path)
    assert capsys.readouterr().err == ""

    run_hook(
        Hook("on_end", "./hook --x", timeout_s=5),
        {"run": "r"},
        env={**env, "LOGBOOK_TRACE_HOOKS": "1"},
        cwd=tmp_path,
    )
    call, end = capsys.readouterr().err.splitlines()
    assert call == (
        "logbook: hook on_end: ./hook --x (timeout 5 s) payload "
        '{"schema": "logbook.hook/1", "event": "on_end", "run": "r"}'
    )
    assert end.startswith("logbook: hook on_end: ./hook --x: exit 2 in ") and end.endswith(" s")


def test_trace_hooks_from_os_environ(
    tmp_path: Path,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOGBOOK_TRACE_HOOKS", "1")
    run_hook(Hook("on_end", "./missing"), {}, env=env, cwd=tmp_path)
    assert "./missing: cannot start: hook on_end ('./missing'): " in capsys.readouterr().err


def test_parse_hook_option() -> None:
    assert parse_hook_option("on_crash=hooks/crash-forensics --out /tmp/x") == Hook(
        "on_crash", "hooks/crash-forensics --out /tmp/x", 60.0
    )
    assert parse_hook_option(" on_end = notify-webhook ", timeout_s=5) == Hook(
        "on_end", "notify-webhook", 5
    )
    assert parse_hook_option("on_start=env A=1 prog") == Hook("on_start", "env A=1 prog")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hooks/crash-forensics", "expected EVENT=COMMAND"),
        ("on_boom=hooks/x", "unknown hook event 'on_boom'; events: " + ", ".join(EVENTS)),
        ("on_crash=", "--hook on_crash: empty command"),
        ("on_crash=   ", "--hook on_crash: empty command"),
        ("on_crash=hooks/x 'unclosed", "cannot split"),
    ],
)
def test_parse_hook_option_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_hook_option(text)


def test_hooks_from_config() -> None:
    config = {
        "store": {"path": ".logbook"},
        "hooks": {
            "timeout": 30,
            "on_start": "hooks/notify-webhook",
            "on_crash": [
                "hooks/crash-forensics",
                {"command": "hooks/notify-webhook", "timeout": 5.5},
            ],
            "on_hang": [{"command": "hooks/crash-forensics --out /tmp/hang"}],
        },
    }
    assert hooks_from_config(config) == [
        Hook("on_start", "hooks/notify-webhook", 30.0),
        Hook("on_crash", "hooks/crash-forensics", 30.0),
        Hook("on_crash", "hooks/notify-webhook", 5.5),
        Hook("on_hang", "hooks/crash-forensics --out /tmp/hang", 30.0),
    ]
    assert hooks_from_config({}) == []
    assert hooks_from_config({"hooks": {"on_end": []}}) == []
    assert hooks_from_config({"hooks": {"on_end": "x"}}) == [Hook("on_end", "x", 60.0)]


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ("on_crash=x", "[hooks] must be a table"),
        ({"on_boom": "x"}, "unknown hook event 'on_boom'"),
        ({"timeout": -1}, "[hooks] timeout: timeout must be a positive number of seconds, not -1"),
        ({"timeout": True}, "must be a positive number"),
        ({"timeout": "60"}, "must be a positive number"),
        ({"on_end": ""}, "[hooks] on_end: empty command"),
        ({"on_end": 3}, "[hooks] on_end: expected a command string, a list, or a table, not 3"),
        ({"on_end": ["ok", 3]}, "[hooks] on_end[1]: expected a command string"),
        ({"on_end": [{"timeout": 3}]}, "[hooks] on_end[0]: missing command"),
        ({"on_end": [{"command": "x", "timout": 3}]}, "[hooks] on_end[0]: unknown key timout"),
        ({"on_end": [{"command": ["x"]}]}, "the command must be a string"),
        (
            {"on_end": [{"command": "x", "timeout": 0}]},
            "on_end[0] timeout: timeout must be a positive",
        ),
    ],
)
def test_hooks_from_config_errors(hooks: Any, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        hooks_from_config({"hooks": hooks})
    assert message in str(e.value)


ROOT = Path(__file__).resolve().parents[2]


def test_the_payload_schema_describes_every_key() -> None:
    schema = json.loads((ROOT / "schemas" / "hook.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == PAYLOAD_SCHEMA and schema["$id"].endswith(PAYLOAD_SCHEMA)
    props = schema["properties"]
    assert props["schema"]["const"] == PAYLOAD_SCHEMA
    assert tuple(props["event"]["enum"]) == EVENTS
    assert all(p.get("description") for p in props.values())
    # Every key the tests send is described, and each scalar key names its variable.
    assert set(PAYLOAD) - {"loss"} <= set(props)
    for key, prop in props.items():
        if key != "evidence":
            assert f"LOGBOOK_{key.upper()}" in prop["description"], key


def test_hooks_readme_names_every_shipped_hook_and_event() -> None:
    readme = (ROOT / "hooks" / "README.md").read_text()
    shipped = sorted(p for p in (ROOT / "hooks").iterdir() if p.name != "README.md")
    assert [p.name for p in shipped] == ["crash-forensics", "notify-webhook", "slurm-requeue"]
    for path in shipped:
        assert f"## {path.name}" in readme
        assert os.access(path, os.X_OK) and path.read_text().startswith("#!/usr/bin/env python3\n")
    for event in EVENTS:
        assert f"`{event}`" in readme
