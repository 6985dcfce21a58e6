"""How an attempt ended: completed, interrupted, preempted, or crashed with a class and evidence.

The order of the questions:

1. A stopping signal logbook passed on: SIGINT is the user (interrupted); SIGTERM/SIGHUP is a
   scheduler when one is present (preempted), else the user. This wins over exit status 0: a job
   told to stop that exits cleanly has stopped, not finished.
2. Exit status 0: completed, whatever the log says, but for one thing: the command's own report,
   among its last lines, of a stopping signal it caught (Lightning's `[rank: 0] Received SIGTERM:
   15`, then a clean exit 0): interrupted, or preempted under a scheduler, as in 4.
3. A scheduler's own words (a Slurm "CANCELLED ... DUE TO TIME LIMIT" line): preempted.
4. The command itself died of SIGINT/SIGTERM/SIGHUP that logbook did not send: interrupted, or
   preempted under a scheduler.
5. The earliest line matching a primary rule. Lines from torchrun's root-cause rank come first,
   then the user's rules, then the stderr log, then the earliest line.
6. SIGKILL (exit -9 or 137, or torchrun's root cause): host_oom. A scheduler that kills with
   SIGKILL kills logbook too, and logbook forwards the stops it sees; what is left to send SIGKILL
   to the biggest process and spare its small parent is, nearly always, the kernel's OOM killer.
   The rule id "sigkill" marks the verdict as inferred, not read in the log.
7. The earliest line matching a secondary rule (texts that usually follow another failure).
8. Exit status 2 and a "usage:" line: configuration (a command-line parser refused its arguments).
9. The last Python traceback: python_exception, with the type, message and innermost frame.
10. Death by another signal (SIGSEGV, SIGABRT, ...; 128+N from a shell): fatal_signal.
11. Otherwise: unknown, with the exit code.
"""

from __future__ import annotations

import heapq
import itertools
import re
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logbook.exitcodes import signal_name
from logbook.forensics.logtail import LogTail, read_tails
from logbook.forensics.reports import (
    PythonException,
    TorchrunFailure,
    last_exception,
    torchrun_failure,
)
from logbook.forensics.rules import Rule, load_rules

MAX_LINES = 20
MAX_LINE_CHARS = 500
_MATCH_LIMIT = 2000  # matches of one rule tried while looking for one on the root-cause rank
_STOPS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
# A shell reports a child killed by signal N as exit status 128+N.
_SHELL = {128 + s: s for s in (1, 2, 3, 4, 6, 7, 8, 9, 11, 13, 15)}
_USAGE = re.compile(r"^usage: ", re.MULTILINE | re.IGNORECASE)
_WHY = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGABRT: "aborted",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating-point exception",
}


@dataclass(frozen=True)
class Verdict:
    """How an attempt ended, and why logbook thinks so.

    Attributes:
        status: "completed", "interrupted", "preempted" or "crashed".
        crash_class: one of rules.CLASSES when crashed, else None.
        retryable: whether a restart can help.
        rule: the rule id that decided, or a reason: "exit-code", "forwarded-signal", "signal",
            "caught-signal", "sigkill", "usage-exit-2", "python-traceback", "killed-after-grace".
        summary: one line for people.
        evidence: JSON-able: exit_code, signal, signal_name, lines, log, rules, and exception,
            torchrun when found.
        component: the deciding rule's component (#19), None when no rule decided or it does
            not tell; `components.component_of` completes it from the code reason.
        planned: the deciding rule's `planned`, None to let the status decide.
    """

    status: str
    crash_class: str | None
    retryable: bool
    rule: str | None
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    component: str | None = None
    planned: bool | None = None


@dataclass(frozen=True)
class _Hit:
    rule: Rule
    order: int
    tail: int
    line: int
    match: re.Match[str]
    root: bool

    @property
    def key(self) -> tuple[bool, bool, bool, int, int, int]:
        return (
            self.rule.secondary,
            not self.root,
            self.rule.origin != "user",
            self.tail,
            self.line,
            self.order,
        )


def classify_end(
    *,
    returncode: int,
    log_paths: Sequence[Path],
    rules: Sequence[Rule] | None = None,
    forwarded_signal: str | None = None,
    under_scheduler: bool = False,
    killed_after_grace: bool = False,
) -> Verdict:
    """Decide how an attempt ended from its exit status and the tails of its logs.

    Args:
        returncode: as Popen reports it (negative: killed by that signal).
        log_paths: the attempt's raw logs (stdout.log, stderr.log); missing ones are skipped.
        rules: the rules to match; default: `load_rules()` (the shipped ones).
        forwarded_signal: "SIGINT", "SIGTERM" or "SIGHUP" if logbook passed one on to the command.
        under_scheduler: a scheduler (Slurm, Kubernetes) runs the job.
        killed_after_grace: logbook killed the command after the grace period.

    Returns:
        The verdict; the module docstring gives the order of the questions.
    """
    rules = load_rules() if rules is None else rules
    sig = _death_signal(returncode)
    evidence: dict[str, Any] = {
        "exit_code": returncode if returncode >= 0 else None,
        "signal": sig,
        "signal_name": signal_name(sig),
    }
    if forwarded_signal:
        evidence["forwarded_signal"] = forwarded_signal
    if killed_after_grace:
        evidence["killed_after_grace"] = True

    if forwarded_signal or killed_after_grace:
        return _stopped(
            forwarded_signal, log_paths, rules, under_scheduler, killed_after_grace, evidence
        )
    if returncode == 0:
        caught = _caught_stop(read_tails(log_paths))
        if caught is None:
            return Verdict("completed", None, False, "exit-code", "exited with code 0", evidence)
        evidence["caught_signal"], evidence["line"] = caught
        status = "preempted" if under_scheduler else "interrupted"
        summary = f"{status}: the command caught {caught[0]} ({caught[1]!r}) and exited 0"
        return Verdict(status, None, under_scheduler, "caught-signal", summary, evidence)

    tails = read_tails(log_paths)
    report, report_tail = next(
        ((r, t) for t in tails if (r := torchrun_failure(t)) is not None), (None, None)
    )
    if report is not None:
        evidence["torchrun"] = report.to_json()
    hits = _scan(tails, rules, report, report_tail)
    if hits:
        evidence["rules"] = list(dict.fromkeys(h.rule.id for h in sorted(hits, key=_position)))
    who = f"rank {report.rank}: " if report is not None and report.rank is not None else ""
    exc = _exception(tails, report, report_tail)
    if exc is not None:
        evidence["exception"] = exc[1].to_json()

    status_hits = [h for h in hits if h.rule.status]
    if status_hits:
        return _from_hit(min(status_hits, key=_position), tails, evidence, "")
    if sig in _STOPS:
        preempted = under_scheduler and sig != signal.SIGINT
        status = "preempted" if preempted else "interrupted"
        summary = f"stopped by {signal_name(sig)} (not sent through logbook)"
        return _with_lines(Verdict(status, None, preempted, "signal", summary, evidence), tails)

    crash_hits = [h for h in hits if not h.rule.status]
    primary = [h for h in crash_hits if not h.rule.secondary]
    if primary:
        return _from_hit(min(primary, key=lambda h: h.key), tails, evidence, who)
    root_sig = sig if sig is not None else (report.signal if report is not None else None)
    sig_who = "" if sig is not None else who  # a signal that killed torchrun itself is no rank's
    if root_sig == signal.SIGKILL:
        summary = f"{sig_who}killed by SIGKILL (no log evidence; most likely the kernel OOM killer)"
        return _with_lines(
            Verdict("crashed", "host_oom", True, "sigkill", summary, evidence), tails
        )
    if crash_hits:
        return _from_hit(min(crash_hits, key=lambda h: h.key), tails, evidence, who)
    code = report.exitcode if report is not None and report.exitcode is not None else returncode
    if code == 2 and any(_USAGE.search(t.text) for t in tails):
        summary = "the command refused its arguments (usage message, exit status 2)"
        verdict = Verdict("crashed", "configuration", False, "usage-exit-2", summary, evidence)
        return _with_lines(verdict, tails)
    if exc is not None:
        tail, found, on_root = exc
        summary = (who if on_root else "") + _describe_exception(found)
        lines = [tail.lines[i] for i in found.lines]
        verdict = Verdict(
            "crashed", "python_exception", True, "python-traceback", summary, evidence
        )
        return _with_lines(verdict, tails, lines=lines, log=tail.path.name)
    if root_sig is not None:
        name = signal_name(root_sig)
        why = _WHY.get(signal.Signals(root_sig), None) if name else None
        summary = f"{sig_who}killed by {name or f'signal {root_sig}'}" + (
            f" ({why})" if why else ""
        )
        return _with_lines(
            Verdict("crashed", "fatal_signal", True, "signal", summary, evidence), tails
        )
    summary = f"{who}exited with code {code} and no known error in the log"
    return _with_lines(Verdict("crashed", "unknown", True, "exit-code", summary, evidence), tails)


# A trainer's report that it caught a stopping signal and is shutting down (Lightning's signal
# connector: `[rank: 0] Received SIGTERM: 15`). Only among the last CAUGHT_LINES lines of a log: a
# run that caught one early and trained on to its end has completed.
_CAUGHT = re.compile(r"\bReceived (SIGTERM|SIGINT|SIGHUP)\b(?::\s*\d+)?")
CAUGHT_LINES = 30


def _caught_stop(tails: list[LogTail]) -> tuple[str, str] | None:
    """(the signal, the line) if a log ends soon after the command said it caught one."""
    for tail in tails:
        for line in tail.lines[-CAUGHT_LINES:]:
            m = _CAUGHT.search(line)
            if m is not None:
                return m.group(1), line.strip()[:300]
    return None


def _stopped(
    forwarded: str | None,
    log_paths: Sequence[Path],
    rules: Sequence[Rule],
    under_scheduler: bool,
    killed_after_grace: bool,
    evidence: dict[str, Any],
) -> Verdict:
    """The verdict when logbook stopped the command (it passed on a signal, or killed it)."""
    tails = read_tails(log_paths)
    hits = _scan(tails, [r for r in rules if r.status], None, None)
    if hits and forwarded != "SIGINT":
        return _from_hit(min(hits, key=_position), tails, evidence, "")
    if forwarded in ("SIGTERM", "SIGHUP") and under_scheduler:
        summary = f"preempted: the scheduler sent {forwarded}, passed on to the command"
        return Verdict("preempted", None, True, "forwarded-signal", summary, evidence)
    if forwarded:
        summary = f"interrupted: {forwarded} passed on to the command"
        rule = "forwarded-signal"
    else:
        summary = "interrupted: logbook killed the command after the grace period"
        rule = "killed-after-grace"
    if killed_after_grace and forwarded:
        summary += ", killed after the grace period"
    return Verdict("interrupted", None, False, rule, summary, evidence)


def _scan(
    tails: list[LogTail],
    rules: Sequence[Rule],
    report: TorchrunFailure | None,
    report_tail: LogTail | None,
) -> list[_Hit]:
    """For each rule and log, its first match, and its first on the root-cause rank's lines."""
    hits = []
    for t, tail in enumerate(tails):
        accept: Callable[[int], bool] | None = None
        if report is not None:
            accept = _on_root_rank(report, tail, report_tail)
        for order, rule in enumerate(rules):
            first = _find(rule, tail)
            if first is None:
                continue
            hits.append(_Hit(rule, order, t, first[0], first[1], root=False))
            if accept is not None:
                found = _find(rule, tail, accept)
                if found is not None:
                    hits.append(_Hit(rule, order, t, found[0], found[1], root=True))
    return hits


def _on_root_rank(
    report: TorchrunFailure, tail: LogTail, report_tail: LogTail | None = None
) -> Callable[[int], bool]:
    """Whether line i of `tail` came from torchrun's root-cause rank: by its rank prefix, or
    inside the report's root-cause block (which holds the rank's traceback with @record)."""
    if tail is report_tail:
        return lambda i: report.line < i < report.end_line or report.is_root_line(tail.lines[i])
    return lambda i: report.is_root_line(tail.lines[i])


def _find(
    rule: Rule, tail: LogTail, accept: Callable[[int], bool] | None = None
) -> tuple[int, re.Match[str]] | None:
    """The first line (that `accept` allows) where `rule` matches, and the match."""
    lines = _candidate_lines(rule, tail)
    if lines is None:
        return _scan_text(rule, tail, accept)
    for i in lines:
        m = rule.regex.search(tail.stripped(i))
        if m is not None and (accept is None or accept(i)):
            return i, m
    return None


def _candidate_lines(rule: Rule, tail: LogTail) -> Iterator[int] | None:
    """The lines that hold the rule's rarest needle, in order; None when it has no needles.

    A rule one of whose needles is absent cannot match: no lines.
    """
    if not rule.needles:
        return None
    text = tail.text
    by_length = sorted(rule.needles, key=lambda n: -min(map(len, n)))
    if not all(any(tail.has(s) for s in n) for n in by_length):
        return iter(())
    anchor = min(by_length[:2], key=lambda n: sum(text.count(s) for s in n))
    merged = heapq.merge(*(_lines_with(tail, s) for s in anchor))
    return (i for i, _ in itertools.groupby(merged))


def _lines_with(tail: LogTail, needle: str) -> Iterator[int]:
    pos = tail.text.find(needle)
    while pos >= 0:
        i = tail.line_of(pos)
        yield i
        pos = tail.text.find(needle, tail.start_of(i + 1))


def _scan_text(
    rule: Rule, tail: LogTail, accept: Callable[[int], bool] | None
) -> tuple[int, re.Match[str]] | None:
    """`_find` for a rule with no needles: its regex over the whole text."""
    pos = 0
    for _ in range(_MATCH_LIMIT):
        m = rule.regex.search(tail.text, pos)
        if m is None:
            return None
        i = tail.line_of(m.start())
        if "\n" in m.group():  # the rules are per line; this match ran past a line's end
            pos = m.start() + 1
        elif accept is None or accept(i):
            return i, m
        else:
            pos = tail.start_of(i + 1)
    return None


def _position(hit: _Hit) -> tuple[int, int, int]:
    return (hit.tail, hit.line, hit.order)


def _from_hit(hit: _Hit, tails: list[LogTail], evidence: dict[str, Any], who: str) -> Verdict:
    rule, tail = hit.rule, tails[hit.tail]
    summary = rule.describe(hit.match)
    if hit.root:
        summary = who + summary
    status = rule.status or "crashed"
    verdict = Verdict(
        status,
        rule.crash_class,
        rule.retryable,
        rule.id,
        summary,
        evidence,
        component=rule.component,
        planned=rule.planned,
    )
    lines = tail.lines[max(0, hit.line - 2) : hit.line + 8]
    return _with_lines(verdict, tails, lines=lines, log=tail.path.name)


def _with_lines(
    verdict: Verdict,
    tails: list[LogTail],
    *,
    lines: list[str] | None = None,
    log: str | None = None,
) -> Verdict:
    """The verdict with its evidence lines: those given, else the last lines of the first log."""
    if lines is None:
        tail = next((t for t in tails if any(s.strip() for s in t.lines)), None)
        if tail is not None:
            lines = [s for s in tail.lines if s.strip()][-MAX_LINES:]
            log = tail.path.name
    if lines:
        if len(lines) > MAX_LINES:
            lines = lines[:1] + lines[-(MAX_LINES - 1) :]
        verdict.evidence["lines"] = [s[:MAX_LINE_CHARS] for s in lines]
        verdict.evidence["log"] = log
    return verdict


def _exception(
    tails: list[LogTail], report: TorchrunFailure | None, report_tail: LogTail | None
) -> tuple[LogTail, PythonException, bool] | None:
    """The last traceback: the root-cause rank's when torchrun named one, else the last of all.

    Returns:
        The log it is in, the exception, and whether it is the root-cause rank's.
    """
    if report is not None:
        for tail in tails:
            found = last_exception(tail, _on_root_rank(report, tail, report_tail))
            if found is not None:
                return tail, found, True
    for tail in tails:
        found = last_exception(tail)
        if found is not None:
            return tail, found, False
    return None


def _describe_exception(exc: PythonException) -> str:
    """ "RuntimeError at train.py:57 in main: boom"; the frame is the user's code when there is one."""
    frame = exc.user_frame or exc.innermost
    where = ""
    if frame is not None:
        where = f" at {Path(frame.file).name}:{frame.line}"
        if frame.function:
            where += f" in {frame.function}"
    message = f": {exc.message}" if exc.message else ""
    return f"{exc.type}{where}{message}"[:300]


def _death_signal(returncode: int) -> int | None:
    """The signal that killed the command: -N from Popen, or 128+N as a shell reports it."""
    if returncode < 0:
        return -returncode
    return _SHELL.get(returncode)
