"""GPU readings for the samples table: NVML (package nvidia-ml-py) when it works, else nvidia-smi.

A reader is opened once per attempt. When neither source answers, `open_reader` raises
`GpuUnavailable` with the reason, and the sampler stops asking: no nvidia-smi every tick on
a machine that has none, or whose driver is gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from logbook.capture.hardware import (
    NVIDIA_SMI_TIMEOUT_S,
    parse_nvidia_smi_csv,
    smi_exit,
)

SAMPLE_FIELDS = (
    "index",
    "utilization.gpu",
    "memory.used",
    "memory.total",
    "power.draw",
    "temperature.gpu",
    "clocks.sm",
    "clocks.mem",
    "ecc.errors.corrected.volatile.total",
    "ecc.errors.uncorrected.volatile.total",
)
# nvidia-smi exit codes that are evidence of a hardware fault rather than of a monitoring problem
# (ecosystem.md 1.3): power cables, an interrupt issue, a corrupt infoROM, a GPU off the bus.
HARDWARE_EXIT_CODES = frozenset({8, 10, 14, 15})
# NVML return codes of the same kind: IRQ issue, corrupted infoROM, GPU lost, reset required.
_NVML_HARDWARE_CODES = frozenset({11, 14, 15, 16})
_MIB = 1 << 20

GpuRow = dict[str, Any]  # samples columns of one GPU: gpu_index, gpu_util_pct, ...


class GpuUnavailable(Exception):
    """No GPU readings: the reason, whether it is worth a warning, and hardware evidence if any.

    Attributes:
        reason: one line, e.g. "nvidia-smi failed (exit 9, NVIDIA driver is not loaded): ...".
        severity: "info" where there is simply no NVIDIA GPU or tool, "warning" where a tool is
            there but fails.
        hardware: the failure itself points at the hardware (a GPU fell off the bus).
        code: nvidia-smi's exit code or NVML's return code, when there is one.
    """

    def __init__(
        self,
        reason: str,
        *,
        severity: str = "warning",
        hardware: bool = False,
        code: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.severity = severity
        self.hardware = hardware
        self.code = code


class GpuReader(Protocol):
    source: str

    def read(self) -> list[GpuRow]: ...

    def close(self) -> None: ...


def _number(value: str | None, cast: Callable[[float], Any] = float) -> Any:
    if value is None:
        return None
    try:
        return cast(float(value))
    except ValueError:
        return None


def parse_gpu_samples(text: str) -> list[GpuRow]:
    """Parse `nvidia-smi --query-gpu=<SAMPLE_FIELDS> --format=csv,noheader,nounits` output.

    Args:
        text: the command's standard output.

    Returns:
        One row per GPU with samples columns (memory in bytes); markers such as `[N/A]` are None.

    Raises:
        ValueError: a line is not one value per field ("No devices were found", an NVML error).
    """
    rows = []
    for gpu in parse_nvidia_smi_csv(text, SAMPLE_FIELDS):
        used, total = _number(gpu["memory.used"]), _number(gpu["memory.total"])
        rows.append(
            {
                "gpu_index": _number(gpu["index"], int),
                "gpu_util_pct": _number(gpu["utilization.gpu"]),
                "gpu_mem_used_bytes": None if used is None else int(used * _MIB),
                "gpu_mem_total_bytes": None if total is None else int(total * _MIB),
                "power_w": _number(gpu["power.draw"]),
                "energy_j": None,  # nvidia-smi has no energy counter field; NVML does
                "temperature_c": _number(gpu["temperature.gpu"]),
                "sm_clock_mhz": _number(gpu["clocks.sm"]),
                "mem_clock_mhz": _number(gpu["clocks.mem"]),
                "ecc_corrected": _number(gpu["ecc.errors.corrected.volatile.total"], int),
                "ecc_uncorrected": _number(gpu["ecc.errors.uncorrected.volatile.total"], int),
            }
        )
    return rows


class SmiReader:
    """GPU readings from one `nvidia-smi --query-gpu` call per tick."""

    source = "nvidia-smi"

    def __init__(self, env: Mapping[str, str], timeout_s: float = NVIDIA_SMI_TIMEOUT_S) -> None:
        """Find nvidia-smi on the command's PATH.

        Raises:
            GpuUnavailable: there is none.
        """
        smi = shutil.which("nvidia-smi", path=env.get("PATH", os.defpath))
        if smi is None:
            raise GpuUnavailable("nvidia-smi not found on PATH", severity="info")
        self.argv = [smi, "--query-gpu=" + ",".join(SAMPLE_FIELDS), "--format=csv,noheader,nounits"]
        self.env = dict(env)
        self.timeout_s = timeout_s

    def read(self) -> list[GpuRow]:
        """One reading of every GPU.

        Raises:
            GpuUnavailable: nvidia-smi failed, timed out, found no device, or printed no CSV.
        """
        try:
            done = subprocess.run(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise GpuUnavailable(f"nvidia-smi did not answer within {self.timeout_s:g} s") from e
        except OSError as e:
            raise GpuUnavailable(f"nvidia-smi could not be run: {e}") from e
        output = " ".join((done.stdout + "\n" + done.stderr).split())
        if "No devices were found" in output:
            raise GpuUnavailable(
                f"nvidia-smi: No devices were found (exit {done.returncode})",
                severity="info",
                code=done.returncode,
            )
        if done.returncode != 0:
            raise GpuUnavailable(
                f"nvidia-smi failed ({smi_exit(done.returncode)}): {output[:500] or 'no output'}",
                hardware=done.returncode in HARDWARE_EXIT_CODES,
                code=done.returncode,
            )
        try:
            return parse_gpu_samples(done.stdout)
        except ValueError as e:
            raise GpuUnavailable(f"nvidia-smi printed no readings: {output[:500]}") from e

    def close(self) -> None:
        pass


class NvmlReader:
    """GPU readings through NVML: a few library calls per GPU, no process started."""

    source = "NVML"

    def __init__(self) -> None:
        """Initialise NVML and find the GPUs.

        Raises:
            ImportError: nvidia-ml-py is not installed.
            pynvml.NVMLError: no driver, no library, or another NVML failure.
        """
        import pynvml

        self.nvml = pynvml
        pynvml.nvmlInit()
        try:
            self.handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
        except Exception:
            pynvml.nvmlShutdown()
            raise
        self.unsupported: set[tuple[Any, ...]] = set()  # (gpu, call, args) NotSupported once

    def _get(self, index: int, handle: Any, call: str, *args: Any) -> Any:
        """pynvml.<call>(handle, *args), or None where the GPU does not report it."""
        key = (index, call, *args)
        if key in self.unsupported:
            return None
        try:
            return getattr(self.nvml, call)(handle, *args)
        except self.nvml.NVMLError as e:
            code = getattr(e, "value", None)
            if code in _NVML_HARDWARE_CODES:
                raise GpuUnavailable(f"NVML: GPU {index}: {e}", hardware=True, code=code) from e
            if code == self.nvml.NVML_ERROR_NOT_SUPPORTED:
                self.unsupported.add(key)  # ask no more: it will not change
            return None

    def read(self) -> list[GpuRow]:
        """One reading of every GPU.

        Raises:
            GpuUnavailable: a GPU is lost or needs a reset (hardware evidence).
        """
        n = self.nvml
        rows = []
        for i, h in enumerate(self.handles):
            util = self._get(i, h, "nvmlDeviceGetUtilizationRates")
            mem = self._get(i, h, "nvmlDeviceGetMemoryInfo")
            power = self._get(i, h, "nvmlDeviceGetPowerUsage")  # mW
            energy = self._get(i, h, "nvmlDeviceGetTotalEnergyConsumption")  # mJ since driver load
            temp = self._get(i, h, "nvmlDeviceGetTemperature", n.NVML_TEMPERATURE_GPU)
            sm = self._get(i, h, "nvmlDeviceGetClockInfo", n.NVML_CLOCK_SM)
            memclk = self._get(i, h, "nvmlDeviceGetClockInfo", n.NVML_CLOCK_MEM)
            ecc = [
                self._get(i, h, "nvmlDeviceGetTotalEccErrors", kind, n.NVML_VOLATILE_ECC)
                for kind in (
                    n.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                    n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                )
            ]
            rows.append(
                {
                    "gpu_index": i,
                    "gpu_util_pct": None if util is None else float(util.gpu),
                    "gpu_mem_used_bytes": None if mem is None else int(mem.used),
                    "gpu_mem_total_bytes": None if mem is None else int(mem.total),
                    "power_w": None if power is None else power / 1000.0,
                    "energy_j": None if energy is None else energy / 1000.0,
                    "temperature_c": None if temp is None else float(temp),
                    "sm_clock_mhz": None if sm is None else float(sm),
                    "mem_clock_mhz": None if memclk is None else float(memclk),
                    "ecc_corrected": None if ecc[0] is None else int(ecc[0]),
                    "ecc_uncorrected": None if ecc[1] is None else int(ecc[1]),
                }
            )
        return rows

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - nothing to do about it at the end
            pass


def open_reader(env: Mapping[str, str]) -> tuple[GpuReader, list[GpuRow]]:
    """The GPU source of this attempt, and its first reading: NVML if nvidia-ml-py is installed
    and works, else nvidia-smi.

    Args:
        env: the command's environment (nvidia-smi is looked up on its PATH).

    Raises:
        GpuUnavailable: neither answers, or they see no GPU; the reason names both sources.
    """
    nvml: NvmlReader | None = None
    try:
        nvml = NvmlReader()
    except ImportError:
        nvml_problem = "NVML: nvidia-ml-py not installed"
    except Exception as e:  # noqa: BLE001 - pynvml.NVMLError and friends
        nvml_problem = f"NVML: {e}"
    if nvml is not None:
        if not nvml.handles:
            nvml.close()
            raise GpuUnavailable("NVML: No devices were found", severity="info")
        try:
            return nvml, nvml.read()
        except GpuUnavailable:
            nvml.close()
            raise
    try:
        smi = SmiReader(env)
        return smi, smi.read()
    except GpuUnavailable as e:
        raise GpuUnavailable(
            f"{e.reason}; {nvml_problem}", severity=e.severity, hardware=e.hardware, code=e.code
        ) from e
