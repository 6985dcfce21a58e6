"""The settings of a cost report, each from a flag, else logbook.toml, else a documented default.

`[cost]` holds gpu-price (USD per GPU-hour), pue and carbon-intensity (gCO2e/kWh); `[compute]`
holds params and tokens-per-step. The price and the compute figures have no default here: the
price falls back on a price recorded by `logbook run --gpu-price`, then the shipped table; params
and tokens per step on the attempt's own config (see logbook.cost.compute).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logbook.errors import ConfigError

# Uptime Institute's global survey: average PUE 1.58 in 2023, 1.56 in 2024, flat since ~2020
# (hyperscale halls run near 1.1; codecarbon's own default is 1.0, the IT load alone).
DEFAULT_PUE = 1.56
DEFAULT_PUE_SOURCE = "default: Uptime Institute 2024 industry average"
# codecarbon 3.3.2's "world_average" (IEA 2019), what it uses for an unknown country.
DEFAULT_CARBON_INTENSITY = 475.0
DEFAULT_CARBON_INTENSITY_SOURCE = "default: world average, codecarbon from IEA 2019"

SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}  # 7B params, 4M tokens

_COST_KEYS = ("gpu-price", "pue", "carbon-intensity")
_COMPUTE_KEYS = ("params", "tokens-per-step")


@dataclass(frozen=True)
class Setting:
    """A number and where it came from ("--pue", "logbook.toml [cost] pue", "default: ...")."""

    value: float | None
    source: str | None

    @property
    def is_flag(self) -> bool:
        """Given on the command line (a flag beats a price recorded at launch; logbook.toml
        does not)."""
        return self.source is not None and self.source.startswith("--")


@dataclass(frozen=True)
class CostSettings:
    """Everything `cost_report` takes besides the store and the run."""

    gpu_price: Setting = Setting(None, None)
    pue: Setting = Setting(DEFAULT_PUE, DEFAULT_PUE_SOURCE)
    carbon_intensity: Setting = Setting(DEFAULT_CARBON_INTENSITY, DEFAULT_CARBON_INTENSITY_SOURCE)
    params: Setting = Setting(None, None)
    tokens_per_step: Setting = Setting(None, None)


def parse_number(
    value: Any, *, what: str, minimum: float = 0.0, suffixes: bool = False, hint: str | None = None
) -> float:
    """A finite number at least `minimum`, from a flag's text or a TOML value.

    Args:
        value: "2.10", 2.1, "7e9"; with `suffixes`, also "7B", "4M", "512k".
        what: how the error names the value, e.g. "--gpu-price".
        minimum: the smallest value allowed.
        suffixes: accept k, M, B (or G) and T multipliers.
        hint: how to fix a bad value.

    Raises:
        ConfigError: not a number, not finite, or below `minimum`.
    """
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().replace("_", "")
        scale = 1.0
        if suffixes and text[-1:].lower() in SUFFIXES:
            text, scale = text[:-1], SUFFIXES[text[-1].lower()]
        try:
            number = float(text) * scale
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ConfigError(f"{what} {value!r} is not a number", hint=hint)
    if number < minimum:
        floor = "negative" if minimum == 0 else f"below {minimum:g}"
        raise ConfigError(f"{what} {value!r} is {floor}", hint=hint)
    return number


_HINTS = {
    "gpu-price": "give US dollars per GPU-hour, e.g. 2.10",
    "pue": "give the data centre's power usage effectiveness, 1.0 or more (e.g. 1.1)",
    "carbon-intensity": "give grams of CO2e per kWh, e.g. 475",
    "params": "give the parameter count, e.g. 7e9 or 7B",
    "tokens-per-step": "give tokens per optimizer step (global batch × sequence length), e.g. 4M",
}
_MINIMUM = {"pue": 1.0, "params": 1.0, "tokens-per-step": 1.0}


def resolve_settings(
    flags: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    config_path: Path | None = None,
) -> CostSettings:
    """Flags over logbook.toml's [cost] and [compute] tables over the defaults.

    Args:
        flags: gpu_price, pue, carbon_intensity, params, tokens_per_step (None when not given).
        config: the parsed logbook.toml, or {}.
        config_path: where it came from, to name it in sources and errors.

    Raises:
        ConfigError: a bad number, or an unknown key in [cost] or [compute].
    """
    config = config or {}
    config_where = str(config_path) if config_path else "logbook.toml"
    tables = {
        "cost": _table(config, "cost", _COST_KEYS, config_where),
        "compute": _table(config, "compute", _COMPUTE_KEYS, config_where),
    }

    def get(key: str, table: str, default: Setting) -> Setting:
        flag = flags.get(key.replace("-", "_"))
        if flag is not None:
            where = f"--{key}"
            value = flag
        elif key in tables[table]:
            where = f"{config_where} [{table}] {key}"
            value = tables[table][key]
        else:
            return default
        number = parse_number(
            value,
            what=where,
            minimum=_MINIMUM.get(key, 0.0),
            suffixes=table == "compute",
            hint=_HINTS[key],
        )
        return Setting(number, where)

    base = CostSettings()
    return CostSettings(
        gpu_price=get("gpu-price", "cost", base.gpu_price),
        pue=get("pue", "cost", base.pue),
        carbon_intensity=get("carbon-intensity", "cost", base.carbon_intensity),
        params=get("params", "compute", base.params),
        tokens_per_step=get("tokens-per-step", "compute", base.tokens_per_step),
    )


def _table(
    config: Mapping[str, Any], name: str, keys: tuple[str, ...], where: str
) -> dict[str, Any]:
    table = config.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    out = {k.replace("_", "-"): v for k, v in table.items()}
    unknown = sorted(set(out) - set(keys))
    if unknown:
        raise ConfigError(
            f"{where} [{name}]: unknown setting {', '.join(unknown)}",
            hint=f"known: {', '.join(keys)}",
        )
    return out
