"""What a GPU machine would have put on record, written through the real `Store.write` (this
machine has no GPU): launch snapshots and telemetry samples, with times from T0."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from logbook.store import Store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
H100 = "NVIDIA H100 80GB HBM3"
TIB = 1 << 40


def at(seconds: float) -> str:
    """T0 plus `seconds`, as the import format writes times."""
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def snapshot(store: Store, run: str, attempt_id: str, rows: Iterable[tuple[str, str, Any]]) -> None:
    """Launch snapshot rows (kind, name, value) of one attempt; a None value is unknown."""
    store.write(
        "snapshots",
        run,
        [
            {"attempt_id": attempt_id, "time": T0, "kind": kind, "name": name,
             "value": None if value is None else str(value),
             "status": "unknown" if value is None else "ok", "detail": None}
            for kind, name, value in rows
        ],
    )  # fmt: skip


def gpu_box(
    store: Store,
    run: str,
    attempt_id: str,
    *,
    gpus: int = 8,
    name: str = H100,
    memory: int = 2 * TIB,
) -> None:
    """What the inventory records on a GPU machine: count, names, host memory."""
    rows = [("gpu", "count", gpus), ("host", "memory_bytes", memory)]
    rows += [("gpu", f"{i}.name", name) for i in range(gpus)]
    snapshot(store, run, attempt_id, rows)


def gpu_samples(
    store: Store,
    run: str,
    attempt_id: str,
    *,
    start: float,
    seconds: float,
    every: float = 10.0,
    gpus: int = 8,
    power: Callable[[float], float | None] = lambda t: 700.0,
    energy: bool = True,
) -> None:
    """GPU rows every `every` seconds from `start` to `start + seconds`, both included: power as
    `power(t)` says, and NVML's energy counter as its exact integral (when `energy`); plus one host
    row per reading, as the sampler writes."""
    rows = []
    steps = round(seconds / every)
    for g in range(gpus):
        joules = 1e9 + g  # since driver load
        for k in range(steps + 1):
            t = k * every
            if k:
                prev = power(t - every)
                joules += (prev or 0.0) * every
            rows.append(
                {"attempt_id": attempt_id, "time": T0 + timedelta(seconds=start + t),
                 "host": "gpu-node", "scope": "gpu", "gpu_index": g, "power_w": power(t),
                 "energy_j": joules if energy else None, "gpu_util_pct": 99.0}
            )  # fmt: skip
    for k in range(steps + 1):
        rows.append(
            {"attempt_id": attempt_id, "time": T0 + timedelta(seconds=start + k * every),
             "host": "gpu-node", "scope": "host", "cpu_pct": 50.0, "mem_total_bytes": 2 * TIB}
        )  # fmt: skip
    store.write("samples", run, rows)
