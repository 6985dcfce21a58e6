"""The data mix: which sources an attempt trained on, with what weights and token counts, and
fingerprints of their files, so that a change between attempts is on record.

A mix file (`--data-mix`, YAML, JSON or TOML) maps sources to a weight or to a table:

    web: 0.6                                   # a weight alone
    code: {weight: 0.25, tokens: 3.1e11, path: data/code/}
    books: {weight: 0.15, paths: [data/books/*.jsonl]}

optionally under a `sources:` (or `mix:`) key, or as a list of tables with a `name`. Other fields
(license, epochs, ...) are kept and compared like the rest. Relative paths are taken from the mix
file's folder (from the working folder for `logbook.data_mix`).

Fingerprints never read much: a file is hashed in full up to FULL_HASH_BYTES, else SAMPLES
evenly spaced chunks and its size are hashed ("sampled"); a folder or glob hashes its listing and
each file's fingerprint until READ_BUDGET bytes have been read, then names, sizes and mtimes only
("listing"), and stops after MAX_FILES files ("partial").
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from logbook.errors import ConfigError

FULL_HASH_BYTES = 32 << 20
SAMPLES = 16
SAMPLE_BYTES = 64 << 10
READ_BUDGET = 256 << 20
MAX_FILES = 100_000
_FIELDS = ("weight", "tokens", "paths")


def load_mix(path: Path) -> dict[str, dict[str, Any]]:
    """A mix file, validated and normalised to {source: {weight, tokens, paths, ...}}.

    Raises:
        ConfigError: unreadable or malformed (naming the file and, where it can, the line).
    """
    from logbook.record.hparams import load_config

    doc = load_config(path, what="--data-mix")
    try:
        return normalise(doc)
    except _SourceError as e:
        line = _line_of(path, e.source)
        where = f", line {line}" if line else ""
        raise ConfigError(f"--data-mix {path}{where}: {e.message}", hint=e.hint) from None


class _SourceError(ConfigError):
    """A bad source, named so that the error can point at its line."""

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


def normalise(doc: Mapping[str, Any] | list[Any]) -> dict[str, dict[str, Any]]:
    """Any accepted shape of a mix -> {source: {"weight", "tokens", "paths", extra fields...}}."""
    if isinstance(doc, Mapping) and len(doc) == 1:
        key = next(iter(doc))
        if key in ("sources", "mix") and isinstance(doc[key], (Mapping, list)):
            doc = doc[key]
    if isinstance(doc, list):
        named: dict[str, Any] = {}
        for i, item in enumerate(doc):
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise _SourceError(f"item {i + 1} of the list needs a `name`")
            named[item["name"]] = {k: v for k, v in item.items() if k != "name"}
        doc = named
    if not isinstance(doc, Mapping) or not doc:
        raise _SourceError("declares no sources", None)
    out: dict[str, dict[str, Any]] = {}
    for name, spec in doc.items():
        out[str(name)] = _source(str(name), spec)
    return out


def _source(name: str, spec: Any) -> dict[str, Any]:
    if isinstance(spec, bool) or not isinstance(spec, (int, float, Mapping)):
        raise _SourceError(
            f"source {name!r}: expected a weight or a table, not {json.dumps(spec, default=str)}",
            name,
        )
    if not isinstance(spec, Mapping):
        spec = {"weight": spec}
    out: dict[str, Any] = {"weight": None, "tokens": None, "paths": []}
    for key, value in spec.items():
        if key in ("weight", "tokens"):
            out[key] = _amount(name, key, value)
        elif key in ("path", "paths"):
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) and v for v in values):
                raise _SourceError(
                    f"source {name!r}: {key} must be a path or a list of paths", name
                )
            out["paths"] += values
        else:
            out[str(key)] = json.loads(json.dumps(value, default=str))
    return out


def _amount(name: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.replace("_", ""))
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise _SourceError(f"source {name!r}: {key} must be a number of at least 0", name)
    if value == float("inf"):
        raise _SourceError(f"source {name!r}: {key} must be finite", name)
    return float(value)


def _line_of(path: Path, source: str | None) -> int | None:
    """The first line that names `source` as a key, to point at it in an error."""
    if not source:
        return None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    pattern = re.compile(rf"""^\s*(?:-\s*name\s*[:=]\s*)?["']?{re.escape(source)}["']?\s*[:=]""")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            return number
    return None


def with_fingerprints(mix: Mapping[str, Mapping[str, Any]], base: Path) -> dict[str, Any]:
    """The mix with a `fingerprints` table per source that has paths ({path: fingerprint})."""
    out: dict[str, Any] = {}
    for name, spec in mix.items():
        spec = dict(spec)
        if spec.get("paths"):
            spec["fingerprints"] = {p: fingerprint(base / p) for p in spec["paths"]}
        out[name] = spec
    return out


def fingerprint(path: Path) -> dict[str, Any]:
    """Size, modification time and a content hash of a file, a folder or a glob; never an error."""
    started = time.monotonic()
    try:
        text = str(path)
        if glob.has_magic(text) and not path.exists():
            files = sorted(Path(p) for p in glob.iglob(text, recursive=True) if os.path.isfile(p))
            out = _many(files, Path(_glob_root(text)), "glob")
        elif path.is_dir():
            out = _many(_walk(path), path, "dir")
        elif path.exists():
            st = path.stat()
            digest, method = _file_hash(path, st.st_size)
            out = {
                "kind": "file",
                "size": st.st_size,
                "mtime": _iso(st.st_mtime),
                "hash": digest,
                "method": method,
            }
        else:
            out = {"kind": "missing"}
    except OSError as e:
        out = {"kind": "error", "error": f"{e.strerror or e}"}
    out["took_s"] = round(time.monotonic() - started, 4)
    return out


def _glob_root(pattern: str) -> str:
    head = pattern
    while glob.has_magic(head):
        head = os.path.dirname(head)
    return head or "."


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        found += (Path(folder) / f for f in sorted(files))
        if len(found) > MAX_FILES:
            break
    return found


def _many(files: list[Path], root: Path, kind: str) -> dict[str, Any]:
    h = hashlib.sha256()
    size, newest, budget, methods = 0, 0.0, READ_BUDGET, set()
    for path in files[:MAX_FILES]:
        try:
            st = path.stat()
        except OSError:
            continue
        size += st.st_size
        newest = max(newest, st.st_mtime)
        rel = os.path.relpath(path, root)
        read = min(
            st.st_size, FULL_HASH_BYTES if st.st_size <= FULL_HASH_BYTES else SAMPLES * SAMPLE_BYTES
        )
        if read <= budget:
            digest, method = _file_hash(path, st.st_size)
            budget -= read
        else:  # past the read budget: the listing only
            digest, method = f"{st.st_size}:{st.st_mtime_ns}", "listing"
        methods.add(method)
        h.update(f"{rel}\0{st.st_size}\0{digest}\n".encode())
    method = next(iter(methods)) if len(methods) == 1 else "+".join(sorted(methods)) or "empty"
    out: dict[str, Any] = {
        "kind": kind,
        "files": min(len(files), MAX_FILES),
        "size": size,
        "mtime": _iso(newest) if newest else None,
        "hash": f"sha256:{h.hexdigest()}",
        "method": method,
    }
    if len(files) > MAX_FILES:
        out["partial"] = True
    return out


def _file_hash(path: Path, size: int) -> tuple[str, str]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= FULL_HASH_BYTES:
            while chunk := f.read(1 << 20):
                h.update(chunk)
            return f"sha256:{h.hexdigest()}", "full"
        h.update(str(size).encode())
        step = (size - SAMPLE_BYTES) // (SAMPLES - 1)
        for i in range(SAMPLES):
            f.seek(i * step)
            h.update(f.read(SAMPLE_BYTES))
    return f"sha256:{h.hexdigest()}", "sampled"


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What differs between two mixes: [{source, field, old, new}]. A source added or removed has
    field `source`; changed data (a path's fingerprint hash or size) has field `data`."""
    out: list[dict[str, Any]] = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a is None or b is None:
            out.append({"source": name, "field": "source", "old": _brief(a), "new": _brief(b)})
            continue
        for key in sorted((a.keys() | b.keys()) - {"fingerprints"}):
            if a.get(key) != b.get(key):
                out.append({"source": name, "field": key, "old": a.get(key), "new": b.get(key)})
        fa, fb = a.get("fingerprints") or {}, b.get("fingerprints") or {}
        for p in sorted(fa.keys() & fb.keys()):
            if _identity(fa[p]) != _identity(fb[p]):
                out.append(
                    {
                        "source": name,
                        "field": "data",
                        "path": p,
                        "old": _short(fa[p]),
                        "new": _short(fb[p]),
                    }
                )
    return out


def describe(changed: list[dict[str, Any]]) -> str:
    """One line for people: `web weight 0.6 -> 0.5; code added; books data changed`."""
    parts = []
    for c in changed:
        if c["field"] == "source":
            parts.append(f"{c['source']} {'added' if c['old'] is None else 'removed'}")
        elif c["field"] == "data":
            parts.append(f"{c['source']} data changed ({c['path']}: {c['old']} -> {c['new']})")
        else:
            parts.append(f"{c['source']} {c['field']} {_show(c['old'])} -> {_show(c['new'])}")
    return "data mix changed: " + "; ".join(parts)


def _identity(fp: Mapping[str, Any]) -> tuple[Any, ...]:
    return (fp.get("kind"), fp.get("size"), fp.get("hash"))


def _short(fp: Mapping[str, Any]) -> str:
    if fp.get("hash"):
        return str(fp["hash"]).split(":")[-1][:12]
    return str(fp.get("kind"))


def _brief(spec: Mapping[str, Any] | None) -> Any:
    return None if spec is None else {k: spec.get(k) for k in _FIELDS if spec.get(k)}


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e6:
        return f"{value:.3g}"
    return json.dumps(value) if not isinstance(value, (int, float)) else f"{value:g}"


def summary(mix: Mapping[str, Mapping[str, Any]]) -> str:
    """`data mix of 3 sources: web 0.6, code 0.25, books 0.15` for an event's message."""
    shown = [
        f"{name} {spec['weight']:g}" if spec.get("weight") is not None else name
        for name, spec in mix.items()
    ]
    return f"data mix of {len(mix)} sources: {', '.join(shown)}"


def change_data(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """The message and data of a `data_mix_change` event from `old` to `new`, or None if equal."""
    found = changes(old, new)
    if not found:
        return None
    changed = sorted({c["source"] for c in found})
    return describe(found), {"changes": found, "changed": changed, "old": old, "new": new}


def last_recorded(
    store: Any, run: str, attempt_ids: set[str] | None = None
) -> dict[str, Any] | None:
    """The newest mix declared on record for `run` (of `attempt_ids` when given), or None."""
    table = store.read("events", run=run)
    best: tuple[Any, str] | None = None
    for row in table.select(["attempt_id", "time", "kind", "data"]).to_pylist():
        if row["kind"] != "data_mix" or not row["data"]:
            continue
        if attempt_ids is not None and row["attempt_id"] not in attempt_ids:
            continue
        if best is None or row["time"] > best[0]:
            best = (row["time"], row["data"])
    if best is None:
        return None
    mix = json.loads(best[1]).get("mix")
    return mix if isinstance(mix, dict) else None


def history(store: Any, run: str) -> Any:
    """Every declared mix of a run, one row per source, in time order, each marked with what
    changed from the declaration before it.

    Raises:
        NoSuchRun: the run is unknown.
    """
    import pyarrow as pa

    from logbook import query

    store.check_run(run)
    declared = query.run_sql(
        store,
        "select e.time, a.label as attempt, e.step, e.source, e.data from events e "
        "left join attempts a on a.attempt_id = e.attempt_id "
        "where e.run = $run and e.kind = 'data_mix' order by e.time",
        {"run": run},
    ).to_pylist()
    rows: list[dict[str, Any]] = []
    before: dict[str, Any] | None = None
    for d in declared:
        mix = (json.loads(d["data"]) if d["data"] else {}).get("mix") or {}
        found = changes(before, mix) if before is not None else []
        for name in [*mix, *(n for n in (before or {}) if n not in mix)]:
            spec = mix.get(name) or {}
            mine = [c for c in found if c["source"] == name]
            rows.append(
                {
                    "time": d["time"],
                    "attempt": d["attempt"],
                    "step": d["step"],
                    "source": name,
                    "weight": spec.get("weight"),
                    "tokens": spec.get("tokens"),
                    "paths": ", ".join(spec.get("paths") or []) or None,
                    "data": _data_cell(spec.get("fingerprints") or {}),
                    "change": _change_cell(mine),
                    "declared_by": d["source"],
                }
            )
        before = mix
    schema = pa.schema(
        [
            ("time", pa.timestamp("us", tz="UTC")),
            ("attempt", pa.string()),
            ("step", pa.int64()),
            ("source", pa.string()),
            ("weight", pa.float64()),
            ("tokens", pa.float64()),
            ("paths", pa.string()),
            ("data", pa.string()),
            ("change", pa.string()),
            ("declared_by", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def _data_cell(fingerprints: Mapping[str, Any]) -> str | None:
    cells = []
    for fp in fingerprints.values():
        if fp.get("hash"):
            cells.append(f"{_short(fp)} ({fp.get('method')}, {_size(fp.get('size') or 0)})")
        else:
            cells.append(str(fp.get("kind")))
    return "; ".join(cells) or None


def _change_cell(mine: list[dict[str, Any]]) -> str | None:
    if not mine:
        return None
    if mine[0]["field"] == "source":
        return "added" if mine[0]["old"] is None else "removed"
    return "; ".join(
        "data changed"
        if c["field"] == "data"
        else f"{c['field']} {_show(c['old'])} -> {_show(c['new'])}"
        for c in mine
    )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
