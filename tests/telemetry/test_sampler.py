"""The sampler on real commands under `logbook run`: the process tree, the host, GPUs through a
fake nvidia-smi, ECC rises and Xid lines as hardware_fault events, and what turns it off."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from helpers import uses_nvidia_smi

from logbook.record.attempt import attempt_row
from logbook.store import Store
from logbook.supervisor.lineage import Placement
from logbook.supervisor.recorder import Recorder, _now
from logbook.telemetry import Sampler

from .conftest import FakeSmi
from .test_gpus import EIGHT_H100, NO_DRIVER

BUSY = "import time\nend = time.time() + {s}\nwhile time.time() < end:\n    pass\n"


def _samples(store_path: Path, run: str) -> list[dict[str, Any]]:
    rows = Store(store_path).read("samples", run=run).to_pylist()
    return sorted(rows, key=lambda r: (r["time"], r["scope"], r["gpu_index"] or 0))


def _events(store_path: Path, run: str, kind: str) -> list[dict[str, Any]]:
    rows = Store(store_path).read("events", run=run).to_pylist()
    return [{**r, "data": json.loads(r["data"] or "null")} for r in rows if r["kind"] == kind]


def _run(run_logbook, store_path: Path, run: str, *cmd: str, every: str = "0.5s", **kw):  # type: ignore[no-untyped-def]
    return run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        run,
        "--no-capture",
        "--sample-every",
        every,
        "--",
        *cmd,
        **kw,
    )


def test_busy_command(run_logbook, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A CPU-bound command shows most of a core; host rows come with every reading; about one
    reading per interval; all in one part (written at the end, not per tick)."""
    _run(run_logbook, store_path, "busy", sys.executable, "-c", BUSY.format(s=3), check=0)
    rows = _samples(store_path, "busy")
    process = [r for r in rows if r["scope"] == "process"]
    host = [r for r in rows if r["scope"] == "host"]
    assert {r["scope"] for r in rows} == {"process", "host"}  # no GPU here, or not asked
    assert max(r["cpu_pct"] or 0 for r in process) > 50
    assert process[0]["cpu_pct"] is None  # the first reading has no base for CPU yet
    assert all(r["rss_bytes"] > 1_000_000 and r["threads"] >= 1 for r in process)
    # ~3 s at 0.5 s: the first reading, ~6 ticks, and the last one after the command ended.
    assert 5 <= len(host) <= 10, [r["time"] for r in host]
    total = psutil.virtual_memory().total
    for r in host[1:]:
        assert 0 <= r["cpu_pct"] <= 100
        assert r["mem_total_bytes"] == total and 0 < r["mem_used_bytes"] < total
        assert r["net_recv_bytes"] >= 0 and r["disk_read_bytes"] >= 0
    assert {r["host"] for r in rows} == {host[0]["host"]} and host[0]["host"]
    assert len({r["attempt_id"] for r in rows}) == 1
    assert len(list((store_path / "samples" / "run=busy").glob("*.parquet"))) == 1


def test_idle_command_and_its_children(run_logbook, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A sleeping command uses next to no CPU; the tree counts the children it starts."""
    script = tmp_path / "tree.py"
    script.write_text(
        textwrap.dedent(
            """
            import subprocess, sys, time
            kids = [subprocess.Popen(["sleep", "2.5"]) for _ in range(3)]
            for k in kids:
                k.wait()
            """
        )
    )
    _run(run_logbook, store_path, "idle", sys.executable, str(script), check=0)
    process = [r for r in _samples(store_path, "idle") if r["scope"] == "process"]
    assert len(process) >= 4
    assert max(r["cpu_pct"] or 0 for r in process[2:]) < 10
    # python (1 thread) and three sleeps, once the tree has been looked at again
    assert max(r["threads"] for r in process) >= 4
    assert all(r["read_bytes"] is not None for r in process)  # our own processes: readable


def test_zero_turns_sampling_off(run_logbook, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _run(run_logbook, store_path, "off", "sleep", "1", every="0", check=0)
    assert Store(store_path).read("samples").num_rows == 0
    assert _events(store_path, "off", "telemetry_unavailable") == []
    # The same from logbook.toml's [run] table.
    (tmp_path / "logbook.toml").write_text('[run]\nsample-every = "0"\n')
    run_logbook(
        "run", "--store", str(store_path), "--run", "off2", "--", "true", cwd=tmp_path, check=0
    )
    assert Store(store_path).read("samples").num_rows == 0


def test_short_interval_refused_before_the_command_starts(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "started"
    p = _run(run_logbook, store_path, "fast", "touch", str(marker), every="0.2s", check=2)
    assert b"--sample-every 0.2s is too short" in p.stderr
    assert b"use 0.5s or more, or 0 to turn telemetry off" in p.stderr
    assert not marker.exists()
    (tmp_path / "logbook.toml").write_text("[run]\nsample-every = 0.1\n")
    p = run_logbook("run", "--", "touch", str(marker), cwd=tmp_path, check=1)
    assert b"--sample-every 0.1s is too short" in p.stderr and not marker.exists()
    assert not (store_path / "attempts").exists()


def test_no_gpu_is_recorded_once_and_not_asked_again(
    run_logbook, store_path: Path, fake_smi: FakeSmi
) -> None:  # type: ignore[no-untyped-def]
    """A failing nvidia-smi: one event with its reason, one call, no GPU rows, no stderr noise,
    and the command's exit code."""
    fake_smi.set(NO_DRIVER, 9)
    code = "import sys, time; time.sleep(2); sys.exit(3)"
    p = _run(
        run_logbook, store_path, "nogpu", sys.executable, "-c", code, env=fake_smi.env, check=3
    )
    assert b"telemetry" not in p.stderr
    assert len(fake_smi.calls()) == 1
    (event,) = _events(store_path, "nogpu", "telemetry_unavailable")
    assert event["severity"] == "warning" and event["source"] == "logbook"
    assert event["message"].startswith(
        "no GPU telemetry: nvidia-smi failed (exit 9, NVIDIA driver is not loaded): "
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    )
    assert event["data"]["what"] == "gpu" and event["data"]["code"] == 9
    rows = _samples(store_path, "nogpu")
    assert rows and all(r["scope"] != "gpu" for r in rows)


def test_no_devices_is_information(run_logbook, store_path: Path, fake_smi: FakeSmi) -> None:  # type: ignore[no-untyped-def]
    fake_smi.set("No devices were found\n", 6)
    _run(run_logbook, store_path, "nodev", "sleep", "1.2", env=fake_smi.env, check=0)
    (event,) = _events(store_path, "nodev", "telemetry_unavailable")
    assert event["severity"] == "info"
    assert event["message"].startswith(
        "no GPU telemetry: nvidia-smi: No devices were found (exit 6)"
    )
    assert len(fake_smi.calls()) == 1


@uses_nvidia_smi
def test_gpus_and_an_ecc_rise(
    run_logbook, store_path: Path, fake_smi: FakeSmi, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Eight GPUs per reading; the command raises GPU 7's corrected ECC counter mid-run (the fake
    reads it from a file): one hardware_fault event with the old and new counts."""
    fake_smi.set(EIGHT_H100).ecc_file.write_text("0")
    code = (
        "import pathlib, time; time.sleep(1.3); "
        f"pathlib.Path({str(fake_smi.ecc_file)!r}).write_text('2'); time.sleep(1.3)"
    )
    _run(run_logbook, store_path, "gpus", sys.executable, "-c", code, env=fake_smi.env, check=0)
    gpus = [r for r in _samples(store_path, "gpus") if r["scope"] == "gpu"]
    readings = len(gpus) // 8
    assert readings >= 4 and len(gpus) == 8 * readings
    assert len(fake_smi.calls()) == readings
    first = gpus[:8]
    assert [r["gpu_index"] for r in first] == list(range(8))
    assert first[0]["power_w"] == 512.43 and first[0]["gpu_mem_total_bytes"] == 81559 * 2**20
    assert first[7]["power_w"] is None and first[5]["ecc_corrected"] is None
    assert {r["ecc_corrected"] for r in gpus if r["gpu_index"] == 7} == {0, 2}
    assert _events(store_path, "gpus", "telemetry_unavailable") == []
    (fault,) = _events(store_path, "gpus", "hardware_fault")
    assert fault["message"] == "GPU 7: corrected ECC errors rose from 0 to 2"
    assert fault["severity"] == "warning"
    assert fault["data"] == {"gpu_index": 7, "counter": "ecc_corrected", "old": 0, "new": 2}


@uses_nvidia_smi
def test_gpu_lost_mid_run(run_logbook, store_path: Path, fake_smi: FakeSmi) -> None:  # type: ignore[no-untyped-def]
    """nvidia-smi works, then exits 15 (a GPU fell off the bus): one hardware_fault event, and
    nvidia-smi is not run again in that attempt."""
    fake_smi.set(EIGHT_H100)
    code_file = fake_smi.folder / "code"
    code = (
        "import pathlib, time; time.sleep(1.3); "
        f"pathlib.Path({str(code_file)!r}).write_text('15'); time.sleep(2.5)"
    )
    _run(run_logbook, store_path, "lost", sys.executable, "-c", code, env=fake_smi.env, check=0)
    gpus = [r for r in _samples(store_path, "lost") if r["scope"] == "gpu"]
    # Every call but one gave a reading: after the failed call, nvidia-smi was not run again
    # (it would have failed again, ~5 times in the 2.5 s left).
    assert len(gpus) >= 16 and len(fake_smi.calls()) == len(gpus) // 8 + 1
    (fault,) = _events(store_path, "lost", "hardware_fault")
    assert fault["severity"] == "error"
    assert fault["message"].startswith(
        "GPU fault: nvidia-smi failed (exit 15, GPU has fallen off the bus or is inaccessible)"
    )
    assert fault["data"]["code"] == 15 and fault["data"]["source"] == "nvidia-smi"
    assert _events(store_path, "lost", "telemetry_unavailable") == []


def test_sampler_failure_never_reaches_the_command(run_logbook, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The samples table cannot be written (a file where its folder goes): a warning, and the
    command's own output and exit code."""
    store_path.mkdir()
    (store_path / "samples").write_text("in the way")
    code = "import sys, time; print('working', flush=True); time.sleep(1.2); sys.exit(7)"
    p = _run(run_logbook, store_path, "blocked", sys.executable, "-c", code, check=7)
    assert p.stdout == b"working\n"
    assert b"could not record telemetry samples" in p.stderr
    attempts = Store(store_path).read("attempts", run="blocked").to_pylist()
    assert attempts[-1]["exit_code"] == 7


def _recorder(store_path: Path, run: str) -> Recorder:
    """A supervisor recorder whose warnings (there should be none) go to a StringIO."""
    store = Store.open(store_path, create=True)
    rec = Recorder(store, run, "a1", warn_stream=io.StringIO())
    rec.started(
        attempt_row(
            run,
            "a1",
            command=["sleep"],
            cwd=store_path,
            host="h",
            placement=Placement("1.00", None, None),
            start=_now(),
        ),
        first_of_run=True,
    )
    return rec


def test_xid_lines_become_hardware_faults(store_path: Path, tmp_path: Path) -> None:
    """The real sampler on a real command, its kernel log a file: lines older than the attempt
    are ignored; an Xid written during it is one hardware_fault event with its number and text."""
    from .test_kernel import XID_LINES

    kern = tmp_path / "kern.log"
    kern.write_text(XID_LINES[0][0] + "\n")
    rec = _recorder(store_path, "xid")
    child = psutil.Popen(["sleep", "3"])
    sampler = Sampler(rec, child.pid, 0.5, {"PATH": str(tmp_path)}, kernel_log=str(kern))
    sampler.start()
    time.sleep(1.0)
    with open(kern, "a") as f:
        f.write("[ 4711.1] usb 1-1: new high-speed USB device number 2\n")
        f.write(XID_LINES[2][0] + "\n")
    child.wait()
    sampler.stop()
    rec.ended(status="completed", end_time=_now())
    assert rec._stream.getvalue() == ""  # type: ignore[attr-defined]
    assert list((store_path / "events").rglob("*.parquet"))  # the journal was folded
    (fault,) = _events(store_path, "xid", "hardware_fault")
    assert fault["severity"] == "error"
    assert fault["message"] == (
        "Xid 79 on PCI:0000:05:00: pid='<unknown>', name=<unknown>, GPU has fallen off the bus."
    )
    assert fault["data"] == {
        "xid": 79,
        "device": "PCI:0000:05:00",
        "text": "pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
        "likely_cause": "hardware",
        "line": XID_LINES[2][0],
    }
    assert sampler.ticks >= 4 and sampler.written == len(_samples(store_path, "xid"))


def test_unreadable_kernel_log_is_recorded_once(store_path: Path, tmp_path: Path) -> None:
    rec = _recorder(store_path, "nokmsg")
    child = psutil.Popen(["sleep", "1.2"])
    missing = str(tmp_path / "no-kmsg")
    sampler = Sampler(rec, child.pid, 0.5, {"PATH": str(tmp_path)}, kernel_log=missing)
    sampler.start()
    child.wait()
    sampler.stop()
    rec.ended(status="completed", end_time=_now())
    assert rec._stream.getvalue() == ""  # type: ignore[attr-defined]
    assert list((store_path / "events").rglob("*.parquet"))  # the journal was folded
    events = _events(store_path, "nokmsg", "telemetry_unavailable")
    assert sorted(e["data"]["what"] for e in events) == ["gpu", "kernel_log"]
    (kernel,) = [e for e in events if e["data"]["what"] == "kernel_log"]
    assert kernel["severity"] == "info" and kernel["data"]["path"] == missing
    assert "No such file or directory" in kernel["message"]
    assert _events(store_path, "nokmsg", "logbook_warning") == []
    assert sampler.ticks >= 2


@uses_nvidia_smi
def test_a_crash_after_a_gpu_fault_is_a_gpu_hardware_crash(
    run_logbook, store_path: Path, fake_smi: FakeSmi
) -> None:  # type: ignore[no-untyped-def]
    """The GPU falls off the bus, then the training dies of whatever error it gets: the attempt's
    class is gpu_hardware, with the fault first in the summary and the evidence."""
    fake_smi.set(EIGHT_H100)
    code_file = fake_smi.folder / "code"
    code = (
        "import pathlib, time; time.sleep(1.3); "
        f"pathlib.Path({str(code_file)!r}).write_text('15'); time.sleep(1.5); "
        "raise ValueError('bad value in batch 12')"
    )
    _run(run_logbook, store_path, "fault", sys.executable, "-c", code, env=fake_smi.env, check=1)
    [attempt] = Store(store_path).read("attempts", run="fault").to_pylist()[-1:]
    assert (attempt["status"], attempt["crash_class"], attempt["rule"]) == (
        "crashed",
        "gpu_hardware",
        "hardware-fault",
    )
    assert attempt["summary"].startswith("GPU fault: nvidia-smi failed (exit 15")
    assert (attempt["component"], attempt["planned"]) == ("gpu", False)  # not software_bug (#19)
    assert "ValueError" in attempt["summary"]
    evidence = json.loads(attempt["evidence"])
    assert evidence["class_from_output"] == "python_exception"
    assert evidence["hardware_faults"][0].startswith("GPU fault:")


def test_a_long_attempt_merges_its_samples_as_it_goes(store_path: Path) -> None:
    """Every COMPACT_EVERY parts the run's samples are merged, so a week-long attempt does not
    leave ten thousand parts for its queries; no reading is lost on the way."""
    from logbook.telemetry import sampler as sampling

    rec = _recorder(store_path, "long")
    child = psutil.Popen(["sleep", "30"])
    try:
        sampler = Sampler(rec, child.pid, 1.0, {"PATH": ""})
        for _ in range(2 * sampling.COMPACT_EVERY + 3):  # a part a minute, for two hours
            sampler.tick()
            sampler.flush()
    finally:
        child.kill()
        child.wait()
    parts = list((store_path / "samples").rglob("*.parquet"))
    assert len(parts) <= 5, len(parts)
    assert sampler.parts == 2 * sampling.COMPACT_EVERY + 3
    assert len(_samples(store_path, "long")) == sampler.written > 0


def test_the_last_reading_is_taken_in_a_thread_of_its_own_while_the_end_goes_on(
    store_path: Path, tmp_path: Path
) -> None:
    # The sampler runs at the wrapper's priority (niced, its readings slipped on a busy machine,
    # and nvidia-smi, its child, ran niced too). Its last reading and write held the job's exit:
    # `stop_soon` (the command has ended) starts them in a thread of their own and returns at
    # once; `stop` waits for them.
    rec = _recorder(store_path, "last")
    child = psutil.Popen(["sleep", "1.2"])
    sampler = Sampler(rec, child.pid, 0.5, {"PATH": str(tmp_path)})
    seen: list[tuple[str, int]] = []  # each reading's thread and its niceness
    real_tick = sampler.tick

    def tick() -> None:
        me = threading.current_thread().name
        seen.append((me, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        real_tick()

    sampler.tick = tick  # type: ignore[method-assign]
    sampler.start()
    child.wait()
    sampler.stop_soon()
    ending = sampler._ending
    assert ending is not None
    sampler.stop()
    rec.ended(status="completed", end_time=_now())
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert not ending.is_alive() and len(seen) >= 3, seen
    assert set(seen[:-1]) == {("logbook-sampler", base)}, seen
    assert seen[-1] == ("logbook-sampler-end", base)
    assert sampler.written == len(_samples(store_path, "last")) > 0
