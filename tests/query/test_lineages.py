"""Lineages (#16): restarts count within a lineage; the first attempt of a new one is a decision.

Real `logbook run`s: lineage 1 crashes and restarts itself (1.00, 1.01), then a person starts
lineage 2 with `--label 2.00`, as the OPT team moved from 11.x to 12.x.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def two_lineages(run_logbook, train_script: Path, store_path: Path) -> Path:  # type: ignore[no-untyped-def]
    s = str(store_path)
    common = ("run", "--store", s, "--run", "gpt", "--no-capture", "--backoff", "0s")
    run_logbook(
        *common, "--restarts", "1", "--", sys.executable, str(train_script),
        env={"TRAIN_MODE": "raise"}, check=1,
    )  # fmt: skip
    run_logbook(
        *common, "--label", "2.00", "--", sys.executable, str(train_script),
        env={"TRAIN_STEPS": "8"}, check=0,
    )  # fmt: skip
    return store_path


def sql(invoke, store: Path, query: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    out = invoke(["query", query, "--store", str(store), "--format", "json"]).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_restarts_count_within_a_lineage(invoke, two_lineages: Path) -> None:  # type: ignore[no-untyped-def]
    rows = sql(
        invoke,
        two_lineages,
        "select lineage, attempts, restarts, first_label, last_label, last_status, came_from "
        "from lineages order by started",
    )
    assert rows == [
        {"lineage": "1", "attempts": 2, "restarts": 1, "first_label": "1.00",
         "last_label": "1.01", "last_status": "crashed", "came_from": None},
        {"lineage": "2", "attempts": 1, "restarts": 0, "first_label": "2.00",
         "last_label": "2.00", "last_status": "completed", "came_from": "1.01"},
    ]  # fmt: skip
    runs = json.loads(invoke(["runs", "--store", str(two_lineages), "--format", "json"]).stdout)
    assert [(r["attempts"], r["lineages"]) for r in runs] == [(3, 2)]
    # 1.01 was not restarted within its lineage: no downtime or restart step from 2.00's start
    each = invoke(["incidents", "gpt", "--each", "--store", str(two_lineages), "--format", "json"])
    by_label = {i["label"]: i for i in json.loads(each.stdout)}
    assert by_label["1.00"]["next_label"] == "1.01"
    assert by_label["1.01"]["next_label"] is None and by_label["1.01"]["downtime_s"] is None


def test_the_chronicle_separates_the_lineages(  # type: ignore[no-untyped-def]
    run_logbook, two_lineages: Path, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    run_logbook("chronicle", "gpt", "--store", str(two_lineages), "--out", str(out), check=0)
    md = (out / "chronicle.md").read_text()
    assert "| attempts                             | 3 (1 restarts, in 2 lineages)" in md
    lineage = md.split("## Lineage", 1)[1].split("![", 1)[0]
    rows = [
        [c.strip() for c in line.split("|")[1:-1]]
        for line in lineage.splitlines()
        if line.startswith("| ")
    ][2:]
    assert [r[:4] + r[5:] for r in rows] == [
        ["1", "2", "1", "2", "1.00", "1.01", "", "crashed"],
        ["2", "1", "0", "0", "2.00", "2.00", "1.01", "completed"],
    ]
    assert rows[0][4].endswith("s") and rows[1][4] == ""  # an MTBF within lineage 1; none in 2
    # one figure per metric, a line per lineage named in its legend
    curves = sorted(p.name for p in (out / "img").glob("curve-*loss*.svg"))
    assert curves == ["curve-1-loss.svg"]
    svg = (out / "img" / curves[0]).read_text()
    assert "lineage 1" in svg and "lineage 2" in svg


def test_failures_and_mtbf_count_within_each_lineage(invoke, two_lineages: Path) -> None:  # type: ignore[no-untyped-def]
    rows = sql(
        invoke,
        two_lineages,
        "select l.lineage, l.failures, l.counted_s, l.mtbf_s, "
        "       (select round(sum(counted_s), 1) from attempt_time t join attempts a "
        "        using (attempt_id) where a.lineage = l.lineage) as own_s "
        "from lineages l order by started",
    )
    one, two = rows
    assert (one["lineage"], one["failures"], two["lineage"], two["failures"]) == ("1", 2, "2", 0)
    assert one["counted_s"] == one["own_s"] and one["mtbf_s"] == round(one["own_s"] / 2, 1)
    assert two["mtbf_s"] is None  # no failure in it: no mean time between failures
    out = invoke(["incidents", "gpt", "--store", str(two_lineages), "--format", "json"]).stdout
    by_class = {r["class"]: r for r in json.loads(out)}
    assert list(by_class)[-2:] == ["all failures in lineage 1", "all failures in lineage 2"]
    assert by_class["all failures in lineage 1"]["count"] == 2
    assert by_class["all failures in lineage 1"]["mtbf_s"] == one["mtbf_s"]
    assert by_class["all failures in lineage 2"]["count"] == 0
    # the run's MTBF counts the time of all three attempts over its two failures
    whole = sum(r["own_s"] for r in rows)
    assert abs(by_class["all failures"]["mtbf_s"] - whole / 2) < 0.1
