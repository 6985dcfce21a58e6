"""The price table and the price of a GPU-hour in `logbook cost` (#5): what the table holds, how a
GPU's name finds its entry, an accelerator it does not know (money unknown, never zero, with the
way out), and the order of the sources: flag, then the price recorded at launch, then
logbook.toml, then the table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cost.gpubox import at, gpu_box, snapshot
from logbook.cost import cost_report, gpu_specs
from logbook.store import Store

HINT = "pass --gpu-price USD or set [cost] gpu-price in logbook.toml"


def test_every_entry_cites_its_figures() -> None:
    specs = gpu_specs()
    assert len(specs) >= 12
    assert len({s.name for s in specs}) == len(specs)
    for s in specs:
        re.compile(s.match)
        assert s.examples, s.name
        if s.usd_per_gpu_hour is not None:
            assert s.usd_per_gpu_hour > 0
            assert s.price_basis and s.price_source and s.price_as_of, s.name
            assert s.price_status in ("V", "R", "D"), s.name
        for figure, source, status in (
            (s.tdp_w, s.tdp_source, s.tdp_status),
            (s.peak_tflops, s.peak_source, s.peak_status),
        ):
            if figure is not None:
                assert figure > 0 and source and status in ("V", "R", "D"), s.name
    by_name = {s.name: s for s in specs}
    assert by_name["H100 SXM"].usd_per_gpu_hour == 6.88
    assert by_name["H100 SXM"].tdp_w == 700 and by_name["H100 SXM"].peak_tflops == 989.4
    assert by_name["A100 SXM 80GB"].tdp_w == 400
    assert by_name["MI300X"].usd_per_gpu_hour is None  # no price on record: unknown, not zero


def test_each_reported_name_finds_its_own_entry(lineage, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    cases = [(spec, name) for spec in gpu_specs() for name in spec.examples]
    ids = lineage(
        "names",
        [
            {"label": f"1.{n:02d}", "start": at(n * 7200), "end": at(n * 7200 + 3600),
             "status": "completed"}
            for n in range(len(cases))
        ],
    )  # fmt: skip
    store = Store(store_path)
    for n, (_, name) in enumerate(cases):
        gpu_box(store, "names", ids[f"1.{n:02d}"], gpus=2, name=name)
    rows = {r["attempt"]: r for r in cost_report(store, "names").to_pylist()}
    for n, (spec, name) in enumerate(cases):
        row = rows[f"1.{n:02d}"]
        if spec.usd_per_gpu_hour is None:
            assert row["cost_usd"] is None, name
            assert row["basis"]["cost_usd"] == (
                f"unknown: the price table has no price for {spec.name}; {HINT}"
            )
        else:
            assert row["cost_usd"] == pytest.approx(2 * spec.usd_per_gpu_hour), name
            assert f'price table "{spec.name}"' in row["basis"]["cost_usd"], name
        if spec.tdp_w is not None:
            assert row["gpu_kwh"] == pytest.approx(2 * spec.tdp_w / 1000), name
            assert f"({spec.name})" in row["basis"]["gpu_kwh"], name
        else:
            assert row["gpu_kwh"] is None, name
    # A name the table does not know is not taken for a near one.
    assert not any(re.search(s.match, "NVIDIA GH200 480GB", re.I) for s in gpu_specs())


def test_an_unknown_accelerator_has_unknown_money_and_the_way_out(
    invoke, lineage, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ids = lineage("u", [{"label": "1.00", "start": at(0), "end": at(3600), "status": "completed"}])
    gpu_box(Store(store_path), "u", ids["1.00"], gpus=4, name="NVIDIA GeForce RTX 4090")
    rows = json.loads(invoke(["cost", "u", "--store", str(store_path), "--format", "json"]).stdout)
    assert rows[0]["gpu_h"] == pytest.approx(4.0)
    assert rows[0]["cost_usd"] is None and rows[-1]["cost_usd"] is None
    assert rows[0]["basis"]["cost_usd"] == (
        f'unknown: "NVIDIA GeForce RTX 4090" is not in the price table; {HINT}'
    )
    assert rows[-1]["basis"]["cost_usd"] == "unknown: 1.00 without a price or GPU-hours"
    table = invoke(["cost", "u", "--store", str(store_path)]).stdout
    header, *lines = [[c.strip() for c in x.split("|")] for x in table.splitlines() if "|" in x]
    cells = dict(zip(header, next(x for x in lines if x[0] == "1.00"), strict=True))
    assert cells["cost_usd"] == "unknown"  # never 0
    assert cells["gpu_h"] == "4"
    assert (
        f'cost_usd: 1.00: unknown: "NVIDIA GeForce RTX 4090" is not in the price table; {HINT}'
        in table
    )
    priced = json.loads(
        invoke(
            ["cost", "u", "--store", str(store_path), "--format", "json", "--gpu-price", "1.5"]
        ).stdout
    )
    assert priced[0]["cost_usd"] == pytest.approx(6.0)
    assert priced[0]["basis"]["cost_usd"] == "declared: GPU-hours × $1.5 per GPU-hour, --gpu-price"


def test_flag_then_recorded_then_toml_then_table(
    invoke, lineage, store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    ids = lineage("p", [{"label": "1.00", "start": at(0), "end": at(3600), "status": "completed"}])
    store = Store(store_path)
    gpu_box(store, "p", ids["1.00"], gpus=2)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    def price(*flags: str) -> tuple[float, str]:
        rows = json.loads(
            invoke(["cost", "p", "--store", str(store_path), "--format", "json", *flags]).stdout
        )
        return rows[0]["cost_usd"] / 2, rows[0]["basis"]["cost_usd"]

    assert price() == (pytest.approx(6.88), price()[1])
    assert 'price table "H100 SXM": AWS p5.48xlarge on-demand' in price()[1]
    (work / "logbook.toml").write_text("[cost]\ngpu-price = 3.0\n")
    assert price() == (
        pytest.approx(3.0),
        f"declared: GPU-hours × $3 per GPU-hour, {work / 'logbook.toml'} [cost] gpu-price",
    )
    # What `logbook run --gpu-price 2.5` records at launch beats logbook.toml...
    snapshot(store, "p", ids["1.00"], [("cost", "gpu_price_usd_per_hour", "2.5")])
    assert price() == (
        pytest.approx(2.5),
        "declared: GPU-hours × $2.5 per GPU-hour, recorded by logbook run --gpu-price",
    )
    # ...and the flag beats both.
    assert price("--gpu-price", "1") == (
        pytest.approx(1.0),
        "declared: GPU-hours × $1 per GPU-hour, --gpu-price",
    )
