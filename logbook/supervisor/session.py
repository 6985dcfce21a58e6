"""The attempts of one `logbook run`: launch, classify, decide, record, relaunch."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.exitcodes import ExitCode
from logbook.pump.wakeup import Wakeup
from logbook.record import phase_marks as phase_marks_env
from logbook.record.attempt import attempt_row
from logbook.record.detector_feed import observe_points
from logbook.record.detectors import Detectors
from logbook.record.ending import end_fields, judge, tail_lines, unparsed_message
from logbook.record.metrics import MetricBuffer
from logbook.record.node_steps import NodeSteps
from logbook.record.parsers import LineParser
from logbook.store import Store
from logbook.supervisor import attempt_index, lineage, narrate, nodes
from logbook.supervisor.attempt import Ended, Launch, Watch, run_attempt
from logbook.supervisor.checkpoints import CheckpointMemory
from logbook.supervisor.hang_budget import Budget, HangBudget, SlowStep
from logbook.supervisor.launch_snapshots import start_capture, start_settings
from logbook.supervisor.lifecycle_hooks import LifecycleHooks
from logbook.supervisor.policy import Decision, History, Outcome, decide
from logbook.supervisor.recorder import Recorder, _now
from logbook.supervisor.signals import Forwarder
from logbook.telemetry.sampler import check_every

if TYPE_CHECKING:
    from logbook.supervisor import RunOptions

AUTO_COMPACT_PARTS = 64  # a folder with this many small parts is merged when `logbook run` ends
CAPTURE_WAIT_S = 60.0  # after the child ends, how long to wait for the launch snapshot to finish
SCHEDULER_VARS = ("SLURM_JOB_ID", "KUBERNETES_SERVICE_HOST", "PBS_JOBID", "LSB_JOBID")
MAX_SLOW_STEP_EVENTS = 50  # per attempt: a training that stays slow is told, not logged per step


class Session:
    """The attempts of one `logbook run`."""

    def __init__(self, opts: RunOptions, run_name: str) -> None:
        self.opts = opts
        self.run = run_name
        self.cwd = (opts.cwd or Path.cwd()).absolute()
        env = opts.env if opts.env is not None else os.environ
        self.host = nodes.host_name(env)
        self.node = nodes.node_of(env)  # ConfigError: nothing started yet
        self.store, self.index_key, firsts = _open_for_recording(opts, run_name)
        self.previous = attempt_index.ordered(firsts)
        self.indexed = firsts  # with this session's attempts, the run's index at the end
        self.journal_ids: list[str] = []  # this session's journals: their parts are ours
        self.early_warnings: list[str] = []
        if self.node is not None:
            self._join_launch(self.node)
        check_every(opts.sample_every_s)  # likewise, before a label is claimed for good
        # Labels are claimed in the store; the other hosts of a launch share the leader's attempt.
        self.claims = lineage.claims_dir(self.store if self.leads else None, self.run)
        self.placement = lineage.place(self.previous, opts.label, self.claims)  # likewise
        self.next_placement: lineage.Placement | None = None  # claimed once a relaunch is decided
        self.under_scheduler = any(v in env for v in SCHEDULER_VARS)
        self.recorder: Recorder | None = None
        self.history = History()
        self.checkpoint_memory = CheckpointMemory(self._recorded_checkpoints)
        # The run's phases on record, for the hang watch's budgets (#19): read once, then kept
        # up to date by this session's attempts.
        self.phase_history: list[dict[str, Any]] | None = None
        self.session_phases: list[dict[str, Any]] = []
        # Metrics from the output: "none" keeps only the step finder of the hang watch. The
        # other hosts of a launch leave metrics to the leader (their ranks rarely print any).
        leads = self.node is None or self.node.leader
        self.parser = LineParser(opts.metrics) if opts.metrics != "none" and leads else None
        self.best_step: int | None = None
        self.narrator = narrate.Narrator(opts.quiet)
        self.waiting = False  # between attempts, in the wait before a relaunch
        self.last_checkpoint: int | None = None  # the step of the last attempt's last checkpoint
        self.finisher: dict[str, Any] | None = None  # the background finish of the last attempt
        self.hooks = LifecycleHooks(
            opts.hooks,
            run=run_name,
            store=opts.store,
            cwd=self.cwd,
            env=env,
            leads=lambda: self.leads,
        )

    @property
    def leads(self) -> bool:
        """Alone, or node 0 of a launch over several hosts: writes the attempt and runs hooks."""
        return self.node is None or self.node.leader

    def _join_launch(self, node: nodes.Node) -> None:
        """Take part in a launch over several hosts, unless its key was used by an earlier launch
        (a LOGBOOK_LAUNCH_ID given twice: this rank is on record in it): then record alone, and
        say so."""
        first = node.attempt_id(self.run, 0)
        used = self.store is not None and nodes.launch_used(self.store, self.run, first, node.rank)
        if used:
            self.early_warnings.append(
                f"the launch key {node.launch} ({node.source}) was used by an attempt of run "
                f"{self.run} that this host's rank already took part in; this host records its own "
                "attempt"
            )
            self.node = None
            return
        self.index_key = None  # the leader writes the attempt; the index is its to keep
        # The leader may have recorded the attempt already; it is ours, not a previous one.
        self.previous = [p for p in self.previous if p[0] != first]

    def on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self.waiting:
            self.narrator.say(f"received {name} while waiting to relaunch; not relaunching")
        else:
            self.narrator.say(
                f"{self.placement.label} received {name}; passing it on to the command",
                stderr_log=self._stderr_log(),
            )
        if self.recorder is not None:
            self.recorder.event(
                "signal", f"received {name}; passed to the command", data={"signal": name}
            )

    def loop(self, forwarder: Forwarder) -> int:
        restart_count = 0
        while True:
            code, decision = self.attempt(forwarder, restart_count)
            if decision.action != "restart" or not self.backoff(decision.delay_s, forwarder):
                # Their events are the attempt's, written late but written.
                self.hooks.join(hurry=forwarder.stopping)
                self.tidy()
                self.keep_index()
                return code
            restart_count += 1
            self.previous.append(
                (self.recorder.attempt_id if self.recorder else "", self.placement.label)
            )
            self.placement = self.next_placement or lineage.place(self.previous, None, self.claims)
            self.next_placement = None

    def tidy(self) -> None:
        """Merge this run's parts once they are many: each attempt adds a few, and reading them
        all is what the next `logbook run` and every query pay (~2 ms a part)."""
        if self.store is None:
            return
        try:
            from logbook.store.compact import compact

            compact(self.store, run=self.run, min_parts=AUTO_COMPACT_PARTS, recover=False)
        except Exception as e:  # tidying is optional; the record is complete without it
            if self.recorder is not None:
                self.recorder.warn(f"could not merge the run's parts: {e}", event=False)

    def keep_index(self) -> None:
        """Add this session's attempts to the run's index, so that the next `logbook run` names
        its attempt without reading Parquet; only where every file added since is ours."""
        if self.store is None or self.index_key is None:
            return
        after = attempt_index.current_key(self.store.root, self.run)
        if after is not None and attempt_index.only_ours(self.index_key, after, self.journal_ids):
            attempt_index.save(self.store.root, self.run, after, self.indexed)

    def backoff(self, delay_s: float, forwarder: Forwarder) -> bool:
        """Wait before relaunching; False if logbook was asked to stop meanwhile."""
        end = time.monotonic() + delay_s
        wake = Wakeup()  # a stopping signal ends the wait at once; nothing else wakes it
        catching = wake.catch_signals()
        self.waiting = True
        try:
            while time.monotonic() < end:
                forwarder.service()
                if forwarder.stopping:
                    return False
                left = end - time.monotonic()
                wake.wait(left if catching else min(0.1, left))
        finally:
            self.waiting = False
            wake.close()
        return not forwarder.stopping

    def _recorded_checkpoints(self) -> list[dict[str, Any]]:
        """The run's checkpoint events on record: a relaunch by hand finds the step of the
        checkpoint it loads (read once, when first needed, in the progress thread)."""
        if self.store is None or not self.previous:
            return []
        from logbook.query import run_sql

        return run_sql(  # type: ignore[no-any-return]
            self.store,
            "select step, data from events where run = ? and kind = 'checkpoint' "
            "and step is not null",
            [self.run],
        ).to_pylist()

    def _recorded_phases(self) -> list[dict[str, Any]]:
        """The run's `phase` events on record: their phase and duration."""
        if self.store is None or not self.previous:
            return []
        from logbook.query import run_sql

        return run_sql(  # type: ignore[no-any-return]
            self.store,
            "select json_extract_string(data, '$.phase') as phase, "
            "try_cast(json_extract_string(data, '$.duration_s') as double) as duration_s "
            "from events where run = ? and kind = 'phase'",
            [self.run],
        ).to_pylist()

    def _learn_phases(self, budget: HangBudget) -> None:
        """Give the budget the run's earlier phases; the first time, read in a thread (DuckDB's
        import and the read cost a few hundred ms: never on the command's way)."""
        if self.phase_history is not None:
            budget.learn_prior(self.phase_history + self.session_phases)
            return

        def load() -> None:
            try:
                self.phase_history = self._recorded_phases()
            except Exception as e:  # the ceiling stays in force: the training comes first
                self.phase_history = []
                if self.recorder is not None:
                    self.recorder.warn(f"could not read the run's phases: {e}", event=False)
            budget.learn_prior(self.phase_history + self.session_phases)

        threading.Thread(target=load, name="logbook-phases", daemon=True).start()

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
            phase_marks=self._phase_marks(recorder),
        )
        from logbook.record.redact import redact_command

        attempt = attempt_row(
            self.run,
            attempt_id,
            command=redact_command(command),
            cwd=self.cwd,
            host=self.host,
            placement=self.placement,
            start=_now(),  # the start proper is when the command is launched
            restart_count=restart_count,
        )
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
            opts.checkpoint_patterns,
            self.checkpoint_memory,
            HangBudget(opts.hang_timeout_s),
        )
        metrics = (
            MetricBuffer(recorder, mode=opts.metrics)
            if self.store is not None and self.parser is not None
            else None
        )
        detectors = Detectors(opts.detectors)
        # Under a launch over several hosts every node dates its steps, so hosts compare (#19).
        steps = (
            NodeSteps(recorder, self.node.rank)
            if self.node is not None and self.store is not None
            else None
        )

        def on_metrics(points: Any, at: Any, log: str) -> None:
            assert metrics is not None
            metrics.add_points(points, at)
            for f in observe_points(detectors, points, log):
                recorder.event(
                    f.kind,
                    f.message,
                    severity="error" if f.kind == "nan" else "warning",
                    source="detector",
                    step=f.step,
                    data={"metric": f.name, "value": f.value, **f.evidence},
                )

        def on_settings(values: dict[str, float]) -> None:
            from logbook.record.hparams import printed_rows

            recorder.snapshots(printed_rows(values))

        capture: list[Any] = []
        samplers: list[Any] = []  # the telemetry sampler of this attempt

        def launching(start: Any) -> None:
            self.narrator.say(
                narrate.launching(
                    self.placement.label,
                    self.run,
                    restart_count,
                    opts.policy.max_restarts,
                    self.last_checkpoint if restart_count else None,
                )
            )
            # On record before the command exists: a kill of logbook from here on leaves an
            # attempt (lost, then), never a training with no attempt at all.
            row = {**attempt, "status": "running", "start_time": start, "recorded_at": _now()}
            recorder.started(row, first_of_run=first_of_run)
            if recorder.journal_id is not None:
                self.journal_ids.append(recorder.journal_id)
                self.indexed.append((attempt_id, self.placement.label, start, row["recorded_at"]))
            if metrics is not None:
                recorder._safe("how far the raw logs are parsed", metrics.begin)

        def started(pid: int, start: Any) -> None:
            recorder.attempt["pid"] = pid  # in the row that records the end
            _warm_the_end()
            recorder.seal_start()
            for text in self.early_warnings if restart_count == 0 else ():
                recorder.warn(text)
            if opts.capture and self.store is not None:
                capture.append(start_capture(recorder, command, env, self.cwd))
            if self.store is not None and self.leads:  # settings are the launch's, not a host's
                capture.append(
                    start_settings(recorder, self.store, opts, command, self.placement.parent_id)
                )
            self.hooks.run(
                "on_start",
                recorder,
                self.hooks.payload(attempt, recorder, pid=pid, status="running"),
                background=True,
            )
            if opts.hang_timeout_s and spec.hang_budget is not None:
                self._learn_phases(spec.hang_budget)
            if opts.sample_every_s > 0:
                from logbook.telemetry import start_sampler

                machine = self.node is None or nodes.first_on_host(env)
                samplers.append(
                    start_sampler(recorder, pid, opts.sample_every_s, env, machine=machine)
                )

        def hang(pid: int, quiet_s: float, progress: Any, budget: Budget | None) -> Any:
            tail = tail_lines(spec.log_dir)
            message = f"no output and no progress for {quiet_s:.0f} s"
            learned = ""
            if budget is not None and budget.learned:  # the phase's budget, under the ceiling
                learned = f" in {budget.phase}, over its learned budget of {budget.seconds:g} s"
            message += f"{learned} (--hang-timeout {opts.hang_timeout_s:g} s)"
            data = {"quiet_s": round(quiet_s, 1), "last_step": progress.last_step, "lines": tail}
            data.update(budget.evidence() if budget is not None else {})
            recorder.event("hang", message, severity="error", data=data, step=progress.last_step)
            at = f" at step {progress.last_step}" if progress.last_step is not None else ""
            self.narrator.say(
                f"{self.placement.label} hung{at}: no output and no progress for "
                f"{quiet_s:.0f} s{learned}; stopping it",
                stderr_log=self._stderr_log(),
            )
            # In the background: the hung command is stopped once its hooks are done (a
            # forensics hook wants it alive), while signals are still served meanwhile.
            return self.hooks.run(
                "on_hang",
                recorder,
                self.hooks.payload(
                    attempt, recorder, pid=pid, status="hung", summary=message, evidence=data
                ),
                background=True,
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
                    "step_source": ckpt.step_source,
                    "inode": ckpt.identity[0] if ckpt.identity else None,
                    "mtime_ns": ckpt.identity[2] if ckpt.identity else None,
                },
            )

        slow_steps: dict[str, Any] = {"events": 0, "hook": None}  # this attempt's

        def slow_step(step: int, slow: SlowStep) -> None:
            slow_steps["events"] += 1
            if slow_steps["events"] > MAX_SLOW_STEP_EVENTS:
                if slow_steps["events"] == MAX_SLOW_STEP_EVENTS + 1:
                    recorder.warn(f"{MAX_SLOW_STEP_EVENTS} slow steps; the next are not recorded")
                return
            message, data = slow.message(step), slow.evidence()
            recorder.event("slow_step", message, severity="warning", step=step, data=data)
            running = slow_steps["hook"]
            if running is not None and running.is_alive():
                return  # one at a time: a training that stays slow does not fork a hook a step
            payload = self.hooks.payload(
                attempt,
                recorder,
                pid=recorder.attempt.get("pid"),
                status="running",
                summary=message,
                evidence=data,
                step=step,
            )
            slow_steps["hook"] = self.hooks.run("on_slow_step", recorder, payload, background=True)

        def phase(p: Any) -> None:
            self.session_phases.append({"phase": p.phase, "duration_s": p.duration_s})
            recorder.event(
                "phase",
                f"{p.phase} {p.duration_s:.1f} s",
                source="parser",
                step=p.step,
                at=p.start,
                data=p.data("output"),
            )

        def exited() -> None:
            for sampler in filter(None, samplers):
                recorder._safe("the sampler's last reading", sampler.stop_soon)

        watch = Watch(
            launching=launching,
            started=started,
            signal=self.on_signal,
            hang=hang,
            warn=recorder.warn,
            checkpoint=checkpoint,
            metrics=on_metrics if metrics is not None else None,
            parsed=metrics.parsed if metrics is not None else None,
            settings=on_settings if metrics is not None else None,
            phase=phase,
            slow_step=slow_step,
            steps=steps.add if steps is not None else None,
            exited=exited,
        )
        self.finisher = None
        ended = run_attempt(spec, forwarder, watch)
        if metrics is not None:
            progress = ended.progress
            if progress is not None and progress.unparsed:
                self.finish_later(recorder, metrics, progress)
            # A flood: the rest is the finish's, and the exit waits for none of it.
            if (
                progress is not None
                and progress.handed_over
                and (left := metrics.hand_over(self.finisher)) is not None
            ):
                progress.unparsed = left  # what the finish parses: what is not on record
            else:
                metrics.close()
        for sampler in filter(None, samplers):
            sampler.stop()  # its last reading and write (begun at the exit); never raises
            ended.hardware_faults += sampler.faults
        if steps is not None:
            steps.flush()
            recorder._safe("the pace of this host", lambda: self.judge_pace(recorder))
        if ended.start_error is not None:
            return self.could_not_start(recorder, attempt, ended)
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
        status, verdict = judge(
            ended,
            log_dir=self._log_dir(),
            rules=self.opts.rules,
            under_scheduler=self.under_scheduler,
        )
        progress = ended.progress
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
        fields = end_fields(status, verdict, ended, outcome, decision)
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
        if progress is not None and progress.unparsed and self.parser is not None:
            message = unparsed_message(progress, self.finisher)
            print(f"logbook: {message}", file=sys.stderr)
            recorder.event(
                "logbook_warning",
                message,
                severity="warning",
                source="logbook",
                data={
                    "unparsed_bytes": progress.unparsed,
                    "end_parse_s": round(progress.end_parse_s, 2),
                    "parsed_lines": progress.parsed_lines,
                    "finisher_pid": (self.finisher or {}).get("pid"),
                },
            )
        if decision.action == "gave_up" and self.leads:
            recorder.event("gave_up", decision.reason, severity="error")
        payload = self.hooks.payload({**attempt, **fields}, recorder, pid=ended.pid)
        if status in ("crashed", "hung"):
            self.hooks.run("on_crash", recorder, payload)
        if decision.action == "restart" and self.leads:
            recorder.event(
                "restart",
                f"{decision.reason}; relaunching in {decision.delay_s:g} s",
                data={"delay_s": decision.delay_s},
            )
            self.next_placement = lineage.place(  # claimed now, so the hook names it truly
                [*self.previous, (attempt["attempt_id"], attempt["label"])], None, self.claims
            )
            next_label = self.next_placement.label
            self.hooks.run(
                "on_restart",
                recorder,
                {**payload, "delay_s": decision.delay_s, "next_attempt": next_label},
            )
        else:
            self.hooks.run("on_end", recorder, {**payload, "decision": decision.action})
        recorder.ended(**fields)
        self.say_end(attempt["label"], fields, decision, forwarder.stopping)
        code = ExitCode.SIGNAL_BASE + sig if sig else ended.returncode
        return int(code), decision

    def _phase_marks(self, recorder: Recorder) -> Path | None:
        """Where the API marks its phases for the hang watch: only under --hang-timeout."""
        if not self.opts.hang_timeout_s:
            return None
        log_dir = recorder.log_dir()
        return log_dir / phase_marks_env.FILE_NAME if log_dir is not None else None

    def judge_pace(self, recorder: Recorder) -> None:
        """Name this host in a `straggler` event if it lagged the launch's other hosts (#19).

        Each node judges only itself, at its own end, from every node's steps on record: no two
        wrappers write the same verdict, and a straggler, ending last, sees the others' steps
        whole."""
        from logbook.query.stragglers import read_paces

        assert self.node is not None and self.store is not None
        for p in read_paces(self.store, self.run, recorder.attempt_id):
            if p.attempt_id == recorder.attempt_id and p.node == self.node.rank and p.straggler:
                recorder.event(
                    "straggler",
                    f"{self.host} (node {p.node}) was a straggler: {p.ratio}x the other hosts' "
                    f"step time on {p.slow_steps} of the last {p.steps} common steps",
                    severity="warning",
                    source="logbook",
                    data=p.as_row(),
                )

    def say_end(
        self, label: str, fields: dict[str, Any], decision: Decision, asked_to_stop: bool
    ) -> None:
        """One line: how the attempt ended, and what logbook does next."""
        self.last_checkpoint = fields.get("last_checkpoint_step")
        text = narrate.ended(
            label,
            fields["status"],
            fields["crash_class"],
            fields.get("last_step"),
            fields["exit_code"],
            fields["signal_name"],
        )
        next_step = narrate.then(
            decision,
            completed=fields["status"] == "completed",
            asked_to_stop=asked_to_stop,
            restarts_off=self.opts.policy.max_restarts == 0,
            next_label=self.next_placement.label if self.next_placement else None,
        )
        self.narrator.say(
            f"{text}; {next_step}" if next_step else text, stderr_log=self._stderr_log()
        )

    def finish_later(self, recorder: Recorder, metrics: MetricBuffer, progress: Any) -> None:
        """Hand what the end left unparsed to a background process (record/finish.py), named in
        the coverage file that `metrics.close` writes next."""
        from logbook.record.finish import start_background

        self.finisher = None
        if self.store is None or metrics.failed or metrics.coverage is None:
            return
        self.finisher = start_background(self.store.root, self.run, recorder.attempt_id)
        metrics.coverage = {**metrics.coverage, "finisher": self.finisher}  # for `close`

    def _stderr_log(self) -> Path | None:
        """The raw log of the current attempt's stderr: whether it stopped mid-line."""
        log_dir = self._log_dir()
        return log_dir / "stderr.log" if log_dir is not None else None

    def _log_dir(self) -> Path | None:
        return (
            self.recorder.log_dir()
            if self.recorder is not None and self.store is not None
            else None
        )

    def could_not_start(
        self, recorder: Recorder, attempt: dict[str, Any], ended: Ended
    ) -> tuple[int, Decision]:
        e = ended.start_error
        assert e is not None
        message = f"logbook: cannot run {attempt['command'][0]}: {e.strerror or e}"
        print(message, file=sys.stderr)
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


def child_env(
    base: Mapping[str, str],
    *,
    store_root: Path,
    run: str,
    label: str,
    attempt_id: str,
    restart_count: int = 0,
    checkpoint_dir: Path | None = None,
    phase_marks: Path | None = None,
) -> dict[str, str]:
    """The command's environment: ours, plus where to record, and Python unbuffered. With
    LOGBOOK_CHECKPOINT_DIR the callbacks leave the folder's checkpoints to the wrapper; with
    LOGBOOK_PHASE_MARKS the API marks its phases for the hang watch (record/phase_marks.py)."""
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
    if phase_marks is not None:
        env[phase_marks_env.ENV] = str(phase_marks)
    else:
        env.pop(phase_marks_env.ENV, None)
    return env


def _warm_the_end() -> None:
    """Compile the shipped crash rules (20-60 ms of regular expressions) while the command runs:
    the end's classification reads them, and the job's exit should not wait for that."""

    def warm() -> None:
        try:
            from logbook.forensics.rules import load_rules

            load_rules()  # cached; the end reads the same tuple
        except Exception:  # the end loads them itself, and reports what fails
            pass

    threading.Thread(target=warm, name="logbook-warm", daemon=True).start()


def _open_for_recording(
    opts: RunOptions, run: str
) -> tuple[Store | None, attempt_index.Key | None, list[attempt_index.First]]:
    """The store, the key of the run's index (None: no index to keep) and the first rows of the
    run's earlier attempts; (None, None, []) when the store cannot be used."""
    try:
        store = Store.open(opts.store, create=True, source=opts.store_source)
    except Exception:  # unwritable, full, or damaged beyond reading: run unrecorded
        return None, None, []
    try:  # a writer first finishes what dead recorders left: their metrics, their attempts' ends
        from logbook.record.recover import recover_store

        recover_store(store, run)
    except Exception as e:  # it is tried again by the next writer; the training comes first
        print(f"logbook: warning: could not recover earlier records: {e}", file=sys.stderr)
    try:
        key, firsts = lineage.first_rows(store, run, index=opts.remote is None)
    except Exception:
        return None, None, []
    if opts.remote is not None:  # other hosts' attempts may be in the remote store alone
        from logbook.record.attempt import previous_elsewhere

        return store, None, previous_elsewhere(opts.remote, store, run, firsts)
    return store, key, firsts
