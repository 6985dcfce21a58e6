"""The lifecycle hooks of `logbook run` (on_start, on_hang, on_slow_step, on_crash, on_restart,
on_end): what each gets, and running them so that each result becomes a `hook` event and nothing
they do (fail, hang, outlive the attempt) touches the training. Hooks run once a launch: on its
leader."""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logbook.supervisor.recorder import Recorder


class LifecycleHooks:
    """The hooks of one `logbook run`; owns the threads of those run in the background."""

    def __init__(
        self,
        hooks: Sequence[Any],
        *,
        run: str,
        store: Path,
        cwd: Path,
        env: Mapping[str, str],
        leads: Callable[[], bool],
    ) -> None:
        self.hooks = list(hooks)
        self.run_name = run
        self.store = store
        self.cwd = cwd
        self.env = dict(env)
        self.leads = leads
        self._threads: list[threading.Thread] = []

    def payload(
        self, attempt: Mapping[str, Any], recorder: Recorder | None, **extra: Any
    ) -> dict[str, Any]:
        """What a hook gets (logbook.hook/1)."""
        log_dir = recorder.log_dir() if recorder is not None and recorder.store else None
        return {
            "run": self.run_name,
            "attempt": attempt.get("label"),
            "attempt_id": attempt.get("attempt_id"),
            "status": attempt.get("status"),
            "crash_class": attempt.get("crash_class"),
            "component": attempt.get("component"),
            "planned": attempt.get("planned"),
            "summary": attempt.get("summary"),
            "exit_code": attempt.get("exit_code"),
            "signal": attempt.get("signal_name"),
            "restart_count": attempt.get("restart_count"),
            "retryable": attempt.get("retryable"),
            "store": str(self.store),
            "log_dir": str(log_dir or ""),
            "host": attempt.get("host"),
            "time": datetime.now(timezone.utc).isoformat(),
            "evidence": json.loads(attempt["evidence"])
            if isinstance(attempt.get("evidence"), str)
            else None,
            **extra,
        }

    def run(
        self,
        event: str,
        recorder: Recorder | None,
        payload: dict[str, Any],
        *,
        background: bool = False,
    ) -> threading.Thread | None:
        """Run the hooks of `event`; each result becomes a hook event. Never raises. In the
        background, returns the thread (also joined by `join`)."""
        hooks = [h for h in self.hooks if h.event == event]
        if not hooks or recorder is None or not self.leads():
            return None
        env, cwd = self.env, self.cwd

        def work() -> None:
            from logbook.supervisor.hook_runner import run_hooks

            try:
                results = run_hooks(event, hooks, payload, env=env, cwd=cwd)
            except Exception as e:  # the hook runner promises not to raise; be sure anyway
                recorder.warn(f"{event} hooks failed: {e!r}")
                return
            for r in results:
                _record(recorder, event, r)

        if not background:
            work()
            return None
        t = threading.Thread(target=work, name=f"logbook-hook-{event}", daemon=True)
        self._threads.append(t)
        t.start()
        return t

    def join(self, *, hurry: bool = False) -> None:
        """Wait for the hooks still running in the background, each bounded by its timeout (the
        runner kills a hook past it), so that their events are on record before we exit; in a
        `hurry` (we were asked to stop) a moment only: a hook never holds back a Ctrl-C."""
        limit = 2.0 if hurry else max((h.timeout_s for h in self.hooks), default=0.0) + 5.0
        for t in self._threads:
            t.join(timeout=limit)
        self._threads = [t for t in self._threads if t.is_alive()]


def _record(recorder: Recorder, event: str, r: Any) -> None:
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
