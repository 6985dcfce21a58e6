"""Metrics from the output of a real command, recorded when the attempt ends (#4, part 1)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from logbook.query import run_sql
from logbook.store import Store

TRAINER = r"""
import json, sys
for step in range(1, 201):
    if step % 4 == 0:
        print(f"step={step} loss={1/step:.6f} lr=3e-4 tokens/s=12.5k")
    elif step % 4 == 1:
        print(json.dumps({"step": step, "loss": 1/step, "grad_norm": float("nan") if step == 101 else 1.0}))
    elif step % 4 == 2:
        print({"loss": round(1/step, 6), "learning_rate": 3e-4, "epoch": step / 200}, "step", step)
    else:
        print(f" iteration {step:8d}/     200 | lm loss: {1/step:.6E} | grad norm: 0.5 |", file=sys.stderr)
    if step % 50 == 0:
        print("Loading 3 shards from /data/web, version 2.3.0")
"""


def _metrics(
    store_path: Path, sql: str = "select step, name, value from metrics order by step, name"
) -> list[dict]:
    return run_sql(Store(store_path), sql).to_pylist()


def test_every_format_on_stdout_and_stderr_is_recorded(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "t.py"
    script.write_text(TRAINER)
    run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "m",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
        check=0,
    )
    losses = _metrics(store_path, "select step, value from metrics where name = 'loss'")
    # A line with no step of its own (the dict repr) counts at the last step seen.
    want = {(s - 1 if s % 4 == 2 else s, round(1 / s, 6)) for s in range(1, 201)}
    assert {(r["step"], round(r["value"], 6)) for r in losses} == want and len(losses) == 200
    names = {r["name"] for r in _metrics(store_path, "select distinct name from metrics")}
    assert {"loss", "learning_rate", "tokens_per_s", "grad_norm", "epoch"} <= names
    [nan] = _metrics(
        store_path, "select value from metrics where name = 'grad_norm' and step = 101"
    )
    assert math.isnan(nan["value"])
    assert not any(n.startswith(("version", "shards")) for n in names)


def test_metrics_command_downsamples(run_logbook, invoke, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "t.py"
    script.write_text("for s in range(1, 1001):\n    print(f'step={s} loss={1000 - s}')\n")
    run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "d",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
        check=0,
    )
    rows = json.loads(
        invoke(
            [
                "metrics",
                "d",
                "--name",
                "loss",
                "--every",
                "100",
                "--store",
                str(store_path),
                "--format",
                "json",
            ]
        ).stdout
    )
    # Buckets end on multiples of --every (#17): the last point of steps 1-100, 101-200, ...
    assert [(r["step"], r["value"]) for r in rows] == [
        (s, 1000.0 - s) for s in range(100, 1001, 100)
    ]


def test_regex_mode_and_none(run_logbook, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "t.py"
    script.write_text(
        "for s in range(1, 6):\n    print(f'[{s}] perplexity is {s * 1.5} now; step={s}')\n"
    )
    run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "r",
        "--no-capture",
        "--metrics",
        r"regex:\[(?P<step>\d+)\] perplexity is (?P<ppl>[\d.]+)",
        "--",
        sys.executable,
        str(script),
        check=0,
    )
    assert [(r["step"], r["name"], r["value"]) for r in _metrics(store_path)] == [
        (s, "ppl", s * 1.5) for s in range(1, 6)
    ]
    run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "n",
        "--no-capture",
        "--metrics",
        "none",
        "--",
        sys.executable,
        str(script),
        check=0,
    )
    [row] = run_sql(Store(store_path), "select last_step from attempts where run = 'n'").to_pylist()
    assert row["last_step"] == 5 and len(_metrics(store_path)) == 5  # steps still seen, no metrics


def test_a_bad_metrics_mode_is_refused_before_start(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    p = run_logbook(
        "run", "--store", str(store_path), "--metrics", "regex:(unclosed", "--", "true", check=1
    )
    assert b"Error:" in p.stderr and b"Traceback" not in p.stderr
    p = run_logbook(
        "run", "--store", str(store_path), "--metrics", "sometimes", "--", "true", check=1
    )
    assert b"Error:" in p.stderr


def test_ten_thousand_names_are_capped_and_counted(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "t.py"
    script.write_text("for i in range(10000):\n    print(f'step={i} metric_{i}=1.5')\n")
    run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "many",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
        check=0,
    )
    [n] = _metrics(store_path, "select count(distinct name) as n from metrics")
    assert n["n"] == 1000
    [warning] = run_sql(
        Store(store_path), "select message from events where kind = 'logbook_warning'"
    ).to_pylist()
    assert "9000 values of 9000 more names were not" in warning["message"]


def test_detectors_turn_the_output_into_instability_events(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "spiky.py"
    script.write_text(
        "import math, random\nrng = random.Random(0)\n"
        "for s in range(1, 1201):\n"
        "    loss = (8 * (s + 10) ** -0.3 + 1.5) * (1 + rng.gauss(0, 0.03))\n"
        "    if s == 900: loss *= 1.7\n"
        "    if s == 1100: loss = math.nan\n"
        "    print(f'step={s} loss={loss:.5f}')\n"
    )
    run_logbook(
        "run",
        "--store",
        str(store_path),
        "--run",
        "sp",
        "--no-capture",
        "--",
        sys.executable,
        str(script),
        check=0,
    )
    events = run_sql(
        Store(store_path),
        "select kind, step, source from events where source = 'detector' order by step",
    ).to_pylist()
    assert [(e["kind"], e["step"]) for e in events] == [("loss_spike", 900), ("nan", 1100)]


def test_unknown_detector_settings_are_refused(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "logbook.toml").write_text("[detectors]\nspike = 3\n")
    p = run_logbook("run", "--store", str(store_path), "--", "true", cwd=tmp_path, check=1)
    assert b"unknown setting spike" in p.stderr


FLOOD = r"""
import sys
n = int(sys.argv[1])
pad = "-" * 80  # long lines: a big flood in few lines, so the test stays quick
block = "".join(f"step={i} loss={1 + i % 1000 / 1000:.4f} {pad}{'.' * (i % 7)}\n" for i in range(n))
sys.stdout.write(block)  # faster than the live reader: most of it is skipped, then caught up
"""


def _wait_parsed(store_path: Path, timeout: float = 120.0) -> None:
    """Wait for every attempt's logs to be marked parsed (the background finish of #15)."""
    from logbook.store import coverage

    deadline = time.monotonic() + timeout
    dirs = list(store_path.glob("logs/run=*/*"))
    while time.monotonic() < deadline:
        if all((coverage.read(d) or {}).get("complete") for d in dirs):
            return
        time.sleep(0.2)
    raise AssertionError(f"logs not parsed after {timeout} s")


def test_a_flood_of_metric_lines_is_all_on_record_after_the_background_finish(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """No output is skipped any more (#15): what the second after the end could not parse is
    parsed by a background process, and every line is on record once it ends, exactly once."""
    script, n = tmp_path / "flood.py", 100_000  # about 11 MB
    script.write_text(FLOOD)
    p = run_logbook(
        "run", "--store", str(store_path), "--no-capture", "--catch-up", "0", "--",
        sys.executable, str(script), str(n), check=0,
    )  # fmt: skip
    assert p.stdout.count(b"\n") == n
    [warning] = run_sql(
        Store(store_path), "select message, data from events where kind = 'logbook_warning'"
    ).to_pylist()
    data = json.loads(warning["data"])
    assert data["unparsed_bytes"]["stdout"] > 0 and data["finisher_pid"] > 0
    assert (
        f"a background process (pid {data['finisher_pid']}) is parsing them" in warning["message"]
    )
    assert b"not yet parsed" in p.stderr
    _wait_parsed(store_path)
    [counts] = _metrics(
        store_path,
        "select count(*) as points, count(distinct step) as steps, min(step) as lo, "
        "max(step) as hi from metrics where name = 'loss'",
    )
    assert counts == {"points": n, "steps": n, "lo": 0, "hi": n - 1}
    # The attempt says the steps of the whole log, not those read before the end (show, lost work).
    [row] = run_sql(
        Store(store_path), "select first_step, last_step, status from attempts"
    ).to_pylist()
    assert (row["first_step"], row["last_step"], row["status"]) == (0, n - 1, "completed")


def _end_of(log: Path, lines: int, budget_s: float) -> tuple[Any, list[int], list[dict]]:
    """A Progress stopped over a log of `lines` metric lines that nobody parsed yet."""
    from logbook.record.parsers import LineParser
    from logbook.supervisor import progress

    log.write_bytes(b"".join(b"step=%d loss=0.5\n" % i for i in range(lines)))
    seen: list[int] = []
    covered: list[dict] = []
    p = progress.Progress(
        [log],
        None,
        parser=LineParser("auto"),
        on_metrics=lambda points, t, log: seen.append(points.num_rows),
        on_parsed=covered.append,
        end_budget_s=budget_s,
    )
    p.stop()
    return p, seen, covered


def test_a_last_line_without_an_end_is_parsed_by_the_run_itself(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Output that stops mid-line (no newline after the last value): parsed at the end, not left
    to a background process."""
    from logbook.store import coverage

    p = run_logbook(
        "run", "--store", str(store_path), "--run", "r", "--no-capture", "--",
        sys.executable, "-c", "import sys, time; sys.stdout.write('step=1 loss=0.5\\nstep=2 loss=0.25'); "
        "sys.stdout.flush(); time.sleep(1.5)",  # the follower reads the unended line meanwhile
        check=0,
    )  # fmt: skip
    assert b"not yet parsed" not in p.stderr
    assert [(r["step"], r["value"]) for r in _metrics(store_path)] == [(1, 0.5), (2, 0.25)]
    [log_dir] = store_path.glob("logs/run=r/*")
    doc = coverage.read(log_dir) or {}
    assert doc.get("complete") and not doc.get("finisher")


def test_a_rest_that_fits_the_budget_is_parsed_at_the_end(tmp_path: Path) -> None:
    p, seen, covered = _end_of(tmp_path / "stdout.log", 20_000, 1.0)
    assert p.unparsed == {} and not p.handed_over and sum(seen) == 20_000
    assert covered[-1]["streams"]["stdout"]["to"] == (tmp_path / "stdout.log").stat().st_size
    assert p.end_parse_s < 1.0


def test_a_rest_that_cannot_fit_is_handed_over_whole_without_holding_the_exit(
    tmp_path: Path,
) -> None:
    """Parsing part of a flood would hold the exit for the whole budget and still leave the
    background finish most of it: none is parsed, at once (#15)."""
    log = tmp_path / "stdout.log"
    p, seen, covered = _end_of(log, 1_000_000, 0.3)
    assert p.handed_over and sum(seen) == 0
    assert p.unparsed == {"stdout": log.stat().st_size}
    assert covered[-1]["streams"]["stdout"]["to"] == 0
    assert p.end_parse_s < 0.3


def test_a_flood_s_end_does_not_wait_for_the_chunk_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The follower is mid-chunk when the command ends and the rest cannot fit: the end hands
    it all over at once, its chunk included, instead of waiting for that chunk (#15)."""
    import threading

    from logbook.record.parsers import LineParser
    from logbook.supervisor import progress

    monkeypatch.setattr(progress, "PRIOR_RATE", 1e6)  # 3 MB left: more than 1 s can parse
    log = tmp_path / "stdout.log"
    log.write_bytes(b"".join(b"step=%d loss=0.5\n" % i for i in range(200_000)))
    seen: list[int] = []
    p = progress.Progress(
        [log], None, parser=LineParser("auto"), end_budget_s=1.0,
        on_metrics=lambda points, t, log: seen.append(points.num_rows),
    )  # fmt: skip
    inside, release = threading.Event(), threading.Event()
    scan = p._scan_chunk

    def slow_scan(chunk: bytes, stamp: Any) -> Any:
        inside.set()
        release.wait(5)
        return scan(chunk, stamp)

    monkeypatch.setattr(p, "_scan_chunk", slow_scan)
    p.saw_output()
    p.start()
    try:
        assert inside.wait(5)
        p.stop()
    finally:
        release.set()
    assert p.handed_over and p.end_parse_s < 0.5  # it waited 0.85 s for the chunk before
    assert p.unparsed == {"stdout": log.stat().st_size} and seen == []


def test_a_flood_s_end_waits_for_the_part_the_follower_is_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part under way when the end gives up on the follower is finished before `stop` returns:
    the end's coverage counts its points as parsed, and the process may exit right after (2.7 M
    lines: 64,528 were once lost so, on record nowhere and never parsed again)."""
    import threading

    from logbook.record.parsers import LineParser
    from logbook.supervisor import progress

    monkeypatch.setattr(progress, "PRIOR_RATE", 1e6)  # 3 MB left: more than 1 s can parse
    log = tmp_path / "stdout.log"
    log.write_bytes(b"".join(b"step=%d loss=0.5\n" % i for i in range(200_000)))
    writing, release, written = threading.Event(), threading.Event(), []

    def on_parsed(coverage: dict) -> None:  # the follower's first chunk: a slow part
        if not written and threading.current_thread().name == "logbook-progress":
            writing.set()
            release.wait(5)
            written.append(coverage["streams"]["stdout"]["to"])

    p = progress.Progress([log], None, parser=LineParser("auto"), on_parsed=on_parsed)
    p.saw_output()
    p.start()
    assert writing.wait(5)
    stopper = threading.Thread(target=p.stop)
    stopper.start()
    stopper.join(0.5)
    alive = stopper.is_alive()
    release.set()
    stopper.join(5)
    assert alive and written and p.coverage()["streams"]["stdout"]["to"] == written[0]


def test_the_end_parses_for_at_most_its_budget_and_the_coverage_names_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the rate was overestimated, the deadline still holds, and the coverage stops at a
    line's end."""
    from logbook.supervisor import progress

    monkeypatch.setattr(progress, "PRIOR_RATE", 1e12)  # as if it all fitted
    log = tmp_path / "stdout.log"
    p, seen, covered = _end_of(log, 1_000_000, 0.3)
    assert p.end_parse_s < 1.0 and not p.handed_over
    to = covered[-1]["streams"]["stdout"]["to"]
    assert p.unparsed == {"stdout": log.stat().st_size - to} and to > 0
    # Every line before `to` was parsed, none after: the rest is whole lines.
    assert sum(seen) == log.read_bytes()[:to].count(b"\n")


def test_what_the_end_left_is_parsed_by_the_next_writer_when_no_finisher_runs(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The raw log is the write-ahead log of metrics: the lines the end had no time for, when
    the background finish did not run, are parsed by the next command that writes (here
    `logbook doctor`), once and only once."""
    script, n = tmp_path / "flood.py", 100_000
    script.write_text(FLOOD)
    run_logbook(
        "run", "--store", str(store_path), "--no-capture", "--catch-up", "0", "--",
        sys.executable, str(script), str(n), check=0, env={"LOGBOOK_TEST_NO_FINISHER": "1"},
    )  # fmt: skip
    [before] = _metrics(store_path, "select count(*) as n from metrics where name = 'loss'")
    assert before["n"] < n
    # A flood's end writes none of the points parsed since the last part (the exit does not wait
    # for them): what is on record is exactly the lines the coverage on disk names, and the
    # warning counts the bytes beyond it, which are what the finish (here doctor) parses.
    from logbook.store import coverage

    [log_dir] = store_path.glob("logs/run=*/*")
    cov = coverage.read(log_dir)
    assert cov is not None and not cov["complete"]
    to = int((cov["streams"].get("stdout") or {}).get("to") or 0)
    raw = (log_dir / "stdout.log").read_bytes()
    assert before["n"] == raw[:to].count(b"\n")
    [warning] = run_sql(
        Store(store_path), "select data from events where kind = 'logbook_warning'"
    ).to_pylist()
    assert json.loads(warning["data"])["unparsed_bytes"] == {"stdout": len(raw) - to}
    found = run_logbook("doctor", "--store", str(store_path), check=1)  # 1: it found (and fixed)
    assert b"were never parsed" in found.stdout
    run_logbook("compact", "--store", str(store_path), check=0)
    [after] = _metrics(
        store_path,
        "select count(*) as n, count(distinct step) as steps from metrics where name = 'loss'",
    )
    assert after == {"n": n, "steps": n}
