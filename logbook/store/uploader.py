"""The wrapper's uploads to a remote store: a thread beside the training, never in its way (#18).

`logbook run --store s3://...` records into the spool (a local store, `remote.spool_dir`) exactly
as into any local store; this thread pushes what is sealed there: at once when the wrapper writes
a part (`nudge`), else every TICK_S. A failure is retried with a doubling pause (at most
BACKOFF_MAX_S) and warned about once; when the store answers again, a line says so. At the end
(`finish`) one last push, the raw logs included, gets at most a bounded time; what it could not
send stays in the spool, named in a warning, for the next `logbook run`, `logbook push` or
`logbook doctor`. When all went up, the bulk of it is pruned from the spool (store/prune.py).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from logbook.store import remote as remotes

TICK_S = 15.0
BACKOFF_S = 2.0
BACKOFF_MAX_S = 60.0
FINISH_S = 2.0  # the longest the training's exit waits for the last uploads


class Uploader:
    def __init__(
        self,
        spool: Path,
        url: str,
        *,
        say: Callable[[str], None] | None = None,
        tick_s: float = TICK_S,
    ) -> None:
        self.spool = Path(spool)
        self.url = url
        self.say = say or _stderr
        self.tick_s = tick_s
        self.remote = remotes.Remote(url, retries=2)
        self.failing: str | None = None  # the error of the last try, while the store fails
        self.last: remotes.PushResult | None = None
        self.pruned = 0  # parts pruned from the spool once all went up
        self._wake = threading.Event()
        self._stopping = False
        self._final = threading.Event()  # the last push is over
        self._thread: threading.Thread | None = None
        self._ledger: remotes.Ledger | None = None

    def start(self) -> Uploader:
        self._thread = threading.Thread(target=self._loop, name="logbook-upload", daemon=True)
        self._thread.start()
        return self

    def nudge(self) -> None:
        """Something was sealed: push it soon (called by the writer, never blocks)."""
        self._wake.set()

    def finish(self, budget_s: float = FINISH_S) -> remotes.PushResult | None:
        """Push what is left, logs included, waiting at most `budget_s`; warn about what stays."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._final.wait(budget_s)
        result = self.last if self._final.is_set() else None
        if result is None or not result.done:
            left = remotes.pending(self.spool, self._get_ledger())[0]
            why = (result.error if result else None) or self.failing or "no time left"
            if left:
                self.say(
                    f"logbook: warning: {len(left)} file(s) of this run are not yet in "
                    f"{self.url} ({why}); they wait in the spool {self.spool} and go up with the "
                    f'next "logbook run", "logbook push --store {self.spool} --to {self.url}" '
                    f'or "logbook doctor --store {self.url}"'
                )
        return result

    def _get_ledger(self) -> remotes.Ledger:
        if self._ledger is None:
            self._ledger = remotes.Ledger(self.spool, self.url)
        return self._ledger

    def _loop(self) -> None:
        pause = 0.0
        try:
            while not self._stopping:
                self._wake.wait(pause or self.tick_s)
                self._wake.clear()
                if self._stopping:
                    break
                ok = self._push(logs=False)
                pause = 0.0 if ok else min(BACKOFF_MAX_S, max(BACKOFF_S, pause * 2))
            if self._push(logs=True, final=True):
                self._prune()
        except Exception as e:  # never the training's business
            self.failing = remotes.describe(e)
        finally:
            self._final.set()

    def _prune(self) -> None:
        """All went up: the bulk of it leaves the spool (store/prune.py)."""
        from logbook.store.prune import prune

        try:
            self.pruned = prune(self.spool, self._get_ledger())
        except Exception as e:  # a spool kept whole is no fault
            self.say(f"logbook: warning: could not prune the spool {self.spool}: {e}")

    def _push(self, *, logs: bool, final: bool = False) -> bool:
        try:
            result = remotes.push(
                self.spool,
                self.remote,
                logs=logs,
                ledger=self._get_ledger(),
                stop=None if final else (lambda: self._stopping),
            )
        except Exception as e:  # a bug or a full disk: warn once, keep the spool
            result = remotes.PushResult(error=remotes.describe(e))
        self.last = result
        if result.error is not None:
            if self.failing is None and not final:
                self.say(
                    f"logbook: warning: cannot upload to {self.url}: {result.error}; the training "
                    f"goes on, {len(result.pending)} file(s) wait in the spool {self.spool} and "
                    "go up when the store answers"
                )
            self.failing = result.error
            return False
        if self.failing is not None and not final:
            self.say(f"logbook: the store {self.url} answers again; uploads resumed")
        self.failing = None
        return True


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


_current: Uploader | None = None
_lock = threading.Lock()


def set_current(uploader: Uploader | None) -> None:
    """The uploader of this process, nudged by `parts.write_part` (see `nudge`)."""
    global _current
    with _lock:
        _current = uploader


def current() -> Uploader | None:
    return _current


def nudge() -> None:
    """A part was written in this process: let its uploader (if any) push it now."""
    up = _current
    if up is not None:
        up.nudge()


def wait_s(start: float) -> float:
    return time.monotonic() - start
