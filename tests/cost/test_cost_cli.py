"""`logbook cost` from the front door (#5): real runs of real child processes, the JSON, JSON lines,
CSV and table shapes, bad input and unknown runs."""

from __future__ import annotations

import csv
import io
import json
import sys
import textwrap
from pathlib import Path

import pytest

from cost.gpubox import at, gpu_box
from logbook.cost.report import FIGURES
from logbook.query import run_sql
from logbook.store import Store

COLUMNS = ["attempt", "status", "gpus", "hours", "gpu_h", "cost_usd", "gpu_kwh", "cpu_kwh",
           "ram_kwh", "energy_kwh", "co2_kg", "tokens", "flops", "tokens_reached",
           "flops_reached", "mfu", "basis"]  # fmt: skip

TRAINER = textwrap.dedent(
    """
    import sys, time
    for step in range(1, 41):
        print(f"step={step} loss={1.0 / step:.4f}", flush=True)
        time.sleep(0.05)
    """
)


@pytest.fixture
def trainer(tmp_path: Path) -> Path:
    path = tmp_path / "trainer.py"
    path.write_text(TRAINER)
    return path


def test_a_real_run_declares_compute_and_a_price(
    run_logbook, invoke, store_path: Path, trainer: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # N on the command line, tokens per step in the config file. (Not `--tokens-per-step 4096` on
    # the command line: logbook.record.redact hides every value of an option named like a token there.)
    config = tmp_path / "train.yaml"
    config.write_text("optim:\n  lr: 0.001\ntokens_per_step: 4096\n")
    run_logbook(
        "run", "--store", str(store_path), "--run", "real", "--no-capture", "--gpu-price", "2.5",
        "--config", str(config), "--", sys.executable, str(trainer), "--params", "7B", check=0,
    )  # fmt: skip
    store = Store(store_path)
    [attempt] = run_sql(store, "select attempt_id, last_step, duration_s from attempts").to_pylist()
    assert attempt["last_step"] == 40
    out = json.loads(
        invoke(["cost", "real", "--store", str(store_path), "--format", "json"]).stdout
    )
    row = out[0]
    assert row["tokens"] == 40 * 4096 and row["flops"] == pytest.approx(6 * 7e9 * 40 * 4096)
    assert row["basis"]["flops"] == (
        "estimated: 6 × N × tokens (steps run × tokens per step); N = 7e+09 (arg params), "
        "tokens per step = 4096 (config tokens_per_step)"
    )
    # --no-capture: no inventory, no launcher variables, no host facts: unknown, never 0 (#16).
    assert [row[f] for f in ("gpus", "gpu_h", "cost_usd", "gpu_kwh", "cpu_kwh", "energy_kwh")] == [
        None
    ] * 6
    assert row["basis"]["gpus"].startswith("unknown: no GPU inventory")
    assert row["basis"]["cpu_kwh"].startswith("unknown: no host snapshot")
    # The same attempt on a GPU machine: the price `logbook run --gpu-price` recorded applies.
    gpu_box(store, "real", attempt["attempt_id"])
    row = json.loads(
        invoke(["cost", "real", "--store", str(store_path), "--format", "json"]).stdout
    )[0]
    assert row["gpu_h"] == pytest.approx(8 * attempt["duration_s"] / 3600)
    assert row["cpu_kwh"] == pytest.approx(42.5 * attempt["duration_s"] / 3.6e6)
    assert row["cost_usd"] == pytest.approx(row["gpu_h"] * 2.5)
    assert row["basis"]["cost_usd"] == (
        "declared: GPU-hours × $2.5 per GPU-hour, recorded by logbook run --gpu-price"
    )
    assert row["mfu"] is not None and 0 < row["mfu"] < 1


def test_a_real_run_with_its_launch_snapshot_and_a_crash(
    run_logbook, invoke, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    train = Path(__file__).parents[2] / "examples" / "train.py"
    run_logbook(
        "run", "--store", str(store_path), "--run", "snap", "--restarts", "1", "--backoff", "0.2s",
        "--", sys.executable, str(train), "--steps", "60", "--crash-at", "40", "--crash-times",
        "1", "--step-delay", "0.01", "--ckpt-dir", str(tmp_path / "ck"), "--ckpt-every", "20",
        check=0,
    )  # fmt: skip
    rows = json.loads(
        invoke(["cost", "snap", "--store", str(store_path), "--format", "json"]).stdout
    )
    assert [r["attempt"] for r in rows] == ["1.00", "1.01", "total"]
    for r in rows[:2]:
        # This machine's GPUs, or the reason there are none on record; its memory, measured.
        assert r["basis"]["gpus"].startswith(("measured: inventory at launch", "unknown:"))
        assert "GiB" in r["basis"]["ram_kwh"]
        if r["gpus"] is not None:
            assert r["energy_kwh"] > 0 and r["co2_kg"] == pytest.approx(r["energy_kwh"] * 0.475)
        else:  # neither NVML nor nvidia-smi answered: GPU energy, so the total, unknown
            assert r["energy_kwh"] is None and r["cpu_kwh"] > 0
    assert rows[-1]["hours"] == pytest.approx(rows[0]["hours"] + rows[1]["hours"])
    if rows[0]["energy_kwh"] is not None:
        assert rows[-1]["energy_kwh"] == pytest.approx(
            rows[0]["energy_kwh"] + rows[1]["energy_kwh"]
        )


def test_the_shapes_of_json_jsonl_csv_and_table(invoke, lineage, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = lineage("s", [{"label": "1.00", "start": at(0), "end": at(3600), "status": "completed"}])
    gpu_box(Store(store_path), "s", ids["1.00"])
    base = ["cost", "s", "--store", str(store_path), "--format"]
    rows = json.loads(invoke([*base, "json"]).stdout)
    assert [list(r) for r in rows] == [COLUMNS, COLUMNS]
    assert [r["attempt"] for r in rows] == ["1.00", "total"]
    assert all(sorted(r["basis"]) == sorted(FIGURES) for r in rows)
    assert all(isinstance(text, str) and text for r in rows for text in r["basis"].values())
    lines = [json.loads(x) for x in invoke([*base, "jsonl"]).stdout.splitlines()]
    assert lines == rows
    table = list(csv.DictReader(io.StringIO(invoke([*base, "csv"]).stdout)))
    assert list(table[0]) == COLUMNS and json.loads(table[0]["basis"]) == rows[0]["basis"]
    assert float(table[0]["cost_usd"]) == pytest.approx(8 * 6.88)
    text = invoke([*base, "table"]).stdout
    assert "basis" not in text.splitlines()[0]
    assert f"gpus: 1.00: measured: inventory at launch: 8 × {'NVIDIA H100 80GB HBM3'}" in text
    assert (
        "energy_kwh: 1.00: estimated: (GPU estimated + CPU estimated + memory estimated) × PUE 1.56 "
        "(default: Uptime Institute" in text
    )
    assert (
        'cost_usd: 1.00: estimated: GPU-hours × $6.88 per GPU-hour, price table "H100 SXM"' in text
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gpu-price", "-2"], "--gpu-price '-2' is negative; give US dollars per GPU-hour"),
        (["--gpu-price", "two"], "--gpu-price 'two' is not a number; give US dollars"),
        (["--pue", "0.9"], "--pue '0.9' is below 1; give the data centre's power usage"),
        (["--pue", "-1"], "--pue '-1' is below 1"),
        (["--pue", "high"], "--pue 'high' is not a number"),
        (["--carbon-intensity", "-5"], "--carbon-intensity '-5' is negative; give grams of CO2e"),
        (["--carbon-intensity", "nan"], "--carbon-intensity 'nan' is not a number"),
        (["--params", "0"], "--params '0' is below 1; give the parameter count"),
        (["--tokens-per-step", "lots"], "--tokens-per-step 'lots' is not a number"),
    ],
)
def test_bad_numbers_are_refused(
    invoke, lineage, store_path: Path, flags: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    lineage("b", [{"label": "1.00", "start": at(0), "end": at(60), "status": "completed"}])
    result = invoke(["cost", "b", "--store", str(store_path), *flags], code=1)
    assert result.stderr.startswith(f"Error: {message}")
    assert result.stdout == ""


def test_bad_logbook_toml(
    invoke, lineage, store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    ids = lineage("t", [{"label": "1.00", "start": at(0), "end": at(60), "status": "completed"}])
    gpu_box(Store(store_path), "t", ids["1.00"])
    monkeypatch.chdir(tmp_path)
    toml = tmp_path / "logbook.toml"
    toml.write_text("[cost]\npue = 'high'\n")
    result = invoke(["cost", "t", "--store", str(store_path)], code=1)
    assert f"Error: {toml} [cost] pue 'high' is not a number" in result.stderr
    toml.write_text("[cost]\nprice = 2\n")
    result = invoke(["cost", "t", "--store", str(store_path)], code=1)
    assert (
        f"Error: {toml} [cost]: unknown setting price; known: gpu-price, pue, carbon-intensity"
        in result.stderr
    )
    toml.write_text("[cost]\npue = 1.2\ncarbon-intensity = 57\n")
    rows = json.loads(invoke(["cost", "t", "--store", str(store_path), "--format", "json"]).stdout)
    assert rows[0]["basis"]["energy_kwh"] == (
        f"estimated: (GPU estimated + CPU estimated + memory estimated) × PUE 1.2 ({toml} [cost] pue)"
    )
    assert rows[0]["co2_kg"] == pytest.approx(rows[0]["energy_kwh"] * 0.057)


def test_an_unknown_run(invoke, lineage, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    lineage("known", [{"label": "1.00", "start": at(0), "end": at(60), "status": "completed"}])
    result = invoke(["cost", "knwon", "--store", str(store_path)], code=1)
    assert result.stderr == (
        f'Error: no run "knwon" in {store_path} (did you mean: known); see "logbook runs"\n'
    )
