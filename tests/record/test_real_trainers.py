"""The parser on the real output of the real trainers (#15): the Transformers Trainer and the
Lightning Trainer (its TQDM and its Rich bar, on a pipe and on a terminal) on tiny CPU models.

Each trainer runs in a child process whose stdout and stderr go to one pipe (or one pty), as a
terminal or `2>&1` would show them; its bytes are split with `split_lines` and parsed line by
line. `parse_stream` (helpers) gives each line the step a reader of the stream gives it: the one the line
names, else the last progress-bar counter seen (what `Parsed.counter` is for).
"""

from __future__ import annotations

import ast
import fcntl
import math
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import StreamLine, nan_findings, parse_stream

from logbook.record.batch import ChunkParser, split_lines
from logbook.record.parsers import LineParser, Parsed

pytestmark = pytest.mark.integrations

PROGRAMS = Path(__file__).resolve().parent / "programs"
HF = str(PROGRAMS / "hf_trainer.py")
PL = str(PROGRAMS / "lightning_trainer.py")
TIMEOUT_S = 300


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env.update(PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def _run_pipe(args: list[str], env: dict[str, str], sigterm_after: bytes | None = None) -> bytes:
    child = subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    assert child.stdout is not None
    out = b""
    if sigterm_after is not None:  # Lightning's own SIGTERM handling prints a line of its own
        deadline = time.monotonic() + TIMEOUT_S
        while sigterm_after not in out and time.monotonic() < deadline:
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
        child.send_signal(signal.SIGTERM)
    out += child.communicate(timeout=TIMEOUT_S)[0]
    return out


def _run_pty(args: list[str], env: dict[str, str]) -> bytes:
    """The child's output as a 120-column terminal shows it (colours, cursor moves and all)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    child = subprocess.Popen(
        [sys.executable, *args], stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    out = bytearray()
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(leader)
        child.wait(timeout=TIMEOUT_S)
    return bytes(out)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every run of this module, started together (each mostly waits on imports)."""
    pytest.importorskip("transformers")
    pytest.importorskip("lightning")
    out = tmp_path_factory.mktemp("hf")
    runs: dict[str, Any] = {
        # TQDM_MININTERVAL=0: the bar is drawn on every step, as it is when a step takes
        # longer than tqdm's 0.1 s; the default run shows what faster steps do.
        "hf": (_run_pipe, [HF, str(out / "a")], _env(NAN_AT="23", TQDM_MININTERVAL="0")),
        "hf_default": (_run_pipe, [HF, str(out / "b")], _env(NAN_AT="23")),
        "hf_no_tqdm": (_run_pipe, [HF, str(out / "c")], _env(NO_TQDM="1", STEPS="10")),
        "pl_tqdm_pipe": (_run_pipe, [PL], _env(NAN_AT="25")),
        "pl_tqdm_pty": (_run_pty, [PL], _env(NAN_AT="25")),
        "pl_rich_pipe": (_run_pipe, [PL], _env(NAN_AT="25", BAR="rich")),
        "pl_rich_pty": (_run_pty, [PL], _env(NAN_AT="25", BAR="rich", SLEEP="0.05")),
    }
    with ThreadPoolExecutor(len(runs) + 1) as pool:
        futures = {name: pool.submit(fn, args, env) for name, (fn, args, env) in runs.items()}
        futures["pl_sigterm"] = pool.submit(
            _run_pipe, [PL], _env(SLEEP="0.05"), sigterm_after=b"Epoch 0"
        )
        return {name: f.result(timeout=TIMEOUT_S) for name, f in futures.items()}


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# --- Transformers 5.x --------------------------------------------------------------------------


def test_transformers_dicts_and_steps_from_the_bar(outputs: dict[str, bytes]) -> None:
    walk = parse_stream(outputs["hf"])
    logs = [(step, p) for step, p, line in walk if line.startswith(b"{'loss': ")]
    # The log dicts name no step: each gets the counter of the bar drawn before it.
    assert [step for step, _ in logs] == [5, 10, 15, 20, 25, 30]
    for (_, p), line in zip(
        logs, [line for _, _, line in walk if line.startswith(b"{'loss': ")], strict=True
    ):
        printed = ast.literal_eval(line.decode())  # {'loss': '5.069', ...}: quoted strings (5.x)
        assert all(isinstance(v, str) for v in printed.values())
        assert p.step is None and p.values.keys() == printed.keys()
        assert all(_same(p.values[k], float(v)) for k, v in printed.items())
    evals = [(step, p.values) for step, p, _ in walk if "eval_loss" in p.values]
    assert [step for step, _ in evals] == [10, 20, 30]
    assert all(math.isfinite(v["eval_loss"]) for _, v in evals[:2])
    # NaN from the 23rd step: in the loss and grad_norm logged at 25, the eval_loss at 30.
    by_step = dict(logs)
    assert all(math.isfinite(by_step[s].values["loss"]) for s in (5, 10, 15, 20))
    assert math.isnan(by_step[25].values["loss"]) and math.isnan(by_step[25].values["grad_norm"])
    assert math.isnan(evals[2][1]["eval_loss"])
    found = nan_findings(walk)
    assert {("loss", 25), ("grad_norm", 25), ("eval_loss", 30)} <= set(found)
    assert all(step is not None and step >= 25 for _, step in found)


def test_transformers_through_the_chunk_parser(outputs: dict[str, bytes]) -> None:
    chunk = ChunkParser().parse(outputs["hf"])
    steps = chunk.steps.to_pydict()
    assert steps["counter"] and all(steps["counter"])  # every step is a bar's counter
    assert {5, 10, 15, 20, 25, 30} <= set(steps["step"]) and max(steps["step"]) == 30
    names = chunk.points.column("name").to_pylist()
    assert names.count("loss") == 6 and names.count("eval_loss") == 3


def test_transformers_evaluation_bar_gives_no_counter(outputs: dict[str, bytes]) -> None:
    # The evaluation bar (`0/8`, `8/8`, drawn below the training bar) is not the training's step.
    eval_bars = [line for line in split_lines(outputs["hf"]) if b"/8 [" in line]
    assert len(eval_bars) >= 6
    assert all(getattr(LineParser().parse(line), "counter", None) is None for line in eval_bars)
    counters = [p.counter for _, p, _ in parse_stream(outputs["hf"]) if p.counter is not None]
    assert counters == sorted(counters) and counters[-1] == 30


def test_transformers_fast_steps_redraw_the_bar_after_the_dict(outputs: dict[str, bytes]) -> None:
    """tqdm draws at most 10 times a second: with faster steps the bar before a dict may lag
    behind; the one `tqdm.write` draws right after the dict carries the dict's step."""
    walk = parse_stream(outputs["hf_default"])
    after = []
    for i, (_, _p, line) in enumerate(walk):
        if line.startswith(b"{'loss': "):
            after.append(next(q.counter for _, q, _ in walk[i + 1 :] if q.counter is not None))
    assert after == [5, 10, 15, 20, 25, 30]


def test_transformers_without_a_bar_the_step_is_unknown(outputs: dict[str, bytes]) -> None:
    """disable_tqdm: the Trainer prints its dicts and nothing that names the step (no
    global_step), so the step is null, never guessed (the epoch is there, as a value)."""
    walk = parse_stream(outputs["hf_no_tqdm"])
    logs = [p for _, p, line in walk if line.startswith(b"{'loss': ")]
    assert len(logs) == 2 and all(p.step is None and p.counter is None for p in logs)
    assert all(step is None for step, _, _ in walk)
    assert [p.values["epoch"] for p in logs] == [0.3125, 0.625]


# --- Lightning -----------------------------------------------------------------------------------


def _lightning_bar(walk: list[StreamLine]) -> list[Parsed]:
    return [p for _, p, _ in walk if p.counter is not None]


@pytest.mark.parametrize("run", ["pl_tqdm_pipe", "pl_tqdm_pty"])
def test_lightning_tqdm_bar(outputs: dict[str, bytes], run: str) -> None:
    walk = parse_stream(outputs[run])
    bar = _lightning_bar(walk)
    counters = [p.counter for p in bar]
    # Epoch E, n of 10 -> E * 10 + n: Lightning's global_step; the validation bars give none.
    # 0 is Lightning's `Training: | 0/? [...]` drawn before the first epoch's bar.
    assert set(counters) == set(range(31)) and counters == sorted(counters)
    assert all(p.values["epoch"] == ((p.counter or 0) - 1) // 10 for p in bar if p.counter)
    first_nan = min(p.counter or 0 for p in bar if math.isnan(p.values.get("train_loss", 0.0)))
    assert first_nan == 25
    assert any("val_loss" in p.values for p in bar)
    assert ("train_loss", 25) in nan_findings(walk)
    for line in split_lines(outputs[run]):
        if b"Validation" in line:
            parsed = LineParser().parse(line)
            assert parsed is None or parsed.counter is None


def test_lightning_rich_bar_on_a_pipe_draws_once_at_the_end(outputs: dict[str, bytes]) -> None:
    """What really happens: not a terminal, so Rich renders the bar once, when it stops."""
    walk = parse_stream(outputs["pl_rich_pipe"])
    [bar] = _lightning_bar(walk)
    assert bar.counter == 30 and bar.values["epoch"] == 2.0 and bar.values["iters_per_s"] > 0
    assert math.isnan(bar.values["train_loss"])
    assert any("val_loss" in p.values for _, p, _ in walk)  # perhaps on a wrapped line
    assert ("train_loss", 30) in nan_findings(walk)


def test_lightning_rich_bar_on_a_terminal(outputs: dict[str, bytes]) -> None:
    data = outputs["pl_rich_pty"]
    assert b"\x1b[" in data and "━".encode() in data  # colours and cursor controls, as drawn
    walk = parse_stream(data)
    bar = _lightning_bar(walk)
    counters = [p.counter or 0 for p in bar]
    assert counters == sorted(counters) and counters[-1] == 30 and len(set(counters)) >= 20
    assert all(p.values.get("iters_per_s", 1.0) > 0 for p in bar)  # Rich's 0.00it/s is unknown
    first_drawn = min(c for c in counters if c >= 25)
    first_nan = min(p.counter or 0 for p in bar if math.isnan(p.values.get("train_loss", 0.0)))
    assert first_nan == first_drawn
    assert ("train_loss", first_nan) in nan_findings(walk)


def test_lightning_sigterm_line_is_no_metric(outputs: dict[str, bytes]) -> None:
    data = outputs["pl_sigterm"]
    assert b"[rank: 0] Received SIGTERM: 15" in data
    names = {n for _, p, _ in parse_stream(data) for n in p.values}
    assert not names & {"rank", "sigterm", "received_sigterm"}
    assert names  # the bars around it still parse
