"""What the chronicle's plots share: the status palette, the matplotlib settings every figure is
drawn under, SVG output, and `inline`, which readies an SVG to sit in an HTML page beside others.
"""

from __future__ import annotations

import html
import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

# How an attempt ended, one colour each, for every plot and the HTML legend.
STATUS_COLOURS = {
    "completed": "#2e7d32",
    "running": "#1e6fc0",
    "crashed": "#c62828",
    "hung": "#ef6c00",
    "lost": "#808080",
    "interrupted": "#7b1fa2",
    "preempted": "#ad63c9",
}
UNKNOWN_COLOUR = "#b3a58c"
ALERT_COLOUR = STATUS_COLOURS["crashed"]
LINE_COLOUR = STATUS_COLOURS["running"]
WIDTH = 8.5  # inches: 612 pt of viewBox, text at 9 pt stays readable scaled to 800 px
MAX_POINTS = 4000  # per series; more is downsampled before drawing

_RC: dict[Any, Any] = {
    "svg.hashsalt": "logbook-chronicle",  # ids from a fixed salt: same input, same bytes
    "svg.fonttype": "none",  # text stays text; no glyphs or fonts embedded
    "text.parse_math": False,  # user strings are drawn literally: "$loss$" is not mathtext
    "text.usetex": False,
    "axes.formatter.use_mathtext": False,
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.titlelocation": "left",
    "axes.labelsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
}
# rc_context swaps the process-wide rcParams for its duration; one figure at a time keeps two
# builds in threads from seeing each other's settings.
_LOCK = threading.Lock()
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_TAG = re.compile(r"<[^>]+>")  # text is XML-escaped, so every "<" left opens a tag
_REF = re.compile(r'\sid="|url\(#|href="#')
_SIZE = re.compile(r'\s(?:width|height)="[^"]*"')
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # not allowed in XML 1.0
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)


def status_colour(status: str) -> str:
    """The colour of an attempt's status.

    Args:
        status: running, completed, crashed, ... (any other gets a neutral colour).

    Returns:
        A hex colour.
    """
    return STATUS_COLOURS.get(status, UNKNOWN_COLOUR)


@contextmanager
def figure(height: float) -> Iterator[Figure]:
    """A blank figure WIDTH inches wide, with the chronicle's settings in force while in use.

    Args:
        height: in inches.

    Returns:
        A context manager giving the figure; call `to_svg` inside it.
    """
    import matplotlib
    from matplotlib.figure import Figure

    with _LOCK, matplotlib.rc_context(_RC):
        yield Figure(figsize=(WIDTH, height), layout="constrained")


def tip(artist: Artist, text: str) -> None:
    """What a reader hovering over `artist` on the page sees: an SVG <title>, which browsers show
    as a tooltip with no script (the page's Content-Security-Policy allows none).

    Args:
        artist: drawn on a figure from `figure`.
        text: plain text; escaped when written.
    """
    fig = artist.get_figure()
    tips: dict[str, str] = fig.__dict__.setdefault("_logbook_tips", {})  # type: ignore[union-attr]
    gid = f"tip{len(tips)}"
    artist.set_gid(gid)
    tips[gid] = text


def hover(ax: Axes, spots: Sequence[tuple[float, float, str]]) -> None:
    """Spots of `ax` (x, y in data units) that say their text when hovered over: invisible
    squares with a <title>, added to the SVG text after drawing, far lighter than an artist each.

    Args:
        ax: an axes of a figure from `figure`.
        spots: (x, y, text); text is escaped when written.
    """
    ax.figure.__dict__.setdefault("_logbook_hover", []).append((ax, spots))


def _hover_svg(fig: Figure) -> str:
    """The hover spots of `fig` as SVG elements, placed as the figure was just drawn."""
    out = []
    scale = 72 / fig.dpi  # the SVG's units are points; transforms give pixels at fig.dpi
    top = fig.get_figheight() * 72
    for ax, spots in fig.__dict__.get("_logbook_hover", []):
        if not spots:
            continue
        xy = ax.transData.transform([(x, y) for x, y, _ in spots])
        for (x, y), (_, _, text) in zip(xy, spots, strict=True):
            title = html.escape(_CONTROL.sub(" ", text), quote=False)
            out.append(f'<rect x="{x * scale - 3:.1f}" y="{top - y * scale - 3:.1f}" '
                       f'width="6" height="6" fill-opacity="0"><title>{title}</title></rect>')  # fmt: skip
    return f'<g class="hover">{"".join(out)}</g>\n' if out else ""


def to_svg(fig: Figure) -> str:
    """The figure as SVG text, without a date in its metadata, with its tooltips (`tip`).

    Args:
        fig: a figure from `figure`.

    Returns:
        A standalone SVG document.
    """
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    spots = _hover_svg(fig)
    if spots:
        end = svg.rindex("</svg>")
        svg = svg[:end] + spots + svg[end:]
    for gid, text in fig.__dict__.get("_logbook_tips", {}).items():
        title = html.escape(_CONTROL.sub(" ", text), quote=False)
        svg = svg.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{title}</title>', 1)
    return svg


def inline(svg: str, prefix: str, *, label: str) -> str:
    """An SVG ready to sit inline in HTML beside others: no XML declaration, DOCTYPE or metadata,
    every id and reference prefixed, as wide as its container, and labelled for screen readers.

    Args:
        svg: a standalone SVG document, as the plot functions return.
        prefix: unique on the page; a letter, then letters, digits, "-" or "_".
        label: what the figure shows, for aria-label.

    Returns:
        The <svg> element as text.

    Raises:
        ValueError: if prefix cannot start an id or svg has no <svg> element.
    """
    if not _PREFIX.match(prefix):
        raise ValueError(f"prefix {prefix!r} cannot start an id; use a letter, then [A-Za-z0-9_-]")
    start = svg.find("<svg")
    if start < 0:
        raise ValueError("no <svg> element in the text given")
    body = _METADATA.sub("", svg[start:], count=1)
    body = _TAG.sub(lambda tag: _REF.sub(lambda r: f"{r.group(0)}{prefix}-", tag.group(0)), body)
    # matplotlib's one stylesheet rule is "*{...}"; scope it to this figure, not the whole page.
    body = body.replace('<style type="text/css">*{', f'<style type="text/css">#{prefix} *{{', 1)
    root_end = body.index(">")
    root = _SIZE.sub("", body[:root_end]).rstrip("/")
    attrs = f'id="{prefix}" width="100%" role="img" aria-label="{html.escape(label, quote=True)}"'
    return f"{root} {attrs}{body[root_end:]}".rstrip() + "\n"


def compact(value: float, _pos: float | None = None) -> str:
    """A tick label: 3 significant digits with k, M, G or T (1.25M, 300k, 0.004).

    Args:
        value: the number.
        _pos: the tick's position (unused; matplotlib's formatter signature).

    Returns:
        The label.
    """
    size = abs(value)
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def short(text: str, most: int) -> str:
    """The text cut to at most `most` characters, with an ellipsis when cut.

    Args:
        text: a user string.
        most: the most characters kept.

    Returns:
        The text, or its start and "…".
    """
    return text if len(text) <= most else text[: most - 1] + "…"


def date_axis(axis: Axis) -> None:
    """Date ticks in UTC that adapt from hours to months, for an axis of matplotlib date numbers.

    Args:
        axis: the x axis (shared axes follow it).

    Returns:
        None.
    """
    from datetime import timezone

    from matplotlib import dates

    locator = dates.AutoDateLocator(tz=timezone.utc, minticks=5, maxticks=10)
    axis.set_major_locator(locator)
    axis.set_major_formatter(dates.ConciseDateFormatter(locator, tz=timezone.utc))
