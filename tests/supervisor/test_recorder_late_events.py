"""An event of a hook still running while the attempt ends is on record, whenever it comes: in the
journal's fold, or as a part of its own after it. (CI once lost a hook's event that came after
the heartbeat thread's last read of the queue and before the recorder knew it had ended.)"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from logbook.query import run_sql
from logbook.record.attempt import attempt_row
from logbook.store import Store
from logbook.supervisor.lineage import Placement
from logbook.supervisor.recorder import Recorder, _now


def test_events_sent_while_the_attempt_ends_are_all_on_record(store_path: Path) -> None:
    store = Store.open(store_path, create=True)
    sent = 0
    for k in range(8):  # the moment of the end falls somewhere else in each round
        rec = Recorder(store, "late", f"a{k}", warn_stream=io.StringIO())
        rec.started(
            attempt_row("late", f"a{k}", command=["train"], cwd=store_path, host="h",
                        placement=Placement(f"{k}.00", None, None), start=_now()),
            first_of_run=True,
        )  # fmt: skip
        go, done, count = threading.Event(), threading.Event(), [0]

        def hook(rec: Recorder = rec, go=go, done=done, count=count) -> None:  # type: ignore[no-untyped-def]
            go.set()
            while not done.is_set() or count[0] < 50:
                rec.event("hook", f"event {count[0]}", source="hook")
                count[0] += 1

        t = threading.Thread(target=hook)
        t.start()
        go.wait()
        rec.ended(status="completed", end_time=_now())
        done.set()
        t.join()
        sent += count[0]
    [got] = run_sql(store, "select count(*) as n from events where kind = 'hook'").to_pylist()
    assert got == {"n": sent}
