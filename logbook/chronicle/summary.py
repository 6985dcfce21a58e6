"""The figures a chronicle leads with, worked out from a gathered record: dates, wall time,
attempts and restarts by cause, how far the training got, GPU-hours, energy, CO2, money, goodput;
and the lines model cards and regulators ask for (the journal: journal.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from logbook.cost.basis import KINDS

FAILED = ("crashed", "hung", "lost", "failed", "killed")


def overview(s: dict[str, Any]) -> dict[str, Any]:
    """Headline figures from the sections of a Record (already scrubbed)."""
    attempts = s["attempts"]
    total = _total(s["cost"])
    starts = [a["start_time"] for a in attempts]
    ends = [a["end_time"] or a["start_time"] for a in attempts]
    span = _span(attempts)
    causes = Counter(a["class"] or a["status"] for a in attempts if a["status"] in FAILED)
    share = productive_share(s["goodput"])
    return {
        "first_start": min(starts) if starts else None,
        "last_end": max(ends) if ends else None,
        "span_s": (max(ends) - min(starts)).total_seconds() if starts else None,
        **span,
        "attempts": len(attempts),
        # within a lineage: the first attempt of a new one is a decision (query/lineages.py)
        "restarts": sum(line["restarts"] for line in s["lineages"]),
        "lineages": s["lineages"],
        "uncounted": s.get("uncounted") or {},
        "failures": sum(causes.values()),
        "causes": causes.most_common(),
        "status": attempts[-1]["status"] if attempts else None,
        "last_step": max(
            (a["last_step"] for a in attempts if a["last_step"] is not None), default=None
        ),
        "gpus": _most_gpus(s["cost"]),
        "hosts": _most_hosts(attempts),
        "cost": total,
        "figures": {
            name: figure(total, name, digits, unit)
            for name, digits, unit in (
                ("gpu_h", 1, ""),
                ("energy_kwh", 1, " kWh"),
                ("co2_kg", 1, " kg"),
                ("cost_usd", 0, " USD"),
            )
        },
        "productive_pct": share["pct"],
        "productive_why": share["why"],
        "final_metrics": s["final_metrics"],
    }


def _span(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """How the first launch and the last end on record are known (#16): `first` and `last`
    are their attempts, `last_field` "end" or "start" (an attempt still open), `span_bound`
    "at least" where the last time is the start of a day or range or the run goes on past it,
    "at most" where the first launch is, "unknown" where both are."""
    if not attempts:
        return {"first": None, "last": None, "last_field": "end", "span_bound": ""}
    first = min(attempts, key=lambda a: a["start_time"])
    # of one time, an attempt still open: the run goes on past it
    last = max(attempts, key=lambda a: (a["end_time"] or a["start_time"], a["end_time"] is None))
    field = "end" if last["end_time"] else "start"
    lower = last[f"{field}_precision"] is not None or any(a["end_time"] is None for a in attempts)
    upper = first["start_precision"] is not None
    bound = {(True, True): "unknown", (True, False): "at least", (False, True): "at most"}
    return {
        "first": first,
        "last": last,
        "last_field": field,
        "span_bound": bound.get((lower, upper), ""),
    }


def span_text(o: dict[str, Any]) -> str:
    """The wall-clock from the first launch to the last end, as it is known: "115 d 8 h",
    "at least 115 d 8 h", or "unknown" (see `_span`)."""
    if o["span_s"] is None or o["span_bound"] == "unknown":
        return "unknown"
    return f"{o['span_bound']} {duration(o['span_s'])}".strip()


def productive_share(goodput: list[dict[str, Any]]) -> dict[str, Any]:
    """The share of the wall-clock that trained productively, or None and why it is not known:
    time goodput could not split (attempts without step times, #16) may have been productive."""
    by = {g["category"]: g for g in goodput}
    productive, unknown = by.get("productive"), by.get("unknown")
    if productive is None:
        return {"pct": None, "why": "no wall-clock time on record"}
    if productive["pct"] is None:  # a share of unknown parts is no share (query/goodput.py)
        missing = productive.get("unknown") or (by.get("total") or {}).get("unknown")
        if not missing:
            return {"pct": None, "why": "no wall-clock time on record"}
        return {"pct": None, "why": missing}
    if unknown and unknown["seconds"]:
        return {
            "pct": None,
            "why": f"{unknown['pct']} % of the wall-clock cannot be split (attempts without step "
            f"times, or whose lost work is not known); at least {productive['pct']} %",
        }
    return {"pct": productive["pct"], "why": None}


def _total(cost: list[dict[str, Any]]) -> dict[str, Any]:
    return next((c for c in cost if c["attempt"] == "total"), cost[-1] if cost else {})


def _most_gpus(cost: list[dict[str, Any]]) -> int | None:
    """The most GPUs an attempt had; None when an attempt's count is unknown (#16: not 0)."""
    counts = [c["gpus"] for c in cost if c["attempt"] != "total"]
    if not counts or any(n is None for n in counts):
        return None
    return max(int(n) for n in counts)


def _most_hosts(attempts: list[dict[str, Any]]) -> int | None:
    """The most hosts an attempt ran on, measured or declared (query/gpu_count.py); None when an
    attempt's hosts are unknown (#16: an imported attempt without hardware is not on 1 host)."""
    counts = [a["hosts"] for a in attempts]
    if not counts or any(n is None for n in counts):
        return None
    return max(int(n) for n in counts)


def figure(row: dict[str, Any], name: str, digits: int, unit: str = "") -> dict[str, str]:
    """A figure of a cost row for people: `value` ("1,234.5 kWh" or "unknown"), the `kind` of its
    basis (measured, declared, estimated, unknown) and `text`, the two together (#16)."""
    basis = (row.get("basis") or {}).get(name) or ""
    kind = basis.split(":", 1)[0]
    kind = kind if kind in KINDS else ""
    if row.get(name) is None:
        return {"value": "unknown", "kind": "unknown", "text": "unknown"}
    value = number(row[name], digits) + unit
    return {"value": value, "kind": kind, "text": f"{value}, {kind}" if kind else value}


def disclosure(s: dict[str, Any], o: dict[str, Any]) -> list[dict[str, str]]:
    """The training figures model cards (Hugging Face's template) and the EU AI Act (Annex XI
    2(d), 2(e)) ask for, each with where it came from."""
    c = o["cost"]
    basis = c.get("basis") or {}
    hw = s["hardware"]
    # the inventory's GPU models, else those a history declares (query/gpu_count.py)
    gpu_names = sorted({h["gpu_name"] for h in hw if h.get("gpu_name")}) or sorted(
        {a["gpu_model"] for a in s["attempts"] if a.get("gpu_model")}
    )
    hosts = "hosts unknown" if o["hosts"] is None else f"on {o['hosts']:,} host(s)"
    if o["gpus"] is None:
        hardware = "unknown"
    elif o["gpus"] == 0:
        hardware = "no GPU"
    elif gpu_names:
        hardware = f"{o['gpus']:,} × {', '.join(gpu_names)} {hosts}"
    else:
        hardware = f"{o['gpus']:,} GPUs {hosts}"
    co2 = c.get("co2_kg")
    return [
        {"item": "Hardware type and count", "value": hardware, "basis": _gpus_basis(s["cost"])},
        {
            "item": "Training time (wall-clock, first launch to last end)",
            "value": span_text(o),
            "basis": f"{_span_kind(c, o)}: {o['attempts']} attempts, "
            "failed and restarted ones included"
            + (
                f"; {o['span_bound']}: the first launch or the last end is known only to a day "
                "or range, or the run goes on past its last time on record"
                if o["span_bound"]
                else ""
            ),
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


def _span_kind(c: dict[str, Any], o: dict[str, Any]) -> str:
    """The kind of the span's basis: the hours' kind, but the span of times a history declares
    is declared even where the hours, which want every attempt's time, are unknown."""
    kind = figure(c, "hours", 1)["kind"] or "measured"
    if kind == "unknown" and o["span_bound"] != "unknown" and o["span_s"] is not None:
        return "declared"
    return kind


def _gpus_basis(cost: list[dict[str, Any]]) -> str:
    """The attempts' GPU count bases, each once (the total has none of its own)."""
    bases = dict.fromkeys(c["basis"]["gpus"] for c in cost if c["attempt"] != "total")
    return "; ".join(bases)


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
