"""Stores on object storage (`s3://bucket/prefix`, #18): the same layout as a local store.

A remote store is never written or read in place. Writers keep a local **spool**, an ordinary
store folder (`spool_dir`), and upload what they seal (`push`, `uploader.Uploader`); readers
mirror the remote's table folders into a local **cache** (`mirror`) and read that with the code
that reads every local store. Parts are immutable and uniquely named, so an upload repeated
after a fault, or a part downloaded once, is never wrong.

The client is pyarrow's filesystems (already a dependency): its S3 support is the AWS C++ SDK,
which takes the usual credentials and settings (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_PROFILE and ~/.aws, AWS_REGION, AWS_ENDPOINT_URL(_S3), instance roles);
`gs://` goes to its GcsFileSystem and `az://container/prefix` to its AzureFileSystem, each
configured from its own cloud's variables (`cloud_clients`). All three are tested against real
servers (moto, gcp-storage-emulator, Azurite). See benchmarks/s3_client_bench.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.errors import ConfigError, LogbookError, StoreCorrupt
from logbook.store import cloud_clients, layout

if TYPE_CHECKING:
    from pyarrow import fs as pafs

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")
SCHEMES = ("s3", "gs", "az")
SPOOL_MARK = "_spool.json"  # in a spool: the URL it is uploaded to
PUSHED_DIR = "_pushed"  # in any store pushed somewhere: what went where, one ledger per URL
# Top-level names never uploaded: our own ledgers, the parts doctor set aside. (The raw logs are
# uploaded, but only when a push includes them: see `push`. Journals go up as they change, so
# readers elsewhere see a live wrapper's rows, and a dead one's attempts closed as lost.)
_LOCAL_ONLY = {PUSHED_DIR, SPOOL_MARK, layout.QUARANTINE_DIR}
# A reader's cache holds the tables (and their compaction manifests) and journals, not the logs.
_NOT_MIRRORED = {PUSHED_DIR, SPOOL_MARK, layout.QUARANTINE_DIR, layout.LOGS_DIR}
CONNECT_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 20.0


class StoreUnreachable(LogbookError):
    """A remote store that did not answer, or refused us."""


def is_url(text: object) -> bool:
    """Whether a --store value names a remote store (`scheme://...`) rather than a folder."""
    return isinstance(text, str) and _URL.match(text) is not None


def check_url(url: str) -> str:
    """`url` without trailing slashes, if logbook can use it.

    Raises:
        ConfigError: an unknown scheme, or no bucket.
    """
    m = _URL.match(url)
    if m is None:
        raise ConfigError(f"{url!r} is not a URL")
    scheme, rest = m.group(1).lower(), m.group(2).strip("/")
    if scheme == "file":
        raise ConfigError(f"{url}: give a local store as a folder, not a file:// URL")
    if scheme not in SCHEMES:
        raise ConfigError(
            f"{url}: logbook cannot store to {scheme}:// URLs",
            hint="use s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or a folder",
        )
    if not rest or rest.startswith("/"):
        raise ConfigError(f"{url}: no bucket named", hint=f"write {scheme}://bucket/prefix")
    return f"{scheme}://{rest}"


def _cache_home() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "logbook"


def _key(url: str) -> str:
    tail = re.sub(r"[^A-Za-z0-9._-]+", "-", url.split("://", 1)[1])[-40:]
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{tail}"


def spool_dir(url: str) -> Path:
    """Where a writer on this host keeps its store for `url`: LOGBOOK_SPOOL (a folder holding one
    spool per URL) or ~/.cache/logbook/spool/."""
    base = os.environ.get("LOGBOOK_SPOOL")
    root = Path(base).expanduser() if base else _cache_home() / "spool"
    return (root / _key(url)).absolute()


def cache_dir(url: str) -> Path:
    """Where readers on this host mirror `url`: LOGBOOK_CACHE or ~/.cache/logbook/remote/."""
    base = os.environ.get("LOGBOOK_CACHE")
    root = Path(base).expanduser() if base else _cache_home() / "remote"
    return (root / _key(url)).absolute()


def spool_url(root: Path) -> str | None:
    """The URL a spool uploads to, or None if `root` is not a spool."""
    try:
        return str(json.loads((Path(root) / SPOOL_MARK).read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def make_spool(url: str) -> Path:
    """The spool of `url`, made if needed and marked with its URL."""
    root = spool_dir(url)
    root.mkdir(parents=True, exist_ok=True)
    mark = root / SPOOL_MARK
    if not mark.exists():
        tmp = root / f".{SPOOL_MARK}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"url": url}) + "\n")
        os.replace(tmp, mark)
    return root


@dataclass
class Listed:
    size: int
    mtime_ns: int


@dataclass
class Remote:
    """One remote store: a filesystem and the path of the store's root on it. Every request is
    counted in `requests` (by kind: list, get, put, delete)."""

    url: str
    retries: int = 3
    requests: dict[str, int] = field(default_factory=dict)
    _fs: Any = None
    _base: str = ""

    def __post_init__(self) -> None:
        self.url = check_url(self.url)

    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            self._fs, self._base = _filesystem(self.url, self.retries)
        return self._fs

    def _path(self, rel: str) -> str:
        self.fs  # noqa: B018 (sets _base)
        return f"{self._base}/{rel}" if rel else self._base

    def _count(self, kind: str) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + 1

    def list(self, under: str = "") -> dict[str, Listed]:
        """Every file under the store's root (or its folder `under`), by path relative to it.

        Raises:
            StoreUnreachable: the listing failed.
        """
        from pyarrow import fs as pafs

        self._count("list")
        try:
            selector = pafs.FileSelector(self._path(under), recursive=True, allow_not_found=True)
            infos = self.fs.get_file_info(selector)
        except Exception as e:
            raise self.unreachable(e) from e
        out = {}
        prefix = self._base + "/"
        for info in infos:
            if info.type != pafs.FileType.File or not info.path.startswith(prefix):
                continue
            mtime = info.mtime_ns if info.mtime_ns is not None else 0
            out[info.path[len(prefix) :]] = Listed(int(info.size or 0), int(mtime))
        return out

    def get(self, rel: str, dest: Path) -> None:
        """Download one file to `dest`, whole or not at all."""
        self._count("get")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with self.fs.open_input_stream(self._path(rel)) as src, open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put(self, src: Path, rel: str) -> None:
        """Upload one file (an object store makes it appear whole, or not at all)."""
        self._count("put")
        with open(src, "rb") as f, self.fs.open_output_stream(self._path(rel)) as out:
            while chunk := f.read(1 << 20):
                out.write(chunk)

    def read(self, rel: str) -> bytes:
        """One small file's bytes (a compaction manifest)."""
        self._count("get")
        with self.fs.open_input_stream(self._path(rel)) as src:
            return bytes(src.read())

    def put_bytes(self, body: bytes, rel: str) -> None:
        """Upload `body` as the file `rel`."""
        self._count("put")
        with self.fs.open_output_stream(self._path(rel)) as out:
            out.write(body)

    def delete(self, rel: str) -> None:
        self._count("delete")
        try:
            self.fs.delete_file(self._path(rel))
        except FileNotFoundError:
            pass

    def unreachable(self, error: BaseException) -> StoreUnreachable:
        if isinstance(error, LogbookError):  # our own words (no account named, say): as they are
            return StoreUnreachable(f"the store {self.url}: {error.message}", hint=error.hint)
        scheme = self.url.split("://", 1)[0]
        return StoreUnreachable(
            f"cannot reach the store {self.url}: {describe(error)}",
            hint=f"check the network, {cloud_clients.SETTINGS.get(scheme, 'the endpoint')}",
        )


def describe(error: BaseException) -> str:
    """One short line for an error of the object store's client."""
    text = " ".join(str(error).split())
    for marker in ("AWS Error ", "Details: "):
        if marker in text:
            text = text[text.index(marker) :]
            break
    return text[:240] or type(error).__name__


def _filesystem(url: str, retries: int) -> tuple[pafs.FileSystem, str]:
    from pyarrow import fs as pafs

    scheme, rest = url.split("://", 1)
    if scheme == "s3":
        options: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "request_timeout": REQUEST_TIMEOUT_S,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=retries),
            # A part smaller than a multipart chunk goes up in one PutObject, not three requests
            # (create, upload, complete): measured with moto's request recorder.
            "allow_delayed_open": True,
        }
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            options["region"] = region
        # The SDK's own variables for another endpoint (MinIO, a local server, a gateway).
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            scheme, _, host = endpoint.rpartition("://")
            options["endpoint_override"] = host.rstrip("/")
            options["scheme"] = scheme or "https"
        try:
            return pafs.S3FileSystem(**options), rest
        except TypeError:  # a pyarrow before allow_delayed_open
            options.pop("allow_delayed_open")
            return pafs.S3FileSystem(**options), rest
    if scheme == "gs":
        return cloud_clients.gcs(REQUEST_TIMEOUT_S), rest
    return cloud_clients.azure(), rest  # az://container/prefix


# reading ---------------------------------------------------------------------------------------


def mirror(
    url: str,
    *,
    remote: Remote | None = None,
    workers: int = 8,
    under: Iterable[str] = ("",),
    into: Path | None = None,
) -> Path:
    """Bring this host's cache of `url` up to date and return it: one listing, then a download
    of each file the cache does not hold as listed (parts are immutable: each is fetched once),
    and the removal of cached files the store no longer has (merged by a compaction).

    Args:
        under: only these folders of the store (one listing each).
        into: another folder than the cache.

    Raises:
        StoreUnreachable: the store did not answer.
        StoreCorrupt: nothing is stored under `url`.
    """
    remote = remote or Remote(url, retries=2)
    folders = list(under)
    listed = {
        rel: info
        for folder in folders
        for rel, info in remote.list(folder).items()
        if _mirrored(rel) and not _hidden(rel) and not rel.endswith("/" + _LOCK_NAME)
    }
    if not listed and folders == [""]:
        raise StoreCorrupt(
            f"no logbook store at {remote.url}",
            hint='record a run with "logbook run --store URL -- CMD", or upload a local store '
            'with "logbook push --to URL"',
        )
    cache = into or cache_dir(remote.url)
    cache.mkdir(parents=True, exist_ok=True)

    def fetch(rel: str) -> None:
        dest = cache / rel
        remote.get(rel, dest)
        mtime = listed[rel].mtime_ns
        if mtime:
            os.utime(dest, ns=(mtime, mtime))

    try:
        # The compaction manifests first (few and small): the parts a listed merged part replaced
        # are neither fetched nor kept, as a compaction left them for its next run to delete.
        for rel in [r for r in listed if _is_manifest(r) and not _same(cache / r, listed[r])]:
            fetch(rel)
        for rel in replaced_in(listed, lambda r: (cache / r).read_bytes()):
            listed.pop(rel, None)
        wanted = [rel for rel, info in listed.items() if not _same(cache / rel, info)]
        if len(wanted) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(workers, len(wanted))) as pool:
                list(pool.map(fetch, wanted))
        else:
            for rel in wanted:
                fetch(rel)
    except LogbookError:
        raise
    except Exception as e:
        raise remote.unreachable(e) from e
    for folder in folders:
        for path in _files(cache / folder):
            rel = path.relative_to(cache).as_posix()
            if rel not in listed and not _hidden(rel) and _mirrored(rel):
                path.unlink(missing_ok=True)
    return cache


MANIFEST_PREFIX = "_compact-"  # as store/compact.py names them (imported there: pyarrow-free here)


def _is_manifest(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.startswith(MANIFEST_PREFIX) and name.endswith(".json")


def manifests_in(listed: Iterable[str], read: Callable[[str], bytes]) -> dict[str, dict[str, Any]]:
    """The compaction manifests among the listed paths, by path, read with `read` (a download or
    a cached copy); one that cannot be read or parsed is left out."""
    out = {}
    for rel in listed:
        if not _is_manifest(rel):
            continue
        try:
            doc = json.loads(read(rel))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("inputs"), list):
            out[rel] = doc
    return out


def replaced_in(
    listed: Iterable[str], read: Callable[[str], bytes], *, any_manifest: bool = False
) -> set[str]:
    """Paths of the parts that a compaction merged into a part that is listed: a reader skips
    them. With `any_manifest`, the parts named by any listed manifest, its merged part listed or
    not: a writer never uploads them again (#18)."""
    names = set(listed)
    out: set[str] = set()
    for rel, doc in manifests_in(names, read).items():
        folder = rel.rsplit("/", 1)[0]
        if any_manifest or f"{folder}/{doc.get('output')}" in names:
            out.update(f"{folder}/{name}" for name in doc["inputs"] if isinstance(name, str))
    return out


def catch_up(url: str, spool: Path, run: str, *, timeout_s: float = 1.0) -> Path | None:
    """What other hosts (or this one before its spool was cleared) recorded of `run`: its
    attempts into the cache, whose folder is returned, and its label claims into the spool (so a
    new attempt continues the lineage and takes a free label). Waits at most `timeout_s`; None if
    the store did not answer by then (the writer goes on with what its spool knows).
    """
    done: list[Path] = []

    def pull() -> None:
        try:
            done.append(_catch_up(url, spool, run))
        except Exception:  # the uploads say what is wrong, once
            pass

    worker = threading.Thread(target=pull, name="logbook-catch-up", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return done[0] if done else None


def _catch_up(url: str, spool: Path, run: str) -> Path:
    up = Remote(url, retries=1)
    labels = f"{layout.LABELS_DIR}/run={layout.check_run_name(run)}"
    ledger = Ledger(spool, url)
    for rel in up.list(labels):
        dest = spool / rel
        if not dest.exists() and not _hidden(rel):
            up.get(rel, dest)
            st = dest.stat()
            ledger.note(rel, st.st_size, st.st_mtime_ns)  # it is there: never sent back
    return mirror(url, remote=up, under=[f"attempts/run={run}"])


def claim(root: Path, rel: str) -> bool:
    """Claim in the remote store the file `rel` just created (exclusively) in the spool `root`: a
    label's claim, which the exclusive create makes unique on this host only. False if another
    host holds it; True if this one does, or if the store cannot tell (no answer: the wrapper goes
    on as the local claim says; the training comes first). Either way the file is noted as sent:
    the uploads never put this host's claim over another's.
    """
    from logbook.store.put_if_absent import put_if_absent

    url = spool_url(root)
    if url is None:
        return True
    path = Path(root) / rel
    try:
        won = put_if_absent(url, rel, path.read_bytes())
        if won is not None:
            st = path.stat()
            Ledger(root, url).note(rel, st.st_size, st.st_mtime_ns)
    except OSError:  # the spool itself failing: the local claim stands
        return True
    return won is not False


def _same(path: Path, info: Listed) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_size != info.size:
        return False
    # Parts never change; the few files that do (compaction manifests, the marker) by their time.
    return path.name.endswith(layout.PART_SUFFIX) or st.st_mtime_ns == info.mtime_ns


def _mirrored(rel: str) -> bool:
    return rel.split("/", 1)[0] not in _NOT_MIRRORED


def _hidden(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.startswith(".") or name.endswith(".tmp")


def _files(root: Path) -> Iterable[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            yield Path(dirpath) / name


# writing ---------------------------------------------------------------------------------------


@dataclass
class PushResult:
    uploaded: int = 0
    deleted: int = 0
    pending: list[str] = field(default_factory=list)  # what is still to upload
    error: str | None = None  # why it stopped short

    @property
    def done(self) -> bool:
        return not self.pending and self.error is None


class Ledger:
    """What of a local store went to one URL, by relative path: (size, mtime_ns) as uploaded.
    An append-only file in `<store>/_pushed/`, so several pushers on one host may share it."""

    def __init__(self, root: Path, url: str) -> None:
        self.path = Path(root) / PUSHED_DIR / f"{_key(url)}.jsonl"
        self.sent: dict[str, tuple[int, int]] = {}
        # Sent, but not known to have arrived: a PUT whose answer never came may have been
        # taken. Such a file deleted here is deleted there too (`pending`'s `gone`), or a
        # journal folded here, or a part merged here, stayed in the store for good.
        self.tried: set[str] = set()
        self._lock = threading.Lock()
        self._read = 0  # bytes of the file read so far: a reload reads only what was added
        self._lines = 0
        self.reload()

    def reload(self) -> None:
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self._read:  # rewritten by `tidy`
                    self.sent, self.tried, self._read, self._lines = {}, set(), 0, 0
                f.seek(self._read)
                data = f.read()
        except OSError:
            return
        whole = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
        self._read += len(whole)
        for line in whole.splitlines():
            self._lines += 1
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if doc.get("tried"):
                self.tried.add(doc["path"])
                continue
            self.tried.discard(doc["path"])
            if doc.get("deleted") or doc.get("pruned"):
                self.sent.pop(doc["path"], None)
            else:
                self.sent[doc["path"]] = (int(doc["size"]), int(doc["mtime_ns"]))

    def note(
        self,
        rel: str,
        size: int = 0,
        mtime_ns: int = 0,
        *,
        deleted: bool = False,
        pruned: bool = False,
        tried: bool = False,
    ) -> None:
        """Say `rel` went up as (size, mtime_ns); or was `deleted` there; or, `pruned`, removed
        here only, once it was up (store/prune.py): it stays there; or, `tried`, is being sent
        (said before the PUT: see `tried`)."""
        doc: dict[str, Any] = {"path": rel}
        if tried:
            if rel in self.tried:
                return
            self.tried.add(rel)
            self._append({**doc, "tried": True})
            return
        self.tried.discard(rel)
        if pruned:
            with self._lock:  # first the guard, which `tidy` never rewrites (see `pruned`)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self._pruned_path, "a") as f:
                    f.write(json.dumps(rel) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
        if deleted or pruned:
            doc["deleted" if deleted else "pruned"] = True
            self.sent.pop(rel, None)
        else:
            doc.update(size=size, mtime_ns=mtime_ns)
            self.sent[rel] = (size, mtime_ns)
        self._append(doc)

    def _append(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(doc) + "\n")
            self._lines += 1

    @property
    def _pruned_path(self) -> Path:
        return self.path.with_name(self.path.name.replace(".jsonl", ".pruned.jsonl"))

    def pruned(self) -> set[str]:
        """Every file pruned from this store once it was up: never to be deleted there. Kept
        apart from the ledger, whose lines a pusher with an older view could rewrite (`tidy`) or
        act on (a part gone here that its `sent` still names reads as replaced)."""
        try:
            with open(self._pruned_path, "rb") as f:
                data = f.read()
        except OSError:
            return set()
        out = set()
        for line in data.splitlines():
            try:
                out.add(str(json.loads(line)))
            except ValueError:
                continue
        return out

    def tidy(self) -> None:
        """Rewrite the file with one line per file once it is mostly old lines (a journal goes up
        at each heartbeat). A line another pusher appends meanwhile may be lost: its file then
        goes up once more, which is harmless (the same bytes under the same name)."""
        if self._lines < 1000 or self._lines < 4 * (len(self.sent) + len(self.tried)):
            return
        with self._lock:
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            lines = [
                *(json.dumps({"path": rel, "tried": True}) for rel in sorted(self.tried)),
                *(
                    json.dumps({"path": rel, "size": size, "mtime_ns": mtime})
                    for rel, (size, mtime) in sorted(self.sent.items())
                ),
            ]
            tmp.write_text("".join(f"{line}\n" for line in lines))
            os.replace(tmp, self.path)
            self._read, self._lines = self.path.stat().st_size, len(lines)


def pending(
    root: Path,
    ledger: Ledger,
    *,
    logs: bool = True,
    listed: dict[str, Listed] | None = None,
    remote: Remote | None = None,
) -> tuple[list[str], list[str]]:
    """What of the store at `root` is not yet at the ledger's URL as it is here, and what the
    ledger says was uploaded but is gone here (replaced by a compaction or a reparse).

    Args:
        listed: the remote's listing, to trust it over the ledger: a file the ledger names but
            the store lacks (a bucket emptied, a server that lost its state) goes up again, and a
            part already there (pushed from elsewhere) does not.
        remote: with `listed`, where to read the compaction manifests of the folders in which a
            part here is not listed: a part a remote compaction merged is never uploaded again
            (it would count twice beside the merged part). Raises StoreUnreachable.
    """
    here: dict[str, os.stat_result] = {}
    root = Path(root)
    for path in _files(root):
        rel = path.relative_to(root).as_posix()
        top = rel.split("/", 1)[0]
        if top in _LOCAL_ONLY or _hidden(rel) or rel.endswith("/" + _LOCK_NAME):
            continue
        if top == layout.LOGS_DIR and not logs:
            continue
        try:
            here[rel] = path.stat()
        except OSError:
            continue

    def there(rel: str, st: os.stat_result) -> bool:
        ours = ledger.sent.get(rel) == (st.st_size, st.st_mtime_ns)
        if listed is None:
            return ours
        info = listed.get(rel)
        if info is None:
            return False
        if rel.startswith(layout.LABELS_DIR + "/"):  # a claim, ours or the host's that won it
            return True
        if info.size != st.st_size:
            return False
        return ours or rel.endswith(layout.PART_SUFFIX)  # parts never change

    todo = sorted((rel for rel, st in here.items() if not there(rel, st)), key=_upload_order)
    if listed is not None and remote is not None:
        todo = _not_replaced(todo, listed, remote)
    gone = sorted(
        rel
        for rel in set(ledger.sent) | ledger.tried
        if rel not in here
        and (rel.endswith(layout.PART_SUFFIX) or _is_journal(rel))
        and not (root / rel).exists()
        and (logs or not rel.startswith(layout.LOGS_DIR + "/"))
    )
    if gone:  # pruned here, not replaced: they stay there
        kept = ledger.pruned()
        gone = [rel for rel in gone if rel not in kept]
    return todo, gone


_LOCK_NAME = "_compact.lock"


def _not_replaced(todo: list[str], listed: dict[str, Listed], remote: Remote) -> list[str]:
    """`todo` less the parts named by a compaction manifest of the store (#18); the manifests
    are read only in the folders where a part to upload is not listed."""
    folders = {
        rel.rsplit("/", 1)[0]
        for rel in todo
        if rel.endswith(layout.PART_SUFFIX) and rel not in listed and "/" in rel
    }
    if not folders:
        return todo
    near = [rel for rel in listed if _is_manifest(rel) and rel.rsplit("/", 1)[0] in folders]
    try:
        gone = replaced_in(near, remote.read, any_manifest=True)
    except Exception as e:
        raise remote.unreachable(e) from e
    return [rel for rel in todo if rel not in gone]


def _is_journal(rel: str) -> bool:
    return rel.startswith(layout.JOURNAL_DIR + "/") and rel.endswith(".jsonl")


def _upload_order(rel: str) -> tuple[int, str]:
    """The store's marker first; then compaction manifests and journals before the parts, as on
    a local disk: a reader that sees a merged part sees what it replaces named, and one that sees
    a journal's start parts sees the journal's line that says they hold its first rows."""
    name = rel.rsplit("/", 1)[-1]
    if rel == layout.MARKER:
        return (0, rel)
    if name.startswith("_compact-") or _is_journal(rel):
        return (1, rel)
    return (2, rel)


def push(
    root: Path,
    remote: Remote,
    *,
    logs: bool = True,
    ledger: Ledger | None = None,
    stop: Callable[[], bool] | None = None,
    check: bool = False,
) -> PushResult:
    """Upload what of the local store at `root` the remote lacks, then delete there the parts
    deleted here since they went up. Idempotent: a file goes up again only if it changed.

    Args:
        logs: include the raw logs (a wrapper uploads them when an attempt ends: they grow).
        stop: asked between files; True stops the push (what is left is in `pending`).
        check: list the remote first and trust that over the ledger (one request per thousand
            files; `logbook push` and `doctor` do, the wrapper's uploader trusts its ledger).

    Never raises for the network: the first failure stops the push and is in `error`.
    """
    ledger = ledger or Ledger(root, remote.url)
    ledger.reload()
    listed = None
    if check:
        try:
            listed = remote.list()
        except StoreUnreachable as e:
            todo, _ = pending(root, ledger, logs=logs)
            return PushResult(pending=todo, error=e.message.split(": ", 1)[-1])
    try:
        todo, gone = pending(root, ledger, logs=logs, listed=listed, remote=remote)
    except StoreUnreachable as e:
        todo, _ = pending(root, ledger, logs=logs)
        return PushResult(pending=todo, error=e.message.split(": ", 1)[-1])
    result = PushResult(pending=list(todo))
    for rel in todo:
        if stop is not None and stop():
            return result
        path = Path(root) / rel
        try:
            st = path.stat()
            if rel.endswith(layout.PART_SUFFIX) or _is_journal(rel):  # what `gone` may delete
                ledger.note(rel, tried=True)
            remote.put(path, rel)
        except FileNotFoundError:  # compacted away meanwhile
            result.pending.remove(rel)
            continue
        except Exception as e:
            result.error = describe(e)
            return result
        ledger.note(rel, st.st_size, st.st_mtime_ns)
        result.pending.remove(rel)
        result.uploaded += 1
    for rel in gone:
        if listed is not None and rel not in listed:
            ledger.note(rel, deleted=True)
            continue
        try:
            remote.delete(rel)
        except Exception as e:
            result.error = describe(e)
            result.pending.append(f"delete {rel}")
            return result
        ledger.note(rel, deleted=True)
        result.deleted += 1
    ledger.tidy()
    return result
