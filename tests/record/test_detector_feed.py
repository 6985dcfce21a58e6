"""record/detector_feed.py: points reach the detectors a chunk at a time (#15)."""

from __future__ import annotations

import math

import pyarrow as pa

from logbook.record.detector_feed import EVERY_POINT, observe_points
from logbook.record.detectors import Detectors


def _points(n: int, nan_at: int, name: str = "loss") -> pa.Table:
    values = [float("nan") if i == nan_at else 2.0 + (i % 7) / 100 for i in range(n)]
    return pa.table(
        {
            "step": pa.array(range(n), pa.int64()),
            "name": pa.array([name] * n, pa.string()),
            "value": pa.array(values, pa.float64()),
        }
    )


def test_a_nan_inside_a_flood_is_found_at_its_step() -> None:
    found = observe_points(Detectors(), _points(200_000, nan_at=123_457))
    nans = [f for f in found if f.kind == "nan"]
    assert [(f.name, f.step) for f in nans] == [("loss", 123_457)] and math.isnan(nans[0].value)


def test_under_a_flood_the_other_detectors_see_a_sample_in_order() -> None:
    seen: list[int | None] = []

    class Counting(Detectors):
        def observe_point(self, name, step, value):  # type: ignore[no-untyped-def]
            seen.append(step)
            return super().observe_point(name, step, value)

    observe_points(Counting(), _points(50_000, nan_at=-1))
    assert len(seen) == EVERY_POINT and seen == sorted(seen) and seen[-1] == 49_999
    seen.clear()
    observe_points(Counting(), _points(500, nan_at=-1))  # a modest rate: every point
    assert seen == list(range(500))


def test_names_no_detector_watches_are_not_fed() -> None:
    seen: list[str] = []

    class Counting(Detectors):
        def observe_point(self, name, step, value):  # type: ignore[no-untyped-def]
            seen.append(name)
            return super().observe_point(name, step, value)

    observe_points(Counting(), _points(100, nan_at=-1, name="epoch"))
    assert seen == []
