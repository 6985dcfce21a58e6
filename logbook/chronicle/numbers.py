"""How the chronicle writes a value for people, in HTML and Markdown alike (#16): numbers with
significant digits (4.45e-05, never 0.00), and never "None"."""

from __future__ import annotations

import json
import math
from typing import Any

DIGITS = 6  # significant digits of a float


def figure(value: Any) -> Any:
    """A float with DIGITS significant digits ("4.45e-05", "0.3", "2048"), None as "" (the
    templates say "unknown" where a figure is unknown); anything else as it is.

    Args:
        value: what a template prints.

    Returns:
        Text for a float or None, else the value.
    """
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{DIGITS}g}"
    return value


def setting(value: Any, recorded: bool = True) -> str:
    """A setting's value (a hyperparameter's old or new one): numbers as `figure`, true/false,
    text as it is, lists and tables as JSON; None is "not set" where the record says so (a
    config diff writes `"old": null` for a key the parent did not have), "not recorded" where
    the value is simply missing (`recorded` false: an imported change that gives no old value;
    #16: we do not know it was unset)."""
    if value is None:
        return "not set" if recorded else "not recorded"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(figure(value))
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)
