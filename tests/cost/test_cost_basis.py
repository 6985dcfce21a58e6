"""Every figure of `logbook cost` has a basis, and an unknown one is null, never zero (#16): an
imported history with no host facts gets no GPU, CPU or memory figure made up here; a host on record
with no GPU says so; a real `logbook run` keeps its figures; a total over attempts some of which are
unknown is unknown, with the part that is known named."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cost.gpubox import at, gpu_box, snapshot
from logbook.cost.report import FIGURES
from logbook.query import run_sql
from logbook.store import Store

KINDS = ("measured:", "estimated:", "declared:", "unknown:")
HOST_FIGURES = (
    "gpus",
    "gpu_h",
    "cost_usd",
    "gpu_kwh",
    "cpu_kwh",
    "ram_kwh",
    "energy_kwh",
    "co2_kg",
)
# Two attempts of a public history as a tester would import them: times, status, steps; no host.
HISTORY = [
    {"type": "attempt", "run": "opt", "label": "1.00", "start": "2021-10-20T09:00:00Z",
     "end": "2021-10-21T03:00:00Z", "status": "crashed", "class": "communication"},
    {"type": "metric", "run": "opt", "time": "2021-10-20T18:00:00Z", "step": 1000,
     "metrics": {"loss": 4.12}},
    {"type": "attempt", "run": "opt", "label": "1.01", "start": "2021-10-21T04:00:00Z",
     "end": "2021-10-22T10:00:00Z", "status": "completed", "resumed_from": 900},
    {"type": "metric", "run": "opt", "time": "2021-10-21T20:00:00Z", "step": 2700,
     "name": "loss", "value": 3.31},
]  # fmt: skip


@pytest.fixture
def imported(invoke, store_path: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    history = tmp_path / "opt.jsonl"
    history.write_text("".join(json.dumps(row) + "\n" for row in HISTORY))
    invoke(["import", str(history), "--store", str(store_path)])
    return store_path


def _json(invoke, store_path: Path, run: str, *flags: str) -> list[dict]:  # type: ignore[no-untyped-def]
    args = ["cost", run, "--store", str(store_path), "--format", "json", *flags]
    return json.loads(invoke(args).stdout)


def test_an_imported_history_without_host_facts_has_no_figure_made_up(
    invoke, imported: Path
) -> None:  # type: ignore[no-untyped-def]
    rows = _json(invoke, imported, "opt")
    assert [r["attempt"] for r in rows] == ["1.00", "1.01", "total"]
    for r in rows:
        assert {f: r[f] for f in HOST_FIGURES} == dict.fromkeys(HOST_FIGURES)  # null, not 0
        for f in HOST_FIGURES[1:]:
            assert r["basis"][f].startswith("unknown:"), (r["attempt"], f, r["basis"][f])
    first = rows[0]
    assert first["hours"] == pytest.approx(18.0)
    assert first["basis"]["hours"] == "declared: start to end, as imported"
    assert "no GPU inventory" in first["basis"]["gpus"]
    assert "no host snapshot" in first["basis"]["cpu_kwh"]
    assert "no host snapshot" in first["basis"]["ram_kwh"]
    assert rows[-1]["hours"] == pytest.approx(48.0)
    assert rows[-1]["basis"]["gpu_h"] == "unknown: 1.00, 1.01 without GPU-hours"
    # For people: "unknown", never a 0 standing in for it.
    table = invoke(["cost", "opt", "--store", str(imported)]).stdout
    cells = [c.strip() for c in table.splitlines()[2].split("|")]
    assert cells[:5] == ["1.00", "crashed", "unknown", "18", "unknown"]
    assert cells[5:11] == ["unknown"] * 6


def test_a_host_on_record_without_a_gpu_says_no_gpu(invoke, lineage, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = lineage(
        "cpu", [{"label": "1.00", "start": at(0), "end": at(3600), "status": "completed"}]
    )
    snapshot(
        Store(store_path),
        "cpu",
        ids["1.00"],
        [("gpu", "count", 0), ("host", "memory_bytes", 8 << 30)],
    )
    [row, total] = _json(invoke, store_path, "cpu")
    assert row["gpus"] == 0 and row["gpu_h"] == 0 and row["gpu_kwh"] == 0
    assert row["basis"]["gpus"] == "measured: inventory at launch: no GPU"
    assert row["basis"]["gpu_kwh"] == "measured: no GPU at launch"
    assert row["cost_usd"] == 0 and row["basis"]["cost_usd"].startswith("measured: no GPU")
    # Its own host's facts: CPU and memory estimated, so energy and CO2 are known.
    assert row["cpu_kwh"] == pytest.approx(0.0425) and row["ram_kwh"] == pytest.approx(0.010)
    assert row["basis"]["cpu_kwh"].startswith("estimated:")
    assert row["energy_kwh"] == pytest.approx(0.0525 * 1.56)
    assert row["basis"]["energy_kwh"].startswith("estimated: (GPU measured + CPU estimated")
    assert total["energy_kwh"] == pytest.approx(row["energy_kwh"])
    assert total["basis"]["energy_kwh"] == "estimated: sum over the attempts"


def test_a_total_with_an_unknown_attempt_is_unknown_and_names_the_known_part(
    invoke, lineage, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ids = lineage(
        "mix",
        [
            {"label": "1.00", "start": at(0), "end": at(3600), "status": "crashed"},
            {"label": "1.01", "start": at(4000), "end": at(7600), "status": "completed"},
        ],
    )
    gpu_box(Store(store_path), "mix", ids["1.00"])  # 8 H100s, 2 TiB; 1.01 has no host on record
    first, second, total = _json(invoke, store_path, "mix")
    assert first["gpu_h"] == pytest.approx(8.0) and second["gpu_h"] is None
    assert total["gpu_h"] is None and total["cost_usd"] is None and total["energy_kwh"] is None
    assert total["basis"]["gpu_h"] == (
        "unknown: 1.01 without GPU-hours; at least 8 over the 1 of 2 attempts known"
    )
    assert total["basis"]["cost_usd"].startswith(
        f"unknown: 1.01 without a price or GPU-hours; at least {8 * 6.88:g} over the 1 of 2"
    )


def test_the_basis_notes_come_strongest_kind_first_and_the_same_each_time(
    invoke, lineage, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ids = lineage(
        "notes",
        [
            {"label": "1.00", "start": at(0), "end": at(3600), "status": "crashed"},
            {"label": "1.01", "start": at(4000), "end": at(7600), "status": "crashed"},
            # an end known to a range: its hours are unknown, and so is the total
            {"label": "1.02", "start": at(8000), "end": f"{at(9000)}/{at(9900)}", "status": "completed"},
        ],
    )  # fmt: skip
    gpu_box(Store(store_path), "notes", ids["1.01"])  # the others have no host on record
    printed = [invoke(["cost", "notes", "--store", str(store_path)]).stdout for _ in range(2)]
    assert printed[0] == printed[1]
    notes = printed[0].split("Basis:")[1].splitlines()
    gpus = [n.strip() for n in notes if n.strip().startswith("gpus: ")]
    assert gpus[0].startswith("gpus: 1.01: measured:")
    assert gpus[1].startswith("gpus: 1.00 1.02: unknown:")
    hours = next(n.strip() for n in notes if n.strip().startswith("hours: total:"))
    assert hours.startswith("hours: total: unknown: 1.02 without a known wall time"), hours


def test_a_real_run_keeps_its_figures_each_with_a_kind(
    run_logbook, invoke, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run_logbook(
        "run", "--store", str(store_path), "--run", "tiny", "--",
        sys.executable, "-c", "import time; print('step=1 loss=1.0'); time.sleep(0.3)", check=0,
    )  # fmt: skip
    [row, total] = _json(invoke, store_path, "tiny")
    assert row["basis"]["hours"] == "measured: launch to end"
    # This host's facts, from its own launch snapshot: CPU and memory estimated from them.
    assert row["cpu_kwh"] > 0 and row["basis"]["cpu_kwh"].startswith("estimated:")
    assert row["ram_kwh"] > 0 and "GiB" in row["basis"]["ram_kwh"]
    if row["gpus"] is None:  # neither NVML nor nvidia-smi answered here
        assert row["energy_kwh"] is None and row["basis"]["gpus"].startswith("unknown:")
    else:
        assert row["energy_kwh"] > 0 and row["co2_kg"] == pytest.approx(row["energy_kwh"] * 0.475)
    for r in (row, total):
        for figure in FIGURES:
            if r["attempt"] == "total" and figure == "gpus":
                continue  # not summed: see each attempt
            assert r["basis"][figure].startswith(KINDS), (r["attempt"], figure, r["basis"][figure])


def _overview(md: str) -> dict[str, str]:
    rows = [line.split("|")[1:3] for line in md.split("## Lineage")[0].splitlines()]
    return {k.strip(): v.strip() for k, v in (r for r in rows if len(r) == 2)}


def _model_card(md: str) -> dict[str, tuple[str, str]]:
    part = md.split("## For model cards and regulators")[1].split("\n## ")[0]
    rows = [line.split(" | ") for line in part.splitlines() if line.startswith("| ")]
    return {r[0].strip("| "): (r[1], r[2].rstrip(" |")) for r in rows if len(r) == 3}


def test_the_chronicle_shows_unknown_and_each_figures_kind(
    invoke, imported: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    invoke(["chronicle", "opt", "--store", str(imported), "--out", str(tmp_path / "a")])
    md = (tmp_path / "a" / "chronicle.md").read_text()
    overview = _overview(md)
    assert [overview[k] for k in ("GPU-hours", "energy", "CO2e", "money")] == ["unknown"] * 4
    card = _model_card(md)
    assert card["Hardware type and count"][0] == "unknown"
    assert card["Hardware type and count"][1].startswith("unknown: no GPU inventory")
    assert card["GPU-hours used"] == ("unknown", "unknown: 1.00, 1.01 without GPU-hours")
    assert card["Energy (kWh)"][0] == "unknown"
    assert card["Training time (wall-clock, first launch to last end)"][1].startswith(
        "declared: 2 attempts"
    )
    html = (tmp_path / "a" / "index.html").read_text()
    assert "<b>unknown</b><span>kWh of energy, unknown</span>" in html
    assert "0 GPUs at most" not in html and "0 GPUs at most" not in md
    # The same history with one attempt's 8 H100s on record: figures with their kinds.
    aid = run_sql(Store(imported), "select attempt_id from attempts where label = '1.00'")
    gpu_box(Store(imported), "opt", aid.column(0)[0].as_py())
    invoke(["chronicle", "opt", "--store", str(imported), "--out", str(tmp_path / "b")])
    md = (tmp_path / "b" / "chronicle.md").read_text()
    card = _model_card(md)
    assert card["Hardware type and count"][1].startswith("measured: inventory at launch: 8 × ")
    assert "unknown: no GPU inventory" in card["Hardware type and count"][1]  # 1.01's
    assert card["GPU-hours used"][1].startswith(
        "unknown: 1.01 without GPU-hours; at least 144 over the 1 of 2 attempts known"
    )
