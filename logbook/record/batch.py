"""Output chunks -> metric columns: what `LineParser` finds, for many lines at once.

`ChunkParser.parse(data)` takes whole lines of raw log (bytes that end at a line end) and returns
columns: every point (line, name, value) and every step a line names (line, step), the step a
progress bar's counter gives where the line names none marked `counter`. The live reader, recovery
and `logbook reparse` all parse through it, so that they agree with each other line for line.

Lines end at `\\n`, `\\r\\n` or a lone `\\r`: a progress bar redrawn in place is a line per
drawing, read as it is drawn (empty lines are skipped and not counted).

What it returns equals `LineParser.parse` line by line (the tests hold it to that); the way there
is vectorised, with no Python per line (issue #15: pure Python reads ~45,000 lines/s):

1. lines split at a byte search (numpy); invalid UTF-8 replaced once for the chunk;
2. every line's template made with numpy over the whole chunk (each run of digits -> a mark,
   `logbook.record.templates`) and dictionary-encoded by Arrow;
3. each template's plan learnt once from `LineParser` and verified (cached across chunks), then
   applied by position: the bytes of every number the plans read are gathered, and one Arrow
   cast parses them all.

Lines no plan covers (a template seen fewer than `_MIN_PLANNED` times so far, one that does
not verify, a line over `MAX_LINE`) go through `LineParser` one by one; any failure of the fast
path parses the chunk the reference way (`parse_lines`), so that a bug here costs speed, never a
metric. `--metrics none` finds steps with one RE2 pass; `regex:` mode skips, with RE2, the lines
the pattern cannot match, and parses the others with `LineParser`.

(Not RE2 for the templates and numbers: arrow's replace and extract kernels cost 2-6 us a line
with many matches, more than the whole budget; numpy does it in ~0.3 us.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from logbook.record.chunk_lines import ChunkLines, split_chunk, string_array
from logbook.record.parsers import MAX_LINE, LineParser, Parsed
from logbook.record.templates import Plan, Templates, chunk_templates, holds, make_plan

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

_LINE_END = re.compile(rb"\r\n|\r|\n")
# The step a line reports, for `--metrics none` (steps are progress, even without metrics).
_STEP = re.compile(
    rb"""(?:^|[\s,|{(\["'])(?:global_step|step|iteration|iter)["']?\s*[=:]?\s*(\d+)(?:\s*/\s*\d+)?(?=[\s,|})\]]|$)""",
    re.IGNORECASE,
)
# The same in RE2 (no look-ahead: the character after is consumed, which changes no group;
# letters spelled out, since RE2 folds case beyond ASCII and Python's bytes patterns do not).
_STEP_RE2 = (
    r"""(?:^|[ \t\n\r\f\v,|{(\["'])(?:[gG][lL][oO][bB][aA][lL]_[sS][tT][eE][pP]|[sS][tT][eE][pP]"""
    r"""|[iI][tT][eE][rR][aA][tT][iI][oO][nN]|[iI][tT][eE][rR])["']?[ \t\n\r\f\v]*[=:]?"""
    r"""[ \t\n\r\f\v]*(?P<step>[0-9]+)(?:[ \t\n\r\f\v]*/[ \t\n\r\f\v]*[0-9]+)?"""
    r"""(?:[ \t\n\r\f\v,|})\]]|$)"""
)
_MAX_STEP = 2**63 - 1
_MIN_PLANNED = 4  # lines of a new template seen for a plan to pay (else one by one)
_MAX_PLANS = 10_000  # templates remembered
_MAX_NEW_PLANS = 500  # plans learnt per chunk: a chunk of all-different lines stays linear


@dataclass(frozen=True)
class ParsedChunk:
    """The metrics of a chunk of lines.

    Attributes:
        lines: lines in the chunk (empty ones not counted); `line` columns index them from 0.
        points: `line` int32, `name` string, `value` float64: each value a line carries, in
            line order, with the names `LineParser` gives.
        steps: `line` int32, `step` int64, `counter` bool: the step each line names, or (counter
            true) a progress bar's counter on a line that names no step; lines with neither are
            absent.
    """

    lines: int
    points: pa.Table
    steps: pa.Table


def split_lines(data: bytes) -> list[bytes]:
    """The non-empty lines of `data`, split at `\\n`, `\\r\\n` and lone `\\r`."""
    return [line for line in _LINE_END.split(data) if line]


def find_step(line: bytes) -> int | None:
    """The training step a log line reports, if it reports one (one past int64 is none)."""
    m = _STEP.search(line)
    if m is None:
        return None
    step = int(m.group(1))
    return step if step <= _MAX_STEP else None


class _Columns:
    """Points and steps gathered in pieces (numpy arrays), put in line order at the end."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.p: list[tuple[Any, Any, Any, Any]] = []  # line, order in line, name id, value
        self.s: list[tuple[Any, Any, Any]] = []  # line, step, counter

    def name_id(self, name: str) -> int:
        return self.names.setdefault(name, len(self.names))

    def add_parsed(self, lines: list[int], parsed: list[Parsed | None]) -> None:
        import numpy as np

        pl: list[int] = []
        po: list[int] = []
        pn: list[int] = []
        pv: list[float] = []
        sl: list[int] = []
        ss: list[int] = []
        sc: list[bool] = []
        for i, p in zip(lines, parsed, strict=True):
            if p is None:
                continue
            step = p.step if p.step is not None else getattr(p, "counter", None)
            if step is not None and -_MAX_STEP - 1 <= step <= _MAX_STEP:  # an int64 column
                sl.append(i)
                ss.append(step)
                sc.append(p.step is None)
            for j, (name, value) in enumerate(p.values.items()):
                pl.append(i)
                po.append(j)
                pn.append(self.name_id(name))
                pv.append(value)
        if pl:
            self.p.append(
                (
                    np.array(pl, np.int64),
                    np.array(po, np.int64),
                    np.array(pn, np.int64),
                    np.array(pv, np.float64),
                )
            )
        if sl:
            self.s.append((np.array(sl, np.int64), np.array(ss, np.int64), np.array(sc, np.bool_)))

    def chunk(self, n: int) -> ParsedChunk:
        """The columns in line order, placed by counting (a line's points come from one place)."""
        import numpy as np
        import pyarrow as pa

        if self.p:
            line, order, name, value = (np.concatenate(c) for c in zip(*self.p, strict=True))
            start = np.zeros(n + 1, np.int64)
            np.cumsum(np.bincount(line, minlength=n), out=start[1:])
            pos = start[line] + order
            placed = np.zeros(len(line), np.bool_)
            placed[pos] = True
            if not placed.all():
                raise AssertionError("two sources for one line")  # parsed the reference way
            idx = np.empty(len(line), np.int64)
            idx[pos] = np.arange(len(line))
            names = pa.array(list(self.names), pa.string())
            points = pa.table(
                {
                    "line": pa.array(line[idx].astype(np.int32)),
                    "name": names.take(pa.array(name[idx])),
                    "value": pa.array(value[idx]),
                }
            )
        else:
            points = _empty_points()
        if self.s:
            line, step, counter = (np.concatenate(c) for c in zip(*self.s, strict=True))
            has = np.zeros(n, np.bool_)
            has[line] = True
            if int(has.sum()) != len(line):
                raise AssertionError("two steps for one line")
            idx = np.empty(len(line), np.int64)
            idx[(np.cumsum(has) - 1)[line]] = np.arange(len(line))
            steps = pa.table(
                {
                    "line": pa.array(line[idx].astype(np.int32)),
                    "step": pa.array(step[idx], pa.int64()),
                    "counter": pa.array(counter[idx], pa.bool_()),
                }
            )
        else:
            steps = _empty_steps()
        return ParsedChunk(n, points, steps)


def _empty_points() -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "line": pa.array([], pa.int32()),
            "name": pa.array([], pa.string()),
            "value": pa.array([], pa.float64()),
        }
    )


def _empty_steps() -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "line": pa.array([], pa.int32()),
            "step": pa.array([], pa.int64()),
            "counter": pa.array([], pa.bool_()),
        }
    )


class ChunkParser:
    """Parses chunks of raw log the way `LineParser(mode)` parses lines.

    Args:
        mode: as `LineParser`'s ("auto", "none", "regex:PATTERN"); with "none" only the steps of
            `find_step` are found.

    Raises:
        ConfigError: as `LineParser`.
    """

    def __init__(self, mode: str = "auto") -> None:
        self.mode = mode
        self._line = LineParser(mode)
        self._plans: dict[str, Plan | None] = {}
        self._seen: dict[str, int] = {}  # lines of templates with no plan yet, over chunks
        self._re2 = _re2_search(mode[len("regex:") :]) if mode.startswith("regex:") else None
        self.fallbacks = 0  # chunks the fast path failed on (parsed the reference way instead)

    def parse(self, data: bytes) -> ParsedChunk:
        """The points and steps of the whole lines in `data`. Never raises."""
        try:
            if self.mode == "auto":
                return self._parse_auto(data)
            if self.mode == "none":
                return self._parse_none(data)
            if self._re2 is not None:
                return self._parse_regex(data, self._re2)
        except Exception:  # a bug of the fast path: the reference way is always right
            self.fallbacks += 1
        try:
            return self.parse_lines(data)
        except Exception:  # not even that (a LineParser bug): the lines, and nothing parsed
            self.fallbacks += 1
            return _Columns().chunk(len(split_lines(data)))

    def parse_lines(self, data: bytes) -> ParsedChunk:
        """The same as `parse`, line by line in Python: the reference (slow) way."""
        lines = split_lines(data)
        cols = _Columns()
        if self.mode == "none":
            found = [(i, find_step(line)) for i, line in enumerate(lines)]
            parsed: list[tuple[int, Parsed | None]] = [
                (i, Parsed(s, {})) for i, s in found if s is not None
            ]
        else:
            parse = self._line.parse
            parsed = [(i, parse(line)) for i, line in enumerate(lines)]
        if parsed:
            idx, res = zip(*parsed, strict=True)
            cols.add_parsed(list(idx), list(res))
        return cols.chunk(len(lines))

    # --- the vectorised path ------------------------------------------------------------------

    def _parse_none(self, data: bytes) -> ParsedChunk:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        lines = split_chunk(data)
        cols = _Columns()
        text = string_array(lines.text.translate(None, b"\r\n"), lines.text_starts - lines.segments)
        # A match first (RE2's DFA, fast), the group only where there is one (slower).
        hit = np.flatnonzero(
            pc.match_substring_regex(text, _STEP_RE2).to_numpy(zero_copy_only=False)
        )
        digits = pc.extract_regex(text.take(pa.array(hit)), _STEP_RE2).field("step")
        wide = pc.greater_equal(pc.utf8_length(digits), 19).to_numpy(zero_copy_only=False)
        if wide.any():  # past int64 maybe: Python's ints decide, line by line
            cols.add_parsed(
                [int(i) for i in hit[wide]],
                [_step_only(find_step(lines.raw(int(i)))) for i in hit[wide]],
            )
        narrow = ~wide
        steps = pc.cast(pc.filter(digits, pa.array(narrow)), pa.int64()).to_numpy()
        if len(steps):
            cols.s.append((hit[narrow], steps, np.zeros(len(steps), np.bool_)))
        return cols.chunk(len(lines.starts))

    def _parse_regex(self, data: bytes, pattern: str) -> ParsedChunk:
        """`regex:` mode: lines RE2 finds no match in are skipped, the others parsed by Python.

        Only plain ASCII lines are skipped so: there `pattern` means the same in both engines
        (`_re2_search`) but for `\\s`, which Python also takes for \\v and \\x1c-\\x1f.
        """
        import numpy as np
        import pyarrow.compute as pc

        lines = split_chunk(data)
        text = string_array(lines.text.translate(None, b"\r\n"), lines.text_starts - lines.segments)
        found = pc.match_substring_regex(text, pattern).to_numpy(zero_copy_only=False)
        a = np.frombuffer(lines.text, np.uint8)
        odd = (a >= 0x80) | (a == 0x0B) | ((a >= 0x1C) & (a <= 0x1F))
        if len(a):
            found |= np.maximum.reduceat(odd, lines.text_starts) if len(lines.starts) else found
        found |= lines.lengths > MAX_LINE
        todo = np.flatnonzero(found)
        cols = _Columns()
        parse = self._line.parse
        cols.add_parsed([int(i) for i in todo], [parse(lines.raw(int(i))) for i in todo])
        return cols.chunk(len(lines.starts))

    def _parse_auto(self, data: bytes) -> ParsedChunk:
        import numpy as np

        lines = split_chunk(data)
        cols = _Columns()
        tpl = chunk_templates(lines)
        order = np.argsort(tpl.codes, kind="stable")
        bounds = np.zeros(len(tpl.names) + 1, np.int64)
        np.cumsum(np.bincount(tpl.codes, minlength=len(tpl.names)), out=bounds[1:])
        long = lines.lengths > MAX_LINE  # LineParser cuts these: read them its way
        slow = [np.flatnonzero(long)]
        reads = _Reads(lines.text, tpl)
        new = 0
        for t, template in enumerate(tpl.names):
            rows = order[bounds[t] : bounds[t + 1]]
            rows = rows[~long[rows]]
            if template in self._plans:
                plan = self._plans[template]
                if plan is not None and len(rows) > 1 and not self._holds(plan, lines, rows[-1]):
                    plan = self._plans[template] = None
            elif self._count(template, len(rows)) < _MIN_PLANNED or new >= _MAX_NEW_PLANS:
                slow.append(rows)
                continue
            else:
                new += 1
                plan = self._learn(template, lines.line(int(rows[0])))
            if plan is None:
                slow.append(rows)
            elif not plan.empty:
                slow.append(reads.add(plan, rows))
        reads.read(cols)
        todo = np.sort(np.concatenate(slow))
        if len(todo):
            parse = self._line.parse
            cols.add_parsed([int(i) for i in todo], [parse(lines.raw(int(i))) for i in todo])
        return cols.chunk(len(lines.starts))

    def _count(self, template: str, lines: int) -> int:
        """Lines of `template` seen so far: small chunks (a live stream) learn plans too."""
        if len(self._seen) >= _MAX_PLANS:
            self._seen.clear()
        seen = self._seen[template] = self._seen.get(template, 0) + lines
        return seen

    def _holds(self, plan: Plan, lines: ChunkLines, row: int) -> bool:
        """A plan learnt on earlier lines re-checked on this chunk's last line of its template.

        Lines of one template parse alike unless `LineParser` reads values (a threshold, a
        range): a plan that no longer holds is dropped, and its lines read one by one.
        """
        try:
            return holds(plan, lines.line(int(row)), self._line.parse)
        except Exception:
            return False

    def _learn(self, template: str, line: str) -> Plan | None:
        try:
            plan = make_plan(template, line, self._line.parse)
        except Exception:  # an odd line: its template is parsed line by line
            plan = None
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[template] = plan
        return plan


# Python syntax that RE2 reads otherwise or not at all: back-references and escapes RE2 lacks
# or means otherwise, `{,n}`, POSIX classes, possessive quantifiers; and any `(?` but a named or
# non-capturing group (look-arounds, conditionals, flags). A false alarm only costs speed.
_NOT_RE2 = re.compile(r"\\[0-9ZuUNpPQECzx]|\{,|\[:|[*+?}]\+")
_GROUP_OPEN = re.compile(r"\(\?(?:P<|:)")


def _re2_search(pattern: str) -> str | None:
    """`pattern` if RE2 searches plain ASCII lines with it as Python's `re` does, else None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pattern.isascii() or _NOT_RE2.search(pattern) or "(?" in _GROUP_OPEN.sub("", pattern):
        return None
    try:
        pc.match_substring_regex(pa.array(["x"]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pattern


def _step_only(step: int | None) -> Parsed | None:
    return None if step is None else Parsed(step, {})


class _Reads:
    """The numbers plans read, gathered from all templates so that one cast parses them all."""

    def __init__(self, text: bytes, tpl: Templates) -> None:
        self.text = text
        self.tpl = tpl
        self.starts: list[np.ndarray] = []
        self.ends: list[np.ndarray] = []
        # per output: (kind, lines, order in line, name, scale, index of its numbers or None)
        self.outputs: list[tuple[str, np.ndarray, int, str, float, int | None]] = []

    def add(self, plan: Plan, rows: np.ndarray) -> np.ndarray:
        """Plans `plan` for the lines `rows`; returns the lines it cannot read (runs differ)."""
        tpl = self.tpl
        fits = tpl.runs[rows] == plan.runs  # a line with a MARK byte of its own does not
        lines = rows[fits]
        first = tpl.first_run[lines]

        def number(k: int) -> int:
            a, b = plan.units[k]
            self.starts.append(tpl.run_starts[first + a])
            self.ends.append(tpl.run_ends[first + b])
            return len(self.starts) - 1

        for kind, src in (("step", plan.step), ("counter", plan.counter)):
            if src is not None:
                k, x = src
                self.outputs.append((kind, lines, 0, "", x, None if k < 0 else number(k)))
                break
        else:
            if plan.bar is not None:  # counter = a * b + c: three numbers, read in a row
                a, b, c = (number(k) for k in plan.bar)
                assert b == a + 1 and c == a + 2
                self.outputs.append(("bar", lines, 0, "", 1.0, a))
        for j, (name, (k, x)) in enumerate(plan.values):
            self.outputs.append(("value", lines, j, name, x, None if k < 0 else number(k)))
        return rows[~fits]

    def read(self, cols: _Columns) -> None:
        """Casts every number gathered and puts the outputs in `cols`."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.outputs:
            return
        texts = None
        at = np.zeros(len(self.starts) + 1, np.int64)
        if self.starts:
            starts = np.concatenate(self.starts)
            lengths = np.concatenate(self.ends) - starts
            offsets = np.zeros(len(starts) + 1, np.int64)
            np.cumsum(lengths, out=offsets[1:])
            # The bytes of every number, end to end: one string array, one cast.
            small = np.int32 if len(self.text) < 2**31 else np.int64
            idx = np.repeat((starts - offsets[:-1]).astype(small), lengths)
            idx += np.arange(offsets[-1], dtype=small)
            body = np.frombuffer(self.text, np.uint8)[idx]
            del idx
            texts = pa.Array.from_buffers(
                pa.large_string(),
                len(starts),
                [None, pa.py_buffer(offsets), pa.py_buffer(body)],
            )
            np.cumsum([len(s) for s in self.starts], out=at[1:])
        floats = None
        for kind, lines, j, name, x, which in self.outputs:
            n = len(lines)
            if not n:
                continue
            if which is None:
                column = np.full(n, x, np.float64 if kind == "value" else np.int64)
                if kind != "value":
                    column = np.full(n, int(x), np.int64)
            else:
                assert texts is not None
                part = texts.slice(int(at[which]), int(at[which + 1] - at[which]))
                if kind == "value":
                    if floats is None:
                        floats = pc.cast(texts, pa.float64()).to_numpy()
                    column = floats[at[which] : at[which + 1]]
                    if x != 1.0:
                        column = column * x
                elif kind == "bar":
                    a, b, c = (
                        pc.cast(
                            texts.slice(int(at[w]), int(at[w + 1] - at[w])), pa.int64()
                        ).to_numpy()
                        for w in (which, which + 1, which + 2)
                    )
                    column = a * b + c
                else:
                    column = pc.cast(part, pa.int64()).to_numpy()
            if kind == "value":
                cols.p.append(
                    (
                        lines,
                        np.full(n, j, np.int64),
                        np.full(n, cols.name_id(name), np.int64),
                        column,
                    )
                )
            else:
                cols.s.append((lines, column, np.full(n, kind != "step", np.bool_)))
