"""How far an attempt's raw logs were parsed for metrics: `parsed.json` beside them.

The recorder rewrites it (atomically) after each metrics part it writes, never before, so that
what it names as parsed is on record in the store; what it does not name is parsed again by
`recover`. A stream's coverage is every whole line before `to`, less the `holes` (stretches a flood
of output made the live reader skip, not yet caught up).

    {"version": 1, "run": "r", "attempt_id": "...", "journal": "<journal id>", "metrics": "auto",
     "streams": {"stdout": {"to": 1234, "holes": [[10, 20]]}, "stderr": {"to": 0, "holes": []}},
     "last_step": 99, "first_step": 0, "first_step_time": "...", "last_step_time": "...",
     "complete": false}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

NAME = "parsed.json"
VERSION = 1


def path_in(log_dir: Path) -> Path:
    return log_dir / NAME


def write(log_dir: Path, doc: dict[str, Any]) -> None:
    """Replace the coverage file atomically (a kill leaves the old one or the new one).

    Raises:
        OSError: it could not be written (a full disk): the old one stays.
    """
    target = path_in(log_dir)
    tmp = log_dir / f".{NAME}.{os.getpid()}.tmp"
    data = json.dumps({"version": VERSION, **doc}, default=str).encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def before_part(log_dir: Path, part: Path, after: dict[str, Any]) -> None:
    """Say, before a metrics part is written, the coverage it brings: the file keeps what it
    said and names the part (`pending`); `read` gives `after` once the part is in place, and
    what it said while it is not. A writer killed between its part and its coverage then leaves
    neither points parsed twice (the part without the coverage) nor lost. Then the part, then
    `write(after)`.

    Raises:
        OSError: as `write`.
    """
    now = read(log_dir) or {k: v for k, v in after.items() if k in ("run", "attempt_id")}
    pending = {"part": os.path.relpath(part, log_dir), "doc": after}
    write(log_dir, {**now, "pending": pending})


def read(log_dir: Path) -> dict[str, Any] | None:
    """The coverage of the logs in `log_dir` (a `pending` part resolved: see `before_part`);
    None when there is none or it cannot be read."""
    try:
        doc = json.loads(path_in(log_dir).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return None
    pending = doc.pop("pending", None)
    if isinstance(pending, dict) and isinstance(pending.get("doc"), dict):
        if (log_dir / str(pending.get("part"))).exists():
            return {**pending["doc"], "version": VERSION}
    return doc


def unparsed(doc: dict[str, Any], sizes: dict[str, int]) -> dict[str, list[tuple[int, int]]]:
    """For each stream, the stretches (start, end) of its log that are not covered: its holes,
    then from `to` to the end of the file (`sizes`)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for name, size in sizes.items():
        cov = (doc.get("streams") or {}).get(name) or {}
        to = int(cov.get("to") or 0)
        stretches = [(int(a), int(b)) for a, b in cov.get("holes") or []]
        if size > to:
            stretches.append((to, size))
        if stretches:
            out[name] = stretches
    return out


def stream_of(left: list[tuple[int, int]], size: int) -> dict[str, Any]:
    """A stream's coverage (`to`, `holes`) whose unparsed stretches are `left`, in order, of a log
    of `size` bytes: what `unparsed` reads back as them."""
    if left and left[-1][1] >= size:
        return {"to": left[-1][0], "holes": [list(x) for x in left[:-1]]}
    return {"to": size, "holes": [list(x) for x in left]}
