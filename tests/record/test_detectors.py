"""Detectors on real-looking curves: quiet on noise, loud on the real thing (#4, part 4)."""

from __future__ import annotations

import math
import random

import pytest

from logbook.errors import ConfigError
from logbook.record.detectors import Detectors


def healthy_loss(steps: int, seed: int = 0) -> list[float]:
    """A pre-training loss curve: power-law decay with 3% multiplicative noise and rare bumps."""
    rng = random.Random(seed)
    return [(8.0 * (s + 10) ** -0.3 + 1.5) * (1 + rng.gauss(0, 0.03)) for s in range(steps)]


def run(det: Detectors, name: str, values: list[float]) -> list:  # type: ignore[type-arg]
    found = []
    for step, v in enumerate(values):
        found += det.observe(step, {name: v})
    return found


@pytest.mark.parametrize("seed", range(5))
def test_a_noisy_healthy_curve_has_no_spike(seed: int) -> None:
    assert run(Detectors(), "loss", healthy_loss(5000, seed)) == []


def test_a_planted_spike_is_found_at_its_step() -> None:
    curve = healthy_loss(3000)
    curve[2000] *= 1.6
    [f] = run(Detectors(), "train/loss", curve)
    assert (f.kind, f.step, f.name) == ("loss_spike", 2000, "train/loss")
    assert f.evidence["median"] < f.value


def test_nan_and_inf_are_found_once_per_cooldown() -> None:
    curve = healthy_loss(200)
    curve[100:105] = [math.nan] * 5
    curve[180] = math.inf
    found = run(Detectors(), "loss", curve)
    assert [(f.kind, f.step) for f in found] == [("nan", 100), ("nan", 180)]


def test_grad_norm_explosion_loss_scale_collapse_and_throughput_drop() -> None:
    det = Detectors()
    rng = random.Random(1)
    found = []
    for step in range(300):
        values = {
            "grad_norm": 1.0 + rng.random() * 0.2 if step != 250 else 40.0,
            "loss_scale": 65536.0 if step < 280 else 0.5,
            "tokens_per_s": 12000 * (1 + rng.gauss(0, 0.02)) if not 200 <= step < 210 else 3000,
        }
        found += det.observe(step, values)
    assert [(f.kind, f.step) for f in found] == [
        ("throughput_drop", 202),
        ("grad_norm_explosion", 250),
        ("loss_scale_collapse", 280),
    ]


def test_settings() -> None:
    curve = healthy_loss(3000)
    curve[2000] *= 1.6
    assert run(Detectors({"spike_mads": 100, "spike_min_rise": 1.0}), "loss", curve) == []
    with pytest.raises(ConfigError, match="unknown setting spike"):
        Detectors({"spike": 3})


@pytest.mark.parametrize(
    "name",
    [
        "loss",
        "eval_loss",
        "val/loss",
        "grad_norm",
        "ppl",
        "validation/lm_loss_ppl",
        "tokens_per_s",
        "mfu",
        "accuracy",
        "learning_rate",
    ],
)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_in_any_metric_are_found_at_their_step(name: str, bad: float) -> None:
    det = Detectors()
    assert Detectors.watches(name)  # the API feeds only what a detector watches
    values = [1.0 + 0.01 * (i % 3) for i in range(30)] + [bad]
    found = run(det, name, values)
    assert [(f.kind, f.name, f.step) for f in found] == [("nan", name, 30)]
    assert found[0].value == bad or (math.isnan(bad) and math.isnan(found[0].value))


def test_messages_of_points_without_a_step_never_say_none() -> None:
    """Metrics logged without a step (an import, logbook.log without step=) still get findings,
    and their messages say what is known (#16: "at step None" was printed)."""
    det = Detectors()
    found = [*det.observe(None, {"loss": math.nan}), *det.observe(None, {"nan_iterations": 3.0})]
    for value in (65536.0, 0.5):
        found += det.observe(None, {"loss_scale": value})
    assert {f.kind for f in found} == {"nan", "loss_scale_collapse"}
    for f in found:
        assert "None" not in f.message and "step" not in f.message, f.message


def test_a_losses_spread_is_computed_once_per_median_not_per_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bench.py's losses cycle over 2.0-3.0: most points rise above the minimum and asked for the
    window's MAD each, 1 CPU-s of the wrapper on its 2.7 M lines (#15). It follows the median."""
    import statistics

    from logbook.record import detectors as module

    calls, real = [], statistics.median

    def median(data):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(data)

    monkeypatch.setattr(module.statistics, "median", median)
    d, rng = Detectors(), random.Random(0)  # a flood's sample: every value of the cycle
    found = [f for i in range(2000) for f in d.observe(i, {"loss": rng.uniform(2.0, 3.0)})]
    assert found == [] and len(calls) <= 2 * 2000 / module.MEDIAN_EVERY
