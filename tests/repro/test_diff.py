"""logbook diff: what changed between real attempts, recorded by `logbook run`."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import logbook_cmd
from test_repro import HOSTILE, Recorded, clean_env, record_two_attempts

from logbook.repro.diff import diff_attempts
from logbook.store import Store


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_two_attempts(tmp_path_factory.mktemp("diff"))


def test_lists_exactly_what_changed(recorded: Recorded) -> None:
    rows = diff_attempts(Store.open(recorded.store), "r", "1.00", "1.01").to_pylist()
    argv = [sys.executable, "train.py", "--lr"]
    sums = [hashlib.sha256((recorded.settings / f"config-{n}.yaml").read_bytes()) for n in (0, 1)]
    assert [tuple(r.values()) for r in rows] == [
        ("config", "arg lr", "0.1", "0.2"),
        ("config", "config lr", "0.1", "0.2"),
        (
            "config",
            "config_file path",
            str(recorded.settings / "config-0.yaml"),
            str(recorded.settings / "config-1.yaml"),
        ),
        ("config", "config_file sha256", sums[0].hexdigest(), sums[1].hexdigest()),
        (
            "command",
            "argv",
            shlex.join([*argv, "0.1", *HOSTILE]),
            shlex.join([*argv, "0.2", *HOSTILE]),
        ),
        ("env", "FOO", "one", "two"),
        ("data_mix", "code weight", "0.4", "0.5"),
        ("data_mix", "web weight", "0.6", "0.5"),
    ]


def test_cli_formats_and_bad_input(recorded: Recorded, invoke) -> None:  # type: ignore[no-untyped-def]
    base = ["--store", str(recorded.store)]
    doc = json.loads(invoke(["diff", "r", "1.00", "1.01", "--format", "json", *base]).output)
    assert [(d["section"], d["key"]) for d in doc][-2:] == [
        ("data_mix", "code weight"),
        ("data_mix", "web weight"),
    ]
    csv = invoke(["diff", "r", "1.01", "1.00", "--format", "csv", *base]).output
    assert csv.splitlines()[0] == "section,key,a,b" and "env,FOO,two,one" in csv.splitlines()
    assert invoke(["diff", "r", "1.00", "1.00", *base]).output == "no differences\n"
    assert invoke(["diff", "r", "1.00", "1.00", "--format", "json", *base]).output == "[]\n"
    r = invoke(["diff", "r", "1.00", "7.00", *base], code=1)
    assert r.stderr.startswith('Error: run "r" has no attempt 7.00') and "Traceback" not in r.stderr
    r = invoke(["diff", "nope", "1.00", "1.01", *base], code=1)
    assert r.stderr.startswith('Error: no run "nope"') and "Traceback" not in r.stderr


def test_identical_launches_then_packages_and_data(tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    """Two identical launches differ in nothing; a third with an extra package on PYTHONPATH and
    edited data shows the package, the variable and the data's fingerprint, nothing else."""
    work, store = tmp_path / "work", tmp_path / ".logbook"
    (work / "data").mkdir(parents=True)
    (work / "data" / "shard.txt").write_text("first\n")
    (work / "mix.yaml").write_text("code: {weight: 1.0, path: data/}\n")
    (work / "train.py").write_text("print('step=1 loss=1')\n")
    extra = tmp_path / "site"
    meta = extra / "logbook_fake_pkg-1.2.3.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: logbook-fake-pkg\nVersion: 1.2.3\n"
    )
    args = ["run", "--store", str(store), "--run", "same", "--data-mix", "mix.yaml", "--"]
    for env in ({}, {}, {"PYTHONPATH": str(extra)}):
        if env:
            (work / "data" / "shard.txt").write_text("second, longer\n")
        done = subprocess.run(
            logbook_cmd(*args, sys.executable, "train.py"),
            cwd=work,
            env=clean_env(**env),
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
    assert (
        invoke(["diff", "same", "1.00", "1.01", "--store", str(store)]).output == "no differences\n"
    )
    rows = diff_attempts(Store.open(store), "same", "1.01", "1.02").to_pylist()
    assert [(r["section"], r["key"]) for r in rows] == [
        ("packages", "logbook-fake-pkg"),
        ("env", "PYTHONPATH"),
        ("data_mix", "code fingerprint data/"),
    ]
    assert rows[0]["a"] is None and rows[1]["a"] is None
    assert rows[0]["b"] == "1.2.3" and rows[1]["b"] == str(extra)
    # both fingerprints on record, and different (the data changed between the launches)
    assert rows[2]["a"] and rows[2]["b"] and rows[2]["a"] != rows[2]["b"]
