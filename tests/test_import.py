"""logbook import: backfilled attempts, events, notes and metrics, read back through SQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

HISTORY = [
    {"type": "attempt", "label": "1.00", "start": "2021-10-20T09:00:00Z",
     "end": "2021-10-20T12:00:00Z", "status": "crashed", "class": "communication",
     "reason": "NCCL timeout in all_reduce", "exit_code": 1,
     "command": "python train.py --lr 3e-4 --hf-token hf_abcdefghijklmnopqrstuvwxyz0123456789"},
    {"type": "note", "time": "2021-10-20T09:30:00", "text": "launched on 8 nodes", "tags": ["launch"]},
    {"type": "metric", "time": "2021-10-20T10:00:00Z", "step": 100, "name": "loss", "value": 2.5},
    {"type": "metric", "time": "2021-10-20T11:00:00Z", "step": 200,
     "metrics": {"loss": float("nan"), "lr": 3e-4, "grad_norm": float("inf")}},
    {"type": "event", "time": "2021-10-20T11:59:00Z", "kind": "hardware_fault", "severity": "error",
     "step": 210, "message": "Xid 79 on node-3", "node": "node-3", "xid": 79},
    {"type": "attempt", "label": "1.01", "start": "2021-10-20T14:30:00+02:00",
     "end": "2021-10-20T13:00:00Z", "status": "hung", "hung_s": 1200, "resumed_from": 100},
    {"type": "event", "time": "2021-10-20T12:20:00Z", "kind": "hparam_change", "attempt": "1.01",
     "message": "lr: 0.0003 -> 0.0002", "key": "lr", "old": 3e-4, "new": 2e-4},
    {"type": "metric", "time": "2021-10-20T12:45:00Z", "step": 150, "name": "loss", "value": 2.4},
    {"type": "attempt", "label": "1.02", "start": "2021-10-20T14:00:00Z", "status": "running",
     "resumed_from": 100},
    {"type": "metric", "time": "2021-10-20T15:00:00Z", "step": 300, "name": "Loss", "value": "1.9"},
]  # fmt: skip


def write_jsonl(path: Path, rows: list[dict[str, Any]], *, extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + extra)
    return path


def files(store: Path) -> set[Path]:
    """Every file in the store: an import that fails must leave this unchanged."""
    return (
        {p.relative_to(store) for p in store.rglob("*") if p.is_file()} if store.exists() else set()
    )


@pytest.fixture
def sql(invoke, store_path: Path):  # type: ignore[no-untyped-def]
    """sql(query) -> rows, through `logbook query --format json` (a real DuckDB over the store)."""

    def run(query: str) -> list[dict[str, Any]]:
        out = invoke(["query", query, "--store", str(store_path), "--format", "json"]).stdout
        return json.loads(out)  # type: ignore[no-any-return]

    return run


def do_import(invoke, store: Path, path: Path, *args: str, code: int = 0):  # type: ignore[no-untyped-def]
    return invoke(["import", str(path), "--store", str(store), *args], code=code)


def test_import_puts_the_history_on_record(invoke, sql, tmp_path: Path, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_jsonl(tmp_path / "history.jsonl", HISTORY)
    r = do_import(invoke, store_path, path, "--run", "gpt")
    assert r.stderr == "imported into gpt (a new run): 3 attempts, 4 events, 1 note, 6 metrics\n"
    written = sorted(str(p.parent.relative_to(store_path)) for p in store_path.rglob("*.parquet"))
    assert written == [f"{t}/run=gpt" for t in ("attempts", "events", "metrics", "runs")]

    attempts = sql(
        "select label, parent_label, status, crash_class, exit_code, duration_s, start_time, "
        "first_step, last_step, command from attempts where run = 'gpt' order by start_time"
    )
    assert [(a["label"], a["parent_label"], a["status"]) for a in attempts] == [
        ("1.00", None, "crashed"),
        ("1.01", "1.00", "hung"),
        ("1.02", "1.01", "running"),
    ]
    first, second, _ = attempts
    assert (first["crash_class"], first["exit_code"], first["duration_s"]) == (
        "communication",
        1,
        3 * 3600.0,
    )
    # Steps come from the attempt's metrics and events; the token in the command is redacted.
    assert (first["first_step"], first["last_step"]) == (100, 210)
    assert first["command"] == ["python", "train.py", "--lr", "3e-4", "--hf-token", "***"]
    assert second["start_time"] == "2021-10-20T12:30:00+00:00"  # +02:00 converted to UTC

    events = sql(
        "select a.label, e.kind, e.severity, e.source, e.message, e.data from events e "
        "left join attempts a using (attempt_id) order by e.time, e.kind"
    )
    assert [(e["label"], e["kind"]) for e in events] == [
        ("1.00", "note"),
        ("1.00", "hardware_fault"),
        ("1.00", "crash"),  # made from the attempt's end, as the supervisor writes one
        ("1.01", "hparam_change"),  # its own label, although its time is before 1.01 began
        ("1.01", "hang_stopped"),
    ]
    assert {e["source"] for e in events} == {"import"}
    note, fault, crash, change, _ = events
    assert (note["message"], json.loads(note["data"])) == (
        "launched on 8 nodes",
        {"tags": ["launch"]},
    )
    assert json.loads(fault["data"]) == {"node": "node-3", "xid": 79}
    assert (crash["severity"], crash["message"]) == ("error", "NCCL timeout in all_reduce")
    assert json.loads(change["data"]) == {"key": "lr", "old": 3e-4, "new": 2e-4}

    metrics = sql(
        "select a.label, m.step, m.name, m.value, isnan(m.value) as is_nan, isinf(m.value) as is_inf "
        "from metrics m join attempts a using (attempt_id) order by m.time, m.name"
    )
    assert [(m["label"], m["step"], m["name"]) for m in metrics] == [
        ("1.00", 100, "loss"),
        ("1.00", 200, "grad_norm"),
        ("1.00", 200, "learning_rate"),  # lr, aliased as parsed metrics are
        ("1.00", 200, "loss"),
        ("1.01", 150, "loss"),
        ("1.02", 300, "loss"),  # Loss, lower-cased
    ]
    assert [(m["is_nan"], m["is_inf"]) for m in metrics][1:4] == [
        (False, True),
        (False, False),
        (True, False),
    ]
    assert [m["value"] for m in metrics][-2:] == [2.4, 1.9]

    runs = json.loads(invoke(["runs", "--store", str(store_path), "--format", "json"]).stdout)
    assert [(r["run"], r["attempts"], r["latest_status"]) for r in runs] == [("gpt", 3, "running")]
    out = invoke(
        ["metrics", "gpt", "--attempt", "1.01", "--store", str(store_path), "--format", "csv"]
    )
    assert out.stdout.splitlines()[1].startswith("1.01,150,loss,2.4,")


def test_importing_again_adds_nothing_and_a_grown_file_adds_only_its_new_rows(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path
) -> None:
    path = write_jsonl(tmp_path / "history.jsonl", HISTORY)
    do_import(invoke, store_path, path, "--run", "gpt")
    before = files(store_path)
    counts = "select (select count(*) from attempt_changes) a, (select count(*) from events) e, "
    counts += "(select count(*) from metrics) m, (select count(*) from runs) r"
    assert sql(counts) == [{"a": 3, "e": 5, "m": 6, "r": 1}]

    r = do_import(invoke, store_path, path, "--run", "gpt")
    assert r.stderr == (
        "imported into gpt: 0 attempts, 0 events, 0 notes, 0 metrics; 12 already on record\n"
    )
    assert files(store_path) == before
    assert sql(counts) == [{"a": 3, "e": 5, "m": 6, "r": 1}]

    # Appended: the end of the running attempt, a new point (and one repeated), a note.
    grown = [
        {"type": "metric", "time": "2021-10-20T16:00:00Z", "step": 400, "name": "loss", "value": 1.7},
        {"type": "metric", "time": "2021-10-20T16:00:00Z", "step": 400, "name": "loss", "value": 1.7},
        {"type": "attempt", "label": "1.02", "end": "2021-10-20T17:00:00Z", "status": "completed"},
        {"type": "note", "time": "2021-10-20T17:05:00Z", "text": "done"},
    ]  # fmt: skip
    write_jsonl(path, HISTORY + grown)
    r = do_import(invoke, store_path, path, "--run", "gpt")
    assert r.stderr == (
        "imported into gpt: 0 new attempts, 1 updated, 0 events, 1 note, 1 metric; "
        "12 already on record\n"
    )
    assert sql(counts) == [{"a": 4, "e": 6, "m": 7, "r": 1}]
    [last] = sql("select status, end_time, last_step from attempts where label = '1.02'")
    assert last == {
        "status": "completed",
        "end_time": "2021-10-20T17:00:00+00:00",
        "last_step": 400,
    }
    do_import(invoke, store_path, path, "--run", "gpt")
    assert sql(counts) == [{"a": 4, "e": 6, "m": 7, "r": 1}]


BAD = [
    pytest.param(
        'not json at all\n{"type": "note", "time": "2021-10-20T10:00:00Z", "text": "x",\n',
        "jsonl",
        ["line 11: not a JSON object", "line 12: not JSON: Expecting property name"],
        id="bad-json",
    ),
    pytest.param(
        '{"type": "metrc", "time": "2021-10-20T10:00:00Z"}\n',
        "jsonl",
        ["line 11: type 'metrc' is not one of attempt, event, note, metric"],
        id="unknown-type",
    ),
    pytest.param(
        '{"type": "event", "kind": "crash"}\n',
        "jsonl",
        ["line 11: no time"],
        id="missing-time",
    ),
    pytest.param(
        '{"type": "note", "time": "yesterday", "text": "x"}\n',
        "jsonl",
        ["line 11: time 'yesterday' is not a time"],
        id="bad-time",
    ),
    pytest.param(
        '{"type": "metric", "time": "2021-10-20T10:00:00Z", "name": "loss", "value": "abc"}\n',
        "jsonl",
        ["line 11: value 'abc' is not a number"],
        id="non-numeric-value",
    ),
    pytest.param(
        '{"type": "note", "time": "2021-10-20T10:00:00Z", "text": "x", "attempt": "9.99"}\n',
        "jsonl",
        ["line 11: attempt 9.99 is not in the file or the store (run gpt has: 1.00, 1.01, 1.02)"],
        id="unknown-attempt",
    ),
    pytest.param(
        '{"type": "metric", "time": "2021-10-20T13:30:00Z", "name": "loss", "value": 1}\n',
        "jsonl",
        ["line 11: no attempt of run gpt was running at 2021-10-20 13:30:00 UTC"],
        id="metric-outside-attempts",
    ),
    pytest.param(
        '{"type": "attempt", "label": "1.03", "start": "2021-10-20T18:00:00Z", '
        '"end": "2021-10-20T19:00:00Z", "status": "crashd"}\n',
        "jsonl",
        ["line 11: status 'crashd' is not one of running, completed"],
        id="bad-status",
    ),
    pytest.param(
        "type,time,name,value,message\n"
        "metric,2021-10-20T10:00:00Z,loss,1.5,\n"
        "metric,2021-10-20T10:01:00Z,loss,1.4,oops\n",
        "csv",
        ["line 3: metric rows have no field 'message'"],
        id="csv-bad-column",
    ),
    pytest.param(
        "time,name,value\n2021-10-20T10:00:00Z,loss,1.5\n",
        "csv",
        ["line 1: the header has no type column"],
        id="csv-no-type-column",
    ),
]


@pytest.mark.parametrize(("text", "fmt", "messages"), BAD)
def test_a_bad_row_imports_nothing(  # type: ignore[no-untyped-def]
    invoke, tmp_path: Path, store_path: Path, text: str, fmt: str, messages: list[str]
) -> None:
    do_import(invoke, store_path, write_jsonl(tmp_path / "good.jsonl", HISTORY), "--run", "gpt")
    before = files(store_path)
    if fmt == "jsonl":  # good rows first, so the bad ones sit on lines 11 and 12
        path = write_jsonl(tmp_path / "bad.jsonl", HISTORY, extra=text)
    else:
        path = tmp_path / "bad.csv"
        path.write_text(text)
    r = do_import(invoke, store_path, path, "--run", "gpt", code=1)
    assert r.stderr.startswith(f"Error: {path} has ")
    assert "nothing was imported" in r.stderr
    for message in messages:
        assert message in r.stderr
    assert files(store_path) == before


def test_dry_run_writes_nothing(invoke, sql, tmp_path: Path, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_jsonl(tmp_path / "history.jsonl", HISTORY)
    r = do_import(invoke, store_path, path, "--run", "gpt", "--dry-run")
    assert r.stderr == (
        "would import into gpt (a new run): 3 attempts, 4 events, 1 note, 6 metrics\n"
        "nothing written (--dry-run)\n"
    )
    assert not store_path.exists()
    do_import(invoke, store_path, path, "--run", "gpt")
    before = files(store_path)
    write_jsonl(path, [*HISTORY, {"type": "note", "time": "2021-10-20T14:30:00Z", "text": "new"}])
    r = do_import(invoke, store_path, path, "--run", "gpt", "--dry-run")
    assert r.stderr.startswith("would import into gpt: 0 attempts, 0 events, 1 note, 0 metrics;")
    assert files(store_path) == before


def test_csv_with_several_runs(invoke, sql, tmp_path: Path, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "export.txt"  # no telling suffix: --format says it
    path.write_text(
        "type,run,label,time,start,end,status,kind,text,tags,step,name,value,data,node\n"
        "attempt,a,,,2021-01-01 00:00:00,2021-01-01 01:00:00,completed,,,,,,,,\n"
        "attempt,b,7,,2021-01-02 00:00:00,,,,,,,,,,\n"
        "metric,a,,2021-01-01 00:10:00,,,,,,,5,loss,-inf,,\n"
        'event,b,,2021-01-02 00:05:00,,,,hardware_fault,,,,,,"{""xid"": 48}",node-2\n'
        'note,a,,2021-01-01 00:20:00,,,,,"lowered the LR, again","lr,spike",,,,,\n'
    )
    r = do_import(invoke, store_path, path, "--format", "csv")
    assert r.stderr.splitlines() == [
        "imported into a (a new run): 1 attempt, 0 events, 1 note, 1 metric",
        "imported into b (a new run): 1 attempt, 1 event, 0 notes, 0 metrics",
    ]
    assert sql("select run, label, status from attempts order by run") == [
        {"run": "a", "label": "1.00", "status": "completed"},  # no label: the file's own lineage
        {"run": "b", "label": "7", "status": "running"},
    ]
    [fault] = sql("select data from events where kind = 'hardware_fault'")
    assert json.loads(fault["data"]) == {"xid": 48, "node": "node-2"}
    [note] = sql("select message, data from events where kind = 'note'")
    assert note["message"] == "lowered the LR, again"
    assert json.loads(note["data"]) == {"tags": ["lr", "spike"]}
    assert sql("select value < 0 and isinf(value) as neg_inf from metrics") == [{"neg_inf": True}]


def test_text_stays_data_and_secrets_are_redacted(
    invoke, sql, tmp_path: Path, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {"type": "attempt", "start": "2021-01-01T00:00:00Z", "status": "running"},
        {"type": "note", "time": "2021-01-01T00:01:00Z", "text": "<script>alert('x')</script>"},
        {"type": "event", "time": "2021-01-01T00:02:00Z", "kind": "config_change",
         "message": "rotated token=abcdef123456", "api_key": "sk-abcdefghijklmnopqrstuvwx",
         "data": {"key": "wandb_api_key", "old": "aaaa", "new": "bbbb"}},
    ]  # fmt: skip
    do_import(invoke, store_path, write_jsonl(tmp_path / "h.jsonl", rows), "--run", "web")
    note, change = sql("select message, data from events order by time")
    assert note["message"] == "<script>alert('x')</script>"
    assert change["message"] == "rotated token=***"
    assert json.loads(change["data"]) == {
        "key": "wandb_api_key",
        "old": "***",
        "new": "***",
        "api_key": "***",
    }


def test_notes_join_a_recorded_run_and_labels_do_not_clash(  # type: ignore[no-untyped-def]
    invoke, sql, run_logbook, tmp_path: Path, store_path: Path
) -> None:
    run_logbook(
        "run", "--store", str(store_path), "--run", "gpt", "--no-capture", "--", "true", check=0
    )
    [recorded] = sql("select attempt_id, start_time from attempts")
    rows = [{"type": "note", "time": recorded["start_time"], "text": "on the recorded attempt"}]
    do_import(invoke, store_path, write_jsonl(tmp_path / "n.jsonl", rows), "--run", "gpt")
    [note] = sql("select attempt_id from events where kind = 'note'")
    assert note["attempt_id"] == recorded["attempt_id"]

    clash = [
        {"type": "attempt", "label": "1.00", "start": "2021-01-01T00:00:00Z", "status": "running"}
    ]
    r = do_import(
        invoke, store_path, write_jsonl(tmp_path / "c.jsonl", clash), "--run", "gpt", code=1
    )
    assert "line 1: run gpt already has an attempt 1.00 that logbook recorded" in r.stderr


def test_a_failed_write_leaves_no_part_and_a_rerun_completes(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path
) -> None:
    path = write_jsonl(tmp_path / "history.jsonl", HISTORY)
    # A dangling link where the attempts folder of the run must go: making it fails after the
    # metrics and events parts were staged, and none of them may become visible.
    blocker = store_path / "attempts" / "run=gpt"
    blocker.parent.mkdir(parents=True)
    blocker.symlink_to(tmp_path / "nowhere")
    r = do_import(invoke, store_path, path, "--run", "gpt", code=1)
    assert r.stderr.startswith(f"Error: cannot write to {store_path}: ")
    assert "nothing was imported; fix that and import again" in r.stderr
    assert files(store_path) == {Path("logbook-store.json")}
    assert not [p for p in store_path.rglob("*") if p.name.endswith(".tmp")]
    blocker.unlink()

    # The other half: the metrics part of an import became visible, the rest did not.
    whole = tmp_path / "whole"
    do_import(invoke, whole, path, "--run", "gpt")
    shutil.copytree(whole / "metrics", store_path / "metrics", dirs_exist_ok=True)
    r = do_import(invoke, store_path, path, "--run", "gpt")
    assert r.stderr == (
        "imported into gpt (a new run): 3 attempts, 4 events, 1 note, 0 metrics; "
        "6 already on record\n"
    )
    assert sql("select count(*) as n, count(distinct attempt_id) as a from metrics") == [
        {"n": 6, "a": 3}
    ]


def test_the_opt_example_reads_like_a_recorded_run(invoke, run_logbook, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    example = ROOT / "examples" / "opt-history.jsonl"
    proc = run_logbook("import", str(example), "--store", str(store_path), check=0)
    assert proc.stderr.decode().startswith("imported into opt-175b (a new run): 7 attempts,")
    args = ["--store", str(store_path), "--format", "json"]
    show = json.loads(invoke(["show", "opt-175b", *args]).stdout)
    assert [(a["label"], a["parent"], a["status"], a["class"]) for a in show] == [
        ("11.00", None, "crashed", "communication"),
        ("11.01", "11.00", "crashed", "gpu_hardware"),
        ("11.02", "11.01", "crashed", "numerical"),
        ("12.00", "11.02", "hung", "hung"),  # one word for it in every report
        ("12.01", "12.00", "preempted", None),
        ("12.02", "12.01", "crashed", "communication"),
        ("12.03", "12.02", "completed", None),
    ]
    incidents = json.loads(invoke(["incidents", "opt-175b", *args]).stdout)
    assert [(i["class"], i["count"]) for i in incidents] == [
        ("communication", 2),
        ("gpu_hardware", 1),
        ("hung", 1),
        ("numerical", 1),
        ("preempted", 1),
        ("all failures", 5),
        ("all failures in lineage 11", 3),  # preempted is not a failure
        ("all failures in lineage 12", 2),
    ]
    assert incidents[-3]["lost_steps"] > 0
    changes = json.loads(invoke(["events", "opt-175b", "--kind", "hparam_change", *args]).stdout)
    assert [(c["attempt"], c["message"]) for c in changes] == [
        ("12.00", "lr: 0.00012 -> 9e-05"),
        ("12.00", "clip: 1.0 -> 0.3"),
    ]
    loss = json.loads(invoke(["metrics", "opt-175b", "--name", "loss", *args]).stdout)
    assert len(loss) == 13 and loss[6]["value"] is None  # the NaN, as JSON writes it


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_the_examples_in_the_format_reference_import(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path, fmt: str
) -> None:
    doc = (ROOT / "schemas" / "import.md").read_text()
    block = doc.split(f"```{fmt}\n", 1)[1].split("```", 1)[0]
    path = tmp_path / f"example.{fmt}"
    path.write_text(block)
    do_import(invoke, store_path, path, "--run", "opt-175b")
    [crashed] = sql("select label, status, crash_class from attempts where label = '11.00'")
    assert crashed == {"label": "11.00", "status": "crashed", "crash_class": "communication"}
    [note] = sql("select message from events where kind = 'note'")
    assert note == {"message": "node-065 swapped for a spare"}


def test_the_error_lists_bad_rows_by_line(invoke, tmp_path: Path, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "h.jsonl"
    path.write_text(
        "# kept by hand\n"
        '{"type": "note", "time": "yesterday", "text": "x"}\n'
        "\n"
        '{"type": "note", "time": "2021-01-01T00:00:00Z"}\n'
    )
    r = do_import(invoke, store_path, path, "--run", "gpt", code=1)
    assert r.stderr == (
        f"Error: {path} has 3 bad rows; nothing was imported:\n"
        "  line 2: run gpt has no attempts, in the file or the store: add an attempt row for its "
        "events and metrics to belong to\n"
        "  line 2: time 'yesterday' is not a time (write e.g. 2021-11-22T14:05:00Z)\n"
        "  line 4: no text; fix them and import again (the format: schemas/import.md)\n"
    )
    path.write_text('{"type": "metric"}\n' * 30)
    r = do_import(invoke, store_path, path, "--run", "gpt", code=1)
    assert "has 20 bad rows (at least: reading stopped there)" in r.stderr
    assert "line 20: no time" in r.stderr and "line 21" not in r.stderr
    assert not store_path.exists()


def test_every_bad_row_of_a_file_is_named_in_one_pass(  # type: ignore[no-untyped-def]
    invoke, tmp_path: Path, store_path: Path
) -> None:
    """Row errors (a bad time) and errors found against the other rows (an unknown label, a
    metric in no attempt, an attempt that ends before it starts) come in one report, not in
    stages that appear only once the first are fixed."""
    rows = [
        {"type": "attempt", "label": "1.00", "start": "2021-10-20T09:00:00Z",
         "end": "2021-10-20T12:00:00Z", "status": "crashed"},
        {"type": "note", "time": "yesterday", "text": "bad time"},
        {"type": "attempt", "label": "1.01", "start": "2021-10-21T09:00:00Z",
         "end": "2021-10-20T12:00:00Z", "status": "crashed"},
        {"type": "event", "time": "2021-10-20T10:00:00Z", "kind": "note", "attempt": "9.99"},
        {"type": "attempt", "run": "other", "start": "2021-10-20T09:00:00Z",
         "end": "2021-10-20T12:00:00Z", "status": "completed"},
        {"type": "metric", "run": "other", "time": "2022-01-01T00:00:00Z", "step": 5,
         "name": "loss", "value": 1},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "h.jsonl", rows)
    r = do_import(invoke, store_path, path, "--run", "gpt", code=1)
    assert f"{path} has 4 bad rows; nothing was imported" in r.stderr
    assert "line 2: time 'yesterday' is not a time" in r.stderr
    assert "line 3: attempt 1.01 ends before it starts" in r.stderr
    assert "line 4: attempt 9.99 is not in the file or the store" in r.stderr
    assert "line 6: no attempt of run other was running at 2022-01-01 00:00:00 UTC" in r.stderr
    assert not store_path.exists()


def test_a_bad_attempt_row_is_not_also_reported_as_missing(  # type: ignore[no-untyped-def]
    invoke, tmp_path: Path, store_path: Path
) -> None:
    rows = [
        {"type": "attempt", "label": "1.00", "start": "2021-10-20T09:00:00Z",
         "end": "2021-10-20T12:00:00Z", "status": "crashd"},
        {"type": "note", "time": "2021-10-20T10:00:00Z", "text": "x", "attempt": "1.00"},
        {"type": "metric", "time": "2021-10-20T10:00:00Z", "step": 5, "name": "loss", "value": 1},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "h.jsonl", rows)
    r = do_import(invoke, store_path, path, "--run", "gpt", code=1)
    assert f"{path} has a bad row; nothing was imported" in r.stderr
    assert "line 1: status 'crashd' is not one of" in r.stderr
    assert "line 2" not in r.stderr and "line 3" not in r.stderr


def test_overlapping_attempts_are_imported_with_a_warning_that_names_both(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path
) -> None:
    rows = [
        {"type": "attempt", "label": "11.00", "start": "2021-10-20T09:00:00Z",
         "end": "2021-10-20T20:00:00Z", "status": "crashed"},
        {"type": "attempt", "label": "11.01", "start": "2021-10-20T12:12:00Z",
         "end": "2021-10-21T03:00:00Z", "status": "hung"},
        {"type": "attempt", "label": "11.02", "start": "2021-10-21T04:00:00Z", "status": "running"},
        {"type": "attempt", "label": "11.03", "start": "2021-10-22T04:00:00Z",
         "end": "2021-10-22T05:00:00Z", "status": "completed"},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "h.jsonl", rows)
    r = do_import(invoke, store_path, path, "--run", "opt")
    assert (
        "warning: run opt: attempts 11.00 and 11.01 overlap by 7.8 h "
        "(11.01 starts 2021-10-20 12:12 UTC, before 11.00 ends 2021-10-20 20:00 UTC)"
    ) in r.stderr
    assert (
        "warning: run opt: attempt 11.02 has no end (running) but 11.03 starts after it"
    ) in r.stderr
    assert "imported into opt (a new run): 4 attempts" in r.stderr
    assert len(sql("select * from attempts")) == 4
    again = do_import(invoke, store_path, path, "--run", "opt")  # the store's attempts count too
    assert "attempts 11.00 and 11.01 overlap" in again.stderr


def test_a_hand_kept_history_keeps_its_precision(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path
) -> None:
    """Times given as a day, a month or a range, approximate steps and step ranges, hours lost as
    the source states them, labels such as glm:42 and events of the run are kept as given."""
    rows = [
        {"type": "attempt", "label": "glm:42", "start": "2022-05", "end": "2022-05-03/2022-05-05",
         "status": "crashed", "resumed_from": "≈ 14,300", "hours_lost": 12.5},
        {"type": "attempt", "label": "glm:43", "start": "2022-05-06T08:00:00Z",
         "end": "2022-05-07", "status": "completed"},
        {"type": "event", "time": "2022-05-06T09:00:00Z", "kind": "hparam_change",
         "message": "lr 4.45e-05 -> 4e-05", "step": "14000-14500"},
        {"type": "note", "time": "2022-05-06T10:00:00Z", "text": "moved to the new cluster",
         "scope": "run", "step": "~15000"},
        {"type": "event", "time": "2022-05-06T11:00:00Z", "kind": "note", "step": 15100},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "glm.jsonl", rows)
    do_import(invoke, store_path, path, "--run", "glm")
    attempts = sql(
        "select label, start_time::varchar as s, start_precision, start_until::varchar as su, "
        "end_time::varchar as e, end_precision, end_until::varchar as eu, resumed_from_step, "
        "steps_approx, lost_h_stated, duration_s from attempts order by label"
    )
    assert attempts == [
        {"label": "glm:42", "s": "2022-05-01 00:00:00+00", "start_precision": "month",
         "su": "2022-06-01 00:00:00+00", "e": "2022-05-03 00:00:00+00", "end_precision": "range",
         "eu": "2022-05-06 00:00:00+00", "resumed_from_step": 14300, "steps_approx": True,
         "lost_h_stated": 12.5, "duration_s": None},
        {"label": "glm:43", "s": "2022-05-06 08:00:00+00", "start_precision": None, "su": None,
         "e": "2022-05-07 00:00:00+00", "end_precision": "day", "eu": "2022-05-08 00:00:00+00",
         "resumed_from_step": None, "steps_approx": None, "lost_h_stated": None,
         "duration_s": None},
    ]  # fmt: skip
    events = sql(
        "select e.kind, e.step, e.step_until, e.step_approx, a.label from events e "
        "left join attempts a using (attempt_id) where e.kind in ('hparam_change', 'note') "
        "order by e.time"
    )
    assert events == [
        {"kind": "hparam_change", "step": 14000, "step_until": 14500, "step_approx": None,
         "label": "glm:43"},
        {"kind": "note", "step": 15000, "step_until": None, "step_approx": True, "label": None},
        {"kind": "note", "step": 15100, "step_until": None, "step_approx": None, "label": "glm:43"},
    ]  # fmt: skip
    again = do_import(invoke, store_path, path, "--run", "glm")  # the same file adds nothing
    assert "0 attempts, 0 events, 0 notes, 0 metrics; 5 already on record" in again.stderr


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"start": "2022-13"}, "start '2022-13' is not a time"),
        ({"start": "2022-05-05/2022-05-01"}, "start '2022-05-05/2022-05-01' ends before it starts"),
        ({"resumed_from": "≈ lots"}, "resumed_from '≈ lots' is not a whole number"),
        ({"start_precision": "day"}, "attempt rows have no field 'start_precision'"),
    ],
)
def test_a_bad_time_or_step_of_a_hand_kept_history_is_named(  # type: ignore[no-untyped-def]
    invoke, tmp_path: Path, store_path: Path, row: dict[str, Any], message: str
) -> None:
    attempt = {"type": "attempt", "start": "2022-05-01T00:00:00Z", "status": "running", **row}
    path = write_jsonl(tmp_path / "h.jsonl", [attempt])
    r = do_import(invoke, store_path, path, "--run", "glm", code=1)
    assert f"line 1: {message}" in r.stderr


def test_an_event_of_the_run_names_no_attempt(invoke, tmp_path: Path, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {"type": "attempt", "start": "2022-05-01T00:00:00Z", "status": "running"},
        {"type": "note", "time": "2022-05-02", "text": "x", "scope": "run", "attempt": "1.00"},
        {"type": "note", "time": "2022-05-02", "text": "x", "scope": "lineage"},
    ]  # fmt: skip
    r = do_import(invoke, store_path, write_jsonl(tmp_path / "h.jsonl", rows), "--run", "g", code=1)
    assert "line 2: an event of the run (scope run) names no attempt" in r.stderr
    assert "line 3: scope 'lineage' is not one of attempt, run" in r.stderr


def test_declared_hardware_goes_to_the_attempts_it_covers(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path
) -> None:
    rows = [
        {"type": "hardware", "time": "2021-11-01", "hosts": 124, "gpus_per_host": 8,
         "gpu_model": "A100 80GB", "note": "the first allocation"},
        {"type": "attempt", "label": "12.00", "start": "2021-11-05T00:00:00Z",
         "end": "2021-11-06T00:00:00Z", "status": "crashed"},
        {"type": "hardware", "time": "2021-11-06T06:00:00Z", "hosts": 128, "gpus": 1024},
        {"type": "attempt", "label": "12.01", "start": "2021-11-07T00:00:00Z",
         "end": "2021-11-08T00:00:00Z", "status": "hung"},
        {"type": "hardware", "time": "2021-11-07T00:00:00Z", "attempt": "12.01", "gpus": 1016},
        {"type": "attempt", "label": "11.09", "start": "2021-10-30T00:00:00Z",
         "end": "2021-10-31T00:00:00Z", "status": "crashed"},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "opt.jsonl", rows)
    do_import(invoke, store_path, path, "--run", "opt")
    declared = sql(
        "select a.label, s.name, s.value from snapshots s join attempts a using (attempt_id) "
        "where s.kind = 'declared' order by a.label, s.name"
    )
    assert [(r["label"], r["name"], r["value"]) for r in declared] == [
        ("12.00", "gpu_model", "A100 80GB"),
        ("12.00", "gpus", "992"),
        ("12.00", "gpus_per_host", "8"),
        ("12.00", "hosts", "124"),
        ("12.01", "gpus", "1016"),  # the attempt's own row over the run's
        ("12.01", "hosts", "128"),
    ]
    events = sql(
        "select message, attempt_id is null as of_run from events "
        "where kind = 'hardware_change' order by time"
    )
    assert events == [
        {"message": "hardware: 992 GPUs (A100 80GB) on 124 hosts (declared): the first allocation",
         "of_run": True},
        {"message": "hardware: 1,024 GPUs on 128 hosts (declared)", "of_run": True},
        {"message": "hardware: 1,016 GPUs (declared)", "of_run": False},
    ]  # fmt: skip
    before = len(sql("select * from snapshots"))
    do_import(invoke, store_path, path, "--run", "opt")  # again: nothing new
    assert len(sql("select * from snapshots")) == before
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"type": "hardware", "time": "2021", "gpus": -1}])
    r = do_import(invoke, store_path, bad, "--run", "opt", code=1)
    assert "line 1: hosts and gpus_per_host are at least 1, gpus and spare_hosts at least 0" in (
        r.stderr
    )


def test_an_end_whose_reason_is_unknown_is_ended_not_a_failure(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path
) -> None:
    rows = [
        {"type": "attempt", "label": "1.00", "start": "2022-05-01T00:00:00Z",
         "end": "2022-05-02T00:00:00Z", "status": "ended"},
        {"type": "attempt", "label": "1.01", "start": "2022-05-03T00:00:00Z",
         "end": "2022-05-04T00:00:00Z", "status": "completed"},
    ]  # fmt: skip
    do_import(invoke, store_path, write_jsonl(tmp_path / "h.jsonl", rows), "--run", "b")
    assert sql("select label, status from attempts order by label") == [
        {"label": "1.00", "status": "ended"},
        {"label": "1.01", "status": "completed"},
    ]
    assert sql("select kind, message from events") == [
        {"kind": "ended", "message": "ended; how is not known"}
    ]
    args = ["incidents", "b", "--each", "--store", str(store_path), "--format", "json"]
    each = json.loads(invoke(args).stdout)
    assert [(i["label"], i["class"], i["next_label"]) for i in each] == [("1.00", "ended", "1.01")]


def test_sources_are_kept_and_events_of_one_time_keep_the_file_order(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path
) -> None:
    cite = "metaseq projects/OPT/chronicles/10_percent_update.md"
    rows = [
        {"type": "attempt", "label": "11.00", "start": "2021-11-05", "status": "running",
         "source": cite},
        {"type": "hardware", "time": "2021-11-05", "gpus": 992, "source": cite},
        *[{"type": "event", "time": "2021-11-06", "kind": "hparam_change", "key": "clip",
           "message": f"clipping -> {v}", "source": cite} for v in ("1.5", "1.0", "0.3")],
    ]  # fmt: skip
    do_import(invoke, store_path, write_jsonl(tmp_path / "h.jsonl", rows), "--run", "opt")
    assert sql("select citation from attempts") == [{"citation": cite}]
    assert sql(
        "select message from events where kind = 'hparam_change' "
        "order by time, seq desc"  # descending: the test fails if seq does not follow the file
    ) == [{"message": f"clipping -> {v}"} for v in ("0.3", "1.0", "1.5")]
    hardware = sql("select data from events where kind = 'hardware_change'")
    assert json.loads(hardware[0]["data"])["source"] == cite


def test_hours_lost_as_stated_come_before_a_worked_out_figure(  # type: ignore[no-untyped-def]
    invoke, tmp_path: Path, store_path: Path
) -> None:
    rows = [
        {"type": "attempt", "label": "1.00", "start": "2022-05-01T00:00:00Z",
         "end": "2022-05-02T00:00:00Z", "status": "crashed", "hours_lost": 12.5},
        {"type": "attempt", "label": "1.01", "start": "2022-05-02T06:00:00Z",
         "end": "2022-05-03T00:00:00Z", "status": "hung"},
        {"type": "attempt", "label": "1.02", "start": "2022-05-03T01:00:00Z",
         "end": "2022-05-04T00:00:00Z", "status": "completed"},
    ]  # fmt: skip
    do_import(invoke, store_path, write_jsonl(tmp_path / "h.jsonl", rows), "--run", "g")
    args = ["incidents", "g", "--each", "--store", str(store_path), "--format", "json"]
    each = {i["label"]: i for i in json.loads(invoke(args).stdout)}
    assert each["1.00"]["time_lost_s"] == 45000.0  # 12.5 h, as stated
    assert each["1.00"]["time_lost_basis"] == "stated by the imported history"
    # no hours stated and no step times: not known, so no basis either (#16)
    assert each["1.01"]["time_lost_s"] is None and each["1.01"]["time_lost_basis"] is None


# What hand-kept histories hold that the format lacked (#16): launch settings as an attempt's
# config, a change relative to the value before, and restarts counted but not detailed.
GAPS = [
    {"type": "attempt", "label": "11.00", "start": "2021-11-01T00:00:00Z",
     "end": "2021-11-01T10:00:00Z", "status": "crashed", "resumed_from": 0, "last_step": 1000,
     "config": {"params": "175B", "tokens_per_step": 2000000, "optim": {"lr": 1.2e-4},
                "wandb_api_key": "abc123abc123abc123"}},
    {"type": "event", "time": "2021-11-01T01:00:00Z", "kind": "hparam_change", "key": "lr",
     "old": 1.2e-4, "new": 1e-4},
    {"type": "event", "time": "2021-11-01T02:00:00Z", "kind": "hparam_change", "key": "lr",
     "change": "-10%", "message": "LR lowered by 10 %"},
    {"type": "event", "time": "2021-11-01T03:00:00Z", "kind": "hparam_change", "key": "lr",
     "change": "halved"},
    {"type": "event", "time": "2021-11-01T04:00:00Z", "kind": "hparam_change", "key": "clip",
     "change": "×0.5"},
    {"type": "interruptions", "count": "~90", "attempt": "11.00", "time": "2021-11-02/2021-11-09",
     "reason": "restarts on bad nodes", "planned": False},
]  # fmt: skip


def test_settings_relative_changes_and_restarts_not_detailed(  # type: ignore[no-untyped-def]
    invoke, sql, tmp_path: Path, store_path: Path
) -> None:
    do_import(invoke, store_path, write_jsonl(tmp_path / "h.jsonl", GAPS), "--run", "g")
    config = sql("select name, value from snapshots where kind = 'config' order by name")
    assert [(c["name"], c["value"]) for c in config] == [
        ("optim.lr", "0.00012"), ("params", '"175B"'), ("tokens_per_step", "2000000"),
        ("wandb_api_key", "***"),
    ]  # fmt: skip
    [cost] = json.loads(
        invoke(["cost", "g", "--store", str(store_path), "--format", "json"]).stdout
    )[:1]
    assert cost["flops"] == pytest.approx(6 * 175e9 * 1000 * 2e6)  # from the declared config
    changes = sql("select message, data from events where kind = 'hparam_change' order by time")
    data = [json.loads(c["data"]) for c in changes]
    assert [(d.get("old"), d.get("new"), d.get("factor")) for d in data] == [
        (1.2e-4, 1e-4, None), (1e-4, 9e-5, 0.9), (9e-5, 4.5e-5, 0.5), (None, None, 0.5),
    ]  # fmt: skip
    assert [c["message"] for c in changes[2:]] == ["lr: 9e-05 -> 4.5e-05 (halved)", "clip ×0.5"]
    [counted] = sql(
        "select i.count, i.count_approx, a.label, i.time_precision from interruptions i "
        "join attempts a using (attempt_id)"
    )
    assert counted == {
        "count": 90,
        "count_approx": True,
        "label": "11.00",
        "time_precision": "range",
    }
    by_cause = json.loads(
        invoke(
            ["incidents", "g", "--by", "cause", "--store", str(store_path), "--format", "json"]
        ).stdout
    )
    assert (by_cause[-1]["count"], by_cause[-1]["count_approx"]) == (91, True)  # 90 + the crash
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {**GAPS[0], "config": [1]},
        {**GAPS[1], "change": "a lot"},
        {**GAPS[-1], "count": "80-100"},
    ])  # fmt: skip
    err = do_import(invoke, store_path, bad, "--run", "b", code=1).stderr
    assert "line 1: config is not a JSON object" in err
    assert "line 2: change 'a lot' is not a relative change" in err
    assert "line 3: count '80-100' is a range" in err
