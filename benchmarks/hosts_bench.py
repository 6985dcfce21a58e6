"""Many hosts, one store (#18): N wrappers posing as the hosts of one srun step write one store.

Each wrapper is a real `logbook run` with the variables srun gives its tasks (SLURM_JOB_ID,
SLURM_STEP_ID, SLURM_NTASKS, SLURM_PROCID, SLURM_NODEID) and LOGBOOK_HOST naming its host; each
runs a Python child that prints --points `step=N loss=X` lines. All start at once; the figures:

- wall: first spawn to last exit, and the write rate (the leader's points, and every host's lines
  over the wall; the other hosts of a launch leave metrics to the leader, see supervisor/session);
- the record checked: one attempt, N `nodes` rows each with its own host, the leader's points all
  there once, one label claimed;
- parts in the store before and after `logbook compact` (in the bucket itself with --s3), the
  record checked again after it, and `logbook show` latency after it.

    python benchmarks/hosts_bench.py --hosts 1,8,128 --points 10000
    python benchmarks/hosts_bench.py --hosts 1,8,128 --s3    # into moto's S3 server on localhost

With --s3 each count gets a fresh prefix of a local S3 server (moto, as the tests start it), each
host its own spool and cache (as separate machines have), and the figures add the requests the
server answered for the writes and for one `logbook show` from a cold cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHILD = """
import sys
n = int(sys.argv[1])
for s in range(1, n + 1):
    print(f"step={s} loss={1.0 / s:.6f}")
"""


ENV: dict[str, str] = dict(os.environ)  # the S3 server's variables with --s3
LEFT: dict[str, int] = {}  # the last S3 part count, by table


def logbook(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logbook", *args],
        capture_output=True,
        text=True,
        env=env or ENV,
        check=False,
    )


def launch(hosts: int, points: int, store: str, work: Path, job: str) -> dict[str, float]:
    script = work / "train.py"
    script.write_text(CHILD)
    procs = []
    t0 = time.perf_counter()
    for rank in range(hosts):
        env = {
            **ENV,
            # each host its own spool and cache, as on separate machines (none for a folder store)
            "LOGBOOK_SPOOL": str(work / f"spool-{rank}"),
            "LOGBOOK_CACHE": str(work / f"cache-{rank}"),
            "SLURM_JOB_ID": job,
            "SLURM_STEP_ID": "0",
            "SLURM_NTASKS": str(hosts),
            "SLURM_PROCID": str(rank),
            "SLURM_NODEID": str(rank),
            "LOGBOOK_HOST": f"host-{rank:03d}",
            "LOGBOOK_QUIET": "1",
        }
        if hosts == 1:  # a lone task is no launch over several hosts
            for name in ("SLURM_STEP_ID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_NODEID"):
                env.pop(name)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "logbook", "run", "--store", store, "--run", "hosts",
                 "--no-capture", "--", sys.executable, str(script), str(points)],
                cwd=work,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )  # fmt: skip
    errors, waiting = [], []
    for rank, p in enumerate(procs):
        _, err = p.communicate(timeout=1800)
        if p.returncode != 0:
            errors.append(err[-500:])
        if "wait in the spool" in err:
            waiting.append(rank)
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} wrappers failed; the first: {errors[0]}")
    figures: dict[str, float] = {"wall_s": wall}
    if store.startswith("s3://"):
        # A wrapper waits at most 2 s for its last uploads; the rest stay in its spool, as on a
        # cluster whose store is slow. `logbook doctor` on each such host pushes them.
        figures["hosts_left_uploads_in_spool"] = len(waiting)
        t = time.perf_counter()
        for rank in waiting:
            env = {**ENV, "LOGBOOK_SPOOL": str(work / f"spool-{rank}")}
            done = logbook("doctor", "--store", store, env=env)
            if "Traceback" in done.stderr:
                raise SystemExit(done.stderr[-800:])
        figures["doctor_push_s"] = round(time.perf_counter() - t, 2)
    return figures


def query(store: str, sql: str) -> list[dict]:  # type: ignore[type-arg]
    r = logbook("query", sql, "--store", store, "--format", "json")
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def part_count(store: str, server: Any = None) -> int | None:
    if server is not None:  # listed with another client than logbook's (boto3)
        import boto3

        bucket, _, prefix = store.removeprefix("s3://").partition("/")
        s3 = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        parts = [k for k in keys if k.endswith(".parquet") and "/_quarantine/" not in k]
        LEFT.clear()  # which folders hold more than one, and what (journals still listed)
        for k in parts:
            folder = k.split("/")[-3] if k.count("/") >= 2 else k
            LEFT[folder] = LEFT.get(folder, 0) + 1
        LEFT["journals listed"] = sum(1 for k in keys if "/_journal/" in k and k.endswith(".jsonl"))
        return len(parts)
    root = Path(store)
    return sum(1 for p in root.rglob("*.parquet") if "_quarantine" not in p.parts)


def one(hosts: int, points: int, store: str, work: Path, server: Any = None) -> dict[str, object]:
    figures: dict[str, object] = {"hosts": hosts, "points": points}
    if server is not None:
        server.record()
    figures.update(launch(hosts, points, store, work, job=str(4000 + hosts)))
    if server is not None:
        figures["write_requests"] = server.request_count()
        ENV["LOGBOOK_CACHE"] = str(work / "reader-cache")
    [row] = query(
        store,
        "select (select count(*) from attempts) attempts, (select count(*) from nodes) nodes, "
        "(select count(distinct host) from nodes) node_hosts, "
        "(select count(*) from metrics) points, (select count(distinct step) from metrics) steps",
    )
    want_nodes = hosts if hosts > 1 else 0
    ok = (row["attempts"], row["nodes"], row["node_hosts"], row["points"], row["steps"]) == (
        1,
        want_nodes,
        want_nodes,
        points,
        points,
    )
    figures["record"] = "all on record, once" if ok else f"WRONG: {row}"
    figures["points_per_s"] = round(points / float(figures["wall_s"]))  # type: ignore[arg-type]
    figures["lines_per_s_all_hosts"] = round(hosts * points / float(figures["wall_s"]))  # type: ignore[arg-type]
    figures["parts_before"] = part_count(store, server)
    if server is not None:  # `show` before compaction, from a cold cache, for comparison
        ENV["LOGBOOK_CACHE"] = str(work / "cold-cache-before")
        t = time.perf_counter()
        logbook("show", "hosts", "--store", store, "--format", "json")
        figures["show_s_before_compact_cold_cache"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    compacted = logbook("compact", "--store", store)  # a folder, or the bucket in place (#18)
    figures["compact_s"] = round(time.perf_counter() - t, 2)
    figures["compact_says"] = compacted.stdout.strip()
    if compacted.returncode != 0 or "Warning" in compacted.stderr:
        figures["compact"] = compacted.stderr.strip()[-300:]
    figures["parts_after"] = part_count(store, server)
    if server is not None:
        figures["parts_after_by_table"] = dict(LEFT)
    [again] = query(store, "select (select count(*) from metrics) points, "
                    "(select count(*) from nodes) nodes, (select count(*) from attempts) attempts")  # fmt: skip
    if (again["points"], again["nodes"], again["attempts"]) != (row["points"], row["nodes"], 1):
        figures["record"] = f"WRONG after compact: {again} (before: {row})"
    if server is not None:
        ENV["LOGBOOK_CACHE"] = str(work / "cold-cache")
        server.record()
    t = time.perf_counter()
    shown = logbook("show", "hosts", "--store", store, "--format", "json")
    figures["show_s"] = round(time.perf_counter() - t, 2)
    if server is not None:
        figures["show_requests_cold_cache"] = server.request_count()
        t = time.perf_counter()
        logbook("show", "hosts", "--store", store, "--format", "json")
        figures["show_s_warm_cache"] = round(time.perf_counter() - t, 2)
    if shown.returncode != 0 or json.loads(shown.stdout)[0]["hosts"] != max(hosts, 1):
        figures["show"] = f"WRONG: {shown.stdout[-300:]} {shown.stderr[-300:]}"
    figures["wall_s"] = round(float(figures["wall_s"]), 2)  # type: ignore[arg-type]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", default="1,8,128", help="comma-separated host counts")
    parser.add_argument("--points", type=int, default=10_000, help="metric lines per host")
    parser.add_argument("--s3", action="store_true", help="write into a local S3 server (moto)")
    args = parser.parse_args()
    server = None
    if args.s3:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from s3server import S3Server

        server = S3Server().start()
        server.make_bucket("bench")
        ENV.update(server.env())
    try:
        for hosts in (int(h) for h in args.hosts.split(",")):
            work = Path(tempfile.mkdtemp(prefix="logbook-hosts-"))
            store = f"s3://bench/hosts-{hosts}" if server else str(work / "store")
            try:
                print(json.dumps(one(hosts, args.points, store, work, server)), flush=True)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
