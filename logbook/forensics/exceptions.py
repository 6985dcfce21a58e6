"""An exception the training raised, read by the same rules that classify a wrapped command's
crash: for the API's standalone attempts and the framework callbacks."""

from __future__ import annotations

from typing import Any


def describe_exception(exc: BaseException) -> tuple[str, dict[str, Any]]:
    """The message and data of an `exception` event: the traceback read by the same rules that
    classify a wrapped command's crash (logbook.forensics)."""
    import tempfile
    import traceback
    from pathlib import Path

    from logbook.forensics.classify import classify_end

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    first = str(exc).splitlines()[0] if str(exc) else ""
    message = f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__
    data: dict[str, Any] = {
        "class": None,
        "exception": {"type": type(exc).__name__, "message": first[:500]},
    }
    try:
        with tempfile.TemporaryDirectory(prefix="logbook-") as folder:
            log = Path(folder) / "stderr.log"
            log.write_text(text, errors="replace")
            verdict = classify_end(returncode=1, log_paths=[log])
    except Exception:  # the event without a class is better than none
        return message, data
    data["class"] = verdict.crash_class
    for key in ("exception", "rules", "lines"):
        if key in verdict.evidence:
            data[key] = verdict.evidence[key]
    return verdict.summary or message, data
