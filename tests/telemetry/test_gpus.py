"""GPU readings: nvidia-smi's CSV for the samples table, and its failures, through a fake
`nvidia-smi` executable on PATH."""

from __future__ import annotations

import pytest
from helpers import uses_nvidia_smi

from logbook.telemetry.gpus import (
    SAMPLE_FIELDS,
    GpuUnavailable,
    SmiReader,
    open_reader,
    parse_gpu_samples,
)

from .conftest import FakeSmi

# `nvidia-smi --query-gpu=<SAMPLE_FIELDS> --format=csv,noheader,nounits` on an 8x H100 80GB HBM3
# node (ecosystem.md 1.2: ", " between values, `[N/A]` for what a GPU does not report, 81559 MiB
# per GPU as in the wilicc/gpu-burn#114 table). GPU 5 is idle with ECC off; GPU 7 cannot read
# its power sensor.
EIGHT_H100 = """\
0, 100, 72790, 81559, 512.43, 39, 1980, 2619, 0, 0
1, 98, 72790, 81559, 498.12, 41, 1980, 2619, 0, 0
2, 100, 72792, 81559, 530.77, 44, 1980, 2619, 3, 0
3, 97, 72790, 81559, 505.01, 40, 1965, 2619, 0, 0
4, 100, 72790, 81559, 521.90, 43, 1980, 2619, 0, 0
5, 0, 4, 81559, 69.85, 31, 345, 2619, [N/A], [N/A]
6, 99, 72790, 81559, 515.36, 42, 1980, 2619, 0, 0
7, 100, 72790, 81559, [N/A], 45, 1980, 2619, {ECC}, 0
"""
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)


def test_sample_fields_are_the_query_of_the_issue() -> None:
    assert ",".join(SAMPLE_FIELDS) == (
        "index,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu,clocks.sm,"
        "clocks.mem,ecc.errors.corrected.volatile.total,ecc.errors.uncorrected.volatile.total"
    )


def test_parse_eight_gpus() -> None:
    rows = parse_gpu_samples(EIGHT_H100.replace("{ECC}", "0"))
    assert [r["gpu_index"] for r in rows] == list(range(8))
    assert rows[0] == {
        "gpu_index": 0,
        "gpu_util_pct": 100.0,
        "gpu_mem_used_bytes": 72790 * 2**20,
        "gpu_mem_total_bytes": 81559 * 2**20,
        "power_w": 512.43,
        "energy_j": None,
        "temperature_c": 39.0,
        "sm_clock_mhz": 1980.0,
        "mem_clock_mhz": 2619.0,
        "ecc_corrected": 0,
        "ecc_uncorrected": 0,
    }
    assert rows[2]["ecc_corrected"] == 3
    assert (rows[5]["ecc_corrected"], rows[5]["ecc_uncorrected"]) == (None, None)
    assert rows[5]["gpu_mem_used_bytes"] == 4 * 2**20
    assert rows[7]["power_w"] is None


def test_parse_other_markers() -> None:
    text = "0, [Not Supported], 7979, 7979, 176.98, 45, 1965, 7199, [Unknown Error], N/A\n"
    (row,) = parse_gpu_samples(text)
    assert row["gpu_util_pct"] is None and row["ecc_corrected"] is None
    assert row["ecc_uncorrected"] is None and row["power_w"] == 176.98


@pytest.mark.parametrize("text", ["No devices were found\n", NO_DRIVER])
def test_parse_refuses_failure_texts(text: str) -> None:
    with pytest.raises(ValueError, match="unexpected nvidia-smi output"):
        parse_gpu_samples(text)


def test_reader_runs_nvidia_smi_with_the_query(fake_smi: FakeSmi) -> None:
    fake_smi.set(EIGHT_H100).ecc_file.write_text("5")
    rows = SmiReader(fake_smi.env).read()
    assert len(rows) == 8 and rows[7]["ecc_corrected"] == 5
    assert fake_smi.calls() == [
        "--query-gpu=" + ",".join(SAMPLE_FIELDS) + " --format=csv,noheader,nounits"
    ]


def test_no_devices(fake_smi: FakeSmi) -> None:
    fake_smi.set("No devices were found\n", 6)  # exit 6: "query ... was unsuccessful" (man page)
    with pytest.raises(GpuUnavailable) as e:
        SmiReader(fake_smi.env).read()
    assert e.value.severity == "info" and e.value.code == 6 and not e.value.hardware
    assert e.value.reason == "nvidia-smi: No devices were found (exit 6)"


def test_driver_not_loaded(fake_smi: FakeSmi) -> None:
    fake_smi.set(NO_DRIVER, 9)
    with pytest.raises(GpuUnavailable) as e:
        SmiReader(fake_smi.env).read()
    assert e.value.severity == "warning" and e.value.code == 9 and not e.value.hardware
    assert e.value.reason.startswith("nvidia-smi failed (exit 9, NVIDIA driver is not loaded): ")
    assert "couldn't communicate with the NVIDIA driver" in e.value.reason


def test_gpu_off_the_bus_is_hardware_evidence(fake_smi: FakeSmi) -> None:
    fake_smi.set("Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error\n", 15)
    with pytest.raises(GpuUnavailable) as e:
        SmiReader(fake_smi.env).read()
    assert e.value.hardware and "GPU has fallen off the bus" in e.value.reason


def test_output_that_is_not_csv(fake_smi: FakeSmi) -> None:
    fake_smi.set("Failed to initialize NVML: Driver/library version mismatch\n", 0)
    with pytest.raises(GpuUnavailable, match="printed no readings: Failed to initialize NVML"):
        SmiReader(fake_smi.env).read()


def test_no_nvidia_smi_on_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GpuUnavailable) as e:
        SmiReader({"PATH": str(tmp_path)})
    assert e.value.severity == "info" and e.value.reason == "nvidia-smi not found on PATH"


@uses_nvidia_smi
def test_open_reader_falls_back_to_nvidia_smi(fake_smi: FakeSmi, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reader, first = open_reader(fake_smi.set(EIGHT_H100).env)
    assert reader.source == "nvidia-smi" and len(first) == 8
    assert len(fake_smi.calls()) == 1  # the first reading is the probe: no second call
    with pytest.raises(GpuUnavailable) as e:
        open_reader({"PATH": str(tmp_path)})
    assert e.value.reason.startswith("nvidia-smi not found on PATH; NVML: ")
