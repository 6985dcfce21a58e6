"""Training FLOPs (6·N·D) and MFU in `logbook cost` (#5), on a lineage with a crash, a resume and
a silent restart whose steps and pace are known, and where N and tokens per step come from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cost.gpubox import at, gpu_box, snapshot
from logbook.cost import cost_report, resolve_settings
from logbook.store import Store

# 1.00  crashed: steps 1-100, one a second (t = 10 s to 109 s)
# 1.01  resumed from the checkpoint at step 50: steps 51-200, one a second; 51-100 done again
# 1.02  no resume point on record: steps 201-250 seen, one a second; counted from step 200
HISTORY = [
    {"label": "1.00", "start": at(0), "end": at(130), "status": "crashed", "first_step": 1,
     "first_step_time": at(10), "last_step": 100, "last_step_time": at(109)},
    {"label": "1.01", "start": at(160), "end": at(320), "status": "crashed", "resumed_from": 50,
     "first_step": 51, "first_step_time": at(170), "last_step": 200, "last_step_time": at(319)},
    {"label": "1.02", "start": at(400), "end": at(500), "status": "completed", "first_step": 201,
     "first_step_time": at(410), "last_step": 250, "last_step_time": at(459)},
]  # fmt: skip
N = 1e9
TOKENS_PER_STEP = 1000.0
PEAK = 989.4e12  # H100 SXM, dense BF16


@pytest.fixture
def run(lineage, store_path: Path) -> tuple[Store, dict[str, str]]:  # type: ignore[no-untyped-def]
    ids = lineage("c", HISTORY)
    store = Store(store_path)
    for aid in ids.values():
        gpu_box(store, "c", aid)
        snapshot(store, "c", aid, [("config", "tokens_per_step", "1000")])
    return store, ids


def test_flops_processed_reached_and_mfu(run) -> None:  # type: ignore[no-untyped-def]
    store, _ = run
    rows = {
        r["attempt"]: r
        for r in cost_report(store, "c", resolve_settings({"params": "1e9"})).to_pylist()
    }
    steps = {"1.00": 100, "1.01": 150, "1.02": 50}  # 1.01 redoes 51-100, 50 steps
    for label, n in steps.items():
        assert rows[label]["tokens"] == pytest.approx(n * TOKENS_PER_STEP)
        assert rows[label]["flops"] == pytest.approx(6 * N * n * TOKENS_PER_STEP)
        # One step a second on 8 GPUs: 6 N × tokens per step per second over 8 peaks.
        assert rows[label]["mfu"] == pytest.approx(
            6 * N * TOKENS_PER_STEP / 1.0 / (PEAK * 8), rel=1e-3
        )
    assert rows["1.01"]["tokens_reached"] == pytest.approx(200 * TOKENS_PER_STEP)
    total = rows["total"]
    assert total["tokens"] == pytest.approx(300 * TOKENS_PER_STEP)  # re-done steps included
    assert total["flops"] == pytest.approx(6 * N * 300 * TOKENS_PER_STEP)
    assert total["tokens_reached"] == pytest.approx(250 * TOKENS_PER_STEP)
    assert total["flops_reached"] == pytest.approx(6 * N * 250 * TOKENS_PER_STEP)
    assert total["mfu"] == pytest.approx(6 * N * TOKENS_PER_STEP / (PEAK * 8), rel=1e-3)
    assert rows["1.00"]["basis"]["flops"] == (
        "estimated: 6 × N × tokens (steps run × tokens per step); N = 1e+09 (--params), "
        "tokens per step = 1000 (config tokens_per_step)"
    )
    assert rows["1.00"]["basis"]["mfu"] == (
        "estimated: achieved FLOP/s (6 × N × tokens per step ÷ seconds per step) ÷ "
        "(989.4 TFLOPS dense peak (H100 SXM) × 8 GPUs)"
    )
    assert total["basis"]["flops_reached"] == "declared: at the furthest step, 250 (attempt 1.02)"


def test_where_n_comes_from(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    store, ids = run
    aid = ids["1.00"]
    snapshot(store, "c", aid, [("arg", "params", '"2B"'), ("config", "n_params", "3e9")])

    def n(settings=None) -> tuple[float, str]:  # type: ignore[no-untyped-def]
        row = cost_report(store, "c", settings).to_pylist()[0]
        return row["flops"] / (6 * 100 * TOKENS_PER_STEP), row["basis"]["flops"]

    assert n() == (pytest.approx(3e9), n()[1])  # the config file over the command line
    assert "N = 3e+09 (config n_params)" in n()[1]
    snapshot(store, "c", aid, [("api_config", "model.num_parameters", '"7B"')])
    assert n()[0] == pytest.approx(7e9)  # logbook.config over the config file
    assert "N = 7e+09 (api_config model.num_parameters)" in n()[1]
    (tmp_path / "logbook.toml").write_text("[compute]\nparams = '5B'\ntokens-per-step = 2000\n")
    from logbook.settings import find_config

    monkeypatch.chdir(tmp_path)
    path, config = find_config()
    value, basis = n(resolve_settings({}, config, path))
    assert value == pytest.approx(5e9 * 2)  # twice the tokens per step, too
    assert f"N = 5e+09 ({path} [compute] params)" in basis
    value, basis = n(resolve_settings({"params": "1e9"}, config, path))
    assert value == pytest.approx(1e9 * 2) and "N = 1e+09 (--params)" in basis


def test_undeclared_compute_and_unknown_peak(lineage, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = lineage("x", HISTORY[:1])
    store = Store(store_path)
    gpu_box(store, "x", ids["1.00"], gpus=2, name="NVIDIA A10G")
    row = cost_report(store, "x").to_pylist()[0]
    assert row["flops"] is None and row["tokens"] is None and row["mfu"] is None
    assert row["basis"]["flops"].startswith("unknown: declare the parameter count")
    row = cost_report(
        store, "x", resolve_settings({"params": "1e9", "tokens_per_step": "4k"})
    ).to_pylist()[0]
    assert row["flops"] == pytest.approx(6e9 * 100 * 4000)
    assert row["mfu"] is None
    assert row["basis"]["mfu"] == 'unknown: no peak FLOPs for "NVIDIA A10G" in the price table'


def test_the_gpu_count_from_the_launcher_when_the_inventory_failed(
    invoke, lineage, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ids = lineage(
        "l",
        [{"label": f"1.0{i}", "start": at(i * 4000), "end": at(i * 4000 + 3600),
          "status": "completed"} for i in range(4)],
    )  # fmt: skip
    store = Store(store_path)
    failed = ("gpu", "count", None)  # neither NVML nor nvidia-smi answered
    snapshot(store, "l", ids["1.00"], [failed, ("launcher", "LOCAL_WORLD_SIZE", "4")])
    snapshot(store, "l", ids["1.01"], [failed, ("launcher", "SLURM_GPUS_ON_NODE", "8")])
    snapshot(
        store, "l", ids["1.02"],
        [failed, ("launcher", "WORLD_SIZE", "16"), ("launcher", "SLURM_NNODES", "2")],
    )  # fmt: skip
    snapshot(  # the wrapper is one torchrun worker on an 8-GPU host: it counts its own GPU
        store, "l", ids["1.03"],
        [("gpu", "count", "8"), ("launcher", "LOCAL_RANK", "3"), ("launcher", "LOCAL_WORLD_SIZE", "8")],
    )  # fmt: skip
    rows = json.loads(invoke(["cost", "l", "--store", str(store_path), "--format", "json"]).stdout)
    assert [(r["gpus"], r["basis"]["gpus"]) for r in rows[:4]] == [
        (4, "estimated: launcher: LOCAL_WORLD_SIZE (one GPU per local worker)"),
        (8, "declared: launcher: SLURM_GPUS_ON_NODE"),
        (8, "estimated: launcher: WORLD_SIZE 16 ÷ 2 nodes"),
        (1, "estimated: launcher: LOCAL_RANK is set, the wrapper runs one worker: 1 GPU"),
    ]
    assert rows[-1]["gpu_h"] == pytest.approx(21.0)
    assert all(r["cost_usd"] is None for r in rows)  # no GPU model on record: no price
    assert rows[0]["basis"]["cost_usd"].startswith(
        "unknown: GPU model not recorded; pass --gpu-price"
    )
