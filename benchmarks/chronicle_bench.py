"""`logbook chronicle` (#6) on a synthetic run the size of OPT-175B's: build time and peak memory.

    python benchmarks/chronicle_bench.py --keep /tmp/chronicle-bench-store   # full size, then reused
    python benchmarks/chronicle_bench.py --quick                              # 2 days of samples
    python benchmarks/chronicle_bench.py --keep /tmp/chronicle-bench-store --check --repeats 3

1. A store as `logbook run` would leave it after OPT-175B (issue #6), written by a process of its
   own (Linux keeps a process's peak RSS across fork and exec, so the writer's children would
   report its peak), run `opt-175b`:
   - `--attempts` (200) attempts in one lineage over `--days` (100) days. A restart bumps the
     minor (1.00, 1.01, ...), a hand relaunch with changes the major (about one major per 17
     attempts: 12). Mostly crashes, in the mix of #6 (communication 35 %, gpu_hardware 25 %,
     lost 10 %, hung 10 %, then numerical, gpu_oom, python_exception, data_io, fatal_signal, a
     few preempted and interrupted); a major follows a numerical crash loop logbook gave up on,
     or a hand stop. Summaries, rules and evidence are what `logbook.forensics.classify_end` says
     of each attempt's raw logs (written under logs/), decisions what the restart policy decides;
     downtime of minutes after a restart, hours after a loss or a stop.
   - `--steps` (150,000) steps reached, a checkpoint every 1,000, each attempt resuming from the
     newest; the steps after it are done again by the next (about 60 % more steps in all).
   - nodes: every attempt launched over `--hosts` (128) hosts, a `nodes` row each (start and
     end); a host whose GPU failed is drained and a spare takes its place.
   - snapshots: the leader's whole launch snapshot (command, git, python, ~150 packages, ~50 env
     variables with secrets redacted, host, gpu, launcher, config, arg) and every other host's
     `host` and `gpu` rows: 8 GPUs per host in the inventory, 1,024 per attempt.
   - events, as the supervisor, sampler, detectors, hooks and `logbook note` write them: crash,
     hang, hang_stopped, lost, restart, gave_up, signal, checkpoint (with write_s), data_mix at
     every attempt and data_mix_change, hparam_change at majors, ~300 loss_spike /
     grad_norm_explosion / nan / loss_scale_collapse, hardware_fault (ECC, Xid), hook, node_end
     (only from the host where a failure began; `--all-node-ends` adds every other host's, ~25,000
     more), ~200 notes: a few thousand in all.
   - metrics: `--metrics` (10) per step, every step of every attempt (re-done steps included):
     a falling loss with spikes where the spike events are, warm-up then linear decay of the
     learning rate with cuts at majors, grad norm, loss scale, throughput. About 2.4 M rows.
   - samples: one row per GPU per 10 s per host over each attempt, `--gpus-per-host` (1) GPUs:
     util, power, energy counter, temperature, memory; no host or process rows. 128 hosts x 100
     days x 8,640 readings is 110.6 M rows, less the downtime between attempts: 96.8 M. The full
     8-GPU version is 885 M rows (775 M with the downtime): `--gpus-per-host 8`, ~8x the disk
     (~12 GB) and the write time.
     Only the sampled GPUs' energy is measured, so `logbook cost` counts 1,024 GPUs but measures
     the energy of 128 of them.
   Runs, attempts, nodes and events go through `Store.write`; snapshots (1.15 M rows), metrics
   and samples are written with pyarrow in the logbook schemas: one samples part per attempt
   (time-major, as compaction leaves them), parts of about a million rows for the others.
2. `python -m logbook chronicle RUN --out DIR --store STORE`, then the same with `--anonymize`,
   each in a fresh process after the store's files were read once (page cache warm), `--repeats`
   (1) times each: wall time, peak RSS from os.wait4 (the largest of the process and the children
   it waited for) and, sampled every 50 ms with psutil, the peak of the process tree's RSS summed,
   and what it wrote. A command that fails is reported with its exit status and the end of its
   stderr, and the script exits 1.

`--quick` is `--days 2` (1.45 M samples, the rest as large), with the time between steps,
start-ups and downtimes compressed to fit: fine for the chronicle's plumbing, not for its figures.
`--check` runs show, incidents, cost, goodput, events and metrics on the store first.

Aim (#6): the chronicle of the full-size run in under 30 s, under 2 GB of memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

RUN = "opt-175b"
AIM_S = 30.0
AIM_BYTES = 2e9
TABLES = ("runs", "attempts", "nodes", "snapshots", "events", "metrics", "samples")

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
TICK_S = 10
INVENTORY_GPUS = 8  # GPUs per host in the launch snapshots, whatever --gpus-per-host samples
CHECKPOINT_EVERY = 1000
HANG_TIMEOUT_S = 1800.0
GRACE_S = 30.0
MAX_RESTARTS = 100
TOKENS_PER_STEP = 2_097_152  # OPT-175B: 2M-token batches
PARAMS = 175e9
GPU_NAME = "NVIDIA A100-SXM4-80GB"
DRIVER = "535.129.03"
MIB = 1 << 20
GPU_MEM_MIB = 81920
HOST_MEMORY = 1900 << 30
ROOT = "/shared/opt"
COMMAND = ["python", "metaseq/cli/train.py", "--config", f"{ROOT}/configs/opt-175b.yaml"]
HOOK = f"{ROOT}/hooks/notify.sh"
USERS = ("alice", "bo", "chen", "dana", "emre")
METRICS = (
    "loss",
    "ppl",
    "learning_rate",
    "grad_norm",
    "param_norm",
    "loss_scale",
    "tokens_per_s",
    "step_time_s",
    "tflops_per_gpu",
    "data_time_s",
)

# What ends an attempt (the last one completes), as in #6. A major's first attempt follows a
# numerical crash loop or a hand stop instead.
OUTCOMES = (
    ("communication", 0.35),
    ("gpu_hardware", 0.25),
    ("lost", 0.10),
    ("hung", 0.10),
    ("numerical", 0.04),
    ("gpu_oom", 0.03),
    ("python_exception", 0.03),
    ("data_io", 0.03),
    ("fatal_signal", 0.02),
    ("preempted", 0.03),
    ("interrupted", 0.02),
)
_NCCL = [
    "[rank{rank}]:[E ProcessGroupNCCL.cpp:1182] [Rank {rank}] Watchdog caught collective operation "
    "timeout: WorkNCCL(SeqNum={seq}, OpType=ALLREDUCE, NumelIn={numel}, NumelOut={numel}, "
    "Timeout(ms)=600000) ran for {ms} milliseconds before timing out.",
    "[rank{rank}]:[E ProcessGroupNCCL.cpp:577] [Rank {rank}] Some NCCL operations have failed or "
    "timed out. Due to the asynchronous nature of CUDA kernels, subsequent GPU operations might "
    "run on corrupted/incomplete data.",
    "terminate called after throwing an instance of 'c10::DistBackendError'",
]
_IB = [
    "{host}:{pid}:{tid} [{gpu}] NET/IB : Got completion from peer 10.1.{a}.{b}<{port}> with error "
    "12, opcode 0, len 0, vendor err 129 (Recv)",
    "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/"
    "ProcessGroupNCCL.cpp:1275, remote process exited or there was a network error, NCCL version "
    "2.18.1",
]
_TRACE = [
    "Traceback (most recent call last):",
    f'  File "{ROOT}/metaseq/metaseq/cli/train.py", line 712, in <module>',
    "    cli_main()",
    f'  File "{ROOT}/metaseq/metaseq/trainer.py", line 1043, in train_step',
    "    {code}",
    "{exc}",
]
# outcome -> templates: exit status, stderr lines, and how the end came about.
TEMPLATES: dict[str, list[dict[str, Any]]] = {
    "communication": [
        {"rc": -6, "lines": _NCCL, "tail": "nccl"},
        {"rc": 1, "lines": _IB},
        {
            "rc": 1,
            "lines": [
                "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/"
                "c10d/ProcessGroupNCCL.cpp:1275, unhandled system error (run with NCCL_DEBUG=INFO "
                "for details), NCCL version 2.18.1",
                "ncclSystemError: System call (e.g. socket, malloc) or external library call "
                "failed or device error.",
            ],
        },
        {
            "rc": 1,
            "startup": True,
            "lines": [
                "RuntimeError: Timed out initializing process group in store based barrier on "
                "rank: {rank}, for key: store_based_barrier_key:1 (world_size={world}, "
                "worker_count={workers}, timeout=0:30:00)"
            ],
        },
    ],
    "gpu_hardware": [
        {
            "rc": 1,
            "fault": "ecc",
            "lines": [
                "RuntimeError: CUDA error: uncorrectable ECC error encountered",
                "CUDA kernel errors might be asynchronously reported at some other API call, so "
                "the stacktrace below might be incorrect.",
            ],
        },
        {"rc": 1, "fault": 79, "lines": ["RuntimeError: CUDA error: unspecified launch failure"]},
        {"rc": -6, "fault": 79, "override": True, "tail": "nccl", "lines": _NCCL},
        {"rc": 1, "fault": 74, "override": True, "lines": _IB},
        {
            "rc": 1,
            "lines": [
                "RuntimeError: CUDA error: an illegal memory access was encountered",
                "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.",
            ],
        },
        {
            "rc": 1,
            "startup": True,
            "lines": ["RuntimeError: CUDA error: no CUDA-capable device is detected"],
        },
    ],
    "gpu_oom": [
        {
            "rc": 1,
            "lines": [
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {alloc} GiB. GPU "
                "{gpu} has a total capacity of 79.15 GiB of which {free} MiB is free. Including "
                "non-PyTorch memory, this process has 78.{x} GiB memory in use."
            ],
        }
    ],
    "numerical": [
        {
            "rc": 1,
            "nan": True,
            "lines": [
                "FloatingPointError: Minimum loss scale reached (0.0001). Your loss is probably "
                "exploding. Try lowering the learning rate, using gradient clipping or "
                "increasing the batch size."
            ],
        }
    ],
    "python_exception": [
        {
            "rc": 1,
            "lines": _TRACE,
            "code": "state = self.optimizer.state_dict()['loss_scale']",
            "exc": "KeyError: 'loss_scale'",
        },
        {
            "rc": 1,
            "lines": _TRACE,
            "code": "assert sample['net_input']['src_tokens'].size(0) == self.batch_size",
            "exc": "AssertionError: expected 1024 sequences, got {workers}",
        },
        {
            "rc": 1,
            "lines": _TRACE,
            "code": "batch = torch.stack(items)",
            "exc": "RuntimeError: stack expects each tensor to be equal size, but got [2048] at "
            "entry 0 and [2047] at entry {gpu}",
        },
    ],
    "data_io": [
        {
            "rc": 1,
            "lines": [
                "OSError: [Errno 5] Input/output error: "
                f"'{ROOT}/data/pile_commoncrawl/shard_{{n:05d}}.jsonl'"
            ],
        },
        {"rc": 1, "lines": ["OSError: [Errno 116] Stale file handle"]},
        {
            "rc": 1,
            "lines": [
                "RuntimeError: [enforce fail at inline_container.cc:595] . PytorchStreamWriter "
                "failed writing file data/{n}: file write failed"
            ],
        },
        {
            "rc": 1,
            "startup": True,
            "lines": [
                "FileNotFoundError: [Errno 2] No such file or directory: "
                f"'{ROOT}/checkpoints/checkpoint_last/checkpoint_last-model_part-{{gpu}}-"
                "shard{rank}.pt'"
            ],
        },
    ],
    "fatal_signal": [
        {
            "rc": -11,
            "lines": [
                "Fatal Python error: Segmentation fault",
                "",
                "Thread 0x00007f3a{hex} (most recent call first):",
                '  File "/shared/opt/venv/lib/python3.10/site-packages/torch/cuda/streams.py", '
                "line 94 in synchronize",
            ],
        },
        {"rc": -7, "lines": ["Bus error (core dumped)"]},
    ],
    "preempted": [
        {
            "rc": -15,
            "forwarded": "SIGTERM",
            "lines": [
                "slurmstepd: error: *** STEP {job}.{jobstep} ON {host} CANCELLED AT {when} DUE TO "
                "PREEMPTION ***"
            ],
        }
    ],
    "interrupted": [
        {
            "rc": -2,
            "forwarded": "SIGINT",
            "lines": _TRACE[:4] + ["    loss.backward()", "KeyboardInterrupt"],
        }
    ],
    "hung": [{"rc": -9, "killed_after_grace": True, "lines": []}],
    "lost": [{"rc": -9, "lines": []}],  # its wrapper died with it: nothing classified
    "completed": [{"rc": 0, "lines": []}],
}
XIDS = {
    79: "pid={pid}, name=python, GPU has fallen off the bus.",
    74: "pid={pid}, name=python, NVLink: fatal error detected on link {gpu}(0x0, 0x0, 0x10000, "
    "0x0, 0x0, 0x0, 0x0)",
    48: "pid={pid}, name=python, An uncorrectable double bit error (DBE) has been detected on GPU "
    "in the framebuffer at partition {gpu}, subpartition 0.",
    13: "pid={pid}, name=python, Graphics SM Warp Exception on (GPC 1, TPC {gpu}, SM 0): Out Of "
    "Range Address",
}
NOTES = (
    "Restarted from checkpoint_{ckpt} after the NCCL timeout; {host} drained and replaced",
    "Loss spike around step {step}; watching it before touching the LR",
    "The spike at {step} recovered on its own within ~200 steps",
    "Lowered the learning rate to {lr:.2e} after the divergence; relaunching from checkpoint_{ckpt}",
    "{host}: GPU {gpu} throwing ECC errors, ticket filed with the cluster team",
    "{host} back from repair, returned to the pool",
    "Throughput down ~{pct}% since this morning; suspect a slow node, running the all-reduce test",
    "All-reduce test: {host} at {bw} GB/s against ~180 for the rest; excluded",
    "Skipping the {n} batches before step {step} that preceded the last blow-up",
    "Loss scale keeps hitting the floor; trying the attention softmax in fp32",
    "Cluster maintenance tonight 02:00-06:00 UTC; the job will be requeued after",
    "Preempted by a higher-priority job; requeued",
    "Validation perplexity at step {step}: {ppl:.2f}",
    "checkpoint_{ckpt} copied to cold storage ({tb:.1f} TB)",
    "Filesystem hiccup: the checkpoint write took {mins} min",
    "Reddit shard dedup done; the new data mix takes effect at the next relaunch",
    "Restart loop overnight: {k} crashes within an hour of each other",
    "Nobody was watching over the weekend: the job had been dead for hours",
    "Raised NCCL_IB_TIMEOUT to 22 after repeated IB completion errors",
    "Six dataloader workers per GPU now; data wait back to ~50 ms",
    "Hung at step {step}: no output for 30 min, logbook killed it",
    "Loss back on the pre-spike trend",
    "Reviewed the last {k} restarts: mostly NCCL timeouts, a few GPUs",
    "Few-shot evals on checkpoint_{ckpt} in line with the scaling law",
    "Only the LR schedule is new in this major; weight decay unchanged",
    "Step time {st:.1f} s, about {tf:.0f} TFLOP/s per GPU",
    "Rolled back to {commit} after the illegal memory access crashes",
    "Dropped OpenSubtitles from the mix: too many repeated lines",
    "Handing over to the night shift; the run is stable",
    "{host} kept failing the NCCL test after the reboot; drained for good",
)
PACKAGES = """absl-py 2.1.0 accelerate 0.26.1 aiohttp 3.9.1 aiosignal 1.3.1 antlr4-python3-runtime
4.9.3 appdirs 1.4.4 async-timeout 4.0.3 attrs 23.2.0 bitarray 2.9.2 black 23.12.1 boto3 1.34.19
botocore 1.34.19 cachetools 5.3.2 certifi 2023.11.17 cffi 1.16.0 charset-normalizer 3.3.2 click
8.1.7 cloudpickle 3.0.0 cmake 3.28.1 colorama 0.4.6 contourpy 1.2.0 cycler 0.12.1 cython 3.0.8
datasets 2.16.1 decorator 5.1.1 dill 0.3.7 docker-pycreds 0.4.0 einops 0.7.0 exceptiongroup 1.2.0
executing 2.0.1 fairscale 0.4.13 filelock 3.13.1 flake8 7.0.0 fonttools 4.47.2 frozenlist 1.4.1
fsspec 2023.10.0 gitdb 4.0.11 gitpython 3.1.41 google-auth 2.26.2 google-auth-oauthlib 1.2.0 grpcio
1.60.0 h5py 3.10.0 hjson 3.1.0 huggingface-hub 0.20.2 hydra-core 1.3.2 idna 3.6 importlib-metadata
7.0.1 iniconfig 2.0.0 iopath 0.1.10 ipython 8.20.0 jedi 0.19.1 jinja2 3.1.3 jmespath 1.0.1 joblib
1.3.2 jsonlines 4.0.0 kiwisolver 1.4.5 lit 17.0.6 logbook 0.1.0 markdown 3.5.2 markupsafe 2.1.3
matplotlib 3.8.2 matplotlib-inline 0.1.6 mccabe 0.7.0 metaseq 0.0.1 mpmath 1.3.0 msgpack 1.0.7
multidict 6.0.4 multiprocess 0.70.15 mypy-extensions 1.0.0 networkx 3.2.1 ninja 1.11.1.1 nltk 3.8.1
numpy 1.26.3 nvidia-cublas-cu12 12.1.3.1 nvidia-cuda-cupti-cu12 12.1.105 nvidia-cuda-nvrtc-cu12
12.1.105 nvidia-cuda-runtime-cu12 12.1.105 nvidia-cudnn-cu12 8.9.2.26 nvidia-cufft-cu12 11.0.2.54
nvidia-curand-cu12 10.3.2.106 nvidia-cusolver-cu12 11.4.5.107 nvidia-cusparse-cu12 12.1.0.106
nvidia-nccl-cu12 2.18.1 nvidia-nvjitlink-cu12 12.3.101 nvidia-nvtx-cu12 12.1.105 oauthlib 3.2.2
omegaconf 2.3.0 packaging 23.2 pandas 2.1.4 parso 0.8.3 pathspec 0.12.1 pexpect 4.9.0 pillow 10.2.0
pip 23.3.2 platformdirs 4.1.0 pluggy 1.3.0 portalocker 2.8.2 prompt-toolkit 3.0.43 protobuf 4.23.4
psutil 5.9.7 ptyprocess 0.7.0 pure-eval 0.2.2 py-cpuinfo 9.0.0 pyarrow 14.0.2 pyasn1 0.5.1
pyasn1-modules 0.3.0 pybind11 2.11.1 pycodestyle 2.11.1 pycparser 2.21 pydantic 2.5.3 pydantic-core
2.14.6 pyflakes 3.2.0 pygments 2.17.2 pyparsing 3.1.1 pytest 7.4.4 python-dateutil 2.8.2 pytz
2023.3.post1 pyyaml 6.0.1 regex 2023.12.25 requests 2.31.0 requests-oauthlib 1.3.1 rsa 4.9
s3transfer 0.10.0 sacrebleu 2.4.0 safetensors 0.4.1 scikit-learn 1.3.2 scipy 1.11.4 sentencepiece
0.1.99 sentry-sdk 1.39.2 setproctitle 1.3.3 setuptools 69.0.3 six 1.16.0 smmap 5.0.1 stack-data
0.6.3 sympy 1.12 tabulate 0.9.0 tensorboard 2.15.1 tensorboard-data-server 0.7.2 tensorboardx
2.6.2.2 threadpoolctl 3.2.0 tiktoken 0.5.2 tokenizers 0.15.0 tomli 2.0.1 torch 2.1.2 tqdm 4.66.1
traitlets 5.14.1 transformers 4.36.2 triton 2.1.0 typing-extensions 4.9.0 tzdata 2023.4 urllib3
2.1.0 wandb 0.16.2 wcwidth 0.2.13 werkzeug 3.0.1 wheel 0.42.0 xxhash 3.4.1 yarl 1.9.4 zipp 3.17.0"""
# OPT-175B's corpora (RoBERTa's, a subset of the Pile, PushShift.io Reddit): weight, tokens.
MIX = {
    "bookcorpus": (0.02, 1.1e9),
    "cc_stories": (0.05, 5.7e9),
    "cc_news": (0.08, 8.8e9),
    "wikipedia_en": (0.02, 3.9e9),
    "pile_commoncrawl": (0.26, 49.6e9),
    "pile_dm_mathematics": (0.02, 7.5e9),
    "pile_gutenberg": (0.03, 3.6e9),
    "pile_hackernews": (0.01, 1.2e9),
    "pile_opensubtitles": (0.02, 2.8e9),
    "pile_openwebtext2": (0.13, 17.0e9),
    "pile_uspto": (0.04, 4.2e9),
    "pile_wikipedia": (0.02, 3.6e9),
    "pushshift_reddit": (0.30, 66.8e9),
}
# What a hand relaunch changes: after a crash loop, and after a hand stop (in turn).
AFTER_LOOP = ("clip", "softmax", "lr")
AFTER_STOP = ("mix_reddit", "nccl", "workers", "mix_subtitles", "code", "mix_news", "lr")
DIFF = """diff --git a/metaseq/optim/dynamic_loss_scaler.py b/metaseq/optim/dynamic_loss_scaler.py
index 3f1c2a9..8b7d4e1 100644
--- a/metaseq/optim/dynamic_loss_scaler.py
+++ b/metaseq/optim/dynamic_loss_scaler.py
@@ -52,7 +52,7 @@ class DynamicLossScaler(object):
         self.loss_scale = init_scale
         self.scale_factor = scale_factor
-        self.scale_window = 2000
+        self.scale_window = 256
         self.tolerance = tolerance
"""


# ------------------------------------------------------------------------------------------------
# The plan: every attempt's outcome, steps, hosts and times, decided before anything is written.


def plan(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Attempts of the run, oldest first, as dicts (internal fields and the attempts row's)."""
    import random

    import numpy as np

    rnd = random.Random(args.seed)
    rng = np.random.default_rng(args.seed)
    n = args.attempts
    bumps = _major_bumps(n, rnd)
    outcome, loops = _outcomes(n, bumps, rnd)
    attempts: list[dict[str, Any]] = []
    for i in range(n):
        choices = TEMPLATES[outcome[i]]
        starts = [x for x in choices if x.get("startup")]  # fails before its first step
        others = [x for x in choices if not x.get("startup")]
        t = starts[0] if starts and rnd.random() < 0.12 else rnd.choice(others)
        attempts.append(
            {
                "n": i,
                "attempt_id": f"{rnd.getrandbits(128):032x}",
                "outcome": outcome[i],
                "template": t,
                "stepping": not t.get("startup"),
                "loop": loops.get(i),
            }
        )
    _allocate_steps(attempts, args.steps, rnd, rng)
    _label(attempts, bumps)
    _hosts(attempts, args.hosts, rnd)
    _verdicts(attempts, root, rnd)
    _times(attempts, args, rnd, rng)
    _settings(attempts, args, rnd)
    for a in attempts:  # Slurm's line names the time, known only now
        if a["outcome"] == "preempted":
            _retime(a, root)
    return attempts


def _retime(a: dict[str, Any], root: Path) -> None:
    from logbook.store import layout

    when = f"{a['end'] - timedelta(seconds=3):%Y-%m-%dT%H:%M:%S}"
    stderr = layout.attempt_log_dir(root, RUN, a["attempt_id"]) / "stderr.log"
    stderr.write_text(stderr.read_text().replace(_WHEN, when))
    a["tail"] = [x.replace(_WHEN, when) for x in a["tail"]]
    evidence = a["verdict"]["evidence"]
    evidence["lines"] = [x.replace(_WHEN, when) for x in evidence.get("lines", [])]


def _major_bumps(n: int, rnd: Any) -> list[int]:
    """Indices of the attempts that start a new major (a hand relaunch with changes)."""
    count = max(1, round(n / 17)) - 1
    if count <= 0 or n < 8:
        return []
    for _ in range(10_000):
        picks = sorted(rnd.sample(range(4, n - 1), count))
        if all(b - a >= 4 for a, b in zip(picks, picks[1:], strict=False)):
            return picks
    return []


def _outcomes(n: int, bumps: list[int], rnd: Any) -> tuple[list[str], dict[int, int]]:
    names, weights = zip(*OUTCOMES, strict=True)
    out = [rnd.choices(names, weights)[0] for _ in range(n)]
    out[-1] = "completed"
    loops: dict[int, int] = {}  # attempt -> its place in a crash loop (0, 1, 2: the one given up)
    for b in bumps:
        if rnd.random() < 0.5:
            for k, j in enumerate(range(b - 3, b)):
                out[j] = "numerical"
                loops[j] = k
        else:
            out[b - 1] = "interrupted"
    return out, loops


def _allocate_steps(attempts: list[dict[str, Any]], steps: int, rnd: Any, rng: Any) -> None:
    """Checkpoints each attempt writes, steps it runs past its last one; steps reached = `steps`."""
    full = steps // CHECKPOINT_EVERY
    final = attempts[-1]
    eligible = [a for a in attempts if a["stepping"] and a["loop"] is None]
    weights = rng.lognormal(0.0, 0.9, len(eligible))
    quota = weights / weights.sum() * full
    counts = [int(q) for q in quota]
    for k in sorted(range(len(eligible)), key=lambda k: counts[k] - quota[k])[: full - sum(counts)]:
        counts[k] += 1
    for a, c in zip(eligible, counts, strict=True):
        a["ckpts"] = c
    if full and not final.get("ckpts"):
        donor = max(eligible, key=lambda a: a.get("ckpts", 0))
        donor["ckpts"] -= 1
        final["ckpts"] = 1
    reached, loop_extra = 0, 0
    for a in attempts:
        a.setdefault("ckpts", 0)
        a["resumed"] = reached
        if a is final:
            a["extra"] = steps - reached - a["ckpts"] * CHECKPOINT_EVERY
        elif not a["stepping"]:
            a["extra"] = 0
        elif a["loop"] is not None:
            loop_extra = rnd.randint(200, 900) if a["loop"] == 0 else loop_extra
            a["extra"] = loop_extra - (0, 3, 1)[a["loop"]]
        else:
            a["extra"] = rnd.randint(1, CHECKPOINT_EVERY - 1)
        a["ran"] = a["ckpts"] * CHECKPOINT_EVERY + a["extra"]
        a["first_step"] = reached + 1 if a["ran"] else None
        a["last_step"] = reached + a["ran"] if a["ran"] else None
        a["checkpoints"] = [reached + CHECKPOINT_EVERY * (k + 1) for k in range(a["ckpts"])]
        if a is final and a["extra"]:
            a["checkpoints"].append(steps)  # the final save
        reached += a["ckpts"] * CHECKPOINT_EVERY


def _label(attempts: list[dict[str, Any]], bumps: list[int]) -> None:
    major, minor = 1, 0
    for i, a in enumerate(attempts):
        if i in bumps:
            major, minor = major + 1, 0
        elif i:
            minor += 1
        a["major"], a["label"] = major, f"{major}.{minor:02d}"
        a["major_start"] = i == 0 or i in bumps
        prev = attempts[i - 1] if i else None
        a["parent"] = prev
        a["parent_id"] = prev["attempt_id"] if prev else None
        a["parent_label"] = prev["label"] if prev else None


def _hosts(attempts: list[dict[str, Any]], hosts: int, rnd: Any) -> None:
    """Each launch's hosts; a host whose GPU failed is drained and the next spare comes in."""
    pool = [f"opt-{i:03d}" for i in range(hosts + max(1, hosts // 8))]
    alloc, spares, drained = pool[:hosts], pool[hosts:], []
    for a in attempts:
        a["hosts"] = sorted(alloc)
        a["leader"] = a["hosts"][0]
        a["origin"] = rnd.choice(a["hosts"])
        a["gpu"] = rnd.randrange(INVENTORY_GPUS)
        if a["outcome"] == "gpu_hardware" and len(alloc) > 1:
            alloc.remove(a["origin"])
            drained.append(a["origin"])
            alloc.append(spares.pop(0) if spares else drained.pop(0))


_WHEN = "{when}"  # filled in by _retime


def _fill(text: str, a: dict[str, Any], rnd: Any) -> str:
    hosts = len(a["hosts"])
    return text.format(
        rank=rnd.randrange(hosts * INVENTORY_GPUS),
        seq=rnd.randint(10_000, 9_000_000),
        numel=rnd.choice((1, 4096, 50331648)),
        ms=rnd.randint(600_001, 600_090),
        host=a["origin"],
        pid=rnd.randint(20_000, 90_000),
        tid=rnd.randint(20_000, 90_000),
        gpu=a["gpu"],
        a=rnd.randint(0, 15),
        b=rnd.randint(2, 250),
        port=rnd.randint(40_000, 60_000),
        world=hosts * INVENTORY_GPUS,
        workers=hosts * INVENTORY_GPUS - rnd.randint(1, 8),
        alloc=f"{rnd.uniform(0.5, 4):.2f}",
        free=rnd.randint(200, 900),
        x=rnd.randint(10, 99),
        n=rnd.randint(0, 30_000),
        hex=f"{rnd.getrandbits(32):08x}",
        job=a.get("job", 0),
        jobstep=a.get("restart_count", 0),
        when=_WHEN,
        code=a["template"].get("code", ""),
        exc=a["template"].get("exc", "").format(workers=hosts * 8 - 8, gpu=a["gpu"]),
    )


def _verdicts(attempts: list[dict[str, Any]], root: Path, rnd: Any) -> None:
    """Raw logs for each attempt, the verdict logbook draws from them, the restart decision."""
    from logbook.forensics.classify import classify_end
    from logbook.store import layout
    from logbook.supervisor.policy import History, Outcome, RestartPolicy, decide
    from logbook.telemetry.kernel import parse_xid

    policy = RestartPolicy(max_restarts=MAX_RESTARTS)
    history, best, job, session = History(), None, 4_211_000, 0
    for a in attempts:
        t = a["template"]
        if a["n"] == 0 or attempts[a["n"] - 1]["decision"] != "restart":
            history, best, job, session = History(), None, job + rnd.randint(1, 400), session + 1
            a["user"] = rnd.choice(USERS)
        else:
            a["user"] = attempts[a["n"] - 1]["user"]
        a["job"], a["session"], a["restart_count"] = job, session, history.restarts
        a["launch"] = f"slurm:{job}.{history.restarts}:0"
        logs = layout.attempt_log_dir(root, RUN, a["attempt_id"])
        logs.mkdir(parents=True, exist_ok=True)
        last = a["last_step"]
        out = [
            f"step={s} loss={_loss(s, 150_000):.4f} lr=1.2e-04 grad_norm=0.31 loss_scale=8"
            for s in range(max(a["first_step"] or 1, (last or 0) - 9), (last or 0) + 1)
        ]
        if t.get("nan") and out:
            out[-1] = f"step={last} loss=nan lr=1.2e-04 grad_norm=inf loss_scale=0.0001"
        err = [_fill(line, a, rnd) for line in t["lines"]]
        (logs / "stdout.log").write_text("".join(f"{x}\n" for x in out))
        (logs / "stderr.log").write_text("".join(f"{x}\n" for x in err))
        a["tail"] = [f"stdout: {x}" for x in out[-10:]] + [f"stderr: {x}" for x in err[-10:]]
        a["faults"] = []
        if "fault" in t:
            a["faults"] = [_fault(a, t["fault"], rnd, parse_xid)]
        if a["outcome"] == "lost":
            a.update(status="lost", decision=None, verdict=None)
            continue
        v = classify_end(
            returncode=t["rc"],
            log_paths=[logs / "stdout.log", logs / "stderr.log"],
            forwarded_signal=t.get("forwarded"),
            under_scheduler=True,
            killed_after_grace=bool(t.get("killed_after_grace")),
        )
        verdict = {
            "status": v.status,
            "crash_class": v.crash_class,
            "retryable": v.retryable,
            "rule": v.rule,
            "summary": v.summary,
            "evidence": v.evidence,
        }
        if t.get("override"):  # session.finish: a hardware fault, then a crash, is the GPU's
            brief = a["faults"][0]["brief"]
            verdict.update(
                crash_class="gpu_hardware",
                retryable=True,
                rule="hardware-fault",
                summary=f"{brief}, then: {v.summary}"[:500],
                evidence={
                    **v.evidence,
                    "hardware_faults": [brief],
                    "class_from_output": v.crash_class,
                },
            )
        status = "hung" if a["outcome"] == "hung" else verdict["status"]
        progressed = last is not None and (best is None or last > best)
        best = last if progressed else best
        outcome = Outcome(
            status,
            verdict["crash_class"] if status == "crashed" else None,
            True if status == "hung" else verdict["retryable"],
            f"{status}:{verdict['crash_class']}:{verdict['rule']}",
            progressed,
            t.get("forwarded") is not None,
        )
        d = decide(policy, outcome, history)
        a.update(status=status, verdict=verdict, decision=d.action, reason=d.reason)
        a["delay_s"], a["retryable"] = d.delay_s, outcome.retryable


def _fault(a: dict[str, Any], kind: Any, rnd: Any, parse_xid: Any) -> dict[str, Any]:
    """A hardware_fault event's message and data, as the sampler writes them."""
    if kind == "ecc":
        new = rnd.randint(1, 4)
        text = f"GPU {a['gpu']}: uncorrected ECC errors rose from 0 to {new}"
        data = {"gpu_index": a["gpu"], "counter": "ecc_uncorrected", "old": 0, "new": new}
        return {"brief": text, "message": text, "data": data}
    return _xid(a, kind, rnd, parse_xid)


def _xid(a: dict[str, Any], xid: int, rnd: Any, parse_xid: Any) -> dict[str, Any]:
    bus = ("07", "0b", "48", "4c", "88", "8b", "c8", "cb")[a["gpu"]]
    text = XIDS[xid].format(pid=rnd.randint(20_000, 90_000), gpu=a["gpu"])
    x = parse_xid(f"[{rnd.uniform(1e5, 9e6):.6f}] NVRM: Xid (PCI:0000:{bus}:00): {xid}, {text}")
    message = f"Xid {x.xid} on {x.device}: {x.text}"
    data = {
        "xid": x.xid,
        "device": x.device,
        "text": x.text,
        "likely_cause": x.likely_cause,
        "line": x.line,
    }
    return {"brief": message[:300], "message": message[:500], "data": data}


def _times(attempts: list[dict[str, Any]], args: argparse.Namespace, rnd: Any, rng: Any) -> None:
    """Start-ups, ends and downtimes in seconds; the step pace then fills `--days`."""
    import math

    for a in attempts:
        a["startup_s"] = float(min(2400, max(120, rng.lognormal(math.log(600), 0.4))))
        t = a["template"]
        if not a["stepping"]:
            a["tail_s"] = rnd.uniform(60, 1800)
        elif a["outcome"] == "hung":
            a["tail_s"] = HANG_TIMEOUT_S + rnd.uniform(0, 8) + GRACE_S
        elif t.get("tail") == "nccl":
            a["tail_s"] = 600 + rnd.uniform(1, 30)
        elif a["outcome"] == "completed":
            a["tail_s"] = rnd.uniform(60, 300)
        elif a["outcome"] == "lost":
            a["tail_s"] = rnd.uniform(0, 120)
        else:
            a["tail_s"] = rnd.uniform(2, 60)
        nxt = attempts[a["n"] + 1] if a["n"] + 1 < len(attempts) else None
        if nxt is None:
            a["down_s"] = 0.0
        elif nxt["major_start"]:
            a["down_s"] = rnd.uniform(4, 30) * 3600
        elif a["decision"] == "restart":
            a["down_s"] = a["delay_s"] + float(rng.lognormal(math.log(90), 0.5))
        elif a["outcome"] == "lost":
            a["down_s"] = rnd.uniform(1, 9) * 3600
        elif a["outcome"] == "preempted":
            a["down_s"] = rnd.uniform(0.25, 4) * 3600
        else:
            a["down_s"] = rnd.uniform(0.5, 6) * 3600
    span = args.days * 86400.0
    fixed = sum(a["startup_s"] + a["tail_s"] + a["down_s"] for a in attempts)
    scale = min(1.0, 0.4 * span / fixed)
    pace = {m: rnd.uniform(0.95, 1.05) for m in {a["major"] for a in attempts}}
    work = sum(a["ran"] * pace[a["major"]] for a in attempts) or 1
    base = (span - fixed * scale) / work
    start = T0
    for a in attempts:
        for k in ("startup_s", "tail_s", "down_s"):
            a[k] *= scale
        a["scale"] = scale
        a["step_s"] = base * pace[a["major"]] * rnd.uniform(0.99, 1.01)
        a["start"] = start
        if a["ran"]:
            a["first_step_time"] = start + timedelta(seconds=a["startup_s"])
            a["last_step_time"] = a["first_step_time"] + timedelta(
                seconds=(a["ran"] - 1) * a["step_s"]
            )
            a["end"] = a["last_step_time"] + timedelta(seconds=a["tail_s"])
        else:
            a["first_step_time"] = a["last_step_time"] = None
            a["end"] = start + timedelta(seconds=a["startup_s"] * 0.3 + a["tail_s"])
        a["hung_s"] = (a["tail_s"] - GRACE_S * scale) if a["outcome"] == "hung" else None
        start = a["end"] + timedelta(seconds=a["down_s"])


def _settings(attempts: list[dict[str, Any]], args: argparse.Namespace, rnd: Any) -> None:
    """Config, command line, code, packages, environment and data mix of each attempt."""
    config: dict[str, Any] = {
        "model": {
            "arch": "transformer_lm_megatron",
            "params": "175B",
            "n_layers": 96,
            "d_model": 12288,
            "n_heads": 96,
            "seq_len": 2048,
            "vocab_size": 50272,
        },
        "train": {"tokens_per_step": TOKENS_PER_STEP, "batch_size": 1024, "max_steps": args.steps},
        "optimization": {
            "lr": 1.2e-4,
            "lr_scheduler": "polynomial_decay",
            "end_lr_ratio": 0.1,
            "warmup_steps": min(2000, max(1, args.steps // 50)),
            "clip_norm": 1.0,
            "adam_betas": [0.9, 0.95],
            "adam_eps": 1e-8,
            "weight_decay": 0.1,
        },
        "precision": {"fp16": True, "init_loss_scale": 4, "min_loss_scale": 1e-4},
        "checkpoint": {"save_interval_steps": CHECKPOINT_EVERY, "dir": f"{ROOT}/checkpoints"},
        "distributed": {
            "world_size": args.hosts * INVENTORY_GPUS,
            "tensor_parallel": 8,
            "ddp_backend": "fully_sharded",
        },
        "data": {"mix": f"{ROOT}/configs/mix.yaml", "num_workers": 4},
    }
    mix = {
        k: {"weight": w, "tokens": t, "paths": [f"{ROOT}/data/{k}/"], "fingerprints": {}}
        for k, (w, t) in MIX.items()
    }
    for k, spec in mix.items():
        spec["fingerprints"] = {spec["paths"][0]: _fingerprint(k, 0, rnd)}
    env = {"NCCL_IB_TIMEOUT": "18"}
    packages = dict(zip(PACKAGES.split()[::2], PACKAGES.split()[1::2], strict=True))
    commit, seed, loops, stops = f"{rnd.getrandbits(160):040x}", 1, 0, 0
    for a in attempts:
        if a["major_start"] and a["n"]:
            prev = attempts[a["n"] - 1]
            if prev["loop"] is not None:
                what = AFTER_LOOP[min(loops, len(AFTER_LOOP) - 1)]
                loops += 1
                config["optimization"]["lr"] = round(config["optimization"]["lr"] * 0.8, 9)
                seed += 1
            else:
                what = AFTER_STOP[stops % len(AFTER_STOP)]
                stops += 1
            if what == "clip":
                config["optimization"]["clip_norm"] = 0.3
            elif what == "softmax":
                config["precision"]["softmax_fp32"] = True
            elif what == "lr":
                config["optimization"]["lr"] = round(config["optimization"]["lr"] * 0.9, 9)
            elif what == "workers":
                config["data"]["num_workers"] = 6
            elif what == "nccl":
                env["NCCL_IB_TIMEOUT"] = "22"
                packages["nvidia-nccl-cu12"] = "2.19.3"
                packages["torch"] = "2.2.0"
                packages["triton"] = "2.2.0"
            elif what == "mix_reddit":
                mix = json.loads(json.dumps(mix))
                mix["pushshift_reddit"].update(weight=0.24, tokens=52.1e9)
                path = mix["pushshift_reddit"]["paths"][0]
                mix["pushshift_reddit"]["fingerprints"] = {path: _fingerprint("reddit", 1, rnd)}
                mix["pile_commoncrawl"]["weight"] = 0.32
            elif what == "mix_subtitles":
                mix = {k: v for k, v in mix.items() if k != "pile_opensubtitles"}
                mix["cc_stories"]["weight"] = 0.07
            elif what == "mix_news":
                mix = json.loads(json.dumps(mix))
                mix["cc_news"]["weight"], mix["pile_openwebtext2"]["weight"] = 0.1, 0.11
            if what == "code" or rnd.random() < 0.5:
                commit = f"{rnd.getrandbits(160):040x}"
        a["config"] = json.loads(json.dumps(config))
        a["command"] = [*COMMAND, "--seed", str(seed), "--save-dir", f"{ROOT}/checkpoints"]
        a["mix"], a["commit"], a["packages"] = mix, commit, dict(packages)
        a["env_extra"] = dict(env)
        a["dirty"] = a["loop"] == 1  # a hot fix tried in the middle of a crash loop


def _fingerprint(name: str, version: int, rnd: Any) -> dict[str, Any]:
    return {
        "kind": "dir",
        "files": rnd.randint(200, 4000),
        "size": rnd.randint(10**11, 10**12),
        "mtime": f"2025-1{version}-0{rnd.randint(1, 9)}T12:00:00+00:00",
        "hash": f"sha256:{rnd.getrandbits(256):064x}",
        "method": "listing",
        "took_s": round(rnd.uniform(0.5, 3), 4),
    }


def _loss(step: Any, steps: int) -> Any:
    """The run's loss curve without noise: 11 at the start, about 2.6 at the end (150k steps)."""
    x = step * (150_000 / steps)
    return 1.9 + 9.1 * (1 + x / 300) ** -0.42


# ------------------------------------------------------------------------------------------------
# Writing the store.


def build(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Write the store; returns what it holds and how long each part took."""
    import resource

    from logbook.store import Store

    took: dict[str, float] = {}
    t = time.perf_counter()
    store = Store.open(root, create=True)
    attempts = plan(args, root)
    took["plan_and_logs"] = time.perf_counter() - t
    t = time.perf_counter()
    store.write("runs", RUN, [_run_row(attempts)])
    store.write("attempts", RUN, [r for a in attempts for r in _attempt_rows(a)])
    store.write("nodes", RUN, [r for a in attempts for r in _node_rows(a)])
    took["attempts_nodes"] = time.perf_counter() - t
    t = time.perf_counter()
    snapshot_rows = _write_snapshots(root, attempts)
    took["snapshots"] = time.perf_counter() - t
    t = time.perf_counter()
    metric_rows, found = _write_metrics(root, attempts, args)
    took["metrics"] = time.perf_counter() - t
    t = time.perf_counter()
    events = [e for a in attempts for e in _attempt_events(a, args)] + found
    events += _notes(attempts, args)
    events.sort(key=lambda e: e["time"])
    store.write("events", RUN, events)
    took["events"] = time.perf_counter() - t
    t = time.perf_counter()
    samples = _write_samples(root, attempts, args)
    took["samples"] = time.perf_counter() - t
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    statuses: dict[str, int] = {}
    for a in attempts:
        key = a["verdict"]["crash_class"] if a["status"] == "crashed" else a["status"]
        statuses[key] = statuses.get(key, 0) + 1
    first, last = attempts[0]["start"], attempts[-1]["end"]
    return {
        "attempts": len(attempts),
        "majors": attempts[-1]["major"],
        "ends": dict(sorted(statuses.items(), key=lambda kv: -kv[1])),
        "span_days": (last - first).total_seconds() / 86400,
        "steps": attempts[-1]["last_step"],
        "steps_run": sum(a["ran"] for a in attempts),
        "step_s": statistics.median(a["step_s"] for a in attempts),
        "hosts": args.hosts,
        "gpus_per_host": args.gpus_per_host,
        "events": len(events),
        "event_kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "metric_rows": metric_rows,
        "sample_rows": samples,
        "snapshot_rows": snapshot_rows,
        "took_s": {k: round(v, 1) for k, v in took.items()},
        "writer_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        **describe(root),
    }


def _run_row(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    a = attempts[0]
    return {
        "created_at": a["start"],
        "host": a["leader"],
        "user": a["user"],
        "description": "OPT-175B, synthetic (benchmarks/chronicle_bench.py)",
    }


def _attempt_rows(a: dict[str, Any]) -> list[dict[str, Any]]:
    """The attempt's rows as the supervisor journals them: at its start, and at its end."""
    from logbook import __version__
    from logbook.exitcodes import signal_name

    pid = 10_000 + a["n"] * 37
    started = {
        "attempt_id": a["attempt_id"],
        "label": a["label"],
        "parent_id": a["parent_id"],
        "parent_label": a["parent_label"],
        "status": "running",
        "start_time": a["start"],
        "host": a["leader"],
        "user": a["user"],
        "pid": pid,
        "wrapper_pid": pid - 3,
        "command": a["command"],
        "cwd": f"{ROOT}/metaseq",
        "logbook_version": __version__,
        "restart_count": a["restart_count"],
        "recorded_at": a["start"],
    }
    if a["status"] == "lost":  # folded by the next `logbook run`: no end, no steps on record
        after = a["end"] + timedelta(seconds=a["down_s"])
        ended = {
            **started,
            "status": "lost",
            "end_time": a["end"],
            "duration_s": (a["end"] - a["start"]).total_seconds(),
            "recorded_at": after,
        }
        return [started, ended]
    v, rc = a["verdict"], a["template"]["rc"]
    sig = -rc if rc < 0 else None
    hung = a["status"] == "hung"
    last_ckpt = a["checkpoints"][-1] if a["checkpoints"] else None
    ended = {
        **started,
        "status": a["status"],
        "end_time": a["end"],
        "duration_s": (a["end"] - a["start"]).total_seconds(),
        "exit_code": None if sig else rc,
        "signal": sig,
        "signal_name": signal_name(sig),
        "forwarded_signal": a["template"].get("forwarded"),
        "crash_class": v["crash_class"] if a["status"] == "crashed" else None,
        "retryable": a["retryable"] if a["status"] != "completed" else None,
        "summary": f"hung: {v['summary']}" if hung else v["summary"],
        "rule": "hang-timeout" if hung else None if a["status"] == "completed" else v["rule"],
        "evidence": json.dumps(v["evidence"], default=str),
        "decision": a["decision"],
        "decision_reason": a["reason"],
        "hung_s": a["hung_s"],
        "first_step": a["first_step"],
        "last_step": a["last_step"],
        "first_step_time": a["first_step_time"],
        "last_step_time": a["last_step_time"],
        "resumed_from_step": a["resumed"] or None,
        "last_checkpoint_step": last_ckpt,
        "last_checkpoint_time": _step_time(a, last_ckpt) if last_ckpt else None,
        "last_output_time": a["end"] - timedelta(seconds=1) if a["ran"] else None,
        "recorded_at": a["end"] + timedelta(seconds=2),
    }
    if hung:
        ended["last_output_time"] = a["last_step_time"]
    return [started, ended]


def _step_time(a: dict[str, Any], step: int) -> datetime:
    return a["first_step_time"] + timedelta(seconds=(step - a["first_step"]) * a["step_s"])


def _node_rows(a: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    status = a["status"]
    v = a["verdict"] or {}
    # The other hosts see their collectives time out when one host fails.
    peers = f"NCCL collective timed out (ALLREDUCE, seq {a['n'] * 7919 + 1021}, after 600031 ms)"
    for rank, host in enumerate(a["hosts"]):
        jitter = timedelta(seconds=0.05 * (rank % 40))
        started = {
            "attempt_id": a["attempt_id"],
            "node": rank,
            "nodes": len(a["hosts"]),
            "launch": a["launch"],
            "host": host,
            "status": "running",
            "start_time": a["start"] + jitter,
            "pid": 10_000 + rank,
            "wrapper_pid": 9_990 + rank,
            "restart_count": a["restart_count"],
            "recorded_at": a["start"] + jitter,
        }
        end = a["end"] + jitter
        origin = host == a["origin"]
        ended = {
            **started,
            "status": status,
            "end_time": end,
            "duration_s": (end - started["start_time"]).total_seconds(),
            "recorded_at": end + timedelta(seconds=2),
        }
        if status == "crashed":
            ended.update(
                exit_code=1 if origin or a["template"]["rc"] > 0 else None,
                signal_name=None if origin or a["template"]["rc"] > 0 else "SIGABRT",
                crash_class=v["crash_class"] if origin else "communication",
                summary=v["summary"] if origin else peers,
                evidence=json.dumps(v["evidence"], default=str) if origin else None,
            )
        elif status != "lost":
            ended.update(exit_code=0 if status == "completed" else None, summary=v.get("summary"))
        rows += [started, ended]
    return rows


def _write_snapshots(root: Path, attempts: list[dict[str, Any]]) -> int:
    """Each attempt's launch snapshot: the leader's whole capture, every host's host and gpu rows."""
    import numpy as np
    import pyarrow as pa

    from logbook import schema
    from logbook.capture._row import make_row
    from logbook.store import layout
    from logbook.store.parts import write_part

    sch = schema.load("snapshots").arrow()
    directory = layout.run_dir(root, "snapshots", RUN)
    cols: dict[str, list[Any]] = {c: [] for c in sch.names}
    per_host: dict[str, list[dict[str, Any]]] = {}
    written = 0

    def flush() -> None:
        nonlocal written
        if not cols["kind"]:
            return
        arrays = {c: pa.array(v, sch.field(c).type) for c, v in cols.items() if c != "time"}
        stamps = np.array(cols["time"], dtype="datetime64[us]")
        arrays["time"] = pa.array(stamps, sch.field("time").type)
        write_part(directory, pa.table([arrays[c] for c in sch.names], schema=sch))
        written += len(cols["kind"])
        for v in cols.values():
            v.clear()

    for a in attempts:
        for host in a["hosts"]:
            if host not in per_host:
                per_host[host] = _host_rows(host)
            rows = [*per_host[host], make_row("host", "user", a["user"])]
            rows += _leader_rows(a) if host == a["leader"] else []
            stamp = _us(a["start"]) + 2_000_000 + int(host[-3:]) * 99_991
            for r in rows:
                cols["attempt_id"].append(a["attempt_id"])
                cols["time"].append(stamp)
                cols["kind"].append(r["kind"])
                cols["name"].append(r["name"])
                cols["value"].append(r["value"])
                cols["status"].append(r["status"])
                cols["detail"].append(r["detail"])
                cols["host"].append(host)
        if len(cols["kind"]) >= 250_000:
            flush()
    flush()
    return written


def _host_rows(host: str) -> list[dict[str, Any]]:
    """A host's `host` and `gpu` rows, as capture/hardware.py makes them (but the user)."""
    from logbook.capture._row import make_row

    n = int(host.split("-")[-1])
    rows = [
        make_row("host", "hostname", host),
        make_row("host", "os", "Linux-5.15.0-1051-azure-x86_64-with-glibc2.35"),
        make_row("host", "kernel", "5.15.0-1051-azure"),
        make_row("host", "cpu_model", "AMD EPYC 7V12 64-Core Processor"),
        make_row("host", "cpu_cores_logical", "96"),
        make_row("host", "cpu_cores_physical", "96"),
        make_row("host", "cpu_cores_usable", "96"),
        make_row("host", "memory_bytes", str(HOST_MEMORY)),
        make_row("gpu", "count", str(INVENTORY_GPUS)),
        make_row("gpu", "driver", DRIVER),
    ]
    for g in range(INVENTORY_GPUS):
        rows += [
            make_row("gpu", f"{g}.name", GPU_NAME),
            make_row("gpu", f"{g}.uuid", f"GPU-{n:08x}-{g:04x}-4c1e-9a7d-{n * 8 + g:012x}"),
            make_row("gpu", f"{g}.memory_mib", str(GPU_MEM_MIB)),
            make_row("gpu", f"{g}.pci_bus_id", f"0000000{g}:00:00.0"),
        ]
    return rows  # type: ignore[return-value]


def _leader_rows(a: dict[str, Any]) -> list[dict[str, Any]]:
    """The rest of the leader's snapshot: command, git, python, packages, env, launcher, config."""
    import hashlib

    from logbook.capture._row import make_row
    from logbook.capture.command import capture_command
    from logbook.capture.environment import capture_env
    from logbook.capture.launcher import capture_launcher
    from logbook.hparams import argv_params, flatten

    env = _env(a)
    rows: list[Any] = capture_command(a["command"], Path(f"{ROOT}/metaseq"))
    rows += [
        make_row("git", "commit", a["commit"]),
        make_row("git", "branch", "opt-175b"),
        make_row("git", "dirty", "true" if a["dirty"] else "false"),
        make_row("git", "diff", DIFF if a["dirty"] else ""),
        make_row("git", "untracked", "[]"),
        make_row("git", "remote", "git@github.com:example-org/metaseq.git"),
        make_row("git", "root", f"{ROOT}/metaseq"),
        make_row("python", "version", "3.10.13"),
        make_row("python", "executable", f"{ROOT}/venv/bin/python"),
        make_row("python", "implementation", "CPython"),
        make_row("python", "platform", "Linux-5.15.0-1051-azure-x86_64-with-glibc2.35"),
        make_row("python", "inspected_via", "command"),
    ]
    rows += [make_row("package", k, v) for k, v in sorted(a["packages"].items())]
    rows += capture_env(env)
    rows += capture_launcher(a["command"], env)
    rows += [
        make_row("config_file", "path", f"{ROOT}/configs/opt-175b.yaml"),
        make_row(
            "config_file", "sha256", hashlib.sha256(json.dumps(a["config"]).encode()).hexdigest()
        ),
    ]
    rows += [make_row("config", k, json.dumps(v)) for k, v in flatten(a["config"]).items()]
    rows += [make_row("arg", k, json.dumps(v)) for k, v in argv_params(a["command"]).items()]
    return rows


def _env(a: dict[str, Any]) -> dict[str, str]:
    hosts = len(a["hosts"])
    return {
        "CUDA_DEVICE_MAX_CONNECTIONS": "1",
        "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7",
        "HF_TOKEN": "hf_" + a["attempt_id"][:30],
        "HOME": f"/home/{a['user']}",
        "HOSTNAME": a["leader"],
        "LANG": "C.UTF-8",
        "LD_LIBRARY_PATH": "/usr/local/cuda-12.1/lib64:/opt/hpcx/nccl_rdma_sharp_plugin/lib",
        "LOGBOOK_ATTEMPT": a["label"],
        "LOGBOOK_ATTEMPT_ID": a["attempt_id"],
        "LOGBOOK_CHECKPOINT_DIR": f"{ROOT}/checkpoints",
        "LOGBOOK_RESTART_COUNT": str(a["restart_count"]),
        "LOGBOOK_RUN": RUN,
        "LOGBOOK_STORE": f"{ROOT}/.logbook",
        "LOGNAME": a["user"],
        "MASTER_ADDR": a["leader"],
        "MASTER_PORT": "29500",
        "NCCL_ASYNC_ERROR_HANDLING": "1",
        "NCCL_DEBUG": "WARN",
        "NCCL_IB_HCA": "mlx5_ib0,mlx5_ib1,mlx5_ib2,mlx5_ib3,mlx5_ib4,mlx5_ib5,mlx5_ib6,mlx5_ib7",
        "NCCL_SOCKET_IFNAME": "eth0",
        "NCCL_TOPO_FILE": "/opt/microsoft/ndv4-topo.xml",
        "OMP_NUM_THREADS": "12",
        "PATH": f"{ROOT}/venv/bin:/usr/local/cuda-12.1/bin:/usr/local/bin:/usr/bin:/bin",
        "PWD": f"{ROOT}/metaseq",
        "PYTHONPATH": f"{ROOT}/metaseq",
        "PYTHONUNBUFFERED": "1",
        "SHELL": "/bin/bash",
        "SLURM_CLUSTER_NAME": "opt",
        "SLURM_CPUS_ON_NODE": "96",
        "SLURM_GPUS_ON_NODE": str(INVENTORY_GPUS),
        "SLURM_JOB_ID": str(a["job"]),
        "SLURM_JOB_NAME": RUN,
        "SLURM_JOB_NODELIST": f"opt-[000-{hosts + hosts // 8 - 1:03d}]",
        "SLURM_JOB_NUM_NODES": str(hosts),
        "SLURM_JOB_PARTITION": "a100",
        "SLURM_NNODES": str(hosts),
        "SLURM_NODEID": "0",
        "SLURM_NTASKS": str(hosts),
        "SLURM_PROCID": "0",
        "SLURM_STEP_ID": str(a["restart_count"]),
        "SLURM_STEP_NUM_TASKS": str(hosts),
        "SLURM_SUBMIT_DIR": f"{ROOT}/metaseq",
        "USER": a["user"],
        "WANDB_API_KEY": a["attempt_id"][::-1] + a["attempt_id"][:8],
        "WANDB_PROJECT": RUN,
        **a["env_extra"],
    }


def _write_metrics(
    root: Path, attempts: list[dict[str, Any]], args: argparse.Namespace
) -> tuple[int, list[dict[str, Any]]]:
    """Every step's metrics, with spikes where the detectors then find them."""
    import numpy as np
    import pyarrow as pa

    from logbook import schema
    from logbook.store import layout
    from logbook.store.parts import write_part

    sch = schema.load("metrics").arrow()
    rng = np.random.default_rng(args.seed + 1)
    names = [*METRICS[: args.metrics], *(f"aux_{i}" for i in range(args.metrics - len(METRICS)))]
    directory = layout.run_dir(root, "metrics", RUN)
    spikes = _plan_spikes(attempts, rng)
    pending: list[Any] = []
    written, found = 0, []
    for a in attempts:
        if not a["ran"]:
            continue
        values, t_us, st, events = _attempt_metrics(a, spikes.get(a["n"], []), names, args, rng)
        found += events
        n, m = values.shape
        table = pa.table(
            {
                "attempt_id": pa.repeat(pa.scalar(a["attempt_id"], pa.string()), n * m),
                "time": pa.array(np.repeat(t_us, m).view("datetime64[us]"), sch.field("time").type),
                "step": pa.array(np.repeat(st, m)),
                "name": pa.array(names).take(pa.array(np.tile(np.arange(m), n))),
                "value": pa.array(values.ravel()),
                "source": pa.repeat(pa.scalar("parser", pa.string()), n * m),
            },
            schema=sch,
        )
        pending.append(table)
        written += table.num_rows
        if sum(x.num_rows for x in pending) >= 1_000_000:
            write_part(directory, pa.concat_tables(pending))
            pending = []
    if pending:
        write_part(directory, pa.concat_tables(pending))
    return written, found


def _plan_spikes(attempts: list[dict[str, Any]], rng: Any) -> dict[int, list[tuple[str, int]]]:
    """~300 detector findings over the run's steps: (kind, step) by attempt."""
    stepping = [a for a in attempts if a["ran"] > 60]
    if not stepping:
        return {}
    weights = [a["ran"] for a in stepping]
    total = len(attempts)
    counts = {
        "loss_spike": total * 3 // 4,
        "grad_norm_explosion": total * 3 // 5,
        "nan": total // 10,
    }
    out: dict[int, list[tuple[str, int]]] = {}
    for kind, count in counts.items():
        for k in rng.choice(len(stepping), size=count, p=[w / sum(weights) for w in weights]):
            a = stepping[int(k)]
            step = int(rng.integers(a["first_step"] + 25, a["last_step"] - 30))
            taken = out.setdefault(a["n"], [])
            if all(kd != kind or abs(s - step) > 60 for kd, s in taken):
                taken.append((kind, step))
    return out


def _attempt_metrics(
    a: dict[str, Any],
    spikes: list[tuple[str, int]],
    names: list[str],
    args: argparse.Namespace,
    rng: Any,
) -> tuple[Any, Any, Any, list[dict[str, Any]]]:
    """One attempt's metric values (steps x names), times, steps and detector events."""
    import numpy as np

    st = np.arange(a["first_step"], a["last_step"] + 1, dtype=np.int64)
    n = len(st)
    t_us = _us(a["first_step_time"]) + ((st - st[0]) * a["step_s"] * 1e6).astype(np.int64)
    z = rng.standard_normal((4, n))
    base = _loss(st, args.steps)
    loss = base * (1 + 0.008 * z[0]) + 0.01 * (a["major"] - 1) / 12
    x = st * (150_000 / args.steps)
    g_base = 0.2 + 1.5 * (1 + x / 500) ** -0.6
    grad = g_base * np.exp(0.12 * z[1])
    opt = a["config"]["optimization"]
    warm = opt["warmup_steps"]
    frac = np.clip((st - warm) / max(1, args.steps - warm), 0, 1)
    lr = np.where(st < warm, opt["lr"] * st / warm, opt["lr"] * (1 - 0.9 * frac))
    scale = 2.0 ** rng.integers(2, 6, size=n // 500 + 1)[(st - st[0]) // 500]
    step_time = a["step_s"] * np.exp(0.03 * z[2])
    events: list[dict[str, Any]] = []

    def finding(kind: str, idx: int, name: str, value: float, message: str, **extra: Any) -> None:
        severity = "error" if kind == "nan" else "warning"
        data = {"metric": name, "value": value, **extra}
        at = datetime.fromtimestamp(t_us[idx] / 1e6 + 0.2, timezone.utc)
        events.append(_event(a, kind, message, at, severity, "detector", int(st[idx]), data))

    for kind, step in sorted(spikes, key=lambda s: s[1]):
        i = step - a["first_step"]
        if kind == "loss_spike":
            tau = rng.uniform(20, 200)
            span = min(n - i, int(6 * tau))
            loss[i : i + span] += (
                base[i : i + span] * rng.uniform(0.1, 1.2) * np.exp(-np.arange(span) / tau)
            )
            grad[i : i + 3] *= rng.uniform(2, 5)
            med, mad = float(base[i]), float(base[i]) * 0.008
            value = float(loss[i])
            limit = med + max(8 * mad, 0.05 * med)
            message = f"loss spiked to {value:.4g} at step {step} (median {med:.4g})"
            finding(kind, i, "loss", value, message, median=med, mad=mad, limit=limit)
        elif kind == "grad_norm_explosion":
            grad[i] = g_base[i] * rng.uniform(12, 60)
            value, med = float(grad[i]), float(g_base[i])
            message = (
                f"grad_norm {value:.4g} at step {step} is {value / med:.0f}x its median {med:.4g}"
            )
            finding(kind, i, "grad_norm", value, message, median=med)
        else:
            grad[i] = np.inf
            scale[i:] /= 2
            finding(kind, i, "grad_norm", float("inf"), f"grad_norm is inf at step {step}")
    if a["template"].get("nan"):  # the divergence that ends a numerical crash
        k = min(n, 40)
        ramp = np.linspace(0, 3, k)
        loss[-k:] += base[-k:] * ramp
        grad[-k:] *= np.exp(ramp * 1.5)
        scale[-k:] = np.maximum(1e-4, 8.0 / 2.0 ** np.arange(k))
        loss[-1] = np.nan
        i = n - k + int(np.argmax(ramp > 0.1))
        med = float(base[i])
        value = float(loss[i])
        message = f"loss spiked to {value:.4g} at step {int(st[i])} (median {med:.4g})"
        limit = med * 1.064
        finding("loss_spike", i, "loss", value, message, median=med, mad=med * 0.008, limit=limit)
        i = n - k + int(np.argmax(scale[-k:] < 1.0))
        value = float(scale[i])
        finding(
            "loss_scale_collapse",
            i,
            "loss_scale",
            value,
            f"loss scale collapsed to {value:g} at step {int(st[i])}",
        )
        finding("nan", n - 1, "loss", float("nan"), f"loss is nan at step {int(st[-1])}")
    tokens = TOKENS_PER_STEP / step_time
    columns = {
        "loss": loss,
        "ppl": np.exp(np.minimum(loss, 50)),
        "learning_rate": lr,
        "grad_norm": grad,
        "param_norm": 150 + 250 * (1 - np.exp(-x / 40_000)) + 0.02 * z[3],
        "loss_scale": scale,
        "tokens_per_s": tokens,
        "step_time_s": step_time,
        "tflops_per_gpu": 6 * PARAMS * tokens / (len(a["hosts"]) * INVENTORY_GPUS) / 1e12,
        "data_time_s": 0.04 * np.exp(0.5 * z[3]),
    }
    values = np.column_stack(
        [columns[k] if k in columns else rng.standard_normal(n) for k in names]
    )
    return values, t_us, st, events


def _event(
    a: dict[str, Any] | None,
    kind: str,
    message: str,
    at: datetime,
    severity: str = "info",
    source: str = "supervisor",
    step: int | None = None,
    data: dict[str, Any] | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    from logbook.events import event_row

    row = event_row(
        RUN,
        a["attempt_id"] if a else None,
        kind,
        message,
        source=source,
        at=at,
        step=step,
        severity=severity,
        data=data,
    )
    # A person's note has no host; the wrappers' events have theirs (the leader's by default).
    row["host"] = host or (None if a is None or source == "cli" else a["leader"])
    return row


def _attempt_events(a: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The supervisor's, sampler's and hooks' events of one attempt."""
    import random

    from logbook import datamix, hparams

    rnd = random.Random(args.seed * 1000 + a["n"])
    s = timedelta(seconds=1)
    start, end, v = a["start"], a["end"], a["verdict"] or {}
    out = [_hook(a, "on_start", start + 2 * s, rnd)]
    out.append(
        _event(
            a,
            "data_mix",
            datamix.summary(a["mix"]),
            start + 3 * s,
            data={"mix": a["mix"], "file": f"{ROOT}/configs/mix.yaml"},
        )
    )
    parent = a.get("parent")
    if parent is not None:
        change = datamix.change_data(parent["mix"], a["mix"])
        if change:
            out.append(_event(a, "data_mix_change", change[0], start + 3 * s, data=change[1]))
        old = _settings_map(parent)
        for ch in hparams.changes(old, _settings_map(a)):
            source, _, key = ch["key"].partition(":")
            message = f"{key}: {json.dumps(ch['old'])} -> {json.dumps(ch['new'])}"
            data = {
                "key": key,
                "old": ch["old"],
                "new": ch["new"],
                "source": "config" if source == "config" else "argv",
            }
            out.append(_event(a, "hparam_change", message, start + 2 * s, data=data))
    for step in a["checkpoints"]:
        write_s = round(rnd.uniform(0.002, 0.006) * CHECKPOINT_EVERY * a["step_s"], 1)
        data = {
            "path": f"{ROOT}/checkpoints/checkpoint_{step}",
            "size_bytes": 2_450_000_000_000 + rnd.randint(0, 10**9),
            "files": len(a["hosts"]) * INVENTORY_GPUS + 1,
            "write_s": write_s,
            "seen_by": "folder+output",
        }
        at = _step_time(a, step) + timedelta(seconds=write_s)
        out.append(_event(a, "checkpoint", f"checkpoint at step {step}", at, step=step, data=data))
    fault_at = end - timedelta(seconds=a["tail_s"] * 0.9 + 5)
    for f in a["faults"]:
        out.append(
            _event(
                a,
                "hardware_fault",
                f["message"],
                fault_at,
                "error",
                data=f["data"],
                host=a["origin"],
            )
        )
    if rnd.random() < 0.5:  # corrected ECC errors and application Xids, which end nothing
        host = rnd.choice(a["hosts"])
        old = rnd.randint(0, 40)
        msg = f"GPU {a['gpu']}: corrected ECC errors rose from {old} to {old + 1}"
        data = {"gpu_index": a["gpu"], "counter": "ecc_corrected", "old": old, "new": old + 1}
        at = start + (end - start) * rnd.random()
        out.append(_event(a, "hardware_fault", msg, at, "warning", data=data, host=host))
    if rnd.random() < 0.1:
        from logbook.telemetry.kernel import parse_xid

        f = _xid(a, 13, rnd, parse_xid)
        at = start + (end - start) * rnd.random()
        out.append(
            _event(
                a,
                "hardware_fault",
                f["message"],
                at,
                "error",
                data=f["data"],
                host=rnd.choice(a["hosts"]),
            )
        )
    status = a["status"]
    if status == "lost":
        data = {"host": a["leader"], "wrapper_pid": 10_000 + a["n"] * 37 - 3}
        message = (
            f"attempt {a['label']} lost: its wrapper stopped without recording an end (killed, "
            f"or its host died); last sign of life {end:%Y-%m-%d %H:%M:%S} UTC"
        )
        out.append(_event(a, "lost", message, end, "error", "logbook", data=data))
        return out
    if status == "hung":
        quiet = a["hung_s"]
        timeout = HANG_TIMEOUT_S * a["scale"]
        data = {"quiet_s": round(quiet, 1), "last_step": a["last_step"], "lines": a["tail"]}
        message = f"no output and no progress for {quiet:.0f} s (--hang-timeout {timeout:g} s)"
        at = a["last_step_time"] + timedelta(seconds=quiet)
        out.append(_event(a, "hang", message, at, "error", step=a["last_step"], data=data))
    forwarded = a["template"].get("forwarded")
    if forwarded:
        message = f"received {forwarded}; passed to the command"
        out.append(_event(a, "signal", message, end - 5 * s, data={"signal": forwarded}))
    summary = f"hung: {v['summary']}" if status == "hung" else v["summary"]
    if status != "completed":
        kind = {"crashed": "crash", "hung": "hang_stopped"}.get(status, status)
        severity = "error" if status in ("crashed", "hung") else "warning"
        data = {"class": v["crash_class"] if status == "crashed" else None, **v["evidence"]}
        out.append(_event(a, kind, summary, end, severity, step=a["last_step"], data=data))
        ends = a["hosts"] if args.all_node_ends else [a["origin"]]
        for host in (h for h in ends if h != a["leader"]):
            rank = a["hosts"].index(host)
            message = f"{status} on {host} (node {rank}): {summary}"
            out.append(
                _event(
                    a, "node_end", message, end, severity, step=a["last_step"], data=data, host=host
                )
            )
    if status in ("crashed", "hung"):
        out.append(_hook(a, "on_crash", end + s, rnd))
    if a["decision"] == "gave_up":
        out.append(_event(a, "gave_up", a["reason"], end + s, "error"))
    if a["decision"] == "restart":
        message = f"{a['reason']}; relaunching in {a['delay_s']:g} s"
        out.append(_event(a, "restart", message, end + s, data={"delay_s": a["delay_s"]}))
        out.append(_hook(a, "on_restart", end + 2 * s, rnd))
    else:
        out.append(_hook(a, "on_end", end + 2 * s, rnd))
    return out


def _settings_map(a: dict[str, Any]) -> dict[str, str]:
    from logbook.hparams import argv_params, flatten

    out = {f"config:{k}": json.dumps(v) for k, v in flatten(a["config"]).items()}
    out.update({f"arg:{k}": json.dumps(v) for k, v in argv_params(a["command"]).items()})
    return out


def _hook(a: dict[str, Any], event: str, at: datetime, rnd: Any) -> dict[str, Any]:
    ok = rnd.random() > 0.03
    duration = round(rnd.uniform(0.2, 1.5) if ok else 10.0, 3)
    what = "exited 0" if ok else "timed out"
    data = {
        "event": event,
        "command": HOOK,
        "exit_code": 0 if ok else None,
        "timed_out": not ok,
        "duration_s": duration,
        "output": "" if ok else "curl: (28) Connection timed out after 10001 milliseconds",
        "error": None,
    }
    message = f"{event} hook {HOOK} {what} in {duration:.1f} s"
    return _event(a, "hook", message, at, "info" if ok else "warning", "hook", data=data)


def _notes(attempts: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """About one note per attempt, at random times, in the words of a training team's logbook."""
    import bisect
    import math
    import random

    rnd = random.Random(args.seed + 7)
    first, last = attempts[0]["start"], attempts[-1]["end"]
    starts = [a["start"] for a in attempts]
    out = []
    for k in range(len(attempts)):
        if k % 3 == 0:  # near the end of an attempt: what happened and what was done
            a = rnd.choice(attempts[:-1])
            at = a["end"] + timedelta(seconds=rnd.uniform(60, max(120, a["down_s"])))
        else:
            at = first + (last - first) * rnd.random()
        i = max(0, bisect.bisect_right(starts, at) - 1)
        a = attempts[i]
        running = a["start"] <= at <= a["end"]
        step = None
        if running and a["ran"] and at >= a["first_step_time"]:
            step = min(
                a["last_step"],
                a["first_step"] + int((at - a["first_step_time"]).total_seconds() / a["step_s"]),
            )
        ckpt = max(a["resumed"], (step or 0) // CHECKPOINT_EVERY * CHECKPOINT_EVERY)
        text = rnd.choice(NOTES).format(
            step=step or a["last_step"] or a["resumed"],
            ckpt=ckpt,
            host=rnd.choice(a["hosts"]),
            gpu=rnd.randrange(INVENTORY_GPUS),
            lr=a["config"]["optimization"]["lr"],
            pct=rnd.randint(8, 30),
            bw=rnd.randint(40, 120),
            n=rnd.choice((50, 100, 200)),
            k=rnd.randint(3, 9),
            ppl=math.exp(_loss(a["last_step"] or 1, args.steps)),
            tb=2.45 + rnd.random() * 0.02,
            mins=rnd.randint(8, 40),
            st=a["step_s"],
            tf=6
            * PARAMS
            * TOKENS_PER_STEP
            / a["step_s"]
            / (len(a["hosts"]) * INVENTORY_GPUS)
            / 1e12,
            commit=a["commit"][:10],
        )
        data = (
            {"tags": [rnd.choice(("ops", "loss", "hardware", "data", "lr"))]}
            if rnd.random() < 0.4
            else None
        )
        out.append(_event(a if running else None, "note", text, at, "info", "cli", step, data))
    return out


def _write_samples(root: Path, attempts: list[dict[str, Any]], args: argparse.Namespace) -> int:
    """Telemetry: one part per attempt, time-major, in chunks of about a million rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from logbook import schema
    from logbook.store import layout, parts

    sch = schema.load("samples").arrow()
    directory = layout.run_dir(root, "samples", RUN)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed + 2)
    energy: dict[str, Any] = {}  # host -> each GPU's counter, since the driver loaded
    seen: dict[str, datetime] = {}
    gpus = args.gpus_per_host
    written, t0 = 0, time.perf_counter()
    for a in attempts:
        hosts = a["hosts"]
        hg = len(hosts) * gpus
        for h in hosts:
            if h not in energy:
                energy[h] = rng.uniform(1e8, 5e9, gpus)
            elif h in seen:  # idle at ~60 W between attempts
                energy[h] = energy[h] + 60 * max(0.0, (a["start"] - seen[h]).total_seconds())
            seen[h] = a["end"]
        counter = np.concatenate([energy[h] for h in hosts])
        duration = (a["end"] - a["start"]).total_seconds()
        ticks = max(1, int(duration // TICK_S))
        fs = (a["first_step_time"] - a["start"]).total_seconds() if a["ran"] else np.inf
        ls = (a["last_step_time"] - a["start"]).total_seconds() if a["ran"] else np.inf
        stall = a["outcome"] == "hung" or a["template"].get("tail") == "nccl"
        host_idx = np.repeat(np.arange(len(hosts), dtype=np.int32), gpus)
        gpu_idx = np.tile(np.arange(gpus, dtype=np.int32), len(hosts))
        offset = rng.integers(0, TICK_S * 1_000_000, len(hosts))[host_idx]
        bias = rng.normal(0, 12, hg)
        mem = rng.integers(76_000, 79_500, hg) * MIB
        base_p = np.array([75.0, 330.0, 110.0 if stall else 70.0])
        sd_p = np.array([8.0, 35.0, 6.0])
        base_t = np.array([36.0, 62.0, 48.0 if stall else 38.0])
        name = layout.new_part_name()
        tmp = directory / f".{name}.{os.getpid()}.tmp"
        with pq.ParquetWriter(str(tmp), sch, compression="zstd") as writer:
            step = max(1, 1_000_000 // hg)
            for c in range(0, ticks, step):
                k = np.arange(c, min(ticks, c + step))
                rel = k * TICK_S
                phase = (rel >= fs).astype(np.int64) + (rel > ls)
                z = rng.standard_normal((len(k), hg), dtype=np.float32)
                r = rng.integers(0, 8, (len(k), hg), dtype=np.int8)
                on = (phase == 1)[:, None]
                power = base_p[phase][:, None] + sd_p[phase][:, None] * z + on * bias
                power = np.round(np.clip(power, 50.0, 420.0), 2)
                cum = counter + np.cumsum(power * TICK_S, axis=0)
                counter = cum[-1]
                util = np.where(
                    on, 100 - r, np.where((phase == 0)[:, None], 3 * r, 100 if stall else r)
                )
                temp = np.round(base_t[phase][:, None] + 3 * z + on * bias / 6)
                ramp = np.clip(rel / min(fs, duration), 0, 1)[:, None] if a["ran"] else 0.3
                used = np.where(
                    on | (phase == 2)[:, None],
                    mem + r.astype(np.int64) * (64 * MIB),
                    (mem * ramp).astype(np.int64),
                )
                n = len(k) * hg
                us = _us(a["start"]) + rel[:, None] * 1_000_000 + offset[None, :]
                cols = {c_: pa.nulls(n, sch.field(c_).type) for c_ in sch.names}
                cols["attempt_id"] = pa.repeat(pa.scalar(a["attempt_id"], pa.string()), n)
                cols["time"] = pa.array(us.ravel().view("datetime64[us]"), sch.field("time").type)
                cols["host"] = pa.array(hosts).take(pa.array(np.tile(host_idx, len(k))))
                cols["scope"] = pa.repeat(pa.scalar("gpu", pa.string()), n)
                cols["gpu_index"] = pa.array(np.tile(gpu_idx, len(k)))
                cols["gpu_util_pct"] = pa.array(util.ravel().astype(np.float64))
                cols["gpu_mem_used_bytes"] = pa.array(used.ravel().astype(np.int64))
                cols["gpu_mem_total_bytes"] = pa.repeat(pa.scalar(GPU_MEM_MIB * MIB, pa.int64()), n)
                cols["power_w"] = pa.array(power.ravel())
                cols["energy_j"] = pa.array(np.round(cum, 3).ravel())
                cols["temperature_c"] = pa.array(temp.ravel().astype(np.float64))
                writer.write_table(pa.table([cols[c_] for c_ in sch.names], schema=sch))
                written += n
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
        for i, h in enumerate(hosts):
            energy[h] = counter[i * gpus : (i + 1) * gpus]
        if a["n"] % 20 == 19 or a is attempts[-1]:
            print(
                f"  samples: {a['n'] + 1}/{len(attempts)} attempts, {written:,} rows, "
                f"{time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    parts.fsync_dir(directory)
    return written


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def describe(root: Path) -> dict[str, Any]:
    """Parts, rows (from the Parquet footers) and bytes of each table, and the raw logs' bytes."""
    import pyarrow.parquet as pq

    tables = {}
    for table in TABLES:
        files = sorted((root / table / f"run={RUN}").glob("*.parquet"))
        tables[table] = {
            "parts": len(files),
            "rows": sum(pq.read_metadata(f).num_rows for f in files),
            "bytes": sum(f.stat().st_size for f in files),
        }
    logs = sum(f.stat().st_size for f in (root / "logs").rglob("*") if f.is_file())
    return {"tables": tables, "bytes": sum(t["bytes"] for t in tables.values()) + logs}


# ------------------------------------------------------------------------------------------------
# Timing the chronicle.


def _chronicle_argv(root: Path, out: Path, anonymize: bool) -> list[str]:
    argv = [sys.executable, "-m", "logbook", "chronicle", RUN, "--out", str(out)]
    return [*argv, "--store", str(root), *(["--anonymize"] if anonymize else [])]


def _measure(argv: list[str], log: Path) -> dict[str, Any]:
    """Run argv; its wall time, exit status, peak RSS (os.wait4) and the tree's summed peak."""
    import psutil

    peak = [0]
    done = threading.Event()
    with open(log, "wb") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)

        def poll() -> None:
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not done.wait(0.05):
                try:
                    tree = [root, *root.children(recursive=True)]
                    peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree))
                except psutil.Error:
                    pass

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        done.set()
        poller.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "s": wall,
        "rc": proc.returncode,
        "rss": usage.ru_maxrss * 1024,
        "tree_rss": peak[0],
        "stderr": log.read_text(errors="replace")[-3000:],
    }


def _output(out: Path) -> dict[str, Any]:
    files = [f for f in out.rglob("*") if f.is_file()] if out.exists() else []
    sizes = sorted(((f.stat().st_size, str(f.relative_to(out))) for f in files), reverse=True)
    return {"files": len(files), "bytes": sum(s for s, _ in sizes), "largest": sizes[:3]}


def _warm(root: Path) -> float:
    """Read every file of the store once, so the timings do not include the disk."""
    t = time.perf_counter()
    for f in root.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(8 << 20):
                    pass
    return time.perf_counter() - t


def chronicle(root: Path, repeats: int, keep: Path | None, tmp: Path | None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="chronicle-out-", dir=tmp))
    results: dict[str, list[dict[str, Any]]] = {"plain": [], "anonymize": []}
    try:
        for _ in range(repeats):
            for variant in results:
                out = (keep or work) / variant
                shutil.rmtree(out, ignore_errors=True)
                r = _measure(_chronicle_argv(root, out, variant == "anonymize"), work / "err.log")
                r["output"] = _output(out)
                results[variant].append(r)
                if keep is None:
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


CHECKS = (
    ("show", ["show", RUN]),
    ("incidents", ["incidents", RUN]),
    ("cost", ["cost", RUN, "--format", "json"]),
    ("goodput", ["goodput", RUN]),
    ("events", ["events", RUN, "--limit", "12"]),
    ("metrics", ["metrics", RUN, "--name", "loss,learning_rate", "--every", "25000"]),
)


def check(root: Path) -> bool:
    """Run the commands that read the store, print the start of what each says."""
    ok = True
    for name, argv in CHECKS:
        t = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-m", "logbook", *argv, "--store", str(root)],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        took = time.perf_counter() - t
        print(f"--- logbook {' '.join(argv)}  (exit {p.returncode}, {took:.1f} s)")
        if p.returncode:
            ok = False
            print(p.stderr[-2000:])
            continue
        if name == "cost":
            rows = json.loads(p.stdout)
            print(f"{len(rows)} rows; last: {json.dumps(rows[-1])[:1500]}")
            continue
        lines = p.stdout.splitlines()
        shown = lines if len(lines) <= 30 else [*lines[:14], "...", *lines[-12:]]
        print("\n".join(shown))
    return ok


# ------------------------------------------------------------------------------------------------


def _print(built: dict[str, Any], root: Path, results: dict[str, Any] | None) -> None:
    tables = built["tables"]
    print(
        f"store: {root}, {built['bytes'] / 2**30:.2f} GiB"
        + (" (reused)" if built.get("reused") else "")
    )
    if "attempts" in built:  # from the writer, or its summary beside a kept store
        print(
            f"  written in {built['build_s']:.0f} s, writer peak RSS "
            f"{built['writer_peak_rss'] / 2**20:.0f} MiB; "
            + ", ".join(f"{k} {v} s" for k, v in built["took_s"].items())
        )
        _print_plan(built)
    for t in TABLES:
        print(
            f"  {t:10} {tables[t]['rows']:>13,} rows {tables[t]['parts']:>5} parts "
            f"{tables[t]['bytes'] / 2**20:>9.1f} MiB"
        )
    if results is not None:
        _print_results(results)


def _print_plan(built: dict[str, Any]) -> None:
    print(
        f"  {built['attempts']} attempts in {built['majors']} majors over {built['span_days']:.1f} "
        f"days, {built['hosts']} hosts x {INVENTORY_GPUS} GPUs ({built['gpus_per_host']} sampled); "
        f"{built['steps']:,} steps reached, {built['steps_run']:,} run "
        f"({built['step_s']:.1f} s a step)"
    )
    print("  ends: " + ", ".join(f"{k} {v}" for k, v in built["ends"].items()))
    print(
        f"  events {built['events']:,}: "
        + ", ".join(f"{k} {v}" for k, v in built["event_kinds"].items())
    )


def _print_results(results: dict[str, Any]) -> None:
    for variant, runs in results.items():
        what = "chronicle" + (" --anonymize" if variant == "anonymize" else "")
        failed = [r for r in runs if r["rc"]]
        if failed:
            r = failed[0]
            print(f"{what:24} FAILED (exit {r['rc']}) after {r['s']:.1f} s:\n{r['stderr'][-1500:]}")
            continue
        s = statistics.median(r["s"] for r in runs)
        rss = max(r["rss"] for r in runs)
        tree = max(r["tree_rss"] for r in runs)
        out = runs[-1]["output"]
        verdict = "ok" if s < AIM_S and max(rss, tree) < AIM_BYTES else "missed"
        print(
            f"{what:24} {s:7.2f} s  peak RSS {rss / 1e6:6.0f} MB (tree {tree / 1e6:.0f} MB)  "
            f"wrote {out['files']} files, {out['bytes'] / 1e6:.1f} MB  "
            f"(aim < {AIM_S:g} s, < {AIM_BYTES / 1e9:g} GB: {verdict})"
        )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--days", type=float, help="days the run spans (default 100; 2 with --quick)")
    ap.add_argument("--quick", action="store_true", help="a small version: --days 2")
    ap.add_argument("--hosts", type=int, default=128)
    ap.add_argument("--gpus-per-host", type=int, default=1, help="GPUs sampled per host (1)")
    ap.add_argument("--attempts", type=int, default=200)
    ap.add_argument("--steps", type=int, default=150_000)
    ap.add_argument("--metrics", type=int, default=len(METRICS), help="metrics per step (10)")
    ap.add_argument("--all-node-ends", action="store_true", help="a node_end from every host")
    ap.add_argument("--seed", type=int, default=175)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="build the store here and keep it; reused if there")
    ap.add_argument("--out", type=Path, help="keep the chronicles here (plain/, anonymize/)")
    ap.add_argument("--tmp", type=Path, help="parent of the temporary store and outputs")
    ap.add_argument("--check", action="store_true", help="run show, incidents, cost, ... first")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--describe", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.days = args.days if args.days is not None else 2.0 if args.quick else 100.0
    if args.build_only:  # in a process of its own: a child inherits its parent's peak RSS
        print(json.dumps(build(args.build_only, args), default=str))
        return 0
    if args.describe:
        print(json.dumps(describe(args.describe)))
        return 0
    tmp = None
    if args.keep:
        root = args.keep.absolute()
    else:
        tmp = Path(tempfile.mkdtemp(prefix="chronicle-bench-", dir=args.tmp))
        root = tmp / "store"
    summary = root.with_name(root.name + ".build.json")  # beside the store, not in it
    try:
        if (root / "samples").exists():
            built = json.loads(summary.read_text()) if summary.exists() else {}
            described = subprocess.run(
                [sys.executable, __file__, "--describe", str(root)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            built.update(json.loads(described), reused=True)
            print(f"reusing the store at {root}", file=sys.stderr)
        else:
            t = time.perf_counter()
            argv = [sys.executable, __file__, "--build-only", str(root)]
            for flag in ("days", "hosts", "gpus_per_host", "attempts", "steps", "metrics", "seed"):
                argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            argv += ["--all-node-ends"] if args.all_node_ends else []
            print(f"writing the store at {root} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
            if proc.returncode:
                print(f"FAILED: writing the store exited {proc.returncode}", file=sys.stderr)
                return 1
            built = json.loads(proc.stdout.splitlines()[-1])
            built["build_s"] = time.perf_counter() - t
            if args.keep:
                summary.write_text(json.dumps(built, indent=1))
        ok = check(root) if args.check else True
        help_ = subprocess.run(
            [sys.executable, "-m", "logbook", "chronicle", "--help"], capture_output=True, text=True
        )
        results = None
        if help_.returncode == 0:
            built["warm_s"] = _warm(root)
            results = chronicle(root, args.repeats, args.out, args.tmp)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"store": built, "chronicle": results}, default=str))
    else:
        _print(built, root, results)
    if results is None:
        reason = (help_.stderr or help_.stdout).strip().splitlines()[-1:] or ["?"]
        print(
            f"logbook chronicle: not available here (`python -m logbook chronicle --help` exited "
            f"{help_.returncode}: {reason[0]}); nothing timed. --keep keeps the store for later.",
            file=sys.stderr,
        )
        return 1
    failed = any(r["rc"] for runs in results.values() for r in runs)
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    sys.exit(main())
