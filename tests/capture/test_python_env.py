"""Tests for logbook.capture.python_env with real interpreters run as subprocesses."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pyarrow

from logbook.capture._row import Row
from logbook.capture.python_env import capture_python, find_interpreter

HERE = os.path.dirname(sys.executable)


def python_rows(rows: list[Row]) -> dict[str, Row]:
    return {row["name"]: row for row in rows if row["kind"] == "python"}


def packages(rows: list[Row]) -> dict[str, str | None]:
    return {row["name"]: row["value"] for row in rows if row["kind"] == "package"}


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_python_command(tmp_path: Path) -> None:
    env = {"PATH": HERE}
    rows = capture_python(["python", "train.py"], env, tmp_path)
    info = python_rows(rows)
    assert info["version"]["value"] == platform.python_version()
    assert info["implementation"]["value"] == platform.python_implementation()
    assert info["inspected_via"]["value"] == "command"
    assert info["executable"]["value"] is not None
    assert Path(info["executable"]["value"]).parent == Path(HERE)
    # every row is ok; only a package installed from a folder says so (logbook itself, editable)
    assert all(row["status"] == "ok" for row in rows)
    sourced = {r["name"]: r["detail"] for r in rows if r["detail"] is not None}
    checkout = Path(__file__).resolve().parents[2]  # where `pip install -e .` ran
    assert sourced == {"training-logbook": f"installed from editable {checkout.as_uri()}"}
    found = packages(rows)
    assert found["pyarrow"] == pyarrow.__version__
    assert "gitpython" in found  # names are normalized: GitPython -> gitpython


def test_env_reaches_the_probe(tmp_path: Path) -> None:
    # A distribution visible only through the command's PYTHONPATH.
    site = tmp_path / "extra"
    (site / "only_here-1.2.3.dist-info").mkdir(parents=True)
    (site / "only_here-1.2.3.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: Only_Here\nVersion: 1.2.3\n"
    )
    rows = capture_python(["python3"], {"PATH": HERE, "PYTHONPATH": str(site)}, tmp_path)
    assert packages(rows)["only-here"] == "1.2.3"


def test_shebang_script(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_script(bin_dir / "torchrun", f"#!{sys.executable}\nprint('launching')\n")
    write_script(bin_dir / "accelerate", "#!/usr/bin/env python3\nprint('launching')\n")
    env = {"PATH": f"{bin_dir}{os.pathsep}{HERE}"}
    for launcher in ("torchrun", "accelerate"):
        interpreter, how = find_interpreter([launcher, "train.py"], env, tmp_path)
        assert how == "shebang"
        assert Path(interpreter).parent == Path(HERE)
    rows = capture_python(["torchrun", "--nproc-per-node", "8", "train.py"], env, tmp_path)
    assert python_rows(rows)["inspected_via"]["value"] == "shebang"
    assert "pyarrow" in packages(rows)


def test_long_path_shebang_written_by_pip(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "deepspeed",
        f"#!/bin/sh\n'''exec' \"{sys.executable}\" \"$0\" \"$@\"\n' '''\nprint(1)\n",
    )
    assert find_interpreter([str(script)], {"PATH": ""}, tmp_path) == (sys.executable, "shebang")


def test_python_after_a_launcher(tmp_path: Path) -> None:
    env = {"PATH": f"/usr/bin{os.pathsep}/bin{os.pathsep}{HERE}"}
    interpreter, how = find_interpreter(
        ["env", "OMP_NUM_THREADS=4", "python", "t.py"], env, tmp_path
    )
    assert how == "command"
    assert os.path.basename(interpreter) == "python"


def test_relative_command_is_resolved_against_cwd(tmp_path: Path) -> None:
    write_script(tmp_path / "run.py", f"#!{sys.executable}\n")
    assert find_interpreter(["./run.py"], {"PATH": ""}, tmp_path) == (sys.executable, "shebang")


def test_not_python_describes_the_wrapper(tmp_path: Path) -> None:
    script = write_script(tmp_path / "train.sh", "#!/bin/sh\necho hi\n")
    rows = capture_python([str(script)], {"PATH": "/usr/bin:/bin"}, tmp_path)
    info = python_rows(rows)
    assert info["inspected_via"]["value"] == "wrapper"
    assert info["executable"]["value"] == sys.executable
    assert info["executable"]["detail"] is None


def test_broken_interpreter_falls_back_in_process(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_script(bin_dir / "python", "#!/bin/sh\necho 'boom' >&2\nexit 3\n")
    rows = capture_python(["python", "train.py"], {"PATH": str(bin_dir)}, tmp_path)
    info = python_rows(rows)
    assert info["inspected_via"]["value"] == "wrapper"
    assert info["executable"]["value"] == sys.executable
    detail = info["version"]["detail"] or ""
    assert detail.startswith(f"could not inspect {bin_dir / 'python'} (RuntimeError: exit 3: boom)")
    assert packages(rows)["pyarrow"] == pyarrow.__version__
    assert all((row["detail"] or "").endswith(detail) for row in rows)


def test_missing_cwd_and_empty_command(tmp_path: Path) -> None:
    rows = capture_python([], {}, tmp_path / "missing")
    assert python_rows(rows)["inspected_via"]["value"] == "wrapper"
    assert "pyarrow" in packages(rows)
