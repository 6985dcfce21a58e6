"""The figures a chronicle leads with, worked out from a gathered record: dates, wall time,
attempts and restarts by cause, how far the training got, GPU-hours, energy, CO2, money, goodput;
the lines model cards and regulators ask for; and the journal, day by day."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from logbook.chronicle.collect import ROUTINE

FAILED = ("crashed", "hung", "lost", "failed", "killed")


def overview(s: dict[str, Any]) -> dict[str, Any]:
    """Headline figures from the sections of a Record (already scrubbed)."""
    attempts = s["attempts"]
    total = _total(s["cost"])
    starts = [a["start_time"] for a in attempts]
    ends = [a["end_time"] or a["start_time"] for a in attempts]
    causes = Counter(a["class"] or a["status"] for a in attempts if a["status"] in FAILED)
    share = productive_share(s["goodput"])
    return {
        "first_start": min(starts) if starts else None,
        "last_end": max(ends) if ends else None,
        "span_s": (max(ends) - min(starts)).total_seconds() if starts else None,
        "attempts": len(attempts),
        "restarts": sum(1 for a in attempts if a["parent_id"]),
        "failures": sum(causes.values()),
        "causes": causes.most_common(),
        "status": attempts[-1]["status"] if attempts else None,
        "last_step": max(
            (a["last_step"] for a in attempts if a["last_step"] is not None), default=None
        ),
        "gpus": max((int(c["gpus"] or 0) for c in s["cost"] if c["attempt"] != "total"), default=0),
        "hosts": max((a["hosts"] for a in attempts), default=0),
        "cost": total,
        "productive_pct": share["pct"],
        "productive_why": share["why"],
        "final_metrics": s["final_metrics"],
    }


def productive_share(goodput: list[dict[str, Any]]) -> dict[str, Any]:
    """The share of the wall-clock that trained productively, or None and why it is not known:
    time goodput could not split (attempts without step times, #16) may have been productive."""
    by = {g["category"]: g for g in goodput}
    productive, unknown = by.get("productive"), by.get("unknown")
    if productive is None or productive["pct"] is None:
        return {"pct": None, "why": "no wall-clock time on record"}
    if unknown and unknown["seconds"]:
        return {
            "pct": None,
            "why": f"{unknown['pct']} % of the wall-clock cannot be split (attempts without step "
            f"times, or whose lost work is not known); at least {productive['pct']} %",
        }
    return {"pct": productive["pct"], "why": None}


def _total(cost: list[dict[str, Any]]) -> dict[str, Any]:
    return next((c for c in cost if c["attempt"] == "total"), cost[-1] if cost else {})


def disclosure(s: dict[str, Any], o: dict[str, Any]) -> list[dict[str, str]]:
    """The training figures model cards (Hugging Face's template) and the EU AI Act (Annex XI
    2(d), 2(e)) ask for, each with where it came from."""
    c = o["cost"]
    basis = c.get("basis") or {}
    hw = s["hardware"]
    gpu_names = sorted({h["gpu_name"] for h in hw if h.get("gpu_name")})
    hardware = (
        f"{o['gpus']} × {', '.join(gpu_names)} on {o['hosts']} host(s)"
        if o["gpus"] and gpu_names
        else (f"{o['gpus']} GPUs on {o['hosts']} host(s)" if o["gpus"] else "no GPU on record")
    )
    co2 = c.get("co2_kg")
    return [
        {"item": "Hardware type and count", "value": hardware, "basis": basis.get("gpus", "")},
        {
            "item": "Training time (wall-clock, first launch to last end)",
            "value": duration(o["span_s"]),
            "basis": f"{o['attempts']} attempts, failed and restarted ones included",
        },
        {
            "item": "GPU-hours used",
            "value": number(c.get("gpu_h"), 1),
            "basis": basis.get("gpu_h", ""),
        },
        {
            "item": "Compute (FLOPs, 6·N·D over the tokens processed)",
            "value": sci(c.get("flops")),
            "basis": basis.get("flops", ""),
        },
        {
            "item": "Energy (kWh)",
            "value": number(c.get("energy_kwh"), 1),
            "basis": basis.get("energy_kwh", ""),
        },
        {
            "item": "Carbon emitted (kg CO2e; model cards' co2_eq_emissions wants grams)",
            "value": "unknown" if co2 is None else f"{co2:,.1f} kg = {co2 * 1000:,.0f} g",
            "basis": basis.get("co2_kg", ""),
        },
        {
            "item": "Money (USD)",
            "value": number(c.get("cost_usd"), 0),
            "basis": basis.get("cost_usd", ""),
        },
    ]


def journal(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Every attempt's start and end and every event, in time order, grouped by day; routine events
    (checkpoints, ...) counted per day rather than listed."""
    entries: list[dict[str, Any]] = []
    for a in s["attempts"]:
        entries.append(
            _entry(
                a["start_time"],
                a["label"],
                a["first_step"],
                "start",
                f"attempt {a['label']} launched",
            )
        )
        if a["end_time"]:
            why = a["summary"] or a["status"]
            entries.append(
                _entry(
                    a["end_time"],
                    a["label"],
                    a["last_step"],
                    a["status"],
                    f"attempt {a['label']} {a['status']}: {why}",
                )
            )
    entries += [
        _entry(e["time"], e["attempt"], e["step"], e["kind"], e["message"] or e["kind"])
        for e in s["events"]
    ]
    entries.sort(key=lambda e: e["time"])
    days: dict[str, dict[str, Any]] = {}
    for e in entries:
        day = days.setdefault(
            e["time"].date().isoformat(),
            {"day": e["time"].date().isoformat(), "entries": [], "routine": Counter()},
        )
        if e["kind"] in ROUTINE:
            day["routine"][e["kind"]] += 1
        else:
            day["entries"].append(e)
    return [{**d, "routine": sorted(d["routine"].items())} for d in days.values()]


def _entry(
    time: datetime, attempt: str | None, step: int | None, kind: str, text: str
) -> dict[str, Any]:
    return {"time": time, "attempt": attempt, "step": step, "kind": kind, "text": text}


def duration(seconds: float | None) -> str:
    """12 d 4 h, 3 h 05 min, 4 min 10 s, 0.4 s."""
    if seconds is None:
        return "unknown"
    s = float(seconds)
    if s >= 86400:
        return f"{int(s // 86400)} d {int(s % 86400 // 3600)} h"
    if s >= 3600:
        return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"
    if s >= 60:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{s:.1f} s"


def number(value: Any, digits: int = 1) -> str:
    """1,234.5, or 'unknown' for a missing figure."""
    if value is None:
        return "unknown"
    return f"{float(value):,.{digits}f}"


def sci(value: Any) -> str:
    """3.1e+23, or 'unknown'."""
    return "unknown" if value is None else f"{float(value):.3g}"
