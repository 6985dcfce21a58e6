"""Changes a hand-kept history holds that a recorded run rarely does (#16, item 3): a change that
did not take effect (a setting a bug ignored) and a dependency upgrade (a new PyTorch, NCCL or
Megatron). Each through a real `logbook import` of a JSON-lines file, real DuckDB queries on the
store, and a real chronicle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN = "opt"
CITE = "metaseq projects/OPT/chronicles/27_percent_update.md"
HISTORY = [
    {"type": "attempt", "label": "12.00", "start": "2021-11-11T00:00:00Z",
     "end": "2021-11-20T00:00:00Z", "status": "crashed", "class": "numerical"},
    {"type": "event", "time": "2021-11-12T00:00:00Z", "kind": "hparam_change", "key": "lr",
     "old": 1.2e-4, "new": 1e-4},
    # set, and ignored: the optimizer's state reloaded from the checkpoint kept the old value
    {"type": "event", "time": "2021-11-13T00:00:00Z", "kind": "hparam_change", "key": "lr",
     "new": 5e-5, "took_effect": False, "why": "reloaded from the checkpoint", "source": CITE},
    # relative to the value in force (1e-4), not to the one that did not take effect
    {"type": "event", "time": "2021-11-14T00:00:00Z", "kind": "hparam_change", "key": "lr",
     "change": "halved"},
    {"type": "event", "time": "2021-11-15T00:00:00Z", "kind": "hparam_change", "key": "adam_beta1",
     "old": 0.9, "new": 0, "took_effect": "false",
     "message": "Adam beta1 -> 0 (reloaded with the checkpoint)"},
    {"type": "event", "time": "2021-11-16T00:00:00Z", "kind": "software_change",
     "package": "megatron-lm", "old": 2.4, "new": "2.6", "source": "56_percent_update.md"},
    {"type": "event", "time": "2021-11-17T00:00:00Z", "kind": "software_change",
     "package": "torch", "new": "1.10.0", "took_effect": True},
]  # fmt: skip


def _import(  # type: ignore[no-untyped-def]
    invoke, store: Path, path: Path, rows: list[dict[str, Any]], *, run: str = RUN, code: int = 0
):
    """`rows` written to `path` as JSON lines, and `logbook import` of them into `store`."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return invoke(["import", str(path), "--run", run, "--store", str(store)], code=code)


def _sql(invoke, store: Path, query: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    out = invoke(["query", query, "--store", str(store), "--format", "json"]).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_a_change_that_did_not_take_effect_and_software_upgrades(  # type: ignore[no-untyped-def]
    invoke, tmp_path: Path, store_path: Path
) -> None:
    path = tmp_path / "history.jsonl"
    _import(invoke, store_path, path, HISTORY)
    rows = _sql(
        invoke,
        store_path,
        "select kind, message, data ->> 'key' as key, data ->> 'old' as old, "
        "data ->> 'new' as new, (data ->> 'took_effect')::boolean as took_effect, "
        "data ->> 'package' as package, data ->> 'why' as why "
        "from events where kind in ('hparam_change', 'software_change') order by time",
    )
    assert [(r["message"], r["took_effect"]) for r in rows] == [
        (None, None),
        ("lr -> 5e-05 (did not take effect)", False),
        ("lr: 0.0001 -> 5e-05 (halved)", None),  # halved from 1e-4, the value in force
        ("Adam beta1 -> 0 (reloaded with the checkpoint)", False),  # "false" read as false
        ("megatron-lm: 2.4 -> 2.6", None),
        ("torch: not recorded -> 1.10.0", True),
    ]
    assert rows[1]["why"] == "reloaded from the checkpoint"
    assert [(r["package"], r["old"], r["new"]) for r in rows[4:]] == [
        ("megatron-lm", "2.4", "2.6"),  # versions are text: 2.4 stays 2.4
        ("torch", None, "1.10.0"),
    ]
    # The changes in effect, as a reader asks of the store (README's cookbook):
    in_effect = _sql(
        invoke,
        store_path,
        "select (data ->> 'new')::double as new from events where kind = 'hparam_change' "
        "and data ->> 'key' = 'lr' and coalesce((data ->> 'took_effect')::boolean, true) "
        "order by time",
    )
    assert [r["new"] for r in in_effect] == [1e-4, 5e-5]

    before = _sql(invoke, store_path, "select count(*) as n from events")
    invoke(["import", str(path), "--run", RUN, "--store", str(store_path)])  # again: nothing new
    assert _sql(invoke, store_path, "select count(*) as n from events") == before

    out = tmp_path / "site"
    invoke(["chronicle", RUN, "--out", str(out), "--store", str(store_path)])
    md = (out / "chronicle.md").read_text()
    html = (out / "index.html").read_text()
    table = md[md.index("## Hyperparameter and data-mix changes") :]
    table = table[: table.index("\n## ")]
    lr_rows = [line for line in table.splitlines() if "| lr " in line]
    assert len(lr_rows) == 3
    assert "(did not take effect)" in lr_rows[1] and "5e-05" in lr_rows[1]
    assert "did not take effect" not in lr_rows[0] + lr_rows[2]
    beta = next(line for line in table.splitlines() if "beta1" in line)
    assert "(did not take effect)" in beta
    decisions = md[md.index("## Decisions") :]
    decisions = decisions[: decisions.index("\n## ")]
    assert "megatron-lm: 2.4 -> 2.6" in decisions and "torch: not recorded -> 1.10.0" in decisions
    assert "lr -> 5e-05 (did not take effect)" in decisions
    assert decisions.count("did not take effect") == 2  # the lr and beta1 changes, once each
    assert "(did not take effect)" in html and "megatron-lm: 2.4 -&gt; 2.6" in html
    assert "None" not in md


def test_bad_change_fields_are_named(invoke, tmp_path: Path, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        HISTORY[0],
        {"type": "event", "time": "2021-11-12", "kind": "hparam_change", "key": "lr",
         "new": 1e-5, "took_effect": "maybe"},
        {"type": "event", "time": "2021-11-12", "kind": "software_change", "package": " ",
         "new": "2.6"},
        {"type": "event", "time": "2021-11-12", "kind": "software_change", "package": "nccl",
         "new": [2, 10]},
    ]  # fmt: skip
    r = _import(invoke, store_path, tmp_path / "bad.jsonl", rows, code=1)
    assert "line 2: took_effect 'maybe' is not true or false" in r.stderr
    assert "line 3: package is empty" in r.stderr
    assert "line 4: new [2, 10] is not a version" in r.stderr
    assert not store_path.exists() or not list(store_path.rglob("*.parquet"))


def test_spare_hosts_are_declared_beside_the_hardware_in_use(  # type: ignore[no-untyped-def]
    invoke, tmp_path: Path, store_path: Path
) -> None:
    rows = [
        {"type": "hardware", "time": "2021-11-01", "hosts": 124, "gpus": 992,
         "gpu_model": "A100 80GB"},
        {"type": "attempt", "label": "12.00", "start": "2021-11-05T00:00:00Z",
         "end": "2021-11-06T00:00:00Z", "status": "crashed"},
        # "a pool of 12 buffer nodes": held, idle, and the hosts in use stay as they were
        {"type": "hardware", "time": "2021-12-16", "spare_hosts": 12, "source": "final_update.md"},
        {"type": "attempt", "label": "12.01", "start": "2021-12-20T00:00:00Z",
         "end": "2021-12-21T00:00:00Z", "status": "crashed"},
    ]  # fmt: skip
    _import(invoke, store_path, tmp_path / "spares.jsonl", rows)
    declared = _sql(
        invoke,
        store_path,
        "select a.label, s.name, s.value from snapshots s join attempts a using (attempt_id) "
        "where s.kind = 'declared' order by a.label, s.name",
    )
    by_attempt: dict[str, dict[str, str]] = {}
    for d in declared:
        by_attempt.setdefault(d["label"], {})[d["name"]] = d["value"]
    assert by_attempt == {
        "12.00": {"gpu_model": "A100 80GB", "gpus": "992", "hosts": "124"},
        "12.01": {"gpu_model": "A100 80GB", "gpus": "992", "hosts": "124", "spare_hosts": "12"},
    }
    events = _sql(
        invoke,
        store_path,
        "select message, data ->> 'source' as source from events "
        "where kind = 'hardware_change' order by time",
    )
    assert events == [
        {"message": "hardware: 992 GPUs (A100 80GB) on 124 hosts (declared)", "source": None},
        {"message": "hardware: 12 spare hosts (held, idle) (declared)",
         "source": "final_update.md"},
    ]  # fmt: skip
    # The spares are no GPUs of the training: cost counts the 992 in use.
    cost = json.loads(invoke(["cost", RUN, "--store", str(store_path), "--format", "json"]).stdout)
    assert [(row["attempt"], row["gpus"]) for row in cost if row["attempt"] != "total"] == [
        ("12.00", 992),
        ("12.01", 992),
    ]
    out = tmp_path / "site"
    invoke(["chronicle", RUN, "--out", str(out), "--store", str(store_path)])
    md = (out / "chronicle.md").read_text()
    assert "12 spare hosts (held, idle)" in md
    bad = [{"type": "hardware", "time": "2021", "spare_hosts": -1}]
    r = _import(invoke, store_path, tmp_path / "bad.jsonl", bad, code=1)
    assert "line 1: hosts and gpus_per_host are at least 1, gpus and spare_hosts at least 0" in (
        r.stderr
    )


def test_an_attempt_known_by_its_duration(invoke, tmp_path: Path, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    # "the three longest attempts so far, in the two weeks before December 16, lasted 1.5, 2.8
    # and 2 days": when each ran is a range, how long it ran is stated
    rows = [
        {"type": "attempt", "label": "12.20", "start": "2021-12-02/2021-12-16",
         "end": "2021-12-02/2021-12-16", "status": "ended", "duration": "2.8 days"},
        {"type": "attempt", "label": "12.21", "start": "2021-12-02/2021-12-16",
         "end": "2021-12-02/2021-12-16", "status": "ended", "duration": "~36 h"},
        {"type": "attempt", "label": "12.22", "start": "2021-12-17T00:00:00Z",
         "end": "2021-12-18T00:00:00Z", "status": "crashed", "duration": 86400},
    ]  # fmt: skip
    _import(invoke, store_path, tmp_path / "durations.jsonl", rows)
    got = _sql(
        invoke,
        store_path,
        "select label, duration_s, duration_stated_s, duration_approx from attempts order by label",
    )
    assert got == [
        {"label": "12.20", "duration_s": None, "duration_stated_s": 241920.0,
         "duration_approx": None},
        {"label": "12.21", "duration_s": None, "duration_stated_s": 129600.0,
         "duration_approx": True},
        {"label": "12.22", "duration_s": 86400.0, "duration_stated_s": 86400.0,
         "duration_approx": None},
    ]  # fmt: skip
    # Stated, not summed: the wall time of the attempts known only to a range stays unknown.
    walls = _sql(invoke, store_path, "select label, wall_s from attempt_time order by label")
    assert [w["wall_s"] for w in walls] == [None, None, 86400.0]
    out = tmp_path / "site"
    invoke(["chronicle", RUN, "--out", str(out), "--store", str(store_path)])
    md = (out / "chronicle.md").read_text()
    assert "attempt 12.20 ended, having run 2 d 19 h (as stated)" in md
    assert "attempt 12.21 ended, having run ≈ 1 d 12 h (as stated)" in md
    bad = [
        {"type": "attempt", "label": "1.00", "start": "2021-12-02", "end": "2021-12-03",
         "status": "ended", "duration": "a while"},
        {"type": "attempt", "label": "1.01", "start": "2021-12-04", "end": "2021-12-05",
         "status": "ended", "duration": -3},
    ]  # fmt: skip
    r = _import(invoke, store_path, tmp_path / "bad.jsonl", bad, run="other", code=1)
    assert "line 1: duration 'a while' is not a duration" in r.stderr
    assert "line 2: duration -3 is not a duration above 0" in r.stderr
