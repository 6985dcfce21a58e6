"""The second level of cause (#19): every shipped rule names a known component, the Xid rules
agree with the [xid] table, and a verdict's component follows its rule or its code reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from logbook.errors import ConfigError
from logbook.forensics import classify_end, load_rules
from logbook.forensics.components import (
    COMPONENTS,
    component_of,
    component_of_faults,
    planned_of,
    xid_component,
)

SHIPPED = load_rules()


def test_every_shipped_rule_names_a_known_component_or_none() -> None:
    assert all(re.fullmatch(r"[a-z_]+", c) for c in COMPONENTS)
    for rule in SHIPPED:
        assert rule.component is None or rule.component in COMPONENTS, rule.id
    named = {r.component for r in SHIPPED} - {None}
    assert {"gpu", "hbm", "nvlink", "gpu_system_processor", "nccl_watchdog", "user"} <= named


@pytest.mark.parametrize("rule", [r for r in SHIPPED if r.id.startswith("xid-")], ids=str)
def test_xid_rules_agree_with_the_xid_table(rule, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "stderr.log"
    for example in rule.examples:
        xid = int(rule.regex.search(example).group("xid"))
        assert (xid_component(xid) or "gpu") == rule.component, example
        log.write_text(example + "\n")
        assert classify_end(returncode=1, log_paths=[log]).component == rule.component


@pytest.mark.parametrize(
    ("xid", "component"),
    [(48, "hbm"), (63, "hbm"), (64, "hbm"), (94, "hbm"), (95, "hbm"), (79, "gpu"),
     (74, "nvlink"), (119, "gpu_system_processor"), (120, "gpu_system_processor"),
     (13, "software_bug"), (31, "software_bug"), (43, "software_bug")],
)  # fmt: skip
def test_xid_numbers_map_as_the_issue_lists(xid: int, component: str, tmp_path: Path) -> None:
    assert xid_component(xid) == component
    log = tmp_path / "stderr.log"
    log.write_text(f"NVRM: Xid (PCI:0000:3b:00): {xid}, pid=2211, name=python, text\n")
    verdict = classify_end(returncode=1, log_paths=[log])
    assert verdict.component == component
    assert verdict.crash_class == ("unknown" if component == "software_bug" else "gpu_hardware")


def test_code_reasons_and_stops_get_components_and_planned(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_text('Traceback (most recent call last):\n  File "t.py", line 1\nValueError: x\n')
    v = classify_end(returncode=1, log_paths=[log])
    assert (v.rule, v.component) == ("python-traceback", None)
    assert component_of("crashed", v.rule, v.component) == "software_bug"
    assert component_of("crashed", "sigkill", None) == "user"
    assert component_of("crashed", "exit-code", None) is None  # unknown stays null
    assert component_of("interrupted", "signal", None) == "user"
    assert component_of("preempted", "forwarded-signal", None) == "maintenance"
    assert component_of("hung", "signal", None) is None
    assert component_of("completed", "exit-code", None) is None
    assert [planned_of(s) for s in ("interrupted", "preempted", "crashed", "hung", "completed")] == [
        True, True, False, False, None,
    ]  # fmt: skip
    log.write_text(
        "slurmstepd: error: *** JOB 1 ON n1 CANCELLED AT 2024-01-02T03:04:05 DUE TO TIME LIMIT ***\n"
    )
    v = classify_end(returncode=15 + 128, log_paths=[log], under_scheduler=True)
    assert (v.status, v.component, planned_of(v.status, v.planned)) == (
        "preempted",
        "maintenance",
        True,
    )


def test_telemetry_faults_map_by_the_xid_table() -> None:
    assert component_of_faults(["Xid 79 on 0000:05:00: GPU has fallen off the bus."]) == "gpu"
    assert component_of_faults(["Xid 94 on 0000:3b:00: Contained"]) == "hbm"
    assert component_of_faults(["GPU 0: uncorrected ECC errors rose from 0 to 2"]) == "hbm"
    assert component_of_faults([]) is None


def test_a_user_rule_with_an_unknown_component_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown component 'gpuu'"):
        load_rules([{"id": "mine", "class": "data_io", "pattern": "x", "component": "gpuu"}])
    mine = load_rules([{"id": "mine", "class": "data_io", "pattern": "x", "component": "storage"}])
    assert mine[0].component == "storage"
