"""Tests for logbook.capture.launcher: launcher kinds and variables from real-looking envs."""

from __future__ import annotations

import pytest

from logbook.capture.launcher import capture_launcher, launcher_kinds
from logbook.record.redact import REDACTED

# The 16 names a two-worker torchrun sets (ecosystem.md 3.1).
TORCHRUN_ENV = {
    "GROUP_RANK": "0",
    "GROUP_WORLD_SIZE": "1",
    "LOCAL_RANK": "1",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
    "RANK": "1",
    "ROLE_NAME": "default",
    "ROLE_RANK": "1",
    "ROLE_WORLD_SIZE": "2",
    "TORCHELASTIC_ERROR_FILE": "/tmp/torchelastic_x/error.json",
    "TORCHELASTIC_MAX_RESTARTS": "3",
    "TORCHELASTIC_RESTART_COUNT": "0",
    "TORCHELASTIC_RUN_ID": "none",
    "TORCHELASTIC_USE_AGENT_STORE": "True",
    "WORLD_SIZE": "2",
}
SLURM_ENV = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NODELIST": "node[01-04,07]",
    "SLURM_PROCID": "0",
    "SLURM_RESTART_COUNT": "1",
}
K8S_ENV = {
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "HOSTNAME": "trainer-0",
    "JOB_COMPLETION_INDEX": "0",
}


def test_no_launcher() -> None:
    rows = capture_launcher(["python", "train.py"], {"PATH": "/usr/bin", "HOSTNAME": "box"})
    assert rows == [
        {"kind": "launcher", "name": "kind", "value": "none", "status": "ok", "detail": None}
    ]


def test_torchrun_worker() -> None:
    rows = capture_launcher(["python", "train.py"], {**TORCHRUN_ENV, "HOME": "/root"})
    values = {row["name"]: row["value"] for row in rows}
    assert values.pop("kind") == "torchrun"
    assert values == TORCHRUN_ENV


def test_slurm_and_kubernetes_together() -> None:
    env = {**SLURM_ENV, **K8S_ENV, "SLURM_JOB_ACCOUNT_TOKEN": "s3cr3t-value", "USER": "me"}
    rows = {row["name"]: row for row in capture_launcher(["python", "t.py"], env)}
    assert rows["kind"]["value"] == "slurm,kubernetes"
    assert rows["SLURM_JOB_NODELIST"]["value"] == "node[01-04,07]"
    assert rows["HOSTNAME"]["value"] == "trainer-0"  # the pod name, inside Kubernetes
    assert rows["JOB_COMPLETION_INDEX"]["value"] == "0"
    assert "USER" not in rows
    secret = rows["SLURM_JOB_ACCOUNT_TOKEN"]
    assert (secret["value"], secret["status"], secret["detail"]) == (
        REDACTED,
        "redacted",
        "secret name",
    )


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        (["torchrun", "--nproc-per-node", "8", "train.py"], {}, ["torchrun"]),
        (["/opt/venv/bin/accelerate", "launch", "train.py"], {}, ["accelerate"]),
        (["python", "-m", "torch.distributed.run", "train.py"], {}, ["torchrun"]),
        (["srun", "python", "train.py"], SLURM_ENV, ["slurm"]),
        (["deepspeed", "train.py"], {}, ["deepspeed"]),
        (["python", "t.py"], {"OMPI_COMM_WORLD_RANK": "3"}, ["mpi"]),
        (
            ["python", "t.py"],
            {"ACCELERATE_MIXED_PRECISION": "bf16", **TORCHRUN_ENV},
            ["torchrun", "accelerate"],
        ),
        ([], {"RANK": "0"}, []),  # RANK alone is too common a name to mean torchrun
    ],
)
def test_kinds(command: list[str], env: dict[str, str], expected: list[str]) -> None:
    assert launcher_kinds(command, env) == expected
