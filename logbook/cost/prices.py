"""The shipped table of accelerators (prices.toml beside this module): price per GPU-hour, rated
power and peak FLOPs, each with its source and date. The report matches a GPU's name against it
in SQL (`match`, a case-insensitive RE2 expression; the first matching entry wins)."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class GpuSpec:
    """One entry of prices.toml; a figure it lacks is None (unknown, never zero)."""

    name: str
    match: str
    examples: tuple[str, ...] = ()
    usd_per_gpu_hour: float | None = None
    price_basis: str | None = None
    price_source: str | None = None
    price_as_of: str | None = None
    price_status: str | None = None
    tdp_w: float | None = None
    tdp_source: str | None = None
    tdp_status: str | None = None
    peak_tflops: float | None = None
    peak_source: str | None = None
    peak_status: str | None = None

    @property
    def price_text(self) -> str | None:
        """How the price is cited in a report."""
        if self.usd_per_gpu_hour is None:
            return None
        return (
            f'price table "{self.name}": {self.price_basis}; '
            f"{self.price_source}, {self.price_as_of}"
        )


@lru_cache(maxsize=1)
def gpu_specs() -> tuple[GpuSpec, ...]:
    """The shipped table, in match order."""
    from importlib import resources

    text = resources.files("logbook.cost").joinpath("prices.toml").read_text("utf-8")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    specs = []
    for entry in tomllib.loads(text)["gpu"]:
        entry = dict(entry)
        entry["examples"] = tuple(entry.get("examples", ()))
        for key in ("usd_per_gpu_hour", "tdp_w", "peak_tflops"):
            if entry.get(key) is not None:
                entry[key] = float(entry[key])
        specs.append(GpuSpec(**entry))
    return tuple(specs)


def sql_rows() -> list[dict[str, Any]]:
    """The table as rows for a DuckDB parameter (`unnest($gpus, recursive := true)`), with the
    match order (`ord`) and the price citation."""
    rows = []
    for ord_, spec in enumerate(gpu_specs()):
        row = asdict(spec)
        del row["examples"]
        rows.append({"ord": ord_, **row, "price_text": spec.price_text})
    return rows
