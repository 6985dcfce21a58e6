"""`logbook incidents RUN --by cause` on recorded runs (#19): real `logbook run` children print
an Xid 79 kernel line, a CUDA out-of-memory error and an NCCL watchdog timeout and die; one
relaunch is the restart policy's, the others a person's."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from logbook.query import run_sql
from logbook.store import Store

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    stage = os.environ["STAGE"]
    if stage == "gpu" and os.environ.get("LOGBOOK_RESTART_COUNT") == "1":
        stage = "oom"  # the policy's relaunch runs out of GPU memory
    print("step=1 loss=2.0", flush=True)
    if stage == "gpu":
        print("NVRM: Xid (PCI:0000:05:00): 79, pid='<unknown>', name=<unknown>, "
              "GPU has fallen off the bus.", file=sys.stderr, flush=True)
        sys.exit(1)
    if stage == "oom":
        print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. "
              "GPU 0 has a total capacity of 79.10 GiB", file=sys.stderr, flush=True)
        sys.exit(1)
    if stage == "nccl":
        print("[rank0]:[E321 02:07:08.408271257 ProcessGroupNCCL.cpp:607] [Rank 0] Watchdog "
              "caught collective operation timeout: WorkNCCL(SeqNum=1580, OpType=ALLREDUCE, "
              "NumelIn=466119168, NumelOut=466119168, Timeout(ms)=600000) ran for 600060 "
              "milliseconds before timing out.", file=sys.stderr, flush=True)
        os.abort()
    if stage == "stop":
        os.kill(os.getpid(), signal.SIGTERM)  # a person's kill, not through logbook
    print("done")
    """
)


def test_components_planned_and_handled_of_recorded_attempts(
    store_path: Path, tmp_path: Path, run_logbook, invoke
) -> None:  # type: ignore[no-untyped-def]
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    run = ["run", "--store", str(store_path), "--run", "cause", "--sample-every", "0"]
    # 1.00 (Xid 79) is relaunched by the policy as 1.01 (CUDA OOM), where the cap stops it
    run_logbook(*run, "--restarts", "1", "--backoff", "0.1", "--", "python", str(child),
                env={"STAGE": "gpu"}, check=1)  # fmt: skip
    # a person relaunches three times: an NCCL watchdog timeout, a stop by hand, a clean end
    run_logbook(*run, "--", "python", str(child), env={"STAGE": "nccl"}, check=134)
    run_logbook(*run, "--", "python", str(child), env={"STAGE": "stop"}, check=143)
    run_logbook(*run, "--", "python", str(child), env={"STAGE": "ok"}, check=0)

    rows = run_sql(
        Store(store_path),
        "select label, status, crash_class, component, planned, handled, restart_count "
        "from attempts where run = 'cause' order by start_time",
    ).to_pylist()
    assert [
        (r["label"], r["status"], r["component"], r["planned"], r["handled"]) for r in rows
    ] == [
        ("1.00", "crashed", "gpu", False, "automatic"),  # stored: the policy decided at its end
        ("1.01", "crashed", "user", False, None),
        ("1.02", "crashed", "nccl_watchdog", False, None),
        ("1.03", "interrupted", "user", True, None),
        ("1.04", "completed", None, None, None),
    ]
    incidents = run_sql(
        Store(store_path),
        "select label, component, planned, handled from incidents where run = 'cause' "
        "order by time",
    ).to_pylist()
    assert [(r["label"], r["component"], r["planned"], r["handled"]) for r in incidents] == [
        ("1.00", "gpu", False, "automatic"),
        ("1.01", "user", False, "manual"),  # 1.02 came from a new `logbook run`
        ("1.02", "nccl_watchdog", False, "manual"),
        ("1.03", "user", True, "manual"),
    ]

    out = invoke(["incidents", "cause", "--by", "cause", "--store", str(store_path),
                  "--format", "json"]).stdout  # fmt: skip
    by = {r["component"]: r for r in json.loads(out)}
    assert set(by) == {"gpu", "user", "nccl_watchdog", "total"}
    pick = ("count", "planned", "unexpected", "share_pct", "automatic", "manual", "handled_unknown")
    assert [by["gpu"][k] for k in pick] == [1, 0, 1, 33.3, 1, 0, 0]
    assert [by["user"][k] for k in pick] == [2, 1, 1, 33.3, 0, 2, 0]
    assert [by["nccl_watchdog"][k] for k in pick] == [1, 0, 1, 33.3, 0, 1, 0]
    assert [by["total"][k] for k in pick] == [4, 1, 3, 100.0, 1, 3, 0]
    assert by["total"]["cause"] == "all interruptions"
    # hours lost: worked out for these (they have times); a known figure, not null
    assert all(by[c]["hours_lost"] is not None for c in by)
    assert by["gpu"]["effective_training_pct"] is None  # the total line alone carries it
    split = json.loads(
        invoke(["goodput", "cause", "--store", str(store_path), "--format", "json"]).stdout
    )
    productive = next(r for r in split if r["category"] == "productive")["pct"]
    unknown = next(r for r in split if r["category"] == "unknown")["seconds"]
    assert by["total"]["effective_training_pct"] == (productive if unknown == 0 else None)


def test_attempts_recorded_before_version_4_get_their_rules_component(
    store_path: Path, tmp_path: Path, run_logbook, invoke
) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    child = tmp_path / "ecc.py"
    child.write_text(
        "import sys\nprint('RuntimeError: CUDA error: uncorrectable ECC error encountered', "
        "file=sys.stderr)\nsys.exit(1)\n"
    )
    run_logbook("run", "--store", str(store_path), "--run", "old", "--sample-every", "0",
                "--", "python", str(child), check=1)  # fmt: skip
    invoke(["compact", "--store", str(store_path)])  # the journal folded into parts
    parts = list((store_path / "attempts").rglob("*.parquet"))
    assert parts
    for part in parts:  # as attempts v3 wrote them: no component, planned, handled
        old = pq.read_table(part).drop_columns(["component", "planned", "handled"])
        pq.write_table(old.replace_schema_metadata({b"logbook.schema_version": b"3"}), part)
    rows = run_sql(Store(store_path), "select rule, component, planned from attempts").to_pylist()
    assert rows == [{"rule": "cuda-ecc", "component": None, "planned": None}]
    out = invoke(["incidents", "old", "--by", "cause", "--store", str(store_path),
                  "--format", "json"]).stdout  # fmt: skip
    got = json.loads(out)
    assert [(r["component"], r["unexpected"]) for r in got] == [("hbm", 1), ("total", 1)]
