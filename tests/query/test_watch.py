"""logbook watch (#7): the state read from a real recorded run, one frame printed, and the live
view in a real terminal (tmux) refreshing in place and ending with Ctrl-C."""

from __future__ import annotations

import os
import pty
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import logbook_cmd

from logbook.errors import NoSuchRun
from logbook.query.watch import watch_state
from logbook.store import Store

SLOW_TRAIN = textwrap.dedent(
    """
    import math, time
    for step in range(1, 151):  # about 30 s
        print(f"step={step} loss={2.0 * math.exp(-step / 50):.4f}", flush=True)
        time.sleep(0.2)
    """
)


def _record(run_logbook, store_path: Path, run: str, script: Path, *args: str, **env: str):  # type: ignore[no-untyped-def]
    return run_logbook(
        "run", "--store", str(store_path), "--run", run, *args, "--", sys.executable, str(script),
        env=env,
    )  # fmt: skip


@pytest.fixture
def recorded(run_logbook, store_path: Path, train_script: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A store with run "r": a completed attempt of 40 steps whose config says 400."""
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  total_steps: 400\n")
    _record(
        run_logbook, store_path, "r", train_script, "--config", str(config), TRAIN_STEPS="40"
    ).check_returncode()
    return store_path


# the state -----------------------------------------------------------------------------------


def test_state_of_a_recorded_run(recorded: Path) -> None:
    state = watch_state(Store.open(recorded), "r")
    assert (state.run, state.attempt, state.status) == ("r", "1.00", "completed")
    assert state.step == 39  # steps 0..39
    assert state.rate is None or state.rate > 0
    assert (state.target, state.target_from) == (400, "config train.total_steps")
    assert state.eta_s is None  # it ended
    assert state.started is not None and state.ended is not None and state.age_s is not None
    assert state.age_s == pytest.approx((state.ended - state.started).total_seconds())
    loss = state.metrics["loss"]
    assert len(loss) == 30  # the newest 30 of 40 points, oldest first
    assert loss[-1] == pytest.approx(2.0 / 40, abs=1e-4)
    assert loss == sorted(loss, reverse=True)
    assert state.metrics_attempt == "1.00"
    assert (state.attempts, state.restarts, state.incidents) == (1, 0, {})
    assert state.gpus == [] or state.gpu_summary is not None
    # The machine was read at least at the start and the end (the process tree was gone by then).
    assert [h.host for h in state.hosts] == [state.host]
    assert state.hosts[0].mem_total_bytes


def test_target_from_tokens_over_tokens_per_step(
    run_logbook, store_path: Path, train_script: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  total_tokens: 4M\n  tokens_per_step: 4096\nwarmup_steps: 7\n")
    _record(run_logbook, store_path, "t", train_script, "--config", str(config)).check_returncode()
    state = watch_state(Store.open(store_path), "t")
    assert state.target == 977  # 4e6 / 4096, rounded up
    assert state.target_from == "config train.total_tokens / config train.tokens_per_step"


def test_state_counts_restarts_and_incidents(
    run_logbook, store_path: Path, train_script: Path
) -> None:  # type: ignore[no-untyped-def]
    _record(
        run_logbook, store_path, "crashy", train_script, "--restarts", "1", "--backoff", "0s",
        TRAIN_MODE="raise",
    )  # fmt: skip
    state = watch_state(Store.open(store_path), "crashy", target_steps=10)
    assert (state.attempt, state.status, state.attempts, state.restarts) == (
        "1.01",
        "crashed",
        2,
        1,
    )
    assert state.incidents == {"python_exception": 2}
    assert (state.target, state.target_from) == (10, "--target-steps")
    kinds = [e.kind for e in state.events]
    assert "restart" in kinds and "crash" in kinds
    assert [e.time for e in state.events] == sorted(e.time for e in state.events)


def test_state_picks_the_running_run_else_the_latest(
    run_logbook, store_path: Path, train_script: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _record(run_logbook, store_path, "first", train_script).check_returncode()
    _record(run_logbook, store_path, "second", train_script).check_returncode()
    store = Store.open(store_path)
    assert watch_state(store).run == "second"
    slow = _start_slow(store_path, "slow", tmp_path)
    try:
        _wait_for(lambda: _has_run(store_path, "slow"), 20)
        _record(run_logbook, store_path, "third", train_script).check_returncode()
        state = watch_state(Store.open(store_path))
        assert (state.run, state.status) == ("slow", "running")
    finally:
        _stop(slow)
    assert watch_state(Store.open(store_path)).run == "third"


def test_state_of_an_unknown_run_or_an_empty_store(store: Store) -> None:
    from logbook.errors import LogbookError

    with pytest.raises(LogbookError, match="no runs in .* yet"):
        watch_state(store)
    with pytest.raises(NoSuchRun, match='no run "nope"'):
        watch_state(store, "nope")


# one frame -----------------------------------------------------------------------------------


def test_once_piped_is_plain_text(run_logbook, recorded: Path) -> None:  # type: ignore[no-untyped-def]
    out = run_logbook("watch", "--store", str(recorded), "--once", check=0).stdout.decode()
    assert "\x1b" not in out
    lines = out.splitlines()
    assert lines[0].startswith("r · attempt 1.00 completed after ")
    assert lines[1] == "  exited with code 0"
    assert lines[2].startswith("step 39 of 400 (9.8%, config train.total_steps) · seen ")
    assert lines[3] == "attempts 1 · restarts 0 · incidents 0"
    (loss,) = [line for line in lines if line.startswith("loss ")]
    # Falling loss: the trend runs from the top block to the bottom one, 30 points.
    trend = loss.split()[2]
    assert (len(trend), trend[0], trend[-1]) == (30, "█", "▁")
    assert loss.endswith("  -0.132 (-72.5%)")  # 2/11 -> 2/40
    assert all(line == line.rstrip() for line in lines)
    assert "last events" in lines and f"store {recorded} · " in out
    assert "Ctrl-C" not in out


def test_once_follows_the_metrics_asked_for(invoke, recorded: Path) -> None:  # type: ignore[no-untyped-def]
    out = invoke(["watch", "r", "--store", str(recorded), "--once", "--metric", "nope"]).stdout
    assert "metrics of attempt" not in out and "\nloss " not in out
    out = invoke(["watch", "r", "--store", str(recorded), "--once", "--metric", "loss"]).stdout
    assert "metrics of attempt 1.00, last 30 points\n" in out and "\nloss " in out


def test_once_shows_each_gpu_or_their_summary(invoke, recorded: Path) -> None:  # type: ignore[no-untyped-def]
    store = Store.open(recorded)
    state = watch_state(store, "r")
    assert state.ended is not None
    at = state.ended  # the newest readings are from the end

    def gpu(index: int, host: str = "node-a") -> dict[str, Any]:
        return {
            "attempt_id": state.attempt_id, "time": at, "host": host, "scope": "gpu",
            "gpu_index": index, "gpu_util_pct": 90.0 + index, "power_w": 300.0 + index,
            "gpu_mem_used_bytes": 70 << 30, "gpu_mem_total_bytes": 80 << 30,
            "temperature_c": 60.0 + index,
        }  # fmt: skip

    store.write("samples", "r", [gpu(0), gpu(1)])
    out = invoke(["watch", "r", "--store", str(recorded), "--once"]).stdout
    assert "\nGPU 0: util 90% · power 300 W · memory 70.0 GiB of 80.0 GiB (88%) · 60 °C\n" in out
    assert (
        "\nGPU 1: util 91% · power 301 W · memory 70.0 GiB of 80.0 GiB (88%) · 61 °C · read " in out
    )
    # Many GPUs: one line that sums them up.
    store.write("samples", "r", [gpu(i, host) for host in ("node-b", "node-c") for i in range(8)])
    out = invoke(["watch", "r", "--store", str(recorded), "--once"]).stdout
    assert (
        "\n18 GPUs on 3 hosts: util 93% mean (90%-97%) · power 303 W mean, 5457 W in all · "
        "memory 1.2 TiB of 1.4 TiB (88%) · hottest 67 °C · read "
    ) in out
    summary = watch_state(store, "r").gpu_summary
    assert summary is not None and (summary.gpus, summary.hosts) == (18, 3)


def _in_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """Run `args` with stdout on a pseudo-terminal; its output."""
    leader, follower = pty.openpty()
    with subprocess.Popen(args, stdout=follower, stderr=subprocess.PIPE, env=env) as proc:
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other end is closed
                break
            if not chunk:
                break
            out += chunk
        os.close(leader)
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 0, err
    return out


def test_once_on_a_terminal_has_colour_unless_no_color(recorded: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(TERM="xterm-256color", COLUMNS="120")
    args = logbook_cmd("watch", "r", "--store", str(recorded), "--once")
    coloured = _in_a_terminal(args, env)
    assert b"\x1b[" in coloured and b"attempt" in coloured
    plain = _in_a_terminal(args, {**env, "NO_COLOR": "1"})
    assert b"\x1b" not in plain
    assert plain.decode().splitlines()[0].startswith("r · attempt 1.00 completed")


def test_unknown_run_is_an_error(invoke, recorded: Path) -> None:  # type: ignore[no-untyped-def]
    result = invoke(["watch", "nope", "--store", str(recorded), "--once"], code=1)
    assert result.stderr.startswith(f'Error: no run "nope" in {recorded} (known: r)')


def test_empty_store_says_so(invoke, store: Store) -> None:  # type: ignore[no-untyped-def]
    result = invoke(["watch", "--store", str(store.root), "--once"], code=1)
    assert result.stderr == (
        f'Error: no runs in {store.root} yet; start one with "logbook run --run NAME -- CMD"\n'
    )
    result = invoke(["watch", "--store", str(store.root / "nowhere"), "--once"], code=1)
    assert result.stderr.startswith(f"Error: no logbook store at {store.root / 'nowhere'}")


def test_bad_interval_is_a_usage_error(invoke, recorded: Path) -> None:  # type: ignore[no-untyped-def]
    result = invoke(["watch", "--store", str(recorded), "--every", "soon"], code=2)
    assert "--every" in result.stderr
    invoke(["watch", "--store", str(recorded), "--every", "10ms"], code=2)


# live, in a real terminal --------------------------------------------------------------------


def _start_slow(store_path: Path, run: str, folder: Path) -> subprocess.Popen[bytes]:
    script = folder / "slow_train.py"
    script.write_text(SLOW_TRAIN)
    args = ["run", "--store", str(store_path), "--run", run, "--", sys.executable, str(script)]
    return subprocess.Popen(
        logbook_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # as Ctrl-C would: the attempt ends interrupted
    proc.wait(timeout=30)


def _wait_for(check, seconds: float, explain=lambda: "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not true after {seconds} s\n{explain()}"
        time.sleep(0.2)


def _has_run(store_path: Path, run: str) -> bool:
    return store_path.exists() and run in Store.open(store_path).run_names()


@pytest.fixture
def tmux() -> Iterator[list[str]]:
    """The tmux command on a private server, killed at the end."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (.ci/run installs it where it can)")
    cmd = ["tmux", "-L", f"logbook-test-{os.getpid()}", "-f", os.devnull]
    yield cmd
    subprocess.run([*cmd, "kill-server"], capture_output=True)


def test_live_view_refreshes_in_place_and_ends_on_ctrl_c(
    tmux: list[str], store_path: Path, tmp_path: Path
) -> None:
    training = _start_slow(store_path, "w", tmp_path)
    rc, err = tmp_path / "watch.rc", tmp_path / "watch.err"
    watch = shlex.join(
        logbook_cmd("watch", "w", "--store", str(store_path), "--every", "0.5s")
        + ["--target-steps", "150"]
    )
    # The exit code goes to a file; the pane stays open after for a last look.
    shell = f"{watch} 2> {shlex.quote(str(err))}; echo $? > {shlex.quote(str(rc))}; sleep 60"
    try:
        _wait_for(lambda: _has_run(store_path, "w"), 20)
        subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "40", shell], check=True)

        def pane() -> str:
            done = subprocess.run(
                [*tmux, "capture-pane", "-p", "-S", "-"], capture_output=True, text=True
            )
            return done.stdout

        steps: list[int] = []

        def new_step() -> bool:
            found = re.search(r"^step ([\d,]+) of 150 ", pane(), re.MULTILINE)
            step = int(found.group(1).replace(",", "")) if found else None
            if step is not None and step not in steps:
                steps.append(step)
            return len(steps) >= 2

        # Metrics reach the store every 10 s: two different steps within ~25 s.
        _wait_for(new_step, 45, pane)
        frame = pane()
        assert steps[1] > steps[0]
        header = [line for line in frame.splitlines() if line.startswith("w · attempt 1.00 ")]
        assert len(header) == 1, frame  # one frame, redrawn in place: nothing scrolled
        assert "running for " in header[0]
        assert re.search(r"steps/s · ETA \d", frame), frame
        assert re.search(r"^loss +\d\.\d+ +[▁-█]+ +-", frame, re.MULTILINE), frame
        assert "every 0.5s · Ctrl-C to stop" in frame

        subprocess.run([*tmux, "send-keys", "C-c"], check=True)
        _wait_for(rc.exists, 15)
        _wait_for(lambda: rc.read_text().strip() != "", 5)
        assert rc.read_text().strip() == "0"
        assert "Traceback" not in err.read_text() and "Aborted" not in err.read_text()
        last = pane()
        assert "Traceback" not in last
        assert len([line for line in last.splitlines() if line.startswith("w · attempt")]) == 1
    finally:
        _stop(training)
