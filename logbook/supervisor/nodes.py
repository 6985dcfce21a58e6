"""The hosts of one launch. When a scheduler starts `logbook run` on several hosts at once (srun
over N nodes, an indexed Kubernetes Job with LOGBOOK_LAUNCH_ID), their wrappers record one attempt.

Each wrapper is a node, ranked by the scheduler. They agree on the attempt's id without talking to
each other: it is derived from the run, the launch key the scheduler gives them all, and the
restart count. Node 0, the leader, places the attempt in the lineage, writes its row, snapshots the
settings and runs the hooks, as a lone wrapper does. Every node, the leader too, writes a `nodes`
row (its host, how its command ended), its launch snapshot, its samples, its events and when it saw
each step (`node_steps`, for stragglers), each with its host, so the run's GPU counts, GPU-hours and energy sum over the hosts.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from logbook.errors import ConfigError

if TYPE_CHECKING:
    from logbook.store import Store


@dataclass(frozen=True)
class Node:
    """This wrapper's place in a launch over several hosts."""

    launch: str  # the key every wrapper of the launch shares
    rank: int  # 0 leads
    size: int | None  # how many wrappers, when the scheduler says
    source: str  # what gave the key: LOGBOOK_LAUNCH_ID, slurm, torchelastic

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def attempt_id(self, run: str, restart_count: int) -> str:
        """The same on every host: 32 hex digits, like the uuid4 of a lone wrapper's attempt."""
        key = f"logbook-node\0{run}\0{self.launch}\0{restart_count}".encode()
        return hashlib.sha256(key).hexdigest()[:32]


def host_name(env: Mapping[str, str] | None = None) -> str:
    """The host's name as recorded: LOGBOOK_HOST (a pod's node, a name to publish), else the
    hostname."""
    return (env if env is not None else os.environ).get("LOGBOOK_HOST") or socket.gethostname()


def node_of(env: Mapping[str, str]) -> Node | None:
    """This wrapper's node in a launch over several hosts; None when it runs alone.

    The launch key, the first that applies: LOGBOOK_LAUNCH_ID (rank LOGBOOK_NODE_RANK, else the
    scheduler's); an srun step of several tasks (SLURM_JOB_ID, SLURM_STEP_ID and the requeue count;
    rank SLURM_PROCID, or RANK for a torchrun worker the task spawned); a torchrun worker (TORCHELASTIC_RUN_ID unless torchrun's default "none",
    and its restart count; rank RANK). The batch script of a SLURM job is no step: it runs alone.

    Raises:
        ConfigError: LOGBOOK_LAUNCH_ID without a rank, or a rank that is not a number in range.
    """
    explicit = env.get("LOGBOOK_LAUNCH_ID", "").strip()
    if explicit:
        rank = _int(env, "LOGBOOK_NODE_RANK", strict=True)
        if rank is None:
            rank = next(
                (r for r in (_int(env, n) for n in _RANKS) if r is not None),
                None,
            )
        if rank is None:
            raise ConfigError(
                "LOGBOOK_LAUNCH_ID is set, but not this host's rank in the launch",
                hint="set LOGBOOK_NODE_RANK: 0 on the host that leads, 1, 2 ... on the others",
            )
        size = _int(env, "LOGBOOK_NODES", strict=True)
        return _checked(Node(explicit, rank, size, "LOGBOOK_LAUNCH_ID"))
    job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    step = env.get("SLURM_STEP_ID") or env.get("SLURM_STEPID")
    tasks = _int(env, "SLURM_STEP_NUM_TASKS") or _int(env, "SLURM_NTASKS")
    rank = _int(env, "SLURM_PROCID")
    if job and step and tasks and tasks > 1 and rank is not None:
        requeued = env.get("SLURM_RESTART_COUNT") or "0"
        key = f"slurm:{job}.{step}:{requeued}"
        world, worker = _int(env, "WORLD_SIZE"), _int(env, "RANK")
        if env.get("TORCHELASTIC_RUN_ID") and world and worker is not None:
            # A torchrun worker inside an srun task: every worker the task spawned shares its
            # SLURM_PROCID, so the worker's own RANK tells them apart; a restart of the worker
            # group is a new launch.
            restarts = env.get("TORCHELASTIC_RESTART_COUNT") or "0"
            return _checked(Node(f"{key}:{restarts}", worker, world, "slurm+torchelastic"))
        return _checked(Node(key, rank, tasks, "slurm"))
    run_id = env.get("TORCHELASTIC_RUN_ID")
    world, rank = _int(env, "WORLD_SIZE"), _int(env, "RANK")
    if run_id and run_id != "none" and world and world > 1 and rank is not None:
        restarts = env.get("TORCHELASTIC_RESTART_COUNT") or "0"
        return _checked(Node(f"torchelastic:{run_id}:{restarts}", rank, world, "torchelastic"))
    return None


def first_on_host(env: Mapping[str, str]) -> bool:
    """Whether this wrapper is the first of its launch on its host (LOCAL_RANK or SLURM_LOCALID
    0, or unset): the one that samples the host and its GPUs when a launch wraps every worker."""
    local = _int(env, "LOCAL_RANK")
    if local is None:
        local = _int(env, "SLURM_LOCALID")
    return not local


def launch_used(store: Store, run: str, attempt_id: str, rank: int) -> bool:
    """Whether this rank has already taken part in the attempt a launch key gives: the key was
    reused (a LOGBOOK_LAUNCH_ID given twice), and this launch must not write into that attempt.

    The attempt having ended is no sign: on a loaded cluster a host's wrapper can start after the
    leader's command has already ended, and it still belongs to the launch (#18: 31 attempts for
    one launch of 128 wrappers on two cores). Only the same rank twice is a second launch."""
    rows = store.read("nodes", run=run).select(["attempt_id", "node"]).to_pylist()
    return any(r["attempt_id"] == attempt_id and r["node"] == rank for r in rows)


# A wrapper's rank when LOGBOOK_LAUNCH_ID gives no LOGBOOK_NODE_RANK: the scheduler's, if any.
_RANKS = ("SLURM_PROCID", "JOB_COMPLETION_INDEX", "GROUP_RANK", "RANK", "OMPI_COMM_WORLD_RANK")


def _int(env: Mapping[str, str], name: str, *, strict: bool = False) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        if strict:
            raise ConfigError(
                f"{name}={text!r} is not a whole number", hint=f"set {name} to 0, 1, 2 ..."
            ) from None
        return None  # a scheduler's odd value: run alone rather than guess


def _checked(node: Node) -> Node:
    if node.rank < 0 or (node.size is not None and node.rank >= node.size):
        raise ConfigError(
            f"node rank {node.rank} is out of range"
            + (f" for {node.size} nodes" if node.size is not None else ""),
            hint="ranks run from 0 (the leader) to the number of nodes - 1",
        )
    return node
