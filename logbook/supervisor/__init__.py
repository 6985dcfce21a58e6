"""`logbook run`: launch the command, watch it, classify its end, relaunch by policy, record it all.

>>> supervisor.run(RunOptions(command=["python", "train.py"], run="gpt-small", store=path))
0
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from logbook.supervisor import arrow_pool, lineage
from logbook.supervisor.policy import RestartPolicy

__all__ = ["RunOptions", "child_env", "run"]


def __getattr__(name: str) -> Any:
    """`child_env` on first use: the session's modules are `run`'s alone, and a reader that
    needs one light module of this package (`lineage`, for the lineage SQL of every query)
    must not import them (0.15 s of every reading command's start)."""
    if name == "child_env":
        from logbook.supervisor.session import child_env

        return child_env
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class RunOptions:
    """What `logbook run` was asked to do."""

    command: list[str]
    store: Path
    remote: str | None = None  # a remote store's URL: `store` is then its spool (store/uploader.py)
    run: str | None = None
    label: str | None = None
    tty: str = "auto"  # auto | always | never: a pty per stream whose own end is a terminal
    grace_s: float = 20.0  # after a stopping signal, seconds before the group is killed
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    capture: bool = True
    store_source: str = "given"
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    hang_timeout_s: float | None = None
    checkpoint_dir: Path | None = None
    checkpoint_patterns: list[str] | None = None  # which entries are checkpoints; None: the default
    resume_command: list[str] | None = None
    detectors: dict[str, Any] = field(default_factory=dict)  # logbook.toml [detectors] settings
    metrics: str = "auto"  # auto | none | regex:PATTERN: metrics from the output
    catch_up_s: float = (
        1.0  # after the end, parse for at most this long; the rest: record/finish.py
    )
    config_path: Path | None = None  # --config: snapshotted per attempt, diffed against the parent
    data_mix_path: Path | None = None  # --data-mix: recorded per attempt, diffed against the parent
    hooks: Sequence[Any] = ()  # logbook.supervisor.hook_runner.Hook
    rules: Sequence[Any] | None = None  # logbook.forensics.rules.Rule; None: the shipped ones
    sample_every_s: float = 10.0  # telemetry readings this often; 0: none
    gpu_price: float | None = None  # --gpu-price: USD per GPU-hour, recorded per attempt
    quiet: bool = False  # --quiet: no line on stderr for each decision (narrate.py)


def run(opts: RunOptions) -> int:
    """Run the command, relaunching it by `opts.policy`, and record every attempt.

    Returns:
        The last attempt's exit code, or 128+N if signal N ended it (126/127 if it could not start).

    Raises:
        ConfigError: a bad run name or label (before anything starts).
    """
    from logbook.store import layout

    run_name = layout.check_run_name(
        lineage.default_run_name(opts.command) if opts.run is None else opts.run
    )
    if opts.env is None:  # the training's environment, as it was before the pool's variable
        opts = replace(opts, env=dict(os.environ))
    arrow_pool.ask()
    uploader = _start_uploads(opts)
    try:
        from logbook.supervisor.session import Session
        from logbook.supervisor.signals import Forwarder

        session = Session(opts, run_name)
        forwarder = Forwarder(grace_s=opts.grace_s, on_signal=session.on_signal)
        forwarder.install()
        try:
            return session.loop(forwarder)
        finally:
            forwarder.restore()
    finally:
        arrow_pool.settle()  # where no command was spawned
        if uploader is not None:
            _finish_uploads(uploader)


def _start_uploads(opts: RunOptions) -> Any:
    """The thread that uploads the spool of a remote store (None for a local store, or when the
    spool cannot be made: then the store is unusable, and the session runs unrecorded)."""
    if opts.remote is None:
        return None
    from logbook.store import remote, uploader

    try:
        remote.make_spool(opts.remote)
        up = uploader.Uploader(opts.store, opts.remote).start()
    except Exception as e:  # the training comes first
        print(f"logbook: warning: cannot upload to {opts.remote}: {e}", file=sys.stderr)
        return None
    uploader.set_current(up)
    up.nudge()  # what an earlier wrapper left in the spool goes up first
    return up


def _finish_uploads(up: Any) -> None:
    from logbook.store import uploader

    uploader.set_current(None)
    try:
        up.finish()
    except Exception as e:  # never the training's exit code
        print(f"logbook: warning: uploads to {up.url} stopped: {e}", file=sys.stderr)
