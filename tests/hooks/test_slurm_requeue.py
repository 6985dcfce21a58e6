"""hooks/slurm-requeue with a fake scontrol that records its argv (#3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Shipped


@pytest.fixture
def scontrol(shipped: Shipped, tmp_path: Path) -> Path:
    calls = tmp_path / "scontrol-calls"
    shipped.fake(
        "scontrol",
        f"import json, sys; open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n",
    )
    shipped.env["SLURM_JOB_ID"] = "4242"
    return calls


def calls(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize(
    ("event", "payload", "why"),
    [
        ("on_end", {"status": "preempted"}, "the attempt was preempted"),
        (
            "on_crash",
            {"status": "crashed", "crash_class": "gpu_hardware", "retryable": True},
            "crashed (gpu_hardware): a new allocation may cure it",
        ),
        (
            "on_end",
            {"status": "gave_up", "crash_class": "communication"},
            "gave_up (communication): a new allocation may cure it",
        ),
        ("on_hang", {"status": "hung"}, "hung (hung): a new allocation may cure it"),
    ],
)
def test_requeues_when_a_new_allocation_may_help(
    shipped: Shipped, scontrol: Path, event: str, payload: dict[str, Any], why: str
) -> None:
    result = shipped.run("slurm-requeue", event, payload)
    assert result.ok, result.output
    assert result.output == f"slurm-requeue: requeued job 4242: {why}\n"
    assert calls(scontrol) == [["requeue", "4242"]]


@pytest.mark.parametrize(
    ("event", "payload", "why"),
    [
        ("on_end", {"status": "completed"}, "status completed is not worth a requeue"),
        ("on_end", {"status": "interrupted"}, "status interrupted is not worth a requeue"),
        (
            "on_crash",
            {"status": "crashed", "crash_class": "python_exception"},
            "crashed (python_exception) is not in --classes communication,gpu_hardware,hung",
        ),
        (
            "on_crash",
            {"status": "crashed", "crash_class": "gpu_hardware", "retryable": False},
            "gpu_hardware is not retryable",
        ),
        ("on_start", {"status": "preempted"}, "on_start is not an end of an attempt"),
        ("on_restart", {}, "on_restart is not an end of an attempt"),
    ],
)
def test_leaves_the_job_alone_otherwise(
    shipped: Shipped, scontrol: Path, event: str, payload: dict[str, Any], why: str
) -> None:
    result = shipped.run("slurm-requeue", event, payload)
    assert result.ok
    assert result.output == f"slurm-requeue: not requeueing job 4242: {why}\n"
    assert calls(scontrol) == []


def test_classes_option(shipped: Shipped, scontrol: Path) -> None:
    payload = {"status": "crashed", "crash_class": "gpu_oom"}
    assert shipped.run("slurm-requeue", "on_crash", payload, "--classes", "gpu_oom,numerical").ok
    assert calls(scontrol) == [["requeue", "4242"]]


def test_dry_run(shipped: Shipped, scontrol: Path) -> None:
    result = shipped.run("slurm-requeue", "on_end", {"status": "preempted"}, "--dry-run")
    assert (
        result.output
        == "slurm-requeue: would run scontrol requeue 4242: the attempt was preempted\n"
    )
    assert calls(scontrol) == []


def test_outside_slurm_it_does_nothing(shipped: Shipped, scontrol: Path) -> None:
    del shipped.env["SLURM_JOB_ID"]
    result = shipped.run("slurm-requeue", "on_end", {"status": "preempted"})
    assert result.ok
    assert (
        result.output
        == "slurm-requeue: not running under SLURM (SLURM_JOB_ID is unset); nothing to do\n"
    )
    assert calls(scontrol) == []


def test_a_refused_requeue_fails_with_scontrols_answer(shipped: Shipped) -> None:
    shipped.fake(
        "scontrol",
        "import sys; print('Requeue of JobId=4242 returned an error: Access/permission denied', file=sys.stderr); sys.exit(1)\n",
    )
    shipped.env["SLURM_JOB_ID"] = "4242"
    result = shipped.run("slurm-requeue", "on_end", {"status": "preempted"})
    assert result.exit_code == 1
    assert result.output == (
        "slurm-requeue: scontrol requeue 4242 failed (exit 1): "
        "Requeue of JobId=4242 returned an error: Access/permission denied\n"
    )
