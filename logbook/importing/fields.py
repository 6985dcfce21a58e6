"""A row's fields checked and converted: times, numbers, text, labels, commands, redaction."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from logbook import schema as schemas
from logbook.errors import LogbookError
from logbook.importing.read import Bad

_UTC = timezone.utc
MIN_INT, MAX_INT = -(2**63), 2**63 - 1  # steps land in int64 columns
# Columns an import fills itself (duration from start and end, the name from the signal).
_ATTEMPT_DERIVED = {
    "run",
    "attempt_id",
    "parent_id",
    "duration_s",
    "recorded_at",
    "wrapper_pid",
    "logbook_version",
    "signal_name",
    "start_precision",  # from start and end as given (parse_when)
    "start_until",
    "end_precision",
    "end_until",
    "steps_approx",  # from the steps as given (parse_step)
    "duration_approx",  # from the duration as given (parse_duration)
}


def parse_time(value: Any, field: str = "time") -> datetime:
    """ISO 8601 (no offset = UTC) or Unix seconds, as an aware UTC datetime."""
    if value is None:
        raise Bad(f"no {field}")
    try:
        if isinstance(value, str):
            try:
                t = datetime.fromisoformat(value)
            except ValueError:
                return datetime.fromtimestamp(float(value), _UTC)
            return t.replace(tzinfo=_UTC) if t.tzinfo is None else t.astimezone(_UTC)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, _UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise Bad(f"{field} {value!r} is not a time (write e.g. 2021-11-22T14:05:00Z)")


_PERIOD = re.compile(r"^\s*(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?\s*$")


@dataclass(frozen=True)
class When:
    """A time as a source gives it: an instant, a year, month or day, or a range of them."""

    time: datetime  # the first instant
    precision: str | None = None  # None for an instant; year, month, day or range
    until: datetime | None = None  # the end of the period or range (exclusive for periods)


def parse_when(value: Any, field: str = "time") -> When:
    """An instant as `parse_time` reads it, or what a hand-kept history often has instead: a year
    (2021), month (2021-11), day (2021-11-03), or a range of any of these (ISO 8601's
    2021-11-03/2021-11-05, or 2021-11-03T10:00Z/2021-11-03T14:00Z)."""
    if isinstance(value, str) and "/" in value:
        first, _, last = value.partition("/")
        a, b = parse_when(first, field), parse_when(last, field)
        end = b.until or b.time
        if end < a.time:
            raise Bad(f"{field} {value!r} ends before it starts")
        return When(a.time, "range", end)
    m = _PERIOD.match(value) if isinstance(value, str) else None
    if m is None:
        return When(parse_time(value, field))
    year, month, day = (int(g) if g else None for g in m.groups())
    try:
        if day is not None:
            t = datetime(year, month, day, tzinfo=_UTC)  # type: ignore[arg-type]
            return When(t, "day", t + timedelta(days=1))
        if month is not None:
            t = datetime(year, month, 1, tzinfo=_UTC)  # type: ignore[arg-type]
            later = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=_UTC)  # type: ignore[operator]
            return When(t, "month", later)
        t = datetime(year, 1, 1, tzinfo=_UTC)  # type: ignore[arg-type]
        return When(t, "year", datetime(year + 1, 1, 1, tzinfo=_UTC))  # type: ignore[operator]
    except ValueError:
        raise Bad(f"{field} {value!r} is not a time (write e.g. 2021-11-22T14:05:00Z)") from None


_APPROX = ("~", "≈", "ca.", "about", "approx.", "approximately")
_STEP_RANGE = re.compile(r"^(.+?)\s*(?:\.\.|–|—|-(?=\s*\d))\s*(.+)$")


@dataclass(frozen=True)
class Step:
    """A step as a source gives it: exact, approximate ('≈ 14,300'), or a range ('14000-14500')."""

    step: int
    until: int | None = None
    approx: bool = False


def parse_step(value: Any, field: str = "step") -> Step:
    if not isinstance(value, str):
        return Step(parse_int(value, field))
    try:
        return _step_text(value, field)
    except Bad:
        raise Bad(
            f"{field} {value!r} is not a whole number (nor one like ≈ 14,300 or 14000-14500)"
        ) from None


def _step_text(value: str, field: str) -> Step:
    text = value.strip()
    approx = False
    for mark in _APPROX:
        if text.lower().startswith(mark):
            approx, text = True, text[len(mark) :].strip()
            break
    m = _STEP_RANGE.match(text)
    if m is not None:
        lo, hi = (parse_int(_digits(g), field) for g in m.groups())
        if hi < lo:
            raise Bad(f"{field} {value!r} ends before it starts")
        return Step(lo, hi, approx)
    return Step(parse_int(_digits(text), field), None, approx)


def _digits(text: str) -> str:
    """'14,300' and '14 300' and '14_300' as 14300 (thousands separators of hand-kept notes)."""
    return re.sub(r"(?<=\d)[,_ ](?=\d{3}\b)", "", text.strip())


def parse_int(value: Any, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                f = math.nan
            if not f.is_integer():
                raise Bad(f"{field} {value!r} is not a whole number") from None
            number = int(f)
    else:
        raise Bad(f"{field} {value!r} is not a whole number")
    if not MIN_INT <= number <= MAX_INT:
        raise Bad(f"{field} {value!r} is out of range")
    return number


def parse_float(value: Any, field: str) -> float | None:
    """A number; nan, inf and -inf (as JSON's NaN/Infinity or as text) are kept; null stays null."""
    if value is None:
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise Bad(f"{field} {value!r} is not a number")


def parse_text(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise Bad(f"{field} {value!r} is not text")


def parse_bool(value: Any, field: str) -> bool:
    """`true` or `false` (JSON, or the text in a CSV cell)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Bad(f"{field} {value!r} is not true or false")


def parse_label(value: Any, field: str = "label") -> str:
    from logbook.supervisor import lineage

    if isinstance(value, float):  # 1.10 would come back as "1.1"
        raise Bad(f'{field} {value!r} is a number: write it as text, e.g. "1.10"')
    text = parse_text(value, field).strip()
    try:
        lineage.place((), text)  # checks the characters, as `logbook run --label` does
    except LogbookError as e:
        raise Bad(str(e)) from None
    return text


def parse_object(value: Any, field: str) -> dict[str, Any]:
    if isinstance(value, str):  # a CSV cell holding JSON
        try:
            value = json.loads(value)
        except ValueError:
            raise Bad(f"{field} is not a JSON object") from None
    if not isinstance(value, dict):
        raise Bad(f"{field} is not a JSON object")
    return value


def _command(value: Any) -> list[str]:
    import shlex

    if isinstance(value, list) and all(isinstance(a, str) for a in value):
        return value
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise Bad(f"command {value!r}: {e}") from None
    raise Bad("command is not text or a list of text")


def redact_value(value: Any) -> Any:
    """Secrets out of free text and out of values with secret-looking names, at any depth."""
    from logbook.record.redact import REDACTED, is_secret_name, redact_text

    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        # An hparam_change names its setting in `key` (not a secret by that name); the change of
        # a secret setting (key=api_key) hides old and new, as the config snapshot hides its value.
        secret_key = isinstance(value.get("key"), str) and is_secret_name(value["key"])
        hidden = {k for k in value if is_secret_name(k) and k != "key"}
        hidden |= {"old", "new"} if secret_key else set()
        return {
            k: REDACTED if k in hidden and v is not None else redact_value(v)
            for k, v in value.items()
        }
    return value


def attempt_converters() -> dict[str, Callable[[Any], Any]]:
    """Field of an attempt row -> its converter: every attempts column but the derived ones."""
    by_type: dict[str, Callable[[Any, str], Any]] = {
        "timestamp": parse_time,
        "int64": parse_int,
        "int32": parse_int,
        "float64": parse_float,
        "bool": parse_bool,
        "string": parse_text,
    }

    def named(convert: Callable[[Any, str], Any], name: str) -> Callable[[Any], Any]:
        return lambda value: convert(value, name)

    out = {
        c.name: named(by_type[c.type], c.name)
        for c in schemas.load("attempts").columns
        if c.name not in _ATTEMPT_DERIVED and c.type in by_type
    }
    out["label"] = parse_label
    out["parent_label"] = lambda v: parse_label(v, "parent")
    out["command"] = _command
    out["evidence"] = lambda v: v if isinstance(v, str) else json.dumps(v, default=str)
    return out


# A change relative to the value before, as hand-kept logs write it (#16).
_WORDS = {"halved": 0.5, "doubled": 2.0, "tripled": 3.0, "quartered": 0.25}
_TIMES = re.compile(r"^\s*[×x*]\s*([0-9.]+(?:e[+-]?\d+)?)\s*$", re.I)
_OVER = re.compile(r"^\s*[/÷]\s*([0-9.]+(?:e[+-]?\d+)?)\s*$", re.I)
_PERCENT = re.compile(r"^\s*([+\-−])\s*([0-9.]+)\s*%\s*$")


def relative_factor(value: Any) -> float:
    """The factor of a relative change: ×0.5, x0.5, *0.5, /2, -10%, +25%, halved, doubled.

    Raises:
        Bad: not one of those.
    """
    text = value.strip().lower() if isinstance(value, str) else None
    factor: float | None = None
    if text is not None:
        if text in _WORDS:
            factor = _WORDS[text]
        elif m := _TIMES.match(text):
            factor = _float(m[1])
        elif m := _OVER.match(text):
            divisor = _float(m[1])
            factor = 1 / divisor if divisor else None
        elif m := _PERCENT.match(text):
            share = _float(m[2])
            factor = None if share is None else 1 + (share if m[1] == "+" else -share) / 100
    if factor is None or not math.isfinite(factor) or factor < 0:
        raise Bad(
            f"change {value!r} is not a relative change (write ×0.5, /2, -10%, +25%, halved or "
            "doubled; or give old and new)"
        )
    return factor


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# A duration as a hand-kept history states it (#16): "~3 days", "2.8 days", "36 h", "90 min".
_DURATION = re.compile(
    r"^\s*(?P<approx>~|≈|about\s+|around\s+|roughly\s+|approximately\s+|ca\.?\s+)?\s*"
    r"(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[a-z]+)\s*$",
    re.I,
)
_DURATION_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "wk", "week", "weeks"), 7 * 86400.0),
}


def parse_duration(value: Any, field: str = "duration") -> tuple[float, bool]:
    """A duration and whether it is approximate: seconds as a number, or text with a unit
    ("~3 days", "2.8 d", "36 h", "90 min", "about 2 weeks")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds, approx = float(value), False
    else:
        m = _DURATION.match(value) if isinstance(value, str) else None
        unit = _DURATION_UNITS.get(m.group("unit").lower()) if m else None
        if m is None or unit is None:
            raise Bad(
                f'{field} {value!r} is not a duration (write e.g. 259200, "3 days", "~36 h" '
                'or "90 min")'
            )
        seconds = round(float(m.group("n")) * unit, 3)  # 2.8 days: 241920, not ...19.99999999997
        approx = m.group("approx") is not None
    if not seconds > 0 or seconds == float("inf"):
        raise Bad(f"{field} {value!r} is not a duration above 0")
    return seconds, approx
