"""A launch over several hosts (#5, part 5): which wrappers share a launch, and two real wrappers on
this machine posing as two hosts (LOGBOOK_HOST), recording one attempt with a row per host, samples
from each, and cost and goodput summed over them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import logbook_cmd, uses_nvidia_smi
from telemetry.conftest import FakeSmi
from telemetry.test_gpus import EIGHT_H100

from logbook.errors import ConfigError
from logbook.query import run_sql
from logbook.store import Store
from logbook.supervisor.nodes import Node, node_of

TRAIN = textwrap.dedent(
    """
    import os, sys, time
    restart = int(os.environ["LOGBOOK_RESTART_COUNT"])
    for step in range(5):
        print(f"step={step} loss={1 / (step + 1):.3f}", flush=True)
        time.sleep(0.3)
    if os.environ.get("FAIL_UNTIL") and restart < int(os.environ["FAIL_UNTIL"]):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    if os.environ.get("SLEEP"):
        time.sleep(float(os.environ["SLEEP"]))
    """
)


# which wrappers share a launch ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({}, None),
        # the batch script of a SLURM job is no step: it runs alone
        ({"SLURM_JOB_ID": "42", "SLURM_NTASKS": "4", "SLURM_PROCID": "0"}, None),
        (
            {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4",
             "SLURM_PROCID": "3"},
            Node("slurm:42.0:0", 3, 4, "slurm"),
        ),
        (  # a requeued job is a new launch
            {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "4", "SLURM_PROCID": "0",
             "SLURM_RESTART_COUNT": "2"},
            Node("slurm:42.0:2", 0, 4, "slurm"),
        ),
        (  # torchrun workers spawned by one srun task share its SLURM_PROCID: RANK is theirs
            {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "2", "SLURM_PROCID": "1",
             "TORCHELASTIC_RUN_ID": "42", "RANK": "13", "WORLD_SIZE": "16",
             "TORCHELASTIC_RESTART_COUNT": "1"},
            Node("slurm:42.0:0:1", 13, 16, "slurm+torchelastic"),
        ),
        # one task: alone
        ({"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, None),
        (
            {"TORCHELASTIC_RUN_ID": "abc", "RANK": "5", "WORLD_SIZE": "16"},
            Node("torchelastic:abc:0", 5, 16, "torchelastic"),
        ),
        # torchrun's default rendezvous id is "none" in every launch: no key
        ({"TORCHELASTIC_RUN_ID": "none", "RANK": "5", "WORLD_SIZE": "16"}, None),
        (
            {"LOGBOOK_LAUNCH_ID": "pretrain-7", "LOGBOOK_NODE_RANK": "1", "LOGBOOK_NODES": "2"},
            Node("pretrain-7", 1, 2, "LOGBOOK_LAUNCH_ID"),
        ),
        (  # the rank from an indexed Kubernetes Job
            {"LOGBOOK_LAUNCH_ID": "job-uid", "JOB_COMPLETION_INDEX": "2"},
            Node("job-uid", 2, None, "LOGBOOK_LAUNCH_ID"),
        ),
    ],
)  # fmt: skip
def test_the_launch_of_a_wrapper(env: dict[str, str], want: Node | None) -> None:
    assert node_of(env) == want


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOGBOOK_LAUNCH_ID": "x"}, "not this host's rank"),
        ({"LOGBOOK_LAUNCH_ID": "x", "LOGBOOK_NODE_RANK": "first"}, "not a whole number"),
        (
            {"LOGBOOK_LAUNCH_ID": "x", "LOGBOOK_NODE_RANK": "2", "LOGBOOK_NODES": "2"},
            "out of range",
        ),
    ],
)
def test_a_malformed_launch_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        node_of(env)


def test_every_host_derives_the_same_attempt_and_each_restart_a_new_one() -> None:
    a, b = Node("slurm:42.0:0", 0, 2, "slurm"), Node("slurm:42.0:0", 1, 2, "slurm")
    assert a.attempt_id("gpt", 0) == b.attempt_id("gpt", 0)
    assert len(a.attempt_id("gpt", 0)) == 32
    ids = {a.attempt_id("gpt", r) for r in range(3)} | {a.attempt_id("other", 0)}
    ids.add(Node("slurm:42.0:1", 0, 2, "slurm").attempt_id("gpt", 0))  # requeued
    assert len(ids) == 5


def test_a_bad_rank_stops_before_the_command_starts(run_logbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    env = {"LOGBOOK_LAUNCH_ID": "x", "LOGBOOK_NODE_RANK": "one"}
    p = run_logbook("run", "--", "touch", str(marker), cwd=tmp_path, env=env, check=1)
    assert b"LOGBOOK_NODE_RANK='one' is not a whole number" in p.stderr
    assert b"Traceback" not in p.stderr and not marker.exists()


# two hosts on this machine ------------------------------------------------------------------------


def _start(
    store_path: Path, tmp_path: Path, host: str, rank: int, *extra: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    args = ["run", "--store", str(store_path), "--run", "mh", "--sample-every", "0.5s", *extra]
    node_env = {
        **env,
        "LOGBOOK_LAUNCH_ID": "job-7",
        "LOGBOOK_NODES": "2",
        "LOGBOOK_NODE_RANK": str(rank),
        "LOGBOOK_HOST": host,
    }
    return subprocess.Popen(
        logbook_cmd(*args, "--", sys.executable, str(script)),
        cwd=tmp_path,
        env=node_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _both(
    store_path: Path, tmp_path: Path, *extra: str, env: dict[str, str], b_env: dict[str, str]
) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    a = _start(store_path, tmp_path, "node-a", 0, *extra, env=env)
    b = _start(store_path, tmp_path, "node-b", 1, *extra, env={**env, **b_env})
    out = []
    for p in (a, b):
        _, err = p.communicate(timeout=120)
        out.append((p.returncode, err))
    return out[0], out[1]


def _sql(store_path: Path, sql: str) -> list[dict[str, Any]]:
    return run_sql(Store(store_path), sql).to_pylist()


@uses_nvidia_smi
def test_two_hosts_record_one_attempt_and_their_totals_sum(
    invoke, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Each host samples 8 H100s (a fake nvidia-smi); node-b's command crashes, node-a's ends
    well. One attempt, led by node-a; a nodes row each; cost counts 16 GPUs over each host's own
    time."""
    fake_smi = FakeSmi(tmp_path / "fake-bin").set(EIGHT_H100)
    (code_a, err_a), (code_b, err_b) = _both(
        store_path,
        tmp_path,
        "--no-capture",
        "--gpu-price",
        "2.10",
        env=fake_smi.env,
        b_env={"FAIL_UNTIL": "1"},
    )
    assert code_a == 0, err_a
    assert code_b == 1, err_b
    (attempt,) = _sql(store_path, "select * from attempts")
    assert (attempt["host"], attempt["status"], attempt["label"]) == ("node-a", "completed", "1.00")
    assert len(_sql(store_path, "select * from attempt_changes")) == 2  # start and end, once
    nodes = _sql(store_path, "select * from nodes order by node")
    assert [(n["node"], n["host"], n["status"]) for n in nodes] == [
        (0, "node-a", "completed"),
        (1, "node-b", "crashed"),
    ]
    assert {n["attempt_id"] for n in nodes} == {attempt["attempt_id"]}
    assert {n["launch"] for n in nodes} == {"job-7"} and {n["nodes"] for n in nodes} == {2}
    assert nodes[1]["crash_class"] == "gpu_hardware" and "illegal memory" in nodes[1]["summary"]
    # samples from both hosts, eight GPUs each
    per_host = _sql(
        store_path,
        "select host, count(distinct gpu_index) as gpus from samples where scope = 'gpu' "
        "group by host order by host",
    )
    assert per_host == [{"host": "node-a", "gpus": 8}, {"host": "node-b", "gpus": 8}]
    # the follower's end is its own event; the attempt's crash events are the leader's (none)
    kinds = _sql(store_path, "select host, kind from events where kind in ('crash', 'node_end')")
    assert kinds == [{"host": "node-b", "kind": "node_end"}]
    # cost: 8 GPUs on each host over that host's own wall time
    out = json.loads(invoke(["cost", "mh", "--store", str(store_path), "--format", "json"]).stdout)
    first, total = out[0], out[-1]
    want_gpu_h = sum(8 * n["duration_s"] for n in nodes) / 3600
    assert first["gpus"] == 16
    assert first["gpu_h"] == pytest.approx(want_gpu_h)
    assert total["gpu_h"] == pytest.approx(want_gpu_h)
    assert first["basis"]["gpus"] == "measured: 2 hosts, each: telemetry: 8 GPUs sampled"
    assert first["basis"]["gpu_h"] == "measured: 2 hosts, each: GPUs × wall time"
    # the price given to the launch (recorded by the leader) holds on every host
    assert first["cost_usd"] == pytest.approx(want_gpu_h * 2.10)
    # GPU 7 of EIGHT_H100 reports no power; each host's energy is measured from its own samples
    energy = first["basis"]["gpu_kwh"]
    assert energy.startswith("measured: 2 hosts, each: power samples × time, 7 GPUs") or (
        energy.startswith("measured: node-a: measured: power samples × time, 7 GPUs")
        and "; node-b: measured: power samples × time, 7 GPUs" in energy
    ), energy
    show = json.loads(invoke(["show", "mh", "--store", str(store_path), "--format", "json"]).stdout)
    assert [(r["label"], r["hosts"]) for r in show] == [("1.00", 2)]
    # each host's raw output in its own files: the leader's, and node-1/ for node-b
    logs = store_path / "logs" / "run=mh" / attempt["attempt_id"]
    assert "illegal memory" in (logs / "node-1" / "stderr.log").read_text()
    assert "illegal memory" not in (logs / "stderr.log").read_text()


def test_restarts_under_two_hosts_and_the_goodput_of_both(
    invoke, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Both hosts crash in their first attempt and relaunch: each restart is one attempt of two
    nodes. With the inventory captured (no GPU here), a launcher variable gives each host 4."""
    env = {**os.environ, "FAIL_UNTIL": "1", "SLURM_GPUS_ON_NODE": "4"}
    extra = ("--restarts", "1", "--backoff", "0s", "--sample-every", "0")
    (code_a, err_a), (code_b, err_b) = _both(store_path, tmp_path, *extra, env=env, b_env={})
    assert (code_a, code_b) == (0, 0), (err_a, err_b)
    attempts = _sql(store_path, "select label, status, parent_label from attempts order by label")
    assert attempts == [
        {"label": "1.00", "status": "crashed", "parent_label": None},
        {"label": "1.01", "status": "completed", "parent_label": "1.00"},
    ]
    nodes = _sql(
        store_path,
        "select a.label, n.node, n.host, n.status, n.restart_count from nodes n "
        "join attempts a using (attempt_id) order by a.label, n.node",
    )
    assert [(n["label"], n["host"], n["status"], n["restart_count"]) for n in nodes] == [
        ("1.00", "node-a", "crashed", 0),
        ("1.00", "node-b", "crashed", 0),
        ("1.01", "node-a", "completed", 1),
        ("1.01", "node-b", "completed", 1),
    ]
    restarts = _sql(store_path, "select host from events where kind = 'restart'")
    assert restarts == [{"host": "node-a"}]  # the leader's decision, recorded once
    out = json.loads(invoke(["cost", "mh", "--store", str(store_path), "--format", "json"]).stdout)
    # no GPU answered the inventory here, so each host counts SLURM_GPUS_ON_NODE: 4 + 4
    assert [(r["gpus"], r["basis"]["gpus"]) for r in out[:-1]] == [
        (8, "declared: 2 hosts, each: launcher: SLURM_GPUS_ON_NODE"),
    ] * 2
    walls = {
        r["label"]: r["wall_s"]
        for r in _sql(store_path, "select label, duration_s as wall_s from attempts")
    }
    goodput = json.loads(
        invoke(["goodput", "mh", "--each", "--store", str(store_path), "--format", "json"]).stdout
    )
    assert [(g["label"], g["gpus"]) for g in goodput] == [("1.00", 8), ("1.01", 8)]
    total = json.loads(
        invoke(["goodput", "mh", "--store", str(store_path), "--format", "json"]).stdout
    )[-1]
    assert total["category"] == "total"
    downtime = sum(g["downtime_before_s"] for g in goodput)
    want = 8 * (walls["1.00"] + walls["1.01"] + downtime) / 3600
    assert total["gpu_hours"] == pytest.approx(want, abs=2e-3)  # rounded to 3 places


def test_a_reused_launch_key_records_alone(run_logbook, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """LOGBOOK_LAUNCH_ID given again after its launch ended: the new wrapper does not write into
    the old attempt; it records its own, and says why."""
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    env = {"LOGBOOK_LAUNCH_ID": "same", "LOGBOOK_NODE_RANK": "0"}
    args = ("run", "--store", str(store_path), "--run", "r", "--no-capture", "--")
    run_logbook(*args, sys.executable, str(script), env=env, check=0)
    second = run_logbook(*args, sys.executable, str(script), env=env, check=0)
    assert b"the launch key same (LOGBOOK_LAUNCH_ID) was used by an attempt of run r" in (
        second.stderr
    )
    assert b"that this host's rank already took part in" in second.stderr
    rows = _sql(store_path, "select label, attempt_id from attempts order by label")
    assert [r["label"] for r in rows] == ["1.00", "1.01"]
    assert len({r["attempt_id"] for r in rows}) == 2


def test_a_host_that_starts_after_the_leader_ended_joins_its_launch(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """On a loaded cluster (or 128 wrappers on two cores) a host's wrapper can start after the
    leader's command has ended: it is still that launch's host, not a reuse of its key."""
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    args = ("run", "--store", str(store_path), "--run", "r", "--no-capture", "--")
    for rank in (0, 1):  # one after the other: the leader has ended when node 1 starts
        env = {"LOGBOOK_LAUNCH_ID": "late", "LOGBOOK_NODES": "2", "LOGBOOK_NODE_RANK": str(rank)}
        done = run_logbook(*args, sys.executable, str(script), env=env, check=0)
        assert b"was used by an attempt" not in done.stderr
    [attempt] = _sql(store_path, "select attempt_id, label from attempts")
    assert attempt["label"] == "1.00"
    nodes = _sql(store_path, "select node, attempt_id from nodes order by node")
    assert nodes == [{"node": n, "attempt_id": attempt["attempt_id"]} for n in (0, 1)]


def test_a_host_whose_wrapper_dies_is_lost(run_logbook, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of node-b's wrapper: the next reader marks its node row lost, with an event."""
    env = {**os.environ, "SLEEP": "60"}
    b = _start(store_path, tmp_path, "node-b", 1, "--no-capture", env=env)
    deadline = time.monotonic() + 30

    def journaled() -> bool:  # the node's start row, not just the journal file (a loaded machine)
        return any('"table": "nodes"' in p.read_text() for p in store_path.glob("**/*.jsonl"))

    while time.monotonic() < deadline and not journaled():
        time.sleep(0.1)
    assert b.poll() is None, "the wrapper should still be running"
    child = psutil.Process(b.pid).children(recursive=True)
    os.kill(b.pid, signal.SIGKILL)
    for c in child:
        c.kill()
    b.communicate(timeout=10)
    rows = _sql(store_path, "select node, host, status from nodes")
    assert rows == [{"node": 1, "host": "node-b", "status": "lost"}]
    (lost,) = _sql(store_path, "select host, message from events where kind = 'lost'")
    assert lost["host"] == "node-b" and lost["message"].startswith("node 1 of attempt")


@uses_nvidia_smi
def test_wrapped_workers_share_their_host(invoke, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A launch that wraps each worker: two wrappers on one host (LOCAL_RANK 0 and 1). Only the
    first reads the host and its GPUs; each reads its own process tree; cost counts a GPU per
    wrapped worker."""
    fake_smi = FakeSmi(tmp_path / "fake-bin").set(EIGHT_H100)
    procs = [
        _start(
            store_path,
            tmp_path,
            "node-a",
            rank,
            env={**fake_smi.env, "LOCAL_RANK": str(rank), "TORCHELASTIC_RUN_ID": "x"},
        )
        for rank in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    scopes = _sql(
        store_path,
        "select scope, count(*) as n, count(distinct gpu_index) as gpus from samples "
        "group by scope order by scope",
    )
    by_scope = {r["scope"]: r for r in scopes}
    readings = by_scope["host"]["n"]  # one wrapper's
    assert readings >= 3
    assert by_scope["gpu"]["n"] == 8 * readings and by_scope["gpu"]["gpus"] == 8
    assert by_scope["process"]["n"] > readings  # both wrappers'
    out = json.loads(invoke(["cost", "mh", "--store", str(store_path), "--format", "json"]).stdout)
    assert (out[0]["gpus"], out[0]["basis"]["gpus"]) == (
        2,
        "estimated: launcher: 2 wrapped workers (LOCAL_RANK), a GPU each",
    )


def test_only_the_first_wrapper_of_a_host_reads_the_machine() -> None:
    from logbook.supervisor.nodes import first_on_host

    assert first_on_host({}) and first_on_host({"LOCAL_RANK": "0"})
    assert not first_on_host({"LOCAL_RANK": "3"})
    assert not first_on_host({"SLURM_LOCALID": "1"})
