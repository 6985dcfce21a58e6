"""logbook run."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from logbook.cli.options import DURATION, store_option

_RUN_SETTINGS = (
    "config",
    "data_mix",
    "metrics",
    "catch_up",
    "restarts",
    "restart_on",
    "no_restart_on",
    "backoff",
    "backoff_max",
    "max_same_failures",
    "hang_timeout",
    "checkpoint_dir",
    "checkpoint_pattern",
    "resume_cmd",
    "grace",
    "sample_every",
    "gpu_price",
)


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
    }
)
@click.option("--run", "run_name", metavar="NAME", help="Run name. Default: the script's name.")
@click.option(
    "--label",
    metavar="LABEL",
    help="Label of the first attempt, e.g. 12.00 to start a new lineage. "
    "Default: the previous attempt's label plus one (1.00, 1.01, ...).",
)
@click.option(
    "--restarts",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Relaunch up to N times after an end worth retrying. [default: 0]",
)
@click.option(
    "--restart-on",
    metavar="CLASSES",
    help="Comma-separated classes to relaunch after (or 'all'). "
    "Default: every crash class but configuration, and hung.",
)
@click.option("--no-restart-on", metavar="CLASSES", help="Classes never to relaunch after.")
@click.option(
    "--backoff",
    type=DURATION,
    metavar="DURATION",
    help="Wait before the first relaunch; doubles while failures make no progress. [default: 10s]",
)
@click.option(
    "--backoff-max",
    type=DURATION,
    metavar="DURATION",
    help="Longest wait between relaunches. [default: 5m]",
)
@click.option(
    "--max-same-failures",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="Give up after the same failure K times in a row with no progress. [default: 3]",
)
@click.option(
    "--hang-timeout",
    type=DURATION,
    metavar="DURATION",
    help="No output and no new step for this long is a hang "
    "(e.g. 30m): recorded, on_hang hooks run, the command is stopped. The ceiling of the "
    "budgets learned per phase (a checkpoint save, training) from the run.",
)
@click.option(
    "--checkpoint-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the training writes checkpoints; their steps measure lost work.",
)
@click.option(
    "--checkpoint-pattern",
    multiple=True,
    metavar="GLOB",
    help="Which entries of --checkpoint-dir are checkpoints (repeatable; e.g. 'model_*.pt'), "
    "instead of names with checkpoint, ckpt, step, iter or epoch.",
)
@click.option(
    "--metrics",
    metavar="MODE",
    help="Metrics from the output: auto (key=value, key: value, JSON, dict reprs, Megatron, tqdm), "
    "regex:PATTERN (named groups), or none. [default: auto]",
)
@click.option(
    "--catch-up",
    type=DURATION,
    metavar="DURATION",
    help="How long logbook run may parse the output after the command ends, at most 1s (the "
    "exit is never held longer); a rest that cannot be parsed in that time is not begun. What is "
    "left is parsed by a background process and is on record when it ends. 0: hand it all over. "
    "[default: 1s]",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The training's config file (YAML, JSON or TOML): snapshotted per attempt; its changes "
    "from the parent attempt are hparam_change events, as are the command line's.",
)
@click.option(
    "--data-mix",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The data mix (YAML, JSON or TOML: source -> weight, or -> {weight, tokens, path}): "
    "recorded per attempt with fingerprints of its paths; changes from the parent attempt are "
    "data_mix_change events.",
)
@click.option(
    "--resume-cmd",
    metavar="CMD",
    help="Command line for relaunches, if it differs (e.g. adds --resume).",
)
@click.option(
    "--hook",
    "hook_specs",
    multiple=True,
    metavar="EVENT=COMMAND",
    help="Run COMMAND on on_start, on_crash, on_hang, on_slow_step, on_restart or on_end (repeatable).",
)
@click.option(
    "--tty/--no-tty",
    "tty",
    default=None,
    help="Force a pseudo-terminal (or pipes) for the command's output. Default: a "
    "pseudo-terminal for each of stdout and stderr that is a terminal here.",
)
@click.option(
    "--grace",
    type=DURATION,
    metavar="DURATION",
    help="Between passing on SIGINT/SIGTERM/SIGHUP (or a hang) and killing "
    "the command's group. [default: 20s]",
)
@click.option(
    "--sample-every",
    type=DURATION,
    metavar="DURATION",
    help="Read the command's processes, the host and the GPUs this often into the samples "
    "table; 0 turns it off, less than 0.5s is refused. [default: 10s]",
)
@click.option(
    "--gpu-price",
    metavar="USD",
    help="What one GPU-hour costs here, in US dollars: recorded per attempt for `logbook cost` "
    "(over logbook.toml's [cost] gpu-price and the shipped price table).",
)
@click.option(
    "--no-capture", is_flag=True, help="Skip the launch snapshot (git, packages, env, hardware)."
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    envvar="LOGBOOK_QUIET",
    help="No line on stderr for each decision (launching, how an attempt ended, relaunching, "
    "giving up, a hang, a signal); warnings still print. Also LOGBOOK_QUIET=1.",
)
@store_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
def run(
    run_name: str | None,
    label: str | None,
    tty: bool | None,
    no_capture: bool,
    quiet: bool,
    store: Path | None,
    command: tuple[str, ...],
    hook_specs: tuple[str, ...],
    **flags: Any,
) -> None:
    """Run a training command, relaunch it by policy, and record every attempt.

    \b
        logbook run --run gpt-small -- python train.py --lr 3e-4
        logbook run --restarts 20 --hang-timeout 30m --checkpoint-dir ckpt -- torchrun ... train.py

    Settings not given as flags come from logbook.toml's [run] table. Exits with the last
    attempt's exit code (128+N if signal N ended it).
    """
    from logbook import supervisor
    from logbook.settings import find_config, find_store, store_url

    url = store_url(store)
    if url is not None:  # recorded into this host's spool of it, uploaded beside the training
        from logbook.store.remote import spool_dir

        root, source = spool_dir(url), ("--store" if store else "LOGBOOK_STORE")
    else:
        root, source = find_store(store)
    config_path, config = find_config()
    opts = supervisor.RunOptions(
        command=list(command),
        store=root,
        remote=url,
        store_source=source,
        run=run_name,
        label=label,
        tty={None: "auto", True: "always", False: "never"}[tty],
        capture=not no_capture,
        quiet=quiet,
        **resolve_run_settings(flags, config, hook_specs, config_path),
    )
    from logbook.cli import console_process, exit_at_once

    if console_process():  # this process is the wrapper's alone: no pandas in it (arrow_pool)
        from logbook.supervisor.arrow_pool import leave_pandas_out

        leave_pandas_out()
    code = supervisor.run(opts)
    exit_at_once()
    sys.exit(code)


def resolve_run_settings(
    flags: dict[str, Any],
    config: dict[str, Any],
    hook_specs: tuple[str, ...],
    config_path: Path | None,
) -> dict[str, Any]:
    """Flags over logbook.toml's [run] table over defaults; errors before anything starts."""
    from logbook.errors import ConfigError
    from logbook.forensics.rules import load_rules
    from logbook.settings import parse_duration
    from logbook.supervisor.hook_runner import check_hooks, hooks_from_config, parse_hook_option
    from logbook.supervisor.policy import RestartPolicy

    table = config.get("run", {})
    where = f"{config_path} [run]" if config_path else "[run]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - {k.replace("_", "-") for k in _RUN_SETTINGS} - set(_RUN_SETTINGS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting {', '.join(unknown)}",
            hint=f"known: {', '.join(s.replace('_', '-') for s in _RUN_SETTINGS)}",
        )

    def get(name: str, default: Any) -> Any:
        if flags.get(name) is not None:
            return flags[name]
        return table.get(name.replace("_", "-"), table.get(name, default))

    def duration(name: str, default: str | None) -> float | None:
        value = get(name, default)
        return None if value is None else parse_duration(value, what=f"--{name.replace('_', '-')}")

    policy = RestartPolicy.build(
        max_restarts=int(get("restarts", 0)),
        restart_on=get("restart_on", None),
        no_restart_on=get("no_restart_on", None),
        backoff_s=duration("backoff", "10s") or 0.0,
        backoff_max_s=duration("backoff_max", "5m") or 0.0,
        same_failure_limit=int(get("max_same_failures", 3)),
    )
    hooks = [*hooks_from_config(config), *(parse_hook_option(h) for h in hook_specs)]
    check_hooks(hooks, Path.cwd(), dict(os.environ))
    crash = config.get("crash", {})
    user_rules = crash.get("rule") if isinstance(crash, dict) else None
    # The user's rules are checked now, before anything starts; without any, the shipped ones
    # (tested) are compiled when an attempt ends, not at every start (~50 ms of regexes).
    rules = load_rules(user_rules) if user_rules else None
    metrics = str(get("metrics", "auto"))
    if metrics != "none":
        from logbook.record.parsers import LineParser

        LineParser(metrics)  # a bad mode or regex is an error before the command starts
    detectors = config.get("detectors", {})
    if not isinstance(detectors, dict):
        raise ConfigError(f"{config_path}: [detectors] must be a table")
    from logbook.record.detectors import Detectors

    Detectors(detectors)  # unknown settings are an error before the command starts
    resume = get("resume_cmd", None)
    config_file = get("config", None)
    if config_file is not None:
        from logbook.record.hparams import load_config

        load_config(Path(config_file))  # a malformed file is an error before the command starts
    data_mix = get("data_mix", None)
    if data_mix is not None:
        from logbook.record.datamix import load_mix

        load_mix(Path(data_mix))  # likewise
    checkpoint_dir = get("checkpoint_dir", None)
    patterns = flags.get("checkpoint_pattern") or table.get("checkpoint-pattern")  # flag: ()
    if isinstance(patterns, str):
        patterns = [patterns]
    if patterns is not None and (
        not isinstance(patterns, (list, tuple))
        or not all(isinstance(p, str) and p for p in patterns)
    ):
        raise ConfigError(f"{where}: checkpoint-pattern must be a glob or a list of globs")
    from logbook.telemetry import check_every

    try:
        sample_every = check_every(duration("sample_every", "10s") or 0.0)
    except ConfigError as e:
        if flags.get("sample_every") is None:
            raise
        raise click.BadParameter(str(e), param_hint="'--sample-every'") from e  # exit 2 (#17)
    gpu_price = get("gpu_price", None)
    if gpu_price is not None:
        gpu_price = _price(gpu_price)
    return {
        "policy": policy,
        "hang_timeout_s": duration("hang_timeout", None) or None,
        "hooks": hooks,
        "rules": rules,
        "grace_s": duration("grace", "20s"),
        "resume_command": shlex.split(resume) if resume else None,
        "checkpoint_dir": Path(checkpoint_dir).absolute() if checkpoint_dir else None,
        "checkpoint_patterns": list(patterns) if patterns else None,
        "config_path": Path(config_file).absolute() if config_file else None,
        "data_mix_path": Path(data_mix).absolute() if data_mix else None,
        "metrics": metrics,
        "catch_up_s": min(duration("catch_up", "1s") or 0.0, 1.0),  # never held longer (#15)
        "detectors": detectors,
        "sample_every_s": sample_every,
        "gpu_price": gpu_price,
    }


def _price(value: Any) -> float:
    """A GPU-hour price: a number of dollars, at least 0."""
    from logbook.errors import ConfigError

    try:
        price = float(str(value).strip().lstrip("$"))
    except ValueError:
        price = float("nan")
    if not price >= 0 or price == float("inf"):
        raise ConfigError(
            f"--gpu-price {value!r} is not a price", hint="give US dollars per GPU-hour, e.g. 2.10"
        )
    return price


COMMANDS = [run]
