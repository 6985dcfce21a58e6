from __future__ import annotations

from pathlib import Path

import pytest

from logbook.errors import ConfigError
from logbook.supervisor.lineage import (
    Placement,
    claimed,
    claims_dir,
    default_run_name,
    next_label,
    place,
)


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


def test_place_claims_labels_in_the_folder_it_is_given(tmp_path: Path) -> None:
    claims = tmp_path / "_labels" / "run=r"
    assert place([], None, claims).label == "1.00"
    assert place([], None, claims).label == "1.01"  # same view of the store, the next free label
    (claims / "1.02").write_text("")  # claimed on another host sharing the store
    assert place([], None, claims).label == "1.03"
    assert claimed(claims) == {"1.00", "1.01", "1.02", "1.03"}
    with pytest.raises(ConfigError, match="label 1.01 is already used in this run"):
        place([], "1.01", claims)
    # a restart follows its own wrapper's attempt, even when others were placed after it
    assert place([("mine", "1.00")], None, claims) == Placement("1.04", "mine", "1.00")


def test_claims_keep_labels_that_differ_in_case_apart(tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    assert place([], "Warmup", claims).label == "Warmup"
    assert place([], "warmup", claims).label == "warmup"  # two files on a case-blind file system
    assert len(list(claims.iterdir())) == 2
    assert claimed(claims) == {"Warmup", "warmup"}
    assert place([("a", "Warmup")], None, claims).label == "Warmup.01"


def test_a_store_that_takes_no_claims_still_places(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the claims folder should go: nothing can be claimed
    assert place([("a", "1.00")], None, blocked / "run=r").label == "1.01"
    assert place([("a", "1.00")], None, blocked).label == "1.01"  # the folder itself is a file
    assert claims_dir(None, "r") is None
