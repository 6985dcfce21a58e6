"""Tests for logbook.record.parsers: each trainer's lines, units, aliases, lines that are not metrics,
regex mode, and properties (never raises; key=value lines round-trip)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbook.errors import ConfigError
from logbook.record.parsers import ALIASES, MAX_LINE, LineParser, Parsed, canonical_name

auto = LineParser()

# One line per trainer as it really prints it, and what it must give.
TRAINER_LINES = {
    "example trainer": (
        "step=10 loss=0.6931 lr=0.5 steps/s=1557.2",
        Parsed(10, {"loss": 0.6931, "learning_rate": 0.5, "steps_per_s": 1557.2}),
    ),
    "hugging face trainer": (
        "{'loss': 0.6931, 'grad_norm': 1.23, 'learning_rate': 5e-05, 'epoch': 0.5}",
        Parsed(None, {"loss": 0.6931, "grad_norm": 1.23, "learning_rate": 5e-05, "epoch": 0.5}),
    ),
    # v_num is the logger's version, not a metric; the bar's counter is the step (#15)
    "lightning": (
        "Epoch 0:  50%|█████     | 5/10 [00:01<00:01, 4.20it/s, v_num=0, train_loss=0.693]",
        Parsed(None, {"iters_per_s": 4.2, "epoch": 0.0, "train_loss": 0.693}, 5),
    ),
    "megatron": (
        " iteration      120/    5000 | consumed samples:  61440 | elapsed time per iteration (ms):"
        " 1234.5 | learning rate: 3.000E-04 | global batch size:   512 | lm loss: 2.345678E+00 |"
        " loss scale: 65536.0 | grad norm: 1.234 | number of skipped iterations:   0 |",
        Parsed(
            120,
            {
                "consumed_samples": 61440.0,
                "elapsed_time_per_iteration_ms": 1234.5,
                "learning_rate": 3e-4,
                "global_batch_size": 512.0,
                "loss": 2.345678,
                "loss_scale": 65536.0,
                "grad_norm": 1.234,
                "number_of_skipped_iterations": 0.0,
            },
        ),
    ),
    "deepspeed": (
        "[Rank 0] step=10, skipped=0, lr=[0.0001], mom=[(0.9, 0.999)]",
        Parsed(10, {"skipped": 0.0, "learning_rate": 0.0001}),
    ),
    "fairseq": (
        "| epoch 001 | loss 2.345 | ppl 5.1 | wps 12345 | ups 3.2 | wpb 4096 | bsz 8 |"
        " num_updates 100 | lr 0.0005 | gnorm 1.2 |",
        Parsed(
            100,
            {
                "epoch": 1.0,
                "loss": 2.345,
                "ppl": 5.1,
                "wps": 12345.0,
                "ups": 3.2,
                "wpb": 4096.0,
                "bsz": 8.0,
                "learning_rate": 0.0005,
                "grad_norm": 1.2,
            },
        ),
    ),
    "torchtitan": (
        "step:  10  loss:  8.1234  memory: 12.34GiB(15.6%)  tps: 1,234  tflops: 56.78  mfu: 12.34%",
        Parsed(
            10,
            {
                "loss": 8.1234,
                "memory_gib": 12.34,
                "tokens_per_s": 1234.0,
                "tflops": 56.78,
                "mfu": 12.34,
            },
        ),
    ),
    "nanogpt": (
        "iter 100: loss 2.3456, time 123.45ms, mfu 12.34%",
        Parsed(100, {"loss": 2.3456, "time_ms": 123.45, "mfu": 12.34}),
    ),
    "json lines": ('{"loss": 1.2, "step": 3}', Parsed(3, {"loss": 1.2})),
    "logging prefix": (
        "2024-05-01 12:00:00,123 INFO step=5 loss=2.5",
        Parsed(5, {"loss": 2.5}),
    ),
}


@pytest.mark.parametrize("name", list(TRAINER_LINES))
def test_trainer_lines(name: str) -> None:
    line, expected = TRAINER_LINES[name]
    assert auto.parse(line) == expected
    assert auto.parse(line.encode() + b"\n") == expected  # bytes with the newline, as read


@pytest.mark.parametrize(
    "line, values",
    [
        ("a=12.5%", {"a": 12.5}),
        (
            "a=3.2k b=1.5M c=2G d=7B e=1T f=4K",
            {"a": 3200.0, "b": 1.5e6, "c": 2e9, "d": 7e9, "e": 1e12, "f": 4000.0},
        ),
        ("throughput: 123.4 samples/s", {"throughput_samples_per_s": 123.4}),
        (
            "t=45.6ms u=2.5s v=3min w=1h x=9us",
            {"t_ms": 45.6, "u_s": 2.5, "v_min": 3.0, "w_h": 1.0, "x_us": 9.0},
        ),
        ("mem=12.3GB peak: 1.5 MiB", {"mem_gb": 12.3, "peak_mib": 1.5}),
        ("time_ms=45.6ms", {"time_ms": 45.6}),  # the unit is not added twice
        ("n=1,234,567 m=-3", {"n": 1234567.0, "m": -3.0}),
        ("x=1e-3 y=+2.5E+02 z=.5", {"x": 0.001, "y": 250.0, "z": 0.5}),
    ],
)
def test_units_and_numbers(line: str, values: dict[str, float]) -> None:
    assert auto.parse(line) == Parsed(None, values)


def test_nan_and_inf_are_kept() -> None:
    parsed = auto.parse("a=nan b=inf c=-inf d=NaN e=Infinity f=INF")
    assert parsed is not None and parsed.step is None
    v = parsed.values
    assert math.isnan(v["a"]) and math.isnan(v["d"])
    assert v["b"] == v["e"] == v["f"] == math.inf and v["c"] == -math.inf
    parsed = auto.parse("{'loss': nan, 'grad_norm': inf}")  # Python's repr of them
    assert parsed is not None and math.isnan(parsed.values["loss"])
    assert parsed.values["grad_norm"] == math.inf
    parsed = auto.parse('{"loss": NaN, "x": -Infinity}')  # and json's
    assert (
        parsed is not None and math.isnan(parsed.values["loss"]) and parsed.values["x"] == -math.inf
    )


def test_gigantic_numbers_become_inf() -> None:
    assert auto.parse("loss=1e400 x=-1e400") == Parsed(None, {"loss": math.inf, "x": -math.inf})
    assert auto.parse('{"loss": 1e400}') == Parsed(None, {"loss": math.inf})
    assert auto.parse('{"loss": ' + "9" * 400 + "}") == Parsed(None, {"loss": math.inf})
    # a step beyond int64 is no step: kept as a value
    assert auto.parse("step=" + "9" * 30) == Parsed(None, {"step": 1e30})


def test_json_nesting_is_flattened_and_non_numbers_skipped() -> None:
    line = '{"train": {"loss": 1, "acc": 0.5}, "step": 3, "tag": "x", "ok": true, "l": [1, 2], "s": "1.5"}'
    assert auto.parse(line) == Parsed(3, {"train/loss": 1.0, "train/acc": 0.5})
    assert auto.parse('INFO metrics {"Loss": 2}') == Parsed(None, {"loss": 2.0})
    assert auto.parse(
        '{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": 1}}}}}}}}}, "x": 2}'
    ) == Parsed(None, {"x": 2.0})  # deeper than 8 levels: skipped
    assert auto.parse('{"tag": "x"}') is None


@pytest.mark.parametrize(
    "line",
    [
        "2024-05-01 12:00:00,123 INFO Loading 3 shards",
        "[12:00:00] starting the run",
        "Loading 3 shards",
        "torch 2.3.0",
        "torch==2.3.0",
        "Python version: 3.11.4",
        "CUDA version: 12.1",
        "see https://example.com/x?a=1&b=2 now",
        "commit 3f2a9b1c, run id: 3e4f5a",
        "run_id=0123456 trace=0x1f3a",
        "Traceback (most recent call last):",
        '  File "/work/train.py", line 212, in <module>',
        "ValueError: batch 5121 has no tokens",
        "Error: 3 workers died",
        "Found 3, expected 4",
        "warnings: /x/y.py:123: UserWarning: old",
        "train.py:123 deprecated",
        "--lr=0.001",
        "time: 12:00:00",
        "elapsed: 00:01:23, date: 2024-05-01",
        "Downloading: 100%|██████████| 1.2G/1.2G [00:10<00:00, 120MB/s]",
        "Loading checkpoint shards: 100%|██████████| 3/3 [00:05<00:00, 1.7s/it]",
        "connecting to localhost:29500",
        "loss=abc lr=",
        "",
        "{}",
        "{'tag': 'x'}",
    ],
)
def test_not_metrics(line: str) -> None:
    assert auto.parse(line) is None


def test_odd_input_never_raises() -> None:
    assert auto.parse(b"step=1 loss=\xff\xfe 2") == Parsed(1, {})  # invalid UTF-8 is replaced
    assert auto.parse(b"\xff\xfe loss=2") == Parsed(None, {"loss": 2.0})
    assert auto.parse("x" * 100_000 + "=1") is None  # only the first MAX_LINE are read
    assert auto.parse("loss=1 " + "x" * 100_000) == Parsed(None, {"loss": 1.0})
    assert auto.parse("[" * 5000 + "{" * 5000) is None
    assert auto.parse("{" + '"a":{' * 3000 + "}" * 3001) is None  # json's recursion limit
    assert auto.parse("loss=1\rloss=2\r") == Parsed(None, {"loss": 2.0})  # last redraw of a bar
    many = " ".join(f"m{i}=1" for i in range(10_000))
    parsed = auto.parse(many)
    assert parsed is not None and 0 < len(parsed.values) < 10_000  # bounded by MAX_LINE
    assert MAX_LINE == 4096


def test_first_step_and_first_value_win() -> None:
    assert auto.parse("step=3 iter=4 loss=1 loss=2") == Parsed(3, {"loss": 1.0})
    assert auto.parse("step=3.5 loss=1") == Parsed(None, {"step": 3.5, "loss": 1.0})


@pytest.mark.parametrize(
    "name, canonical",
    [
        ("iter", "step"),
        ("iteration", "step"),
        ("global_step", "step"),
        ("update", "step"),
        ("it", "step"),
        ("steps", "step"),
        ("num_updates", "step"),
        ("lr", "learning_rate"),
        ("learning rate", "learning_rate"),
        ("LR", "learning_rate"),
        ("grad norm", "grad_norm"),
        ("gnorm", "grad_norm"),
        ("grad-norm", "grad_norm"),
        ("lm loss", "loss"),
        ("train_loss", "train_loss"),
        ("tokens/s", "tokens_per_s"),
        ("tok/s", "tokens_per_s"),
        ("tokens per second", "tokens_per_s"),
        ("tps", "tokens_per_s"),
        ("samples/s", "samples_per_s"),
        ("samples_per_sec", "samples_per_s"),
        ("it/s", "iters_per_s"),
        ("steps/s", "steps_per_s"),
        ("loss scale", "loss_scale"),
        ("  Loss ", "loss"),
        ('"val/Acc"', "val/acc"),
        ("elapsed time per iteration (ms)", "elapsed_time_per_iteration_ms"),
        ("!!!", ""),
    ],
)
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


def test_aliases_are_keyed_by_canonical_form() -> None:
    for key, target in ALIASES.items():
        assert canonical_name(key) == target
        assert canonical_name(target) == target  # aliasing is idempotent


def test_none_mode() -> None:
    assert LineParser("none").parse("step=1 loss=2") is None


def test_regex_mode() -> None:
    p = LineParser(
        r"regex:after (?P<iter>\d+) steps, L=(?P<loss>\S+) took (?P<t>\S+)(?: lr (?P<lr>\S+))?"
    )
    assert p.parse("after 12 steps, L=0.5 took 30ms") == Parsed(12, {"loss": 0.5, "t_ms": 30.0})
    assert p.parse(b"xx after 12 steps, L=nan took 1.5k lr 3e-4") is not None
    assert p.parse("after 12 steps, L=abc took ?") == Parsed(12, {})
    assert p.parse("step=1 loss=2") is None  # auto's formats are not read in regex mode
    q = LineParser(r"regex:L=(?P<loss>\S+)")
    assert q.parse("L=abc") is None


@pytest.mark.parametrize(
    "mode, message",
    [
        ("regex:(?P<loss>", "bad --metrics regex"),
        ("regex:loss=(\\d+)", "no named groups"),
        ("regex:", "no named groups"),
        ("json", "unknown --metrics mode"),
    ],
)
def test_bad_modes(mode: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LineParser(mode)


@given(st.binary(max_size=600))
def test_never_raises_on_bytes(data: bytes) -> None:
    for p in (auto, LineParser("regex:(?P<x>.*)")):
        result = p.parse(data)
        assert result is None or isinstance(result, Parsed)


_ALPHABET = "=:|{}[](),;%'\" \t\r.-+e0123456789abcdefghijklmnopqrstuvwxyzINFnan/\\kMGBs█"


@given(st.text(alphabet=_ALPHABET, max_size=300))
def test_never_raises_on_metric_like_text(text: str) -> None:
    result = auto.parse(text)
    assert result is None or (
        isinstance(result, Parsed)
        and (result.step is not None or result.counter is not None or result.values)
    )


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: (
        canonical_name(n) == n
        and n != "step"
        and not n.endswith(("_id", "version", "error"))
        and n
        not in (
            "id",
            "pid",
            "port",
            "host",
            "addr",
            "line",
            "lineno",
            "seed",
            "sha",
            "commit",
            "hash",
            "localhost",
        )
    )
)


@given(
    st.dictionaries(_NAMES, st.floats(allow_nan=False, width=64), min_size=1, max_size=8),
    st.integers(0, 2**63 - 1),
    st.sampled_from([" ", ", ", " | ", "\t"]),
    st.sampled_from(["=", ": "]),
)
def test_key_value_lines_round_trip(values: dict[str, float], step: int, sep: str, eq: str) -> None:
    line = sep.join([f"step{eq}{step}"] + [f"{k}{eq}{v!r}" for k, v in values.items()])
    assert auto.parse(line) == Parsed(step, values)


@given(st.dictionaries(_NAMES, st.floats(allow_nan=False), min_size=1, max_size=8))
def test_python_dict_repr_round_trips(values: dict[str, float]) -> None:
    assert auto.parse(repr(values)) == Parsed(None, values)


def test_steps_are_exact_past_two_to_the_53() -> None:
    big = 2**53 + 1
    assert auto.parse(f"step={big} a=1") == Parsed(big, {"a": 1.0})
    assert auto.parse(f'{{"step": {big}}}') == Parsed(big, {})


# --- the real trainers' formats (#15) -----------------------------------------------------------


def test_transformers_5_quoted_values() -> None:
    line = "{'loss': '5.199', 'grad_norm': '2.196', 'learning_rate': '0.0009', 'epoch': '0.005688'}"
    assert auto.parse(line) == Parsed(
        None, {"loss": 5.199, "grad_norm": 2.196, "learning_rate": 0.0009, "epoch": 0.005688}
    )
    parsed = auto.parse("{'loss': 'nan', 'grad_norm': 'inf', 'x': '-inf', 'lr': '1e-05'}")
    assert parsed is not None and math.isnan(parsed.values["loss"])
    assert parsed.values["grad_norm"] == math.inf and parsed.values["x"] == -math.inf
    assert parsed.values["learning_rate"] == 1e-05
    assert auto.parse("{'loss': '0.5', 'tag': 'abc', 'when': '12:00'}") == Parsed(
        None, {"loss": 0.5}
    )


@pytest.mark.parametrize(
    "line, expected",
    [
        ("{'loss': tensor(1.2345)}", Parsed(None, {"loss": 1.2345})),
        ("{'loss': tensor(1.5, grad_fn=<NllLossBackward0>), 'step': 3}", Parsed(3, {"loss": 1.5})),
        (
            "{'loss': tensor(2.5, device='cuda:0', grad_fn=<MulBackward0>)}",
            Parsed(None, {"loss": 2.5}),
        ),
        ("{'loss': np.float64(0.25), 'n': np.int64(7)}", Parsed(None, {"loss": 0.25, "n": 7.0})),
        ("step=3 loss=tensor([0.5])", Parsed(3, {"loss": 0.5})),
        ("epoch 2: {'accuracy': 0.5}", Parsed(None, {"epoch": 2.0, "accuracy": 0.5})),
        ("step 7 - {'loss': 0.5}", Parsed(7, {"loss": 0.5})),
    ],
)
def test_print_of_dicts_tensors_and_numpy(line: str, expected: Parsed) -> None:
    assert auto.parse(line) == expected
    parsed = auto.parse("{'loss': tensor(nan, grad_fn=<MulBackward0>)}")
    assert parsed is not None and math.isnan(parsed.values["loss"])


@pytest.mark.parametrize(
    "line, expected",
    [
        # Transformers: no description, no postfix; the counter is the step
        (
            " 51%|█████     | 102/200 [00:03<00:03, 24.85it/s]",
            Parsed(None, {"iters_per_s": 24.85}, 102),
        ),
        ("  0%|          | 0/200 [00:00<?, ?it/s]", Parsed(None, {}, 0)),
        # Lightning: epoch x total + n
        (
            "Epoch 1:  40%|████      | 20/50 [00:01<00:01, 15.00it/s, v_num=0, train_loss=0.693]",
            Parsed(None, {"epoch": 1.0, "iters_per_s": 15.0, "train_loss": 0.693}, 70),
        ),
        (
            "Epoch 2:  10%|█         | 1/10 [00:00<00:00, 4.2it/s, train_loss=nan.0, val_loss=inf.0]",
            Parsed(
                None,
                {"epoch": 2.0, "iters_per_s": 4.2, "train_loss": math.nan, "val_loss": math.inf},
                21,
            ),
        ),
        # a new epoch's bar at 0, still named after the last one: no counter, no epoch
        (
            "Epoch 0:   0%|          | 0/10 [00:00<?, ?it/s, train_loss=2.620]          ",
            Parsed(None, {"train_loss": 2.62}),
        ),
        ("Training: |          | 0/? [00:00<?, ?it/s]", Parsed(None, {}, 0)),
        (
            "Epoch 3: |          | 5/? [00:01<?, 4.00it/s, loss=1.5]",
            Parsed(None, {"epoch": 3.0, "iters_per_s": 4.0, "loss": 1.5}),
        ),
        # Lightning's Rich bar (after its escapes are stripped)
        (
            "Epoch 1/4 ━━━━━━━━━━╺━━━━━━━━━ 20/50 0:00:01 • 0:00:02 15.00it/s v_num: 0 train_loss: 0.693",
            Parsed(None, {"epoch": 1.0, "iters_per_s": 15.0, "train_loss": 0.693}, 70),
        ),
        (
            "Epoch 0/2  ━━━━━━━━━━━━━━━━━━━━━━━ 0/10 0:00:00 • -:--:-- 0.00it/s  ",
            None,  # at 0, not measured (Rich prints 0.00it/s for no speed)
        ),
        ("Validation ━━━━━━━━━╺━━━━━━━━━ 1/2   0:00:00 • -:--:-- 0.00it/s", None),
        # a bar drawn below another (ends with the cursor moved up): an evaluation's
        ("  0%|          | 0/8 [00:00<?, ?it/s]\x1b[A", None),
        ("Validation DataLoader 0:  50%|█████     | 1/2 [00:00<00:00, 936.02it/s]\x1b[A", None),
        # not the training's bars
        ("Map: 100%|██████████| 64/64 [00:00<00:00, 5000.00 examples/s]", None),
        ("Evaluating: 100%|██████████| 8/8 [00:00<00:00, 99.00it/s]", None),
    ],
)
def test_progress_bars(line: str, expected: Parsed | None) -> None:
    parsed = auto.parse(line)
    if expected is None or parsed is None:
        assert parsed == expected
        return
    assert (parsed.step, parsed.counter, parsed.values.keys()) == (
        expected.step,
        expected.counter,
        expected.values.keys(),
    )
    for name, value in expected.values.items():
        assert parsed.values[name] == value or (
            math.isnan(value) and math.isnan(parsed.values[name])
        )


def test_escapes_are_stripped_and_nested_bars_told_apart() -> None:
    red, reset = "\x1b[31m", "\x1b[39m"
    assert auto.parse(f"{red}step: 10{reset}  \x1b[38;2;180;60;0mloss: 2.5{reset}") == Parsed(
        10, {"loss": 2.5}
    )
    rich = (
        "\x1b[2K\x1b[1A\x1b[2KEpoch 1/2  \x1b[35m━━━━\x1b[0m\x1b[90m╺━━━━\x1b[0m 4/10 \x1b[2m0:00:00 • "
        "0:00:01\x1b[0m \x1b[2;4m6.56it/s\x1b[0m \x1b[3mtrain_loss: 3.006 val_loss: 1.894\x1b[0m"
    )
    assert auto.parse(rich) == Parsed(
        None, {"epoch": 1.0, "iters_per_s": 6.56, "train_loss": 3.006, "val_loss": 1.894}, 14
    )
    assert auto.parse(b"\x1b]0;my run\x07loss=1 \x1b(Bacc=2") == Parsed(
        None, {"loss": 1.0, "acc": 2.0}
    )
    # what a user's regex sees is the text as shown
    assert LineParser(r"regex:loss (?P<loss>\S+)").parse(f"loss {red}0.5{reset}") == Parsed(
        None, {"loss": 0.5}
    )


@pytest.mark.parametrize(
    "prefix",
    [
        "[rank0]: ",
        "[rank: 0] ",
        "[Rank 0] ",
        "[default0]:",
        "0: ",
        "  12: ",
        "[1,0]<stdout>:",
        "[titan] ",
        "[NeMo I 2025-06-18 21:41:53 nemo_logging:393] ",
        "[2023-10-31 08:58:33,237] [INFO] [logging.py:96:log_dist] [Rank 0] ",
        " [2025-08-01 07:19:37.412345] ",
    ],
)
def test_launcher_and_logger_prefixes(prefix: str) -> None:
    assert auto.parse(prefix + "iteration 5/ 100 | lm loss: 2.5 |") == Parsed(5, {"loss": 2.5})
    assert auto.parse(prefix + "Received SIGTERM: 15") is None


@pytest.mark.parametrize(
    "line",
    [
        "[rank: 0] Received SIGTERM: 15",
        "Received SIGINT: 2",
        "rank: 3 local_rank: 1",
        "exitcode  : 1 (pid: 1234)",
        "v_num=3",
    ],
)
def test_signals_ranks_and_exit_codes_are_no_metrics(line: str) -> None:
    assert auto.parse(line) is None


@pytest.mark.parametrize(
    "line, expected",
    [
        ("step 1: loss=1.99", Parsed(1, {"loss": 1.99})),
        ("step 1 loss 1.99", Parsed(1, {"loss": 1.99})),
        ("[step 3] loss: 1.2", Parsed(3, {"loss": 1.2})),
        ("Epoch 1, step 20: loss=0.5", Parsed(20, {"epoch": 1.0, "loss": 0.5})),
        ("Iter 7: loss=0.25 lr=1e-4", Parsed(7, {"loss": 0.25, "learning_rate": 1e-4})),
    ],
)
def test_a_step_in_words_before_the_metrics_is_the_lines_step(line: str, expected: Parsed) -> None:
    """Hand-written loops print `step N` before their pairs; the pairs hid it (step null)."""
    assert auto.parse(line) == expected


@pytest.mark.parametrize("line", ["Step 3 of the setup: done", "step 2: downloading data"])
def test_a_step_in_prose_with_no_metric_is_nothing(line: str) -> None:
    assert auto.parse(line) is None


@pytest.mark.parametrize(
    "line, expected",
    [
        (
            "step 150: train loss 2.7689, val loss 2.5118",
            Parsed(150, {"train_loss": 2.7689, "val_loss": 2.5118}),
        ),
        (
            "iter 0: loss 4.2654, time 12021.45ms, mfu -100.00%",
            Parsed(0, {"loss": 4.2654, "time_ms": 12021.45}),
        ),
        (
            "steps: 100 loss: 2.3000 iter time (s): 0.500 samples/sec: 64.000",
            Parsed(100, {"loss": 2.3, "iter_time_s": 0.5, "samples_per_s": 64.0}),
        ),
        (
            "time (ms) | fwd: 123.40 | bwd: 234.50 | step: 50.00",
            Parsed(None, {"fwd_ms": 123.4, "bwd_ms": 234.5, "step_ms": 50.0}),
        ),
        (
            " validation loss at iteration 100 | lm loss value: 2.5E+00 | lm loss PPL: 1.2E+01 | ",
            Parsed(100, {"validation/loss": 2.5, "validation/lm_loss_ppl": 12.0}),
        ),
        (
            "validate step: 20  loss:  2.3456  tps: 4,321",
            Parsed(20, {"validation/loss": 2.3456, "validation/tokens_per_s": 4321.0}),
        ),
        (
            "epoch=0/micro_step=10/global_step=10, RunningAvgSamplesPerSec=12.5, MemAllocated=6.01GB",
            Parsed(
                10,
                {
                    "epoch": 0.0,
                    "micro_step": 10.0,
                    "avg_samples_per_s": 12.5,
                    "mem_allocated_gb": 6.01,
                },
            ),
        ),
        (
            "Training epoch 0, iteration 10/99 | lr: 1.5e-05 | global_step: 9 | reduced_train_loss: 9.234",
            Parsed(10, {"learning_rate": 1.5e-05, "reduced_train_loss": 9.234}),
        ),
    ],
)
def test_trainer_specific_lines(line: str, expected: Parsed) -> None:
    assert auto.parse(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "learning_rate = 1e6",
        "batch_size = 8",
        "eval_interval = 250 # keep frequent because we'll overfit",
        "Overriding: max_iters = 100",
        "tokens per iteration will be: 16,384",
        "number of parameters: 10.65M",
        "found vocab_size = 65 (inside data/shakespeare_char/meta.pkl)",
        "num decayed parameter tensors: 26, with 10,740,096 parameters",
    ],
)
def test_config_echoes_never_carry_a_step(line: str) -> None:
    parsed = auto.parse(line)
    assert parsed is not None and parsed.step is None and parsed.counter is None


def test_units_in_brackets_are_ratios_not_namespaces() -> None:
    assert (
        canonical_name("throughput per GPU (TFLOP/s/GPU)")
        == "throughput_per_gpu_tflop_per_s_per_gpu"
    )
    assert canonical_name("iter time (s)") == "iter_time_s"
