"""Crash forensics: how an attempt ended, read from its exit status and the tail of its logs.

Example:
    from logbook.forensics import classify_end

    verdict = classify_end(returncode=1, log_paths=[log_dir / "stderr.log", log_dir / "stdout.log"])
    verdict.status, verdict.crash_class, verdict.summary  # "crashed", "gpu_oom", "CUDA out of ..."
"""

from __future__ import annotations

from logbook.forensics.classify import Verdict, classify_end
from logbook.forensics.rules import CLASSES, Rule, load_rules, rules_markdown

__all__ = ["CLASSES", "Rule", "Verdict", "classify_end", "load_rules", "rules_markdown"]
