"""A run's data-mix history as `logbook data-mix` shows it: the mixes declared on record
(`record/datamix.history`) and the `data_mix_change` events that no declaration explains, such as
those of an imported history or added with `logbook event add` (#16).

A recorded declaration writes its own `data_mix_change` event, whose `new` is the declared mix:
that one is already shown as the declaration's `change` column, and is not repeated.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from logbook import query

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.store import Store

_MIX_KEYS = ("mix", "sources", "new")  # where an event's data may give the mix it changed to


def history(store: Store, run: str) -> pa.Table:
    """Every declared mix and every other data-mix change of `run`, in time order, one row per
    source (an event that names no mix: one row without a source).

    Raises:
        NoSuchRun: the run is unknown.
    """
    import pyarrow as pa

    from logbook.record import datamix

    declared = datamix.history(store, run)
    events = query.run_sql(
        store,
        "select e.time, a.label as attempt, e.step, e.source, e.message, e.data, e.kind "
        "from events e left join attempts a on a.attempt_id = e.attempt_id "
        "where e.run = $run and e.kind in ('data_mix', 'data_mix_change') order by e.time",
        {"run": run},
    ).to_pylist()
    mixes = [_data(e).get("mix") for e in events if e["kind"] == "data_mix"]
    rows = declared.to_pylist()
    for e in events:
        if e["kind"] == "data_mix_change" and _data(e).get("new") not in mixes:
            rows.extend(_change_rows(e))
    rows.sort(key=lambda r: r["time"])
    return pa.Table.from_pylist(rows, schema=declared.schema)


def _data(event: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(event["data"]) if event["data"] else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _change_rows(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one change event: a row per source of the mix its data gives, if any."""
    from logbook.errors import ConfigError
    from logbook.record.datamix import normalise

    base = {
        "time": event["time"],
        "attempt": event["attempt"],
        "step": event["step"],
        "source": None,
        "weight": None,
        "tokens": None,
        "paths": None,
        "data": None,
        "change": event["message"] or "data mix changed",
        "declared_by": event["source"],
    }
    data = _data(event)
    doc = next((data[k] for k in _MIX_KEYS if isinstance(data.get(k), (dict, list))), None)
    try:
        mix = normalise(doc) if doc else {}
    except (ConfigError, TypeError, ValueError):  # a mix it cannot read: the event alone
        mix = {}
    if not mix:
        return [base]
    return [
        {
            **base,
            "source": name,
            "weight": _number(spec.get("weight")),
            "tokens": _number(spec.get("tokens")),
            "paths": ", ".join(spec.get("paths") or []) or None,
        }
        for name, spec in mix.items()
    ]


def _number(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None
