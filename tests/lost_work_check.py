"""What every test of a resumed run checks: the lost steps of each attempt are the same in
`logbook incidents --each`, `logbook goodput --each`, `logbook show` and the chronicle's data,
and equal the steps the run really did twice (#15)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import logbook_cmd

from logbook.query import run_sql
from logbook.store import Store


def _argv(store: Path, run: str, ckpt: Path, command: list[str], *extra: str) -> list[str]:
    """`logbook run` of `command` with the checkpoint folder, no snapshot, no sampler."""
    return logbook_cmd(
        "run", "--store", str(store), "--run", run, "--no-capture", "--sample-every", "0",
        "--checkpoint-dir", str(ckpt), *extra, "--", *command,
    )  # fmt: skip


def run_logbook(
    store: Path, run: str, ckpt: Path, command: list[str], *extra: str, env: dict | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`logbook run` of `command` (see `_argv`), with fast relaunches."""
    return subprocess.run(
        _argv(store, run, ckpt, command, "--backoff", "0.1", *extra),
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def interrupt_when(
    store: Path, run: str, ckpt: Path, command: list[str], marker: Path, sig: int
) -> subprocess.CompletedProcess[bytes]:
    """`logbook run` of `command`, sent `sig` (Ctrl-C: SIGINT) once `marker` appears."""
    proc = subprocess.Popen(
        _argv(store, run, ckpt, command), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def end_and_relaunch(
    store: Path,
    run: str,
    ckpt: Path,
    command: list[str],
    marker: Path,
    how: str,
    interrupted: tuple[int, ...] = (),
) -> None:
    """The training ends itself at its kill step by `how` (kill, term, int: the signal), then is
    relaunched: by logbook itself after SIGKILL (worth a relaunch), by a second `logbook run`
    after an interruption (which is not). `interrupted`: other exit codes the interrupted run may
    give besides 128 + the signal (a trainer that catches it)."""
    if how == "kill":
        p = run_logbook(store, run, ckpt, command, "--restarts", "1")
        assert p.returncode == 0, p.stderr.decode()[-3000:]
        return
    if how == "term":
        p = run_logbook(store, run, ckpt, command)
    else:
        p = interrupt_when(store, run, ckpt, command, marker, signal.SIGINT)
    assert p.returncode in (128 + kill_signal(how), *interrupted), p.stderr.decode()[-3000:]
    p = run_logbook(store, run, ckpt, command)
    assert p.returncode == 0, p.stderr.decode()[-3000:]


def attempts(store: Path, run: str) -> list[dict[str, Any]]:
    return run_sql(
        Store(store), "select * from attempts where run = ? order by start_time", [run]
    ).to_pylist()


def checkpoint_steps(store: Path, run: str) -> dict[str, list[tuple[int | None, str]]]:
    """Label -> (step, file or folder name) of each of its checkpoint events, in step order."""
    rows = run_sql(
        Store(store),
        "select a.label, e.step, e.data->>'path' as path from events e join attempts a "
        "using (attempt_id) where e.run = ? and e.kind = 'checkpoint' order by e.step, path",
        [run],
    ).to_pylist()
    out: dict[str, list[tuple[int | None, str]]] = {}
    for r in rows:
        out.setdefault(r["label"], []).append((r["step"], Path(r["path"] or "").name))
    return out


def steps_logged(store: Path, run: str, metric: str) -> dict[str, set[int]]:
    """Label -> the steps at which `metric` was recorded."""
    rows = run_sql(
        Store(store),
        "select distinct a.label, m.step from metrics m join attempts a using (attempt_id) "
        "where m.run = ? and m.name = ? and m.step is not null",
        [run, metric],
    ).to_pylist()
    out: dict[str, set[int]] = {}
    for r in rows:
        out.setdefault(r["label"], set()).add(r["step"])
    return out


def lost_steps_everywhere(invoke, store: Path, run: str) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Label -> the lost steps each report gives (None where it gives none)."""

    def cli(*args: str) -> list[dict[str, Any]]:
        out = invoke([*args, run, "--store", str(store), "--format", "json"]).stdout
        return json.loads(out)  # type: ignore[no-any-return]

    from logbook.chronicle.collect import gather

    reports = {
        "incidents": {r["label"]: r["lost_steps"] for r in cli("incidents", "--each")},
        "goodput": {r["label"]: r["lost_steps"] for r in cli("goodput", "--each")},
        "show": {r["label"]: r["lost_steps"] for r in cli("show")},
        "chronicle": {
            a["label"]: a["lost_steps"] for a in gather(Store(store), run).sections["attempts"]
        },
    }
    labels = sorted(reports["show"])
    return {label: {k: v.get(label) for k, v in reports.items()} for label in labels}


def assert_lost_agrees(invoke, store: Path, run: str, failed: str, lost: int | None) -> None:  # type: ignore[no-untyped-def]
    """Every report gives the failed attempt `lost` lost steps, and the last one (completed, not
    relaunched) 0; `logbook incidents` lists only the attempts that did not complete."""
    everywhere = lost_steps_everywhere(invoke, store, run)
    reports = ("goodput", "show", "chronicle")
    statuses = {a["label"]: a["status"] for a in attempts(store, run)}
    if statuses[failed] != "completed":
        reports = ("incidents", *reports)
    assert {k: everywhere[failed][k] for k in reports} == dict.fromkeys(reports, lost), everywhere
    last = max(everywhere)
    assert statuses[last] == "completed" and everywhere[last] == {
        "incidents": None,
        "goodput": 0,
        "show": 0,
        "chronicle": 0,
    }, everywhere


def kill_signal(how: str) -> int:
    return {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}[how]


PYTHON = sys.executable
