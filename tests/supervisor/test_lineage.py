from __future__ import annotations

import pytest

from logbook.errors import ConfigError
from logbook.supervisor.lineage import default_run_name, next_label, place


@pytest.mark.parametrize(
    ("label", "nxt"),
    [
        ("1.00", "1.01"),
        ("1.09", "1.10"),
        ("12.99", "12.100"),
        ("warmup", "warmup.01"),
        ("warmup.01", "warmup.02"),
    ],
)
def test_next_label(label: str, nxt: str) -> None:
    assert next_label(label) == nxt


def test_place_skips_used_labels_and_refuses_duplicates() -> None:
    prev = [("a", "1.00"), ("b", "1.02"), ("c", "1.01")]
    assert place(prev, None).label == "1.03"  # 1.02 after 1.01 is taken
    assert place(prev, None).parent_id == "c"
    assert place([], None).label == "1.00" and place([], None).parent_id is None
    with pytest.raises(ConfigError, match="already used"):
        place(prev, "1.02")
    with pytest.raises(ConfigError, match="not allowed"):
        place(prev, "../x")


@pytest.mark.parametrize(
    ("cmd", "name"),
    [
        (["python", "train.py", "--lr", "3e-4"], "train"),
        (["torchrun", "--nproc-per-node", "8", "scripts/pretrain_gpt.py"], "pretrain_gpt"),
        (["bash", "launch.sh"], "launch"),
        (["./my trainer"], "my-trainer"),
        (["python", "-m", "trainer.main"], "trainer.main"),
    ],
)
def test_default_run_name(cmd: list[str], name: str) -> None:
    assert default_run_name(cmd) == name
