"""Labels of attempts stay unique when many `logbook run` of one run name start at once, with real
wrappers racing over one store (on one host, and as several hosts sharing it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import logbook_cmd

from logbook import supervisor
from logbook.errors import ConfigError
from logbook.query import run_sql
from logbook.store import Store
from logbook.supervisor import RunOptions

# Prints, then sleeps so that every wrapper is alive (and none has finished) while the others start;
# with CRASH_FIRST it fails on its first launch, so its wrapper relaunches it once.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    print(f"step=1 loss=1.0 tag={sys.argv[1]}", flush=True)
    time.sleep(1.0)
    if os.environ.get("CRASH_FIRST") and os.environ["LOGBOOK_RESTART_COUNT"] == "0":
        sys.exit(1)
    """
)
QUIET = ("--no-capture", "--sample-every", "0", "--metrics", "none")


def _start(
    store_path: Path, run: str, tag: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    argv = logbook_cmd("run", "--run", run, "--store", str(store_path), *QUIET, *args)
    return subprocess.Popen(
        [*argv, "--", "python", "-c", CHILD, tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def _finish(procs: list[subprocess.Popen[bytes]]) -> list[tuple[int, bytes]]:
    out = []
    for p in procs:
        _, err = p.communicate(timeout=180)
        out.append((p.returncode, err))
    return out


def _attempts(store_path: Path, run: str) -> list[dict]:
    return run_sql(
        Store(store_path),
        "select attempt_id, label, parent_id, restart_count, host, command from attempts "
        "where run = ? order by start_time",
        [run],
    ).to_pylist()


def _labels(store_path: Path, run: str) -> list[str]:
    """The run's labels through `logbook query`, as a user would read them."""
    p = subprocess.run(
        logbook_cmd(
            "query",
            "--store",
            str(store_path),
            "--format",
            "csv",
            f"select label from attempts where run = '{run}' order by label",
        ),
        capture_output=True,
        timeout=120,
        check=True,
    )
    return p.stdout.decode().split()[1:]


def _dupes(labels: list[str]) -> dict[str, int]:
    return {k: n for k, n in Counter(labels).items() if n > 1}


def test_ten_wrappers_started_at_once_get_ten_labels(store_path: Path) -> None:
    procs = [_start(store_path, "same", str(i)) for i in range(10)]
    for code, err in _finish(procs):
        assert code == 0, err.decode()[-2000:]
    labels = _labels(store_path, "same")
    assert len(labels) == 10 and not _dupes(labels), labels
    assert labels == [f"1.{i:02d}" for i in range(10)]  # no gaps either: each took the next free


def test_wrappers_restarting_at_once_keep_labels_unique_and_their_own_parents(
    store_path: Path, tmp_path: Path
) -> None:
    # Each wrapper's on_restart hook writes the label it announces for the relaunch.
    hook = "import os, sys; open(sys.argv[1], 'w').write(os.environ['LOGBOOK_NEXT_ATTEMPT'])"
    procs = [
        _start(
            store_path,
            "flaky",
            f"w{i}",
            "--restarts",
            "1",
            "--restart-on",
            "all",
            "--backoff",
            "0.2",
            "--hook",
            f'on_restart=python -c "{hook}" {tmp_path / f"next-w{i}"}',
            env={"CRASH_FIRST": "1"},
        )
        for i in range(5)
    ]
    for code, err in _finish(procs):
        assert code == 0, err.decode()[-2000:]
    rows = _attempts(store_path, "flaky")
    labels = [r["label"] for r in rows]
    assert len(rows) == 10 and not _dupes(labels), labels
    by_id = {r["attempt_id"]: r for r in rows}
    restarts = [r for r in rows if r["restart_count"] == 1]
    assert len(restarts) == 5
    for r in restarts:  # the same wrapper's first attempt: the one that ran the same tag
        parent = by_id[r["parent_id"]]
        assert parent["restart_count"] == 0 and parent["command"] == r["command"], (r, parent)
    announced = sorted((tmp_path / f"next-w{i}").read_text() for i in range(5))
    assert announced == sorted(r["label"] for r in restarts)  # the hooks named the real labels


def test_wrappers_on_two_hosts_sharing_the_store_get_distinct_labels(store_path: Path) -> None:
    procs = [
        _start(store_path, "shared", str(i), env={"LOGBOOK_HOST": f"host-{'ab'[i % 2]}"})
        for i in range(10)
    ]
    for code, err in _finish(procs):
        assert code == 0, err.decode()[-2000:]
    rows = _attempts(store_path, "shared")
    labels = [r["label"] for r in rows]
    assert len(rows) == 10 and not _dupes(labels), labels
    assert {r["host"] for r in rows} == {"host-a", "host-b"}


def test_the_same_explicit_label_at_once_is_given_to_one_wrapper_only(store_path: Path) -> None:
    procs = [_start(store_path, "pinned", str(i), "--label", "7.00") for i in range(4)]
    results = _finish(procs)
    assert sorted(code for code, _ in results) == [0, 1, 1, 1], results
    for code, err in results:
        if code:
            assert b"label 7.00 is already used in this run" in err, err
            assert b"Traceback" not in err
    assert _labels(store_path, "pinned") == ["7.00"]


def test_a_refused_start_claims_no_label(store_path: Path) -> None:
    """A setting refused before launch leaves the --label free for the corrected command."""
    opts = RunOptions(command=["true"], store=store_path, run="fixed", label="5.00", capture=False)
    with pytest.raises(ConfigError):
        supervisor.run(replace(opts, sample_every_s=0.1))
    assert supervisor.run(replace(opts, sample_every_s=0)) == 0
    assert _labels(store_path, "fixed") == ["5.00"]


API_CHILD = """
import time, logbook
logbook.log({"loss": 1.0}, step=0)
time.sleep(1.0)
"""


def test_standalone_scripts_started_at_once_get_distinct_labels(
    store_path: Path, tmp_path: Path
) -> None:
    """The Python API outside `logbook run` places its attempts the same way."""
    script = tmp_path / "api_train.py"
    script.write_text(API_CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBOOK_")}
    env["LOGBOOK_STORE"] = str(store_path)
    procs = [
        subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    for code, err in _finish(procs):
        assert code == 0, err.decode()[-2000:]
    labels = _labels(store_path, "api_train")
    assert len(labels) == 6 and not _dupes(labels), labels
