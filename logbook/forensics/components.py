"""The second level of cause (#19): which part of the system an attempt's end came from, whether
the end was planned, and whether its relaunch was automatic or by hand.

The crash class says what kind of failure it was (gpu_hardware, communication, ...); the component
says which part failed (hbm, nvlink, network, ...), in the grain of the Llama 3 405B report's
Table 5. Each shipped crash rule names its component in `crash_rules.toml`; that file's `[xid]`
table maps Xid numbers to components (for the Xid lines and ECC rises the telemetry sees), and its
`[reason]` table gives the component of ends that no rule decided (a traceback, SIGKILL, a stop).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

COMPONENTS: dict[str, str] = {
    "gpu": "faulty GPU (off the bus, launch failures, other Xid faults)",
    "hbm": "GPU HBM memory (uncorrectable ECC, row remapping)",
    "sram": "GPU SRAM (on-chip ECC)",
    "gpu_system_processor": "GPU system processor (GSP)",
    "nvlink": "NVLink / NVSwitch",
    "thermal": "GPU thermal interface and sensors",
    "silent_data_corruption": "silent data corruption",
    "network": "network switch and cable",
    "nic": "network interface card",
    "nccl_watchdog": "NCCL watchdog timeout (the part that stalled not known)",
    "host_cpu": "host CPU",
    "host_memory": "host system memory",
    "storage": "storage: SSD, disk, network file system",
    "power": "power supply",
    "server_chassis": "server chassis",
    "io_expansion_board": "IO expansion board",
    "node": "a node failed (the scheduler's NODE_FAIL: which part not known)",
    "software_bug": "software bug (the training code, a library, the framework)",
    "dependency": "dependency (a missing or broken package, a service the job needs)",
    "data": "training data or checkpoint (corrupt, missing, unreadable)",
    "numerical": "numerics (NaN/inf loss, loss-scale collapse)",
    "maintenance": "maintenance or the scheduler (preemption, time limit, requeue, host maintenance)",
    "user": "the job's own settings or its owner (out of memory, bad arguments, a stop by hand)",
}
"""Component names (snake_case) and what each covers, in the order reports list them."""

HANDLED = ("automatic", "manual")
"""How an interruption was handled: relaunched by logbook's restart policy, or by a person."""

PLANNED_STATUSES = ("interrupted", "preempted")
"""Statuses of a planned end: a person or a scheduler stopped the training."""
UNEXPECTED_STATUSES = ("crashed", "hung", "lost")
"""Statuses of an unexpected end."""

_XID = re.compile(r"\bXid (\d+)\b")


def planned_of(status: str | None, rule_planned: bool | None = None) -> bool | None:
    """Whether an end with `status` was planned: a stop (interrupted, preempted) is; a crash, a
    hang or a lost wrapper is not; a completed, running or `ended` attempt: unknown (None). A
    rule's own `planned` wins."""
    if rule_planned is not None:
        return rule_planned
    if status in PLANNED_STATUSES:
        return True
    if status in UNEXPECTED_STATUSES:
        return False
    return None


def component_of(status: str, rule: str | None, rule_component: str | None) -> str | None:
    """The component of an end: the deciding rule's, else the `[reason]` table's for the status or
    the code reason (`crash_rules.toml`), else unknown (None)."""
    if status in ("completed", "running"):
        return None
    if rule_component is not None:
        return rule_component
    reasons = _tables()["reason"]
    for key in (f"{status}:{rule}", rule or "", status):
        found = reasons.get(key)
        if found is not None:
            return found.get("component") or None
    return None


def component_of_faults(faults: Iterable[str]) -> str | None:
    """The component of the first hardware fault the telemetry saw in an attempt ("Xid 79 on ...",
    "GPU 0: uncorrected ECC errors rose from 0 to 2", "GPU fault: ..."): by the `[xid]` table."""
    xids = _tables()["xid"]
    for fault in faults:
        m = _XID.search(fault)
        if m is not None:
            found = xids.get(m.group(1))
            return (found or {}).get("component") or "gpu"
        if "ECC errors rose" in fault:
            return str(_tables()["reason"]["ecc-rise"]["component"])
        if fault.startswith("GPU fault"):
            return "gpu"
    return None


def xid_component(xid: int) -> str | None:
    """The component the `[xid]` table gives an Xid number, or None when it has none."""
    return (_tables()["xid"].get(str(xid)) or {}).get("component") or None


def rule_keys() -> dict[str, str]:
    """The components `component_of` would give, by key, for rows recorded before there were
    components (attempts v3): "rule:<shipped rule id>", then the `[reason]` table's keys
    ("status:reason", reason, status). Ids and keys are kebab-case, components snake_case.
    From the rules file's tables as they are: the rules' regular expressions are not compiled,
    a twentieth of a second of every `incidents --by cause` (#19)."""
    tables = _tables()
    keys = {f"rule:{r['id']}": r["component"] for r in tables.get("rule", []) if r.get("component")}
    for key, found in tables["reason"].items():
        if found.get("component"):
            keys[key] = found["component"]
    return {k: c for k, c in keys.items() if "'" not in k}


@lru_cache(maxsize=1)
def _tables() -> dict[str, Any]:
    from logbook.forensics.rules import shipped_file

    data = shipped_file()
    return {
        "xid": data.get("xid", {}),
        "reason": data.get("reason", {}),
        "rule": data.get("rule", []),
    }
