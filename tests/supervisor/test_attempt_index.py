"""`logbook run` names its attempt from the run's index and spawns the command before pyarrow is
imported (#15); a store changed by another writer is read again, so labels and parents stay right."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from logbook.query import run_sql
from logbook.store import Store
from logbook.supervisor.attempt_index import only_ours

# The console entry, with `spawn` telling whether the wrapper had imported pyarrow (or psutil, whose
# 29 ms the owner of its journal no longer needs on Linux) by then.
WRAPPER = textwrap.dedent(
    """
    import sys
    from logbook.supervisor import launch

    real = launch.spawn

    def spawn(*args, **kwargs):
        late = "pyarrow" in sys.modules or "psutil" in sys.modules
        print("pyarrow at spawn:", late, file=sys.stderr, flush=True)
        return real(*args, **kwargs)

    launch.spawn = spawn
    sys.argv = ["logbook", *sys.argv[1:]]
    from logbook.cli import main

    main()
    """
)


def _run(store: Path, *command: str) -> bool:
    """One real `logbook run`; whether pyarrow or psutil was loaded when its command was spawned."""
    argv = ["run", "--store", str(store), "--run", "ix", "--no-capture", "--sample-every", "0"]
    p = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv, "--", *command],
        capture_output=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    [line] = [x for x in p.stderr.decode().splitlines() if x.startswith("pyarrow at spawn")]
    return line.endswith("True")


def test_the_command_starts_before_pyarrow_and_labels_follow_the_store(tmp_path: Path) -> None:
    assert not _run(tmp_path, "true")  # a new run: nothing to read
    assert not _run(tmp_path, "true")  # the index the first one left
    subprocess.run(  # another writer: merged parts the index was not made from
        [sys.executable, "-m", "logbook", "compact", "--store", str(tmp_path)], check=True
    )
    _run(tmp_path, "true")  # read from the Parquet again (pyarrow first: allowed)
    assert not _run(tmp_path, "true")  # the index that read made, and the third run kept
    rows = run_sql(
        Store(tmp_path),
        "select label, parent_label from attempts where run = 'ix' order by start_time",
    ).to_pylist()
    assert [(r["label"], r["parent_label"]) for r in rows] == [
        ("1.00", None),
        ("1.01", "1.00"),
        ("1.02", "1.01"),
        ("1.03", "1.02"),
    ]


def test_a_wrapper_keeps_the_index_only_where_every_new_file_is_its_own() -> None:
    before = [["a.parquet", 10]]
    ours = [["j-1.start.parquet", 5], ["j-1.parquet", 6]]
    assert only_ours(before, sorted(before + ours), ["1"])
    assert not only_ours(before, sorted([*before, *ours, ["part-x.parquet", 7]]), ["1"])
    assert not only_ours(before, ours, ["1"])  # a.parquet merged away
    assert not only_ours(before, before + ours[:1], ["1"])  # its attempt not folded: not on record
