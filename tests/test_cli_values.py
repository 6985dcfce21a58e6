"""Values a report cannot answer are refused, not answered with nothing (#17): an attempt or an
event kind the store does not have exits 1 with what it has; a flag's impossible value is a usage
error, exit 2, as click's own value errors are; `--every N` ends its buckets on multiples of N."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture
def recorded(invoke, store_path: Path, train_script: Path) -> Path:
    """A real `logbook run` of the test trainer over steps 0..60, with a note."""
    invoke(
        ["run", "--store", str(store_path), "--run", "r", "--", "python", str(train_script)],
        env={**os.environ, "TRAIN_STEPS": "61"},
    )
    invoke(["note", "r", "looked fine", "--store", str(store_path)])
    return store_path


def test_every_buckets_end_on_multiples_of_n(invoke, recorded: Path) -> None:
    args = ["metrics", "r", "--name", "loss", "--every", "20", "--format", "json"]
    rows = json.loads(invoke([*args, "--store", str(recorded)]).stdout)
    assert [r["step"] for r in rows] == [0, 20, 40, 60]
    # The last value of each bucket is the one logged at its last step.
    assert [r["value"] for r in rows] == [
        2.0,
        round(2.0 / 21, 4),
        round(2.0 / 41, 4),
        round(2.0 / 61, 4),
    ]


def test_an_attempt_the_run_lacks_is_an_error(invoke, recorded: Path) -> None:
    r = invoke(["metrics", "r", "--attempt", "9.99", "--store", str(recorded)], code=1)
    assert r.stdout == ""
    assert (
        r.stderr.strip()
        == 'Error: run "r" has no attempt 9.99 (it has: 1.00); see "logbook show r"'
    )
    rows = json.loads(
        invoke(
            ["metrics", "r", "--attempt", "1.00", "--format", "json", "--store", str(recorded)]
        ).stdout
    )
    assert len(rows) == 61


def test_an_event_kind_the_store_never_recorded_is_an_error(invoke, recorded: Path) -> None:
    r = invoke(["events", "r", "--kind", "nosuchkind,note", "--store", str(recorded)], code=1)
    assert r.stdout == ""
    assert r.stderr.startswith('Error: no event of kind "nosuchkind" in ')
    assert "kinds on record:" in r.stderr and "note" in r.stderr
    notes = json.loads(
        invoke(
            ["events", "r", "--kind", "note", "--format", "json", "--store", str(recorded)]
        ).stdout
    )
    assert [n["message"] for n in notes] == ["looked fine"]


@pytest.mark.parametrize(
    ("flag", "args"),
    [
        ("--every", ["metrics", "r", "--every", "0"]),
        ("--limit", ["events", "r", "--limit", "0"]),
        ("--hang-timeout", ["run", "--run", "x", "--hang-timeout", "soon", "--", "true"]),
        ("--backoff", ["run", "--run", "x", "--backoff", "-5s", "--", "true"]),
    ],
)
def test_an_impossible_flag_value_is_a_usage_error(
    invoke, recorded: Path, flag: str, args: list[str]
) -> None:
    r = invoke([args[0], "--store", str(recorded), *args[1:]], code=2)
    assert f"Invalid value for '{flag}'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    if args[0] == "run":  # refused before anything started: no run "x" on record
        invoke(["show", "x", "--store", str(recorded)], code=1)
