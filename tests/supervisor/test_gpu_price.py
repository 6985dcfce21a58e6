"""`logbook run --gpu-price`: recorded per attempt for `logbook cost`; a bad price refused (#5)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from logbook.query import run_sql
from logbook.store import Store


def test_the_price_is_recorded_with_each_attempt(run_logbook, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    for price in ("2.10", "$1.5"):
        run_logbook(
            "run", "--store", str(store_path), "--run", "p", "--no-capture", "--gpu-price",
            price, "--", sys.executable, "-c", "print('step=1')", check=0,
        )  # fmt: skip
    rows = run_sql(
        Store(store_path),
        "select a.label, s.value, s.detail from snapshots s join attempts a using (attempt_id) "
        "where s.kind = 'cost' and s.name = 'gpu_price_usd_per_hour' order by a.label",
    ).to_pylist()
    assert rows == [
        {"label": "1.00", "value": "2.1", "detail": "--gpu-price"},
        {"label": "1.01", "value": "1.5", "detail": "--gpu-price"},
    ]


@pytest.mark.parametrize("price", ["-3", "abc", "inf", "nan"])
def test_a_bad_price_is_refused_before_the_command_starts(
    run_logbook, store_path: Path, tmp_path: Path, price: str
) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    p = run_logbook(
        "run", "--store", str(store_path), "--gpu-price", price, "--", sys.executable, "-c",
        f"open({str(marker)!r}, 'w')", check=1,
    )  # fmt: skip
    assert f"--gpu-price '{price}' is not a price".encode() in p.stderr and not marker.exists()
