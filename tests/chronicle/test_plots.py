"""The chronicle's plots (#6): real matplotlib figures read back as XML. Each must draw what it was
given, escape user strings, give the same bytes twice, stay small on big runs, and inline beside
other figures without sharing an id."""

from __future__ import annotations

import math
import random
import re
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from logbook.chronicle.plots import (
    STATUS_COLOURS,
    curves,
    datamix,
    downsample,
    incidents,
    inline,
    timeline,
    utilization,
)

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
SVG = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
HOSTILE = "<script>alert(1)</script>"
MATH = "$x^2$"


def texts(svg: str) -> list[str]:
    """Every <text> element's text, after checking the SVG parses and has no script element."""
    root = ET.fromstring(svg)
    assert not [el for el in root.iter() if el.tag.rpartition("}")[2].lower() == "script"]
    return ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def attempt(i: int, status: str, *, hours: float = 3, **extra: Any) -> dict[str, Any]:
    """Attempt i: starts at i*4 hours, runs `hours`, trains 1000 steps from where i-1 stopped."""
    start = T0 + timedelta(hours=4 * i)
    row = {
        "label": f"1.{i:02d}",
        "start": start,
        "end": None if status == "running" else start + timedelta(hours=hours),
        "status": status,
        "crash_class": "gpu_oom" if status == "crashed" else None,
        "first_step": 1000 * i,
        "last_step": 1000 * i + 900,
        "resumed_from_step": 1000 * i - 100 if i else None,
    }
    return row | extra


def many_attempts(n: int, days: int) -> list[dict[str, Any]]:
    rng = random.Random(6)
    every = timedelta(days=days) / n
    rows = []
    for i in range(n):
        start = T0 + i * every
        status = rng.choice(["completed", "crashed", "crashed", "hung", "preempted", "lost"])
        rows.append({
            "label": f"{i // 100}.{i % 100:02d}", "start": start, "end": start + every * 0.8,
            "status": status, "crash_class": "nccl_timeout" if status == "crashed" else None,
            "first_step": 500 * i, "last_step": 500 * i + 480, "resumed_from_step": 500 * i - 20,
        })  # fmt: skip
    return rows


def loss(n: int, *, nan_at: tuple[int, ...] = ()) -> list[tuple[int, float, float, float]]:
    rng = random.Random(2)
    out = []
    for s in range(n):
        v = float("nan") if s in nan_at else 2 + 8 * math.exp(-s / 300) + rng.random() * 0.05
        out.append((s, v, v, v))
    return out


def mix_history() -> list[dict[str, Any]]:
    declared = [
        ("1.00", 0, {"web": 0.6, "code": 0.25, "books": 0.15}),
        ("1.01", None, {"web": 0.5, "code": 0.5}),
        ("1.02", 30_000, {"web": 3.0, "code": 1.0, HOSTILE: 1.0}),
    ]
    return [
        {"step": step, "time": T0 + timedelta(days=i), "attempt": label, "source": s, "weight": w}
        for i, (label, step, weights) in enumerate(declared)
        for s, w in weights.items()
    ]


def hourly(hours: int) -> list[dict[str, Any]]:
    rng = random.Random(3)
    return [
        {"time": T0 + timedelta(hours=h), "gpu_util_pct": None if h == 5 else rng.uniform(60, 99),
         "power_w": rng.uniform(300, 650)}
        for h in range(hours)
        if not 20 <= h < 30  # ten hours of downtime
    ]  # fmt: skip


def test_timeline_legend_names_the_statuses_present() -> None:
    rows = [attempt(0, "crashed"), attempt(1, "hung"), attempt(2, "running")]
    shown = texts(timeline(rows) or "")
    assert {"crashed", "hung", "running"} <= set(shown)
    assert {"completed", "preempted", "lost"}.isdisjoint(shown)
    assert {"1.00", "1.01", "1.02", "gpu_oom"} <= set(shown)  # few attempts: bars labelled

    shown = texts(timeline([attempt(0, "completed"), attempt(1, "completed")]) or "")
    assert "completed" in shown and "crashed" not in shown


def test_timeline_draws_a_bar_alone_for_an_attempt_without_steps() -> None:
    rows = [attempt(0, "lost", first_step=None, last_step=None), attempt(1, "mystery")]
    svg = timeline(rows) or ""
    assert {"lost", "mystery", "1.00", "1.01"} <= set(texts(svg))
    assert STATUS_COLOURS["lost"] in svg


def test_curves_marks_nonfinite_steps_and_markers_by_kind() -> None:
    markers = [
        {"step": 400, "kind": "restart", "label": "1.01"},
        {"step": 600, "kind": "loss_spike", "label": "spike"},
        {"step": 700, "kind": "throughput_drop", "label": ""},
    ]
    shown = texts(curves("loss", loss(1000, nan_at=(10, 500)), markers) or "")
    assert {"loss", "NaN/inf", "restart", "loss_spike", "throughput_drop", "1.01"} <= set(shown)
    assert "hparam_change" not in shown

    shown = texts(curves("loss", loss(1000), []) or "")
    assert "NaN/inf" not in shown and "restart" not in shown


def test_curves_labels_markers_only_while_few() -> None:
    restarts = [{"step": 40 * i, "kind": "restart", "label": f"r{i}"} for i in range(20)]
    shown = texts(curves("loss", loss(1000), restarts) or "")
    assert "restart" in shown and not {f"r{i}" for i in range(20)} & set(shown)


def test_curves_log_axis_when_spanning_decades() -> None:
    lr = [(s, 10 ** (-s / 100), 10 ** (-s / 100), 10 ** (-s / 100)) for s in range(500)]
    assert {"0.1", "0.001"} <= set(texts(curves("lr", lr, []) or ""))
    linear = texts(curves("lr", lr, [], log_y=False) or "")
    assert "0.001" not in linear and "0.2" in linear


def test_datamix_stacks_sources_per_declaration() -> None:
    shown = texts(datamix(mix_history()) or "")
    assert {"web", "code", "books", HOSTILE, "1.00", "1.01", "1.02", "100%"} <= set(shown)
    assert [s for s in shown if s.startswith("step ")] == ["step 0", "step 30k"]  # 1.01: no step


def test_incidents_orders_classes_by_count() -> None:
    rows = [
        {"class": "nccl_timeout", "count": 3, "time_lost_s": 12 * 3600},
        {"class": "gpu_oom", "count": 7, "time_lost_s": 5 * 3600},
        {"class": MATH, "count": 1, "time_lost_s": 60},
    ]
    shown = texts(incidents(rows) or "")
    classes = [s for s in shown if s in {"nccl_timeout", "gpu_oom", MATH}]
    assert classes == ["gpu_oom", "nccl_timeout", MATH]
    assert {"7", "3", "1", "5.0", "12.0", "<0.1", "incidents", "hours lost"} <= set(shown)


def test_utilization_has_both_axes() -> None:
    shown = texts(utilization(hourly(48)) or "")
    assert {"GPU utilization (%)", "power per GPU (W)"} <= set(shown)


def test_nothing_to_draw_gives_none() -> None:
    assert timeline([]) is None
    assert curves("loss", [], []) is None
    assert datamix([]) is None
    assert datamix([{"step": 1, "time": T0, "attempt": "1.00", "source": "web", "weight": None}]) is None  # fmt: skip
    assert incidents([]) is None
    assert utilization([]) is None
    none = {"time": T0, "gpu_util_pct": None, "power_w": None}
    assert utilization([none]) is None


def test_user_strings_are_drawn_literally_and_escaped() -> None:
    rows = [attempt(0, "crashed", label=HOSTILE, crash_class=MATH), attempt(1, MATH, label=MATH)]
    markers = [{"step": 5, "kind": HOSTILE, "label": MATH}]
    figures = [
        timeline(rows),
        curves(f"{HOSTILE} {MATH}", loss(50), markers),
        datamix(mix_history()),
        incidents([{"class": HOSTILE, "count": 1, "time_lost_s": 1.0}]),
    ]
    for svg in figures:
        assert svg is not None
        assert "&lt;script&gt;" in svg and "<script" not in svg
        assert any(s.startswith("<script>") for s in texts(svg))  # long labels are cut
    for svg in figures[:2]:
        assert any(MATH in s for s in texts(svg))
        assert MATH in (svg or "")


def test_same_input_same_bytes() -> None:
    for draw in (
        lambda: timeline([attempt(0, "crashed"), attempt(1, "running")]),
        lambda: curves("loss", loss(300, nan_at=(7,)), [{"step": 9, "kind": "nan", "label": ""}]),
        lambda: datamix(mix_history()),
        lambda: incidents([{"class": "gpu_oom", "count": 2, "time_lost_s": 60.0}]),
        lambda: utilization(hourly(30)),
    ):
        first = draw()
        assert first is not None and first == draw()
        assert "<dc:date>" not in first  # no build date in the metadata


def test_figures_built_in_threads_match() -> None:
    from concurrent.futures import ThreadPoolExecutor

    jobs = [lambda: timeline([attempt(0, "crashed")]), lambda: curves("loss", loss(500), [])] * 4
    with ThreadPoolExecutor(4) as pool:
        built = list(pool.map(lambda job: job(), jobs))
    assert built == [job() for job in jobs]


def refs(fragment: str) -> tuple[set[str], set[str]]:
    """The ids defined in a fragment, and the ids its url(#...) and href="#..." point to."""
    root = ET.fromstring(fragment)
    ids = {el.attrib["id"] for el in root.iter() if "id" in el.attrib}
    pointed = set(re.findall(r"url\(#([^)]+)\)", fragment))
    for el in root.iter():
        for key in ("href", XLINK_HREF):
            if el.attrib.get(key, "").startswith("#"):
                pointed.add(el.attrib[key][1:])
    return ids, pointed


def test_inline_prefixes_ids_so_figures_share_a_page() -> None:
    svg = curves("loss", loss(200), [{"step": 50, "kind": "loss_spike", "label": ""}]) or ""
    a = inline(svg, "curve-loss", label='loss over steps, "smoothed" <raw>')
    b = inline(timeline([attempt(0, "crashed")]) or "", "timeline", label="attempts")
    (ids_a, refs_a), (ids_b, refs_b) = refs(a), refs(b)
    assert ids_a and ids_b and not ids_a & ids_b
    assert refs_a and refs_a <= ids_a and refs_b <= ids_b
    assert all(i == "curve-loss" or i.startswith("curve-loss-") for i in ids_a)
    root = ET.fromstring(a)
    assert root.attrib["role"] == "img" and root.attrib["width"] == "100%"
    assert root.attrib["aria-label"] == 'loss over steps, "smoothed" <raw>'
    assert "height" not in root.attrib and root.attrib["viewBox"].startswith("0 0 ")
    assert not a.startswith("<?xml") and "<!DOCTYPE" not in a and "<metadata" not in a
    assert "#curve-loss *{" in a  # matplotlib's stylesheet applies to this figure only
    with pytest.raises(ValueError, match="cannot start an id"):
        inline(svg, '1" onload="x', label="loss")


def test_big_runs_stay_small() -> None:
    started = time.perf_counter()
    svg = timeline(many_attempts(200, days=100)) or ""
    built = time.perf_counter() - started
    print(f"timeline, 200 attempts over 100 days: {len(svg) / 1000:.0f} kB in {built:.2f} s")
    assert len(svg) < 600_000
    assert "1.07" not in texts(svg)  # too many bars to label each

    started = time.perf_counter()
    svg = curves("loss", loss(150_000, nan_at=(77_777,)), []) or ""
    built = time.perf_counter() - started
    print(f"curve, 150,000 points: {len(svg) / 1000:.0f} kB in {built:.2f} s")
    assert len(svg) < 600_000
    assert "NaN/inf" in texts(svg)


def test_downsample_keeps_extremes_and_nonfinite() -> None:
    rng = random.Random(5)
    points = [(s, rng.gauss(0, 1)) for s in range(100_000)]
    points[12_345] = (12_345, 50.0)
    points[54_321] = (54_321, -50.0)
    points[99] = (99, float("nan"))
    points[70_000] = (70_000, float("-inf"))
    out = downsample(points, 1000)
    finite = [p for p in out if math.isfinite(p[1])]
    assert len(finite) <= 1000 and len(out) == len(finite) + 2
    assert min(p[2] for p in finite) == -50.0 and max(p[3] for p in finite) == 50.0
    assert [p[0] for p in out if not math.isfinite(p[1])] == [99, 70_000]
    assert [p[0] for p in out] == sorted(p[0] for p in out)
    assert out[-1] == (99_999, points[-1][1], out[-1][2], out[-1][3])
    assert downsample(points[:10], 1000) == [(s, v, v, v) for s, v in points[:10]]
    with pytest.raises(ValueError):
        downsample(points, 0)


def test_marker_labels_on_one_step_are_one_label() -> None:
    """A relaunch that restarts and changes the lr at one step (#16): one label, both told."""
    markers = [
        {"step": 400, "kind": "restart", "label": "1.01 after oom"},
        {"step": 400, "kind": "hparam_change", "label": "lr -> 4e-05"},
        {"step": 402, "kind": "data_mix_change", "label": "more code"},
        {"step": 800, "kind": "restart", "label": "1.02 after hang"},
    ]
    shown = texts(curves("loss", loss(1000), markers) or "")
    told = [t for t in shown if "after" in t or "lr " in t or "code" in t]
    assert len(told) == 2, told
    assert "1.01 after oom" in told[0] and "4e-05" in told[0] and "more code" in told[0]


def test_incidents_with_unknown_time_lost_draw_no_zero() -> None:
    rows = [
        {"class": "gpu_oom", "count": 2, "time_lost_s": None},
        {"class": "nccl_timeout", "count": 1, "time_lost_s": 7200},
    ]
    shown = texts(incidents(rows) or "")
    assert "unknown" in shown and "2.0" in shown  # the bars' labels
    nothing = texts(incidents([{"class": "gpu_oom", "count": 2, "time_lost_s": None}]) or "")
    assert "time lost not measured" in nothing


def test_timeline_without_steps_says_so() -> None:
    rows = [attempt(i, "crashed", first_step=None, last_step=None, resumed_from_step=None) for i in range(3)]  # fmt: skip
    assert "no steps on record" in texts(timeline(rows) or "")


def titles(svg: str) -> list[str]:
    """The tooltips of a figure: its <title> elements' text (the SVG must parse)."""
    return ["".join(el.itertext()) for el in ET.fromstring(svg).iter(f"{SVG}title")]


def test_hovering_says_each_attempt_and_a_curves_values() -> None:
    rows = [attempt(0, "crashed"), attempt(1, "running", label=HOSTILE)]
    said = titles(timeline(rows) or "")
    assert said == [
        "1.00: crashed (gpu_oom), 2026-03-01 00:00 UTC to 2026-03-01 03:00 UTC, steps 0–900",
        f"{HOSTILE}: running, 2026-03-01 04:00 UTC to still running, steps 1,000–1,900",
    ]
    points = loss(1000)
    said = titles(curves("loss", points, []) or "")
    assert len(said) == 60 and said[-1] == f"step 999: loss {points[-1][1]:.6g}"
    step, value = re.fullmatch(r"step ([\d,]+): loss (\S+)", said[30]).groups()  # type: ignore[union-attr]
    assert float(value) == pytest.approx(points[int(step.replace(",", ""))][1], rel=1e-5)
    by_lineage = curves("loss", points, [], lineages={"1": points[:500], "2": points[500:]}) or ""
    said = titles(by_lineage)
    assert len(said) == 60 and said[0] == f"step 0: loss (lineage 1) {points[0][1]:.6g}"
    assert said[-1] == f"step 999: loss (lineage 2) {points[-1][1]:.6g}"
    # each spot sits on its point: the last on the line's last vertex
    svg = curves("loss", points, []) or ""
    last = ET.fromstring(svg).findall(f".//{SVG}rect")[-1]
    line = [
        el
        for el in ET.fromstring(svg).iter(f"{SVG}path")
        if el.attrib.get("d", "").count("L") > 500
    ]
    x, y = map(float, line[0].attrib["d"].split()[-2:])
    assert float(last.attrib["x"]) + 3 == pytest.approx(x, abs=0.2)
    assert float(last.attrib["y"]) + 3 == pytest.approx(y, abs=0.2)
    # downsampled: a hovered bucket gives its range too
    assert " in its bucket)" in titles(curves("loss", loss(150_000), []) or "")[5]
