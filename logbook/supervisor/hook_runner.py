"""Lifecycle hooks: executables run at on_start, on_crash, on_hang, on_slow_step,
on_restart and on_end.

A hook gets the event as JSON on stdin (`{"schema": "logbook.hook/1", "event": ..., ...}`, described
by schemas/hook.json) and as `LOGBOOK_*` environment variables. It runs in its own process group with a
timeout; its output is kept, truncated, for the event. `run_hook` never raises: a hook that fails, hangs,
is missing or crashes comes back as a `HookResult` that says so, so the training is never stopped or
delayed beyond the hook's timeout.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from logbook.errors import ConfigError

EVENTS = ("on_start", "on_crash", "on_hang", "on_slow_step", "on_restart", "on_end")
PAYLOAD_SCHEMA = "logbook.hook/1"
OUTPUT_LIMIT = 64 * 1024  # characters of hook output kept with the event
DEFAULT_TIMEOUT_S = 60.0
KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL to a hook's group that outlived its timeout
# After the hook exits, how long to keep reading output a background grandchild may still be writing.
_DRAIN_S = 0.2
_ENV_VALUE_LIMIT = (
    8 * 1024
)  # one env string may not exceed 128 KiB (MAX_ARG_STRLEN); stdin has it whole
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Hook:
    """One command to run at one lifecycle event.

    `command` is split with shlex and run without a shell: "hooks/crash-forensics --out /tmp/x".
    """

    event: str
    command: str
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass
class HookResult:
    """What happened when a hook ran.

    `exit_code` is None when the hook timed out or could not start, negative (-N) when signal N
    killed it, as `subprocess` reports it. `error` says why it could not start, else None.
    """

    hook: Hook
    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: str
    error: str | None

    @property
    def ok(self) -> bool:
        """The hook ran to the end and exited 0."""
        return self.exit_code == 0 and not self.timed_out and self.error is None


def parse_hook_option(text: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Hook:
    """A `--hook EVENT=COMMAND` value as a Hook.

    Raises:
        ConfigError: no `=`, an unknown event, or an empty or unparsable command.
    """
    event, sep, command = text.partition("=")
    event = event.strip()
    if not sep:
        raise ConfigError(f"--hook {text!r}: expected EVENT=COMMAND", hint=_events_hint())
    _check_event(event, where="--hook")
    _check_command(command, where=f"--hook {event}")
    return Hook(event, command.strip(), timeout_s)


def hooks_from_config(config: Mapping[str, Any]) -> list[Hook]:
    """The hooks of a parsed logbook.toml (the whole file; only its `[hooks]` table is read).

    ```toml
    [hooks]
    timeout = 60                                   # default for every hook, seconds
    on_start = "hooks/notify-webhook"
    on_crash = ["hooks/crash-forensics", "hooks/notify-webhook"]
    on_hang = [{command = "hooks/crash-forensics --out /tmp/hang", timeout = 30}]
    ```

    Raises:
        ConfigError: anything malformed, named with its place in the file.
    """
    table = config.get("hooks")
    if table is None:
        return []
    if not isinstance(table, Mapping):
        raise ConfigError(f"logbook.toml: [hooks] must be a table, not {table!r}")
    default = _timeout(table.get("timeout", DEFAULT_TIMEOUT_S), where="[hooks] timeout")
    hooks = []
    for key, value in table.items():
        if key == "timeout":
            continue
        _check_event(key, where="logbook.toml [hooks]")
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            where = f"[hooks] {key}" + (f"[{i}]" if isinstance(value, list) else "")
            hooks.append(_hook_from_item(key, item, default, where=where))
    return hooks


def check_hooks(hooks: Sequence[Hook], cwd: Path, env: Mapping[str, str]) -> None:
    """Check, before the child starts, that every hook's program exists and may be executed.

    The program (first shlex token) is looked up on env's PATH, or relative to `cwd` when it has a `/`.

    Raises:
        ConfigError: naming each hook that cannot run and how to fix it.
    """
    problems = []
    for hook in hooks:
        try:
            _resolve(hook, cwd, env)
        except ConfigError as e:
            problems.append(str(e))
    if problems:
        raise ConfigError("; ".join(problems))


def payload_env(payload: Mapping[str, Any]) -> dict[str, str]:
    """The `LOGBOOK_<KEY>` variables of a payload: one per top-level string, number or bool.

    Nested values and nulls are left to the JSON on stdin; bools are "true"/"false" as in JSON.
    """
    out = {}
    for key, value in payload.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                continue
            text = str(value)
        else:
            continue
        name = "LOGBOOK_" + "".join(c if c.isalnum() else "_" for c in str(key)).upper()
        out[name] = text.replace("\0", "")[:_ENV_VALUE_LIMIT]
    return out


def run_hook(
    hook: Hook, payload: Mapping[str, Any], *, env: Mapping[str, str], cwd: Path
) -> HookResult:
    """Run one hook with the payload on stdin and in the environment; never raises.

    Args:
        hook: what to run; its `event` is the payload's `event`.
        payload: the event's fields (run, attempt, status, ...); `schema` and `event` are added.
        env: the environment to run it in; the `LOGBOOK_*` variables are set on top.
        cwd: where it runs, and what a relative program path is relative to.

    Returns:
        The result; on a timeout the hook's whole process group has been killed.
    """
    start = time.monotonic()
    message: dict[str, Any] = {"schema": PAYLOAD_SCHEMA, "event": hook.event}
    message.update((str(k), v) for k, v in payload.items() if k not in message)
    message = _jsonable(message)
    data = json.dumps(message, allow_nan=False).encode()
    trace = _tracing(env)
    if trace:
        _trace(
            f"{hook.event}: {hook.command} (timeout {hook.timeout_s:g} s) payload {data.decode()}"
        )
    try:
        argv = _resolve(hook, cwd, env)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one pipe keeps stdout and stderr in the order written
            cwd=cwd,
            env={**env, **payload_env(message)},
            start_new_session=True,  # its own group, so a timeout can kill what it spawned too
        )
    except (ConfigError, OSError, ValueError) as e:
        result = HookResult(hook, None, False, time.monotonic() - start, "", f"cannot start: {e}")
    else:
        exit_code, timed_out, output = _supervise(proc, data, hook.timeout_s)
        result = HookResult(hook, exit_code, timed_out, time.monotonic() - start, output, None)
    if trace:
        how = result.error or ("timed out" if result.timed_out else f"exit {result.exit_code}")
        _trace(f"{hook.event}: {hook.command}: {how} in {result.duration_s:.2f} s")
    return result


def run_hooks(
    event: str,
    hooks: Sequence[Hook],
    payload: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    cwd: Path,
) -> list[HookResult]:
    """Run, one after another in the given order, the hooks registered for `event`.

    Raises:
        ValueError: `event` is not one of EVENTS (a bug in the caller, not in the user's hooks).
    """
    if event not in EVENTS:
        raise ValueError(f"unknown hook event {event!r}; known: {', '.join(EVENTS)}")
    return [run_hook(h, payload, env=env, cwd=cwd) for h in hooks if h.event == event]


def _events_hint() -> str:
    return f"events: {', '.join(EVENTS)}"


def _check_event(event: str, *, where: str) -> None:
    if event not in EVENTS:
        raise ConfigError(f"{where}: unknown hook event {event!r}", hint=_events_hint())


def _check_command(command: Any, *, where: str) -> None:
    if not isinstance(command, str):
        raise ConfigError(f"{where}: the command must be a string, not {command!r}")
    try:
        tokens = shlex.split(command)
    except ValueError as e:
        raise ConfigError(f"{where}: cannot split {command!r}: {e}", hint="check the quotes") from e
    if not tokens:
        raise ConfigError(
            f"{where}: empty command", hint='give a program, e.g. "hooks/notify-webhook"'
        )


def _timeout(value: Any, *, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigError(
            f"logbook.toml {where}: timeout must be a positive number of seconds, not {value!r}"
        )
    return float(value)


def _hook_from_item(event: str, item: Any, default: float, *, where: str) -> Hook:
    if isinstance(item, str):
        _check_command(item, where=f"logbook.toml {where}")
        return Hook(event, item.strip(), default)
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - {"command", "timeout"})
        if unknown:
            raise ConfigError(
                f"logbook.toml {where}: unknown key {', '.join(unknown)}",
                hint="use command and timeout",
            )
        if "command" not in item:
            raise ConfigError(
                f"logbook.toml {where}: missing command",
                hint='e.g. {command = "hooks/crash-forensics"}',
            )
        _check_command(item["command"], where=f"logbook.toml {where}")
        timeout = (
            _timeout(item["timeout"], where=f"{where} timeout") if "timeout" in item else default
        )
        return Hook(event, item["command"].strip(), timeout)
    raise ConfigError(
        f"logbook.toml {where}: expected a command string, a list, or a table, not {item!r}",
        hint='e.g. on_crash = "hooks/crash-forensics"',
    )


def _resolve(hook: Hook, cwd: Path, env: Mapping[str, str]) -> list[str]:
    """The argv to execute, its program made absolute; ConfigError if it cannot be run."""
    _check_command(hook.command, where=f"hook {hook.event}")
    program, *args = shlex.split(hook.command)
    where = f"hook {hook.event} ({hook.command!r})"
    if "/" in program:
        path = (cwd / Path(program).expanduser()).absolute()
        if not path.exists():
            raise ConfigError(
                f"{where}: {path} does not exist",
                hint="fix the path (relative paths start at the working directory)",
            )
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            raise ConfigError(
                f"{where}: {program!r} is not on PATH", hint="give its path, e.g. hooks/" + program
            )
        path = Path(found)
    if path.is_dir():
        raise ConfigError(f"{where}: {path} is a directory", hint="name the executable inside it")
    if not os.access(path, os.X_OK):
        raise ConfigError(
            f"{where}: {path} is not executable", hint=f"chmod +x {shlex.quote(str(path))}"
        )
    return [str(path), *args]


def _supervise(
    proc: subprocess.Popen[bytes], data: bytes, timeout_s: float
) -> tuple[int | None, bool, str]:
    """Feed stdin, collect output, enforce the timeout; (exit code, timed out, output)."""
    assert proc.stdin is not None and proc.stdout is not None
    output = _BoundedOutput(OUTPUT_LIMIT)
    pump = _Pump(proc.stdin, proc.stdout, data, output)
    deadline = time.monotonic() + timeout_s
    try:
        pump.run_until(lambda: proc.poll() is not None, deadline)
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            pump.run_until(
                lambda: proc.poll() is not None and not _group_alive(proc.pid),
                time.monotonic() + KILL_GRACE_S,
            )
            # Also for what ignored SIGTERM, or outlived the leader.
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, True, output.text()
        # Exited: take what is still in the pipe, without waiting on a grandchild that holds it open.
        pump.run_until(lambda: not pump.reading, min(deadline, time.monotonic() + _DRAIN_S))
        return proc.returncode, False, output.text()
    finally:
        pump.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs; zombies waiting for a reaper do not count."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: a zombie is counted as alive, and waited out to the grace
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state not in ("Z", "X"):
            return True
    return False


class _Pump:
    """Writes the payload to the hook's stdin and reads its output, both without blocking."""

    def __init__(
        self, stdin: IO[bytes], stdout: IO[bytes], data: bytes, output: _BoundedOutput
    ) -> None:
        self._stdin: IO[bytes] | None = stdin
        self._stdout: IO[bytes] | None = stdout
        self._data = memoryview(data)
        self._output = output
        self._sel = selectors.DefaultSelector()
        self._sel.register(stdout, selectors.EVENT_READ)
        os.set_blocking(stdin.fileno(), False)  # a hook that never reads stdin must not block us
        self._sel.register(stdin, selectors.EVENT_WRITE)

    @property
    def reading(self) -> bool:
        """The output pipe is still open (no EOF yet)."""
        return self._stdout is not None

    def run_until(self, done: Callable[[], bool], deadline: float) -> None:
        """Move bytes until `done()` or the deadline; also stops early once output reaches EOF."""
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not self._sel.get_map():
                time.sleep(min(left, 0.02))  # both pipes finished: just wait for the exit
                continue
            for key, _ in self._sel.select(min(left, 0.1)):
                if key.fileobj is self._stdout:
                    self._read()
                else:
                    self._write()

    def _read(self) -> None:
        assert self._stdout is not None
        chunk = os.read(self._stdout.fileno(), _CHUNK)
        if chunk:
            self._output.add(chunk)
        else:
            self._close_stdout()

    def _write(self) -> None:
        assert self._stdin is not None
        try:
            n = os.write(self._stdin.fileno(), self._data[:_CHUNK])
        except BlockingIOError:
            return
        except OSError:  # BrokenPipe: the hook closed stdin or exited without reading it all
            n = len(self._data)
        self._data = self._data[n:]
        if not self._data:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self._stdin is not None:
            self._sel.unregister(self._stdin)
            try:
                self._stdin.close()
            except OSError:
                pass
            self._stdin = None

    def _close_stdout(self) -> None:
        if self._stdout is not None:
            self._sel.unregister(self._stdout)
            self._stdout.close()
            self._stdout = None

    def close(self) -> None:
        self._close_stdin()
        self._close_stdout()
        self._sel.close()


class _BoundedOutput:
    """Keeps the first and last bytes of a stream of any size, and counts what fell between."""

    def __init__(self, limit: int) -> None:
        self._half = (limit - 64) // 2  # 64: room for the cut marker
        self._head = bytearray()
        self._tail = bytearray()
        self.cut = 0

    def add(self, chunk: bytes) -> None:
        room = self._half - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        self._tail += chunk
        extra = len(self._tail) - self._half
        if extra > 0:
            del self._tail[:extra]
            self.cut += extra

    def text(self) -> str:
        head = self._head.decode(errors="replace")
        tail = self._tail.decode(errors="replace")
        return f"{head}\n[... {self.cut} bytes cut ...]\n{tail}" if self.cut else head + tail


def _jsonable(value: Any) -> Any:
    """The payload as strict JSON: NaN and inf as null, times as ISO-8601, anything else as text."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _tracing(env: Mapping[str, str]) -> bool:
    value = env.get("LOGBOOK_TRACE_HOOKS") or os.environ.get("LOGBOOK_TRACE_HOOKS", "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def _trace(line: str) -> None:
    sys.stderr.write(f"logbook: hook {line}\n")
    sys.stderr.flush()
