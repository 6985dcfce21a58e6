"""The run's attempts as (attempt_id, label) without reading Parquet, so that `logbook run` can
name its attempt and start the command before pyarrow is imported (about 0.1 s here, #15).

The index is a JSON file beside the label claims (`_labels/run=<name>/.index.json`; `claimed`
skips dot files). It holds each attempt's first row's sort key, and a key over the files that
hold the run's attempt rows: the names and sizes in `attempts/run=<name>/`. It is used only
while that key still matches and no journal of the run exists (a live or dead wrapper's rows
live there, not in parts); anything else (a compaction, an import, another wrapper, a reparse)
changes the key, and the caller reads the Parquet again and rewrites the index. A wrapper that
ends adds its own attempts only if every file added since it read the index is its own; the
labels themselves stay unique by their claims (`lineage.place`), whatever the index says.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from logbook.store import layout

INDEX_NAME = ".index.json"
VERSION = 1

Key = list[list[Any]]  # [name, size] per entry of the run's attempts folder, sorted
First = tuple[str, str, datetime, datetime]  # attempt_id, label, start_time, recorded_at


def current_key(root: Path, run: str) -> Key | None:
    """The files the run's attempt rows come from now; None while a journal of the run exists
    (its rows are in no part yet) or the folders cannot be read."""
    try:
        if any(os.scandir(layout.journal_dir(root, run))):
            return None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        with os.scandir(layout.run_dir(root, "attempts", run)) as entries:
            return sorted([e.name, e.stat().st_size] for e in entries)
    except FileNotFoundError:
        return []
    except OSError:
        return None


def load(root: Path, run: str, key: Key) -> list[First] | None:
    """The run's attempts' first rows, if the index was made from exactly the files `key` names."""
    try:
        data = json.loads((layout.labels_dir(root, run) / INDEX_NAME).read_text())
        if data.get("version") != VERSION or data.get("key") != key:
            return None
        return [
            (a, lab, datetime.fromisoformat(s), datetime.fromisoformat(r))
            for a, lab, s, r in data["attempts"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(root: Path, run: str, key: Key, firsts: Iterable[First]) -> None:
    """Write the index (atomically: a reader sees the old one or this one). Never raises: without
    an index the next wrapper reads the Parquet, as before it existed."""
    folder = layout.labels_dir(root, run)
    doc = {
        "version": VERSION,
        "key": key,
        "attempts": [[a, lab, s.isoformat(), r.isoformat()] for a, lab, s, r in firsts],
    }
    tmp = folder / f".index.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, folder / INDEX_NAME)
    except (OSError, ValueError, TypeError, AttributeError):  # AttributeError: a null time
        tmp.unlink(missing_ok=True)


def ordered(firsts: Iterable[First]) -> list[tuple[str, str]]:
    """(attempt_id, label), oldest first: by the first row's start, then when it was recorded."""
    return [(a, lab) for a, lab, _, _ in sorted(firsts, key=lambda f: (f[2], f[3]))]


def only_ours(before: Key, after: Key, journal_ids: Iterable[str]) -> bool:
    """Whether the files of `after` are those of `before` plus our journals' parts, each of our
    journals folded (its attempt on record), none of `before` gone (a compaction's merge is not
    ours to vouch for) and nothing of another writer's added."""
    old = {tuple(e) for e in before}
    new = {tuple(e) for e in after}
    ours = set(journal_ids)
    added = {name for name, _ in new - old}
    folded = {layout.journal_part_name(j) for j in ours}
    return (
        old <= new
        and folded <= added
        and all(layout.journal_of_part(name) in ours for name in added)
    )
