"""The lock of one `<table>/run=<name>/` folder, held by whoever merges or tidies its parts.

The lock is a file, `_compact.lock`, whose contents name its owner (see `owner`): a lock whose
owner is dead is taken over at once, and a live one is never taken. Writers never take it: they
only add parts with new names.

Taking it: write our contents to a temporary file, then hard-link it to the lock's name. link(2)
fails if the name exists (on NFS too, unlike O_EXCL on old clients), and the lock is never seen
half-written.

Taking over a dead owner's lock must not let two takers both win. A plain "delete, then create"
does: the second taker deletes the lock the first has just made. So a taker first claims the dead
lock by creating (link again, so exclusive) a claim file named after the dead lock's contents,
`._compact.lock.<digest>.takeover-0`. Only the winner of that name may replace the lock, and only
after reading it again and finding it still the same dead lock (the lock changes only by its owner
releasing it, which a dead owner does not, or by a taker holding the claim). It replaces it with
rename(2), which is atomic, then deletes the claim. A taker that finds the claim held by a live
process gives up (that one is taking over); one that finds the claim's owner dead too (killed inside
this tiny window) tries `takeover-1`, and so on, so a dead claimer blocks nobody. A claim left by
a dead taker whose lock was meanwhile replaced is harmless: it names contents no lock has any more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logbook.store import owner

LOCK_NAME = "_compact.lock"
HEARTBEAT_S = 15.0  # the holder touches its lock this often
STALE_AFTER_S = 8 * HEARTBEAT_S  # a lock of another host's process untouched this long is dead
_CLAIMS = 16


@dataclass
class LockState:
    """A lock as found on disk."""

    path: Path
    doc: dict[str, Any]
    digest: str  # identifies these contents: a new lock always has new ones
    age_s: float

    @property
    def alive(self) -> bool:
        return owner.is_alive(self.doc, self.age_s, STALE_AFTER_S)

    def describe(self) -> str:
        host, pid = self.doc.get("host", "?"), self.doc.get("pid", "?")
        return f"pid {pid} on {host}, last touched {self.age_s:.0f} s ago"


def read(path: Path) -> LockState | None:
    """The lock (or claim) at `path`, or None if there is none."""
    try:
        raw = path.read_bytes()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            doc = {}
    except ValueError:  # only from outside: we publish whole files; judged by age alone
        doc = {}
    return LockState(path, doc, hashlib.sha256(raw).hexdigest()[:16], max(0.0, age))


@dataclass
class Held:
    """A lock we hold; a thread touches it as a heartbeat until `release`."""

    path: Path
    digest: str
    took_over: LockState | None = None  # the dead owner's lock we replaced, if any
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread(target=self._beat, name="logbook-lock-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def still_ours(self) -> bool:
        state = read(self.path)
        return state is not None and state.digest == self.digest

    def release(self) -> None:
        self._stop.set()
        if self.still_ours():  # never delete a lock someone took over from us (another host)
            self.path.unlink(missing_ok=True)


def take(directory: Path) -> Held | None:
    """Take the lock of `directory`, taking over one whose owner is dead; None if a live
    process holds it (or is taking it over right now)."""
    lock = directory / LOCK_NAME
    doc = {"lock": 1, "token": uuid.uuid4().hex, "since": time.time(), **owner.me()}
    raw = json.dumps(doc).encode()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    tmp = directory / f".{LOCK_NAME}.{doc['token']}.tmp"
    _write(tmp, raw)
    try:
        for _ in range(8):
            if _publish(tmp, lock):
                _sweep(directory)
                return Held(lock, digest)
            state = read(lock)
            if state is None:
                continue  # released a moment ago
            if state.alive:
                return None
            claim = _claim(directory, state.digest)
            if claim is None:
                return None  # a live process is taking it over
            try:
                again = read(lock)
                if again is not None and again.digest == state.digest:
                    os.replace(tmp, lock)
                    _fsync_dir(directory)
                    _sweep(directory)
                    return Held(lock, digest, took_over=state)
            finally:
                claim.unlink(missing_ok=True)
        return None
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def held(directory: Path) -> Iterator[Held | None]:
    """`take` as a context manager that releases what it took."""
    h = take(directory)
    try:
        yield h
    finally:
        if h is not None:
            h.release()


def _claim(directory: Path, digest: str) -> Path | None:
    """Win the right to replace the dead lock with contents `digest`; None if a live one has it."""
    raw = json.dumps({"claim": digest, **owner.me()}).encode()
    tmp = directory / f".{LOCK_NAME}.{uuid.uuid4().hex}.tmp"
    _write(tmp, raw)
    try:
        for k in range(_CLAIMS):
            name = directory / f".{LOCK_NAME}.{digest}.takeover-{k}"
            if _publish(tmp, name):
                return name
            state = read(name)
            if state is None or state.alive:
                return None  # the other taker is done, or at work: either way not ours to do
        return None
    finally:
        tmp.unlink(missing_ok=True)


def _sweep(directory: Path) -> None:
    """With the lock held: delete what dead takers left. A claim names a lock that is no more
    (ours is new), so its taker, if alive, will find the lock changed and give up."""
    prefix = f".{LOCK_NAME}."
    for entry in os.scandir(directory):
        if not entry.name.startswith(prefix):
            continue
        path = Path(entry.path)
        if ".takeover-" in entry.name:
            path.unlink(missing_ok=True)
        elif entry.name.endswith(".tmp"):
            state = read(path)
            if state is not None and not state.alive:
                path.unlink(missing_ok=True)


def _publish(tmp: Path, name: Path) -> bool:
    """Give the whole file `tmp` the name `name` unless that exists."""
    try:
        os.link(tmp, name)
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: exclusive create (briefly empty)
        try:
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, tmp.read_bytes())
            os.fsync(fd)
        finally:
            os.close(fd)
    return True


def _write(path: Path, raw: bytes) -> None:
    with open(path, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    from logbook.store import parts

    parts.fsync_dir(directory)


# --- readers and deleters -----------------------------------------------------------------------
#
# A read lists parts, then opens them; a compaction that deletes a listed part between the two
# makes the read start again, and a long read (a chronicle) against compactions that follow each
# other closely would never finish. So reads hold a shared flock(2) on the store's marker file
# (opened read-only: a read writes nothing), and whoever deletes merged parts takes it exclusively
# for the few milliseconds of the deletion. A compaction that cannot get it within READERS_WAIT_S
# leaves its inputs to the next one: readers see its output only (the manifest says so).

READERS_WAIT_S = 10.0  # how long a deleter waits for the reads to end
# How long a read waits for a deletion to end (milliseconds, unless its deleter is stopped or hung:
# then the read goes on without the lock, and retries if a part vanishes).
READER_WAIT_S = 2.0


@contextlib.contextmanager
def reading(marker: Path) -> Iterator[None]:
    """Hold the readers' shared lock on the store's `marker` file, if it has one."""
    import fcntl

    try:
        fd = os.open(marker, os.O_RDONLY)
    except OSError:  # an old store without its marker: nothing deletes under the lock then
        yield
        return
    try:
        _flock(fd, fcntl.LOCK_SH, READER_WAIT_S)  # without it, the read's retries cover the rest
        yield
    finally:
        os.close(fd)


def _flock(fd: int, how: int, wait_s: float) -> bool:
    """flock(2) `how` within `wait_s`, whether got (True where the file system has no flock)."""
    import fcntl

    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        except OSError:
            return True


@contextlib.contextmanager
def deleting(marker: Path, wait_s: float = READERS_WAIT_S) -> Iterator[bool]:
    """The readers' lock, exclusively, for deleting parts a read may have listed: yields whether
    it was got within `wait_s` (True too where the file system has no flock or no marker)."""
    import fcntl

    try:
        fd = os.open(marker, os.O_RDONLY)
    except OSError:
        yield True
        return
    try:
        got = _flock(fd, fcntl.LOCK_EX, wait_s)
        yield got
    finally:
        os.close(fd)
