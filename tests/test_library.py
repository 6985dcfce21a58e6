"""The library under the CLI: what a notebook would call."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import logbook
from logbook import query
from logbook.errors import LogbookError, NoSuchRun, StoreCorrupt


def test_open_store_list_runs_read_an_attempt(run_logbook, store_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    run_logbook("run", "--store", str(store_path), "--run", "lib", "--", "true", check=0)
    run_logbook("run", "--store", str(store_path), "--run", "lib", "--", "false", check=1)
    monkeypatch.setenv("LOGBOOK_STORE", str(store_path))
    store = logbook.open_store()
    assert store.root == store_path and store.source == "LOGBOOK_STORE"
    assert query.list_runs(store).column("attempts").to_pylist() == [2]
    a = query.read_attempt(store, "lib", "1.01")
    assert (a["status"], a["exit_code"], a["parent_label"], a["cwd"]) == (
        "crashed",
        1,
        "1.00",
        os.getcwd(),
    )
    with pytest.raises(LogbookError, match=r'run "lib" has no attempt 9.99 \(it has: 1.00, 1.01\)'):
        query.read_attempt(store, "lib", "9.99")
    with pytest.raises(NoSuchRun):
        query.read_attempt(store, "nope", "1.00")


def test_open_store_without_a_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreCorrupt, match="no logbook store at"):
        logbook.open_store(str(tmp_path / "missing"))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    # Start-up of `logbook run` matters (#2): pyarrow, duckdb and GitPython load only when used.
    import subprocess
    import sys

    code = "import logbook.cli, sys; print(sorted({m.split('.')[0] for m in sys.modules} & {'pyarrow', 'duckdb', 'git'}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
