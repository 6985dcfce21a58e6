"""The cost tests' lineages, put on record with `logbook import` (times and steps worked out by
hand); see gpubox.py for the GPU machine's snapshots and samples."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from logbook.query import run_sql
from logbook.store import Store


@pytest.fixture
def lineage(invoke, store_path: Path, tmp_path: Path) -> Callable[..., dict[str, str]]:  # type: ignore[no-untyped-def]
    """lineage(run, [attempt rows]) -> {label: attempt_id}, through `logbook import`."""

    def make(run: str, attempts: Iterable[dict[str, Any]]) -> dict[str, str]:
        history = tmp_path / f"{run}.jsonl"
        history.write_text("".join(json.dumps({"type": "attempt", **a}) + "\n" for a in attempts))
        invoke(["import", str(history), "--run", run, "--store", str(store_path)])
        rows = run_sql(
            Store(store_path), "select label, attempt_id from attempts where run = ?", [run]
        ).to_pylist()
        return {r["label"]: r["attempt_id"] for r in rows}

    return make
