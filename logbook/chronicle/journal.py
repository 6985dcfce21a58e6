"""The chronicle's journal and its decisions (#16): every happening of the run once, day by day, as
the best hand-kept logbooks read; and, above it, the short list of what people decided (settings,
optimizer, data, software, hardware and cluster changes, new lineages).

One happening, one entry: an attempt's end is told once, with what the events written for that end
(crash, hang_stopped, restart, ...) add to it; changes made together (two settings of one relaunch)
are one entry. Rows of one time keep the order they were recorded in (a file's order, for an import).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

from logbook.chronicle.numbers import setting

# Events that are routine: counted in the journal, not listed one by one.
ROUTINE = ("checkpoint", "telemetry_unavailable")
# Events written for an attempt's end (by logbook run, or by an import): told in that end's entry.
ENDINGS = (
    "ended",  # an imported end whose reason is not known
    "crash",
    "hang",
    "hang_stopped",
    "preempted",
    "interrupted",
    "lost",
    "restart",
    "gave_up",
)
ENDING_WINDOW_S = 60.0  # an ending event this close to the attempt's end belongs to it
# What each kind of decision changed; any other kind named `*_change` is a decision too.
DECISIONS = {
    "hparam_change": "hyperparameters",
    "optimizer_change": "optimizer",
    "data_mix_change": "data",
    "software_change": "software",
    "hardware_change": "hardware",
    "node_swap": "hardware",
    "cluster_change": "cluster",
}
# Notes tagged with one of these are decisions too (a hand-kept logbook says "lowering the LR").
DECISION_TAGS = (
    "decision",
    "hparams",
    "lr",
    "optimizer",
    "data",
    "software",
    "hardware",
    "cluster",
)


def journal(told: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries (see `entries`) grouped by day: {day, entries, routine}, routine being
    [(kind, count)] of the entries only counted. A time an imported history knew only to a
    month or a range is grouped under that period, not its first day (#16); each entry's `clock`
    is its time of day, or what the heading's period leaves open ("that day", ...)."""
    from logbook.chronicle.render import when

    days: dict[str, dict[str, Any]] = {}
    for e in told:
        precision = e.get("time_precision")
        day = e["time"].date().isoformat() if precision in (None, "day") else when(e["time"], e)
        e["clock"] = e["time"].strftime("%H:%M:%S") if precision is None else _OPEN[precision]
        d = days.setdefault(day, {"day": day, "entries": [], "routine": Counter()})
        if e["routine"]:
            d["routine"][e["kind"]] += 1
        else:
            d["entries"].append(e)
    return [{**d, "routine": sorted(d["routine"].items())} for d in days.values()]


_OPEN = {"day": "that day", "month": "that month", "year": "that year", "range": "in that range"}


def decisions(told: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The decisions alone: the entries with `what` (hyperparameters, data, new lineage, ...)."""
    return [e for e in told if e["what"]]


def entries(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entry of the journal, {time, attempt, step, kind, text, what, routine, lifecycle}, in time order
    (ties: the order recorded); `what` names what a decision changed, `routine` ones are counted."""
    attempts = s["attempts"]
    ends = {a["label"]: a for a in attempts if a["end_time"]}
    told: dict[str, list[str]] = {}  # attempt label -> what its ending events add
    events = []
    for e in s["events"]:
        a = ends.get(e["attempt"])
        if a is not None and e["kind"] in ENDINGS and _near(e["time"], a["end_time"]):
            told.setdefault(a["label"], []).append(describe(e))
        else:
            events.append(e)
    out = []
    for a in attempts:
        out.append(_start(a))
        if a["end_time"]:
            out.append(_end(a, told.get(a["label"], [])))
    out += _grouped(events)
    out.sort(key=lambda e: e["time"])  # stable: ties stay in the order above
    return out


def describe(event: dict[str, Any]) -> str:
    """An event's text for people: its message, else what its data says, else its kind; a change
    that did not take effect (`took_effect` false in its data, #16) says so, wherever it is told
    (the journal, the decisions, a curve's marker)."""
    data = event_data(event)
    text = _said(event, data)
    if data.get("took_effect") is False and NOT_IN_EFFECT not in text:
        text += f" ({NOT_IN_EFFECT})"
    return text


NOT_IN_EFFECT = "did not take effect"


def _said(event: dict[str, Any], data: dict[str, Any]) -> str:
    if event.get("message"):
        return str(event["message"])
    if event["kind"] in ("hparam_change", "software_change") and (
        "key" in data or "package" in data
    ):
        old, new = (setting(data.get(k), k in data) for k in ("old", "new"))
        return f"{data.get('key', data.get('package'))}: {old} → {new}"
    return str(event["kind"]).replace("_", " ")


def _start(a: dict[str, Any]) -> dict[str, Any]:
    text = f"attempt {a['label']} launched"
    if a["parent_label"]:
        resumed = a["resumed_from_step"]
        text += f" after {a['parent_label']}" + (
            f", resuming from step {resumed}" if resumed is not None else ""
        )
    step = a["resumed_from_step"] if a["resumed_from_step"] is not None else a["first_step"]
    what = "new lineage" if _new_lineage(a) else None
    return _entry(
        a["start_time"], a["label"], step, "start", text, what=what, lifecycle=True,
        known=(a.get("start_precision"), a.get("start_until")),
    )  # fmt: skip


def _end(a: dict[str, Any], told: list[str]) -> dict[str, Any]:
    status = a["status"]
    text = f"attempt {a['label']} {status}"
    if a["class"] and a["class"] != status:
        text += f" ({a['class']})"
    stated = a.get("duration_stated_s")
    if stated is not None:  # "ran ~3 days", where its times are a day or a range (#16)
        from logbook.chronicle.summary import duration

        text += (
            f", having run {'≈ ' if a.get('duration_approx') else ''}{duration(stated)} (as stated)"
        )
    # The summary and the ending events often open with the status or class ("hung: ...").
    prefixes = tuple(f"{p}: " for p in (status, a["class"]) if p)
    said: list[str] = []
    for more in [a["summary"] or "", *told]:
        more = _without_prefix(more, prefixes)
        if more and more != status and not any(more in s for s in said):
            said.append(more)
    if said:
        text += ": " + "; ".join(said)
    return _entry(
        a["end_time"], a["label"], a["last_step"], status, text, lifecycle=True,
        known=(a.get("end_precision"), a.get("end_until")),
    )  # fmt: skip


def _grouped(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per event, a decision made with the one before it (same kind, time and attempt)
    joined to it; a data-mix declaration that repeats the one before it is routine."""
    out: list[dict[str, Any]] = []
    last_mix = None
    for e in events:
        what = _decision(e)
        prev = out[-1] if out else None
        if (
            what
            and prev is not None
            and (prev["kind"], prev["time"], prev["attempt"])
            == (e["kind"], e["time"], e["attempt"])
        ):
            prev["text"] += f"; {describe(e)}"
            continue
        routine = e["kind"] in ROUTINE
        if e["kind"] == "data_mix":
            routine, last_mix = e["message"] == last_mix, e["message"]
        entry = _entry(
            e["time"], e["attempt"], e["step"], e["kind"], describe(e), what, routine,
            known=(e.get("time_precision"), e.get("time_until")),
        )  # fmt: skip
        entry["step_until"], entry["step_approx"] = e.get("step_until"), e.get("step_approx")
        out.append(entry)
    return out


def _decision(e: dict[str, Any]) -> str | None:
    kind = str(e["kind"])
    if kind in DECISIONS:
        return DECISIONS[kind]
    if kind.endswith("_change"):
        return kind.removesuffix("_change").replace("_", " ")
    if kind == "note":
        tags = event_data(e).get("tags")
        if isinstance(tags, list) and set(map(str, tags)) & set(DECISION_TAGS):
            return "note"
    return None


def event_data(event: dict[str, Any]) -> dict[str, Any]:
    """An event's `data` JSON as a dict; {} when it has none or is not an object."""
    try:
        doc = json.loads(event["data"]) if event.get("data") else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _new_lineage(a: dict[str, Any]) -> bool:
    """A relaunch into a new lineage (11.x to 12.00) is a decision, not a restart."""
    parent = a["parent_label"]
    return bool(parent) and str(parent).split(".")[0] != str(a["label"]).split(".")[0]


def _near(t: datetime, end: datetime) -> bool:
    return abs((t - end).total_seconds()) <= ENDING_WINDOW_S


def _without_prefix(text: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _entry(
    time: datetime,
    attempt: str | None,
    step: int | None,
    kind: str,
    text: str,
    what: str | None = None,
    routine: bool = False,
    lifecycle: bool = False,
    known: tuple[str | None, datetime | None] = (None, None),
) -> dict[str, Any]:
    return {
        "time": time,
        # as precisely as the time is known (an imported day, month or range; #16), for `when`
        "time_precision": known[0],
        "time_until": known[1],
        "step_until": None,
        "step_approx": None,
        "attempt": attempt,
        "step": step,
        "kind": kind,
        "text": text,
        "what": what,
        "routine": routine,
        "lifecycle": lifecycle,  # an attempt's launch or end: its text says so, no kind shown
    }
