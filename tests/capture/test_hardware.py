"""Tests for logbook.capture.hardware: host rows, and GPUs through fake nvidia-smi scripts."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import uses_nvidia_smi

from logbook.capture._row import Row
from logbook.capture.hardware import (
    GPU_QUERY_FIELDS,
    capture_gpus,
    capture_host,
    parse_nvidia_smi_csv,
)

FakeSmi = Callable[..., dict[str, str]]

# Real lines in the shape of ecosystem.md 1.2 (uuids and bus ids from nvidia-docker#1418,
# names and vbios from stas00/ml-engineering), for the query logbook sends.
THREE_GPUS = (
    "0, NVIDIA H100 80GB HBM3, GPU-edfee158-11c1-52b8-0517-92f30e7fac88, 81559, 550.90.07, "
    "00000000:06:00.0\n"
    "1, NVIDIA H100 80GB HBM3, GPU-f22fb098-d1b3-3806-2655-ba25f02229c1, 81559, 550.90.07, "
    "00000000:07:00.0\n"
    "2, GeForce RTX 2080, GPU-22b2c6ac-2d49-4863-197c-9c469071178a, [N/A], 550.90.07, "
    "00000000:0A:00.0\n"
)
NVML_MISMATCH = "Failed to initialize NVML: Driver/library version mismatch\n"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)


def by_name(rows: list[Row]) -> dict[str, Row]:
    return {row["name"]: row for row in rows}


def test_host_rows() -> None:
    rows = by_name(capture_host())
    assert list(rows) == [
        "hostname",
        "os",
        "kernel",
        "cpu_model",
        "cpu_cores_logical",
        "cpu_cores_physical",
        "cpu_cores_usable",
        "memory_bytes",
        "user",
    ]
    assert all(row["kind"] == "host" for row in rows.values())
    assert rows["hostname"]["value"] == socket.gethostname()
    assert rows["cpu_cores_logical"]["value"] == str(psutil.cpu_count())
    assert rows["memory_bytes"]["value"] == str(psutil.virtual_memory().total)
    assert rows["cpu_model"]["value"]
    assert int(rows["cpu_cores_usable"]["value"] or 0) >= 1


def test_parse_csv() -> None:
    gpus = parse_nvidia_smi_csv(THREE_GPUS)
    assert len(gpus) == 3
    assert gpus[0] == {
        "index": "0",
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-edfee158-11c1-52b8-0517-92f30e7fac88",
        "memory.total": "81559",
        "driver_version": "550.90.07",
        "pci.bus_id": "00000000:06:00.0",
    }
    assert gpus[2]["name"] == "GeForce RTX 2080"
    assert gpus[2]["memory.total"] is None


def test_parse_csv_markers_header_and_other_fields() -> None:
    fields = ("power.draw", "temperature.memory", "utilization.gpu", "ecc.mode.current")
    text = (
        "power.draw [W], temperature.memory, utilization.gpu [%], ecc.mode.current\n"
        "176.98, N/A, [Not Supported], [Unknown Error]\n\n"
    )
    assert parse_nvidia_smi_csv(text, fields) == [
        {
            "power.draw": "176.98",
            "temperature.memory": None,
            "utilization.gpu": None,
            "ecc.mode.current": None,
        }
    ]


@pytest.mark.parametrize("text", ["No devices were found", NVML_MISMATCH, "1, 2\n"])
def test_parse_csv_rejects_other_output(text: str) -> None:
    with pytest.raises(ValueError, match="unexpected nvidia-smi output"):
        parse_nvidia_smi_csv(text)


@uses_nvidia_smi
def test_several_gpus(fake_nvidia_smi: FakeSmi) -> None:
    rows = capture_gpus(fake_nvidia_smi(THREE_GPUS))
    values = {row["name"]: row["value"] for row in rows}
    assert all(row["kind"] == "gpu" for row in rows)
    assert values["count"] == "3"
    assert values["driver"] == "550.90.07"
    assert values["0.name"] == "NVIDIA H100 80GB HBM3"
    assert values["1.uuid"] == "GPU-f22fb098-d1b3-3806-2655-ba25f02229c1"
    assert values["0.memory_mib"] == "81559"
    assert values["2.pci_bus_id"] == "00000000:0A:00.0"
    assert len(rows) == 2 + 3 * 4
    missing = by_name(rows)["2.memory_mib"]
    assert (missing["value"], missing["status"]) == (None, "unknown")
    assert missing["detail"] == "not reported by nvidia-smi"


@uses_nvidia_smi
def test_no_devices(fake_nvidia_smi: FakeSmi) -> None:
    rows = capture_gpus(fake_nvidia_smi("No devices were found\n", 6))
    assert rows == [
        {
            "kind": "gpu",
            "name": "count",
            "value": "0",
            "status": "ok",
            "detail": "nvidia-smi: No devices were found",
        }
    ]


@uses_nvidia_smi
@pytest.mark.parametrize(
    ("output", "code", "expected"),
    [
        (NVML_MISMATCH, 18, "nvidia-smi failed (exit 18): " + NVML_MISMATCH.strip()),
        (
            NO_DRIVER,
            9,
            "nvidia-smi failed (exit 9, NVIDIA driver is not loaded): " + NO_DRIVER.strip(),
        ),
        ("", 255, "nvidia-smi failed (exit 255, other or internal driver error): no output"),
        (NVML_MISMATCH, 0, "nvidia-smi: " + NVML_MISMATCH.strip()),
    ],
)
def test_failures(fake_nvidia_smi: FakeSmi, output: str, code: int, expected: str) -> None:
    rows = capture_gpus(fake_nvidia_smi(output, code))
    assert len(rows) == 1
    row = rows[0]
    assert (row["kind"], row["name"], row["value"], row["status"]) == (
        "gpu",
        "count",
        None,
        "unknown",
    )
    assert row["detail"] is not None
    assert row["detail"].startswith(expected + "; NVML: ")


@pytest.mark.parametrize("env", [{"PATH": ""}, {}])
@uses_nvidia_smi
def test_no_nvidia_smi(tmp_path: Path, env: dict[str, str]) -> None:
    if env:
        env = {"PATH": str(tmp_path)}  # an existing directory without nvidia-smi
    rows = capture_gpus(env)
    assert [(r["name"], r["status"]) for r in rows] == [("count", "unknown")]
    assert rows[0]["detail"] == "nvidia-smi not found on PATH; NVML: nvidia-ml-py not installed"


def test_query_fields_are_the_documented_ones() -> None:
    assert GPU_QUERY_FIELDS == (
        "index",
        "name",
        "uuid",
        "memory.total",
        "driver_version",
        "pci.bus_id",
    )
