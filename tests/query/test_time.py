"""Time that never runs backwards nor forever, and says unknown for what cannot be known (#16):
overlapping attempts counted once, an open imported attempt counted to its last evidence, hung
time from the last progress, no step times = unknown, incident counts of 0."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from helpers import T0, logbook_cmd

from logbook.query import run_sql
from logbook.store import Store


def _at(s: int) -> str:
    """2026-01-01 plus `s` seconds, as the import reads it."""
    return (T0 + timedelta(seconds=s)).isoformat()


# Seconds after 2026-01-01 00:00 (h = 3600 s):
#   1.00   0-10000 crashed; steps 100 at 1000 and 1000 at 5500 (5 s a step); checkpoint 900.
#   1.01   8000-30000 hung (starts 2000 s before 1.00 ends); resumed from 900; steps 1100 at
#          12000 and 1600 at 22000 (20 s a step); no hung_s given: hung from 22000 to 30000.
#   1.02   31000-41000 hung, resumed from 1500, no step times: its split is unknown.
#   1.03   42000-52000 crashed, no step times.
#   1.04   53000-, still "running" in the file: steps 2000 at 55000 and 2400 at 60000, then a
#          note at 90000 (a person's words, not a sign of life). Counted to 60000, never to now.
HISTORY: list[dict[str, Any]] = [
    {"type": "attempt", "label": "1.00", "start": _at(0), "end": _at(10000),
     "status": "crashed", "class": "communication", "last_checkpoint_step": 900},
    {"type": "metric", "time": _at(1000), "step": 100, "name": "loss", "value": 4.0},
    {"type": "metric", "time": _at(5500), "step": 1000, "name": "loss", "value": 3.0},
    {"type": "attempt", "label": "1.01", "start": _at(8000), "end": _at(30000),
     "status": "hung", "resumed_from": 900},
    {"type": "metric", "attempt": "1.01", "time": _at(12000), "step": 1100, "name": "loss",
     "value": 2.9},
    {"type": "metric", "attempt": "1.01", "time": _at(22000), "step": 1600, "name": "loss",
     "value": 2.8},
    {"type": "attempt", "label": "1.02", "start": _at(31000), "end": _at(41000),
     "status": "hung", "resumed_from": 1500},
    {"type": "attempt", "label": "1.03", "start": _at(42000), "end": _at(52000),
     "status": "crashed", "class": "gpu_hardware"},
    {"type": "attempt", "label": "1.04", "start": _at(53000), "status": "running"},
    {"type": "metric", "time": _at(55000), "step": 2000, "name": "loss", "value": 2.5},
    {"type": "metric", "time": _at(60000), "step": 2400, "name": "loss", "value": 2.4},
    {"type": "note", "time": _at(90000), "text": "we wrote the paper"},
    {"type": "event", "time": _at(20000), "kind": "data_mix_change", "message": "more code",
     "mix": {"web": 0.6, "code": 0.4}},
    {"type": "attempt", "run": "calm", "label": "1.00", "start": _at(0), "end": _at(100),
     "status": "completed"},
]  # fmt: skip


def _imported(invoke, store_path: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    history = tmp_path / "h.jsonl"
    history.write_text("".join(json.dumps(row) + "\n" for row in HISTORY))
    invoke(["import", str(history), "--run", "h", "--store", str(store_path)])
    return store_path


def _json(invoke, *args: str) -> Any:  # type: ignore[no-untyped-def]
    return json.loads(invoke([*args, "--format", "json"]).stdout)


def test_goodput_counts_each_second_once_and_says_what_is_unknown(  # type: ignore[no-untyped-def]
    invoke, store_path: Path, tmp_path: Path
) -> None:
    s = str(_imported(invoke, store_path, tmp_path))
    each = _json(invoke, "goodput", "h", "--each", "--store", s)
    keys = ("label", "wall_s", "productive_s", "lost_s", "hung_s", "downtime_before_s",
            "startup_s", "unknown_s", "overlap_s")  # fmt: skip
    assert [tuple(e[k] for k in keys) for e in each] == [
        ("1.00", 10000, 8500, 500, 0, 0, 1000, 0, 0),
        ("1.01", 20000, 8000, 2000, 8000, 0, 2000, 0, 2000),
        ("1.02", 10000, 0, None, None, 1000, None, 10000, 0),
        ("1.03", 10000, 0, None, 0, 1000, None, 10000, 0),
        ("1.04", 7000, 5000, 0, 0, 1000, 2000, 0, 0),
    ]
    assert "overlaps 1.00" in each[1]["note"]
    assert each[4]["open"] is True and "last evidence" in each[4]["note"]
    assert [e["open"] for e in each[:4]] == [False] * 4
    total = {c["category"]: c for c in _json(invoke, "goodput", "h", "--store", s)}
    assert {k: c["seconds"] for k, c in total.items()} == {
        "productive": 21500, "lost work": 2500, "hung": 8000, "downtime": 3000,
        "start-up": 5000, "checkpoints": 0, "checkpoint restore": 0, "evaluation": 0,
        "compilation": 0, "data loading": 0, "unknown": 20000, "total": 60000,
    }  # fmt: skip  # first start to last evidence, once


def test_incidents_never_run_backwards_and_name_the_unknown(  # type: ignore[no-untyped-def]
    invoke, store_path: Path, tmp_path: Path
) -> None:
    s = str(_imported(invoke, store_path, tmp_path))
    each = _json(invoke, "incidents", "h", "--each", "--store", s)
    keys = ("label", "lost_work_s", "hung_s", "downtime_s", "time_lost_s")
    assert [tuple(i[k] for k in keys) for i in each] == [
        ("1.00", 500, 0, 0, 2500),  # 1.01's start-up from 1.00's end: 10000-12000
        ("1.01", 2000, 8000, 1000, None),  # 1.02's start-up is unknown
        ("1.02", None, None, 1000, None),
        ("1.03", None, 0, 1000, None),
    ]
    assert "1.01 started 2000 s before" in each[0]["note"]
    assert "no step times" in each[1]["unknown"] and "1.02" in each[1]["unknown"]
    assert "hung" in each[2]["unknown"]
    by_class = {r["class"]: r for r in _json(invoke, "incidents", "h", "--store", s)}
    # MTBF over the union of the attempts' time: 57000 s (1.04 to its last evidence)
    assert by_class["all failures"]["count"] == 4
    assert by_class["all failures"]["mtbf_s"] == 57000 / 4
    assert by_class["all failures"]["downtime_s"] == 3000
    # unknown parts never add as 0: the known part, said to be a floor (#16)
    assert by_class["all failures"]["time_lost_s"] == 2500
    assert by_class["all failures"]["at_least"] == "lost_steps, time_lost_s, hung_s"
    assert by_class["communication"]["at_least"] is None
    assert by_class["communication"]["time_lost_s"] == 2500
    # 1.01 hung 8000 s, 1.02 an unknown time: at least 8000 s
    assert by_class["hung"]["hung_s"] == 8000 and "hung_s" in by_class["hung"]["at_least"]
    assert "1.04" in by_class["all failures"]["note"]  # open: counted to its last evidence
    calm = _json(invoke, "incidents", "calm", "--store", s)
    assert [(r["class"], r["count"], r["time_lost_s"], r["mtbf_s"]) for r in calm] == [
        ("all failures", 0, 0, None)
    ]


def test_show_and_runs_count_an_open_attempt_to_its_last_evidence(  # type: ignore[no-untyped-def]
    invoke, store_path: Path, tmp_path: Path
) -> None:
    s = str(_imported(invoke, store_path, tmp_path))
    show = _json(invoke, "show", "h", "--store", s)
    assert [(a["label"], a["duration_s"], a["downtime_s"]) for a in show] == [
        ("1.00", 10000, 0), ("1.01", 22000, 1000), ("1.02", 10000, 1000),
        ("1.03", 10000, 1000), ("1.04", 7000, None),
    ]  # fmt: skip
    assert "open" in show[4]["note"] and "overlaps 1.00" in show[1]["note"]
    runs = {r["run"]: r for r in _json(invoke, "runs", "--store", s)}
    assert runs["h"]["wall_s"] == 57000
    assert runs["h"]["last_end"].startswith("2026-01-01T16:40:00")  # 60000 s: 1.04's last metric
    assert "1.04" in runs["h"]["note"] and "1.01 overlaps 1.00" in runs["h"]["note"]
    assert runs["calm"]["wall_s"] == 100 and runs["calm"]["note"] is None


def test_data_mix_shows_imported_changes(invoke, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = str(_imported(invoke, store_path, tmp_path))
    rows = _json(invoke, "data-mix", "h", "--store", s)
    assert [(r["attempt"], r["source"], r["weight"], r["change"]) for r in rows] == [
        ("1.01", "web", 0.6, "more code"),
        ("1.01", "code", 0.4, "more code"),
    ]
    assert {r["declared_by"] for r in rows} == {"import"}


def test_a_live_attempt_counts_to_now_and_an_ended_run_keeps_its_figures(  # type: ignore[no-untyped-def]
    invoke, store_path: Path, tmp_path: Path
) -> None:
    script = tmp_path / "t.py"
    script.write_text(
        "import sys, time\n"
        "for i in range(1, 4):\n"
        "    print(f'step={i} loss={1 / i:.3f}', flush=True)\n"
        "    time.sleep(0.1)\n"
        "time.sleep(float(sys.argv[1]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = logbook_cmd("run", "--store", str(store_path), "--run", "live", "--no-capture",
                       "--sample-every", "0", "--", sys.executable, str(script), "4")  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (store_path / "_journal").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        [row] = _json(invoke, "goodput", "live", "--each", "--store", str(store_path))
        began = run_sql(Store(store_path), "select start_time from attempts").column(0)[0]
        assert row["open"] is False and "counted to now" in row["note"]
        elapsed = time.time() - began.as_py().timestamp()
        assert 1.0 < row["wall_s"] <= elapsed + 0.5
    finally:
        assert proc.wait(timeout=60) == 0
    [row] = _json(invoke, "goodput", "live", "--each", "--store", str(store_path))
    assert row["note"] is None and row["open"] is False and row["unknown_s"] == 0
    [a] = run_sql(Store(store_path), "select duration_s from attempts").to_pylist()
    assert abs(row["wall_s"] - round(a["duration_s"], 1)) < 0.11


def test_the_chronicle_says_unknown_rather_than_a_share(  # type: ignore[no-untyped-def]
    invoke, store_path: Path, tmp_path: Path
) -> None:
    s = str(_imported(invoke, store_path, tmp_path))
    out = tmp_path / "site"
    proc = subprocess.run(
        logbook_cmd("chronicle", "h", "--out", str(out), "--store", s),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    md = (out / "chronicle.md").read_text().replace("\\", "")  # unescaped Markdown
    # 20000 of 60000 s cannot be split; 21500 s were productive for certain
    assert re.search(
        r"^\| trained productively +\| unknown: 33\.3 % of the wall-clock cannot be split "
        r"\(attempts without step times, or whose lost work is not known\); at least 35\.8 % +\|",
        md,
        re.M,
    )  # cells are padded to their column
    assert not re.search(r"% of the wall-clock +\|", md)
    html = (out / "index.html").read_text()
    assert "at least 35.8 %" in html and "-2000" not in html and "-33" not in md
    assert ">unknown<" in (out / "img" / "incidents.svg").read_text()


def test_lost_work_is_bounded_by_the_attempt_that_lost_it(  # type: ignore[no-untyped-def]
    invoke, store_path: Path, tmp_path: Path
) -> None:
    # Two sparse points a day apart and one step apart give a pace of a day a step; the relaunch
    # rolls back 51 steps. At that pace 1.00 would have lost 51 days in 2 days of wall-clock.
    rows = [
        {"type": "attempt", "label": "1.00", "start": _at(0), "end": _at(2 * 86400),
         "status": "hung", "resumed_from": 0},
        {"type": "metric", "time": _at(3600), "step": 100, "name": "loss", "value": 3.0},
        {"type": "metric", "time": _at(86400 + 3600), "step": 101, "name": "loss", "value": 3.0},
        {"type": "attempt", "label": "1.01", "start": _at(2 * 86400 + 600),
         "end": _at(3 * 86400), "status": "completed", "resumed_from": 50},
        {"type": "metric", "time": _at(2 * 86400 + 1200), "step": 60, "name": "loss", "value": 3.0},
    ]  # fmt: skip
    history = tmp_path / "sparse.jsonl"
    history.write_text("".join(json.dumps(row) + "\n" for row in rows))
    s = str(store_path)
    invoke(["import", str(history), "--run", "sparse", "--store", s])
    [i] = _json(invoke, "incidents", "sparse", "--each", "--store", s)
    # at most its first step to its last (a day), as goodput splits it; hung from the last step
    assert (i["lost_steps"], i["lost_work_s"], i["hung_s"]) == (51, 86400, 86400 - 3600)
    # lost work + hung + downtime + 1.01's start-up: within the 2 days and 20 min it took
    assert i["time_lost_s"] == 86400 + 82800 + 600 + 600
    lost = {c["category"]: c["seconds"] for c in _json(invoke, "goodput", "sparse", "--store", s)}
    assert lost["lost work"] == 86400 and lost["hung"] == 82800


def test_an_open_attempt_counts_to_its_last_point(  # type: ignore[no-untyped-def]
    invoke, store_path: Path, tmp_path: Path
) -> None:
    """An open attempt whose last evidence is a point that names no step: its points are read
    (#19: they are read only when some attempt is open)."""
    history = tmp_path / "o.jsonl"
    rows = [
        {"type": "attempt", "label": "1.00", "start": _at(0), "status": "running"},
        {"type": "metric", "time": _at(700), "name": "loss", "value": 2.0},
    ]
    history.write_text("".join(json.dumps(row) + "\n" for row in rows))
    s = str(store_path)
    invoke(["import", str(history), "--run", "o", "--store", s])
    assert [e["wall_s"] for e in _json(invoke, "goodput", "o", "--each", "--store", s)] == [700]
