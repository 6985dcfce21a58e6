"""Compacting a remote store (#18) against a real S3 server (moto's, on a free localhost port):
real `logbook run` wrappers as hosts, a compaction killed after its manifest, a second one
refused by the lease, and pushes after a compaction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import event, logbook_cmd
from s3server import S3Server, s3  # noqa: F401 (the fixture)

from logbook.store import Store, remote
from logbook.store.remote_compact import compact_remote

URL = "s3://logs/team/gpt"
PREFIX = "team/gpt/"

TRAIN = textwrap.dedent(
    """
    import sys
    for i in range(1, int(sys.argv[1]) + 1):
        print(f"step={i} loss={1.0 / i:.4f}", flush=True)
    """
)


def _cli(
    *args: str, code: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        logbook_cmd(*args), capture_output=True, text=True, timeout=120, env=env or os.environ
    )
    assert out.returncode == code, f"exit {out.returncode}: {out.stdout}\n{out.stderr}"
    assert "Traceback" not in out.stderr
    return out


def _counts(env: dict[str, str] | None = None) -> str:
    sql = (
        "select (select count(*) from metrics) || ' ' || (select count(*) from attempts) || ' ' "
        "|| (select count(*) from events) || ' ' || (select count(*) from attempt_changes)"
    )
    return _cli("query", sql, "--store", URL, "--format", "csv", env=env).stdout.splitlines()[1]


def _parts(s3: S3Server, folder: str = "") -> list[str]:  # noqa: F811
    return [
        k for k in s3.objects("logs", PREFIX + folder) if k.endswith(".parquet") and "/." not in k
    ]


def _events_spool(n: int, tmp_path: Path, name: str = "host") -> Path:
    """A spool (as a writer's host has) with `n` events parts of run `r`, all pushed."""
    root = tmp_path / name / remote._key(URL)
    root.mkdir(parents=True)
    (root / remote.SPOOL_MARK).write_text(f'{{"url": "{URL}"}}\n')
    store = Store.open(root, create=True)
    for i in range(n):
        store.write("events", "r", [event(i)])
    assert remote.push(root, remote.Remote(URL)).done
    return root


def test_hosts_parts_are_merged_and_every_row_counts_once(
    s3: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    train = tmp_path / "train.py"
    train.write_text(TRAIN)
    hosts, runs = 4, 3
    for _ in range(runs):  # each host its own spool, as on separate machines; one run each
        procs = [
            subprocess.Popen(
                [
                    *logbook_cmd("run", "--run", "gpt", "--store", URL, "--no-capture", "--"),
                    sys.executable,
                    str(train),
                    "50",
                ],
                env={
                    **os.environ,
                    "LOGBOOK_SPOOL": str(tmp_path / f"spool-{h}"),
                    "LOGBOOK_HOST": f"host-{h}",
                    "LOGBOOK_TEST_NO_FINISHER": "1",
                },
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for h in range(hosts)
        ]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            assert "wait in the spool" not in err, err
    before = _parts(s3)
    counts = _counts()
    assert counts.split()[:2] == [str(hosts * runs * 50), str(hosts * runs)]
    assert len(before) >= 40, len(before)

    done = _cli("compact", "--store", URL)
    assert "merged" in done.stdout and "Warning" not in done.stderr, done.stderr
    after = _parts(s3)
    folders = {k.rsplit("/", 1)[0] for k in after}
    assert len(after) == len(folders)  # one part per table and run
    assert len(after) <= 12, after
    assert _counts() == counts  # the same cache, its copies of the merged parts dropped
    cold = {**os.environ, "LOGBOOK_CACHE": str(tmp_path / "cold")}
    assert _counts(cold) == counts
    cached = [p for p in (tmp_path / "cache").rglob("*.parquet") if not p.name.startswith(".")]
    assert len(cached) == len(after)

    # nothing left to do; a writer's push and doctor after it send nothing back
    assert "merged 0 parts" in _cli("compact", "--store", URL).stdout
    for h in range(hosts):
        env = {**os.environ, "LOGBOOK_SPOOL": str(tmp_path / f"spool-{h}")}
        _cli("doctor", "--store", URL, env=env)
    assert sorted(_parts(s3)) == sorted(after)
    assert _counts() == counts


def test_a_push_after_compaction_never_uploads_a_replaced_part(
    s3: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    root = _events_spool(6, tmp_path)  # events parts stay in a spool (only the bulk is pruned)
    result = compact_remote(URL)
    assert (result.parts_before, result.parts_after, result.rows) == (6, 1, 6)
    assert len(_parts(s3, "events/")) == 1
    # the spool still holds the six; its ledger says they went up; the store no longer lists
    # them: a push that trusts the listing must not send them back
    up = remote.Remote(URL)
    assert remote.pending(root, remote.Ledger(root, URL), listed=up.list(), remote=up)[0] == []
    pushed = remote.push(root, up, check=True)
    assert pushed.done and pushed.uploaded == 0
    assert len(_parts(s3, "events/")) == 1
    # a second compaction merges the merged part again, carrying the names it replaced
    more = Store.open(root)
    more.write("events", "r", [event(100)])
    more.write("events", "r", [event(101)])
    assert remote.push(root, up).done
    again = compact_remote(URL)
    assert (again.parts_before, again.rows) == (3, 8)
    manifests = [k for k in s3.objects("logs", PREFIX + "events/") if "/_compact-" in k]
    assert len(manifests) == 1  # the first one's names carried into the second's
    assert remote.push(root, up, check=True).uploaded == 0
    assert _count_events() == 8


def _count_events(env: dict[str, str] | None = None) -> int:
    out = _cli("query", "select count(*) from events", "--store", URL, "--format", "csv", env=env)
    return int(out.stdout.splitlines()[1])


def _paused(point: str, lease_s: float = 600.0) -> subprocess.Popen[str]:
    """A compaction in its own process, stopped (SIGSTOP) at `point`."""
    code = (
        "from logbook.store.remote_compact import compact_remote; "
        f"compact_remote({URL!r}, lease_s={lease_s})"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOGBOOK_TEST_COMPACT_PAUSE": point},
    )
    assert child.stderr is not None
    line = child.stderr.readline()
    assert line.strip() == f"logbook-compact-paused {point}", line + child.stderr.read()
    return child


def _kill(child: subprocess.Popen[str]) -> None:
    child.kill()
    child.wait()
    child.stderr.close()  # type: ignore[union-attr]


def test_a_compaction_killed_after_its_manifest_counts_once_and_is_finished(
    s3: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    _events_spool(8, tmp_path)
    child = _paused("manifest", lease_s=1.0)
    _kill(child)  # after the manifest and the merged part, before any deletion
    listed = s3.objects("logs", PREFIX + "events/")
    assert len(_parts(s3, "events/")) == 9  # both sets listed
    assert sum("/_compact-" in k for k in listed) == 1
    assert any(k.endswith("/_compact.lock") for k in listed)  # its lease, left to expire
    assert _count_events() == 8  # readers follow the manifest: each row once
    assert _count_events({**os.environ, "LOGBOOK_CACHE": str(tmp_path / "cold")}) == 8
    time.sleep(1.2)  # the dead one's lease expires
    result = compact_remote(URL)
    assert any("took over the stale lease" in n for n in result.notes), result.notes
    assert any("interrupted after its manifest (8 replaced parts left)" in n for n in result.notes)
    assert len(_parts(s3, "events/")) == 1
    assert not any(k.endswith("/_compact.lock") for k in s3.objects("logs", PREFIX))
    assert _count_events() == 8


def test_a_compaction_killed_before_its_merged_part_is_undone(
    s3: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    _events_spool(4, tmp_path)
    child = _paused("merged-before", lease_s=1.0)
    _kill(child)
    assert len(_parts(s3, "events/")) == 4  # the manifest names a merged part never uploaded
    assert _count_events() == 4
    time.sleep(1.2)
    result = compact_remote(URL)
    assert any("before its merged part went up; undone" in n for n in result.notes), result.notes
    assert (result.parts_before, result.parts_after) == (4, 1)
    assert _count_events() == 4


def test_a_second_compaction_is_refused_by_the_lease(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    _events_spool(5, tmp_path)
    first = _paused("locked")  # holds the folder's lease
    try:
        second = compact_remote(URL)
        assert second.folders == 0
        assert len(second.skipped) == 1 and "holds the lease until" in second.skipped[0]
        out = _cli("compact", "--store", URL)
        assert "merged 0 parts" in out.stdout and "holds the lease" in out.stderr
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=60) == 0
    first.stderr.close()  # type: ignore[union-attr]
    assert len(_parts(s3, "events/")) == 1
    assert _count_events() == 5


def test_a_spool_never_merges_what_it_already_uploaded(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    from logbook.store.compact import compact

    root = _events_spool(4, tmp_path)
    store = Store.open(root)
    assert compact(store, recover=False).parts_before == 0  # the store's compaction merges them
    store.write("events", "r", [event(50)])
    store.write("events", "r", [event(51)])
    assert compact(store, recover=False).parts_before == 2  # not yet sent: merged here


@pytest.mark.parametrize("url", ["gs://logs/x", "az://logs/x"])
def test_other_clouds_are_not_compacted_and_say_why(url: str) -> None:
    out = _cli("compact", "--store", url, code=1)
    assert "logbook compacts only s3:// stores" in out.stderr


def test_a_store_that_does_not_answer_is_a_clear_error(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    _events_spool(2, tmp_path)
    s3.stop()
    out = _cli("compact", "--store", URL, code=1)
    assert "cannot reach the store s3://logs/team/gpt" in out.stderr
