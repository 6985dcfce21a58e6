"""The telemetry sampler: a background thread of the wrapper that reads the command's process tree,
the host and the GPUs every `--sample-every` seconds into the samples table.

It must never disturb the command: one daemon thread at low priority, every failure caught, a
few milliseconds a tick. Readings are kept in memory and written as one Parquet part every
FLUSH_S seconds and at the attempt's end. GPUs that cannot be read are recorded once as a
`telemetry_unavailable` event and not asked again in that attempt; a rise of a GPU's ECC error
counters, or an Xid in the kernel log, is a `hardware_fault` event.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from logbook.errors import ConfigError

if TYPE_CHECKING:
    from logbook.supervisor.recorder import Recorder
    from logbook.telemetry.gpus import GpuReader, GpuRow, GpuUnavailable
    from logbook.telemetry.kernel import KernelLog

MIN_EVERY_S = 0.5  # below this the sampler itself would show in the command's CPU
FLUSH_S = 60.0  # write the buffered rows as one part this often (and at the end)
FLUSH_ROWS = 5000  # ...or when this many are buffered (many GPUs at a short interval)
COMPACT_EVERY = 64  # parts written, then the run's samples are merged (a week is ~10,000 parts)
# Looking for new processes in the command's tree reads every /proc/PID/stat (~20 us a process):
# done every tick unless that costs more than this share of one core (a node with thousands of
# processes at --sample-every 1s), then less often.
TREE_CPU_SHARE = 0.002
STOP_WAIT_S = 15.0  # at the end, how long the wrapper waits for the last reading and write
MAX_XID_EVENTS = 50  # per attempt; an Xid storm is counted, not recorded line by line
_ECC = (("ecc_corrected", "corrected", "warning"), ("ecc_uncorrected", "uncorrected", "error"))


def check_every(seconds: float, what: str = "--sample-every") -> float:
    """The sampling interval, refused before anything starts when it is too short.

    Raises:
        ConfigError: a positive interval under MIN_EVERY_S.
    """
    if 0 < seconds < MIN_EVERY_S:
        raise ConfigError(
            f"{what} {seconds:g}s is too short: the sampler would compete with the command",
            hint=f"use {MIN_EVERY_S:g}s or more, or 0 to turn telemetry off",
        )
    return seconds


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ppids() -> dict[int, int] | None:
    """pid -> parent pid for every process, from /proc (Linux); None elsewhere. About 20 us a
    process, half of psutil.Process.children(recursive=True)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    out: dict[int, int] = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            out[int(name)] = int(stat[stat.rindex(b")") + 2 :].split(b" ", 2)[1])
        except (OSError, ValueError, IndexError):
            continue
    return out or None


class Sampler:
    """Samples one attempt: its process tree (rooted at `pid`), the host, and the GPUs.

    Args:
        recorder: the attempt's recorder (rows go to its store, events through it).
        pid: the command's process.
        every_s: seconds between readings.
        env: the command's environment (nvidia-smi is looked up on its PATH).
        kernel_log: where Xid lines are read from.
        machine: also read the host, the GPUs and the kernel log; False for a wrapper that shares
            its host with another of the launch (one per worker), which reads them already.
    """

    def __init__(
        self,
        recorder: Recorder,
        pid: int,
        every_s: float,
        env: Mapping[str, str],
        *,
        kernel_log: str | None = None,
        machine: bool = True,
    ) -> None:
        self.recorder = recorder
        self.machine = machine
        self.pid = pid
        self.every_s = every_s
        self.env = dict(env)
        self.kernel_log_path = kernel_log
        self.rows: list[dict[str, Any]] = []
        self.ticks = 0
        self.written = 0
        self.parts = 0  # samples parts written
        self.xids = 0
        # Hardware faults seen in this attempt (not corrected ECC, not application Xids): if the
        # command then crashes, they are its likely cause (session.py).
        self.faults: list[str] = []
        self.cpu_s = 0.0  # the thread's own CPU time, once it has stopped (benchmarks/)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ending: threading.Thread | None = None  # the last reading and write (`stop_soon`)
        self._host = recorder.host
        self._procs: dict[int, Any] = {}  # pid -> psutil.Process, kept so cpu_percent has a base
        self._tree_at = -float("inf")
        self._tree_every_s = 0.0
        self._gpus: GpuReader | None = None
        self._ecc: dict[tuple[Any, str], int] = {}
        self._kernel: KernelLog | None = None
        self._next_flush = time.monotonic() + FLUSH_S
        self._failed: set[str] = set()

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="logbook-sampler", daemon=True)
        self._thread.start()

    def stop_soon(self) -> None:
        """The command has ended: take the last reading and write what is buffered, in a thread
        of its own while the caller goes on with the rest of the end (the output's drain and
        parse); after them, on a busy machine, they held the job's exit for a third of a
        second."""
        if self._thread is None or self._ending is not None:
            return
        self._stop.set()
        self._ending = threading.Thread(target=self._end, name="logbook-sampler-end", daemon=True)
        self._ending.start()

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """Take the last reading, write what is buffered, and stop (waiting at most `timeout`)."""
        self.stop_soon()
        if self._ending is not None:
            self._ending.join(timeout)
            if self._ending.is_alive():
                self.recorder.warn(
                    f"the telemetry sampler did not finish within {timeout:g} s; "
                    "its last readings are not recorded"
                )

    def _end(self) -> None:
        assert self._thread is not None
        self._thread.join()  # its reading in flight
        cpu = time.thread_time()
        self._guard("last reading", self.tick)
        self._guard("write", self.flush)
        self._guard("close", self._close)
        self.cpu_s += time.thread_time() - cpu

    def _run(self) -> None:
        self._guard("start", self._open)
        next_at = time.monotonic() + self.every_s
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self._guard("tick", self.tick)
            next_at += self.every_s
            if next_at <= time.monotonic():  # a slow tick (swapping host): skip, do not catch up
                next_at = time.monotonic() + self.every_s
        self.cpu_s = time.thread_time()  # the last reading and write: `_end`

    def _close(self) -> None:
        if self._gpus is not None:
            self._gpus.close()
        if self._kernel is not None:
            self._kernel.close()
        if self.xids > MAX_XID_EVENTS:
            self.recorder.event(
                "logbook_warning",
                f"{self.xids} Xid lines in the kernel log; the first {MAX_XID_EVENTS} are "
                "hardware_fault events",
                severity="warning",
                source="logbook",
                data={"xid_lines": self.xids},
            )

    def _guard(self, what: str, fn: Any) -> None:
        try:
            fn()
        except Exception as e:  # a bug here must never reach the command or the exit code
            if what not in self._failed:
                self._failed.add(what)
                self.recorder.warn(
                    f"telemetry sampler ({what}) failed: {e!r}; the training goes on"
                )

    def _open(self) -> None:
        """Prime the CPU counters, open the kernel log, find the GPUs; take the first reading."""
        import psutil

        psutil.cpu_percent(None)
        self._guard("process tree", self._refresh_tree)
        if not self.machine:
            self._record([], first=True)
            return
        self._guard("kernel log", self._open_kernel_log)
        self._record(self._open_gpus(), first=True)

    # readings --------------------------------------------------------------------------------

    def tick(self) -> None:
        """One reading of every scope, appended to the buffer; a write when one is due."""
        self.ticks += 1
        self._record(self._read_gpus() if self._gpus is not None else [])
        if self._kernel is not None:
            self._guarded_read("kernel log", self._read_kernel_log)
        if len(self.rows) >= FLUSH_ROWS or time.monotonic() >= self._next_flush:
            self.flush()

    def _record(self, gpus: list[GpuRow], *, first: bool = False) -> None:
        """Buffer one reading: the process tree, the host, and the GPUs read just before. The
        first reading has no CPU figures: they are measured from one reading to the next."""
        base = {"attempt_id": self.recorder.attempt_id, "time": _now(), "host": self._host}
        no_cpu = {"cpu_pct": None} if first else {}
        process = self._guarded_read("process", self._read_process)
        if process is not None:
            self.rows.append({**base, "scope": "process", **process, **no_cpu})
        host = self._guarded_read("host", self._read_host) if self.machine else None
        if host is not None:
            self.rows.append({**base, "scope": "host", **host, **no_cpu})
        for gpu in gpus:
            self.rows.append({**base, "scope": "gpu", **gpu})
            self._check_ecc(gpu)

    def _guarded_read(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as e:  # one unreadable scope must not lose the others
            if what not in self._failed:
                self._failed.add(what)
                self.recorder.warn(f"telemetry: could not read {what}: {e!r}")
            return None

    def _refresh_tree(self) -> None:
        """Find the command's process tree: the root and every descendant."""
        import psutil

        self._tree_at, cpu = time.monotonic(), time.thread_time()
        ppids = _ppids()
        if ppids is not None:
            children: dict[int, list[int]] = {}
            for child, parent in ppids.items():
                children.setdefault(parent, []).append(child)
            tree, todo = set(), [self.pid] if self.pid in ppids else []
            while todo:
                p = todo.pop()
                if p not in tree:
                    tree.add(p)
                    todo.extend(children.get(p, ()))
        else:
            try:
                root = psutil.Process(self.pid)
                tree = {self.pid, *(c.pid for c in root.children(recursive=True))}
            except psutil.Error:
                tree = set()
        for gone in set(self._procs) - tree:
            del self._procs[gone]
        for pid in tree - set(self._procs):
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)  # the base of its first reading
            except psutil.Error:
                continue
            self._procs[pid] = proc
        self._tree_every_s = (time.thread_time() - cpu) / TREE_CPU_SHARE

    def _read_process(self) -> dict[str, Any] | None:
        """The command's tree: CPU (percent of one core, summed), RSS, threads, I/O bytes."""
        import psutil

        if time.monotonic() - self._tree_at >= self._tree_every_s:
            self._refresh_tree()
        cpu, rss, threads = 0.0, 0, 0
        read: int | None = None
        written: int | None = None
        alive = 0
        for pid, proc in list(self._procs.items()):
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                    threads += proc.num_threads()
                    try:
                        io = proc.io_counters()
                        read = (read or 0) + io.read_bytes
                        written = (written or 0) + io.write_bytes
                    except (psutil.AccessDenied, AttributeError):
                        pass  # another user's process, or a platform without it
                alive += 1
            except psutil.Error:  # ended since the last look
                del self._procs[pid]
        if not alive:
            return None
        return {
            "cpu_pct": round(cpu, 2),
            "rss_bytes": rss,
            "threads": threads,
            "read_bytes": read,
            "write_bytes": written,
        }

    def _read_host(self) -> dict[str, Any]:
        """The host: CPU (percent of all cores), memory in use and in all, disk and network."""
        import psutil

        mem = psutil.virtual_memory()
        row: dict[str, Any] = {
            "cpu_pct": psutil.cpu_percent(None),
            "mem_used_bytes": mem.total - mem.available,
            "mem_total_bytes": mem.total,
        }
        try:
            disk = psutil.disk_io_counters()
            if disk is not None:
                row.update(disk_read_bytes=disk.read_bytes, disk_write_bytes=disk.write_bytes)
        except (OSError, RuntimeError):
            pass  # no disks to count (some containers)
        try:
            net = psutil.net_io_counters()
            if net is not None:
                row.update(net_sent_bytes=net.bytes_sent, net_recv_bytes=net.bytes_recv)
        except (OSError, RuntimeError):
            pass
        return row

    # GPUs ------------------------------------------------------------------------------------

    def _open_gpus(self) -> list[GpuRow]:
        """Find the GPU source of this attempt; its first reading, or [] (recorded once why)."""
        from logbook.telemetry.gpus import GpuUnavailable, open_reader

        try:
            self._gpus, first = open_reader(self.env)
        except GpuUnavailable as e:
            self._gpus_unavailable(e, first=True)
            return []
        except Exception as e:  # a bug or a surprise of the bindings: no GPUs, said once
            self._gpus_unavailable(GpuUnavailable(repr(e)), first=True)
            return []
        return first

    def _read_gpus(self) -> list[GpuRow]:
        from logbook.telemetry.gpus import GpuUnavailable

        assert self._gpus is not None
        try:
            return self._gpus.read()
        except GpuUnavailable as e:
            self._gpus_unavailable(e, first=False)
        except Exception as e:  # likewise: stop asking rather than fail every tick
            self._gpus_unavailable(GpuUnavailable(repr(e)), first=False)
        return []

    def _gpus_unavailable(self, e: GpuUnavailable, *, first: bool) -> None:
        """Record once why there are no GPU readings, and ask no more in this attempt."""
        source = self._gpus.source if self._gpus is not None else None
        if self._gpus is not None:
            self._gpus.close()
            self._gpus = None
        data = {"what": "gpu", "reason": e.reason, "code": e.code, "source": source}
        if e.hardware:  # a GPU off the bus, a corrupt infoROM: the failure is the finding
            self.faults.append(f"GPU fault: {e.reason}")
            self.recorder.event(
                "hardware_fault",
                f"GPU fault: {e.reason}",
                severity="error",
                data=data,
            )
        else:
            when = "" if first else "stopped: "
            self.recorder.event(
                "telemetry_unavailable",
                f"no GPU telemetry: {when}{e.reason}",
                severity=e.severity if first else "warning",
                source="logbook",
                data=data,
            )

    def _check_ecc(self, gpu: GpuRow) -> None:
        """A rise of a volatile ECC counter since the last reading is a hardware fault."""
        index = gpu.get("gpu_index")
        for column, name, severity in _ECC:
            new = gpu.get(column)
            if new is None:
                continue
            old = self._ecc.get((index, column))
            self._ecc[(index, column)] = new
            if old is not None and new > old:
                if severity == "error":
                    self.faults.append(f"GPU {index}: {name} ECC errors rose from {old} to {new}")
                self.recorder.event(
                    "hardware_fault",
                    f"GPU {index}: {name} ECC errors rose from {old} to {new}",
                    severity=severity,
                    data={"gpu_index": index, "counter": column, "old": old, "new": new},
                )

    # kernel log ------------------------------------------------------------------------------

    def _open_kernel_log(self) -> None:
        from logbook.telemetry.kernel import KMSG, KernelLog

        path = self.kernel_log_path or KMSG
        try:
            self._kernel = KernelLog(path)
        except OSError as e:
            self.recorder.event(
                "telemetry_unavailable",
                f"no Xid watch: cannot read the kernel log {path}: {e.strerror or e}",
                severity="info",
                source="logbook",
                data={"what": "kernel_log", "reason": str(e), "path": path},
            )

    def _read_kernel_log(self) -> None:
        from logbook.telemetry.kernel import parse_xid

        assert self._kernel is not None
        for line in self._kernel.new_lines():
            xid = parse_xid(line)
            if xid is None:
                continue
            self.xids += 1
            if xid.likely_cause == "hardware" and len(self.faults) < MAX_XID_EVENTS:
                self.faults.append(f"Xid {xid.xid} on {xid.device}: {xid.text}"[:300])
            if self.xids > MAX_XID_EVENTS:
                continue
            self.recorder.event(
                "hardware_fault",
                f"Xid {xid.xid} on {xid.device}: {xid.text}"[:500],
                severity="error",
                data={
                    "xid": xid.xid,
                    "device": xid.device,
                    "text": xid.text,
                    "likely_cause": xid.likely_cause,
                    "line": xid.line[:1000],
                },
            )

    # writing ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the buffered rows as one part of the samples table."""
        rows, self.rows = self.rows, []
        self._next_flush = time.monotonic() + FLUSH_S
        store = self.recorder.store
        if rows and store is not None:
            self.recorder._safe(
                "telemetry samples", lambda: store.write("samples", self.recorder.run, rows)
            )
            self.parts += 1
            if self.parts % COMPACT_EVERY == 0:  # keep queries fast during a long attempt
                self.recorder._safe("the samples' compaction", lambda: self._compact(store))
        self.written += len(rows)

    def _compact(self, store: Any) -> None:
        from logbook.store.compact import compact

        compact(store, ["samples"], run=self.recorder.run, min_parts=COMPACT_EVERY)


def start_sampler(
    recorder: Recorder, pid: int, every_s: float, env: Mapping[str, str], *, machine: bool = True
) -> Sampler | None:
    """Start sampling the command `pid`; None when sampling is off or nothing would be recorded.
    `machine`: see Sampler."""
    if every_s <= 0 or recorder.store is None:
        return None
    try:
        sampler = Sampler(recorder, pid, every_s, env, machine=machine)
        sampler.start()
    except Exception as e:  # e.g. no thread can be started: the command runs without telemetry
        recorder.warn(f"the telemetry sampler could not start: {e!r}")
        return None
    return sampler
