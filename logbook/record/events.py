"""Events people add by hand: notes (`logbook note`) and any other kind (`logbook event add`).

They land in the events table like the supervisor's own, attached to the attempt that was running
at their time, so a chronicle reads them in order with everything else.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from logbook.errors import ConfigError, LogbookError
from logbook.store import Store

if TYPE_CHECKING:
    import pyarrow as pa

SEVERITIES = ("info", "warning", "error")


def event_row(
    run: str,
    attempt_id: str | None,
    kind: str,
    message: str | None,
    *,
    source: str,
    at: datetime | None = None,
    step: int | None = None,
    severity: str = "info",
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of the events table (the single place its shape is spelled out in code)."""
    return {
        "run": run,
        "attempt_id": attempt_id,
        "event_id": uuid.uuid4().hex,
        "time": at or datetime.now(timezone.utc),
        "step": step,
        "kind": kind,
        "severity": severity,
        "source": source,
        "message": message,
        "data": json.dumps(dict(data), default=str) if data is not None else None,
    }


def parse_time(text: str | None) -> datetime:
    """'now', ISO 8601 with a zone, or without one (taken as this machine's local time).

    Raises:
        ConfigError: not a time.
    """
    if text is None or text == "now":
        return datetime.now(timezone.utc)
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(
            f"--at {text!r} is not a time", hint="write e.g. 2026-11-22T14:05:00+00:00 or now"
        ) from e
    return (t if t.tzinfo else t.astimezone()).astimezone(timezone.utc)


def parse_fields(pairs: Sequence[str]) -> dict[str, Any]:
    """key=value words as a dict; a value that reads as JSON (3, 2e-4, true, [1,2]) is kept as such.

    Raises:
        ConfigError: a word without '='.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{pair!r} is not key=value")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def add_event(
    store: Store,
    run: str,
    kind: str,
    message: str | None = None,
    *,
    at: datetime | None = None,
    step: int | None = None,
    severity: str = "info",
    data: Mapping[str, Any] | None = None,
    attempt: str | None = None,
    source: str = "cli",
) -> dict[str, Any]:
    """Record one event of `run`, attached to `attempt` (a label) or to the attempt running at `at`.

    Returns:
        The row written.

    Raises:
        NoSuchRun: the run is unknown.
        LogbookError: the attempt label is unknown, or the kind or severity is malformed.
    """
    from logbook import query

    store.check_run(run)
    if not kind or not kind.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(
            f"event kind {kind!r} is not allowed", hint="use letters, digits, _ and -"
        )
    if severity not in SEVERITIES:
        raise ConfigError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    at = at or datetime.now(timezone.utc)
    if attempt is not None:
        attempt_id = query.read_attempt(store, run, attempt)["attempt_id"]
    else:
        rows = query.run_sql(
            store,
            "select attempt_id from attempts where run = $run and start_time <= $at "
            "and coalesce(end_time, now()) >= $at order by start_time desc limit 1",
            {"run": run, "at": at},
        ).to_pylist()
        attempt_id = rows[0]["attempt_id"] if rows else None
    row = event_row(
        run,
        attempt_id,
        kind,
        message,
        source=source,
        at=at,
        step=step,
        severity=severity,
        data=data or None,
    )
    store.write("events", run, [row])
    return row


def list_events(
    store: Store, run: str, *, kinds: Sequence[str] = (), limit: int | None = None
) -> pa.Table:
    """A run's events in time order, with the label of their attempt.

    Raises:
        NoSuchRun: the run is unknown.
        LogbookError: a kind in `kinds` is on no event of the store (a typo answers nothing).
    """
    from logbook import query
    from logbook.query import precision

    store.check_run(run)
    if limit is not None and limit < 1:
        raise LogbookError("--limit must be at least 1")
    _check_kinds(store, kinds)
    sql = (
        "select e.time, a.label as attempt, e.step, e.kind, e.severity, e.source, e.message, "
        f"{precision.known_to('e.time')} as known_to "
        "from events e left join attempts a on a.attempt_id = e.attempt_id "
        "where e.run = $run and (len($kinds) = 0 or list_contains($kinds, e.kind)) "
        "order by e.time, e.seq"
    )
    params: dict[str, Any] = {"run": run, "kinds": list(kinds)}
    if limit is not None:
        sql = f"select * from ({sql}) offset greatest(0, (select count(*) from ({sql})) - $limit)"
        params["limit"] = limit
    return query.run_sql(store, sql, params)


def _check_kinds(store: Store, kinds: Sequence[str]) -> None:
    """Raise LogbookError for a kind no event of the store has: kinds are open (`event add`), so the
    store's own are the list to check a filter against; one of another run's is fine (#17)."""
    from logbook import query

    if not kinds:
        return
    known = query.run_sql(store, "select distinct kind from events order by kind").column(0)
    missing = [k for k in kinds if k not in set(known.to_pylist())]
    if missing:
        names = ", ".join(f'"{k}"' for k in missing)
        raise LogbookError(
            f"no event of kind {names} in {store.where} "
            f"(kinds on record: {', '.join(known.to_pylist()) or 'none yet'})"
        )
