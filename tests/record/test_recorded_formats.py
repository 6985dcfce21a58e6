"""The parser on recorded trainer output (#15): the fixtures in `fixtures/` (see its README), each
in the format its trainer's source prints, split with `split_lines` as the raw log is, parsed line
by line and through `ChunkParser`, and fed to the detectors with the step a reader of the stream
gives each line (the step it names, else the last progress-bar counter)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers import StreamLine, nan_findings, parse_stream

from logbook.record.batch import ChunkParser, split_lines
from logbook.record.parsers import LineParser

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load(name: str) -> bytes:
    """A fixture's output: its bytes without the `#| ` header lines."""
    lines = (FIXTURES / name).read_bytes().splitlines(keepends=True)
    return b"".join(line for line in lines if not line.startswith(b"#| "))


def at(walk: list[StreamLine], name: str) -> list[tuple[int | None, float]]:
    return [(s, p.values[name]) for s, p, _ in walk if name in p.values]


def test_fixtures_have_a_header_naming_their_source() -> None:
    names = sorted(p.name for p in FIXTURES.glob("*.log"))
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    assert len(names) >= 9
    for name in names:
        assert (FIXTURES / name).read_bytes().startswith(b"#| ")
        assert f"`{name}`" in readme


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.log")))
def test_chunk_parser_agrees_with_the_line_parser(name: str) -> None:
    data = load(name)
    chunk = ChunkParser().parse(data)
    walk = [(i, p) for i, line in enumerate(split_lines(data)) if (p := LineParser().parse(line))]
    assert chunk.points.num_rows == sum(len(p.values) for _, p in walk) > 0
    steps = chunk.steps.to_pydict()
    named = [(i, p.step, False) for i, p in walk if p.step is not None]
    counted = [(i, p.counter, True) for i, p in walk if p.step is None and p.counter is not None]
    assert sorted(zip(steps["line"], steps["step"], steps["counter"], strict=True)) == sorted(
        named + counted
    )


def test_megatron() -> None:
    walk = parse_stream(load("megatron_lm.log"))
    assert [s for s, _ in at(walk, "loss")] == [1, 2, 100, 110]
    [(s, first)] = [(s, p.values) for s, p, _ in walk if s == 1]
    assert first == {
        "consumed_samples": 128.0,
        "elapsed_time_per_iteration_ms": 19138.8,
        "throughput_per_gpu_tflop_per_s_per_gpu": 80.2,
        "learning_rate": 6.976744e-08,
        "global_batch_size": 128.0,
        "loss": 10.43863,
        "loss_scale": 1.0,
        "grad_norm": 26.203,
        "number_of_skipped_iterations": 0.0,
        "number_of_nan_iterations": 0.0,
    }
    assert at(walk, "validation/loss")[0] == (100, 7.298812)
    assert math.isnan(at(walk, "validation/loss")[1][1])
    assert at(walk, "max_allocated_mb") == [(None, 15754.88818359375)]  # memory (MB) | ...
    # Megatron leaves a NaN out of `lm loss` and counts it: both raise the event at 110.
    assert set(nan_findings(walk)) == {("number_of_nan_iterations", 110), ("validation/loss", 110)}


def test_deepspeed() -> None:
    walk = parse_stream(load("deepspeed.log"))
    assert [s for s, p, _ in walk if "skipped" in p.values] == [14000, 1890]
    assert at(walk, "learning_rate") == [(14000, 0.001)]  # one group; two groups: not one value
    [(s, through)] = [(s, p.values) for s, p, _ in walk if "avg_samples_per_s" in p.values]
    assert s == 14000 and through["mem_allocated_gb"] == 6.01 and through["micro_step"] == 14000
    # `time (ms) | ... | step: 50.00`: a time, never step 50.
    assert at(walk, "step_ms") == [(None, 50.0)] and at(walk, "fwd_microstep_ms")[0][1] == 12.34
    assert [p.step for _, p, line in walk if b"time (ms)" in line] == [None, None]
    assert at(walk, "iter_time_s") == [(100, 0.5), (110, 0.498)]
    assert nan_findings(walk) == [("loss", 110)]


def test_torchtitan_with_its_colours() -> None:
    data = load("torchtitan.log")
    assert b"\x1b[38;2;180;60;0m" in data
    walk = parse_stream(data)
    assert [(s, v) for s, v in at(walk, "tokens_per_s")] == [
        (1, 1234.0),
        (10, 1534.0),
        (20, 1530.0),
    ]
    assert at(walk, "tflops")[1] == (10, 1071.5) and at(walk, "memory_gib")[0] == (1, 12.34)
    assert at(walk, "mfu") == [(1, 7.23), (10, 8.1), (20, 8.08)]
    assert {("loss", 20), ("grad_norm", 20), ("validation/loss", 20)} == set(nan_findings(walk))


def test_nanogpt_config_echo_carries_no_step_and_eval_lines_do() -> None:
    walk = parse_stream(load("nanogpt.log"))
    first_step = next(i for i, (s, _, _) in enumerate(walk) if s is not None)
    echo = walk[:first_step]
    assert len(echo) >= 20 and all(p.step is None and p.counter is None for _, p, _ in echo)
    assert {"learning_rate", "batch_size", "max_iters", "vocab_size"} <= {
        n for _, p, _ in echo for n in p.values
    }
    assert at(walk, "val_loss")[:2] == [(0, 4.2823), (50, 2.4689)]
    assert at(walk, "train_loss")[1] == (50, 2.4512)
    assert at(walk, "mfu")[0] == (20, 0.01)  # the -100.00% before it is measured is dropped
    assert at(walk, "time_ms")[0] == (0, 12021.45)
    found = nan_findings(walk)
    assert ("loss", 70) in found and ("train_loss", 100) in found and ("val_loss", 100) in found


def test_nemo_progress_printer() -> None:
    walk = parse_stream(load("nemo.log"))
    assert [s for s, _ in at(walk, "reduced_train_loss")] == [
        10,
        20,
        30,
    ]  # iteration, not global_step
    assert at(walk, "learning_rate")[0] == (10, 1.5e-05)
    assert at(walk, "val_loss") == [(30, 6.912)]
    assert not any("nemo_logging" in p.values for _, p, _ in walk)
    assert nan_findings(walk) == [("reduced_train_loss", 30)]


def test_transformers_4_floats_and_steps_from_the_bar() -> None:
    walk = parse_stream(load("transformers_4.log"))
    assert [s for s, _ in at(walk, "loss")] == [5, 10, 15, 20]
    assert at(walk, "loss")[0] == (5, 0.6431) and at(walk, "epoch")[0] == (5, 0.5)
    assert at(walk, "eval_loss") == [(10, 0.6)]
    found = nan_findings(walk)
    assert ("loss", 15) in found and ("grad_norm", 15) in found and ("train_loss", 20) in found
    assert all(s is not None and s >= 15 for _, s in found)


def test_transformers_5_recorded() -> None:
    walk = parse_stream(load("transformers_5_trainer.log"))
    assert [s for s, _ in at(walk, "loss")] == [5, 10, 15, 20, 25, 30]
    assert [s for s, _ in at(walk, "eval_loss")] == [10, 20, 30]
    assert {("loss", 25), ("grad_norm", 25), ("eval_loss", 30)} <= set(nan_findings(walk))


def test_lightning_rich_recorded_on_a_pty() -> None:
    walk = parse_stream(load("lightning_rich_pty.log"))
    counters = [p.counter for _, p, _ in walk if p.counter is not None]
    assert counters == sorted(counters) and counters[-1] == 30
    assert ("train_loss", 25) in nan_findings(walk)


def test_plain_print_loops() -> None:
    walk = parse_stream(load("plain_loops.log"))
    assert at(walk, "loss")[:5] == [
        (1, 2.3456),
        (2, 2.2001),
        (3, 2.1004),
        (4, 2.0512),
        (5, at(walk, "loss")[4][1]),
    ]
    assert math.isnan(at(walk, "loss")[4][1]) and at(walk, "loss")[5] == (6, 1.9876)
    assert at(walk, "accuracy")[0] == (6, 0.5)
    assert [p.values["epoch"] for _, p, _ in walk if "f1" in p.values] == [0.0, 1.0]
    assert nan_findings(walk) == [("loss", 5)]
