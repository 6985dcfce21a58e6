"""Cost, energy and compute of a run: GPU-hours, money, energy, CO2, FLOPs and MFU per attempt
and in total, each figure with its basis (measured or estimated, and from what).

>>> from logbook.cost import cost_report, resolve_settings
>>> cost_report(store, "gpt", resolve_settings({"pue": "1.1"}))   # a pyarrow Table
"""

from logbook.cost.prices import GpuSpec, gpu_specs
from logbook.cost.report import basis_notes, cost_report
from logbook.cost.settings import CostSettings, Setting, resolve_settings

__all__ = [
    "CostSettings",
    "GpuSpec",
    "Setting",
    "basis_notes",
    "cost_report",
    "gpu_specs",
    "resolve_settings",
]
