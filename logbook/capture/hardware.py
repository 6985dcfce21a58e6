"""Host and GPU inventory at launch."""

from __future__ import annotations

import getpass
import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from logbook.capture._row import Row, make_row, unknown

GPU_QUERY_FIELDS = ("index", "name", "uuid", "memory.total", "driver_version", "pci.bus_id")
NVIDIA_SMI_TIMEOUT_S = 10.0
# nvidia-smi prints these in place of a value it cannot read ([N/A], [Not Supported],
# [Unknown Error], [Insufficient Permissions], ...): every bracketed value is a marker.
_NULL_VALUES = frozenset({"N/A", ""})
# nvidia-smi exit codes (man page, RETURN VALUE), to say more than "exit 9".
_SMI_EXIT_MEANINGS = {
    2: "invalid argument or field",
    3: "operation not available on this device",
    4: "no permission",
    6: "query found no such object",
    8: "external power cables not attached",
    9: "NVIDIA driver is not loaded",
    10: "kernel detected an interrupt issue with a GPU",
    12: "NVML shared library not found",
    13: "local NVML does not implement this function",
    14: "infoROM is corrupted",
    15: "GPU has fallen off the bus or is inaccessible",
    255: "other or internal driver error",
}


def _guarded(name: str, func: Callable[[], Any]) -> Row:
    """Read one host value; a failure becomes an unknown row with the reason."""
    try:
        value = func()
    except Exception as exc:  # noqa: BLE001 - one unreadable value must not hide the rest
        return unknown("host", name, f"{type(exc).__name__}: {exc}")
    if value is None:
        return unknown("host", name, "not reported by the operating system")
    return make_row("host", name, str(value))


def _cpu_model() -> str:
    """CPU model from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                # "model name" on x86, "Model" or "Hardware" on some ARM boards.
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cores() -> int | None:
    """CPUs this process may run on (a SLURM or cgroup slice of the machine)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else None


def capture_host() -> list[Row]:
    """Describe the machine: hostname, OS, kernel, CPU, memory and user.

    Returns:
        `host` rows named hostname, os, kernel, cpu_model, cpu_cores_logical,
        cpu_cores_physical, cpu_cores_usable, memory_bytes and user.
    """
    import psutil  # ~20 ms; only when a snapshot is taken

    return [
        _guarded("hostname", socket.gethostname),
        _guarded("os", platform.platform),
        _guarded("kernel", platform.release),
        _guarded("cpu_model", _cpu_model),
        _guarded("cpu_cores_logical", lambda: psutil.cpu_count(logical=True)),
        _guarded("cpu_cores_physical", lambda: psutil.cpu_count(logical=False)),
        _guarded("cpu_cores_usable", _usable_cores),
        _guarded("memory_bytes", lambda: psutil.virtual_memory().total),
        _guarded("user", getpass.getuser),
    ]


def parse_nvidia_smi_csv(
    text: str, fields: Sequence[str] = GPU_QUERY_FIELDS
) -> list[dict[str, str | None]]:
    """Parse `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` output.

    Values are separated by ", " (GPU names contain spaces); markers such as `[N/A]`,
    `N/A`, `[Not Supported]` and `[Unknown Error]` become None. A header line, if
    present, is skipped.

    Args:
        text: the command's standard output.
        fields: the queried fields, in order.

    Returns:
        One dict per GPU, field name to value (or None).

    Raises:
        ValueError: a line does not have one value per field (for example a failure
            message such as "No devices were found").
    """
    gpus: list[dict[str, str | None]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = [v.strip() for v in line.split(", ")]
        if len(values) != len(fields):
            raise ValueError(f"unexpected nvidia-smi output: {line.strip()!r}")
        if [v.split(" [")[0] for v in values] == list(fields):
            continue  # the header of --format=csv without noheader
        gpus.append(
            {
                field: None if value in _NULL_VALUES or value.startswith("[") else value
                for field, value in zip(fields, values, strict=True)
            }
        )
    return gpus


def _nvml_gpus() -> tuple[str | None, list[dict[str, str | None]]]:
    """Read the GPUs through NVML (package nvidia-ml-py).

    Raises:
        ImportError: nvidia-ml-py is not installed.
        pynvml.NVMLError: no driver, no library, or another NVML failure.
    """
    import pynvml

    pynvml.nvmlInit()
    try:

        def text(value: Any) -> str:
            # Old bindings return bytes.
            return value.decode() if isinstance(value, bytes) else str(value)

        driver = text(pynvml.nvmlSystemGetDriverVersion())
        gpus: list[dict[str, str | None]] = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append(
                {
                    "index": str(index),
                    "name": text(pynvml.nvmlDeviceGetName(handle)),
                    "uuid": text(pynvml.nvmlDeviceGetUUID(handle)),
                    "memory.total": str(pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20),
                    "pci.bus_id": text(pynvml.nvmlDeviceGetPciInfo(handle).busId),
                }
            )
        return driver, gpus
    finally:
        pynvml.nvmlShutdown()


def _smi_gpus(env: Mapping[str, str]) -> tuple[str | None, list[dict[str, str | None]]]:
    """Read the GPUs through nvidia-smi, found on the command's PATH.

    Raises:
        FileNotFoundError: no nvidia-smi on PATH.
        RuntimeError: nvidia-smi failed; the message is its own output.
    """
    smi = shutil.which("nvidia-smi", path=env.get("PATH", os.defpath))
    if smi is None:
        raise FileNotFoundError("nvidia-smi not found on PATH")
    done = subprocess.run(
        [smi, "--query-gpu=" + ",".join(GPU_QUERY_FIELDS), "--format=csv,noheader,nounits"],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=NVIDIA_SMI_TIMEOUT_S,
        check=False,
    )
    output = " ".join((done.stdout + "\n" + done.stderr).split())
    if "No devices were found" in output:
        return None, []
    if done.returncode != 0:
        raise RuntimeError(
            f"nvidia-smi failed ({smi_exit(done.returncode)}): {output or 'no output'}"
        )
    try:
        gpus = parse_nvidia_smi_csv(done.stdout)
    except ValueError as exc:
        raise RuntimeError(f"nvidia-smi: {output}") from exc
    driver = gpus[0]["driver_version"] if gpus else None
    return driver, gpus


def smi_exit(code: int) -> str:
    """`exit 15, GPU has fallen off the bus or is inaccessible`: an nvidia-smi exit code and
    what its man page says it means."""
    meaning = _SMI_EXIT_MEANINGS.get(code)
    return f"exit {code}" + (f", {meaning}" if meaning else "")


def _gpu_rows(driver: str | None, gpus: list[dict[str, str | None]], source: str) -> list[Row]:
    """Turn a GPU list into rows: count, driver, then name/uuid/memory/bus id per GPU."""
    if not gpus:
        return [make_row("gpu", "count", "0", detail=f"{source}: No devices were found")]
    rows = [make_row("gpu", "count", str(len(gpus)))]
    rows.append(
        make_row("gpu", "driver", driver, detail=None if driver else f"not reported by {source}")
    )
    for position, gpu in enumerate(gpus):
        index = gpu.get("index") or str(position)
        for field, name in (
            ("name", "name"),
            ("uuid", "uuid"),
            ("memory.total", "memory_mib"),
            ("pci.bus_id", "pci_bus_id"),
        ):
            value = gpu.get(field)
            detail = None if value is not None else f"not reported by {source}"
            rows.append(make_row("gpu", f"{index}.{name}", value, detail=detail))
    return rows


def capture_gpus(env: Mapping[str, str]) -> list[Row]:
    """Describe the NVIDIA GPUs: NVML when nvidia-ml-py is installed, else nvidia-smi.

    Args:
        env: the command's environment (nvidia-smi is looked up on its PATH).

    Returns:
        `gpu` rows: count, driver, and `<index>.name`, `.uuid`, `.memory_mib`,
        `.pci_bus_id` per GPU; or a single count row, "0" when the driver sees no
        device, unknown with the reason when neither NVML nor nvidia-smi works.
    """
    try:
        return _gpu_rows(*_nvml_gpus(), source="NVML")
    except ImportError:
        nvml_problem = "NVML: nvidia-ml-py not installed"
    except Exception as exc:  # noqa: BLE001 - pynvml.NVMLError and friends
        nvml_problem = f"NVML: {exc}"
    try:
        return _gpu_rows(*_smi_gpus(env), source="nvidia-smi")
    except subprocess.TimeoutExpired:
        smi_problem = f"nvidia-smi did not answer within {NVIDIA_SMI_TIMEOUT_S:.0f} s"
    except Exception as exc:  # noqa: BLE001 - OSError, RuntimeError: all mean "unknown"
        smi_problem = str(exc)
    return [unknown("gpu", "count", f"{smi_problem}; {nvml_problem}")]
