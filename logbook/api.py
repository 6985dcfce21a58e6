"""The Python API: `Recorder` records metrics, events, notes, data mixes and settings from the
training process itself.

    rec = Recorder()                       # or logbook.log(...), which uses a default Recorder
    rec.log({"loss": 2.31, "lr": 3e-4}, step=1200)   # without step=: the step after the last
    rec.data_mix({"web": 0.6, "code": 0.4}, step=1200)

Where the rows go:

- Under `logbook run` (LOGBOOK_ATTEMPT_ID set) the recorder joins the wrapper's attempt: its rows
  carry that attempt_id, and it writes no attempt rows (the wrapper owns the attempt).
- On its own it starts an attempt of `run` (default: the script's stem) after the run's previous
  ones, journaled as running; at `close()` or at exit it journals the end and folds the journal.
  The end is `crashed` when the process ends with an uncaught exception (we chain
  `sys.excepthook`; exit code 1, and a `crash` event classified by logbook.forensics) or with a
  status other than 0 given to `sys.exit` (which we wrap: atexit is not told the status), else
  `completed`; the attempt's `exit_code` is the process's. `raise SystemExit(3)` and the `exit()`
  builtin bypass `sys.exit` and read as 0, and a `sys.exit` the program catches still counts.

Cost: `log` appends to per-column arrays under a lock (no per-point objects); a daemon thread
writes one Parquet part every FLUSH_S seconds, and a buffer of FLUSH_POINTS points is handed to it
at once, so memory stays bounded. A store failure never reaches the training: one warning on stderr
and the rows are dropped. Values that are not numbers are skipped and counted; nan and inf are kept.

Ranks: where RANK, SLURM_PROCID or LOCAL_RANK (the first set) is not 0, every method is a no-op
unless `all_ranks=True`.

Fork: the child drops the parent's unflushed rows (the parent writes them) and starts its own
writer thread on its next call; its rows join the same attempt, and it never writes attempt rows.
A child that ends with `os._exit` (multiprocessing does) skips atexit: call `flush()` before.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import sys
import threading
import time
import uuid
import weakref
from array import array
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.record.attempt import AttemptJournal
    from logbook.store import Store

__all__ = ["Recorder", "get_recorder", "init"]

FLUSH_S = 5.0  # the writer thread writes what is buffered this often
FLUSH_POINTS = 250_000  # a buffer this full is handed to the writer at once (bounded memory)
MAX_NAMES = 10_000  # distinct metric names per recorder; values of more are skipped and counted
HEARTBEAT_S = 15.0
_NO_STEP = -(2**63)  # null marker inside the int64 step buffer
_RANK_VARS = ("RANK", "SLURM_PROCID", "LOCAL_RANK")
# One name for the learning rate whoever records it: the output parser's (`record/parsers.py`
# ALIASES) and the Transformers Trainer's.
_METRIC_ALIASES = {"lr": "learning_rate"}

_live: weakref.WeakSet[Recorder] = weakref.WeakSet()
_crashed: list[BaseException] = []  # the uncaught exception, once the excepthook saw one
_exit_status: list[int] = []  # what the main thread passed to sys.exit, last call last
_hooked = False


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _rank(env: Mapping[str, str]) -> int:
    for var in _RANK_VARS:
        value = env.get(var)
        if value not in (None, ""):
            try:
                return int(str(value))
            except ValueError:
                return 0
    return 0


class _Columns:
    """Unflushed metric points, one array per column."""

    __slots__ = ("codes", "values", "times", "steps")

    def __init__(self) -> None:
        self.codes = array("i")
        self.values = array("d")
        self.times = array("q")
        self.steps = array("q")

    def __len__(self) -> int:
        return len(self.codes)


class Recorder:
    """Records from inside the training into the store; see the module docstring.

    Args:
        store: the store's folder; default as the CLI finds it (LOGBOOK_STORE, logbook.toml, ...).
        run: the run; default LOGBOOK_RUN under `logbook run`, else the script's stem.
        all_ranks: record on every rank, not only rank 0.
        detect: run the instability detectors (loss spikes, NaN, ...) on logged metrics, in the
            writer thread, with logbook.toml's [detectors] settings.
    """

    def __init__(
        self,
        store: str | Path | None = None,
        run: str | None = None,
        *,
        all_ranks: bool = False,
        detect: bool = True,
    ) -> None:
        env = os.environ
        self.active = all_ranks or _rank(env) == 0
        self.store: Store | None = None
        self.run = run or env.get("LOGBOOK_RUN") or _script_stem()
        self.attempt_id: str = env.get("LOGBOOK_ATTEMPT_ID") or ""
        self.label: str | None = env.get("LOGBOOK_ATTEMPT") if self.attempt_id else None
        self.joined = bool(self.attempt_id)  # under `logbook run`: the wrapper owns the attempt
        self._last_step = -1  # the step `log` takes next without one is this plus one
        self.skipped = 0  # values that were not numbers, or of names past MAX_NAMES
        self.written = 0  # metric points written
        self.dropped = 0  # metric points lost to a store failure
        self._lock = threading.Lock()
        self._cols = _Columns()
        self._rows: dict[str, list[dict[str, Any]]] = {"events": [], "snapshots": []}
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self._key_cache: dict[tuple[str, ...], array[int]] = {}
        self._mix: dict[str, Any] | None = None
        self.detect = detect
        self._detectors: Any = None  # logbook.record.detectors.Detectors, made in the writer thread
        self._warned: set[str] = set()
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._handoff: list[tuple[_Columns, dict[str, list[dict[str, Any]]]]] = []
        self._write_lock = threading.Lock()
        self._journal: AttemptJournal | None = None
        self._attempt: dict[str, Any] = {}
        self._closed = False
        self._owner = False  # this process journals the attempt's start and end
        self.url: str | None = None  # a remote store's: `store` is then this host's spool of it
        self._uploader: Any = None  # logbook.store.uploader.Uploader, for a remote store
        if not self.active:
            return
        self._open(store)
        _live.add(self)
        _install_hooks()

    # setup -----------------------------------------------------------------------------------

    def _open(self, store: str | Path | None) -> None:
        from logbook.settings import find_store, store_url
        from logbook.store import Store, layout

        try:
            root = Path(os.environ["LOGBOOK_STORE"]) if self.joined and store is None else None
            url = None if root is not None else store_url(store)
            if url is not None:  # recorded into this host's spool of it and uploaded, as by
                from logbook.store import remote  # the wrapper (store/uploader.py)

                root = remote.make_spool(url)
            elif root is None:
                root, _ = find_store(store)
            layout.check_run_name(self.run)
            self.store = Store.open(root, create=True)
            if url is not None:
                self._start_uploads(url)
        except Exception as e:
            self._warn(
                f"cannot use the store ({_reason(e)}); nothing from this process is recorded"
            )
            self.store = None
            return
        if not self.joined:
            self._start_attempt()

    def _start_uploads(self, url: str) -> None:
        """The thread that uploads the spool of the remote store `url`, finished at `close`."""
        from logbook.store import uploader

        assert self.store is not None
        self.url = url
        self._uploader = uploader.Uploader(self.store.root, url, say=self._warn).start()
        if uploader.current() is None:  # parts written in this process nudge it
            uploader.set_current(self._uploader)
        self._uploader.nudge()  # what an earlier process left in the spool goes up first

    def _finish_uploads(self) -> None:
        """The last uploads, at most uploader.FINISH_S; what stays is named in a warning."""
        from logbook.store import uploader

        up, self._uploader = self._uploader, None
        if up is None or self._pid != os.getpid():  # a forked child: its parent uploads
            return
        if uploader.current() is up:
            uploader.set_current(None)
        self._safe("the last uploads", up.finish)

    def _start_attempt(self) -> None:
        from logbook.record.attempt import AttemptJournal, attempt_row, place, runs_row
        from logbook.record.redact import redact_command
        from logbook.supervisor.nodes import host_name

        assert self.store is not None
        store = self.store
        self.attempt_id = uuid.uuid4().hex
        try:
            placement = place(store, self.run, url=self.url)
            self._attempt = attempt_row(
                self.run,
                self.attempt_id,
                command=redact_command(list(sys.argv)),
                cwd=Path.cwd(),
                host=host_name(),
                placement=placement,
                start=_now(),
                pid=os.getpid(),
            )
            self.label = placement.label
            self._journal = AttemptJournal(store, self.run)
            first = [("runs", runs_row(self._attempt))] if placement.parent_id is None else []
            self._journal.start([*first, ("attempts", self._attempt)])
            self._owner = True
        except Exception as e:
            self._warn(f"could not start an attempt of {self.run} ({_reason(e)}); not recorded")
            self.store = None
            return
        self._start_thread()  # which writes the start as Parquet too (`_seal_start`)

    # the API ---------------------------------------------------------------------------------

    def log(self, values: Mapping[str, Any], *, step: int | None = None) -> None:
        """Record metric values seen now, at `step`; without one, at the step after the last one
        logged (0 first), as `wandb.log` does. Nested dicts are flattened with `/`
        (`{"train": {"loss": 1.0}}` is `train/loss`), and `lr` is recorded as `learning_rate`, the
        name the output parser and Transformers give it."""
        if self.store is None or self._closed:
            return
        t = time.time_ns() // 1000
        with self._lock:
            s = self._last_step + 1 if step is None else int(step)
            self._last_step = s
            if self._thread is None or self._pid != os.getpid():
                self._start_thread()
            cols = self._cols
            keys = tuple(values)
            codes = self._key_cache.get(keys)
            n0 = len(cols.values)
            if codes is not None:
                try:
                    cols.values.extend(values.values())  # type: ignore[arg-type]
                except (TypeError, ValueError, OverflowError):
                    del cols.values[n0:]
                    codes = None
            if codes is None:
                codes = self._slow_points(values, cols)
            else:
                cols.codes.extend(codes)
            n = len(codes)
            if n:
                cols.times.extend(array("q", (t,)) * n)
                cols.steps.extend(array("q", (s,)) * n)
            full = len(cols) >= FLUSH_POINTS
            if full:
                self._handoff_locked()
        if full:
            self._wake.set()
            self._backpressure()

    def _slow_points(self, values: Mapping[str, Any], cols: _Columns) -> array[int]:
        """Append the numbers of `values` one by one; cache the keys when all were usable and
        none nested (the cached path appends `values.values()` as they are)."""
        codes = array("i")
        flat = _flat_items(values)
        for name, value in flat:
            if isinstance(value, (str, bytes)) or not isinstance(name, str):
                self.skipped += 1
                continue
            try:
                x = float(value)
            except (TypeError, ValueError, OverflowError):
                self.skipped += 1
                continue
            code = self._codes.get(name)
            if code is None:
                code = self._new_code(name)
                if code is None:
                    self.skipped += 1
                    continue
            codes.append(code)
            cols.values.append(x)
        cols.codes.extend(codes)
        if len(codes) == len(flat) == len(values) and len(self._key_cache) < 1000:
            self._key_cache[tuple(values)] = codes
        return codes

    def _new_code(self, name: str) -> int | None:
        """The code of a name not seen before (`lr` shares `learning_rate`'s); None past
        MAX_NAMES names."""
        metric = _METRIC_ALIASES.get(name, name)
        code = self._codes.get(metric)
        if code is None:
            if len(self._names) >= MAX_NAMES:
                return None
            code = self._codes[metric] = len(self._names)
            self._names.append(metric)
        self._codes[name] = code
        return code

    def event(
        self,
        kind: str,
        message: str | None = None,
        *,
        step: int | None = None,
        severity: str = "info",
        **data: Any,
    ) -> None:
        """Record an event of `kind`; keyword arguments become its JSON data."""
        self._event(kind, message, step=step, severity=severity, data=data or None)

    @contextlib.contextmanager
    def phase(self, name: str, *, step: int | None = None) -> Iterator[None]:
        """Time a stretch that is not training, e.g. `with rec.phase("checkpoint_save"):`, as a
        `phase` event at its start with its duration (#19); `logbook goodput` files its time under
        the phase. `name` is one of checkpoint_save, checkpoint_restore, evaluation, compilation,
        data_loading (logbook/record/phases.py).

        Raises:
            ValueError: `name` is not a phase.
        """
        from logbook.record import phase_marks
        from logbook.record.phases import PHASES

        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}: use one of {', '.join(PHASES)}")
        if step is None and self._last_step >= 0:  # a save holds the last step logged before it
            step = self._last_step
        start, t0 = _now(), time.monotonic()
        phase_marks.mark("start", name)  # the wrapper's hang watch sees it now
        try:
            yield
        finally:
            seconds = time.monotonic() - t0
            phase_marks.mark("end", name, seconds)
            self.record_phase(name, start, seconds, step=step)

    def record_phase(
        self,
        name: str,
        start: datetime,
        seconds: float,
        *,
        step: int | None = None,
        how: str = "api",
    ) -> None:
        """Record a phase that began at `start` and lasted `seconds` (what `phase` and the
        callbacks write, #19); `how`: api or callback."""
        data = {
            "phase": name,
            "duration_s": round(max(seconds, 0.0), 3),
            "end": (start + timedelta(seconds=max(seconds, 0.0))).isoformat(),
            "how": how,
        }
        self._event("phase", f"{name} {seconds:.1f} s", step=step, data=data, at=start)

    def note(self, text: str, *, step: int | None = None) -> None:
        """Record a note for people, as `logbook note` does."""
        self._event("note", text, step=step)

    def data_mix(
        self, mix: Mapping[str, float | Mapping[str, Any]], *, step: int | None = None
    ) -> None:
        """Declare the data mix: source -> weight, or -> {weight, tokens, path(s), ...}; paths
        (relative to the working folder) are fingerprinted. A change from the mix in force before
        (this process's last declaration, else the newest on record for the run) also becomes a
        `data_mix_change` event. A malformed mix is skipped with a warning."""
        if self.store is None or self._closed:
            return
        from logbook.record import datamix

        try:
            new = datamix.with_fingerprints(datamix.normalise(mix), Path.cwd())
        except Exception as e:
            self._warn(f"logbook.data_mix: {_reason(e)}; not recorded")
            return
        self._event("data_mix", datamix.summary(new), step=step, data={"mix": new})
        old, self._mix = self._mix, new
        if old is None:
            try:
                old = datamix.last_recorded(self.store, self.run)
            except Exception as e:  # a damaged part: no comparison this time
                self._warn(f"could not read the data mix on record: {_reason(e)}")
        change = datamix.change_data(old, new) if old is not None else None
        if change is not None:
            self._event("data_mix_change", change[0], step=step, data=change[1])

    def config(self, values: Mapping[str, Any]) -> None:
        """Record settings as snapshot rows of kind `api_config` (apart from `config`, the
        --config file the wrapper compares with the parent attempt), nested keys joined with dots
        and values as JSON; secrets redacted by name."""
        from logbook.record.hparams import flatten

        pairs = [(k, json.dumps(v, default=str)) for k, v in flatten(values).items()]
        self._snapshots("api_config", pairs)

    def add_tags(self, *tags: str) -> None:
        """Tag the attempt: one snapshot row of kind `tag` per tag, its text as the value."""
        self._snapshots("tag", [("tag", t) for t in self._texts("tags", tags)])

    def set_group(self, group: str) -> None:
        """Put the attempt in a group (a sweep, an ablation): a snapshot row of kind `group`."""
        self._snapshots("group", [("group", g) for g in self._texts("group", [group])])

    def _texts(self, what: str, values: Any) -> list[str]:
        """The strings of `values`; anything else is skipped with a warning."""
        texts = [v for v in values if isinstance(v, str) and v]
        if len(texts) != len(values):
            self._warn(f"{what}: only non-empty strings are recorded; the rest were skipped")
        return texts

    def _snapshots(self, kind: str, pairs: list[tuple[str, str]]) -> None:
        """Snapshot rows of `kind` for (name, value) pairs; secrets redacted by name."""
        if self.store is None or self._closed or not pairs:
            return
        from logbook.record.redact import redact_value

        stamp = _now()
        rows = []
        for key, value in pairs:
            shown, why = redact_value(key, value)
            rows.append(
                {
                    "run": self.run,
                    "attempt_id": self.attempt_id,
                    "time": stamp,
                    "kind": kind,
                    "name": key,
                    "value": shown,
                    "status": "redacted" if why else "ok",
                    "detail": why,
                }
            )
        with self._lock:
            self._rows["snapshots"].extend(rows)
            if self._thread is None or self._pid != os.getpid():
                self._start_thread()

    def flush(self) -> None:
        """Write everything buffered now (one part per table)."""
        if self.store is None:
            return
        with self._lock:
            self._handoff_locked()
        self._drain()

    def close(self) -> None:
        """Flush, and end the attempt when this process started it: completed, or crashed when an
        exception is on its way out. Later calls do nothing."""
        self._close(exit_status=None)

    def _close(self, exit_status: int | None) -> None:
        """`exit_status`: the process's, at exit (0 unless `sys.exit` gave another)."""
        if self.store is None:  # the attempt could not start: what the spool holds still goes up
            self._finish_uploads()
            return
        if self._closed:
            return
        if self.skipped:
            self._event(
                "logbook_warning",
                f"{self.skipped} metric values were not numbers (or past {MAX_NAMES} names) "
                "and were skipped",
                severity="warning",
                data={"skipped": self.skipped},
            )
        crash: tuple[str, dict[str, Any]] | None = None
        fields: dict[str, Any] = {}
        if self._owner:  # the wrapper, when there is one, records its own end
            from logbook.record.ending import end_of_process

            fields, crash = end_of_process(
                _crashed[0] if _crashed else None,
                self._attempt["start_time"],
                _now(),
                exit_status=exit_status,
            )
            if crash is not None:
                self._event("crash", crash[0], severity="error", data=crash[1])
        self.flush()
        self._closed = True
        self._wake.set()
        if self._owner and self._journal is not None:
            self._attempt.update(fields)
            with self._write_lock:
                how = self._journal.finish([("attempts", self._attempt)])
                self._journal = None
            if how != "folded":
                self._warn(f"the end of the attempt is {how} (the next logbook command folds it)")
        self._finish_uploads()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and not issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            _crashed.append(exc)
        self._close(_exit_code(exc.code) if isinstance(exc, SystemExit) else None)

    # internals -------------------------------------------------------------------------------

    def _event(
        self,
        kind: str,
        message: str | None,
        *,
        step: int | None = None,
        severity: str = "info",
        data: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        if self.store is None or self._closed:
            return
        from logbook.record.events import event_row

        row = event_row(
            self.run,
            self.attempt_id,
            kind,
            message,
            source="api",
            step=step,
            severity=severity,
            data=data,
            at=at,
        )
        with self._lock:
            self._rows["events"].append(row)
            if self._thread is None or self._pid != os.getpid():
                self._start_thread()

    def _start_thread(self) -> None:
        # Writing imports pandas through pyarrow, and pandas a thread pool that registers with
        # threading's atexit: done first at exit (a short script under `logbook run`), that
        # fails and the points were dropped. Imported now, it is done.
        import concurrent.futures.thread  # noqa: F401

        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._loop, name="logbook-api", daemon=True)
        self._thread.start()

    def _handoff_locked(self) -> None:
        """Move the buffers to the writer's queue (the caller holds the lock)."""
        rows = {k: v for k, v in self._rows.items() if v}
        if len(self._cols) or rows:
            self._handoff.append((self._cols, rows))
            self._cols = _Columns()
            self._rows = {"events": [], "snapshots": []}

    def _backpressure(self) -> None:
        """Bounded memory: a caller that fills buffers faster than the writer writes them
        writes one itself."""
        if len(self._handoff) > 1:
            self._drain()

    def _seal_start(self) -> None:
        """The start as Parquet too, so plain Parquet readers see the running attempt (#17), as
        the wrapper does once its command runs; in this thread, so no call waits for it."""
        with self._write_lock:  # `_close` finishes the journal under it: never sealed after
            j = self._journal
            if j is not None and not self._closed:
                self._safe("the start of the attempt as Parquet", j.seal)

    def _loop(self) -> None:
        last_beat = time.monotonic()
        if self._owner:
            self._seal_start()
        while not self._closed:
            self._wake.wait(FLUSH_S)
            self._wake.clear()
            if self._pid != os.getpid():
                return
            with self._lock:
                self._handoff_locked()
            self._drain()
            if self._journal is not None and time.monotonic() - last_beat >= HEARTBEAT_S:
                j = self._journal
                self._safe("the heartbeat", j.touch)
                last_beat = time.monotonic()

    def _drain(self) -> None:
        with self._write_lock:
            while True:
                with self._lock:
                    if not self._handoff:
                        return
                    cols, rows = self._handoff.pop(0)
                self._write(cols, rows)

    def _write(self, cols: _Columns, rows: dict[str, list[dict[str, Any]]]) -> None:
        store = self.store
        if store is None:
            return
        n = len(cols)
        if n:
            names = list(self._names)
            if self.detect:
                found = self._safe("the detectors' findings", lambda: self._detect(cols, names))
                rows = {**rows, "events": [*rows.get("events", []), *(found or [])]}
            if self._safe("metrics", lambda: self._write_metrics(store, cols, names)):
                self.written += n
            else:
                self.dropped += n
        for table, table_rows in rows.items():
            self._safe(table, functools.partial(store.write, table, self.run, table_rows))

    def _detect(self, cols: _Columns, names: list[str]) -> list[dict[str, Any]]:
        """Event rows for what the instability detectors find in a batch (writer thread). Only
        the names a detector watches are fed, so other metrics cost one lookup per point."""
        from logbook.record.events import event_row

        if self._detectors is None:
            from logbook.record.detectors import Detectors

            self._detectors = Detectors(_detector_settings())
        det = self._detectors
        watched = {code: name for code, name in enumerate(names) if det.watches(name)}
        out: list[dict[str, Any]] = []
        if not watched:
            return out
        for code, value, step in zip(cols.codes, cols.values, cols.steps, strict=True):
            name = watched.get(code)
            if name is None:
                continue
            for f in det.observe(None if step == _NO_STEP else step, {name: value}):
                out.append(
                    event_row(
                        self.run,
                        self.attempt_id,
                        f.kind,
                        f.message,
                        source="detector",
                        step=f.step,
                        severity="error" if f.kind == "nan" else "warning",
                        data={"metric": f.name, "value": f.value, **f.evidence},
                    )
                )
        return out

    def _write_metrics(self, store: Store, cols: _Columns, names: list[str]) -> bool:
        from logbook.record.metrics import write_metrics

        write_metrics(store, self.run, metrics_table(cols, names, self.attempt_id), by_name=True)
        return True

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._cols = _Columns()
        self._rows = {"events": [], "snapshots": []}
        self._handoff = []
        self._thread = None
        self._owner = False
        self._journal = None  # the parent's; its descriptor stays open in the child, unused

    def _safe(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as e:  # anything: the training must not notice
            root = self.store.root if self.store is not None else "the store"
            self._warn(f"could not record {what} in {root}: {_reason(e)}; dropped")
            return None

    def warn(self, text: str) -> None:
        """One line on stderr (`logbook: ...`), once per text: for problems the training must
        hear of but not stop for."""
        self._warn(text)

    def _warn(self, text: str) -> None:
        if text in self._warned:
            return
        self._warned.add(text)
        try:
            sys.stderr.write(f"logbook: warning: {text}\n")
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass


def metrics_table(cols: _Columns, names: list[str], attempt_id: str) -> pa.Table:
    """The buffered points as a metrics part: sorted by name (stable, so each name's points stay
    in time order), which lets Parquet encode names, times and steps in a few bits each."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from logbook import schema as schemas

    schema = schemas.load("metrics").arrow()
    n = len(cols)
    codes = pa.array(cols.codes, type=pa.int32())
    order = pc.sort_indices(codes)
    steps = pa.array(cols.steps, type=pa.int64())
    steps = pc.if_else(pc.equal(steps, _NO_STEP), pa.scalar(None, pa.int64()), steps)
    arrays = [
        pa.repeat(pa.scalar(attempt_id, pa.string()), n),
        pa.array(cols.times, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")).take(order),
        steps.take(order),
        pa.array(names, pa.string()).take(codes.take(order)),
        pa.array(cols.values, type=pa.float64()).take(order),
        pa.repeat(pa.scalar("api", pa.string()), n),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _detector_settings() -> dict[str, Any]:
    """logbook.toml's [detectors], as `logbook run` reads them; defaults if there is none."""
    from logbook.settings import find_config

    _, config = find_config()
    table = config.get("detectors", {})
    return table if isinstance(table, dict) else {}


def _flat_items(values: Mapping[str, Any], prefix: str = "") -> list[tuple[Any, Any]]:
    """(name, value) pairs with nested mappings flattened: {"train": {"loss": 1}} -> train/loss."""
    out: list[tuple[Any, Any]] = []
    for name, value in values.items():
        if isinstance(value, Mapping) and isinstance(name, str):
            out.extend(_flat_items(value, f"{prefix}{name}/"))
        else:
            out.append((f"{prefix}{name}" if prefix and isinstance(name, str) else name, value))
    return out


def _reason(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e or type(e).__name__)


def _script_stem() -> str:
    arg = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    stem = Path(arg).stem if arg else "python"
    return stem or "python"


# process-wide hooks ----------------------------------------------------------------------------


def _install_hooks() -> None:
    global _hooked
    if _hooked:
        return
    _hooked = True
    previous = sys.excepthook

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        if not issubclass(exc_type, KeyboardInterrupt):
            _crashed.append(exc)
        previous(exc_type, exc, tb)

    sys.excepthook = hook
    _watch_sys_exit()
    atexit.register(_close_all)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _watch_sys_exit() -> None:
    """Note the status the main thread passes to `sys.exit`, for the attempt's end: atexit is not
    told it. (`raise SystemExit(n)` and the `exit()` builtin pass by; such an end reads as 0.)"""
    previous = sys.exit

    def exit(status: object = None) -> NoReturn:
        if threading.current_thread() is threading.main_thread():
            _exit_status.append(_exit_code(status))
        previous(status)  # type: ignore[arg-type]  # any object, as sys.exit takes

    exit.__doc__ = previous.__doc__
    sys.exit = exit


def _exit_code(status: object) -> int:
    """The exit code a process gets from `sys.exit(status)`."""
    if status is None:
        return 0
    return status if isinstance(status, int) else 1


def _close_all() -> None:
    status = _exit_status[-1] if _exit_status else 0
    for rec in list(_live):
        rec._close(exit_status=status)


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for rec in list(_live):
        rec._after_fork_in_child()


# the default recorder (logbook.log and friends) --------------------------------------------------

_default: Recorder | None = None
_default_lock = threading.Lock()


def get_recorder() -> Recorder:
    """The default Recorder, made from the environment on first use (as rich's `get_console`)."""
    global _default
    rec = _default
    if rec is None:
        with _default_lock:
            if _default is None:
                _default = Recorder()
            rec = _default
    return rec


def init(
    run: str | None = None,
    *,
    store: str | Path | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
) -> Recorder:
    """Make the default Recorder with `run` and `store` (as `wandb.init`), and record the group,
    tags and settings. Once the default Recorder exists (an earlier `logbook.*` call made it), its
    run and store stay; a different one asked for here is a warning."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Recorder(store, run)
            rec = _default
        else:
            rec = _default
            if run is not None and run != rec.run:
                rec.warn(f"logbook.init: recording to run {rec.run}, made by an earlier call")
    if group is not None:
        rec.set_group(group)
    if isinstance(tags, str):
        tags = [tags]
    rec.add_tags(*tags)
    if config:
        rec.config(config)
    return rec
