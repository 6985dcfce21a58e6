"""The attempts of one `logbook run`: launch, classify, decide, record, relaunch."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.detectors import Detectors
from logbook.exitcodes import ExitCode
from logbook.parsers import LineParser
from logbook.store import Store
from logbook.supervisor import lineage, nodes
from logbook.supervisor.attempt import Ended, Launch, Watch, run_attempt
from logbook.supervisor.policy import Decision, History, Outcome, decide
from logbook.supervisor.recorder import MetricBuffer, Recorder, _now, base_attempt
from logbook.supervisor.signals import Forwarder, signal_name
from logbook.telemetry.sampler import check_every

if TYPE_CHECKING:
    from logbook.supervisor import RunOptions

AUTO_COMPACT_PARTS = 64  # a folder with this many small parts is merged when `logbook run` ends
CAPTURE_WAIT_S = 60.0  # after the child ends, how long to wait for the launch snapshot to finish
SCHEDULER_VARS = ("SLURM_JOB_ID", "KUBERNETES_SERVICE_HOST", "PBS_JOBID", "LSB_JOBID")


class Session:
    """The attempts of one `logbook run`."""

    def __init__(self, opts: RunOptions, run_name: str) -> None:
        self.opts = opts
        self.run = run_name
        self.cwd = (opts.cwd or Path.cwd()).absolute()
        env = opts.env if opts.env is not None else os.environ
        self.host = nodes.host_name(env)
        self.node = nodes.node_of(env)  # ConfigError: nothing started yet
        self.store, self.previous = _open_for_recording(opts, run_name)
        self.early_warnings: list[str] = []
        if self.node is not None:
            self._join_launch(self.node)
        self.placement = lineage.place(self.previous, opts.label)  # ConfigError, likewise
        check_every(opts.sample_every_s)  # likewise
        self.under_scheduler = any(v in env for v in SCHEDULER_VARS)
        self.recorder: Recorder | None = None
        self.history = History()
        # Metrics from the output (#4): "none" keeps only the step finder of the hang watch. The
        # other hosts of a launch leave metrics to the leader (their ranks rarely print any).
        leads = self.node is None or self.node.leader
        self.parser = LineParser(opts.metrics) if opts.metrics != "none" and leads else None
        self.best_step: int | None = None

    @property
    def leads(self) -> bool:
        """Alone, or node 0 of a launch over several hosts: writes the attempt and runs hooks."""
        return self.node is None or self.node.leader

    def _join_launch(self, node: nodes.Node) -> None:
        """Take part in a launch over several hosts, unless its key was used by a launch that has
        ended (a LOGBOOK_LAUNCH_ID given twice): then record alone, and say so."""
        first = node.attempt_id(self.run, 0)
        ended = self.store is not None and nodes.launch_ended(self.store, self.run, first)
        if ended:
            self.early_warnings.append(
                f"the launch key {node.launch} ({node.source}) was used by an attempt of run "
                f"{self.run} that has ended; this host records its own attempt"
            )
            self.node = None
            return
        # The leader may have recorded the attempt already; it is ours, not a previous one.
        self.previous = [p for p in self.previous if p[0] != first]

    def on_signal(self, sig: int) -> None:
        if self.recorder is not None:
            name = signal.Signals(sig).name
            self.recorder.event(
                "signal", f"received {name}; passed to the command", data={"signal": name}
            )

    def loop(self, forwarder: Forwarder) -> int:
        restart_count = 0
        while True:
            code, decision = self.attempt(forwarder, restart_count)
            if decision.action != "restart":
                self.tidy()
                return code
            if not self.backoff(decision.delay_s, forwarder):
                return code
            restart_count += 1
            self.previous.append(
                (self.recorder.attempt_id if self.recorder else "", self.placement.label)
            )
            self.placement = lineage.place(self.previous, None)

    def tidy(self) -> None:
        """Merge this run's parts once they are many: each attempt adds a few, and reading them
        all is what the next `logbook run` and every query pay (#2: ~2 ms a part)."""
        if self.store is None:
            return
        try:
            from logbook.store.compact import compact

            compact(self.store, run=self.run, min_parts=AUTO_COMPACT_PARTS)
        except Exception as e:  # tidying is optional; the record is complete without it
            if self.recorder is not None:
                self.recorder.warn(f"could not merge the run's parts: {e}", event=False)

    def backoff(self, delay_s: float, forwarder: Forwarder) -> bool:
        """Wait before relaunching; False if logbook was asked to stop meanwhile."""
        end = time.monotonic() + delay_s
        while time.monotonic() < end:
            forwarder.service()
            if forwarder.stopping:
                return False
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
        return not forwarder.stopping

    def attempt(self, forwarder: Forwarder, restart_count: int) -> tuple[int, Decision]:
        opts, first_of_run = self.opts, not self.previous
        node = self.node
        attempt_id = node.attempt_id(self.run, restart_count) if node else uuid.uuid4().hex
        recorder = self.recorder = Recorder(
            self.store, self.run, attempt_id, host=self.host, node=node
        )
        if self.store is None and restart_count == 0:
            recorder.warn(
                f"cannot write to the store {opts.store}; this attempt is not recorded", event=False
            )
        command = opts.resume_command if restart_count and opts.resume_command else opts.command
        env = child_env(
            opts.env if opts.env is not None else os.environ,
            store_root=opts.store,
            run=self.run,
            label=self.placement.label,
            attempt_id=attempt_id,
            restart_count=restart_count,
            checkpoint_dir=opts.checkpoint_dir,
        )
        from logbook.redact import redact_command

        attempt: dict[str, Any] = {
            **base_attempt(self.run, attempt_id, redact_command(command), self.cwd, self.host),
            "label": self.placement.label,
            "parent_id": self.placement.parent_id,
            "parent_label": self.placement.parent_label,
            "restart_count": restart_count,
        }
        spec = Launch(
            command,
            env,
            self.cwd,
            opts.tty,
            opts.grace_s,
            opts.hang_timeout_s,
            recorder.log_dir(),
            opts.checkpoint_dir,
            self.parser,
            opts.catch_up_s,
        )
        metrics = (
            MetricBuffer(recorder) if self.store is not None and self.parser is not None else None
        )
        detectors = Detectors(opts.detectors)

        def on_metrics(step: int | None, values: dict[str, float], at: Any) -> None:
            assert metrics is not None
            metrics.add(step, values, at)
            for f in detectors.observe(step, values):
                recorder.event(
                    f.kind,
                    f.message,
                    severity="error" if f.kind == "nan" else "warning",
                    source="detector",
                    step=f.step,
                    data={"metric": f.name, "value": f.value, **f.evidence},
                )

        capture: list[Any] = []
        samplers: list[Any] = []  # the telemetry sampler of this attempt (#5)

        def started(pid: int, start: Any) -> None:
            recorder.started(
                {
                    **attempt,
                    "status": "running",
                    "start_time": start,
                    "pid": pid,
                    "recorded_at": _now(),
                },
                first_of_run=first_of_run,
            )
            for text in self.early_warnings if restart_count == 0 else ():
                recorder.warn(text)
            if opts.capture and self.store is not None:
                capture.append(_start_capture(recorder, command, env, self.cwd))
            if self.store is not None and self.leads:  # settings are the launch's, not a host's
                capture.append(
                    _start_settings(recorder, self.store, opts, command, self.placement.parent_id)
                )
            self.hooks(
                "on_start", self.payload(attempt, pid=pid, status="running"), background=True
            )
            if opts.sample_every_s > 0:
                from logbook.telemetry import start_sampler

                machine = self.node is None or nodes.first_on_host(env)
                samplers.append(
                    start_sampler(recorder, pid, opts.sample_every_s, env, machine=machine)
                )

        def hang(pid: int, quiet_s: float, progress: Any) -> None:
            tail = _tail_lines(spec.log_dir)
            message = f"no output and no progress for {quiet_s:.0f} s (--hang-timeout {opts.hang_timeout_s:g} s)"
            data = {"quiet_s": round(quiet_s, 1), "last_step": progress.last_step, "lines": tail}
            recorder.event("hang", message, severity="error", data=data, step=progress.last_step)
            self.hooks(
                "on_hang",
                self.payload(attempt, pid=pid, status="hung", summary=message, evidence=data),
            )

        def checkpoint(ckpt: Any) -> None:
            if not self.leads:  # a shared folder: its checkpoints are the leader's to record
                return
            recorder.event(
                "checkpoint",
                f"checkpoint at step {ckpt.step}" if ckpt.step is not None else "checkpoint",
                step=ckpt.step,
                data={
                    "path": ckpt.path,
                    "size_bytes": ckpt.size,
                    "files": ckpt.files,
                    "write_s": ckpt.write_s,
                    "seen_by": ckpt.seen_by,
                },
            )

        watch = Watch(
            started=started,
            signal=self.on_signal,
            hang=hang,
            warn=recorder.warn,
            checkpoint=checkpoint,
            metrics=on_metrics if metrics is not None else None,
        )
        ended = run_attempt(spec, forwarder, watch)
        for sampler in filter(None, samplers):
            sampler.stop()  # its last reading and write; never raises
            ended.hardware_faults += sampler.faults
        if metrics is not None:
            metrics.close()
        if ended.start_error is not None:
            return self.could_not_start(recorder, attempt, ended, first_of_run)
        for t in capture:
            t.join(timeout=CAPTURE_WAIT_S)
            if t.is_alive():
                recorder.warn(
                    f"the launch snapshot took over {CAPTURE_WAIT_S:.0f} s; it is not recorded"
                )
        return self.finish(recorder, attempt, ended, forwarder)

    def finish(
        self, recorder: Recorder, attempt: dict[str, Any], ended: Ended, forwarder: Forwarder
    ) -> tuple[int, Decision]:
        verdict = self.classify(ended)
        progress = ended.progress
        status = (
            "hung" if ended.hung_s is not None and verdict.status != "completed" else verdict.status
        )
        if ended.oom_kills and ended.returncode in (-9, 137) and not ended.forwarded:
            from logbook.supervisor.oom import kernel_lines

            lines = kernel_lines()
            verdict = replace(
                verdict,
                status="crashed",
                crash_class="host_oom",
                retryable=True,
                rule="cgroup-oom-kill",
                summary=f"killed by the kernel OOM killer (memory cgroup {ended.oom_cgroup}: "
                f"{ended.oom_kills} kill{'s' if ended.oom_kills > 1 else ''})",
                evidence={
                    **verdict.evidence,
                    "oom_kills": ended.oom_kills,
                    "cgroup": ended.oom_cgroup,
                    **({"lines": lines} if lines else {}),
                },
            )
            status = "crashed"
        if ended.hardware_faults and status == "crashed" and verdict.crash_class != "gpu_hardware":
            # An Xid 79 or an uncorrected ECC error, then a crash: the GPU, whatever it raised.
            verdict = replace(
                verdict,
                crash_class="gpu_hardware",
                retryable=True,
                rule="hardware-fault",
                summary=f"{_brief(ended.hardware_faults[0])}, then: {verdict.summary}"[:500],
                evidence={
                    **verdict.evidence,
                    "hardware_faults": ended.hardware_faults[:20],
                    "class_from_output": verdict.crash_class,
                },
            )
        if ended.reader_gone and verdict.status != "completed":
            # `logbook run ... | head`: our reader left and the command got EPIPE, as it would unwrapped.
            verdict = replace(
                verdict,
                status="interrupted",
                crash_class=None,
                retryable=False,
                rule="reader-gone",
                summary="the reader of its output went away (broken pipe)",
            )
            status = "interrupted"
        last_step = progress.last_step if progress else None
        progressed = last_step is not None and (
            self.best_step is None or last_step > self.best_step
        )
        if progressed:
            self.best_step = last_step
        outcome = Outcome(
            status,
            verdict.crash_class if status == "crashed" else None,
            True if status == "hung" else verdict.retryable,
            f"{status}:{verdict.crash_class}:{verdict.rule}",
            progressed,
            forwarder.stopping,
        )
        decision = decide(self.opts.policy, outcome, self.history)
        sig = -ended.returncode if ended.returncode < 0 else None
        fields: dict[str, Any] = {
            "status": status,
            "end_time": ended.end,
            "duration_s": (ended.end - ended.start).total_seconds(),
            "exit_code": None if sig else ended.returncode,
            "signal": sig,
            "signal_name": signal_name(sig),
            "forwarded_signal": signal_name(ended.forwarded),
            "crash_class": outcome.crash_class,
            "retryable": outcome.retryable if status != "completed" else None,
            "summary": _hung_summary(verdict, ended) if status == "hung" else verdict.summary,
            "rule": "hang-timeout"
            if status == "hung"
            else None
            if status == "completed"
            else verdict.rule,
            "evidence": json.dumps(verdict.evidence, default=str),
            "decision": decision.action,
            "decision_reason": decision.reason,
            "hung_s": ended.hung_s,
        }
        if progress is not None:
            fields.update(
                first_step=progress.first_step,
                last_step=progress.last_step,
                first_step_time=progress.first_step_time,
                last_step_time=progress.last_step_time,
                resumed_from_step=progress.resumed_from_step,
                last_output_time=progress.last_output_time,
                last_checkpoint_step=progress.checkpoint.step if progress.checkpoint else None,
                last_checkpoint_time=progress.checkpoint.time if progress.checkpoint else None,
            )
        if status not in ("completed",):
            kind = {"crashed": "crash", "hung": "hang_stopped"}.get(status, status)
            summary = fields["summary"]
            if self.node is not None and not self.node.leader:
                # The attempt's end is the leader's to record; this is one host's part in it.
                kind = "node_end"
                summary = f"{status} on {self.host} (node {self.node.rank}): {summary}"
            recorder.event(
                kind,
                summary,
                severity="error" if status in ("crashed", "hung") else "warning",
                step=last_step,
                data={"class": outcome.crash_class, **verdict.evidence},
            )
        if progress is not None and progress.skipped_bytes:
            recorder.event(
                "logbook_warning",
                _skipped_message(progress),
                severity="warning",
                source="logbook",
                data={
                    "skipped_bytes": progress.skipped_bytes,
                    "caught_up_lines": progress.caught_up_lines,
                    "catch_up_s": round(progress.catch_up_s, 2),
                    "unparsed_lines": progress.unparsed_lines,
                    "unparsed_estimated": progress.unparsed_estimated,
                },
            )
        if decision.action == "gave_up" and self.leads:
            recorder.event("gave_up", decision.reason, severity="error")
        payload = self.payload({**attempt, **fields}, pid=ended.pid)
        if status in ("crashed", "hung"):
            self.hooks("on_crash", payload)
        if decision.action == "restart" and self.leads:
            recorder.event(
                "restart",
                f"{decision.reason}; relaunching in {decision.delay_s:g} s",
                data={"delay_s": decision.delay_s},
            )
            next_label = lineage.place(
                [*self.previous, (attempt["attempt_id"], attempt["label"])], None
            ).label
            self.hooks(
                "on_restart", {**payload, "delay_s": decision.delay_s, "next_attempt": next_label}
            )
        else:
            self.hooks("on_end", {**payload, "decision": decision.action})
        recorder.ended(**fields)
        code = ExitCode.SIGNAL_BASE + sig if sig else ended.returncode
        return int(code), decision

    def classify(self, ended: Ended) -> Any:
        from logbook.forensics.classify import classify_end

        logs = (
            [recorder_dir / f"{n}.log" for n in ("stdout", "stderr")]
            if (recorder_dir := self._log_dir())
            else []
        )
        return classify_end(
            returncode=ended.returncode,
            log_paths=logs,
            rules=self.opts.rules,
            forwarded_signal=signal_name(ended.forwarded),
            under_scheduler=self.under_scheduler,
            killed_after_grace=ended.killed_after_grace,
        )

    def _log_dir(self) -> Path | None:
        return (
            self.recorder.log_dir()
            if self.recorder is not None and self.store is not None
            else None
        )

    def could_not_start(
        self, recorder: Recorder, attempt: dict[str, Any], ended: Ended, first_of_run: bool
    ) -> tuple[int, Decision]:
        e = ended.start_error
        assert e is not None
        message = f"logbook: cannot run {attempt['command'][0]}: {e.strerror or e}"
        print(message, file=sys.stderr)
        recorder.started(
            {**attempt, "status": "running", "start_time": ended.start, "recorded_at": _now()},
            first_of_run=first_of_run,
        )
        recorder.event("launch_failed", message, severity="error", data={"errno": e.errno})
        decision = Decision("stop", "the command could not be started: no restart can fix that")
        recorder.ended(
            status="crashed",
            crash_class="configuration",
            retryable=False,
            summary=message,
            rule="launch-failed",
            end_time=ended.end,
            exit_code=ended.returncode,
            duration_s=(ended.end - ended.start).total_seconds(),
            decision=decision.action,
            decision_reason=decision.reason,
        )
        return ended.returncode, decision

    def payload(self, attempt: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        """What a hook gets (logbook.hook/1)."""
        return {
            "run": self.run,
            "attempt": attempt.get("label"),
            "attempt_id": attempt.get("attempt_id"),
            "status": attempt.get("status"),
            "crash_class": attempt.get("crash_class"),
            "summary": attempt.get("summary"),
            "exit_code": attempt.get("exit_code"),
            "signal": attempt.get("signal_name"),
            "restart_count": attempt.get("restart_count"),
            "retryable": attempt.get("retryable"),
            "store": str(self.opts.store),
            "log_dir": str(self._log_dir() or ""),
            "host": attempt.get("host"),
            "time": _now().isoformat(),
            "evidence": json.loads(attempt["evidence"])
            if isinstance(attempt.get("evidence"), str)
            else None,
            **extra,
        }

    def hooks(self, event: str, payload: dict[str, Any], *, background: bool = False) -> None:
        """Run the hooks of `event`; each result becomes a hook event. Never raises."""
        hooks = [h for h in self.opts.hooks if h.event == event]
        if not hooks or self.recorder is None or not self.leads:  # once a launch, not once a host
            return
        recorder, cwd = self.recorder, self.cwd
        env = dict(self.opts.env if self.opts.env is not None else os.environ)

        def work() -> None:
            from logbook.hooks import run_hooks

            try:
                results = run_hooks(event, hooks, payload, env=env, cwd=cwd)
            except Exception as e:  # the hook runner promises not to raise; be sure anyway
                recorder.warn(f"{event} hooks failed: {e!r}")
                return
            for r in results:
                ok = r.exit_code == 0 and not r.timed_out and r.error is None
                what = r.error or ("timed out" if r.timed_out else f"exited {r.exit_code}")
                recorder.event(
                    "hook",
                    f"{event} hook {shlex.split(r.hook.command)[0]} {what} in {r.duration_s:.1f} s",
                    severity="info" if ok else "warning",
                    source="hook",
                    data={
                        "event": event,
                        "command": r.hook.command,
                        "exit_code": r.exit_code,
                        "timed_out": r.timed_out,
                        "duration_s": round(r.duration_s, 3),
                        "output": r.output,
                        "error": r.error,
                    },
                )
                if not ok:
                    recorder.warn(f"{event} hook {r.hook.command!r} {what}", event=False)

        if background:
            import threading

            threading.Thread(target=work, name=f"logbook-hook-{event}", daemon=True).start()
        else:
            work()


def child_env(
    base: Mapping[str, str],
    *,
    store_root: Path,
    run: str,
    label: str,
    attempt_id: str,
    restart_count: int = 0,
    checkpoint_dir: Path | None = None,
) -> dict[str, str]:
    """The command's environment: ours, plus where to record, and Python unbuffered (#2). With
    LOGBOOK_CHECKPOINT_DIR the callbacks leave the folder's checkpoints to the wrapper."""
    env = dict(base)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["LOGBOOK_STORE"] = str(store_root)
    env["LOGBOOK_RUN"] = run
    env["LOGBOOK_ATTEMPT"] = label
    env["LOGBOOK_ATTEMPT_ID"] = attempt_id
    env["LOGBOOK_RESTART_COUNT"] = str(restart_count)
    if checkpoint_dir is not None:
        env["LOGBOOK_CHECKPOINT_DIR"] = str(checkpoint_dir)
    else:
        env.pop("LOGBOOK_CHECKPOINT_DIR", None)  # an outer wrapper's is not ours
    return env


def _open_for_recording(opts: RunOptions, run: str) -> tuple[Store | None, list[tuple[str, str]]]:
    """The store and the run's earlier attempts; (None, []) when the store cannot be used."""
    try:
        store = Store.open(opts.store, create=True, source=opts.store_source)
        store.fold_dead_journals()  # a writer: readers leave dead wrappers' journals to it
        previous = lineage.previous_attempts(store, run)
    except Exception:  # unwritable, full, or damaged beyond reading: run unrecorded
        return None, []
    return store, previous


def _start_capture(
    recorder: Recorder, command: list[str], env: Mapping[str, str], cwd: Path
) -> Any:
    import threading

    def work() -> None:
        try:
            from logbook.capture import capture_launch

            rows = capture_launch(list(command), env, cwd)
        except Exception as e:  # capture promises not to raise; a bug there must not matter either
            recorder.warn(f"the launch snapshot failed: {e}")
            return
        recorder.snapshots(rows)

    t = threading.Thread(target=work, name="logbook-capture", daemon=True)
    t.start()
    return t


def _start_settings(
    recorder: Recorder,
    store: Store,
    opts: RunOptions,
    command: list[str],
    parent_id: str | None,
) -> Any:
    """In the background: snapshot the config and command-line settings, and declare the data
    mix; their changes from the parent attempt are events."""
    import threading

    def work() -> None:
        if opts.gpu_price is not None:  # for `logbook cost`, over the price table
            price = {
                "kind": "cost",
                "name": "gpu_price_usd_per_hour",
                "value": f"{opts.gpu_price:g}",
            }
            recorder.snapshots([{**price, "status": "ok", "detail": "--gpu-price"}])
        _record_hparams(recorder, store, opts.config_path, command, parent_id)
        if opts.data_mix_path is not None:
            _record_data_mix(recorder, store, opts.data_mix_path, parent_id)

    t = threading.Thread(target=work, name="logbook-settings", daemon=True)
    t.start()
    return t


def _record_data_mix(recorder: Recorder, store: Store, path: Path, parent_id: str | None) -> None:
    from logbook import datamix

    try:  # read again for each attempt: it may have been edited between restarts
        mix = datamix.with_fingerprints(datamix.load_mix(path), path.parent)
    except Exception as e:
        recorder.warn(f"could not record the data mix: {e}")
        return
    recorder.event("data_mix", datamix.summary(mix), data={"mix": mix, "file": str(path)})
    if parent_id is None:
        return
    try:
        old = datamix.last_recorded(store, recorder.run, {parent_id})
    except Exception as e:  # a damaged part: no diff this time, and say so
        recorder.warn(f"could not compare the data mix with the parent attempt: {e}")
        return
    change = datamix.change_data(old, mix) if old is not None else None
    if change is not None:
        recorder.event("data_mix_change", change[0], data=change[1])


def _record_hparams(
    recorder: Recorder,
    store: Store,
    config_path: Path | None,
    command: list[str],
    parent_id: str | None,
) -> None:
    """Snapshot the config and command-line settings; their changes from the parent are events."""
    from logbook import hparams

    try:
        rows = hparams.snapshot_rows(config_path, command)
    except Exception as e:  # checked before the first launch; the file may have changed since
        recorder.warn(f"could not snapshot the settings: {e}")
        return
    recorder.snapshots(rows)
    if parent_id is None:
        return
    try:
        kinds = ("config", "arg")
        old_rows = store.read("snapshots", run=recorder.run).to_pylist()
        old = {
            f"{r['kind']}:{r['name']}": r["value"]
            for r in old_rows
            if r["attempt_id"] == parent_id and r["kind"] in kinds
        }
    except Exception as e:  # a damaged part: no diff this time, and say so
        recorder.warn(f"could not compare settings with the parent attempt: {e}")
        return
    new = {f"{r['kind']}:{r['name']}": r["value"] for r in rows if r["kind"] in kinds}
    for ch in hparams.changes(old, new):
        source, _, key = ch["key"].partition(":")
        message = f"{key}: {json.dumps(ch['old'])} -> {json.dumps(ch['new'])}"
        data = {
            "key": key,
            "old": ch["old"],
            "new": ch["new"],
            "source": "config" if source == "config" else "argv",
        }
        recorder.event("hparam_change", message, data=data)


def _hung_summary(verdict: Any, ended: Ended) -> str:
    """A hung attempt's summary: what the classifier saw, unless that is only the signal logbook's
    own hang watch sent (which the classifier cannot tell from anyone else's)."""
    if verdict.rule == "signal":
        return f"hung: no output and no new step for {ended.hung_s:.0f} s; logbook stopped it"
    return f"hung: {verdict.summary}"


def _brief(text: str, limit: int = 120) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _skipped_message(progress: Any) -> str:
    head = (
        f"the output came faster than logbook reads it: {progress.skipped_bytes / 1e6:.1f} MB "
        "were not scanned live for steps and checkpoints"
    )
    parsed = (
        f"; {progress.caught_up_lines:,} of their lines were parsed for metrics after the "
        f"command ended ({progress.catch_up_s:.1f} s)"
        if progress.caught_up_lines
        else ""
    )
    if progress.unparsed_lines:
        about = "about " if progress.unparsed_estimated else ""
        left = (
            f"; {about}{progress.unparsed_lines:,} lines were never parsed (the raw log has them)"
        )
    else:
        left = "; every line was parsed" if progress.caught_up_lines else ""
    return head + parsed + left


def _tail_lines(log_dir: Path | None, n: int = 20) -> list[str]:
    """The last lines of each raw log, for a hang's evidence."""
    out: list[str] = []
    for name in ("stdout", "stderr"):
        path = log_dir / f"{name}.log" if log_dir else None
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
                lines = f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            continue
        out += [f"{name}: {line[:500]}" for line in lines]
    return out
