"""Compacting a remote store (`s3://`, #18): the parts of each `<table>/run=<name>/` folder merged
into one, in the store itself, so that a store many hosts write keeps its part count bounded.

In each folder:

1. Take the lease: a conditional PUT (`If-None-Match: *`) of `_compact.lock`, whose body holds
   its owner and expiry. A lease past its expiry is replaced only with `If-Match` on the ETag it
   was read with, so of two compactions that find it stale one wins.
2. List the folder; finish what an interrupted compaction left (below); pick the inputs: the small
   parts, less those of a journal the store still lists (a live or dead wrapper's: its host folds
   it, and the fold's push may change them). Download them, and merge them with local
   compaction's code (`compact.write_merged`: conformed to the current schema, redacted).
3. Renew the lease (the check that it is still ours), then PUT the manifest
   `_compact-<id>.json` naming the merged part and every part it replaces, then the merged part.
   The manifest goes first, as on a local disk: a listing that shows the merged part shows its
   manifest, so no reader counts a row twice; a manifest whose merged part is not listed is
   ignored by readers and undone by the next compaction.
4. Delete the replaced parts, then the manifests this one supersedes, then the lease.

The manifest stays as long as its merged part does: it is the record, for the writers' pushes,
of what the merged part replaced. A spool on some host may still hold a replaced part (its
ledger says it went up; the store no longer lists it), and a push that trusts the listing would
upload it again and double its rows; `remote.pending` skips every part a manifest names. A later
compaction that merges a merged part carries its manifest's names into its own and deletes the
old manifest, so a folder holds at most one manifest per merged part.

A kill leaves, by the step reached: before (3) the lease only (stale after `LEASE_S`) and perhaps
nothing else; a manifest whose merged part is not listed (undone next time); or the merged part,
its manifest and some replaced parts, which readers skip (`remote.mirror`, and the local
reader's manifest rule in the cache) and the next compaction deletes.

Only s3:// is compacted: pyarrow's clients for gs:// and az:// cannot send a conditional write,
and the lease needs one (a signed request of each cloud's own, as `put_if_absent` does for S3,
is not built).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from logbook import schema as schemas
from logbook.errors import ConfigError, LogbookError
from logbook.store import layout
from logbook.store.compact import (
    MANIFEST_PREFIX,
    OUTPUT_PREFIX,
    SMALL_PART_BYTES,
    CompactResult,
    Damaged,
    pause,
    write_merged,
)
from logbook.store.lock import LOCK_NAME
from logbook.store.put_if_absent import request
from logbook.store.remote import Listed, Remote, check_url

__all__ = ["LEASE_S", "Lease", "compact_remote", "release", "renew", "take_lease"]

LEASE_S = 600.0  # a folder's merge takes seconds; a lease this old is a dead compaction's
WORKERS = 8  # downloads and deletions at once


@dataclass
class Lease:
    url: str
    rel: str
    etag: str
    took_over: str | None = None  # the owner of the stale lease replaced


def _lease_body(lease_s: float) -> bytes:
    owner = f"{socket.gethostname()}:{os.getpid()}"
    return json.dumps({"owner": owner, "expires": time.time() + lease_s}).encode()


def take_lease(url: str, folder: str, *, lease_s: float = LEASE_S) -> tuple[Lease | None, str]:
    """The lease of the folder `folder` of the store `url`, or None and why not."""
    rel = f"{folder}/{LOCK_NAME}"
    answer = request(url, rel, "PUT", _lease_body(lease_s), {"if-none-match": "*"})
    if answer is None:
        return None, "no answer to the lease's conditional write (credentials, network)"
    if answer[0] == 200:
        return Lease(url, rel, answer[1].get("etag", "")), ""
    if answer[0] not in (409, 412):
        return None, f"the store refused the lease's conditional write (HTTP {answer[0]})"
    held = request(url, rel, "GET")
    if held is None or held[0] != 200:  # released meanwhile: the next compaction takes it
        return None, "another compaction holds the lease"
    try:
        doc = json.loads(held[2])
        owner, expires = str(doc.get("owner")), float(doc["expires"])
    except (ValueError, KeyError, TypeError, AttributeError):
        owner, expires = "unknown", 0.0  # not ours to read: stale
    if expires > time.time():
        until = datetime.fromtimestamp(expires, timezone.utc).strftime("%H:%M:%S UTC")
        return None, f"another compaction ({owner}) holds the lease until {until}"
    etag = held[1].get("etag", "")
    taken = request(url, rel, "PUT", _lease_body(lease_s), {"if-match": etag})
    if taken is None or taken[0] != 200:
        return None, "another compaction took the stale lease first"
    return Lease(url, rel, taken[1].get("etag", ""), took_over=owner), ""


def renew(lease: Lease, *, lease_s: float = LEASE_S) -> bool:
    """Extend the lease if it is still ours (as we last wrote it); False if it is not."""
    answer = request(lease.url, lease.rel, "PUT", _lease_body(lease_s), {"if-match": lease.etag})
    if answer is None or answer[0] != 200:
        return False
    lease.etag = answer[1].get("etag", "")
    return True


def release(lease: Lease) -> None:
    """Delete the lease if it is still ours; one taken over stays its new owner's. A server that
    refuses a conditional delete gets a plain one (a takeover happens only past the expiry)."""
    answer = request(lease.url, lease.rel, "DELETE", conditions={"if-match": lease.etag})
    if answer is not None and answer[0] not in (200, 204, 404, 412):
        request(lease.url, lease.rel, "DELETE")


def compact_remote(
    url: str,
    tables: Iterable[str] | None = None,
    *,
    run: str | None = None,
    min_parts: int = 2,
    progress: Callable[[str], None] | None = None,
    remote: Remote | None = None,
    lease_s: float = LEASE_S,
) -> CompactResult:
    """Merge the small parts of every table and run of the remote store `url` (or of one run).

    Args:
        min_parts: leave a folder alone while it has fewer parts than this.
        progress: called with the folder before each is looked at.

    Returns:
        Counts of folders touched and parts before and after.

    Raises:
        ConfigError: a store other than s3://.
        StoreUnreachable: the store did not answer a listing.
    """
    url = check_url(url)
    if not url.startswith("s3://"):
        raise ConfigError(
            f"{url}: logbook compacts only s3:// stores (it stays readable as it is)",
            hint="the lease needs a conditional write, which logbook sends to S3 only",
        )
    up = remote or Remote(url)
    result = CompactResult()
    live = {
        rel.rsplit("/", 1)[-1].removesuffix(".jsonl")
        for rel in up.list(layout.JOURNAL_DIR)
        if rel.endswith(".jsonl")
    }
    pattern = f"run={layout.check_run_name(run)}" if run else None
    with tempfile.TemporaryDirectory(prefix="logbook-compact-") as work:
        for table in tables or schemas.tables():
            folders: dict[str, int] = {}
            for rel in up.list(table):
                bits = rel.split("/")
                if len(bits) == 3 and bits[1].startswith("run=") and _is_part(bits[2]):
                    folders[f"{table}/{bits[1]}"] = folders.get(f"{table}/{bits[1]}", 0) + 1
            for folder, n in sorted(folders.items()):
                if pattern and folder.split("/")[1] != pattern:
                    continue
                if n < max(2, min_parts):  # an interrupted compaction leaves two at least
                    continue
                if progress is not None:
                    progress(f"compacting {folder}")
                try:
                    _compact_folder(up, table, folder, result, min_parts, live, Path(work), lease_s)
                except LogbookError:
                    raise
                except Exception as e:  # the client's errors: one line, naming the store
                    raise up.unreachable(e) from e
    return result


def _is_part(name: str) -> bool:
    return name.endswith(layout.PART_SUFFIX) and not name.startswith(".")


def _compact_folder(
    up: Remote,
    table: str,
    folder: str,
    result: CompactResult,
    min_parts: int,
    live: set[str],
    work: Path,
    lease_s: float,
) -> None:
    lease, why = take_lease(up.url, folder, lease_s=lease_s)
    if lease is None:
        result.skipped.append(f"{folder} ({why})")
        return
    try:
        if lease.took_over is not None:
            result.notes.append(f"{folder}: took over the stale lease of {lease.took_over}")
        pause("locked")
        listed = {rel.rsplit("/", 1)[-1]: info for rel, info in up.list(folder).items()}
        manifests = _manifests(up, folder, listed)
        _finish_interrupted(up, folder, listed, manifests, result)
        inputs = [
            name
            for name, info in sorted(listed.items())
            if _is_part(name)
            and layout.journal_of_part(name) not in live
            and info.size < SMALL_PART_BYTES
        ]
        if len(inputs) < max(2, min_parts):
            return
        _merge(up, table, folder, inputs, manifests, result, lease, work, lease_s)
    finally:
        release(lease)


def _manifests(up: Remote, folder: str, listed: dict[str, Listed]) -> dict[str, dict]:  # type: ignore[type-arg]
    out = {}
    for name in sorted(listed):
        if name.startswith(MANIFEST_PREFIX) and name.endswith(".json"):
            try:
                doc = json.loads(up.read(f"{folder}/{name}"))
            except (OSError, ValueError):
                continue  # not ours to judge: left as it is
            if isinstance(doc, dict) and isinstance(doc.get("inputs"), list):
                out[name] = doc
    return out


def _finish_interrupted(
    up: Remote,
    folder: str,
    listed: dict[str, Listed],
    manifests: dict[str, dict],  # type: ignore[type-arg]
    result: CompactResult,
) -> None:
    """Delete the replaced parts a killed compaction left, and the manifests no longer needed:
    those superseded by a later merge of their merged part, and those whose merged part never
    went up (the parts they name still hold every row)."""
    merged_again = {i for doc in manifests.values() for i in doc["inputs"]}
    for name, doc in list(manifests.items()):
        output = doc.get("output")
        if output in listed:
            left = [i for i in doc["inputs"] if i in listed and i != output]
            _delete(up, [f"{folder}/{i}" for i in left])
            for i in left:
                listed.pop(i, None)
            if left:
                result.notes.append(
                    f"{folder}/{name}: a compaction was interrupted after its manifest "
                    f"({len(left)} replaced parts left); deleted them"
                )
        else:
            up.delete(f"{folder}/{name}")
            listed.pop(name, None)
            del manifests[name]
            if output not in merged_again:
                result.notes.append(
                    f"{folder}/{name}: a compaction was interrupted before its merged part "
                    "went up; undone"
                )


def _merge(
    up: Remote,
    table: str,
    folder: str,
    inputs: list[str],
    manifests: dict[str, dict],  # type: ignore[type-arg]
    result: CompactResult,
    lease: Lease,
    work: Path,
    lease_s: float,
) -> None:
    local = work / folder  # <table>/run=<name>/: write_merged takes the run from the folder
    local.mkdir(parents=True, exist_ok=True)

    def fetch(name: str) -> Path | None:
        try:
            up.get(f"{folder}/{name}", local / name)
        except FileNotFoundError:  # deleted by its writer's push since the listing (doctor)
            return None
        return local / name

    with ThreadPoolExecutor(WORKERS) as pool:
        paths = [p for p in pool.map(fetch, inputs) if p is not None]
    output = layout.new_part_name(OUTPUT_PREFIX)
    tmp = local / f".{output}.tmp"
    try:
        while True:
            if len(paths) < 2:
                return
            try:
                rows = write_merged(tmp, table, paths)
            except Damaged as e:  # damaged inside: left for `logbook doctor`, the rest merged
                result.skipped.append(f"{folder}/{e.path.name}")
                paths = [p for p in paths if p != e.path]
                continue
            break
        merged = [p.name for p in paths]
        superseded = [name for name, doc in manifests.items() if doc.get("output") in merged]
        replaced = set(merged).union(*(manifests[name]["inputs"] for name in superseded))
        if not renew(lease, lease_s=lease_s):
            result.skipped.append(f"{folder} (lost the lease mid-merge)")
            return
        manifest = f"{MANIFEST_PREFIX}{uuid.uuid4().hex[:12]}.json"
        doc = {"output": output, "inputs": sorted(replaced), "rows": rows}
        up.put_bytes(json.dumps(doc).encode(), f"{folder}/{manifest}")
        pause("merged-before")
        up.put(tmp, f"{folder}/{output}")
    finally:
        tmp.unlink(missing_ok=True)
        for p in paths:
            p.unlink(missing_ok=True)
    pause("manifest")
    half = len(merged) // 2
    _delete(up, [f"{folder}/{name}" for name in merged[:half]])
    pause("deleting")
    _delete(up, [f"{folder}/{name}" for name in merged[half:]])
    _delete(up, [f"{folder}/{name}" for name in superseded])
    pause("deleted")
    result.folders += 1
    result.parts_before += len(merged)
    result.parts_after += 1
    result.rows += rows


def _delete(up: Remote, rels: list[str]) -> None:
    if len(rels) > 1:
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(up.delete, rels))
    else:
        for rel in rels:
            up.delete(rel)
