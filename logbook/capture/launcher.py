"""Which launcher or scheduler started us (SLURM, torchrun, Kubernetes...), and its variables."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from logbook.capture._row import Row, make_row
from logbook.record.redact import redact_value

# Variables set by torchrun/TorchElastic for each worker (torch/distributed/run.py);
# DeepSpeed's launcher sets the same core names plus LOCAL_SIZE and CROSS_*.
_DISTRIBUTED_NAMES = frozenset(
    {
        "RANK",
        "LOCAL_RANK",
        "WORLD_SIZE",
        "LOCAL_WORLD_SIZE",
        "GROUP_RANK",
        "GROUP_WORLD_SIZE",
        "ROLE_RANK",
        "ROLE_NAME",
        "ROLE_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
        "LOCAL_SIZE",
        "CROSS_RANK",
        "CROSS_SIZE",
    }
)
# Kubernetes sets the service variables in every pod; POD_* and NODE_NAME are the usual
# downward-API names; JOB_COMPLETION_INDEX comes from indexed Jobs; HOSTNAME is the pod name.
_KUBERNETES_NAMES = frozenset(
    {
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
        "POD_NAME",
        "POD_NAMESPACE",
        "POD_IP",
        "NODE_NAME",
        "JOB_COMPLETION_INDEX",
    }
)
_PREFIXES = ("SLURM_", "TORCHELASTIC_", "ACCELERATE_", "FSDP_", "PET_", "OMPI_COMM_WORLD_")
_MPI_NAMES = frozenset({"PMI_RANK", "PMI_SIZE"})
# A launcher named as the command itself (logbook run -- torchrun ...): its workers'
# variables do not exist yet at launch, but the kind is known.
_LAUNCHER_COMMANDS = {
    "srun": "slurm",
    "sbatch": "slurm",
    "torchrun": "torchrun",
    "deepspeed": "deepspeed",
    "accelerate": "accelerate",
    "mpirun": "mpi",
    "mpiexec": "mpi",
}
_KIND_ORDER = ("slurm", "kubernetes", "torchrun", "deepspeed", "accelerate", "mpi")


def is_launcher_variable(name: str, env: Mapping[str, str]) -> bool:
    """Tell whether an environment variable belongs to a launcher or scheduler."""
    if name.startswith(_PREFIXES) or name in _DISTRIBUTED_NAMES or name in _MPI_NAMES:
        return True
    if name in _KUBERNETES_NAMES:
        return True
    return name == "HOSTNAME" and "KUBERNETES_SERVICE_HOST" in env


def launcher_kinds(command: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Name the launchers in play, outermost first.

    Args:
        command: the training command (`torchrun ...` names its launcher).
        env: the environment the command gets.

    Returns:
        Some of slurm, kubernetes, torchrun, deepspeed, accelerate, mpi; empty for none.
    """
    kinds: set[str] = set()
    if "SLURM_JOB_ID" in env or "SLURM_JOBID" in env:
        kinds.add("slurm")
    if "KUBERNETES_SERVICE_HOST" in env:
        kinds.add("kubernetes")
    # Lightning's test for torchelastic: all four names present.
    torch_names = ("RANK", "GROUP_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    if any(n.startswith("TORCHELASTIC_") for n in env) or all(n in env for n in torch_names):
        kinds.add("torchrun")
    if "LOCAL_SIZE" in env and "CROSS_RANK" in env:
        kinds.add("deepspeed")
    if any(n.startswith("ACCELERATE_") for n in env):
        kinds.add("accelerate")
    if "OMPI_COMM_WORLD_RANK" in env or "PMI_RANK" in env:
        kinds.add("mpi")
    if command:
        program = os.path.basename(command[0])
        if program in _LAUNCHER_COMMANDS:
            kinds.add(_LAUNCHER_COMMANDS[program])
        # python -m torch.distributed.run / torch.distributed.launch
        if "-m" in command[1:3] and any(a.startswith("torch.distributed.") for a in command[1:4]):
            kinds.add("torchrun")
    return [k for k in _KIND_ORDER if k in kinds]


def capture_launcher(command: Sequence[str], env: Mapping[str, str]) -> list[Row]:
    """Describe the launcher: its kind and its variables, redacted as env rows are.

    Args:
        command: the training command.
        env: the environment the command gets.

    Returns:
        A `launcher` row named kind ("slurm", "torchrun,kubernetes"-style when several,
        "none" when none), then one row per launcher variable.
    """
    kinds = launcher_kinds(command, env)
    rows = [make_row("launcher", "kind", ",".join(kinds) or "none")]
    for name in sorted(n for n in env if is_launcher_variable(n, env)):
        value, reason = redact_value(name, env[name])
        rows.append(make_row("launcher", name, value, "redacted" if reason else "ok", reason))
    return rows
