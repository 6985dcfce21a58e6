"""When to relaunch: which ends are worth a restart, how long to wait, and when to give up."""

from __future__ import annotations

from dataclasses import dataclass, field

from logbook.errors import ConfigError
from logbook.forensics.rules import CLASSES

CRASH_CLASSES = CLASSES
# What --restart-on names: crash classes, plus the ends that are not crashes but may be retried.
RESTARTABLE = (*CRASH_CLASSES, "hung")
DEFAULT_RESTART_ON = frozenset(c for c in RESTARTABLE if c != "configuration")


def parse_classes(text: str | list[str], *, option: str) -> set[str]:
    """'gpu_oom,communication' (or, from logbook.toml, a list of them) -> the set; ConfigError
    naming the unknown ones."""
    if isinstance(text, list):
        text = ",".join(str(t) for t in text)
    if not isinstance(text, str):
        raise ConfigError(
            f"{option}: {text!r} is not a list of classes", hint='e.g. "gpu_oom,communication"'
        )
    names = {t.strip() for t in text.split(",") if t.strip()}
    if "all" in names:
        names = (names - {"all"}) | set(RESTARTABLE)
    unknown = sorted(names - set(RESTARTABLE))
    if unknown:
        raise ConfigError(
            f"{option}: unknown class {', '.join(unknown)}",
            hint=f"use all or any of: {', '.join(RESTARTABLE)}",
        )
    return names


@dataclass
class RestartPolicy:
    max_restarts: int = 0
    restart_on: frozenset[str] = DEFAULT_RESTART_ON
    backoff_s: float = 10.0
    backoff_max_s: float = 300.0
    same_failure_limit: int = 3  # this many identical failures in a row with no progress: give up

    @classmethod
    def build(
        cls,
        *,
        max_restarts: int,
        restart_on: str | list[str] | None,
        no_restart_on: str | list[str] | None,
        backoff_s: float,
        backoff_max_s: float,
        same_failure_limit: int,
    ) -> RestartPolicy:
        on = (
            set(DEFAULT_RESTART_ON)
            if restart_on is None
            else parse_classes(restart_on, option="--restart-on")
        )
        if no_restart_on:
            on -= parse_classes(no_restart_on, option="--no-restart-on")
        return cls(max_restarts, frozenset(on), backoff_s, backoff_max_s, same_failure_limit)


@dataclass
class Outcome:
    """How one attempt ended, as far as restarting is concerned."""

    status: str  # completed, interrupted, preempted, hung, crashed
    crash_class: str | None
    retryable: bool
    signature: str  # two failures with the same signature are "the same failure"
    progressed: bool  # reached a step beyond any earlier attempt of this session
    stopped_by_us: bool  # logbook itself was asked to stop (Ctrl-C, a scheduler's SIGTERM)


@dataclass
class Decision:
    action: str  # restart, stop, gave_up
    reason: str
    delay_s: float = 0.0


@dataclass
class History:
    restarts: int = 0
    same_in_a_row: int = 0
    last_signature: str | None = None
    failures_without_progress: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


def decide(policy: RestartPolicy, outcome: Outcome, history: History) -> Decision:
    """What to do after `outcome`; updates `history`."""
    history.outcomes.append(outcome)
    if outcome.status == "completed":
        return Decision("stop", "completed")
    if outcome.stopped_by_us:
        return Decision(
            "stop", f"{outcome.status}: logbook was asked to stop, so it does not relaunch"
        )
    kind = "hung" if outcome.status == "hung" else outcome.crash_class or outcome.status
    repeated = outcome.signature == history.last_signature and not outcome.progressed
    history.same_in_a_row = history.same_in_a_row + 1 if repeated else 1
    history.last_signature = outcome.signature
    history.failures_without_progress = (
        0 if outcome.progressed else history.failures_without_progress + 1
    )
    if kind not in policy.restart_on or not outcome.retryable:
        why = "not worth retrying" if not outcome.retryable else "not in --restart-on"
        return Decision("stop", f"{kind}: {why}")
    if policy.max_restarts <= history.restarts:
        return Decision(
            "stop",
            f"{kind}: no restarts left ({policy.max_restarts} allowed)"
            if policy.max_restarts
            else f"{kind}: restarts are off (--restarts 0)",
        )
    if not outcome.progressed and history.same_in_a_row >= policy.same_failure_limit:
        return Decision(
            "gave_up",
            f"the same failure ({outcome.signature}) {history.same_in_a_row} times "
            "in a row with no progress: a crash loop",
        )
    delay = min(
        policy.backoff_max_s, policy.backoff_s * 2 ** max(0, history.failures_without_progress - 1)
    )
    history.restarts += 1
    return Decision(
        "restart", f"{kind}: restart {history.restarts} of {policy.max_restarts}", delay
    )
