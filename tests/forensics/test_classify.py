"""How an attempt ended, on real children where this machine can produce the failure, and on the
exact texts PyTorch, NCCL, the NVIDIA driver, torchrun and Slurm print where it cannot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from logbook.forensics import classify_end, load_rules

from .conftest import Child

Run = Callable[..., Child]
Write = Callable[..., list[Path]]


# --- real children ---------------------------------------------------------------------------


def test_python_exception_names_type_message_and_innermost_frame(run_child: Run) -> None:
    child = run_child(
        python="""\
        import sys
        print("step=1 loss=2.5", flush=True)

        def main():
            raise RuntimeError("boom")

        main()
        """
    )
    v = child.classify()
    assert (v.status, v.crash_class, v.retryable, v.rule) == (
        "crashed",
        "python_exception",
        True,
        "python-traceback",
    )
    assert v.summary == "RuntimeError at train.py:5 in main: boom"
    exc = v.evidence["exception"]
    assert (exc["type"], exc["message"], exc["line"], exc["function"]) == (
        "RuntimeError",
        "boom",
        5,
        "main",
    )
    assert exc["file"].endswith("train.py")
    assert v.evidence["lines"][0] == "Traceback (most recent call last):"
    assert v.evidence["lines"][-1] == "RuntimeError: boom"
    assert (v.evidence["exit_code"], v.evidence["signal"], v.evidence["log"]) == (
        1,
        None,
        "stderr.log",
    )
    json.dumps(v.evidence)


def test_exception_in_a_library_names_the_users_frame_too(run_child: Run) -> None:
    child = run_child(python="import json\n\ndef load():\n    return json.loads('{')\n\nload()\n")
    v = child.classify()
    assert v.summary.startswith("json.decoder.JSONDecodeError at train.py:4 in load: Expecting")
    exc = v.evidence["exception"]
    assert exc["file"].endswith("decoder.py")  # innermost: where it was raised
    assert exc["user_frame"]["line"] == 4


def test_memory_error_under_a_memory_limit(run_child: Run) -> None:
    child = run_child(
        python="""\
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        big = bytearray(4 << 30)
        """
    )
    assert child.stderr.rstrip().endswith("MemoryError")
    v = child.classify()
    assert (v.status, v.crash_class, v.rule) == ("crashed", "host_oom", "python-memory-error")
    assert v.evidence["exception"]["type"] == "MemoryError"


def test_a_real_segfault(run_child: Run) -> None:
    v = run_child(python="import ctypes\nctypes.string_at(0)\n").classify()
    assert (v.status, v.crash_class, v.rule) == ("crashed", "fatal_signal", "signal")
    assert v.summary == "killed by SIGSEGV (segmentation fault)"
    assert (v.evidence["signal"], v.evidence["signal_name"], v.evidence["exit_code"]) == (
        11,
        "SIGSEGV",
        None,
    )


def test_a_segfault_with_faulthandler_keeps_its_report(run_child: Run) -> None:
    child = run_child(
        [sys.executable, "-X", "faulthandler", "-c", "import faulthandler; faulthandler._sigsegv()"]
    )
    v = child.classify()
    assert (v.crash_class, v.rule, v.summary) == (
        "fatal_signal",
        "fatal-python-error",
        "Fatal Python error: Segmentation fault",
    )
    assert any("most recent call first" in line for line in v.evidence["lines"])


def test_abort(run_child: Run) -> None:
    v = run_child(python="import os\nos.abort()\n").classify()
    assert (v.crash_class, v.summary) == ("fatal_signal", "killed by SIGABRT (aborted)")


def test_sigkill_with_no_evidence_is_presumed_host_oom(run_child: Run) -> None:
    child = run_child(python="import os\nprint('step=7', flush=True)\nos.kill(os.getpid(), 9)\n")
    assert child.returncode == -9
    v = child.classify()
    assert (v.status, v.crash_class, v.retryable, v.rule) == (
        "crashed",
        "host_oom",
        True,
        "sigkill",
    )
    assert v.summary == "killed by SIGKILL (no log evidence; most likely the kernel OOM killer)"
    assert v.evidence["lines"] == ["step=7"] and v.evidence["log"] == "stdout.log"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_shell_reports_sigkill_as_137_and_killed(run_child: Run) -> None:
    kill = f"{sys.executable} -c 'import os; os.kill(os.getpid(), 9)'"
    child = run_child(["bash", "-c", f"{kill}; exit $?"])
    assert child.returncode == 137
    v = child.classify()
    assert (v.crash_class, v.rule, v.evidence["signal_name"]) == ("host_oom", "sigkill", "SIGKILL")
    # The shell's "Killed" line is the secondary evidence; the exit status decides first.
    assert v.evidence["rules"] == ["shell-killed"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_shell_reports_a_segfault_as_139(run_child: Run) -> None:
    crash = f"{sys.executable} -c 'import faulthandler; faulthandler._sigsegv()'"
    child = run_child(["bash", "-c", f"{crash}; exit $?"])
    assert child.returncode == 139
    v = child.classify()
    assert (v.crash_class, v.rule) == ("fatal_signal", "fatal-signal-text")
    assert v.summary == "the process died of a fatal signal (Segmentation fault)"
    assert v.evidence["signal_name"] == "SIGSEGV"


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(
    not _can_unshare(), reason="needs unshare with user namespaces (mount a tiny tmpfs)"
)
def test_a_full_filesystem(run_child: Run, tmp_path: Path) -> None:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    write = f"open('{mnt}/ckpt.pt', 'wb').write(bytes(1 << 20))"
    child = run_child(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            f'mount -t tmpfs -o size=64k tmpfs {mnt} && {sys.executable} -c "{write}"',
        ]
    )
    v = child.classify()
    assert (v.status, v.crash_class, v.rule, v.summary) == (
        "crashed",
        "data_io",
        "no-space",
        "no space left on device",
    )
    assert v.evidence["exception"]["type"] == "OSError"


def test_a_missing_file(run_child: Run) -> None:
    v = run_child(python="open('data/train-00000.bin')\n").classify()
    assert (v.crash_class, v.rule, v.retryable) == ("data_io", "file-not-found", True)
    assert (
        v.summary == "file not found: [Errno 2] No such file or directory: 'data/train-00000.bin'"
    )


def test_an_import_error_is_configuration(run_child: Run) -> None:
    v = run_child(python="import flash_attn_not_installed\n").classify()
    assert (v.crash_class, v.rule, v.retryable) == ("configuration", "module-not-found", False)
    assert v.summary == "ModuleNotFoundError: No module named 'flash_attn_not_installed'"


def test_bad_argparse_arguments(run_child: Run, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('--lr')\np.parse_args()\n"
    )
    child = run_child([sys.executable, str(script), "--lr-warmup", "100"])
    assert child.returncode == 2
    v = child.classify()
    assert (v.crash_class, v.rule, v.retryable) == ("configuration", "argparse-error", False)
    assert v.summary == "bad arguments: unrecognized arguments: --lr-warmup 100"


def test_usage_and_exit_status_2(run_child: Run) -> None:
    child = run_child(
        python="import sys\nprint('Usage: train [OPTIONS]\\nTry --help', file=sys.stderr)\nsys.exit(2)\n"
    )
    v = child.classify()
    assert (v.crash_class, v.rule, v.retryable) == ("configuration", "usage-exit-2", False)


def test_exit_code_alone_is_unknown(run_child: Run) -> None:
    v = run_child(python="import sys\nprint('step=3 loss=1.2')\nsys.exit(3)\n").classify()
    assert (v.status, v.crash_class, v.rule, v.retryable) == (
        "crashed",
        "unknown",
        "exit-code",
        True,
    )
    assert v.summary == "exited with code 3 and no known error in the log"


def test_completed_even_with_scary_lines(run_child: Run) -> None:
    child = run_child(
        python="print('RuntimeError: CUDA error: device-side assert triggered (a test)')\n"
    )
    v = child.classify()
    assert (v.status, v.crash_class, v.retryable, v.rule) == ("completed", None, False, "exit-code")


# Lightning's signal connector, as it runs: on SIGTERM it logs `[rank: 0] Received SIGTERM: 15`
# (seen from the real Lightning 2.6 in tests/record/test_real_trainers.py), lets the step end and
# returns from fit; the script then exits 0.
CATCHES_SIGTERM = """
import os, signal, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda s, f: (print(f"[rank: 0] Received SIGTERM: {{s}}", flush=True), stop.append(s)))
for step in range({steps}):
    print(f"step={{step}} loss={{1 / (step + 1):.4f}}", flush=True)
    if step == {kill_at}:
        os.kill(os.getpid(), signal.SIGTERM)
    if stop and step >= {kill_at} + {trains_on}:
        break
"""


def test_a_caught_sigterm_and_a_clean_exit_is_a_stop_not_a_completion(run_child: Run) -> None:
    child = run_child(python=CATCHES_SIGTERM.format(steps=100, kill_at=40, trains_on=2))
    assert child.returncode == 0
    v = child.classify()
    assert (v.status, v.crash_class, v.retryable, v.rule) == (
        "interrupted", None, False, "caught-signal",
    )  # fmt: skip
    assert v.evidence["caught_signal"] == "SIGTERM"
    assert v.evidence["line"] == "[rank: 0] Received SIGTERM: 15"
    assert "caught SIGTERM" in v.summary
    v = child.classify(under_scheduler=True)
    assert (v.status, v.retryable) == ("preempted", True)


def test_a_sigterm_caught_long_before_the_end_is_a_completion(run_child: Run) -> None:
    """A run that caught one early and trained on to its last step has completed."""
    child = run_child(python=CATCHES_SIGTERM.format(steps=100, kill_at=10, trains_on=1000))
    assert child.returncode == 0 and "step=99 " in child.logs[0].read_text()
    assert child.classify().status == "completed"


def test_killed_by_sigterm_not_through_logbook(run_child: Run) -> None:
    child = run_child(python="import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    v = child.classify(under_scheduler=True)
    assert (v.status, v.crash_class, v.retryable, v.rule) == ("preempted", None, True, "signal")
    assert child.classify().status == "interrupted"


def test_keyboard_interrupt_is_interrupted(run_child: Run) -> None:
    child = run_child(python="raise KeyboardInterrupt\n")
    assert child.returncode == -2  # Python re-raises SIGINT on an uncaught KeyboardInterrupt
    assert child.classify(under_scheduler=True).status == "interrupted"


# --- signals logbook passed on ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("forwarded", "scheduler", "status", "retryable"),
    [
        ("SIGINT", False, "interrupted", False),
        ("SIGINT", True, "interrupted", False),
        ("SIGTERM", False, "interrupted", False),
        ("SIGTERM", True, "preempted", True),
        ("SIGHUP", True, "preempted", True),
    ],
)
def test_forwarded_signals(
    forwarded: str, scheduler: bool, status: str, retryable: bool, write_log: Write
) -> None:
    logs = write_log(
        "RuntimeError: NCCL error: remote process exited or there was a network error, NCCL version 2.14.3\n"
    )
    for returncode in (-15, 1, 0):  # a job told to stop that exits 0 has stopped, not finished
        v = classify_end(
            returncode=returncode,
            log_paths=logs,
            forwarded_signal=forwarded,
            under_scheduler=scheduler,
        )
        assert (v.status, v.crash_class, v.retryable, v.rule) == (
            status,
            None,
            retryable,
            "forwarded-signal",
        )
        assert v.evidence["forwarded_signal"] == forwarded


def test_killed_after_grace(write_log: Write) -> None:
    v = classify_end(
        returncode=-9, log_paths=write_log(""), forwarded_signal="SIGINT", killed_after_grace=True
    )
    assert (v.status, v.summary) == (
        "interrupted",
        "interrupted: SIGINT passed on to the command, killed after the grace period",
    )
    assert v.evidence["killed_after_grace"] is True


# --- exact texts this machine cannot produce -------------------------------------------------

CUDA_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
    "79.11 GiB of which 1.18 GiB is free. Process 2752205 has 77.91 GiB memory in use. Of the allocated memory "
    "75.02 GiB is allocated by PyTorch, and 1.44 GiB is reserved by PyTorch but unallocated. If reserved but "
    "unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid "
    "fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
)
WATCHDOG = (
    "[rank{r}]:[E321 02:17:08.408271257 ProcessGroupNCCL.cpp:607] [Rank {r}] Watchdog caught collective operation "
    "timeout: WorkNCCL(SeqNum=1580, OpType=ALLREDUCE, NumelIn=466119168, NumelOut=466119168, Timeout(ms)=600000) "
    "ran for 600060 milliseconds before timing out."
)


def _oom_traceback(rank: int) -> str:
    return (
        f"[rank{rank}]: Traceback (most recent call last):\n"
        f'[rank{rank}]:   File "/work/train.py", line 88, in <module>\n'
        f"[rank{rank}]:     loss.backward()\n"
        f'[rank{rank}]:   File "/venv/lib/python3.11/site-packages/torch/_tensor.py", line 626, in backward\n'
        f"[rank{rank}]:     torch.autograd.backward(\n"
        f"[rank{rank}]: {CUDA_OOM}\n"
    )


def test_cuda_oom_traceback(write_log: Write) -> None:
    v = classify_end(returncode=1, log_paths=write_log(_oom_traceback(0)))
    assert (v.status, v.crash_class, v.retryable, v.rule) == (
        "crashed",
        "gpu_oom",
        True,
        "cuda-oom",
    )
    assert v.summary == "CUDA out of memory (tried to allocate 2.00 GiB)"
    assert v.evidence["exception"]["type"] == "torch.OutOfMemoryError"
    assert v.evidence["exception"]["user_frame"] == {
        "file": "/work/train.py",
        "line": 88,
        "function": "<module>",
    }
    assert v.evidence["lines"][0].startswith("[rank0]:")  # evidence keeps the original line


def test_one_rank_oom_then_the_others_time_out(write_log: Write) -> None:
    progress = "".join(f"[rank{r}]: step=100 loss=2.1\n" for r in range(4))
    timeouts = "\n".join(WATCHDOG.format(r=r) for r in (0, 1, 3)) + "\n"
    v = classify_end(returncode=1, log_paths=write_log(progress + _oom_traceback(2) + timeouts))
    assert (v.crash_class, v.rule) == ("gpu_oom", "cuda-oom")
    assert v.evidence["rules"] == ["cuda-oom", "nccl-watchdog-timeout"]


def test_a_noisy_connection_reset_does_not_hide_the_cause(write_log: Write) -> None:
    noise = "wandb: Network error (ConnectionResetError: [Errno 104] Connection reset by peer), entering retry loop.\n"
    v = classify_end(
        returncode=1, log_paths=write_log(noise + "step=500 loss=nan\n" + _oom_traceback(0))
    )
    assert v.rule == "cuda-oom"
    assert v.evidence["rules"] == ["connection-reset", "loss-nan-line", "cuda-oom"]


def test_watchdog_timeout_alone_is_communication(write_log: Write) -> None:
    text = (
        WATCHDOG.format(r=0)
        + "\nterminate called after throwing an instance of 'c10::DistBackendError'\n"
    )
    v = classify_end(returncode=-6, log_paths=write_log(text))
    assert (v.crash_class, v.rule) == ("communication", "nccl-watchdog-timeout")
    assert v.summary == "NCCL collective timed out (ALLREDUCE, seq 1580, after 600060 ms)"


def test_nccl_error_block(write_log: Write) -> None:
    text = (
        "[rank1]: torch.distributed.DistBackendError: NCCL error in: /pytorch/torch/csrc/distributed/c10d/NCCLUtils.cpp:77, "
        "unhandled cuda error (run with NCCL_DEBUG=INFO for details), NCCL version 2.26.2\n"
        "[rank1]: ncclUnhandledCudaError: Call to CUDA function failed.\n"
        "[rank1]: Last error:\n"
        "[rank1]: Cuda failure 999 'unknown error'\n"
    )
    v = classify_end(returncode=1, log_paths=write_log(text))
    assert (v.crash_class, v.rule, v.summary) == (
        "communication",
        "nccl-error",
        "NCCL error: unhandled cuda error (NCCL 2.26.2)",
    )
    text_oom = text.replace("999 'unknown error'", "2 'out of memory'")
    v = classify_end(returncode=1, log_paths=write_log(text_oom))
    assert (v.crash_class, v.rule) == (
        "gpu_oom",
        "cuda-alloc-failed",
    )  # NCCL's "Last error" is the cause


def test_xid_in_the_log(write_log: Write) -> None:
    text = (
        "[rank5]: RuntimeError: CUDA error: an illegal memory access was encountered\n"
        "NVRM: Xid (PCI:0000:05:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n"
    )
    v = classify_end(returncode=1, log_paths=write_log(text))
    assert (v.crash_class, v.rule) == ("gpu_hardware", "cuda-illegal-address")  # earliest wins
    app_xid = "NVRM: Xid (PCI:0000:08:00): 31, Ch 0000003b, intr 10000000. MMU Fault\n"
    v = classify_end(returncode=1, log_paths=write_log(app_xid))
    assert v.crash_class == "unknown"  # Xid 31 is the application's fault, not the GPU's


def test_loss_nan_alone_and_loss_scale_collapse(write_log: Write) -> None:
    v = classify_end(
        returncode=1, log_paths=write_log("", stdout="step=10 loss=2.1\nstep=11 loss=nan\n")
    )
    assert (v.crash_class, v.rule, v.summary) == ("numerical", "loss-nan-line", "loss became nan")
    assert v.evidence["log"] == "stdout.log"
    overflow = (
        "[2024-07-17 19:44:06,945] [INFO] [loss_scaler.py:183:update_scale] [deepspeed] OVERFLOW! Rank 0 "
        "Skipping step. Attempted loss scale: 65536, reducing to 32768\n"
    )
    v = classify_end(returncode=1, log_paths=write_log(overflow * 50))
    assert v.crash_class == "unknown"  # skipped steps are routine in fp16, not a crash cause
    fatal = "Exception: Current loss scale already at minimum - cannot decrease scale anymore. Exiting run.\n"
    v = classify_end(returncode=1, log_paths=write_log(overflow * 50 + fatal))
    assert (v.crash_class, v.rule) == ("numerical", "loss-scale-at-minimum")


def test_slurm_time_limit_is_preemption(write_log: Write) -> None:
    text = (
        _oom_traceback(0)
        + "slurmstepd: error: *** JOB 3884617 ON node023 CANCELLED AT 2018-08-19T16:30:21 DUE TO TIME LIMIT ***\n"
    )
    v = classify_end(returncode=-15, log_paths=write_log(text))
    assert (v.status, v.crash_class, v.retryable, v.rule) == (
        "preempted",
        None,
        True,
        "slurm-preempted",
    )
    assert v.summary == "Slurm cancelled 3884617 on node023: TIME LIMIT"
    v = classify_end(returncode=-15, log_paths=write_log(text), forwarded_signal="SIGTERM")
    assert (v.status, v.rule) == ("preempted", "slurm-preempted")  # even when not under_scheduler


def test_slurm_scancel_and_oom(write_log: Write) -> None:
    v = classify_end(
        returncode=1,
        log_paths=write_log(
            "slurmstepd: error: *** STEP 63532.0 ON cn106 CANCELLED AT 2020-12-14T09:43:55 ***\n"
        ),
    )
    assert (v.status, v.retryable) == ("interrupted", False)
    text = (
        "[rank0]: step 10\n"
        "[rank1]: RuntimeError: NCCL error: remote process exited or there was a network error, NCCL version 2.14.3\n"
        "slurmstepd: error: Detected 1 oom_kill event in StepId=11300781.0. Some of the step tasks have been OOM Killed.\n"
    )
    v = classify_end(returncode=1, log_paths=write_log(text))
    assert (v.crash_class, v.rule) == (
        "host_oom",
        "slurm-oom-kill",
    )  # the peer's death explains the NCCL error


REPORT = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train.py FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2023-05-19_16:39:58
  host      : n136-117-136.byted.org
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 78970)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 78970
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2023-05-19_16:39:58
  host      : n136-117-136.byted.org
  rank      : {rank} (local_rank: {rank})
  exitcode  : {code} (pid: 78971)
  error_file: <N/A>
  traceback : {traceback}
============================================================
"""


def _report(
    rank: int = 1,
    code: int = 1,
    traceback: str = "To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html",
) -> str:
    return REPORT.format(rank=rank, code=code, traceback=traceback)


def test_torchrun_root_cause_rank_decides(write_log: Write) -> None:
    text = (
        "[rank0]: Traceback (most recent call last):\n"
        '[rank0]:   File "/work/train.py", line 40, in <module>\n'
        "[rank1]: Traceback (most recent call last):\n"
        '[rank1]:   File "/work/train.py", line 40, in <module>\n'
        "[rank0]:     dist.all_reduce(t)\n"
        "[rank1]:     main()\n"
        '[rank1]:   File "/work/train.py", line 31, in main\n'
        '[rank1]:     raise ValueError("batch 5121 has no tokens")\n'
        "[rank1]: ValueError: batch 5121 has no tokens\n"
        "[rank0]: KeyError: 'dist'\n"
    )
    v = classify_end(returncode=1, log_paths=write_log(text + _report()))
    assert (v.crash_class, v.rule) == ("python_exception", "python-traceback")
    assert v.summary == "rank 1: ValueError at train.py:31 in main: batch 5121 has no tokens"
    assert v.evidence["torchrun"] == {
        "rank": 1,
        "local_rank": 1,
        "exitcode": 1,
        "pid": 78971,
        "host": "n136-117-136.byted.org",
        "time": "2023-05-19_16:39:58",
        "error_file": None,
        "failures": 2,
    }
    assert all(line.startswith("[rank1]:") for line in v.evidence["lines"])


def test_torchrun_root_cause_rank_lines_come_first(write_log: Write) -> None:
    text = (
        "[rank0]: RuntimeError: CUDA error: an illegal memory access was encountered\n"
        + _oom_traceback(1)
    )
    v = classify_end(returncode=1, log_paths=write_log(text + _report(rank=1)))
    assert (v.crash_class, v.summary) == (
        "gpu_oom",
        "rank 1: CUDA out of memory (tried to allocate 2.00 GiB)",
    )


@pytest.mark.parametrize(
    ("code", "crash_class", "rule", "summary"),
    [
        (
            -9,
            "host_oom",
            "sigkill",
            "rank 1: killed by SIGKILL (no log evidence; most likely the kernel OOM killer)",
        ),
        (-11, "fatal_signal", "signal", "rank 1: killed by SIGSEGV (segmentation fault)"),
        (-6, "fatal_signal", "signal", "rank 1: killed by SIGABRT (aborted)"),
    ],
)
def test_torchrun_root_cause_signal(
    code: int, crash_class: str, rule: str, summary: str, write_log: Write
) -> None:
    tb = f"Signal {-code} received by PID 78971"
    v = classify_end(returncode=1, log_paths=write_log(_report(code=code, traceback=tb)))
    assert (v.crash_class, v.rule, v.summary) == (crash_class, rule, summary)
    assert v.evidence["torchrun"]["exitcode"] == code


def test_torchrun_sigabrt_after_a_watchdog_timeout_is_communication(write_log: Write) -> None:
    text = (
        WATCHDOG.format(r=1)
        + "\n"
        + _report(code=-6, traceback="Signal 6 (SIGABRT) received by PID 78971")
    )
    v = classify_end(returncode=1, log_paths=write_log(text))
    assert (v.crash_class, v.rule) == ("communication", "nccl-watchdog-timeout")
    assert v.summary.startswith("rank 1: NCCL collective timed out")


def test_ignored_exceptions_are_not_the_cause(write_log: Write) -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/work/train.py", line 12, in <module>\n'
        "    step()\n"
        "ValueError: real\n"
        "Exception ignored in: <function _MultiProcessingDataLoaderIter.__del__ at 0x7f>\n"
        "Traceback (most recent call last):\n"
        '  File "/venv/lib/python3.11/site-packages/torch/utils/data/dataloader.py", line 1477, in __del__\n'
        "AttributeError: '_MultiProcessingDataLoaderIter' object has no attribute '_shutdown'\n"
    )
    v = classify_end(returncode=1, log_paths=write_log(text))
    assert v.summary == "ValueError at train.py:12 in <module>: real"


def test_traceback_in_a_torchrun_error_file_report(write_log: Write) -> None:
    tb = (
        "Traceback (most recent call last):\n"
        '    File "/venv/lib/python3.11/site-packages/torch/distributed/elastic/multiprocessing/errors/__init__.py", line 346, in wrapper\n'
        "      return f(*args, **kwargs)\n"
        '    File "/work/train.py", line 20, in main\n'
        "      raise KeyError('lr')\n"
        "  KeyError: 'lr'"
    )
    v = classify_end(returncode=1, log_paths=write_log(_report(rank=0, traceback=tb)))
    assert v.summary == "rank 0: KeyError at train.py:20 in main: 'lr'"


def test_user_rules_win_over_earlier_shipped_matches(write_log: Write) -> None:
    rules = load_rules(
        [
            {
                "id": "shard-corrupt",
                "class": "data_io",
                "retryable": False,
                "pattern": r"ShardCorrupt: (?P<shard>\S+)",
                "summary": "corrupt shard {shard}",
            }
        ]
    )
    text = _oom_traceback(0) + "ShardCorrupt: 00042.bin\n"
    v = classify_end(returncode=1, log_paths=write_log(text), rules=rules)
    assert (v.crash_class, v.rule, v.retryable, v.summary) == (
        "data_io",
        "shard-corrupt",
        False,
        "corrupt shard 00042.bin",
    )


def test_a_case_insensitive_user_rule(write_log: Write) -> None:
    rules = load_rules([{"id": "bad-batch", "class": "data_io", "pattern": "(?i)empty batch"}])
    v = classify_end(returncode=1, log_paths=write_log("EMPTY BATCH at step 7\n"), rules=rules)
    assert (v.rule, v.summary) == ("bad-batch", "EMPTY BATCH")


def test_evidence_is_bounded_and_json(write_log: Write) -> None:
    long_tb = (
        "Traceback (most recent call last):\n"
        + "".join(
            f'  File "/work/m{i}.py", line {i}, in f{i}\n    f{i + 1}()\n' for i in range(100)
        )
        + "RecursionError: "
        + "x" * 2000
        + "\n"
    )
    v = classify_end(returncode=1, log_paths=write_log(long_tb))
    assert v.rule == "python-traceback"
    assert len(v.evidence["lines"]) == 20
    assert v.evidence["lines"][0] == "Traceback (most recent call last):"
    assert max(len(line) for line in v.evidence["lines"]) == 500
    assert len(v.evidence["exception"]["message"]) == 500
    assert len(v.summary) <= 300
    json.dumps(v.evidence)


def test_missing_logs_are_no_evidence(tmp_path: Path) -> None:
    v = classify_end(returncode=1, log_paths=[tmp_path / "stdout.log", tmp_path / "stderr.log"])
    assert (v.crash_class, v.rule) == ("unknown", "exit-code")
    assert "lines" not in v.evidence


def test_only_the_tail_is_read(write_log: Write) -> None:
    head = (
        _oom_traceback(0) + "step=1 loss=2.0 lr=3e-4 tokens_per_s=181234\n" * 40_000
    )  # ~1.8 MB after
    v = classify_end(returncode=1, log_paths=write_log(head + "ValueError: late\n"))
    assert v.crash_class == "unknown"  # the OOM is out of the last MiB; no traceback around "late"
    assert "rules" not in v.evidence


def test_another_ranks_traceback_is_not_named_as_the_root_cause(write_log: Write) -> None:
    text = (
        "[rank0]: Traceback (most recent call last):\n"
        '[rank0]:   File "/work/train.py", line 40, in <module>\n'
        "[rank0]: KeyError: 'dist'\n"
    )
    v = classify_end(returncode=1, log_paths=write_log(text + _report(rank=1)))
    assert v.summary == "KeyError at train.py:40 in <module>: 'dist'"


def test_torchrun_itself_killed_is_no_ranks_fault(write_log: Write) -> None:
    v = classify_end(returncode=-9, log_paths=write_log(_report(rank=1, code=-15)))
    assert v.summary == "killed by SIGKILL (no log evidence; most likely the kernel OOM killer)"


def test_root_cause_block_texts_count_for_the_root_rank(write_log: Write) -> None:
    tb = (
        "Traceback (most recent call last):\n  RuntimeError: CUDA error: unspecified launch failure"
    )
    text = "[rank0]: RuntimeError: CUDA error: an illegal memory access was encountered\n"
    v = classify_end(returncode=1, log_paths=write_log(text + _report(rank=1, traceback=tb)))
    assert (v.rule, v.summary) == (
        "cuda-launch-failure",
        "rank 1: CUDA error: unspecified launch failure",
    )


def test_an_exception_in_a_torchrun_report_is_matched_by_rules(write_log: Write) -> None:
    tb = (
        "Traceback (most recent call last):\n"
        '    File "/work/train.py", line 9, in main\n'
        "      open('/data/x')\n"
        "  FileNotFoundError: [Errno 2] No such file or directory: '/data/x'"
    )
    v = classify_end(returncode=1, log_paths=write_log(_report(rank=2, traceback=tb)))
    assert (v.rule, v.summary) == (
        "file-not-found",
        "rank 2: file not found: [Errno 2] No such file or directory: '/data/x'",
    )
