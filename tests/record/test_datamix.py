"""The data mix: declared per attempt with fingerprints, changes as events, `logbook data-mix` (#4, part 6)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from logbook.api import Recorder
from logbook.errors import ConfigError
from logbook.query import run_sql
from logbook.record import datamix
from logbook.store import Store


def test_every_accepted_shape_means_the_same_mix(tmp_path: Path) -> None:
    want = {
        "web": {"weight": 0.6, "tokens": 1.2e12, "paths": ["data/web"]},
        "code": {"weight": 0.4, "tokens": None, "paths": [], "license": "mixed"},
    }
    texts = {
        "a.yaml": "web: {weight: 0.6, tokens: 1.2e12, path: data/web}\n"
        "code: {weight: 0.4, license: mixed}\n",
        "b.yaml": "sources:\n  - name: web\n    weight: 0.6\n    tokens: 1_200_000_000_000\n"
        "    paths: [data/web]\n  - {name: code, weight: 0.4, license: mixed}\n",
        "c.json": json.dumps(
            {
                "mix": {
                    "web": {"weight": 0.6, "tokens": 1.2e12, "path": "data/web"},
                    "code": {"weight": 0.4, "license": "mixed"},
                }
            }
        ),
        "d.toml": '[web]\nweight = 0.6\ntokens = 1.2e12\npath = "data/web"\n'
        '[code]\nweight = 0.4\nlicense = "mixed"\n',
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        assert datamix.load_mix(tmp_path / name) == want, name
    assert datamix.normalise({"web": 0.6, "code": 1}) == {
        "web": {"weight": 0.6, "tokens": None, "paths": []},
        "code": {"weight": 1.0, "tokens": None, "paths": []},
    }


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("m.yaml", "web: 0.6\ncode: [0.4\n", r"m.yaml, line \d"),
        ("m.json", '{"web": 0.6,\n "code": }', "m.json, line 2"),
        (
            "m.yaml",
            "web: 0.6\ncode: {weight: abc}\n",
            "m.yaml, line 2: source 'code': weight must be a number",
        ),
        (
            "m.yaml",
            "web: 0.6\n\nbooks: -1\n",
            "m.yaml, line 3: source 'books': weight must be a number",
        ),
        ("m.yaml", "web: {path: 3}\n", "m.yaml, line 1: source 'web': path must be a path"),
        ("m.yaml", "sources:\n  - weight: 1\n", "item 1 of the list needs a `name`"),
        ("m.yaml", "", "declares no sources"),
        ("m.yaml", "- 1\n- 2\n", "m.yaml must hold a mapping"),
        ("m.yaml", "web: true\n", "source 'web': expected a weight or a table, not true"),
    ],
)
def test_a_malformed_mix_names_the_file_and_line(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=where):
        datamix.load_mix(path)


def test_a_small_file_is_hashed_in_full(tmp_path: Path) -> None:
    path = tmp_path / "shard.jsonl"
    path.write_bytes(b'{"text": "hello"}\n' * 1000)
    fp = datamix.fingerprint(path)
    assert fp["kind"] == "file" and fp["method"] == "full" and fp["size"] == 18000
    assert fp["hash"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_huge_file_is_sampled_never_read_through(tmp_path: Path) -> None:
    path = tmp_path / "huge.bin"
    with open(path, "wb") as f:  # sparse: 1 TiB that takes no disk
        f.truncate(1 << 40)
    before = _bytes_read()
    fp = datamix.fingerprint(path)
    read = _bytes_read() - before
    assert fp["method"] == "sampled" and fp["size"] == 1 << 40
    assert read <= 2 * datamix.SAMPLES * datamix.SAMPLE_BYTES, read
    # A change inside a sampled chunk (the last one ends the file) changes the hash.
    with open(path, "r+b") as f:
        f.seek((1 << 40) - 10)
        f.write(b"x")
    assert datamix.fingerprint(path)["hash"] != fp["hash"]


def test_folders_and_globs_stop_reading_at_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(5):
        (shards / f"part-{i}.jsonl").write_bytes(bytes([i]) * 4096)
    (shards / "notes.txt").write_text("not data")
    whole = datamix.fingerprint(shards)
    assert (whole["kind"], whole["files"], whole["size"], whole["method"]) == (
        "dir",
        6,
        5 * 4096 + 8,
        "full",
    )
    globbed = datamix.fingerprint(shards / "*.jsonl")
    assert (globbed["kind"], globbed["files"], globbed["method"]) == ("glob", 5, "full")
    (shards / "part-5.jsonl").write_bytes(b"new")
    assert datamix.fingerprint(shards)["hash"] != whole["hash"]
    monkeypatch.setattr(datamix, "READ_BUDGET", 3 * 4096)  # the budget allows 3 files' contents
    before = _bytes_read()
    partial = datamix.fingerprint(shards)
    assert partial["method"] == "full+listing" and _bytes_read() - before < 5 * 4096
    assert datamix.fingerprint(tmp_path / "gone")["kind"] == "missing"


def _run(run_logbook, store: Path, mix: Path, *extra: str, check: int = 0):  # type: ignore[no-untyped-def]
    return run_logbook(
        "run",
        "--store",
        str(store),
        "--run",
        "dm",
        "--no-capture",
        "--data-mix",
        str(mix),
        *extra,
        "--",
        sys.executable,
        "-c",
        "print('step=1 loss=2.0')",
        check=check,
    )


def test_changes_between_attempts_are_events_and_history(
    run_logbook, invoke, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "0.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "code.jsonl").write_text('{"text": "def f(): pass"}\n')
    mix = tmp_path / "mix.yaml"
    mix.write_text("web: {weight: 0.6, path: web}\ncode: {weight: 0.4, path: code.jsonl}\n")
    _run(run_logbook, store_path, mix)
    _run(run_logbook, store_path, mix)  # the same mix: no change
    mix.write_text(
        "web: {weight: 0.5, path: web}\ncode: {weight: 0.3, path: code.jsonl}\nbooks: 0.2\n"
    )
    (tmp_path / "code.jsonl").write_text('{"text": "def g(): pass"}\n')
    _run(run_logbook, store_path, mix)
    events = run_sql(
        Store(store_path),
        "select a.label, e.kind, e.message, e.data from events e join attempts a "
        "using (attempt_id) where kind like 'data_mix%' order by e.time, e.kind",
    ).to_pylist()
    assert [(e["label"], e["kind"]) for e in events] == [
        ("1.00", "data_mix"),
        ("1.01", "data_mix"),
        ("1.02", "data_mix"),
        ("1.02", "data_mix_change"),
    ]
    change = json.loads(events[-1]["data"])
    assert [(c["source"], c["field"], c["old"]) for c in change["changes"]] == [
        ("books", "source", None),
        ("code", "weight", 0.4),
        ("code", "data", hashlib.sha256(b'{"text": "def f(): pass"}\n').hexdigest()[:12]),
        ("web", "weight", 0.6),
    ]
    assert (
        change["changes"][2]["new"]
        == hashlib.sha256(b'{"text": "def g(): pass"}\n').hexdigest()[:12]
    )
    assert events[-1]["message"].startswith("data mix changed: books added; code weight 0.4 -> 0.3")
    declared = json.loads(events[0]["data"])["mix"]
    assert declared["code"]["fingerprints"]["code.jsonl"]["size"] == 26
    history = json.loads(
        invoke(["data-mix", "dm", "--store", str(store_path), "--format", "json"]).stdout
    )
    assert [(h["attempt"], h["source"], h["weight"], h["change"]) for h in history] == [
        ("1.00", "web", 0.6, None),
        ("1.00", "code", 0.4, None),
        ("1.01", "web", 0.6, None),
        ("1.01", "code", 0.4, None),
        ("1.02", "web", 0.5, "weight 0.6 -> 0.5"),
        ("1.02", "code", 0.3, "weight 0.4 -> 0.3; data changed"),
        ("1.02", "books", 0.2, "added"),
    ]
    assert history[0]["data"].endswith("(full, 14 B)")


def test_a_malformed_mix_is_refused_before_the_command_starts(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    mix = tmp_path / "mix.yaml"
    mix.write_text("web: 0.6\ncode: {weight: lots}\n")
    marker = tmp_path / "ran"
    p = run_logbook(
        "run",
        "--store",
        str(store_path),
        "--data-mix",
        str(mix),
        "--",
        sys.executable,
        "-c",
        f"open({str(marker)!r}, 'w')",
        check=1,
    )
    assert b"mix.yaml, line 2: source 'code': weight must be a number" in p.stderr
    assert b"Traceback" not in p.stderr and not marker.exists()


def test_the_api_compares_with_the_mix_on_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    (tmp_path / "shard.bin").write_bytes(b"\0" * 100)
    monkeypatch.chdir(tmp_path)  # paths in logbook.data_mix are taken from the working folder
    rec = Recorder(store, "api")
    rec.data_mix({"web": {"weight": 1.0, "path": "shard.bin"}})
    rec.close()
    rec = Recorder(store, "api")  # a later attempt: its first declaration is compared too
    rec.data_mix({"web": {"weight": 0.7, "path": "shard.bin"}, "code": 0.3}, step=5)
    rec.data_mix({"web": {"weight": "a lot"}})  # malformed: skipped with a warning
    rec.close()
    assert "logbook.data_mix: source 'web': weight must be a number" in capfd.readouterr().err
    rows = run_sql(
        Store(store), "select kind, step, message, data from events order by time"
    ).to_pylist()
    kinds = [(r["kind"], r["step"]) for r in rows if r["kind"].startswith("data_mix")]
    assert kinds == [("data_mix", None), ("data_mix", 5), ("data_mix_change", 5)]
    mix = json.loads(rows[0]["data"])["mix"]
    assert mix["web"]["fingerprints"]["shard.bin"]["hash"] == (
        "sha256:" + hashlib.sha256(b"\0" * 100).hexdigest()
    )
    [change] = [r for r in rows if r["kind"] == "data_mix_change"]
    assert change["message"] == "data mix changed: code added; web weight 1 -> 0.7"


def test_data_mix_of_an_unknown_run_or_a_run_without_one(
    invoke, run_logbook, store_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run_logbook(
        "run", "--store", str(store_path), "--run", "plain", "--no-capture", "--", "true", check=0
    )
    result = invoke(["data-mix", "plain", "--store", str(store_path), "--format", "json"])
    assert json.loads(result.stdout) == [] and "no data mix on record for plain" in result.stderr
    result = invoke(["data-mix", "nope", "--store", str(store_path)], code=1)
    assert 'no run "nope"' in result.stderr
