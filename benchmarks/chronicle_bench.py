"""`logbook chronicle` (#6) on a synthetic run the size of OPT-175B's: build time and peak memory.

    python benchmarks/chronicle_bench.py --keep /tmp/chronicle-bench-store   # full size, then reused
    python benchmarks/chronicle_bench.py --quick                              # 2 days of samples
    python benchmarks/chronicle_bench.py --keep /tmp/chronicle-bench-store --check --repeats 3

1. A store as `logbook run` leaves it (#6), run `opt-175b`, written by a process of its own
   (Linux keeps a process's peak RSS across fork and exec): `--attempts` (200) attempts in one
   lineage over `--days` (100) days on `--hosts` (128) hosts of 8 GPUs, `--steps` (150,000)
   reached with a checkpoint every 1,000. A restart bumps the minor (1.00, 1.01, ...), a hand
   relaunch with CHANGES the major, after a numerical crash loop or a hand stop. The ends are in
   the mix of #6 (WEIGHTS), each from one of a few raw logs (LOGS, under logs/) read by
   `logbook.forensics.classify_end`; `logbook.supervisor.policy.decide` decides what follows.
   Attempts and nodes (every host) rows; snapshots: the leader's whole capture (logbook's capture
   functions on made-up inputs) and every host's host and gpu rows; events as the supervisor,
   hooks, sampler, detectors and `logbook note` write them (node_end from the host where a
   failure began, or every host's with `--all-node-ends`); `--metrics` (10) every step of every
   attempt (~2.4 M rows; `logbook.record.detectors` finds the anomalies planted in them); samples every
   10 s from `--gpus-per-host` (1) GPUs of each host while an attempt runs (~95 M rows; ~760 M
   with 8). Metrics and samples are written with pyarrow in parts of about a million rows, the
   rest through `Store.write`; the same `--seed` gives the same store.
2. `python -m logbook chronicle RUN --out DIR --store STORE`, then with `--anonymize`, each in a
   fresh process after the store's files were read once, `--repeats` (1) times: wall time, peak
   RSS (os.wait4's, and the process tree's summed, sampled every 50 ms), CPU time and what it wrote. A
   failure is reported with its exit status and stderr, and the script exits 1.

`--quick` is `--days 2` (1.45 M samples, the rest as large, its times compressed to fit).
`--check` runs show, incidents, cost, goodput, events and metrics on the store first.
Aim (#6): the full-size chronicle in under 30 s, under 2 GB of memory.
"""

from __future__ import annotations

import argparse
import bisect
import copy
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from logbook import __version__, schema
from logbook.capture._row import make_row
from logbook.capture.command import capture_command
from logbook.capture.environment import capture_env
from logbook.capture.launcher import capture_launcher
from logbook.exitcodes import signal_name
from logbook.forensics.classify import classify_end
from logbook.record import datamix, hparams
from logbook.record.detectors import Detectors
from logbook.record.events import event_row
from logbook.store import Store
from logbook.store.parts import write_part
from logbook.supervisor.policy import History, Outcome, RestartPolicy, decide
from logbook.telemetry.kernel import parse_xid

RUN, AIM_S, AIM_BYTES = "opt-175b", 30.0, 2e9
TABLES = ("runs", "attempts", "nodes", "snapshots", "events", "metrics", "samples")
T0, SECOND = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc), timedelta(seconds=1)
TICK_S, GPUS, CKPT = 10, 8, 1000  # GPUS: per host in the snapshots, whatever is sampled
HANG_S, GRACE_S, GPU_BYTES = 1800.0, 30.0, 80 << 30
TOKENS_PER_STEP, PARAMS = 2_097_152, 175e9  # OPT-175B: 2M-token batches
ROOT, HOOK = "/shared/opt", "/shared/opt/hooks/notify.sh"
COMMAND = ["python", "metaseq/cli/train.py", "--config", f"{ROOT}/configs/opt-175b.yaml"]
METRICS = ("loss", "ppl", "learning_rate", "grad_norm", "param_norm", "loss_scale",
           "tokens_per_s", "step_time_s", "tflops_per_gpu", "data_time_s")  # fmt: skip
# How attempts end (the last one completes), in percent, as in #6.
WEIGHTS = {"communication": 35, "gpu_hardware": 25, "lost": 10, "hung": 10, "numerical": 4,
           "gpu_oom": 3, "python_exception": 3, "data_io": 3, "preempted": 3, "fatal_signal": 2,
           "interrupted": 2}  # fmt: skip
NCCL = (
    "[rank{rank}]:[E ProcessGroupNCCL.cpp:1182] [Rank {rank}] Watchdog caught collective operation "
    "timeout: WorkNCCL(SeqNum={seq}, OpType=ALLREDUCE, NumelIn=4096, NumelOut=4096, "
    "Timeout(ms)=600000) ran for {ms} milliseconds before timing out."
)
TRACE = f'Traceback (most recent call last):\n  File "{ROOT}/metaseq/trainer.py", line 1043\n'
# End, exit status, flags, stderr. Flags: startup (dies before its first step), nccl (after a
# 10-minute collective timeout), xid (a GPU fault the sampler saw first), nan (the loss
# diverged), grace (killed after the grace period), SIGTERM/SIGINT (passed on by logbook).
LOGS = [
    ("communication", -6, "nccl", NCCL),
    ("communication", 1, "startup", "RuntimeError: Timed out initializing process group in "
     "store based barrier on rank: {rank}, for key: store_based_barrier_key:1 "
     "(world_size={world}, worker_count={workers}, timeout=0:30:00)"),
    ("gpu_hardware", 1, "", "RuntimeError: CUDA error: uncorrectable ECC error encountered"),
    ("gpu_hardware", -6, "nccl xid", NCCL),
    ("gpu_hardware", 1, "startup", "RuntimeError: CUDA error: no CUDA-capable device is detected"),
    ("gpu_oom", 1, "", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {alloc} "
     "GiB. GPU {gpu} has a total capacity of 79.15 GiB of which {free} MiB is free."),
    ("numerical", 1, "nan", "FloatingPointError: Minimum loss scale reached (0.0001). Your loss "
     "is probably exploding. Try lowering the learning rate, using gradient clipping or "
     "increasing the batch size."),
    ("python_exception", 1, "", TRACE + "    scale = state['loss_scale']\nKeyError: 'loss_scale'"),
    ("data_io", 1, "", f"OSError: [Errno 5] Input/output error: '{ROOT}/data/{{n:05d}}.jsonl'"),
    ("fatal_signal", -11, "", "Fatal Python error: Segmentation fault\n\n"
     "Thread 0x00007f3a{pid:08x} (most recent call first):"),
    ("preempted", -15, "SIGTERM", "slurmstepd: error: *** STEP {job}.{jobstep} ON {host} "
     "CANCELLED AT {when} DUE TO PREEMPTION ***"),
    ("interrupted", -2, "SIGINT", TRACE + "    loss.backward()\nKeyboardInterrupt"),
    ("hung", -9, "grace", ""),
    ("lost", -9, "", ""),  # its wrapper died with it: nothing classified
    ("completed", 0, "", ""),
]  # fmt: skip
WHEN = "{when}"  # the Slurm line's time, known once the times are planned
# Seconds from the last step to the end (from the start-up for a startup failure); hours down
# after it when it is not restarted at once.
TAIL_S = {"startup": (60, 1800), "hung": (HANG_S + GRACE_S, HANG_S + GRACE_S + 8),
          "nccl": (601, 630), "completed": (60, 300), "lost": (0, 120)}  # fmt: skip
DOWN_H = {"major": (4, 30), "lost": (1, 9), "preempted": (0.25, 4)}
NOTES = ("Restarted from checkpoint_{ckpt} after the NCCL timeout; {host} drained and replaced",
         "Loss spike around step {step}; watching it before touching the LR",
         "{host}: GPU {gpu} throwing ECC errors, ticket filed with the cluster team",
         "Validation perplexity at step {step}: {ppl:.2f}",
         "Cluster maintenance tonight 02:00-06:00 UTC; the job will be requeued after")  # fmt: skip
PACKAGES = """accelerate 0.26.1 datasets 2.16.1 einops 0.7.0 fairscale 0.4.13 hydra-core 1.3.2
logbook 0.1.0 metaseq 0.0.1 ninja 1.11.1.1 numpy 1.26.3 nvidia-nccl-cu12 2.18.1 omegaconf 2.3.0
pandas 2.1.4 pip 23.3.2 protobuf 4.23.4 psutil 5.9.7 pyarrow 14.0.2 pyyaml 6.0.1 regex 2023.12.25
safetensors 0.4.1 sentencepiece 0.1.99 tokenizers 0.15.0 torch 2.1.2 triton 2.1.0 wandb 0.16.2"""
ENV = """CUDA_DEVICE_MAX_CONNECTIONS=1 CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 HF_TOKEN=hf_{token}
HOME=/home/{user} HOSTNAME={host} LANG=C.UTF-8 LOGBOOK_ATTEMPT={label} LOGBOOK_RUN=opt-175b
LOGNAME={user} MASTER_ADDR={host} MASTER_PORT=29500 NCCL_DEBUG=WARN OMP_NUM_THREADS=12
PATH=/shared/opt/venv/bin:/usr/bin:/bin PYTHONUNBUFFERED=1 SLURM_GPUS_ON_NODE=8 SLURM_JOB_ID={job}
SLURM_JOB_NUM_NODES={nhosts} SLURM_NNODES={nhosts} SLURM_NODEID=0 SLURM_NTASKS={nhosts}
SLURM_PROCID=0 SLURM_STEP_ID={restart_count} USER={user} WANDB_API_KEY={wandb}"""
BUS = ("07", "0b", "48", "4c", "88", "8b", "c8", "cb")  # each GPU's PCI bus
# Every host's rows (kind, name, value), as capture/hardware.py makes them; then the leader's.
HOST_ROWS = [("host", "os", "Linux-5.15.0-1051-azure-x86_64-with-glibc2.35"),
    ("host", "cpu_model", "AMD EPYC 7V12 64-Core Processor"), ("host", "cpu_cores_logical", "96"),
    ("host", "memory_bytes", str(1900 << 30)), ("gpu", "count", str(GPUS)),
    ("gpu", "driver", "535.129.03"), *(("gpu", f"{g}.{k}", v) for g in range(GPUS) for k, v in (
        ("name", "NVIDIA A100-SXM4-80GB"), ("memory_mib", "81920"),
        ("pci_bus_id", f"00000000:{BUS[g]}:00.0")))]  # fmt: skip
LEADER_ROWS = [("python", "version", "3.10.13"), ("python", "executable", f"{ROOT}/venv/bin/python"),
    ("git", "branch", "opt-175b"), ("git", "remote", "git@github.com:example-org/metaseq.git"),
    ("git", "dirty", "false"), ("config_file", "path", COMMAND[-1])]  # fmt: skip
# OPT-175B's corpora (RoBERTa's, a subset of the Pile, PushShift.io Reddit): weight, 1e9 tokens.
MIX = {"bookcorpus": (0.02, 1.1), "cc_stories": (0.05, 5.7), "cc_news": (0.08, 8.8),
       "wikipedia_en": (0.02, 3.9), "pile_commoncrawl": (0.26, 49.6), "pile_uspto": (0.05, 4.2),
       "pile_opensubtitles": (0.02, 2.8), "pile_openwebtext2": (0.2, 17.0),
       "pushshift_reddit": (0.30, 66.8)}  # fmt: skip
CONFIG = {"model.arch": "transformer_lm_megatron", "model.params": "175B", "model.n_layers": 96,
          "model.d_model": 12288, "train.batch_size": 1024, "optimization.lr": 1.2e-4,
          "train.tokens_per_step": TOKENS_PER_STEP, "optimization.clip_norm": 1.0,
          "optimization.weight_decay": 0.1, "precision.fp16": True, "data.num_workers": 4}  # fmt: skip
# What each hand relaunch changes, in turn: config keys, env variables, package versions, data
# mix sources (None removes one). After a crash loop the learning rate is cut and the seed
# changed too; half the time the code changes.
CHANGES = [
    [("config", "optimization.clip_norm", 0.3)],
    [("mix", "pushshift_reddit", {"weight": 0.24}), ("mix", "pile_commoncrawl", {"weight": 0.32})],
    [("env", "NCCL_IB_TIMEOUT", "22"), ("package", "nvidia-nccl-cu12", "2.19.3")],
    [("config", "precision.softmax_fp32", True), ("package", "torch", "2.2.0")],
    [("mix", "pile_opensubtitles", None), ("mix", "cc_stories", {"weight": 0.07})],
]  # fmt: skip
# Samples by phase (start-up, stepping, after the last step, after it with the GPUs spinning in
# a collective that hangs): mean and spread.
PHASES = {"gpu_util_pct": ([3, 97, 4, 100], [3, 2, 3, 0]),
          "power_w": ([75, 330, 70, 110], [8, 35, 6, 6]),
          "temperature_c": ([36, 62, 38, 48], [3, 3, 3, 3])}  # fmt: skip
START = ("attempt_id", "label", "parent_id", "parent_label", "start_time", "host", "user", "pid",
         "wrapper_pid", "command", "cwd", "logbook_version", "restart_count")  # fmt: skip


# ------------------------------------------------------------------------------------------------
# The plan: every attempt's outcome, steps, hosts and times, decided before anything is written.
# An attempt is a dict of its attempts row's columns and the plan's own fields.


def plan(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Attempts of the run, oldest first."""
    import numpy as np

    rnd, rng, n = random.Random(args.seed), np.random.default_rng(args.seed), args.attempts
    slots = max(0, (n - 5) // 4)  # majors after the first, 4+ attempts apart
    bumps = [4 * k + 4 for k in sorted(rnd.sample(range(slots), min(slots, round(n / 17) - 1)))]
    ends = rnd.choices(list(WEIGHTS), list(WEIGHTS.values()), k=n - 1) + ["completed"]
    loops: dict[int, int] = {}  # attempt -> its place in a crash loop (the third is given up)
    for b in bumps:
        if rnd.random() < 0.5:
            for k in range(3):
                ends[b - 3 + k], loops[b - 3 + k] = "numerical", k
        else:
            ends[b - 1] = "interrupted"
    pool = [f"opt-{i:03d}" for i in range(args.hosts + max(1, args.hosts // 8))]
    alloc, spares, attempts, major, minor = pool[: args.hosts], pool[args.hosts :], [], 1, 0
    for i, end in enumerate(ends):
        early = [t for t in LOGS if t[0] == end and "startup" in t[2]]
        late = [t for t in LOGS if t[0] == end and t not in early]
        t = early[0] if early and rnd.random() < 0.12 else rnd.choice(late)
        major, minor = (major + 1, 0) if i in bumps else (major, minor + (i > 0))
        p, hosts = attempts[-1] if attempts else None, sorted(alloc)
        attempts.append({
            "n": i, "outcome": end, "template": t, "stepping": t in late, "loop": loops.get(i),
            "major": major, "major_start": i == 0 or i in bumps, "parent": p, "hosts": hosts,
            "origin": rnd.choice(hosts), "gpu": rnd.randrange(GPUS), "host": hosts[0],
            "attempt_id": f"{rnd.getrandbits(128):032x}", "label": f"{major}.{minor:02d}",
            "parent_id": p and p["attempt_id"], "parent_label": p and p["label"],
            "pid": 10_000 + i * 37, "wrapper_pid": 9_997 + i * 37, "cwd": f"{ROOT}/metaseq",
            "logbook_version": __version__,
            "forwarded_signal": next((w for w in t[2].split() if w[:3] == "SIG"), None),
        })  # fmt: skip
        if end == "gpu_hardware" and len(alloc) > 1:  # drained; the next spare comes in
            alloc.remove(attempts[-1]["origin"])
            spares.append(attempts[-1]["origin"])
            alloc.append(spares.pop(0))
    _steps(attempts, args.steps, rnd, rng)
    _settings(attempts, args, rnd)
    _verdicts(attempts, root, args.steps, rnd)
    _times(attempts, args, rnd, rng)
    for a in (a for a in attempts if WHEN in a["template"][3]):  # now the time is known
        when = f"{a['end_time'] - 3 * SECOND:%Y-%m-%dT%H:%M:%S}"
        stderr = root / "logs" / RUN / a["attempt_id"] / "stderr.log"
        stderr.write_text(stderr.read_text().replace(WHEN, when))
        a["evidence"] = a["evidence"].replace(WHEN, when)
        a["verdict"] = replace(a["verdict"], evidence=json.loads(a["evidence"]))
    return attempts


def _steps(attempts: list[dict[str, Any]], steps: int, rnd: Any, rng: Any) -> None:
    """Checkpoints each attempt writes and steps it runs past its last one; `steps` reached."""
    import numpy as np

    able = [a for a in attempts[:-1] if a["stepping"] and a["loop"] is None]
    full, p = steps // CKPT, rng.lognormal(0.0, 0.9, len(able))
    picks = rng.choice(len(able), max(0, full - 1), p=p / p.sum()) if able else []
    for a, c in zip(able, np.bincount(picks, minlength=len(able)), strict=True):
        a["ckpts"] = int(c)
    reached = loop_extra = 0
    for a in attempts:
        last = a is attempts[-1]
        a["ckpts"] = min(1, full) if last else a.get("ckpts", 0)  # the last one saves once
        if last:
            extra = steps - reached - a["ckpts"] * CKPT
        elif a["loop"] is not None:  # a crash loop dies near the same step, making no progress
            loop_extra = rnd.randint(200, 900) if a["loop"] == 0 else loop_extra
            extra = loop_extra - (0, 3, 1)[a["loop"]]
        else:
            extra = rnd.randint(1, CKPT - 1) if a["stepping"] else 0
        ran = a["ckpts"] * CKPT + extra
        ckpts = [reached + CKPT * (k + 1) for k in range(a["ckpts"])]
        ckpts += [steps] if last and extra else []  # the final save
        a.update(ran=ran, resumed_from_step=reached or None, checkpoints=ckpts,
                 first_step=reached + 1 if ran else None, last_step=reached + ran if ran else None,
                 last_checkpoint_step=ckpts[-1] if ckpts else None)  # fmt: skip
        reached += a["ckpts"] * CKPT


def _settings(attempts: list[dict[str, Any]], args: argparse.Namespace, rnd: Any) -> None:
    """Config, command line, code, packages, environment and data mix of each attempt."""
    words, warmup = PACKAGES.split(), min(2000, max(1, args.steps // 50))
    s: dict[str, Any] = {
        "config": {**CONFIG, "train.max_steps": args.steps, "optimization.warmup_steps": warmup,
                   "distributed.world_size": args.hosts * GPUS},
        "mix": {k: {"weight": w, "tokens": t * 1e9, "paths": [f"{ROOT}/data/{k}/"]}
                for k, (w, t) in MIX.items()},
        "package": dict(zip(words[::2], words[1::2], strict=True)), "env": {"NCCL_IB_TIMEOUT": "18"},
        "seed": 1, "commit": f"{rnd.getrandbits(160):040x}",
    }  # fmt: skip
    majors = 0
    for a in attempts:
        if a["major_start"] and a["parent"]:
            s, majors = copy.deepcopy(s), majors + 1
            if a["parent"]["loop"] is not None:
                s["config"]["optimization.lr"] = round(s["config"]["optimization.lr"] * 0.8, 9)
                s["seed"] += 1
            for where, name, value in CHANGES[(majors - 1) % len(CHANGES)]:
                if where != "mix":
                    s[where][name] = value
                elif value is None:
                    s["mix"].pop(name, None)
                elif name in s["mix"]:
                    s["mix"][name].update(value)
            if rnd.random() < 0.5:
                s["commit"] = f"{rnd.getrandbits(160):040x}"
        command = [*COMMAND, "--seed", str(s["seed"]), "--save-dir", f"{ROOT}/checkpoints"]
        rows = [make_row("config", k, json.dumps(v)) for k, v in s["config"].items()]
        a.update(s, command=command, settings_rows=rows + hparams.snapshot_rows(None, command))


def _verdicts(attempts: list[dict[str, Any]], root: Path, steps: int, rnd: Any) -> None:
    """Raw logs for each attempt, the verdict logbook draws from them, the restart decision."""
    policy, history, best, job = RestartPolicy(max_restarts=100), History(), 0, 4_211_000
    for a in attempts:
        _, rc, how, text = a["template"]
        restarted = a["parent"] is not None and a["parent"]["decision"] == "restart"
        if not restarted:  # launched again by hand
            history, best, job = History(), 0, job + rnd.randint(1, 400)
        a["user"] = a["parent"]["user"] if restarted else rnd.choice(("alice", "bo", "chen"))
        a["job"], a["restart_count"] = job, history.restarts
        last, world = a["last_step"] or 0, len(a["hosts"]) * GPUS
        out = [f"step={s} loss={_loss(s, steps):.4f} lr=1.2e-04 grad_norm=0.31 loss_scale=8"
               for s in range(max(a["first_step"] or 1, last - 9), last + 1) if last]  # fmt: skip
        if "nan" in how and out:
            out[-1] = f"step={last} loss=nan lr=1.2e-04 grad_norm=inf loss_scale=0.0001"
        err = text.format(
            rank=rnd.randrange(world), seq=rnd.randint(10**4, 10**7), ms=rnd.randint(600001, 600090),
            world=world, workers=world - 8, gpu=a["gpu"], alloc=f"{rnd.uniform(0.5, 4):.2f}",
            free=rnd.randint(200, 900), n=rnd.randint(0, 30_000), pid=rnd.randint(20_000, 90_000),
            job=job, jobstep=history.restarts, host=a["origin"], when=WHEN,
        ).splitlines()  # fmt: skip
        logs = root / "logs" / RUN / a["attempt_id"]
        logs.mkdir(parents=True, exist_ok=True)
        (logs / "stdout.log").write_text("".join(f"{x}\n" for x in out))
        (logs / "stderr.log").write_text("".join(f"{x}\n" for x in err))
        a["tail"] = [f"stdout: {x}" for x in out] + [f"stderr: {x}" for x in err]
        a["fault"] = _xid(a, 79, rnd) if "xid" in how else None
        if a["outcome"] == "lost":
            a.update(status="lost", crash_class=None, decision=None, verdict=None)
            continue
        v = classify_end(returncode=rc, log_paths=[logs / "stdout.log", logs / "stderr.log"],
                         forwarded_signal=a["forwarded_signal"], under_scheduler=True,
                         killed_after_grace="grace" in how)  # fmt: skip
        if a["fault"] and v.status == "crashed" and v.crash_class != "gpu_hardware":
            brief = a["fault"][0][:120]  # a hardware fault, then a crash: the GPU's
            evidence = {**v.evidence, "hardware_faults": [brief]}
            evidence["class_from_output"] = v.crash_class
            v = replace(v, crash_class="gpu_hardware", retryable=True, rule="hardware-fault",
                        summary=f"{brief}, then: {v.summary}"[:500], evidence=evidence)  # fmt: skip
        status, sig = "hung" if a["outcome"] == "hung" else v.status, -rc if rc < 0 else None
        progressed, best = last > best, max(best, last)
        crash_class, done = v.crash_class if status == "crashed" else None, status == "completed"
        outcome = Outcome(status, crash_class, status == "hung" or v.retryable,
                          f"{status}:{v.crash_class}:{v.rule}", progressed,
                          bool(a["forwarded_signal"]))  # fmt: skip
        d = decide(policy, outcome, history)
        a.update(status=status, verdict=v, crash_class=crash_class, exit_code=None if sig else rc,
                 signal=sig, signal_name=signal_name(sig), evidence=json.dumps(v.evidence),
                 retryable=None if done else outcome.retryable, decision=d.action,
                 rule=None if done else "hang-timeout" if status == "hung" else v.rule,
                 decision_reason=d.reason, delay_s=d.delay_s,
                 summary=f"hung: {v.summary}" if status == "hung" else v.summary)  # fmt: skip


def _xid(a: dict[str, Any], xid: int, rnd: Any) -> tuple[str, dict[str, Any]]:
    """A hardware_fault event's message and data: a kernel log line as the sampler parses it."""
    g, bus = a["gpu"], BUS[a["gpu"]]
    what = {
        79: "GPU has fallen off the bus.",
        13: f"Graphics SM Warp Exception on (GPC 1, TPC {g})",
    }
    x = parse_xid(f"[{rnd.uniform(1e5, 9e6):.6f}] NVRM: Xid (PCI:0000:{bus}:00): {xid}, "
                  f"pid={a['pid']}, name=python, {what[xid]}")  # fmt: skip
    assert x is not None
    data = {"xid": x.xid, "device": x.device, "text": x.text, "likely_cause": x.likely_cause}
    return f"Xid {x.xid} on {x.device}: {x.text}", {**data, "line": x.line}


def _times(attempts: list[dict[str, Any]], args: argparse.Namespace, rnd: Any, rng: Any) -> None:
    """Start-ups, ends and downtimes in seconds; the step pace then fills `--days`."""
    for a, nxt in zip(attempts, [*attempts[1:], None], strict=True):
        how = "startup" if not a["stepping"] else "nccl" if "nccl" in a["template"][2] else ""
        a["startup_s"] = float(min(2400, max(120, 600 * rng.lognormal(0, 0.4))))
        a["tail_s"] = rnd.uniform(*TAIL_S.get(how or a["outcome"], (2, 60)))
        if nxt is not None and a["decision"] == "restart" and not nxt["major_start"]:
            a["down_s"] = a["delay_s"] + float(90 * rng.lognormal(0, 0.5))
        else:  # until someone relaunches it
            hours = DOWN_H.get("major" if nxt and nxt["major_start"] else a["outcome"], (0.5, 6))
            a["down_s"] = rnd.uniform(*hours) * 3600 if nxt else 0.0
    span = args.days * 86400.0
    fixed = sum(a["startup_s"] + a["tail_s"] + a["down_s"] for a in attempts)
    scale = min(1.0, 0.4 * span / fixed)
    base, start = (span - fixed * scale) / (sum(a["ran"] for a in attempts) or 1), T0
    for a in attempts:
        for k in ("startup_s", "tail_s", "down_s"):
            a[k] *= scale
        a.update(scale=scale, start_time=start, step_s=base * rnd.uniform(0.95, 1.05))
        a["first_step_time"] = start + a["startup_s"] * SECOND if a["ran"] else None
        a["last_step_time"] = _step_time(a, a["last_step"]) if a["ran"] else None
        end = (a["last_step_time"] or start + a["startup_s"] * 0.3 * SECOND) + a["tail_s"] * SECOND
        ckpt, hung = a["last_checkpoint_step"], a["outcome"] == "hung"
        output = (a["last_step_time"] if hung else end - SECOND) if a["ran"] else None
        a.update(end_time=end, duration_s=(end - start) / SECOND, recorded_at=end + 2 * SECOND,
                 last_checkpoint_time=ckpt and _step_time(a, ckpt), last_output_time=output,
                 hung_s=a["tail_s"] - GRACE_S * scale if hung else None)  # fmt: skip
        start = end + a["down_s"] * SECOND


def _step_time(a: dict[str, Any], step: int) -> datetime:
    return a["first_step_time"] + (step - a["first_step"]) * a["step_s"] * SECOND


def _loss(step: Any, steps: int) -> Any:
    """The run's loss curve without noise: 11 at the start, about 2.6 at the end."""
    return 1.9 + 9.1 * (1 + step * (150_000 / steps) / 300) ** -0.42


# ------------------------------------------------------------------------------------------------
# Writing the store.


def build(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Write the store; returns what it holds and how long each part took."""
    store, took, t = Store.open(root, create=True), {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        took[name], t = round(time.perf_counter() - t, 1), time.perf_counter()

    attempts = plan(args, root)
    lap("plan_and_logs")
    a0 = attempts[0]
    run = {"created_at": a0["start_time"], "host": a0["host"], "user": a0["user"]}
    store.write("runs", RUN, [{**run, "description": "OPT-175B, synthetic"}])
    store.write("attempts", RUN, [r for a in attempts for r in _attempt_rows(a)])
    store.write("nodes", RUN, [r for a in attempts for r in _node_rows(a)])
    lap("attempts_nodes")
    batch, snapshot_rows = [], 0
    for a in attempts:
        batch += _snapshot_rows(a)
        if len(batch) >= 100_000 or a is attempts[-1]:  # parts of about 100,000 rows
            store.write("snapshots", RUN, batch)
            snapshot_rows, batch = snapshot_rows + len(batch), []
    lap("snapshots")
    metric_rows, events = _write_metrics(root, attempts, args)
    lap("metrics")
    events += [e for a in attempts for e in _attempt_events(a, args)] + _notes(attempts, args)
    store.write("events", RUN, sorted(events, key=lambda e: e["time"]))
    lap("events")
    samples = _write_samples(root, attempts, args)
    lap("samples")
    ends = Counter(a["crash_class"] or a["status"] for a in attempts)
    return {
        "attempts": len(attempts), "ends": dict(ends.most_common()), "majors": attempts[-1]["major"],
        "span_days": (attempts[-1]["end_time"] - T0).total_seconds() / 86400,
        "steps": attempts[-1]["last_step"], "steps_run": sum(a["ran"] for a in attempts),
        "step_s": statistics.median(a["step_s"] for a in attempts), "hosts": args.hosts,
        "gpus_per_host": args.gpus_per_host, "events": len(events),
        "event_kinds": dict(Counter(e["kind"] for e in events).most_common()),
        "metric_rows": metric_rows, "sample_rows": samples, "snapshot_rows": snapshot_rows,
        "took_s": took, "writer_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10,
        **describe(root),
    }  # fmt: skip


def _attempt_rows(a: dict[str, Any]) -> list[dict[str, Any]]:
    """The attempt's rows as the supervisor journals them, at its start and at its end; a lost one
    is folded by the next `logbook run`, with no end and no steps on record."""
    started = {k: a[k] for k in START} | {"status": "running", "recorded_at": a["start_time"]}
    lost = {"status": "lost", "end_time": a["end_time"], "duration_s": a["duration_s"]}
    folded = {**started, **lost, "recorded_at": a["end_time"] + a["down_s"] * SECOND}
    return [started, folded if a["status"] == "lost" else a]


def _node_rows(a: dict[str, Any]) -> list[dict[str, Any]]:
    """Each host's wrapper's rows: the attempt's, a little later; where one host crashed, the
    others see their collectives time out."""
    names, launch, out = schema.load("nodes").names, f"slurm:{a['job']}.{a['restart_count']}:0", []
    peers = {"exit_code": None, "signal_name": "SIGABRT", "crash_class": "communication",
             "evidence": None, "summary": f"NCCL collective timed out (ALLREDUCE, seq "
             f"{a['n'] * 7919 + 1021}, after 600031 ms)"}  # fmt: skip
    for rank, host in enumerate(a["hosts"]):
        lag, node = 0.05 * (rank % 40) * SECOND, {"node": rank, "nodes": len(a["hosts"])}
        node.update(host=host, pid=10_000 + rank, wrapper_pid=9_990 + rank, launch=launch)
        for r in _attempt_rows(a):
            row = {k: r.get(k) for k in names} | node
            row.update(
                {k: r[k] + lag for k in ("start_time", "end_time", "recorded_at") if r.get(k)}
            )
            crashed = a["status"] == "crashed" and host != a["origin"] and r is a
            out.append(row | peers if crashed else row)
    return out


def _snapshot_rows(a: dict[str, Any]) -> list[dict[str, Any]]:
    """The attempt's launch snapshot: the leader's whole capture, every host's host and gpu rows."""
    aid, out = a["attempt_id"], []
    text = ENV.format(**a, nhosts=len(a["hosts"]), token=aid[:30], wandb=aid[::-1] + aid[:8])
    env = dict(w.split("=", 1) for w in text.split()) | a["env"]
    leader = [*LEADER_ROWS, ("git", "commit", a["commit"])]
    leader += [("package", k, v) for k, v in a["package"].items()]
    leader = [make_row(*r) for r in leader] + capture_command(a["command"], Path(ROOT))
    leader += capture_env(env) + capture_launcher(a["command"], env) + a["settings_rows"]
    for host in a["hosts"]:
        n = int(host[-3:])
        uuids = [("gpu", f"{g}.uuid", f"GPU-{n:08x}-{g:04x}-{n * 8 + g:012x}") for g in range(GPUS)]
        rows = [("host", "hostname", host), ("host", "user", a["user"]), *HOST_ROWS, *uuids]
        rows = [make_row(*r) for r in rows] + (leader if host == a["host"] else [])
        at = a["start_time"] + (2 + n * 0.1) * SECOND
        out += [{**r, "attempt_id": aid, "time": at, "host": host} for r in rows]
    return out


def _write_metrics(
    root: Path, attempts: list[dict[str, Any]], args: argparse.Namespace
) -> tuple[int, list[dict[str, Any]]]:
    """Every step's metrics, and the events logbook's detectors write on reading them."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(args.seed + 1)
    names = [*METRICS[: args.metrics], *(f"aux_{i}" for i in range(args.metrics - len(METRICS)))]
    watched = [k for k in names if k in METRICS and Detectors.watches(k)]
    per_step = len(attempts) / max(1, sum(a["ran"] for a in attempts))
    pending: list[Any] = []
    written, found = 0, []
    for a in (a for a in attempts if a["ran"]):
        cols, t_us, st = _curves(a, per_step, args.steps, rng)
        detectors = Detectors()  # one per attempt, as in the supervisor
        for i, row in enumerate(zip(*(cols[k].tolist() for k in watched), strict=True)):
            for f in detectors.observe(int(st[i]), dict(zip(watched, row, strict=True))):
                at = datetime.fromtimestamp(t_us[i] / 1e6 + 0.2, timezone.utc)
                data = {"metric": f.name, "value": f.value, **f.evidence}
                severity = "error" if f.kind == "nan" else "warning"
                found.append(
                    _event(a, f.kind, f.message, at, None, "detector", severity, f.step, data)
                )
        n, m = len(st), len(names)
        values = np.column_stack([cols[k] if k in cols else rng.standard_normal(n) for k in names])
        pending.append(_table("metrics", n * m, {
            "attempt_id": a["attempt_id"], "time": np.repeat(t_us, m), "step": np.repeat(st, m),
            "name": pa.array(names).take(np.tile(np.arange(m), n)), "value": values.ravel(),
            "source": "parser"}))  # fmt: skip
        written += n * m
        if sum(t.num_rows for t in pending) >= 1_000_000 or a is attempts[-1]:
            write_part(root / "metrics" / f"run={RUN}", pa.concat_tables(pending))
            pending = []
    return written, found


def _curves(a: dict[str, Any], per_step: float, steps: int, rng: Any) -> Any:
    """One attempt's metric values by name, their times (µs) and steps, with anomalies planted
    for the detectors to find (about 1.45 an attempt over the run)."""
    import numpy as np

    st = np.arange(a["first_step"], a["last_step"] + 1, dtype=np.int64)
    n = len(st)
    t_us = _us(a["first_step_time"]) + ((st - st[0]) * a["step_s"] * 1e6).astype(np.int64)
    z = rng.standard_normal((4, n))
    base, x = _loss(st, steps), st * (150_000 / steps)
    loss = base * (1 + 0.008 * z[0]) + 0.01 * (a["major"] - 1) / 12
    g_base = 0.2 + 1.5 * (1 + x / 500) ** -0.6
    grad = g_base * np.exp(0.12 * z[1])
    lr0, warm = a["config"]["optimization.lr"], a["config"]["optimization.warmup_steps"]
    decay = 1 - 0.9 * np.clip((st - warm) / max(1, steps - warm), 0, 1)
    scale = 2.0 ** rng.integers(2, 6, size=n // 500 + 1)[(st - st[0]) // 500]
    step_time = a["step_s"] * np.exp(0.03 * z[2])
    for kind, rate in (("loss_spike", 0.75), ("grad_norm_explosion", 0.6), ("nan", 0.1)):
        for i in rng.integers(25, n - 30, rng.poisson(rate * n * per_step)) if n > 60 else ():
            if kind == "loss_spike":
                tau = rng.uniform(20, 200)
                k = min(n - i, int(6 * tau))
                bump = rng.uniform(0.1, 1.2) * np.exp(-np.arange(k) / tau)
                loss[i : i + k] += base[i : i + k] * bump
                grad[i : i + 3] *= rng.uniform(2, 5)
            elif kind == "grad_norm_explosion":
                grad[i] = g_base[i] * rng.uniform(12, 60)
            else:
                grad[i], scale[i:] = np.inf, scale[i:] / 2
    if "nan" in a["template"][2]:  # the divergence that ends a numerical crash
        k = min(n, 40)
        ramp = np.linspace(0, 3, k)
        loss[-k:] += base[-k:] * ramp
        grad[-k:] *= np.exp(ramp * 1.5)
        scale[-k:] = np.maximum(1e-4, 8.0 / 2.0 ** np.arange(k))
        loss[-1] = np.nan
    tokens = TOKENS_PER_STEP / step_time
    return {
        "loss": loss, "ppl": np.exp(np.minimum(loss, 50)), "grad_norm": grad,
        "learning_rate": np.where(st < warm, lr0 * st / warm, lr0 * decay), "loss_scale": scale,
        "param_norm": 150 + 250 * (1 - np.exp(-x / 40_000)) + 0.02 * z[3],
        "tokens_per_s": tokens, "step_time_s": step_time, "data_time_s": 0.04 * np.exp(z[3] / 2),
        "tflops_per_gpu": 6 * PARAMS * tokens / (len(a["hosts"]) * GPUS) / 1e12,
    }, t_us, st  # fmt: skip


def _event(a: dict[str, Any] | None, kind: str, message: str, at: datetime, host: str | None = None,
           source: str = "supervisor", severity: str = "info", step: int | None = None,
           data: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """An events row; a person's note has no host, a wrapper's has its own (the leader's)."""
    row = event_row(RUN, a and a["attempt_id"], kind, message, source=source, at=at, step=step,
                    severity=severity, data=data)  # fmt: skip
    row["host"] = host or (a["host"] if a and source != "cli" else None)
    return row


def _attempt_events(a: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The supervisor's, sampler's and hooks' events of one attempt."""
    rnd, p, out = random.Random(args.seed * 1000 + a["n"]), a["parent"], []
    start, end, status, last = a["start_time"], a["end_time"], a["status"], a["last_step"]

    def add(kind: str, message: str, at: datetime, host: str | None = None, **kw: Any) -> None:
        out.append(_event(a, kind, message, at, host, **kw))

    def hook(event: str, at: datetime) -> None:
        took = round(rnd.uniform(0.2, 1.5), 3)
        data = {"event": event, "command": HOOK, "exit_code": 0, "duration_s": took, "output": ""}
        add("hook", f"{event} hook {HOOK} exited 0 in {took:.1f} s", at, source="hook", data=data)

    hook("on_start", start + 2 * SECOND)
    mix = {"mix": a["mix"], "file": f"{ROOT}/configs/mix.yaml"}
    add("data_mix", datamix.summary(a["mix"]), start + 3 * SECOND, data=mix)
    change = p and datamix.change_data(p["mix"], a["mix"])
    if change:
        add("data_mix_change", change[0], start + 3 * SECOND, data=change[1])
    old, new = (
        {f"{r['kind']}:{r['name']}": r["value"] for r in x["settings_rows"]} for x in (p or a, a)
    )
    for ch in hparams.changes(old, new):  # worded as the supervisor words them
        where, _, key = ch["key"].partition(":")
        data = {**ch, "key": key, "source": where.replace("arg", "argv")}
        message = f"{key}: {json.dumps(ch['old'])} -> {json.dumps(ch['new'])}"
        add("hparam_change", message, start + 2 * SECOND, data=data)
    for step in a["checkpoints"]:
        write_s = round(rnd.uniform(0.002, 0.006) * CKPT * a["step_s"], 1)
        data = {"path": f"{ROOT}/checkpoints/checkpoint_{step}", "write_s": write_s, "files": 1025}
        at = _step_time(a, step) + write_s * SECOND
        add("checkpoint", f"checkpoint at step {step}", at, step=step, data=data)
    # The sampler's: the fault that began the end, and application errors that end nothing.
    at = end - (a["tail_s"] * 0.9 + 5) * SECOND
    faults = [(at, a["origin"], a["fault"])] if a["fault"] else []
    if rnd.random() < 0.3:
        at = start + (end - start) * rnd.random()
        faults.append((at, rnd.choice(a["hosts"]), _xid(a, 13, rnd)))
    for at, host, (message, data) in faults:
        add("hardware_fault", message, at, host, severity="error", data=data)
    if status == "lost":
        message = (
            f"attempt {a['label']} lost: its wrapper stopped without recording an end "
            f"(killed, or its host died); last sign of life {end:%Y-%m-%d %H:%M:%S} UTC"
        )
        data = {"host": a["host"], "wrapper_pid": a["wrapper_pid"]}
        add("lost", message, end, source="logbook", severity="error", data=data)
        return out
    if status == "hung":
        quiet, timeout = a["hung_s"], HANG_S * a["scale"]
        message = f"no output and no progress for {quiet:.0f} s (--hang-timeout {timeout:g} s)"
        data = {"quiet_s": round(quiet, 1), "last_step": last, "lines": a["tail"]}
        at = a["last_step_time"] + quiet * SECOND
        add("hang", message, at, severity="error", step=last, data=data)
    if a["forwarded_signal"]:
        message = f"received {a['forwarded_signal']}; passed to the command"
        add("signal", message, end - 5 * SECOND, data={"signal": a["forwarded_signal"]})
    if status != "completed":
        kind = {"crashed": "crash", "hung": "hang_stopped"}.get(status, status)
        data = {"class": a["crash_class"], **a["verdict"].evidence}
        ended = {"severity": "error" if status in ("crashed", "hung") else "warning", "step": last}
        add(kind, a["summary"], end, data=data, **ended)
        for host in a["hosts"] if args.all_node_ends else [a["origin"]]:
            if host != a["host"]:
                message = f"{status} on {host} (node {a['hosts'].index(host)}): {a['summary']}"
                add("node_end", message, end, host, data=data, **ended)
    if status in ("crashed", "hung"):
        hook("on_crash", end + SECOND)
    if a["decision"] == "gave_up":
        add("gave_up", a["decision_reason"], end + SECOND, severity="error")
    if a["decision"] == "restart":
        message = f"{a['decision_reason']}; relaunching in {a['delay_s']:g} s"
        add("restart", message, end + SECOND, data={"delay_s": a["delay_s"]})
    hook("on_restart" if a["decision"] == "restart" else "on_end", end + 2 * SECOND)
    return out


def _notes(attempts: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """About one note per attempt, at random times, in the words of a training team's logbook."""
    rnd, starts, out = random.Random(args.seed + 7), [a["start_time"] for a in attempts], []
    for _ in attempts:
        at = T0 + (attempts[-1]["end_time"] - T0) * rnd.random()
        a = attempts[max(0, bisect.bisect_right(starts, at) - 1)]
        step = a["last_step"] or a["resumed_from_step"] or 1
        fields = {"step": step, "ckpt": step // CKPT * CKPT, "host": rnd.choice(a["hosts"])}
        ppl = math.exp(_loss(step, args.steps))
        text = rnd.choice(NOTES).format(**fields, gpu=a["gpu"], ppl=ppl)
        out.append(_event(a if at <= a["end_time"] else None, "note", text, at, source="cli"))
    return out


def _write_samples(root: Path, attempts: list[dict[str, Any]], args: argparse.Namespace) -> int:
    """Telemetry, time-major, parts of about a million rows (one per attempt with --quick)."""
    import numpy as np
    import pyarrow as pa

    rng, g = np.random.default_rng(args.seed + 2), args.gpus_per_host
    energy: dict[str, Any] = {}  # host -> each GPU's counter since the driver loaded
    written, t0 = 0, time.perf_counter()
    for a in attempts:
        hosts, hg = a["hosts"], len(a["hosts"]) * g
        counter = np.concatenate([energy.get(h, rng.uniform(1e8, 5e9, g)) for h in hosts])
        since = [(a[k] - a["start_time"]) / SECOND if a["ran"] else np.inf
                 for k in ("first_step_time", "last_step_time")]  # fmt: skip
        spin = a["outcome"] == "hung" or "nccl" in a["template"][2]  # in a collective that hangs
        host_idx = np.repeat(np.arange(len(hosts)), g)
        offset = rng.integers(0, TICK_S * 1_000_000, len(hosts))[host_idx]
        bias, mem = rng.normal(0, 12, hg), rng.integers(95, 99, hg) * GPU_BYTES // 100
        ticks, chunk = max(1, int(a["duration_s"] // TICK_S)), max(1, 1_000_000 // hg)
        for c in range(0, ticks, chunk):
            rel = np.arange(c, min(ticks, c + chunk)) * TICK_S
            phase = ((rel >= since[0]).astype(np.int64) + (rel > since[1]) * (1 + spin))[:, None]
            z, on = rng.standard_normal((len(rel), hg)), phase == 1
            cols = {
                k: np.array(m)[phase] + np.array(sd)[phase] * z for k, (m, sd) in PHASES.items()
            }
            cols["power_w"] = np.round(np.clip(cols["power_w"] + on * bias, 50, 420), 2)
            cum = counter + np.cumsum(cols["power_w"] * TICK_S, axis=0)
            counter, n = cum[-1], cum.size
            cols.update(
                energy_j=np.round(cum, 3), gpu_util_pct=np.clip(cols["gpu_util_pct"], 0, 100),
                temperature_c=np.round(cols["temperature_c"] + on * bias / 6),
                gpu_mem_used_bytes=np.where(phase > 0, mem, mem * 3 // 10),
                gpu_mem_total_bytes=np.full(n, GPU_BYTES), scope="gpu", attempt_id=a["attempt_id"],
                gpu_index=np.tile(np.arange(hg) % g, len(rel)),
                time=_us(a["start_time"]) + rel[:, None] * 1_000_000 + offset,
                host=pa.array(hosts).take(np.tile(host_idx, len(rel))),
            )  # fmt: skip
            write_part(root / "samples" / f"run={RUN}", _table("samples", n, cols))
            written += n
        energy.update((h, counter[i * g : (i + 1) * g]) for i, h in enumerate(hosts))
        if a["n"] % 20 == 19 or a is attempts[-1]:
            print(f"  samples: {a['n'] + 1}/{len(attempts)} attempts, {written:,} rows, "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
    return written


def _table(table: str, n: int, cols: dict[str, Any]) -> Any:
    """`n` rows of `table`, by column: numpy arrays (times in µs), pyarrow arrays, or a string for
    every row; the other columns null."""
    import numpy as np
    import pyarrow as pa

    def column(f: pa.Field) -> pa.Array:
        value = cols.get(f.name)
        if value is None or isinstance(value, str):
            return pa.repeat(pa.scalar(value, f.type), n)
        return value if isinstance(value, pa.Array) else pa.array(np.ravel(value), f.type)

    sch = schema.load(table).arrow()
    return pa.table([column(f) for f in sch], schema=sch)


def describe(root: Path) -> dict[str, Any]:
    """Parts, rows (from the Parquet footers) and bytes of each table, and the raw logs' bytes."""
    import pyarrow.parquet as pq

    tables = {}
    for table in TABLES:
        files = sorted((root / table / f"run={RUN}").glob("*.parquet"))
        rows = sum(pq.read_metadata(f).num_rows for f in files)
        tables[table] = {
            "parts": len(files),
            "rows": rows,
            "bytes": sum(f.stat().st_size for f in files),
        }
    logs = sum(f.stat().st_size for f in (root / "logs").rglob("*") if f.is_file())
    return {"tables": tables, "bytes": sum(t["bytes"] for t in tables.values()) + logs}


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


# ------------------------------------------------------------------------------------------------
# Timing the chronicle.


def _measure(argv: list[str], log: Path) -> dict[str, Any]:
    """Run argv; its wall time, exit status, CPU time and peak RSS (os.wait4) and, polled every 50 ms, the
    peak of its process tree's summed RSS."""
    import psutil

    with open(log, "wb") as err:
        t, peak = time.perf_counter(), 0
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        tree = psutil.Process(proc.pid)
        while not (ended := os.wait4(proc.pid, os.WNOHANG))[0]:
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [tree, *tree.children(True)]))
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall, (_, status, usage) = time.perf_counter() - t, ended
    return {"s": wall, "rc": os.waitstatus_to_exitcode(status), "rss": usage.ru_maxrss << 10,
            "cpu_s": usage.ru_utime + usage.ru_stime, "tree_rss": peak, "stderr": log.read_text(errors="replace")[-3000:]}  # fmt: skip


def chronicle(root: Path, repeats: int, keep: Path | None, tmp: Path | None) -> dict[str, Any]:
    """Time the chronicle, plain and anonymized in turn."""
    work = Path(tempfile.mkdtemp(prefix="chronicle-out-", dir=tmp))
    results: dict[str, list[dict[str, Any]]] = {"plain": [], "anonymize": []}
    try:
        for variant in [v for _ in range(repeats) for v in results]:
            out = (keep or work) / variant
            shutil.rmtree(out, ignore_errors=True)
            argv = [sys.executable, "-m", "logbook", "chronicle", RUN, "--out", str(out)]
            argv += ["--store", str(root), *(["--anonymize"] if variant == "anonymize" else [])]
            r = _measure(argv, work / "err.log")
            files = sorted(((f.stat().st_size, str(f.relative_to(out))) for f in out.rglob("*")
                            if f.is_file()), reverse=True)  # fmt: skip
            size = sum(s for s, _ in files)
            r["output"] = {"files": len(files), "bytes": size, "largest": files[:3]}
            results[variant].append(r)
            if keep is None:
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


CHECKS = (["show"], ["incidents"], ["cost", "--format", "json"], ["goodput"], ["events", "--limit",
          "12"], ["metrics", "--name", "loss,learning_rate", "--every", "25000"])  # fmt: skip


def check(root: Path) -> bool:
    """Run the commands that read the store, print the start of what each says."""
    ok = True
    for command, *rest in CHECKS:
        argv, t = [command, RUN, *rest], time.perf_counter()
        cmd, env = (
            [sys.executable, "-m", "logbook", *argv, "--store", str(root)],
            {"COLUMNS": "200"},
        )
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
        print(
            f"--- logbook {' '.join(argv)}  (exit {p.returncode}, {time.perf_counter() - t:.1f} s)"
        )
        lines, ok = p.stdout.splitlines(), ok and not p.returncode
        if p.returncode:
            print(p.stderr[-2000:])
        elif command == "cost":
            rows = json.loads(p.stdout)
            print(f"{len(rows)} rows; last: {json.dumps(rows[-1])[:1500]}")
        else:
            print("\n".join(lines if len(lines) <= 30 else [*lines[:14], "...", *lines[-12:]]))
    return ok


def _print(b: dict[str, Any], root: Path, results: dict[str, Any]) -> None:
    print(f"store: {root}, {b['bytes'] / 2**30:.2f} GiB" + (" (reused)" if b.get("reused") else ""))
    if "attempts" in b:  # from the writer, or its summary beside a kept store
        took, rss = ", ".join(f"{k} {v} s" for k, v in b["took_s"].items()), b["writer_peak_rss"]
        print(f"  written in {b['build_s']:.0f} s, writer peak RSS {rss / 2**20:.0f} MiB; {took}")
        print(f"  {b['attempts']} attempts in {b['majors']} majors over {b['span_days']:.1f} days, "
              f"{b['hosts']} hosts x {GPUS} GPUs ({b['gpus_per_host']} sampled); {b['steps']:,} "
              f"steps reached, {b['steps_run']:,} run ({b['step_s']:.1f} s a step)")  # fmt: skip
        print("  ends: " + ", ".join(f"{k} {v}" for k, v in b["ends"].items()))
        kinds = ", ".join(f"{k} {v}" for k, v in b["event_kinds"].items())
        print(f"  events {b['events']:,}: {kinds}")
    for t, d in b["tables"].items():
        print(
            f"  {t:10} {d['rows']:>13,} rows {d['parts']:>5} parts {d['bytes'] / 2**20:>9.1f} MiB"
        )
    for variant, runs in results.items():
        what = "chronicle" + " --anonymize" * (variant == "anonymize")
        if failed := [r for r in runs if r["rc"]]:
            r = failed[0]
            print(f"{what:24} FAILED (exit {r['rc']}) after {r['s']:.1f} s:\n{r['stderr'][-1500:]}")
            continue
        s, out = statistics.median(r["s"] for r in runs), runs[-1]["output"]
        cpu = statistics.median(r["cpu_s"] for r in runs)
        rss, tree = max(r["rss"] for r in runs), max(r["tree_rss"] for r in runs)
        verdict = "ok" if s < AIM_S and max(rss, tree) < AIM_BYTES else "missed"
        print(f"{what:24} {s:7.2f} s  CPU {cpu:6.1f} s  peak RSS {rss / 1e6:6.0f} MB (tree {tree / 1e6:.0f} MB)  "
              f"wrote {out['files']} files, {out['bytes'] / 1e6:.1f} MB  "
              f"(aim < {AIM_S:g} s, < {AIM_BYTES / 1e9:g} GB: {verdict})")  # fmt: skip


def _in_child(func: Any, *args: Any) -> Any:
    """func(*args) in a fresh Python: the chronicles this process starts do not inherit the
    writer's peak RSS (Linux keeps it across fork and exec), and the writer's is its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for flag, default, text in (  # False: a switch; a type: no default; a number: an int's default
        ("--days", float, "days the run spans (default 100; 2 with --quick)"),
        ("--quick", False, "a small version: --days 2"), ("--hosts", 128, None),
        ("--gpus-per-host", 1, "GPUs sampled per host (1)"), ("--attempts", 200, None),
        ("--steps", 150_000, None), ("--metrics", len(METRICS), "metrics per step (10)"),
        ("--all-node-ends", False, "a node_end from every host"), ("--seed", 175, None),
        ("--repeats", 1, None),
        ("--keep", Path, "build the store here and keep it; reused if there"),
        ("--out", Path, "keep the chronicles here (plain/, anonymize/)"),
        ("--tmp", Path, "parent of the temporary store and outputs"),
        ("--check", False, "run show, incidents, cost, ... first"),
        ("--json", False, "print the figures as JSON"),
    ):  # fmt: skip
        if default is False:
            ap.add_argument(flag, action="store_true", help=text)
        elif callable(default):
            ap.add_argument(flag, type=default, help=text)
        else:
            ap.add_argument(flag, type=int, default=default, help=text)
    args = ap.parse_args()
    args.days = args.days if args.days is not None else 2.0 if args.quick else 100.0
    tmp = None if args.keep else Path(tempfile.mkdtemp(prefix="chronicle-bench-", dir=args.tmp))
    root = args.keep.absolute() if args.keep else Path(f"{tmp}/store")
    summary = root.with_name(root.name + ".build.json")  # beside the store, not in it
    try:
        if (root / "samples").exists():
            print(f"reusing the store at {root}", file=sys.stderr)
            built = json.loads(summary.read_text()) if summary.exists() else {}
            built.update(_in_child(describe, root), reused=True)
        else:
            print(f"writing the store at {root} ...", file=sys.stderr, flush=True)
            t = time.perf_counter()
            built = _in_child(build, root, args)
            built["build_s"] = time.perf_counter() - t
            if args.keep:
                summary.write_text(json.dumps(built, indent=1))
        ok = check(root) if args.check else True
        t = time.perf_counter()
        for f in (f for f in root.rglob("*") if f.is_file()):  # the timings leave the disk out
            with open(f, "rb") as fh:
                while fh.read(8 << 20):
                    pass
        built["warm_s"] = time.perf_counter() - t
        results = chronicle(root, args.repeats, args.out, args.tmp)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"store": built, "chronicle": results}, default=str))
    else:
        _print(built, root, results)
    return 1 if not ok or any(r["rc"] for runs in results.values() for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
