"""Crash rules: patterns that name how a training ended, shipped as data and extendable by users.

The shipped rules live in `crash_rules.toml` beside this module; users add theirs in `logbook.toml`
as `[[crash.rule]]` tables with the same fields.
"""

from __future__ import annotations

import re
import string
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from logbook.errors import ConfigError
from logbook.forensics._needles import needles

CLASSES: tuple[str, ...] = (
    "gpu_oom",
    "host_oom",
    "communication",
    "gpu_hardware",
    "numerical",
    "data_io",
    "python_exception",
    "fatal_signal",
    "configuration",
    "unknown",
)
"""The crash classes, in the order the docs list them."""

STATUSES: tuple[str, ...] = ("preempted", "interrupted")
"""What a rule with `status` instead of `class` may say: a scheduler, not a crash, ended the job."""

_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_FIELDS = {
    "id",
    "class",
    "status",
    "retryable",
    "secondary",
    "pattern",
    "summary",
    "source",
    "examples",
    "component",
    "planned",
}
_SHIPPED_NEEDS = ("retryable", "summary", "source", "examples", "component")


@dataclass(frozen=True)
class Rule:
    """One crash rule: a regex searched in each log line, and what a match means.

    Attributes:
        id: unique kebab-case name, recorded in the verdict.
        crash_class: one of CLASSES, or None for a status rule.
        status: "preempted" or "interrupted" for a scheduler's ending, else None.
        retryable: whether a restart can help.
        secondary: the text usually follows another failure; it decides only if no primary
            rule matched.
        pattern: the regex as written.
        summary: a one-line template; `{name}` is a named group's text.
        source: where the text comes from.
        examples: real lines the rule matches.
        origin: "shipped" or "user".
        component: the second level of cause (#19): the part that failed, one of
            components.COMPONENTS, or None where the text does not tell.
        planned: whether such an end is planned (a stop by a person or a scheduler), or None to
            let the status decide (components.planned_of).
    """

    id: str
    crash_class: str | None
    status: str | None
    retryable: bool
    secondary: bool
    pattern: str
    summary: str
    source: str
    examples: tuple[str, ...] = ()
    origin: str = "shipped"
    component: str | None = None
    planned: bool | None = None
    regex: re.Pattern[str] = field(repr=False, compare=False, default=re.compile(""))
    needles: tuple[frozenset[str], ...] = field(repr=False, compare=False, default=())

    def describe(self, match: re.Match[str]) -> str:
        """The summary for `match`, its named groups filled in ("?" for one that did not match)."""
        if not self.summary:
            return match.string[match.start() : match.end()].strip()[:300]
        groups = {k: (v if v is not None else "?") for k, v in match.groupdict().items()}
        return self.summary.format(**groups)


def load_rules(user_rules: Sequence[Mapping[str, Any]] | None = None) -> list[Rule]:
    """The rules to classify with: the user's first, then the shipped ones.

    A user rule with a shipped rule's id replaces it.

    Args:
        user_rules: `[[crash.rule]]` tables from logbook.toml (dicts with the TOML fields).

    Returns:
        The rules in the order they are tried.

    Raises:
        ConfigError: a user rule with an unknown class, a bad regex, a missing or unknown field,
            or a duplicate id.
    """
    users = _parse_all(user_rules or [], origin="user", where="logbook.toml [[crash.rule]]")
    taken = {r.id for r in users}
    return users + [r for r in _shipped() if r.id not in taken]


def rules_markdown() -> str:
    """A Markdown reference of every shipped rule, for the README and docs."""
    out = [
        "| id | class | component | retryable | pattern | source |",
        "|---|---|---|---|---|---|",
    ]
    for r in _shipped():
        kind = r.crash_class or f"status: {r.status}"
        if r.secondary:
            kind += " (secondary)"
        pattern = r.pattern.replace("|", r"\|")
        out.append(
            f"| `{r.id}` | {kind} | {r.component or ''} | {'yes' if r.retryable else 'no'} "
            f"| `{pattern}` | {r.source} |"
        )
    return "\n".join(out) + "\n"


@lru_cache(maxsize=1)
def shipped_file() -> dict[str, Any]:
    """crash_rules.toml, read once: its rules, and the component tables (forensics/components.py)."""
    from importlib import resources

    text = resources.files("logbook.forensics").joinpath("crash_rules.toml").read_text("utf-8")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads(text)


@lru_cache(maxsize=1)
def _shipped() -> tuple[Rule, ...]:
    tables = shipped_file().get("rule", [])
    return tuple(_parse_all(tables, origin="shipped", where="crash_rules.toml"))


def _parse_all(tables: Iterable[Mapping[str, Any]], *, origin: str, where: str) -> list[Rule]:
    rules: list[Rule] = []
    seen: set[str] = set()
    for n, table in enumerate(tables, start=1):
        rule = _parse(table, origin=origin, where=f"{where} #{n}")
        if rule.id in seen:
            raise ConfigError(
                f'crash rule id "{rule.id}" appears twice in {where}',
                hint="give each rule its own id",
            )
        seen.add(rule.id)
        rules.append(rule)
    return rules


def _parse(table: Mapping[str, Any], *, origin: str, where: str) -> Rule:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: a crash rule must be a table, not {table!r}")
    rid = table.get("id")
    name = f'crash rule "{rid}" ({where})' if isinstance(rid, str) else f"crash rule {where}"

    def fail(message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{name}: {message}", hint=hint)

    unknown = sorted(set(table) - _FIELDS)
    if unknown:
        raise fail(f"unknown field {unknown[0]!r}", hint=f"known: {', '.join(sorted(_FIELDS))}")
    needed = ("id", "pattern", *(_SHIPPED_NEEDS if origin == "shipped" else ()))
    for key in needed:
        if key not in table:
            raise fail(f'missing "{key}"')
    if not isinstance(rid, str) or not _ID.fullmatch(rid):
        raise fail(f"id must be kebab-case like 'my-data-error', not {rid!r}")
    crash_class, status = table.get("class"), table.get("status")
    if (crash_class is None) == (status is None):
        raise fail('needs exactly one of "class" or "status"')
    if crash_class is not None and crash_class not in CLASSES:
        raise fail(f"unknown class {crash_class!r}", hint=f"known: {', '.join(CLASSES)}")
    if status is not None and status not in STATUSES:
        raise fail(f"unknown status {status!r}", hint=f"known: {', '.join(STATUSES)}")
    # "" in the shipped file: the text does not tell which part failed (unknown is null)
    component = table.get("component") or None
    if component is not None:
        from logbook.forensics.components import COMPONENTS

        if component not in COMPONENTS:
            raise fail(f"unknown component {component!r}", hint=f"known: {', '.join(COMPONENTS)}")
    pattern = _typed(table, "pattern", str, fail, "")
    try:
        regex = re.compile(pattern, re.MULTILINE)
    except re.error as e:
        raise fail(
            f"pattern {pattern!r} is not a valid regular expression: {e}",
            hint="patterns are Python `re` syntax; write them in '''literal''' TOML strings",
        ) from e
    summary = _typed(table, "summary", str, fail, "")
    _check_summary(summary, regex, fail)
    examples = _typed(table, "examples", list, fail, [])
    if not all(isinstance(e, str) for e in examples):
        raise fail('"examples" must be a list of strings')
    default_retry = status == "preempted" or crash_class not in ("configuration", None)
    return Rule(
        id=rid,
        crash_class=crash_class,
        status=status,
        retryable=_typed(table, "retryable", bool, fail, default_retry),
        secondary=_typed(table, "secondary", bool, fail, False),
        pattern=pattern,
        summary=summary,
        source=_typed(table, "source", str, fail, "logbook.toml" if origin == "user" else ""),
        examples=tuple(examples),
        origin=origin,
        component=component,
        planned=_typed(table, "planned", bool, fail, None) if "planned" in table else None,
        regex=regex,
        needles=needles(pattern),
    )


def _typed(table: Mapping[str, Any], key: str, kind: type, fail: Any, default: Any) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind):
        raise fail(f'"{key}" must be a {kind.__name__}, not {value!r}')
    return value


def _check_summary(summary: str, regex: re.Pattern[str], fail: Any) -> None:
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(summary) if f is not None]
    except ValueError as e:
        raise fail(f"summary {summary!r} is not a valid template: {e}") from e
    for name in names:
        if name not in regex.groupindex:
            raise fail(
                f"summary uses {{{name}}} but the pattern has no group named {name!r}",
                hint=f"name it in the pattern: (?P<{name}>...), or write {{{{ }}}} for a brace",
            )
