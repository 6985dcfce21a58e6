"""ChunkParser: the vectorised parse equals LineParser line by line (issue #15, part 7)."""

from __future__ import annotations

import importlib.util
import math
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logbook.record.batch import ChunkParser, find_step, split_lines
from logbook.record.parsers import LineParser, Parsed
from logbook.record.templates import make_plan, to_template

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted(
    p
    for p in (ROOT / "tests").rglob("fixtures/**/*")
    if p.is_file() and p.suffix in (".log", ".txt", ".out", ".err")
)


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("parse_bench", ROOT / "benchmarks/parse_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench()


def _rows(chunks, parser: ChunkParser):  # type: ignore[no-untyped-def]
    points, steps, base = [], [], 0
    for data in chunks:
        c = parser.parse(data)
        p = c.points
        for line, name, value in zip(
            *(p.column(k).to_pylist() for k in ("line", "name", "value")), strict=True
        ):
            points.append((base + line, name, value))
        s = c.steps
        for line, step, counter in zip(
            *(s.column(k).to_pylist() for k in ("line", "step", "counter")), strict=True
        ):
            steps.append((base + line, step, counter))
        base += c.lines
    return base, points, steps


def _expected(chunks, parse):  # type: ignore[no-untyped-def]
    points, steps, base = [], [], 0
    for data in chunks:
        lines = [line for line in re.split(rb"\r\n|\r|\n", data) if line]
        for i, line in enumerate(lines):
            p = parse(line)
            if p is None:
                continue
            counter = getattr(p, "counter", None)
            if p.step is not None or counter is not None:
                steps.append((base + i, p.step if p.step is not None else counter, p.step is None))
            points += [(base + i, k, v) for k, v in p.values.items()]
        base += len(lines)
    return base, points, steps


def _same_value(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def assert_same(
    chunks: list[bytes], mode: str = "auto", parser: ChunkParser | None = None
) -> ChunkParser:
    """Parses `chunks` twice with one ChunkParser (so that plans learnt are used), as LineParser."""
    parser = parser or ChunkParser(mode)
    line_parse = parser._line.parse if mode != "none" else (lambda b: _step(find_step(b)))
    want = _expected(chunks, line_parse)
    for _ in range(2):
        got = _rows(chunks, parser)
        assert got[0] == want[0], "line count"
        assert got[2] == want[2], "steps"
        assert [p[:2] for p in got[1]] == [p[:2] for p in want[1]], "points"
        bad = [(a, b) for a, b in zip(got[1], want[1], strict=True) if not _same_value(a[2], b[2])]
        assert not bad, bad[:5]
    assert parser.fallbacks == 0, "the fast path failed and fell back"
    return parser


def _step(step: int | None) -> Parsed | None:
    return None if step is None else Parsed(step, {})


def _learnt(parser: ChunkParser) -> int:
    return sum(plan is not None and not plan.empty for plan in parser._plans.values())


@pytest.mark.parametrize("fmt", [*BENCH.FORMATS, "mixed"])
def test_bench_formats(fmt: str) -> None:
    data = BENCH.make_mixed(300_000) if fmt == "mixed" else BENCH.make(fmt, 150_000)
    parser = assert_same(BENCH.chunks(data, 64 << 10))
    if fmt != "prose" and LineParser().parse(split_lines(data)[1]) is not None:
        assert _learnt(parser) > 0, "read line by line, not by plans"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_logs(path: Path) -> None:
    data = path.read_bytes()
    assert_same([data])
    assert_same(BENCH.chunks(data, 4096))  # chunks that cut the log anywhere between lines


def test_fixtures_found() -> None:
    assert any(p.name == "tricky.log" for p in FIXTURES)


def test_tricky_lines_read_right() -> None:
    """The tricky fixture's lines that plans must not read go line by line, and agree."""
    data = (ROOT / "tests/record/fixtures/tricky.log").read_bytes()
    parser = assert_same([data])
    lp = LineParser()
    for line in data.decode().splitlines():
        template = to_template(line)
        plan = make_plan(template, line, lp.parse)
        if "tokens=1," in line or "layer" in line or re.search(r"step=\d+\.0 ", line):
            assert plan is None, line  # thousands, digits in names, a float step
        if line.startswith("step=") and "e400" in line:
            assert plan is None, line  # an exponent that overflows
    assert _learnt(parser) >= 5


def test_redraws_invalid_utf8_and_long_lines() -> None:
    bars = b"".join(
        b"\r%3d%%|%-10s| %d/200 [00:01<00:02, 4.%02dit/s, loss=0.%03d]"
        % (n // 2, "\u2588".encode() * (n // 20), n, n % 100, n)
        for n in range(200)
    )
    broken = b"".join(b"step=%d loss=0.%d \xff\xfe bad=\xc3 ok=1\n" % (i, i) for i in range(20))
    cut = "é".encode() * 2047 + b"x=1 step=2"  # a character cut at 4096 bytes
    long = [b"step=%d " % i + b"pad=1 " * 2000 + b"loss=2" for i in range(5)]
    crlf = b"".join(b"step=%d loss=%d.5\r\n\r\n" % (i, i) for i in range(10))
    data = bars + b"\n" + broken + cut + b"\n" + b"\n".join(long) + b"\n" + crlf + b"tail=5"
    assert_same([data])


def test_huge_numbers_and_steps() -> None:
    lines = [
        line
        for i in range(6)
        for line in (
            f"step={2**63 - 1 - i} loss=1.{i}",
            f"step={2**63 + i} loss=1.{i}",
            f'{{"step": {10**30 + i}, "loss": 1e400, "x": {10**400}}}',
            f"step={i} loss=1e-400 y=-0 z=-0.0 w=+{i}",
        )
    ]
    assert_same(["\n".join(lines).encode()])


def test_plan_verification_rejects_a_derived_value() -> None:
    """A parser whose value is not a number of the line times a scale gets no plan."""

    def squares(line: str) -> Parsed | None:
        m = re.search(r"x=(\d+)", line)
        return Parsed(None, {"x": float(m.group(1)) ** 2}) if m else None

    assert make_plan(to_template("x=3 y"), "x=3 y", squares) is None
    kept = make_plan(to_template("x=3 y"), "x=3 y", lambda s: squares(s.replace("x=", "x=1")))
    assert kept is None  # digits that move to other places of the value: derived too

    def plain(line: str) -> Parsed | None:
        m = re.search(r"x=(\d+)", line)
        return Parsed(None, {"x": float(m.group(1))}) if m else None

    assert make_plan(to_template("x=3 y"), "x=3 y", plain) is not None


def test_plan_verification_on_every_number_changed() -> None:
    """A value that depends on a digit the one-at-a-time probes leave alone is caught."""

    def parity(line: str) -> Parsed | None:
        m = re.search(r"x=(\d+)", line)
        if m is None:
            return None
        v = float(m.group(1))
        return Parsed(None, {"x": v + 0.5 if int(m.group(1)[-1]) % 2 else v})

    assert make_plan(to_template("x=12 y"), "x=12 y", parity) is None


def test_plan_scales() -> None:
    line = "step=5 lr=1.5M tokens=3k mfu=41.5% loss=-2.5 time=12ms"
    plan = make_plan(to_template(line), line, LineParser().parse)
    assert plan is not None
    assert plan.step == (0, 1.0)
    assert dict(plan.values) == {
        "learning_rate": (1, 1e6),
        "tokens": (2, 1e3),
        "mfu": (3, 1.0),
        "loss": (4, -1.0),
        "time_ms": (5, 1.0),
    }


class _OddParser(LineParser):
    """A LineParser whose results depend on the values: the engine must follow whatever it says."""

    def parse(self, line: bytes | str) -> Parsed | None:
        p = super().parse(line)
        if p is None or "loss" not in p.values:
            return p
        values = dict(p.values)
        if values["loss"] > 2:
            values["high"] = 1.0  # a value-dependent extra key
        values["twice"] = values["loss"] * 2  # a derived value
        return Parsed(p.step, values)


def test_follows_whatever_the_line_parser_says() -> None:
    parser = ChunkParser()
    parser._line = _OddParser()
    data = BENCH.make("key=value", 50_000) + BENCH.make("nanogpt", 50_000)
    assert_same([data], parser=parser)


def test_mode_none() -> None:
    data = BENCH.make_mixed(200_000) + (
        b"step 5/10 x\nITERATION: 7\nglobal_step=%d\nstep=12,\n" % (2**64)
    )
    assert_same(BENCH.chunks(data, 50_000), "none")
    assert find_step(b"step=%d" % (2**63)) is None


def test_mode_regex() -> None:
    data = BENCH.make_mixed(100_000)
    assert_same([data], r"regex:loss[=:]? ?(?P<loss>[\d.]+)")


def test_never_raises_on_garbage() -> None:
    r = random.Random(3)
    data = bytes(r.randrange(256) for _ in range(200_000))
    assert_same([data, data.replace(b"\x00", b"1") + b"\n"])
    assert ChunkParser().parse(b"").lines == 0


_KEYS = ["loss", "lr", "step", "iter", "grad_norm", "epoch", "tokens/s", "mfu", "time", "eval loss"]
_NUMBERS = st.one_of(
    st.integers(0, 10**20).map(str),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-1e6, 1e6).map(lambda f: f"{f:.4f}"),
    st.floats(0, 1e-2).map(lambda f: f"{f:.3E}"),
    st.sampled_from(["nan", "inf", "-inf", "NaN", "1e400", "0.0", "-0", "05", "1,234", ".5", "5."]),
    st.tuples(
        st.integers(0, 999), st.sampled_from(["k", "M", "G", "%", "ms", "s", " samples/s"])
    ).map(lambda t: f"{t[0]}{t[1]}"),
)


@st.composite
def _logs(draw: st.DrawFn) -> bytes:
    """Shapes of metric lines, each printed several times with other numbers."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        keys = draw(st.lists(st.sampled_from(_KEYS), min_size=1, max_size=4))
        shape = draw(st.sampled_from(["kv", "colon", "json", "dict", "bar", "spaced"]))
        for _ in range(draw(st.integers(4, 7))):
            nums = [draw(_NUMBERS) for _ in keys]
            pairs = list(zip(keys, nums, strict=True))
            if shape == "kv":
                line = " ".join(f"{k}={v}" for k, v in pairs)
            elif shape == "colon":
                line = " | ".join(f"{k}: {v}" for k, v in pairs)
            elif shape == "json":
                line = "{" + ", ".join(f'"{k}": {v}' for k, v in pairs) + "}"
            elif shape == "dict":
                line = "{" + ", ".join(f"'{k}': '{v}'" for k, v in pairs) + "}"
            elif shape == "spaced":
                line = ", ".join(f"{k} {v}" for k, v in pairs)
            else:
                post = ", ".join(f"{k}={v}" for k, v in pairs)
                line = f"Epoch 1:  50%|█████     | 5/10 [00:01<00:01, 4.20it/s, {post}]"
            lines.append(line)
    ends = draw(st.lists(st.sampled_from(["\n", "\r", "\r\n", "\n\n"]), min_size=1))
    return "".join(line + ends[i % len(ends)] for i, line in enumerate(lines)).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_logs())
def test_generated_metric_lines(data: bytes) -> None:
    assert_same([data])


@pytest.mark.parametrize(
    "pattern",
    [
        r"loss[=:]? ?(?P<loss>[\d.]+)",  # RE2 reads it: lines with no match skipped
        r"(?P<step>\d+)\s+(?P<x>\S+)$",
        r"(?P<loss>\d+\.\d+)(?=,)",  # a look-ahead: Python only, line by line
        r"(?i)LOSS=(?P<loss>\S+)",  # flags: line by line
        r"\s(?P<gap>\d+)\s",  # \s: Python's also takes \v and \x1c-\x1f
    ],
)
def test_mode_regex_patterns(pattern: str) -> None:
    odd = "loss=٣ step ٣ x\nstep 4\x0b5 z\nstep\x1c6\x1c y\nLOSS=2.5,\n".encode()
    data = BENCH.make_mixed(60_000) + odd * 3
    parser = assert_same([data], "regex:" + pattern)
    assert (parser._re2 is not None) == (pattern.startswith(("loss", "(?P<step>", r"\s"))), pattern


def test_many_templates_fall_back_gracefully() -> None:
    """More new templates in a chunk than it learns plans for: the rest go line by line."""
    names = [chr(97 + w // 26) + chr(97 + w % 26) + "x" * (w // 676) for w in range(700)]
    lines = [f"metric_{name}=1.{i} step={i}" for name in names for i in range(5)]
    random.Random(5).shuffle(lines)
    parser = assert_same(["\n".join(lines).encode()])
    assert _learnt(parser) == 700  # 500 on the first pass, the rest on the second


_PIECES = st.sampled_from(
    ["#", "#", "#", ".", ",", "e", "E", "-", "+", " ", " ", "=", ": ", "|", "'", '"', "{", "}",
     "[", "]", "(", ")", "%", "k", "M", "ms", "it/s", "loss", "step", "lr", "epoch", "x", "_",
     "/", "nan", "inf", "iter ", "Epoch ", "%|", "█"]
)  # fmt: skip


@st.composite
def _same_shape(draw: st.DrawFn) -> bytes:
    """Lines of one shape whose digits differ (what a template stands for), in any structure."""
    skeleton = draw(st.lists(_PIECES, min_size=1, max_size=30))
    lines = []
    for _ in range(draw(st.integers(4, 8))):
        digits = st.text("0123456789", min_size=1, max_size=draw(st.sampled_from([1, 3, 6, 20])))
        lines.append("".join(draw(digits) if p == "#" else p for p in skeleton))
    return "\n".join(lines).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_same_shape(), min_size=1, max_size=3))
def test_lines_of_one_shape_with_other_digits(shapes: list[bytes]) -> None:
    assert_same([b"\n".join(shapes)])


class _LateParser(LineParser):
    """Reads a value only past a step: a threshold no probe of the first lines crosses."""

    def parse(self, line: bytes | str) -> Parsed | None:
        p = super().parse(line)
        if p is None or p.step is None or p.step <= 2500:
            return p
        return Parsed(p.step, {**p.values, "late": 1.0})


def test_a_plan_that_stops_holding_is_dropped() -> None:
    parser = ChunkParser()
    parser._line = _LateParser()
    early = "\n".join(f"step={i} loss=0.{i}" for i in range(1000, 2000)).encode()
    late = "\n".join(f"step={i} loss=0.{i}" for i in range(2000, 3000)).encode()
    assert_same([early, late], parser=parser)


def test_small_chunks_learn_plans() -> None:
    """A live stream hands over a line or two at a time: templates are counted across chunks."""
    lines = [f"step={i} loss=0.{i} lr=3e-4\n".encode() for i in range(12)]
    parser = assert_same(lines)
    assert _learnt(parser) == 1


class _BrokenParser(LineParser):
    """A LineParser with a bug: counters past int64 on some lines, an exception on others."""

    def parse(self, line: bytes | str) -> Parsed | None:
        text = line.decode() if isinstance(line, bytes) else line
        if "boom" in text:
            raise RuntimeError("a parser bug")
        return Parsed(None, {"x": 1.0}, 2**70) if "huge" in text else super().parse(line)


def test_never_raises_whatever_the_line_parser_does() -> None:
    parser = ChunkParser()
    parser._line = _BrokenParser()
    huge = parser.parse(b"huge 1\nstep=3 loss=1\n")
    assert huge.steps.column("step").to_pylist() == [3]  # the counter past int64 is left out
    assert huge.points.column("name").to_pylist() == ["x", "loss"]
    broken = parser.parse(b"step=1 loss=2\nboom\n")
    assert broken.lines == 2 and broken.points.num_rows == 0


_STEP_PIECES = st.sampled_from(
    ["step", "STEP", "Iter", "iteration", "global_step", "ſtep", " ", "\t", "\x0b", "=", ":", "/",
     "'", '"', ",", "|", "{", "}", "(", ")", "]", "[", "x", "é", "5", "12", "007", "99999999999999999999"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_STEP_PIECES, max_size=12).map("".join), min_size=1, max_size=20))
def test_mode_none_generated(lines: list[str]) -> None:
    assert_same(["\n".join(lines).encode()], "none")


def test_zeros_are_a_shape_of_their_own() -> None:
    """LineParser treats some zeros apart (Rich's `0.00it/s` is no rate, nanoGPT's negative mfu,
    `-0` included, is dropped): lines that differ from others only by such zeros still agree."""
    lines = [
        b" 50%|#####     | 100/200 [00:05<00:05, 0.50it/s]",
        b" 50%|#####     | 101/200 [00:05<00:05, 0.00it/s]",
        b"iter 3: loss 2.1, mfu -1.00%",
        b"iter 4: loss 2.1, mfu -0.00%",
        b"iter 5: loss 2.1, mfu 0.00%",
    ]
    data = b"".join(line + b"\n" for line in lines * 4)
    parser = assert_same([data])
    assert _learnt(parser) > 0


def test_a_bar_naming_its_epoch_is_read_by_a_plan() -> None:
    """Lightning's bar: the counter epoch x total + n is made of three numbers of the line."""
    lines = [
        f"Epoch {e}:  {n * 2}%|##        | {n}/50 [00:01<00:01, 15.00it/s, v_num=0, train_loss=0.{n}]"
        for e in range(3)
        for n in range(0, 50, 7)
    ]
    data = "".join(line + "\n" for line in lines).encode()
    parser = assert_same([data])
    assert any(p is not None and p.bar is not None for p in parser._plans.values())
    steps = parser.parse(data).steps.to_pydict()
    assert 2 * 50 + 49 in steps["step"] and all(steps["counter"])
