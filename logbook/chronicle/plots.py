"""The plots of a run's chronicle, as SVG text to inline in its pages.

Each figure is drawn with matplotlib's object API (a `Figure`, never pyplot) under `rc_context`, so
no global setting changes and nothing outlives the call. The SVG is made to be published and diffed:

- deterministic: the same input gives the same bytes (a fixed `svg.hashsalt`, no date in the
  metadata), so a rebuilt chronicle changes only where the run did;
- escaped: metric names, attempt labels, sources and classes come from users and training output;
  they are drawn literally (`text.parse_math` off, so "$loss$" is not mathtext) and matplotlib's SVG
  writer escapes them as XML text, so "<script>" stays text;
- self-contained: text stays text (`svg.fonttype` none), with no fonts, images or links to fetch,
  and `inline` prefixes the ids so several plots share a page.

Callers pass downsampled data (see `downsample`); each function also thins what is too big, and
returns None when there is nothing to draw, so the page can say what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

from logbook.chronicle._style import (
    ALERT_COLOUR,
    LINE_COLOUR,
    MAX_POINTS,
    STATUS_COLOURS,
    compact,
    date_axis,
    figure,
    hover,
    inline,
    short,
    status_colour,
    tip,
    to_svg,
)
from logbook.chronicle.numbers import figure as number

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

__all__ = [
    "STATUS_COLOURS",
    "curves",
    "datamix",
    "downsample",
    "incidents",
    "inline",
    "step_deviation",
    "timeline",
    "utilization",
]

Point = tuple[int, float, float, float]  # step, value, min and max of its bucket
LABELLED_ATTEMPTS = 30  # more attempts than this and the strip's bars go unlabelled
LABELLED_CRASHES = 8
LABELLED_MARKERS = 15  # per kind
LABEL_CHARS = 40  # a label along the axis's height, not past it
LABEL_GAP = 0.015  # of the x axis: closer marker labels would overlap (6.5 pt text on 612 pt)
MOST_NONFINITE = 1000  # NaN/inf ticks drawn per curve
HOVER_POINTS = 60  # per curve, shared by its lineages: each says its step and value
MOST_CLASSES = 20
# How each kind of marker is drawn on a curve: vertical lines, red alerts on top, others grey.
LINE_KINDS: dict[str, tuple[str, Literal["--", ":", "-."]]] = {
    "restart": ("#616161", "--"),
    "hparam_change": (LINE_COLOUR, ":"),
    "data_mix_change": (STATUS_COLOURS["interrupted"], "-."),
}
ALERT_KINDS = ("loss_spike", "nan", "grad_norm_explosion", "loss_scale_collapse")
OTHER_COLOUR = "#9e9e9e"


def downsample(points: Sequence[tuple[int, float]], max_points: int) -> list[Point]:
    """At most max_points buckets of equal step width, NaN and inf kept apart so none is lost.

    Args:
        points: (step, value) pairs.
        max_points: buckets wanted (NaN/inf points come on top).

    Returns:
        (last step, last value, min, max) per bucket, and (step, v, v, v) per NaN/inf, by step.
    """
    return _bucket([(s, v, v, v) for s, v in points], max_points)


def timeline(attempts: Sequence[dict[str, Any]]) -> str | None:
    """Steps reached over wall-clock time, and a strip of attempts with downtime between them.

    Args:
        attempts: dicts with label, start, end (None while running), status, crash_class,
            first_step, last_step and resumed_from_step; times UTC-aware.

    Returns:
        SVG text, or None without attempts.
    """
    if not attempts:
        return None
    from matplotlib.collections import LineCollection
    from matplotlib.dates import date2num
    from matplotlib.patches import Patch

    rows = sorted(attempts, key=lambda a: a["start"])
    latest = max(max(a["start"], a["end"] or a["start"]) for a in rows)
    spans = [(float(date2num(a["start"])), float(date2num(a["end"] or latest))) for a in rows]
    statuses = _ordered({a["status"] for a in rows})
    with figure(4.6) as fig:
        progress, strip = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        for status in statuses:
            mine = [(a, span) for a, span in zip(rows, spans, strict=True) if a["status"] == status]
            moved = [(a, span) for a, span in mine if a["last_step"] is not None]
            segments = [[(x0, _start_step(a)), (x1, a["last_step"])] for a, (x0, x1) in moved]
            colour = status_colour(status)
            progress.add_collection(LineCollection(segments, colors=colour, linewidths=1.4))
            ends = ([x1 for _, (_, x1) in moved], [a["last_step"] for a, _ in moved])
            marker = "x" if status == "crashed" else "o"
            progress.plot(*ends, ls="", marker=marker, ms=4 if marker == "o" else 5, color=colour)
        crashed = [(a, s) for a, s in zip(rows, spans, strict=True) if a["status"] == "crashed"]
        if len(crashed) <= LABELLED_CRASHES:
            for a, (_, x1) in crashed:
                if a["last_step"] is not None and a["crash_class"]:
                    text = short(str(a["crash_class"]), 24)
                    progress.annotate(text, (x1, a["last_step"]), xytext=(4, 3), fontsize=7,
                                      textcoords="offset points", color=STATUS_COLOURS["crashed"])  # fmt: skip
        if all(a["last_step"] is None for a in rows):  # an empty panel, not a run stuck at 0
            progress.text(0.5, 0.5, "no steps on record", transform=progress.transAxes,
                          ha="center", va="center", fontsize=8, color=OTHER_COLOUR)  # fmt: skip
            progress.set_yticks([])
        progress.set_ylabel("step")
        progress.set_ylim(bottom=0)
        progress.yaxis.set_major_formatter(compact)
        for a, (x0, x1) in zip(rows, spans, strict=True):  # one bar each, to hover over
            bar = strip.broken_barh(
                [(x0, x1 - x0)], (0.45, 0.5), facecolors=status_colour(a["status"])
            )
            tip(bar, _attempt_tip(a))
        if len(rows) <= LABELLED_ATTEMPTS:
            for i, (a, (x0, x1)) in enumerate(zip(rows, spans, strict=True)):
                strip.text((x0 + x1) / 2, 0.28 - 0.2 * (i % 2), short(str(a["label"]), 12),
                           ha="center", va="center", fontsize=7, clip_on=True)  # fmt: skip
        strip.set_ylim(0, 1)
        strip.set_yticks([])
        strip.grid(False)
        strip.set_ylabel("attempts")
        first, last = min(x0 for x0, _ in spans), max(x1 for _, x1 in spans)
        pad = max((last - first) * 0.03, 2 / 86400)  # a 40-second demo fills the axis too
        strip.set_xlim(first - pad, last + pad)
        date_axis(strip.xaxis)
        strip.set_xlabel("time (UTC)")
        handles = [Patch(color=status_colour(s), label=short(str(s), 20)) for s in statuses]
        fig.legend(handles=handles, loc="outside upper right", ncols=min(len(handles), 8))
        return to_svg(fig)


MOST_CAUSES = 6  # lines in the restarts-over-time figure; the rest are summed as "other"


def restarts(ends: Sequence[dict[str, Any]]) -> str | None:
    """How many attempts each cause had ended so far, over wall-clock time: a step line per cause
    (the OPT logbook's question, "what kept stopping us, and when").

    Args:
        ends: dicts with time (UTC-aware) and cause, one per attempt that ended short of
            completion; the most frequent MOST_CAUSES causes get a line, the rest one "other".

    Returns:
        SVG text, or None with fewer than two such ends.
    """
    rows = sorted((e for e in ends if e["time"] is not None), key=lambda e: e["time"])
    if len(rows) < 2:
        return None
    from collections import Counter

    from matplotlib import colormaps

    counts = Counter(str(e["cause"]) for e in rows)
    top = [c for c, _ in counts.most_common(MOST_CAUSES)]
    cause = [c if c in top else "other" for c in (str(e["cause"]) for e in rows)]
    names = top + (["other"] if "other" in cause and "other" not in top else [])
    palette = colormaps["tab10"].colors  # type: ignore[attr-defined]
    with figure(3.0) as fig:
        ax = fig.subplots()
        first, last = rows[0]["time"], rows[-1]["time"]
        for i, name in enumerate(names):
            times = [e["time"] for e, c in zip(rows, cause, strict=True) if c == name]
            xs = [first, *times, last]
            ys = [0, *range(1, len(times) + 1), len(times)]
            colour = STATUS_COLOURS.get(name) or palette[i % len(palette)]
            ax.step(xs, ys, where="post", color=colour, lw=1.3, label=f"{short(name, 24)} ({len(times)})")  # fmt: skip
        ax.set_ylabel("ends so far")
        ax.set_ylim(bottom=0)
        date_axis(ax.xaxis)
        ax.set_xlabel("time (UTC)")
        fig.legend(loc="outside upper right", ncols=min(len(names), 4))
        return to_svg(fig)


def curves(
    name: str,
    points: Sequence[Point],
    markers: Sequence[dict[str, Any]],
    *,
    log_y: bool | None = None,
    lineages: dict[str, Sequence[Point]] | None = None,
) -> str | None:
    """One metric over steps: its value, the min-max band of each bucket, NaN/inf steps, markers.

    Args:
        name: the metric, drawn as the title.
        points: (step, value, min, max) in step order; more than MAX_POINTS are downsampled.
        markers: dicts with step, kind (restart, hparam_change, an alert kind, ...) and label.
        log_y: a log y axis; None to choose one when the values are positive and span 2 decades.
        lineages: the points of each lineage of the run, when it has several: one line each, in
            a colour of its own and named in the legend (`points` is then their union).

    Returns:
        SVG text, or None without points.
    """
    if not points:
        return None
    series = lineages if lineages and len(lineages) > 1 else {"": points}
    drawn = {k: _bucket(v, MAX_POINTS) if len(v) > MAX_POINTS else v for k, v in series.items()}
    good = [(s, v, _or(lo, v), _or(hi, v)) for p in drawn.values() for s, v, lo, hi in p if math.isfinite(v)]  # fmt: skip
    bad = _thin(sorted(s for p in drawn.values() for s, v, _, _ in p if not math.isfinite(v)), MOST_NONFINITE)  # fmt: skip
    steps = [p[0] for p in good]
    lows, highs = [p[2] for p in good], [p[3] for p in good]
    with figure(3.2) as fig:
        ax = fig.subplots()
        ax.set_title(name)
        handles: list[Artist] = []
        for i, (lineage, pts) in enumerate(drawn.items()):
            mine = [(s, v, _or(lo, v), _or(hi, v)) for s, v, lo, hi in pts if math.isfinite(v)]
            colour = LINE_COLOUR if not lineage else _LINEAGE_COLOURS[i % len(_LINEAGE_COLOURS)]
            xs = [p[0] for p in mine]
            if any(lo != hi for _, _, lo, hi in mine):
                band = ax.fill_between(xs, [p[2] for p in mine], [p[3] for p in mine],
                                       color=colour, alpha=0.18, lw=0)  # fmt: skip
                if not lineage:
                    band.set_label("min/max")
                    handles.append(band)
            line = ax.plot(xs, [p[1] for p in mine], color=colour, lw=1.2,
                           marker="o" if len(mine) < 2 else "")  # fmt: skip
            _hover_points(ax, name, lineage, mine, HOVER_POINTS // len(drawn))
            if lineage:
                line[0].set_label(f"lineage {lineage}")
                handles += line
        if bad:
            handles += ax.plot(bad, [0.0] * len(bad), ls="", marker="|", ms=7, mew=1.2,
                               color=ALERT_COLOUR, transform=ax.get_xaxis_transform(),
                               clip_on=False, label="NaN/inf")  # fmt: skip
        every = steps + [m["step"] for m in markers] + bad
        handles += _draw_markers(ax, markers, float(max(every) - min(every)) if every else 0.0)
        positive = good and min(lows) > 0
        if log_y or (log_y is None and positive and max(highs) > 100 * min(lows)):
            from matplotlib.ticker import NullFormatter

            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(compact)
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(compact)
        ax.set_xlabel("step")
        if handles:
            fig.legend(handles=handles, loc="outside upper right", ncols=min(len(handles), 6))
        return to_svg(fig)


# One colour per lineage on a curve (tab10 less the alert red), the first the usual line colour.
_LINEAGE_COLOURS = (LINE_COLOUR, "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip


def datamix(history: Sequence[dict[str, Any]]) -> str | None:
    """The share of each source in each data-mix declaration, stacked, declarations in order.

    Args:
        history: one dict per source per declaration, in time order: step (or None), time,
            attempt (its label), source and weight (or None). A source left out of a
            declaration counts 0; weights are shown as shares of their declaration's total.

    Returns:
        SVG text, or None without a weight.
    """
    if not any(r["weight"] is not None for r in history):
        return None
    from matplotlib import colormaps
    from matplotlib.ticker import PercentFormatter

    declarations: dict[tuple[Any, ...], dict[str, float]] = {}
    for r in history:
        key = (r["time"], str(r["attempt"]), r["step"])
        declarations.setdefault(key, {})[str(r["source"])] = r["weight"] or 0.0
    sources = list(dict.fromkeys(str(r["source"]) for r in history))
    shares = [[d.get(s, 0.0) / (sum(d.values()) or 1.0) for s in sources] for d in declarations.values()]  # fmt: skip
    n = len(shares)
    palette = colormaps["tab10" if len(sources) <= 10 else "tab20"].colors  # type: ignore[attr-defined]
    with figure(3.4) as fig:
        ax = fig.subplots()
        below = [0.0] * n
        for j, source in enumerate(sources):
            above = [b + row[j] for b, row in zip(below, shares, strict=True)]
            ax.fill_between(range(n + 1), below + below[-1:], above + above[-1:], step="post",
                            lw=0, color=palette[j % len(palette)], label=short(source, 28))  # fmt: skip
            below = above
        every = max(1, math.ceil(n / 12))
        ticks = list(range(0, n, every))
        keys = list(declarations)
        names = [short(keys[i][1], 12) + ("" if keys[i][2] is None else f"\nstep {compact(keys[i][2])}") for i in ticks]  # fmt: skip
        ax.set_xticks([i + 0.5 for i in ticks], names)
        ax.tick_params(axis="x", length=0)
        ax.set_xlim(0, n)
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylabel("share of the mix")
        ax.set_xlabel("declaration (attempt, step)")
        ax.grid(False)
        fig.legend(loc="outside right upper", ncols=1 if len(sources) <= 14 else 2)
        return to_svg(fig)


def incidents(by_class: Sequence[dict[str, Any]]) -> str | None:
    """How often each class of incident happened and the hours it cost, most frequent on top.

    Args:
        by_class: dicts with class, count and time_lost_s (None: unknown, drawn as no bar and
            said so); past MOST_CLASSES the rest are summed (unknown if one of them is).

    Returns:
        SVG text, or None without rows.
    """
    if not by_class:
        return None
    rows = sorted(
        ((str(r["class"]), int(r["count"]), _hours_of(r["time_lost_s"])) for r in by_class),
        key=lambda r: (-r[1], -(r[2] or 0.0), r[0]),
    )
    if len(rows) > MOST_CLASSES:
        rest = rows[MOST_CLASSES - 1 :]
        hours = [r[2] for r in rest]
        summed = None if None in hours else sum(h for h in hours if h is not None)
        rows = rows[: MOST_CLASSES - 1] + [(f"{len(rest)} other classes", sum(r[1] for r in rest), summed)]  # fmt: skip
    names = [short(name, 32) for name, _, _ in rows]
    counts, lost_h = [r[1] for r in rows], [r[2] for r in rows]
    with figure(1.1 + 0.3 * len(rows)) as fig:
        left, right = fig.subplots(1, 2, sharey=True)
        found = left.barh(range(len(rows)), counts, color=STATUS_COLOURS["crashed"], height=0.7)
        left.bar_label(found, [str(c) for c in counts], padding=2, fontsize=7)
        # An unknown time lost is no bar and says so, never a bar of 0 (#16).
        widths = [math.nan if h is None else h for h in lost_h]
        lost = right.barh(range(len(rows)), widths, color=STATUS_COLOURS["hung"], height=0.7)
        right.bar_label(lost, ["" if h is None else _hours(h) for h in lost_h], padding=2,
                        fontsize=7)  # fmt: skip
        for i in (i for i, h in enumerate(lost_h) if h is None):  # bar_label leaves NaN bars bare
            right.annotate("unknown", (0, i), xytext=(2, 0), textcoords="offset points",
                           va="center", fontsize=7, color=OTHER_COLOUR)  # fmt: skip
        if all(h is None for h in lost_h):
            right.text(0.5, 0.5, "time lost not measured", transform=right.transAxes,
                       ha="center", va="center", fontsize=8, color=OTHER_COLOUR)  # fmt: skip
            right.set_xticks([])
        left.set_yticks(range(len(rows)), names)
        left.invert_yaxis()
        for ax, title in ((left, "incidents"), (right, "hours lost")):
            ax.set_title(title)
            ax.margins(x=0.15)
            ax.grid(axis="y", visible=False)
            ax.tick_params(axis="y", length=0)
        right.tick_params(axis="y", labelleft=False)
        return to_svg(fig)


def utilization(rows: Sequence[dict[str, Any]]) -> str | None:
    """GPU utilization (left, %) and mean power per GPU (right, W) over time, gaps left open.

    Args:
        rows: dicts with time (UTC-aware), gpu_util_pct and power_w (the means over the GPUs'
            readings; either may be None); in time order.

    Returns:
        SVG text, or None without a value to draw.
    """
    if len(rows) > MAX_POINTS:
        rows = rows[:: math.ceil(len(rows) / MAX_POINTS)]
    util = [_num(r["gpu_util_pct"]) for r in rows]
    power = [_num(r["power_w"]) for r in rows]
    if all(math.isnan(v) for v in util + power):
        return None
    from matplotlib.dates import date2num

    times = [float(date2num(r["time"])) for r in rows]
    times, util, power = _break_gaps(times, util, power)
    with figure(3.0) as fig:
        ax = fig.subplots()
        twin = ax.twinx()
        handles = ax.plot(times, util, color=LINE_COLOUR, lw=1.1, label="GPU utilization (%)")
        handles += twin.plot(times, power, color=STATUS_COLOURS["hung"], lw=1.1,
                             label="power per GPU (W)")  # fmt: skip
        ax.set_ylim(0, max(100.0, *(v for v in util if not math.isnan(v))) * 1.04)
        ax.set_ylabel("GPU utilization (%)")
        twin.set_ylim(bottom=0)
        twin.set_ylabel("power per GPU (W)")
        twin.spines["right"].set_visible(True)
        twin.grid(False)
        date_axis(ax.xaxis)
        ax.set_xlabel("time (UTC)")
        fig.legend(handles=handles, loc="outside upper right", ncols=2)
        return to_svg(fig)


def step_deviation(rows: Sequence[dict[str, Any]]) -> str | None:
    """Step-time deviation over time (#19): each reading's step time over its attempt's running
    median (1 = as usual), slow ones in red, a dashed line at `SLOW`.

    Args:
        rows: dicts with time (UTC-aware), deviation (None before the median is known: not
            drawn) and slow, as `logbook goodput --steps` gives them; in time order.

    Returns:
        SVG text, or None without a deviation to draw.
    """
    from logbook.query.goodput import SLOW

    known = [r for r in rows if r.get("deviation") is not None]
    if not known:
        return None
    if len(known) > MAX_POINTS:  # keep every slow one, thin the rest
        step = math.ceil(len(known) / MAX_POINTS)
        known = [r for i, r in enumerate(known) if r["slow"] or i % step == 0]
    from matplotlib.dates import date2num

    times = [float(date2num(r["time"])) for r in known]
    dev = [float(r["deviation"]) for r in known]
    with figure(2.6) as fig:
        ax = fig.subplots()
        ax.plot(times, dev, color=LINE_COLOUR, lw=0.9, marker=".", ms=3, label="step time / median")
        slow = [(t, d) for t, d, r in zip(times, dev, known, strict=True) if r["slow"]]
        if slow:
            ax.scatter([t for t, _ in slow], [d for _, d in slow], color=STATUS_COLOURS["crashed"],
                       s=14, zorder=3, label="slow step")  # fmt: skip
        ax.axhline(1.0, color=OTHER_COLOUR, lw=0.8)
        ax.axhline(SLOW, color=STATUS_COLOURS["crashed"], lw=0.8, ls="--")
        ax.set_ylim(bottom=0)
        ax.set_ylabel("× running median")
        date_axis(ax.xaxis)
        ax.set_xlabel("time (UTC)")
        ax.legend(loc="upper right", fontsize=7)
        return to_svg(fig)


def _bucket(points: Sequence[Point], max_points: int) -> list[Point]:
    """Merge points into at most max_points buckets of equal step width; NaN/inf stay apart."""
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, not {max_points}")
    if len(points) <= max_points:
        return list(points)
    points = sorted(points, key=lambda p: p[0])
    first, span = points[0][0], points[-1][0] - points[0][0] + 1
    out: list[Point] = []
    current: list[Any] = []  # bucket, step, value, lo, hi
    for step, value, lo, hi in points:
        if not math.isfinite(value):
            out.append((step, value, value, value))
            continue
        lo, hi = _or(lo, value), _or(hi, value)
        bucket = (step - first) * max_points // span
        if current and current[0] == bucket:
            current[1:] = [step, value, min(current[3], lo), max(current[4], hi)]
            continue
        if current:
            out.append(tuple(current[1:]))  # type: ignore[arg-type]
        current = [bucket, step, value, lo, hi]
    if current:
        out.append(tuple(current[1:]))  # type: ignore[arg-type]
    return sorted(out, key=lambda p: p[0])


def _attempt_tip(a: dict[str, Any]) -> str:
    """One attempt, as hovering over its bar says it: label, end, times and steps."""
    crash_class = a.get("crash_class")
    how = a["status"] + (f" ({crash_class})" if crash_class and crash_class != a["status"] else "")
    end = f"{a['end']:%Y-%m-%d %H:%M} UTC" if a["end"] else "still running"
    steps = f", steps {a['first_step']:,}–{a['last_step']:,}" if a.get("first_step") is not None and a["last_step"] is not None else ""  # fmt: skip
    return f"{a['label']}: {how}, {a['start']:%Y-%m-%d %H:%M} UTC to {end}{steps}"


def _hover_points(ax: Axes, name: str, lineage: str, points: Sequence[Point], most: int) -> None:
    """Up to `most` points of a line, evenly spread and the last among them, that say their step
    and value when hovered over."""
    if not points or most < 1:
        return
    picked = sorted({round(i * (len(points) - 1) / max(most - 1, 1)) for i in range(most)})
    said = f"{name} (lineage {lineage})" if lineage else name
    spots = []
    for s, v, lo, hi in (points[i] for i in picked):
        spread = f" (from {number(lo)} to {number(hi)} in its bucket)" if lo != hi else ""
        spots.append((float(s), v, f"step {s:,}: {said} {number(v)}{spread}"))
    hover(ax, spots)


def _draw_markers(ax: Axes, markers: Sequence[dict[str, Any]], span: float) -> list[Artist]:
    """Draw markers by kind (lines, alert triangles, grey ticks); return their legend handles.
    Labels of markers closer than a label's width (span: the steps the axis covers) are one
    label, so none is drawn over another (#16)."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for m in markers:
        by_kind.setdefault(str(m["kind"]), []).append(m)
    handles: list[Artist] = []
    alerts = [k for k in ALERT_KINDS if k in by_kind]
    others = sorted(k for k in by_kind if k not in LINE_KINDS and k not in ALERT_KINDS)
    on_x = ax.get_xaxis_transform()
    for kind in [k for k in LINE_KINDS if k in by_kind]:
        colour, style = LINE_KINDS[kind]
        steps = [m["step"] for m in by_kind[kind]]
        handles.append(ax.vlines(steps, 0, 1, transform=on_x, colors=colour, linestyles=style,
                                 lw=1.0, label=kind))  # fmt: skip
    if alerts:
        steps = [m["step"] for k in alerts for m in by_kind[k]]
        handles += ax.plot(steps, [1.0] * len(steps), ls="", marker="v", ms=6, color=ALERT_COLOUR,
                           transform=on_x, clip_on=False, label=", ".join(alerts))  # fmt: skip
    if others:
        steps = [m["step"] for k in others for m in by_kind[k]]
        label = ", ".join(others) if len(others) <= 3 else f"{len(others)} other kinds"
        handles += ax.plot(steps, [1.0] * len(steps), ls="", marker="|", ms=6, color=OTHER_COLOUR,
                           transform=on_x, clip_on=False, label=short(label, 40))  # fmt: skip
    labelled = [
        m for group in by_kind.values() if len(group) <= LABELLED_MARKERS for m in group
        if m.get("label")
    ]  # fmt: skip
    for step, group in _close_together(labelled, span):
        kinds = {m["kind"] for m in group}
        kind = next(iter(kinds))
        colour = LINE_KINDS[kind][0] if len(kinds) == 1 and kind in LINE_KINDS else "#424242"
        text = "; ".join(dict.fromkeys(str(m["label"]) for m in group))
        ax.text(step, 0.95, short(text, LABEL_CHARS), transform=on_x, rotation=90, ha="right", va="top",
                fontsize=6.5, color=colour, clip_on=True)  # fmt: skip
    return handles


def _close_together(
    markers: list[dict[str, Any]], span: float
) -> list[tuple[int, list[dict[str, Any]]]]:
    """Markers grouped where each is within LABEL_GAP of the axis from the group's first, by step."""
    groups: list[tuple[int, list[dict[str, Any]]]] = []
    for m in sorted(markers, key=lambda m: m["step"]):
        if groups and m["step"] - groups[-1][0] <= LABEL_GAP * span:
            groups[-1][1].append(m)
        else:
            groups.append((m["step"], [m]))
    return groups


def _start_step(attempt: dict[str, Any]) -> int:
    """Where an attempt's progress line starts: its resumed-from step, its first step, or 0."""
    for key in ("resumed_from_step", "first_step"):
        if attempt.get(key) is not None:
            return int(attempt[key])
    return 0


def _ordered(statuses: Iterable[str]) -> list[str]:
    """Statuses in the palette's order, unknown ones after it by name."""
    known = [s for s in STATUS_COLOURS if s in statuses]
    return known + sorted(set(statuses) - set(known))


def _thin(steps: list[int], most: int) -> list[int]:
    """At most `most` of the steps, the first of each of that many equal-width bins."""
    if len(steps) <= most:
        return steps
    first, span = min(steps), max(steps) - min(steps) + 1
    return list({(s - first) * most // span: s for s in sorted(steps, reverse=True)}.values())


def _break_gaps(times: list[float], *series: list[float]) -> tuple[list[float], ...]:
    """Insert NaN where the time between rows is over 3 times the usual, so lines do not bridge."""
    gaps = sorted(b - a for a, b in pairwise(times))
    if not gaps or gaps[len(gaps) // 2] <= 0:
        return (times, *series)
    wide = 3 * gaps[len(gaps) // 2]
    out: list[list[float]] = [[] for _ in range(len(series) + 1)]
    for i, t in enumerate(times):
        if i and t - times[i - 1] > wide:
            for col in out:
                col.append(math.nan if col is not out[0] else (t + times[i - 1]) / 2)
        for col, source in zip(out, (times, *series), strict=True):
            col.append(source[i])
    return tuple(out)


def _or(value: float, fallback: float) -> float:
    """The value if finite, else the fallback."""
    return value if value is not None and math.isfinite(value) else fallback


def _num(value: float | None) -> float:
    """None as NaN."""
    return math.nan if value is None else float(value)


def _hours_of(seconds: float | None) -> float | None:
    """Seconds as hours, None (unknown) kept."""
    return None if seconds is None else float(seconds) / 3600


def _hours(h: float) -> str:
    """Hours as a bar label."""
    return "<0.1" if 0 < h < 0.05 else f"{h:.1f}"
