"""record/stream.py: chunks of raw log -> points with steps, and the junk gate (#15)."""

from __future__ import annotations

from pathlib import Path

from logbook.record.stream import MetricStream, interleaved, line_start


def _rows(stream: MetricStream, data: bytes) -> list[tuple[int | None, str, float]]:
    t = stream.feed(data).points.to_pydict()
    return list(zip(t["step"], t["name"], t["value"], strict=True))


def test_a_line_without_a_step_gets_the_last_step_known_across_chunks() -> None:
    s = MetricStream("auto")
    assert _rows(s, b"step=1 loss=2.0\n") == [(1, "loss", 2.0)]
    assert _rows(s, b"grad_norm=0.5\nstep=2 loss=1.5\n") == [
        (1, "grad_norm", 0.5),
        (2, "loss", 1.5),
    ]
    assert (s.first_step, s.last_step) == (1, 2)


def test_a_redrawn_line_is_parsed_at_each_drawing() -> None:
    s = MetricStream("auto")
    _rows(s, b"step=1 loss=1\n")
    # A bar redrawn with \r and no newline: every drawing is a line.
    rows = _rows(s, b"a=1 loss=0.9\ra=2 loss=0.8\ra=3 loss=0.7\r")
    assert [v for _, n, v in rows if n == "loss"] == [0.9, 0.8, 0.7]


def test_a_config_echo_is_settings_not_metrics() -> None:
    """nanoGPT prints its configuration before training; those values are no curves."""
    s = MetricStream("auto")
    echo = b"learning_rate = 1e6\nbatch_size = 8\nnumber of parameters: 10.65M\n"
    assert _rows(s, echo) == []
    rows = _rows(s, b"iter 1: loss 2.61, time 285.9ms, mfu 0.01%\n")
    assert {n for _, n, _ in rows} == {"loss", "time_ms", "mfu"}
    assert s.finish() == {
        "learning_rate": 1e6,
        "batch_size": 8.0,
        "number_of_parameters": 10.65e6,
    }


def test_a_stepless_curve_becomes_a_metric_with_its_first_value() -> None:
    s = MetricStream("auto")
    assert _rows(s, b"lr = 0.1\nloss=3.0\n") == []  # both held: either may be an echo
    assert _rows(s, b"loss=2.0\nloss=1.0\n") == [
        (None, "loss", 3.0),
        (None, "loss", 2.0),
        (None, "loss", 1.0),
    ]
    assert _rows(s, b"loss=0.5\n") == [(None, "loss", 0.5)]
    assert s.finish() == {"learning_rate": 0.1}  # the canonical name of lr


def test_a_value_read_before_the_step_of_another_log_is_not_taken_for_a_setting() -> None:
    """Transformers 5.x: a log dict on stdout may be read before the bar on stderr that gives
    its step; when the dict's names recur without a step, the first one is a metric too."""
    s = MetricStream("auto")
    assert _rows(s, b"{'loss': 2.5, 'grad_norm': 1.0}\n") == []
    _rows(s, b"step=10 x=1\n")
    rows = _rows(s, b"{'loss': 2.0, 'grad_norm': 0.9}\n")
    assert (None, "loss", 2.5) in rows and (10, "loss", 2.0) in rows
    assert s.finish() == {}


def test_the_gate_goes_on_from_a_saved_state() -> None:
    whole = MetricStream("auto")
    a = _rows(whole, b"seed_value = 7\nloss=3\n") + _rows(whole, b"loss=2\nstep=1 loss=1\n")
    first = MetricStream("auto")
    b = _rows(first, b"seed_value = 7\nloss=3\n")
    second = MetricStream("auto", state={**first.state(), "first_step": None, "last_step": None})
    b += _rows(second, b"loss=2\nstep=1 loss=1\n")
    assert a == b and whole.finish() == second.finish() == {"seed_value": 7.0}


def test_interleaved_reads_whole_lines_of_each_log_in_proportion(tmp_path: Path) -> None:
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    out.write_bytes(b"".join(b"o%d\n" % i for i in range(100_000)))
    err.write_bytes(b"".join(b"e%d\r" % i for i in range(10_000)))
    got: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    order = []
    for name, chunk, _ in interleaved(
        {"stdout": (out, [(0, out.stat().st_size)]), "stderr": (err, [(0, err.stat().st_size)])},
        chunk_bytes=100_000,
    ):
        assert chunk.endswith((b"\n", b"\r"))
        got[name] += chunk
        order.append(name)
    assert got == {"stdout": out.read_bytes(), "stderr": err.read_bytes()}
    assert order[:2] == ["stdout", "stderr"] and order[-1] == "stdout"  # in turn, in proportion


def test_line_start_skips_to_the_next_line(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes(b"abc\rdef\nghi\n")
    assert [line_start(log, o) for o in (0, 1, 4, 5, 8)] == [0, 4, 4, 8, 8]
