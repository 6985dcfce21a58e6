"""Energy in `logbook cost` (#5): the GPU energy counter, integrated power samples and the rated-power
estimate, each on figures worked out by hand; CPU and memory as codecarbon estimates them; PUE and
CO2; several hosts summed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cost.gpubox import H100, TIB, at, gpu_box, gpu_samples, snapshot
from logbook.cost import cost_report, resolve_settings
from logbook.store import Store

CPU_KWH_PER_H = 0.0425  # 50 % of 85 W: codecarbon for a CPU without a known TDP
RAM_KWH_PER_H_2TIB = 0.070  # 2 TiB: 16 DIMMs guessed, 4 × 5 W + 4 × 4.5 W + 8 × 4 W


def _by_attempt(table) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {r["attempt"]: r for r in table.to_pylist()}


@pytest.fixture
def three_ways(lineage, store_path: Path) -> Store:  # type: ignore[no-untyped-def]
    """Three one-hour attempts on 8 H100s at 700 W: the first with NVML's energy counter, the
    second with power readings only (nvidia-smi has no counter), the third with no samples."""
    ids = lineage(
        "e",
        [
            {"label": "1.00", "start": at(0), "end": at(3600), "status": "crashed"},
            {"label": "1.01", "start": at(4000), "end": at(7600), "status": "crashed"},
            {"label": "1.02", "start": at(8000), "end": at(11600), "status": "completed"},
        ],
    )
    store = Store(store_path)
    for aid in ids.values():
        gpu_box(store, "e", aid)
    gpu_samples(store, "e", ids["1.00"], start=0, seconds=3600)
    gpu_samples(store, "e", ids["1.01"], start=4000, seconds=3600, energy=False)
    return store


def test_counter_power_and_rated_power_each_give_8_gpus_at_700_w_for_an_hour(three_ways) -> None:  # type: ignore[no-untyped-def]
    rows = _by_attempt(cost_report(three_ways, "e"))
    # 8 GPUs × 700 W × 1 h = 5.6 kWh before PUE, whichever way it is found.
    for label in ("1.00", "1.01", "1.02"):
        assert rows[label]["gpus"] == 8
        assert rows[label]["gpu_h"] == pytest.approx(8.0)
        assert rows[label]["gpu_kwh"] == pytest.approx(5.6)
        assert rows[label]["cpu_kwh"] == pytest.approx(CPU_KWH_PER_H)
        assert rows[label]["ram_kwh"] == pytest.approx(RAM_KWH_PER_H_2TIB)
        it_kwh = 5.6 + CPU_KWH_PER_H + RAM_KWH_PER_H_2TIB
        assert rows[label]["energy_kwh"] == pytest.approx(it_kwh * 1.56)  # default PUE
        assert rows[label]["co2_kg"] == pytest.approx(it_kwh * 1.56 * 0.475)  # 475 g/kWh
        assert rows[label]["cost_usd"] == pytest.approx(8 * 6.88)  # the table's H100 SXM price
    assert rows["1.00"]["basis"]["gpu_kwh"] == "measured: NVML energy counter, 8 GPUs"
    assert rows["1.01"]["basis"]["gpu_kwh"] == "measured: power samples × time, 8 GPUs"
    assert rows["1.02"]["basis"]["gpu_kwh"] == (
        "estimated: 8 GPUs × 700 W rated (H100 SXM) × wall time; no power samples"
    )
    assert rows["1.00"]["basis"]["gpus"] == f"measured: inventory at launch: 8 × {H100}"
    assert rows["1.00"]["basis"]["ram_kwh"] == (
        "estimated: as codecarbon does: 16 DIMMs guessed for 2048 GiB, 5 W each, less from the 5th"
    )
    assert "50% of 85 W" in rows["1.00"]["basis"]["cpu_kwh"]
    total = rows["total"]
    assert total["gpu_h"] == pytest.approx(24.0)
    assert total["gpu_kwh"] == pytest.approx(16.8)
    assert total["cost_usd"] == pytest.approx(24 * 6.88)
    assert total["energy_kwh"] == pytest.approx(
        3 * (5.6 + CPU_KWH_PER_H + RAM_KWH_PER_H_2TIB) * 1.56
    )


def test_pue_and_carbon_intensity_from_flags(three_ways) -> None:  # type: ignore[no-untyped-def]
    settings = resolve_settings({"pue": "1.1", "carbon_intensity": "57"})
    row = _by_attempt(cost_report(three_ways, "e", settings))["1.00"]
    it_kwh = 5.6 + CPU_KWH_PER_H + RAM_KWH_PER_H_2TIB
    assert row["energy_kwh"] == pytest.approx(it_kwh * 1.1)
    assert row["co2_kg"] == pytest.approx(it_kwh * 1.1 * 0.057)
    # Declared PUE and intensity over measured GPUs and estimated CPU and memory: estimated.
    assert row["basis"]["energy_kwh"] == (
        "estimated: (GPU measured + CPU estimated + memory estimated) × PUE 1.1 (--pue)"
    )
    assert row["basis"]["co2_kg"] == "estimated: energy × 57 gCO2e/kWh (--carbon-intensity)"


def test_power_readings_that_vary_and_cover_part_of_the_wall_time(
    lineage, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ids = lineage("v", [{"label": "1.00", "start": at(0), "end": at(7200), "status": "completed"}])
    store = Store(store_path)
    gpu_box(store, "v", ids["1.00"], gpus=2)
    # Readings every 10 s for the first hour only: 200 W until t=1800 s, then 600 W.
    # 361 readings, 181 at 200 W and 180 at 600 W: mean 398.89 W over the 3600 s they span.
    gpu_samples(
        store, "v", ids["1.00"], start=0, seconds=3600, gpus=2, energy=False,
        power=lambda t: 200.0 if t <= 1800 else 600.0,
    )  # fmt: skip
    row = _by_attempt(cost_report(store, "v"))["1.00"]
    mean = (181 * 200 + 180 * 600) / 361
    assert row["gpu_kwh"] == pytest.approx(2 * mean * 3600 / 3.6e6)
    assert row["basis"]["gpu_kwh"] == (
        "measured: power samples × time, 2 GPUs, readings over 50% of the wall time"
    )
    assert row["gpu_h"] == pytest.approx(4.0)  # GPU-hours count the whole wall time


def test_counter_on_some_gpus_power_on_the_others(lineage, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = lineage("m", [{"label": "1.00", "start": at(0), "end": at(600), "status": "completed"}])
    store = Store(store_path)
    gpu_box(store, "m", ids["1.00"], gpus=2)
    gpu_samples(store, "m", ids["1.00"], start=0, seconds=600, gpus=1, power=lambda t: 300.0)
    other = [  # GPU 1: two power readings 600 s apart, 100 W then 500 W, no counter
        {"attempt_id": ids["1.00"], "time": at(t), "host": "h", "scope": "gpu", "gpu_index": 1,
         "power_w": p} for t, p in ((0, 100.0), (600, 500.0))
    ]  # fmt: skip
    store.write("samples", "m", other)
    row = _by_attempt(cost_report(store, "m"))["1.00"]
    assert row["gpu_kwh"] == pytest.approx((300 * 600 + 300 * 600) / 3.6e6)
    assert row["basis"]["gpu_kwh"] == (
        "measured: 2 GPUs, energy counter on 1 and power samples × time on 1"
    )


@pytest.mark.parametrize(
    ("memory", "watts", "dimms"),
    [(8 << 30, 10.0, 2), (24 << 30, 20.0, 4), (100 << 30, 38.0, 8), (200 << 30, 58.0, 13),
     (2 * TIB, 70.0, 16), (8 * TIB, 126.0, 32)],
)  # fmt: skip
def test_memory_power_follows_codecarbons_dimm_guess(
    lineage, store_path: Path, memory: int, watts: float, dimms: int
) -> None:  # type: ignore[no-untyped-def]
    # 5 W a DIMM, the 5th to 8th at 90 %, the 9th to 16th at 80 %, the rest at 70 %, at least 10 W:
    # 13 DIMMs = 4 × 5 + 4 × 4.5 + 5 × 4 = 58 W; 32 = 20 + 18 + 8 × 4 + 16 × 3.5 = 126 W.
    ids = lineage("r", [{"label": "1.00", "start": at(0), "end": at(3600), "status": "completed"}])
    store = Store(store_path)
    snapshot(store, "r", ids["1.00"], [("host", "memory_bytes", memory)])
    row = _by_attempt(cost_report(store, "r"))["1.00"]
    assert row["ram_kwh"] == pytest.approx(watts / 1000)
    assert f"{dimms} DIMMs guessed" in row["basis"]["ram_kwh"]


def test_no_memory_on_record_counts_codecarbons_minimum(lineage, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The host is on record (its snapshot), its memory size is not.
    ids = lineage("n", [{"label": "1.00", "start": at(0), "end": at(3600), "status": "completed"}])
    store = Store(store_path)
    snapshot(store, "n", ids["1.00"], [("host", "hostname", "box"), ("host", "memory_bytes", None)])
    row = _by_attempt(cost_report(store, "n"))["1.00"]
    assert row["ram_kwh"] == pytest.approx(0.010)
    assert row["basis"]["ram_kwh"] == (
        "estimated: as codecarbon does: memory size not on record, its minimum (2 DIMMs)"
    )
    # No GPU count on record: unknown, and so are the figures made from it, never 0.
    assert row["gpus"] is None and row["gpu_kwh"] is None and row["cost_usd"] is None
    assert row["basis"]["gpus"].startswith("unknown: no GPU inventory")
    assert row["basis"]["cost_usd"] == "unknown: GPU count unknown"


def test_an_accelerator_without_rated_power_and_samples_leaves_energy_unknown(
    lineage, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ids = lineage("a", [{"label": "1.00", "start": at(0), "end": at(3600), "status": "completed"}])
    store = Store(store_path)
    gpu_box(store, "a", ids["1.00"], gpus=4, name="NVIDIA A10G")  # priced, no published TDP
    rows = _by_attempt(cost_report(store, "a"))
    assert rows["1.00"]["cost_usd"] == pytest.approx(4 * 2.036)
    assert rows["1.00"]["gpu_kwh"] is None
    assert rows["1.00"]["energy_kwh"] is None and rows["1.00"]["co2_kg"] is None
    assert rows["1.00"]["basis"]["gpu_kwh"] == (
        'unknown: no power samples, and no rated power for "NVIDIA A10G" in the price table'
    )
    assert rows["total"]["energy_kwh"] is None
    assert rows["total"]["basis"]["energy_kwh"] == "unknown: 1.00 without energy"


def test_several_hosts_of_one_run_are_summed(invoke, lineage, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Two wrappers, one per host, 8 GPUs each, the same hour: 16 GPU-hours, 11.2 kWh of GPUs.
    ids = lineage(
        "mh",
        [
            {"label": "1.00", "start": at(0), "end": at(3600), "status": "completed", "host": "a"},
            {"label": "2.00", "start": at(0), "end": at(3600), "status": "completed", "host": "b",
             "parent": None},
        ],
    )  # fmt: skip
    store = Store(store_path)
    for aid in ids.values():
        gpu_box(store, "mh", aid)
        gpu_samples(store, "mh", aid, start=0, seconds=3600)
    out = json.loads(invoke(["cost", "mh", "--store", str(store_path), "--format", "json"]).stdout)
    total = out[-1]
    assert total["attempt"] == "total"
    assert total["gpu_h"] == pytest.approx(16.0)
    assert total["gpu_kwh"] == pytest.approx(11.2)
    assert total["cost_usd"] == pytest.approx(16 * 6.88)
