"""Remote stores (#18) against a real S3 server (moto's, on a free localhost port): real `logbook
run` children, real uploads and downloads, the server killed mid-run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cloudservers import Emulator, cloud  # noqa: F401 (the fixture)
from helpers import logbook_cmd
from s3server import S3Server, s3  # noqa: F401 (the fixture)

from logbook.store import remote

URL = "s3://logs/team/gpt"

TRAIN = textwrap.dedent(
    """
    import sys, time
    n, pause, code = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    for i in range(1, n + 1):
        print(f"step={i} loss={1.0 / i:.4f}", flush=True)
        time.sleep(pause)
    sys.exit(code)
    """
)


@pytest.fixture
def trainer(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(TRAIN)
    return path


def _run(trainer: Path, *args: str, steps: int = 5, pause: float = 0.0, code: int = 0, **kw):  # type: ignore[no-untyped-def]
    cmd = logbook_cmd("run", "--run", "gpt", *args, "--", sys.executable, str(trainer))
    return subprocess.run(
        [*cmd, str(steps), str(pause), str(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOGBOOK_TEST_NO_FINISHER": "1"},
        **kw,
    )


def _cli(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(logbook_cmd(*args), capture_output=True, text=True, timeout=60)
    assert out.returncode == code, f"exit {out.returncode}: {out.stdout}\n{out.stderr}"
    assert "Traceback" not in out.stderr
    return out


def _count(sql: str, store: str) -> int:
    out = _cli("query", sql, "--store", store, "--format", "csv")
    return int(out.stdout.splitlines()[1])


def _expected_output(steps: int) -> str:
    return "".join(f"step={i} loss={1.0 / i:.4f}\n" for i in range(1, steps + 1))


def test_a_run_into_s3_is_read_back_from_s3(s3: S3Server, trainer: Path) -> None:  # noqa: F811
    done = _run(trainer, "--store", URL, steps=6, code=3)
    assert done.returncode == 3  # the training's exit code, as without logbook
    assert done.stdout == _expected_output(6)
    assert "Warning" not in done.stderr and "warning" not in done.stderr

    keys = set(s3.objects("logs", "team/gpt/"))
    assert any(k.startswith("team/gpt/attempts/run=gpt/") for k in keys)
    assert any(k.startswith("team/gpt/metrics/run=gpt/") for k in keys)
    assert any(k.endswith("/stdout.log") for k in keys)  # the raw logs go up at the end
    assert not any("/_pushed/" in k for k in keys)  # local only
    # the journal went up while the run lived, and was deleted once folded (an empty "folder/"
    # object is what pyarrow leaves in place of the last file it deletes in a folder)
    assert not any("/_journal/" in k and not k.endswith("/") for k in keys)

    # once all went up, the bulk left the spool; what a relaunch and doctor read stayed (#18)
    spool = remote.spool_dir(URL)
    assert not list((spool / "metrics").rglob("*.parquet"))
    assert list((spool / "attempts").rglob("*.parquet"))
    assert list((spool / "logs").rglob("stdout.log"))

    shown = _cli("show", "gpt", "--store", URL, code=0)
    assert "1.00" in shown.stdout and "crashed" in shown.stdout
    assert _count("select count(*) from metrics where name = 'loss'", URL) == 6
    # LOGBOOK_STORE takes a URL too
    env_out = subprocess.run(
        logbook_cmd("runs", "--format", "csv"),
        capture_output=True,
        text=True,
        env={**os.environ, "LOGBOOK_STORE": URL},
        timeout=60,
    )
    assert env_out.returncode == 0 and "gpt" in env_out.stdout


def test_every_reading_command_reads_a_remote_store(
    s3: S3Server,  # noqa: F811
    trainer: Path,
    tmp_path: Path,
    invoke,  # type: ignore[no-untyped-def]
) -> None:
    assert _run(trainer, "--store", URL, code=1).returncode == 1
    out = tmp_path / "chronicle"
    for args in (
        ["runs"],
        ["show", "gpt"],
        ["events", "gpt"],
        ["incidents", "gpt"],
        ["goodput", "gpt"],
        ["cost", "gpt"],
        ["metrics", "gpt"],
        ["data-mix", "gpt"],
        ["repro", "gpt", "1.00"],
        ["watch", "gpt", "--once"],
        ["query", "select count(*) as n from metrics"],
        ["chronicle", "gpt", "--out", str(out)],
    ):
        result = invoke([*args, "--store", URL])  # exit 0
        assert result.output.strip() or out.exists(), args
    assert (out / "index.html").exists()
    ddl = invoke(["schema", "--ddl", "spark", "--store", URL]).output
    assert f"LOCATION '{URL}/attempts/'" in ddl  # the bucket, not this host's cache of it
    # a run the store lacks: the usual error, naming the store as the user did
    missing = invoke(["show", "nope", "--store", URL], code=1)
    assert f'no run "nope" in {URL}' in missing.output + missing.stderr


def test_another_host_continues_the_lineage(
    s3: S3Server,  # noqa: F811
    trainer: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _run(trainer, "--store", URL).returncode == 0
    monkeypatch.setenv("LOGBOOK_SPOOL", str(tmp_path / "other-host"))  # an empty spool
    assert _run(trainer, "--store", URL).returncode == 0
    out = _cli(
        "query",
        "select label, parent_label from attempts order by label",
        "--store",
        URL,
        "--format",
        "csv",
    )
    assert out.stdout.splitlines()[1:] == ["1.00,", "1.01,1.00"]


def test_a_reader_downloads_each_part_once(s3: S3Server, trainer: Path) -> None:  # noqa: F811
    assert _run(trainer, "--store", URL).returncode == 0
    first = remote.Remote(URL)
    cache = remote.mirror(URL, remote=first)
    assert first.requests["list"] == 1 and first.requests["get"] >= 5
    again = remote.Remote(URL)
    assert remote.mirror(URL, remote=again) == cache
    assert again.requests == {"list": 1}  # nothing new: one listing, no download


def test_server_killed_mid_run_then_doctor_pushes_everything_once(
    s3: S3Server,  # noqa: F811
    trainer: Path,
) -> None:
    cmd = logbook_cmd("run", "--run", "gpt", "--store", URL, "--", sys.executable, str(trainer))
    child = subprocess.Popen(
        [*cmd, "40", "0.05", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOGBOOK_TEST_NO_FINISHER": "1"},
    )
    _wait_for_upload("attempts/", child)  # the start went up
    s3.stop()  # the object store dies mid-run
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out == _expected_output(40)  # the training's output intact
    assert "not yet in s3://logs/team/gpt" in err and "wait in the spool" in err

    s3.start()  # back, empty (moto keeps its objects in memory): everything must go up again
    s3.make_bucket("logs")
    doctor = subprocess.run(
        logbook_cmd("doctor", "--store", URL), capture_output=True, text=True, timeout=60
    )
    assert "uploaded" in doctor.stdout, doctor.stdout + doctor.stderr
    assert _count("select count(*) from metrics where name = 'loss'", URL) == 40
    assert _count("select count(*) from attempts", URL) == 1
    # again: nothing left to send, nothing doubled
    again = _cli("doctor", "--store", URL)
    assert "no problems found" in again.stderr
    assert _count("select count(*) from metrics where name = 'loss'", URL) == 40


def _wait_for_upload(what: str, child: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        ledgers = Path(os.environ["LOGBOOK_SPOOL"]).glob("*/_pushed/*.jsonl")
        if any(what in p.read_text() for p in ledgers):
            return
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.05)


def test_a_dead_wrapper_reads_as_lost_and_doctor_pushes_its_end(
    s3: S3Server,  # noqa: F811
    trainer: Path,
) -> None:
    cmd = logbook_cmd("run", "--run", "gpt", "--store", URL, "--", sys.executable, str(trainer))
    child = subprocess.Popen(
        [*cmd, "20", "0.05", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "LOGBOOK_TEST_NO_FINISHER": "1"},
    )
    _wait_for_upload("_journal/", child)
    _wait_for_upload(".start.parquet", child)
    child.kill()  # the wrapper dies (its host, say); its journal is in the bucket
    child.wait()
    time.sleep(1.5)  # the training itself runs on to its end
    assert any("/_journal/" in k for k in s3.objects("logs", "team/gpt/"))
    shown = _cli("show", "gpt", "--store", URL, "--format", "csv")
    assert "lost" in shown.stdout  # read from the journal: its wrapper is gone

    doctor = subprocess.run(
        logbook_cmd("doctor", "--store", URL), capture_output=True, text=True, timeout=60
    )
    assert "uploaded" in doctor.stdout, doctor.stdout + doctor.stderr
    keys = set(s3.objects("logs", "team/gpt/"))
    # folded here, so deleted there (pyarrow leaves an empty "folder/" marker object in its place)
    assert not any("/_journal/" in k and not k.endswith("/") for k in keys)
    assert _count("select count(*) from attempts where status = 'lost'", URL) == 1
    assert _count("select count(*) from attempt_changes", URL) == 2  # running, then lost
    assert _count("select count(*) from metrics where name = 'loss'", URL) == 20  # from its logs


def test_push_uploads_a_local_store_once(s3: S3Server, trainer: Path, tmp_path: Path) -> None:  # noqa: F811
    local = tmp_path / "local"
    assert _run(trainer, "--store", str(local)).returncode == 0
    out = _cli("push", "--store", str(local), "--to", "s3://logs/archive")
    sent = int(out.stderr.split(": ")[1].split()[0])
    assert sent >= 5
    objects = s3.objects("logs", "archive/")
    for key, body in objects.items():
        assert (local / key.removeprefix("archive/")).read_bytes() == body
    out = _cli("push", "--store", str(local), "--to", "s3://logs/archive")
    assert ": 0 file(s) uploaded" in out.stderr
    assert s3.objects("logs", "archive/") == objects
    assert _count("select count(*) from metrics", "s3://logs/archive") == 5


def test_import_into_a_remote_store(s3: S3Server) -> None:  # noqa: F811
    history = Path(__file__).resolve().parents[2] / "examples" / "opt-history.jsonl"
    _cli("import", str(history), "--run", "opt", "--store", "s3://logs/opt")
    attempts = _count("select count(*) from attempts", "s3://logs/opt")
    assert attempts > 0
    _cli("import", str(history), "--run", "opt", "--store", "s3://logs/opt")  # idempotent
    assert _count("select count(*) from attempts", "s3://logs/opt") == attempts


def test_wrong_credentials_the_training_runs_and_says_so(
    trainer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("moto")
    server = S3Server().start(auth=True)  # keys it never issued are refused
    try:
        for k, v in server.env(
            LOGBOOK_SPOOL=str(tmp_path / "spool"), AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG1"
        ).items():
            monkeypatch.setenv(k, v)
        done = _run(trainer, "--store", URL, steps=4, code=0)
    finally:
        server.stop()
    assert done.returncode == 0
    assert done.stdout == _expected_output(4)
    assert "cannot upload to s3://logs/team/gpt" in done.stderr
    assert "wait in the spool" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_store_that_never_answers_holds_the_exit_briefly(
    trainer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as hole:  # accepts connections (the kernel does), never answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        silent = S3Server(port=hole.getsockname()[1])
        for k, v in silent.env(LOGBOOK_SPOOL=str(tmp_path / "spool")).items():
            monkeypatch.setenv(k, v)
        t0 = time.monotonic()
        done = _run(trainer, "--store", URL, steps=3, code=0)
        wall = time.monotonic() - t0
    assert done.returncode == 0 and done.stdout == _expected_output(3)
    assert "wait in the spool" in done.stderr
    # start-up waits at most 1 s for the store, the exit at most 2 s (requests time out in 20 s)
    assert wall < 12, wall


def test_show_with_the_server_down_is_a_clear_error(
    trainer: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = S3Server()  # never started: nothing listens on its port
    for k, v in down.env(LOGBOOK_CACHE=str(tmp_path / "cache")).items():
        monkeypatch.setenv(k, v)
    out = _cli("show", "gpt", "--store", URL, code=1)
    assert out.stderr.startswith("Error: cannot reach the store s3://logs/team/gpt")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://host/x", "cannot store to ftp:// URLs"),
        ("s3://", "no bucket named"),
        ("file:///tmp/x", "not a file:// URL"),
    ],
)
def test_bad_urls_are_refused_clearly(value: str, message: str) -> None:
    out = _cli("runs", "--store", value, code=1)
    assert message in out.stderr


def test_the_ledger_reads_only_what_was_added_and_stays_small(tmp_path: Path) -> None:
    one, two = remote.Ledger(tmp_path, URL), remote.Ledger(tmp_path, URL)
    for beat in range(1500):  # a journal that goes up at each heartbeat
        one.note("_journal/run=gpt/j.jsonl", 100 + beat, beat)
    one.note("attempts/run=gpt/p.parquet", 7, 1)
    two.reload()  # another pusher on the host sees it all
    assert two.sent == one.sent
    before = one.path.stat().st_size
    one.tidy()
    assert one.path.stat().st_size < before / 100
    assert remote.Ledger(tmp_path, URL).sent == one.sent
    two.note("metrics/run=gpt/m.parquet", 3, 2)  # after the rewrite, from the other pusher
    one.reload()
    assert one.sent["metrics/run=gpt/m.parquet"] == (3, 2)
    assert one.sent["_journal/run=gpt/j.jsonl"] == (1599, 1499)


# gs:// and az://, against real emulators of each (tests/cloudservers.py) -----------------------


def _push_if_cut_short(stderr: str, url: str) -> None:
    """The exit waits 2 s at most for its last uploads: on a busy machine the spool keeps the
    rest, said in a warning, and a push sends it. Any other warning fails the test."""
    warned = [line for line in stderr.splitlines() if "arning" in line]
    assert all("not yet in" in line for line in warned), stderr
    if warned:
        _cli("push", "--store", str(remote.make_spool(url)), "--to", url)


def test_gs_and_az_stores_take_a_run_a_second_host_and_a_push(
    cloud: Emulator,  # noqa: F811
    trainer: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"{cloud.scheme}://logs/team/gpt"
    done = _run(trainer, "--store", url, steps=6, code=3)
    assert done.returncode == 3 and done.stdout == _expected_output(6)
    _push_if_cut_short(done.stderr, url)
    monkeypatch.setenv("LOGBOOK_SPOOL", str(tmp_path / "other-host"))  # another host, empty spool
    second = _run(trainer, "--store", url)
    assert second.returncode == 0, second.stderr
    _push_if_cut_short(second.stderr, url)
    out = _cli(
        "query",
        "select label, status from attempts order by label",
        "--store",
        url,
        "--format",
        "csv",
    )
    assert out.stdout.splitlines()[1:] == ["1.00,crashed", "1.01,completed"]
    assert _count("select count(*) from metrics where name = 'loss'", url) == 11
    # the raw logs went up too: a reader with an empty cache sees them listed in the bucket
    listed = remote.Remote(url).list()
    assert sum(rel.endswith("/stdout.log") for rel in listed) == 2
    # a local store pushed twice: the second sends nothing, and the bucket reads as the folder
    local = tmp_path / "local"
    assert _run(trainer, "--store", str(local)).returncode == 0
    archive = f"{cloud.scheme}://logs/archive"
    assert ": 0 file(s) uploaded" not in _cli("push", "--store", str(local), "--to", archive).stderr
    assert ": 0 file(s) uploaded" in _cli("push", "--store", str(local), "--to", archive).stderr
    assert _count("select count(*) from metrics", archive) == 5


def test_hosts_claiming_labels_at_once_get_distinct_ones(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    import threading

    from logbook.store import layout
    from logbook.supervisor import lineage

    hosts = 8
    spools = [remote.make_spool(URL).with_name(f"host{i}") for i in range(hosts)]
    for spool in spools:  # a spool each, as on hosts of their own, none knowing the others
        spool.mkdir()
        (spool / remote.SPOOL_MARK).write_text(f'{{"url": "{URL}"}}\n')
    start = threading.Barrier(hosts)
    labels: list[str] = []

    def claim(spool: Path) -> None:
        start.wait()
        labels.append(lineage.place([], None, layout.labels_dir(spool, "gpt")).label)

    threads = [threading.Thread(target=claim, args=(spool,)) for spool in spools]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(labels) == [f"1.0{i}" for i in range(hosts)]
    assert len(s3.objects("logs", "team/gpt/_labels/run=gpt/")) == hosts
    # the losers' own claims never go over the winners' in the bucket
    before = s3.objects("logs", "team/gpt/_labels/")
    for spool in spools:
        assert remote.push(spool, remote.Remote(URL), check=True).done
    assert s3.objects("logs", "team/gpt/_labels/") == before


def test_the_python_api_alone_records_into_s3(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    script = tmp_path / "api_train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import logbook
            logbook.init(run="api", store={URL!r}, config={{"lr": 0.1}})
            for step in range(50):
                logbook.log({{"loss": 1.0 / (step + 1)}}, step=step)
            logbook.note("done")
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    # read back from the bucket, not from this host's spool
    sql = (
        "select (select count(*) from metrics where run = 'api') || ' ' || "
        "(select count(*) from attempts where status = 'completed') || ' ' || "
        "(select count(*) from events where kind = 'note')"
    )
    out = _cli("query", sql, "--store", URL, "--format", "csv")
    assert out.stdout.splitlines()[1] == "50 1 1"


def test_a_pruned_part_is_never_deleted_from_the_store(s3: S3Server) -> None:  # noqa: F811
    from datetime import datetime, timezone

    from logbook.store import Store
    from logbook.store.prune import prune

    root = remote.make_spool(URL)
    store = Store.open(root, create=True)
    now = datetime.now(timezone.utc)
    row = {"run": "gpt", "attempt_id": "a", "time": now, "step": 1, "name": "loss", "value": 1.0}
    store.write("metrics", "gpt", [{**row, "source": "api"}])
    up = remote.Remote(URL)
    assert remote.push(root, up).done
    stale = remote.Ledger(root, URL)  # another pusher on this host, its view from before the prune
    assert prune(root, remote.Ledger(root, URL), listed=up.list()) == 1
    assert not list((root / "metrics").rglob("*.parquet"))
    # it finds the part gone here, its ledger still naming it: pruned, not replaced, so kept there
    assert remote.pending(root, stale) == ([], [])
    assert remote.push(root, up, ledger=stale, check=True).deleted == 0
    assert any(k.endswith(".parquet") for k in s3.objects("logs", "team/gpt/metrics/"))


def test_a_put_taken_whose_answer_never_came_is_deleted_there_with_its_file_here(
    s3: S3Server,  # noqa: F811
) -> None:
    """Under load a PUT can reach the store and its answer time out: the ledger never learns it
    went up. A journal folded here afterwards (or a part merged here) stayed in the store for
    good, listed beside the rows that replaced it (#18: 16 of 128 hosts' journals, with eight
    uploads at once)."""
    from logbook.store import layout

    root = remote.make_spool(URL)
    journal = root / layout.JOURNAL_DIR / "run=gpt" / "attempt-a.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text('{"kind": "start"}\n')
    rel = journal.relative_to(root).as_posix()

    class AnswerLost(remote.Remote):
        def put(self, src: Path, rel: str) -> None:
            super().put(src, rel)  # the store has it...
            raise TimeoutError("the answer never came")  # ...and the pusher does not know

    lossy = remote.push(root, AnswerLost(URL))
    assert not lossy.done and "answer never came" in (lossy.error or "")
    assert f"team/gpt/{rel}" in s3.objects("logs", "team/gpt/_journal/")
    assert rel not in remote.Ledger(root, URL).sent and rel in remote.Ledger(root, URL).tried

    journal.unlink()  # folded into parts here, as an attempt's end does
    done = remote.push(root, remote.Remote(URL))
    assert done.done and done.deleted == 1
    assert not [k for k in s3.objects("logs", "team/gpt/_journal/") if k.endswith(".jsonl")]
    assert not remote.Ledger(root, URL).tried  # nothing left in doubt
