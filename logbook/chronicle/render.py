"""The chronicle's two pages from one template context: HTML through Jinja2 with autoescaping on,
so every string from the record is escaped unless a filter below marks it safe, and Markdown
through the same context, where the `md` filter escapes Markdown and HTML alike (GitHub renders
inline HTML in Markdown, so `<script>` in a note must not stay a tag there either)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from logbook.chronicle import journal, mdtables, summary
from logbook.chronicle.data import EXAMPLES
from logbook.chronicle.numbers import figure, setting

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Page:
    """What both pages show."""

    run: str
    sections: dict[str, Any]
    missing: dict[str, str]
    svgs: dict[str, str]
    repro: dict[str, Any] | None
    data: list[Any]
    anonymized: bool


def html(page: Page) -> str:
    """index.html: one self-contained page."""
    return _env(autoescape=True).get_template("index.html.j2").render(**_context(page))


def markdown(page: Page) -> str:
    """chronicle.md: the same content, its figures as images in img/, its tables lined up."""
    text = _env(autoescape=False).get_template("chronicle.md.j2").render(**_context(page))
    return mdtables.align(text)


def _context(page: Page) -> dict[str, Any]:
    s = page.sections
    o = summary.overview(s)
    told = journal.entries(s)
    return {
        "run": page.run,
        "s": s,
        "o": o,
        "missing": page.missing,
        "svgs": page.svgs,
        "curves": [name for name in page.svgs if name.startswith("curve-")],
        "repro": page.repro,
        "data": page.data,
        "anonymized": page.anonymized,
        "disclosure": summary.disclosure(s, o),
        "decisions": journal.decisions(told),
        "journal": journal.journal(told),
        "failed": [a for a in s["attempts"] if a["status"] in summary.FAILED],
        "examples": EXAMPLES,
    }


def _env(*, autoescape: bool) -> Any:
    import jinja2
    from markupsafe import Markup

    from logbook.chronicle import plots

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=figure,  # every float printed with significant digits, and None never (#16)
    )
    env.filters.update(
        duration=summary.duration,
        number=summary.number,
        setting=setting,
        sci=summary.sci,
        when=when,
        at_least=at_least,
        capitalize_first=lambda text: text[:1].upper() + text[1:],
        span=summary.span_text,
        step=step,
        md=md,
        cell=cell,
        # matplotlib wrote the SVG and escaped its text; ids are prefixed so figures never clash.
        svg=lambda name, svgs, label: Markup(plots.inline(svgs[name], name, label=label)),
    )
    return env


def when(value: datetime | None, row: Mapping[str, Any] | None = None, field: str = "time") -> str:
    """2026-11-22 14:05 UTC; as precisely as a hand-kept history knew it when `row` says so
    (`{field}_precision`, `{field}_until`): 2021-11-05, 2021-11, 2021, 2021-11-05 to 2021-11-11."""
    if value is None:
        return ""
    precision = row.get(f"{field}_precision") if row else None
    if precision in _PERIODS:
        return value.strftime(_PERIODS[precision])
    until = row.get(f"{field}_until") if row and precision == "range" else None
    if until is None:
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if _midnight(value) and _midnight(until):  # days: the range's end is the next midnight
        last = until - timedelta(days=1) if until > value else until
        return f"{value:%Y-%m-%d} to {last:%Y-%m-%d}" if last > value else f"{value:%Y-%m-%d}"
    return f"{value:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC"


def at_least(row: Mapping[str, Any], field: str, how: str = "figure") -> str:
    """A summed figure of a report (goodput, incidents) for people: "unknown", or the sum of
    its known parts as "at least 2 h 05 min" where the row's `at_least` names it (#16)."""
    value = row.get(field)
    if value is None:
        return "unknown"
    text = summary.duration(value) if how == "duration" else str(figure(value))
    floors = (row.get("at_least") or "").split(", ")
    return f"at least {text}" if field in floors else text


def step(row: Mapping[str, Any]) -> str:
    """A row's step as an imported history knew it (#16): 31216, 31216–31250, ≈ 14300."""
    value = row.get("step")
    if value is None:
        return ""
    if row.get("step_until") is not None:
        return f"{value}–{row['step_until']}"
    return f"≈ {value}" if row.get("step_approx") else str(value)


_PERIODS = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}


def _midnight(t: datetime) -> bool:
    return (t.hour, t.minute, t.second, t.microsecond) == (0, 0, 0, 0)


# Punctuation that means something anywhere in a line; `<` and `&` are made entities (no tag, no
# entity can then form, so `>` needs none). `(` after `]` would make a link, but `]` is escaped.
_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
# What opens a block at the start of a line: a list item or heading ("- ", "+ ", "# ", "1. "),
# a rule ("---"), a quote (">"), a setext underline ("==="); "-2000" and "11.00" do not.
_MD_BLOCK = re.compile(r"^(?:[-+#](?=[\s-]|$)|>|=(?=[=\s]*$)|\d+[.)](?=\s|$))")


def md(value: Any) -> str:
    """Markdown text that renders as the literal string: `<` and `&` as entities, Markdown
    punctuation backslashed where it would mean something, line breaks as spaces. Text reads
    as written where nothing needs escaping (#16: "1 -> 2", not "1 \\-&gt; 2")."""
    text = " ".join(str(figure(value)).split())
    text = _MD_INLINE.sub(r"\\\1", text.replace("&", "&amp;").replace("<", "&lt;"))
    return _MD_BLOCK.sub(_escape_block, text)


def _escape_block(m: re.Match[str]) -> str:
    mark = m[0]
    return f"{mark[:-1]}\\{mark[-1]}" if mark[0].isdigit() else f"\\{mark}"


def cell(value: Any) -> str:
    """A Markdown table cell: as `md`, never empty-looking; a float with significant digits."""
    if isinstance(value, float):
        value = figure(value)
    elif isinstance(value, datetime):
        value = when(value)
    return md(value) if value not in (None, "") else " "
