from __future__ import annotations

import sys
from pathlib import Path

import pytest

from logbook.errors import ConfigError
from logbook.supervisor.policy import DEFAULT_RESTART_ON, History, Outcome, RestartPolicy, decide


def crash(
    cls: str = "communication", *, progressed: bool = False, retryable: bool = True
) -> Outcome:
    return Outcome("crashed", cls, retryable, f"crashed:{cls}:x", progressed, False)


def test_backoff_doubles_without_progress_and_is_capped() -> None:
    policy, history = (
        RestartPolicy(max_restarts=10, backoff_s=2, backoff_max_s=5, same_failure_limit=99),
        History(),
    )
    delays = [decide(policy, crash(), history).delay_s for _ in range(4)]
    assert delays == [2, 4, 5, 5]
    assert decide(policy, crash(progressed=True), history).delay_s == 2  # progress resets it


def test_the_same_failure_k_times_without_progress_gives_up() -> None:
    policy, history = RestartPolicy(max_restarts=10, backoff_s=0, same_failure_limit=3), History()
    actions = [decide(policy, crash(), history).action for _ in range(3)]
    assert actions == ["restart", "restart", "gave_up"]
    history = History()
    mixed = [
        crash("communication"),
        crash("gpu_hardware"),
        crash("communication"),
        crash("gpu_hardware"),
    ]
    assert all(decide(policy, o, history).action == "restart" for o in mixed)


def test_what_is_never_relaunched() -> None:
    policy = RestartPolicy(max_restarts=5, backoff_s=0)
    assert (
        decide(policy, Outcome("completed", None, False, "c", True, False), History()).action
        == "stop"
    )
    assert decide(policy, crash("configuration", retryable=False), History()).action == "stop"
    asked = Outcome("interrupted", None, False, "i", False, True)
    assert "asked to stop" in decide(policy, asked, History()).reason
    history = History()
    assert [
        decide(RestartPolicy(max_restarts=1, backoff_s=0), crash(progressed=True), history).action
        for _ in range(2)
    ] == ["restart", "stop"]


def test_restart_on_parsing() -> None:
    p = RestartPolicy.build(
        max_restarts=1,
        restart_on="all",
        no_restart_on="numerical,hung",
        backoff_s=0,
        backoff_max_s=0,
        same_failure_limit=3,
    )
    assert (
        "configuration" in p.restart_on
        and "numerical" not in p.restart_on
        and "hung" not in p.restart_on
    )
    assert "configuration" not in DEFAULT_RESTART_ON and "hung" in DEFAULT_RESTART_ON
    with pytest.raises(ConfigError, match="unknown class gpu-oom"):
        RestartPolicy.build(
            max_restarts=1,
            restart_on="gpu-oom",
            no_restart_on=None,
            backoff_s=0,
            backoff_max_s=0,
            same_failure_limit=3,
        )


def test_restart_classes_as_a_toml_list(run_logbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """logbook.toml's restart-on may be a list, as TOML invites; a bad type is a clear error."""
    (tmp_path / "logbook.toml").write_text('[run]\nrestart-on = ["gpu_oom", "communication"]\n')
    args = ("run", "--store", str(tmp_path / "s"), "--run", "t", "--no-capture", "--")
    run_logbook(*args, sys.executable, "-c", "pass", cwd=tmp_path, check=0)
    (tmp_path / "logbook.toml").write_text("[run]\nrestart-on = 3\n")
    bad = run_logbook(*args, sys.executable, "-c", "pass", cwd=tmp_path, check=1)
    assert b"restart-on" in bad.stderr and b"Traceback" not in bad.stderr
