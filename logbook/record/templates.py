"""Line templates: lines that differ only in their digits parse alike, so `LineParser` runs once.

A training prints the same few lines with other numbers (`step=10 loss=2.31`, `step=11
loss=2.29`). Each maximal run of ASCII digits of a line is replaced by a mark (`to_template`;
`chunk_templates` does it with numpy for a whole chunk at once); lines with the same template are
one shape with other digits. For a new template, `make_plan` learns from `LineParser` itself which
number of the line becomes which metric, the step or the counter, and at what scale (`3.2k` ->
x1000, `-x` -> x-1): it parses a real line of the template, then the same line with one number
changed at a time, and checks what it learnt on the line with every number changed. A `Plan`
then reads the numbers of every line of its template by position, and one cast parses them all
(see `logbook.record.batch`, which also re-checks a plan on a real line of each chunk: `holds`).

What stays out (the plan is None, the lines are parsed one by one): templates whose digits change
more than a number (`top1`, `layer.3.loss` as names), values made of several runs (`1,234`),
runs of 19 digits or more (steps past int64, floats past a double's precision) and exponents of
3 digits (overflow to inf), steps that are not plain integers (`5.0`, `-3`, `5k`), a value named
`step`, and whatever does not verify. Why a changed digit changes nothing else: `LineParser`
reads digits by their count only beside commas (thousands), and the template keeps those counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from logbook.record.chunk_lines import ChunkLines, string_array
from logbook.record.parsers import Parsed

if TYPE_CHECKING:
    import numpy as np

MARK = "\x1f"  # stands for a run of digits in a template
# A run of zeros only: `LineParser` treats some zeros apart (a bar's `0/50` names no counter,
# Rich's `0.00it/s` is no rate), so lines with a zero where others have digits are another shape.
ZERO = "\x18"
WIDE = "\x1e"  # stands for a run no template may hide (see `to_template`)
# A run beside a comma, by its length (1, 2, 3, 4 or more): `1,234` is a number, `1,2345` two.
COMMA_MARKS = "\x1a\x1b\x1c\x1d"
_MARKS = re.compile("[\x18\x1a-\x1f]")
_RUN = re.compile(r"[0-9]+")
# A number in a template: runs joined by `.` and an exponent, as `LineParser` reads them.
_R = "[\x18\x1a-\x1d\x1f]0?"
_UNIT = re.compile(rf"(?:{_R}(?:\.(?:{_R})?)?|\.{_R})(?:[eE][-+]?{_R})?")
# A template whose lines may parse differently with other digits (see the module docstring).
_UNSAFE = re.compile(WIDE)
_SCALES = (1.0, -1.0, 1e3, -1e3, 1e6, -1e6, 1e9, -1e9, 1e12, -1e12)

Source = tuple[int, float]  # (number index, scale) or (-1, constant)


@dataclass(frozen=True)
class Plan:
    """How the lines of one template parse.

    Attributes:
        runs: runs of digits in a line of the template.
        units: each number's first and last run (numbers such as `3.0e-04` span several).
        step, counter: (number index, 1) for an int read from the line, (-1, value) for a
            constant, or None.
        values: (name, (number index, scale)) or (name, (-1, constant)), in `LineParser`'s order.
        bar: for a counter `epoch x total + n` (a bar naming its epoch), the indices of the
            three numbers (a, b, c) with counter = a * b + c; `counter` is then None.
    """

    runs: int
    units: tuple[tuple[int, int], ...]
    step: Source | None
    counter: Source | None
    values: tuple[tuple[str, Source], ...]
    bar: tuple[int, int, int] | None = None

    @property
    def empty(self) -> bool:
        return self.step is None and self.counter is None and self.bar is None and not self.values


def to_template(line: str) -> str:
    """The template of one line, as `logbook.record.batch` makes it for many at once.

    Each maximal run of ASCII digits becomes `MARK` (`ZERO` for zeros only), or one of
    `COMMA_MARKS` beside a comma;
    then "0" when its leading zero makes another shape (`05`, invalid in JSON; not after a `.` or
    in an exponent, where JSON allows it). A run of 19 digits or more, or an exponent of 3 digits
    or more, becomes `WIDE`, which no plan reads (steps past int64, overflow to inf).
    """

    def sub(m: re.Match[str]) -> str:
        text = m.group()
        s, e = m.span()
        before = line[max(0, s - 2) : s]
        exponent = re.search(r"[eE][-+]?$", before) is not None
        if len(text) >= 19 or (len(text) >= 3 and exponent):
            return WIDE
        if before.endswith(",") or line[e : e + 1] == ",":
            mark = COMMA_MARKS[min(len(text), 4) - 1]
        else:
            mark = ZERO if text.strip("0") == "" else MARK
        lz = len(text) > 1 and text[0] == "0" and not before.endswith(".") and not exponent
        return mark + ("0" if lz else "")

    return _RUN.sub(sub, line)


def make_plan(template: str, line: str, parse: Callable[[str], Parsed | None]) -> Plan | None:
    """The plan of `template`, learnt from `line` (one of its lines) and `parse`; None if unsafe.

    Never raises for an odd line (returns None), so that a template the plans do not cover is
    parsed line by line.
    """
    if _UNSAFE.search(template) or len(line.encode("utf-8", "replace")) > 4000:
        return None  # (a changed digit never changes a length, but stay clear of MAX_LINE)
    runs = [m.span() for m in _RUN.finditer(line)]
    if len(runs) != len(_MARKS.findall(template)) or _MARKS.search(line):
        return None  # a MARK in the line itself
    found = _units(template, runs)
    if found is None:
        return None
    units, spans = found
    base = parse(line)
    if base is None:
        base = Parsed(None, {})
    texts = [line[s:e] for s, e in units]
    changed: list[Parsed] = []
    for k in range(len(units)):
        probe = parse(_perturb(line, runs, units[k], first=True))
        changed.append(probe if probe is not None else Parsed(None, {}))
    step = _int_source(base.step, [p.step for p in changed], texts, units, runs, line)
    counters = [_counter(p) for p in changed]
    counter = _int_source(_counter(base), counters, texts, units, runs, line)
    bar = None
    if counter is False:
        probes = [_perturb(line, runs, u, first=True)[u[0] : u[1]] for u in units]
        bar = _bar_source(_counter(base), counters, texts, probes)
        counter = None if bar is not None else False
    if isinstance(step, bool) or isinstance(counter, bool):
        return None  # (False: no plan can give it)
    values: list[tuple[str, Source]] = []
    names = list(base.values)
    if "step" in names:
        return None  # a step that _split_step may take out or not by its value
    for p in changed:
        if list(p.values) != names:
            return None
    for name in names:
        src = _value_source(name, base, changed, texts, line, runs, units)
        if src is None:
            return None
        values.append((name, src))
    plan = Plan(len(runs), tuple(spans), step, counter, tuple(values), bar)
    # Verify on the line with every number changed (other digits, so not a probe already seen).
    every = line
    for unit in reversed(units):
        every = _perturb(every, runs, unit, first=False)
    if not same(apply_plan(plan, every, units), parse(every)):
        return None
    if not same(apply_plan(plan, line, units), parse(line)):
        return None
    return plan


def _counter(p: Parsed) -> int | None:
    return getattr(p, "counter", None)


def _units(
    template: str, runs: list[tuple[int, int]]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]] | None:
    """The (start, end) in the line of each number of the template, and its (first, last) run."""
    units: list[tuple[int, int]] = []
    spans: list[tuple[int, int]] = []
    seen = 0
    for m in _UNIT.finditer(template):
        first = len(_MARKS.findall(template, 0, m.start()))
        inside = len(_MARKS.findall(m.group()))
        if first != seen:
            return None  # a mark outside any number: cannot happen, but never guess
        units.append((runs[first][0], runs[first + inside - 1][1]))
        spans.append((first, first + inside - 1))
        seen = first + inside
    return (units, spans) if seen == len(runs) else None


def _perturb(line: str, runs: list[tuple[int, int]], unit: tuple[int, int], *, first: bool) -> str:
    """`line` with one digit of `unit`'s first run changed, keeping its shape (no new leading 0)."""
    s, e = next(r for r in runs if r[0] == unit[0])
    if first:
        i = s + 1 if e - s > 1 and line[s] == "0" else s
        d = line[i]
        new = "1" if d == "0" else str(int(d) % 9 + 1)
    else:
        i = e - 1
        new = str((int(line[i]) + 3) % 10)
        if i == s and e - s > 1 and new == "0":
            new = "4"
        if new == "0" and line[s:i].strip("0") == "" and line[i + 1 : e].strip("0") == "":
            new = "4"  # a run of zeros only is another template (ZERO)
    return line[:i] + new + line[i + 1 :]


def _int_source(
    base: int | None,
    changed: list[int | None],
    texts: list[str],
    units: list[tuple[int, int]],
    runs: list[tuple[int, int]],
    line: str,
) -> Source | None | bool:
    """Where a step (or counter) comes from; False when no plan can give it."""
    if base is None:
        return None if all(c is None for c in changed) else False
    if any(c is None for c in changed):
        return False
    moved = [k for k, c in enumerate(changed) if c != base]
    if not moved:
        return (-1, float(base)) if abs(base) < 2**53 else False
    if len(moved) > 1:
        return False
    k = moved[0]
    text = texts[k]
    probe = _perturb(line, runs, units[k], first=True)[units[k][0] : units[k][1]]
    if not text.isdigit() or int(text) != base or int(probe) != changed[k]:
        return False
    return (k, 1.0)


def _bar_source(
    base: int | None, changed: list[int | None], texts: list[str], probes: list[str]
) -> tuple[int, int, int] | None:
    """The numbers (a, b, c) of a counter a * b + c (a bar's epoch x total + n), or None."""
    from itertools import permutations

    if base is None or any(c is None for c in changed):
        return None
    moved = [k for k, c in enumerate(changed) if c != base]
    if len(moved) != 3 or not all(texts[k].isdigit() and probes[k].isdigit() for k in moved):
        return None

    def value(a: int, b: int, c: int, probe: int = -1) -> int:
        num = {k: int(probes[k] if k == probe else texts[k]) for k in (a, b, c)}
        return num[a] * num[b] + num[c]

    for a, b, c in permutations(moved):
        if value(a, b, c) == base and all(value(a, b, c, k) == changed[k] for k in moved):
            return (a, b, c)
    return None


def _value_source(
    name: str,
    base: Parsed,
    changed: list[Parsed],
    texts: list[str],
    line: str,
    runs: list[tuple[int, int]],
    units: list[tuple[int, int]],
) -> Source | None:
    v = base.values[name]
    moved = [k for k, p in enumerate(changed) if not same_float(p.values[name], v)]
    if not moved:
        return (-1, v)
    if len(moved) > 1:
        return None
    k = moved[0]
    probe = _perturb(line, runs, units[k], first=True)[units[k][0] : units[k][1]]
    for scale in _SCALES:
        if same_float(float(texts[k]) * scale, v) and same_float(
            float(probe) * scale, changed[k].values[name]
        ):
            return (k, scale)
    return None


def holds(plan: Plan, line: str, parse: Callable[[str], Parsed | None]) -> bool:
    """Whether `plan` reads `line` (of its template) as `parse` does: a re-check on real lines."""
    runs = [m.span() for m in _RUN.finditer(line)]
    if len(runs) != plan.runs:
        return False
    units = [(runs[a][0], runs[b][1]) for a, b in plan.units]
    return same(apply_plan(plan, line, units), parse(line))


def apply_plan(plan: Plan, line: str, units: list[tuple[int, int]]) -> Parsed | None:
    """What `plan` reads from one line of its template (the batch path does this in columns)."""
    texts = [line[s:e] for s, e in units]

    def num(src: Source) -> float:
        k, x = src
        return x if k < 0 else float(texts[k]) * x

    def whole(src: Source | None) -> int | None:
        if src is None:
            return None
        k, x = src
        return int(x) if k < 0 else int(texts[k])

    if plan.empty:
        return None
    values = {name: num(src) for name, src in plan.values}
    counter = whole(plan.counter)
    if plan.bar is not None:
        a, b, c = (int(texts[k]) for k in plan.bar)
        counter = a * b + c
    return Parsed(whole(plan.step), values, counter)


def same_float(a: float, b: float) -> bool:
    """Equal as recorded: nan equals nan, and -0.0 is not 0.0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def same(a: Parsed | None, b: Parsed | None) -> bool:
    """Two parses record the same: step, counter, and values in the same order."""
    if a is None or b is None:
        return a is None and b is None
    if a.step != b.step or _counter(a) != _counter(b):
        return False
    if list(a.values) != list(b.values):
        return False
    return all(same_float(a.values[k], b.values[k]) for k in a.values)


@dataclass
class Templates:
    """The template of every line (`logbook.record.templates.to_template`, made with numpy)."""

    codes: np.ndarray  # each line's template, an index into `names`
    names: list[str]
    run_starts: np.ndarray  # every run of digits of the chunk, in `text`
    run_ends: np.ndarray
    first_run: np.ndarray  # each line's first run, an index into run_starts
    runs: np.ndarray  # each line's count of runs


def chunk_templates(lines: ChunkLines) -> Templates:
    """Every line's template, with numpy over the whole chunk (no Python per line or run).

    Memory: a few arrays of the chunk's size (bytes or bools) and a few of its runs' count
    (int32), freed as soon as done with.
    """
    import numpy as np
    import pyarrow.compute as pc

    a = np.frombuffer(lines.text, np.uint8)
    n = len(a)
    digit = (a - np.uint8(48)) < 10
    edge = np.zeros(n + 1, np.bool_)  # where a run of digits starts or ends
    if n:
        np.not_equal(digit[1:], digit[:-1], out=edge[1:-1])
        edge[0], edge[-1] = digit[0], digit[-1]
    bounds = np.flatnonzero(edge).astype(np.int32 if n < 2**31 else np.int64)
    del edge
    rs, re_ = bounds[0::2].copy(), bounds[1::2].copy()  # (contiguous: faster gathers)
    del bounds
    rl = re_ - rs
    padded = np.zeros(n + 3, np.uint8)  # two bytes before, one after: no bounds to check
    padded[2 : n + 2] = a
    p1 = padded[rs + 1]  # the byte before each run
    p2 = padded[rs]
    after = padded[re_ + 2]
    del padded
    exponent = ((p1 | 32) == 101) | (((p1 == 43) | (p1 == 45)) & ((p2 | 32) == 101))  # e, E
    wide = (rl >= 19) | ((rl >= 3) & exponent)
    lz = (a[rs] == 48) & (rl > 1) & (p1 != 46) & ~exponent & ~wide
    comma = ((p1 == 44) | (after == 44)) & ~wide
    del p1, p2, after, exponent
    # Every digit becomes MARK and only the first of a run is kept (and a leading zero's second).
    out = np.where(digit, np.uint8(0x1F), a)
    at = rs[comma]
    out[at] = 0x19 + np.minimum(rl[comma], 4).astype(np.uint8)
    out[rs[wide]] = 0x1E
    if len(rs):  # runs of zeros only (any digit but 0 in [run start, next run start): not)
        nonzero = np.logical_or.reduceat(digit & (a != np.uint8(48)), rs)
        out[rs[~nonzero & ~comma & ~wide]] = 0x18
        del nonzero
    second = rs[lz] + 1
    out[second] = 48
    keep = np.ones(n, np.bool_)
    if n:
        np.logical_and(digit[1:], digit[:-1], out=keep[1:])
        np.logical_not(keep[1:], out=keep[1:])
    del digit
    keep[lines.ends] = False  # line ends
    keep[second] = True
    body = out[keep]  # (np.compress makes an int64 index per byte: 8x the memory)
    del out, keep, second, at
    # Each line's start in `body`: line ends and dropped digits before it taken off.
    dropped = np.zeros(len(rs) + 1, np.int64)
    np.cumsum(rl - 1 - lz, out=dropped[1:])
    first = np.searchsorted(rs, lines.text_starts)
    last = np.empty_like(first)  # runs never cross a line end: a line's runs end at the next's
    last[:-1] = first[1:]
    last[-1:] = len(rs)
    begin = lines.text_starts - lines.segments - dropped[first]
    if len(begin) and (begin[0] != 0 or np.any(np.diff(begin) < 0) or begin[-1] > len(body)):
        raise AssertionError("template offsets")  # never hand Arrow bad offsets (a crash)
    enc = pc.dictionary_encode(string_array(body, begin))
    return Templates(
        enc.indices.to_numpy(), enc.dictionary.to_pylist(), rs, re_, first, last - first
    )
