"""The chronicle's figures from its (scrubbed) sections: name -> SVG text, only those with something
to draw. Names are file names in img/ and element ids in the page."""

from __future__ import annotations

import re
from typing import Any

from logbook.chronicle import plots


def draw(s: dict[str, Any]) -> dict[str, str]:
    """Every figure the record allows (see logbook.chronicle.plots)."""
    made: dict[str, str | None] = {
        "timeline": plots.timeline(
            [
                {
                    "label": a["label"],
                    "start": a["start_time"],
                    "end": a["end_time"],
                    "status": a["status"],
                    "crash_class": a["class"],
                    "first_step": a["first_step"],
                    "last_step": a["last_step"],
                    "resumed_from_step": a["resumed_from_step"],
                }
                for a in s["attempts"]
            ]
        ),
        "restarts": plots.restarts(
            [
                {"time": a["end_time"], "cause": a["class"] or a["status"]}
                for a in s["attempts"]
                if a["status"] not in ("completed", "running")
            ]
        ),
        "incidents": plots.incidents(
            [
                {
                    "class": i["class"],
                    "count": int(i["count"]),
                    "time_lost_s": i["time_lost_s"],  # None: unknown, never drawn as 0
                }
                for i in s["incidents"]
                if not str(i["class"]).startswith("all failures")  # totals, not classes
            ]
        ),
        "datamix": plots.datamix(s["datamix"]),
        "utilization": plots.utilization(s["utilization"]),
        "step-deviation": plots.step_deviation(s.get("step_deviation") or []),
    }
    for i, c in enumerate(s["curves"]):
        made[f"curve-{i + 1}-{slug(c['name'])}"] = plots.curves(
            c["name"], c["points"], c["markers"], lineages=c.get("lineages")
        )
    return {name: svg for name, svg in made.items() if svg}


def slug(text: str) -> str:
    """A file-name-safe form of a metric name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "metric"
