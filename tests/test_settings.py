"""Where the store is: --store, LOGBOOK_STORE, nearest .logbook/ or logbook.toml walking up, ./.logbook."""

from __future__ import annotations

from pathlib import Path

import pytest

from logbook.errors import ConfigError
from logbook.settings import find_store


def test_order_of_places(tmp_path: Path) -> None:
    deep = tmp_path / "proj" / "src" / "deep"
    deep.mkdir(parents=True)
    assert find_store(None, cwd=deep, env={}) == (deep / ".logbook", "default (./.logbook)")
    (tmp_path / "proj" / ".logbook").mkdir()
    assert find_store(None, cwd=deep, env={})[0] == tmp_path / "proj" / ".logbook"
    (tmp_path / "proj" / "src" / "logbook.toml").write_text('[store]\npath = "../shared-store"\n')
    path, source = find_store(None, cwd=deep, env={})
    assert path == tmp_path / "proj" / "src" / ".." / "shared-store" and source.endswith(
        "logbook.toml"
    )
    assert find_store(None, cwd=deep, env={"LOGBOOK_STORE": "/x/env"}) == (
        Path("/x/env"),
        "LOGBOOK_STORE",
    )
    assert find_store("/x/flag", cwd=deep, env={"LOGBOOK_STORE": "/x/env"}) == (
        Path("/x/flag"),
        "--store",
    )


def test_a_toml_without_store_is_passed_over(tmp_path: Path) -> None:
    (tmp_path / "logbook.toml").write_text("[restart]\nmax = 3\n")
    assert find_store(None, cwd=tmp_path, env={})[1] == "default (./.logbook)"


def test_malformed_toml_is_a_clear_error(tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "logbook.toml").write_text("[store\npath = 1\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        find_store(None, cwd=tmp_path, env={})
    (tmp_path / "logbook.toml").write_text("[store]\npath = 1\n")
    with pytest.raises(ConfigError, match="path must be a string"):
        find_store(None, cwd=tmp_path, env={})


def test_cli_reports_malformed_toml_without_traceback(tmp_path: Path, run_logbook) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "logbook.toml").write_text("store = [\n")
    p = run_logbook("runs", cwd=tmp_path, check=1)
    assert (
        p.stderr.decode().startswith("Error: ")
        and b"not valid TOML" in p.stderr
        and b"Traceback" not in p.stderr
    )
    p = run_logbook("run", "--", "true", cwd=tmp_path, check=1)
    assert b"not valid TOML" in p.stderr


def test_env_store_is_used_by_the_cli(tmp_path: Path, run_logbook) -> None:  # type: ignore[no-untyped-def]
    run_logbook(
        "run",
        "--run",
        "e",
        "--",
        "true",
        env={"LOGBOOK_STORE": str(tmp_path / "envstore")},
        check=0,
        cwd=tmp_path,
    )
    assert (tmp_path / "envstore" / "attempts" / "run=e").is_dir() and not (
        tmp_path / ".logbook"
    ).exists()


def test_an_unknown_table_is_ignored_with_a_warning(run_logbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """[detector] for [detectors]: said once, with the likely table, and the command goes on."""
    (tmp_path / "logbook.toml").write_text("[detector]\nloss-spike = 3\n[store]\npath = 's'\n")
    done = run_logbook("runs", cwd=tmp_path, check=1)  # no store there yet: the usual error
    assert b"Error:" in done.stderr and b"Traceback" not in done.stderr
    warning = (
        b"logbook.toml: [detector] is not a logbook table, ignored (did you mean [detectors]?)"
    )
    assert done.stderr.count(warning) == 1
