"""Crash forensics: how an attempt ended, read from its exit status and the tail of its logs.

Example:
    from logbook.forensics import classify_end

    verdict = classify_end(returncode=1, log_paths=[log_dir / "stderr.log", log_dir / "stdout.log"])
    verdict.status, verdict.crash_class, verdict.summary  # "crashed", "gpu_oom", "CUDA out of ..."
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logbook.forensics.classify import Verdict, classify_end
    from logbook.forensics.rules import CLASSES, Rule, load_rules, rules_markdown

__all__ = ["CLASSES", "Rule", "Verdict", "classify_end", "load_rules", "rules_markdown"]

# Imported on first use (PEP 562): `logbook run` needs only the class names before the training
# starts, not the classifier and its compiled patterns (16 ms).
_HOME = {"Verdict": "classify", "classify_end": "classify"} | dict.fromkeys(
    ("CLASSES", "Rule", "load_rules", "rules_markdown"), "rules"
)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
