"""The bulk path of `logbook import` (logbook/importing/fast.py): plain metric rows checked in
DuckDB a block at a time must give what the row-by-row checks give, points, errors and runs alike."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import pytest

from logbook.importing import _collect, _collect_jsonl
from logbook.importing.collect import MAX_ERRORS, Collector
from logbook.importing.fast import take_metrics
from logbook.importing.read import jsonl_blocks, read_jsonl

T = "2021-10-20T10:00:00Z"

# Rows the bulk path takes: the shapes of a plain history.
PLAIN = [
    {"type": "metric", "time": T, "step": 1, "metrics": {"loss": 2.5, "lr": 3e-4, "gnorm": 1}},
    {"type": "metric", "time": T, "step": 2, "name": "Loss", "value": 2.25},
    {"type": "metric", "time": T, "name": "loss", "value": None},
    {"type": "metric", "time": T, "step": None, "name": "loss", "value": -0.0},
    {"type": "metric", "time": T, "step": -3, "name": "loss", "value": 5e-324},
    {"type": "metric", "time": T, "step": 2**63 - 1, "name": "loss", "value": 1.7976931348623157e308},
    {"type": "metric", "time": "2021-10-20T12:00:00+02:00", "step": 4, "name": "loss", "value": 0.1},
    {"type": "metric", "time": "2021-10-20T10:00:00.123456Z", "step": 5, "name": "loss", "value": 1},
    {"type": "metric", "time": "2021-10-20 10:00:00.5", "step": 6, "name": "loss", "value": 2},
    {"type": "metric", "time": "2021-10-20", "step": 7, "name": "loss", "value": 3},
    {"type": "metric", "time": "2021-10-20T10:00", "step": 8, "name": "loss", "value": 4},
    {"type": "metric", "run": "other", "time": T, "step": 9, "metrics": {"acc": 0.5}},
    {"type": "metric", "run": "", "time": T, "step": 10, "metrics": {"acc": 0.25}},
    {"type": "metric", "run": None, "time": T, "step": 11, "metrics": {"acc": 0.125}},
    {"type": "metric", "time": T, "step": 12, "metrics": {"tokens": 123456789012345678}},
]  # fmt: skip

# Lines the bulk path leaves to the row-by-row checks: Python's json reads them otherwise than
# DuckDB's (a trailing comma, a name twice, NaN), they are bad, or not plain.
LEFT = [
    line.replace("@T", T)
    for line in [
        '{"type": "metric", "time": "@T", "step": 1, "name": "loss", "value": 1,}',
        '{"type": "metric", "time": "@T", "metrics": {"loss": 1, "loss": 2}}',
        '{"type": "metric", "time": "@T", "step": 1, "step": 2, "name": "loss", "value": 1}',
        '{"type": "metric", "time": "@T", "name": "loss", "value": NaN}',
        '{"type": "metric", "time": "@T", "name": "loss", "value": Infinity}',
        '{"type": "metric", "time": "@T", "name": "loss", "value": 1e400}',
        '{"type": "metric", "time": "@T", "name": "loss", "value": "nan"}',
        '{"type": "metric", "time": "@T", "name": "loss", "value": "abc"}',
        '{"type": "metric", "time": "@T", "name": "loss", "value": true}',
        '{"type": "metric", "time": "@T", "step": 1.0, "name": "loss", "value": 1}',
        '{"type": "metric", "time": "@T", "step": 9223372036854775808, "name": "loss", "value": 1}',
        '{"type": "metric", "time": "@T", "step": "12", "name": "loss", "value": 1}',
        '{"type": "metric", "time": "@T", "name": "loss", "value": 1, "attempt": "1.00"}',
        '{"type": "metric", "time": "@T", "name": "loss", "value": 1, "stepp": 3}',
        '{"type": "metric", "time": "@T", "metrics": {}}',
        '{"type": "metric", "time": "@T", "metrics": "{\\"loss\\": 1}"}',
        '{"type": "metric", "time": "@T", "metrics": {"!!": 1}}',
        '{"type": "metric", "time": "@T", "name": "loss", "value": 1, "metrics": {"a": 1}}',
        '{"type": "metric", "time": "@T", "name": 5, "value": 1}',
        '{"type": "metric", "run": 0, "time": "@T", "name": "loss", "value": 1}',
        '{"type": "metric", "run": "bad name!", "time": "@T", "name": "loss", "value": 1}',
        '{"type": "metric", "time": 1634724000, "name": "loss", "value": 1}',
        '{"type": "metric", "time": "2021-10-20T10:00:00.1234567Z", "name": "loss", "value": 1}',
        '{"type": "metric", "time": "2021-02-30T10:00:00Z", "name": "loss", "value": 1}',
        '{"type": "metric", "time": "2021-10-20T24:00:00Z", "name": "loss", "value": 1}',
        '{"type": "metric", "time": "yesterday", "name": "loss", "value": 1}',
        '{"type": "metric", "name": "loss", "value": 1}',
        '{"type": "metric", "time": "@T", "name": "loss"}',
        '{"type": "Metric", "time": "@T", "name": "loss", "value": 1}',
        '{"type": "note", "time": "@T", "text": "not a metric"}',
        '\u00a0{"type": "metric", "time": "@T", "name": "loss", "value": 1}',
        "# a comment",
        "",
        "[1, 2]",
        '{"type": "metric", "time": "@T", "name": "loss", "value": 1} {}',
    ]
]


def collected(path: Path, *, run: str | None, bulk: bool) -> dict[str, Any]:
    """What an import's reading keeps of `path`, through the bulk path or row by row alone."""
    con = duckdb.connect(":memory:")
    con.execute("set TimeZone = 'UTC'")
    found = Collector(run, con, csv_strings=False)
    if bulk:
        _collect_jsonl(path, found, con, lambda _: None)
    else:
        _collect(read_jsonl(path), found, path, lambda _: None)
    found.flush()
    points = con.execute(
        "select line, run, time, step, name, value from m_new order by all"
    ).fetchall()
    return {
        # float.hex: the same bits (0.0 is not -0.0, nan is nan)
        "points": [(*p[:5], None if p[5] is None else float.hex(p[5])) for p in points],
        "errors": sorted(found.errors),
        "runs": list(found.runs.items()),
        "count": found.metric_count,
    }


def interleaved(others: list[str]) -> list[str]:
    lines = [json.dumps(r) for r in PLAIN]
    for i, line in enumerate(others):
        lines.insert(2 * i % len(lines), line)
    return lines


def test_the_bulk_path_reads_a_file_as_row_by_row_does(tmp_path: Path) -> None:
    """Plain rows, rows the bulk path leaves and bad rows, interleaved: the same points (to the
    bit), the same errors on the same lines, the same runs in the same order."""
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(interleaved(LEFT)) + "\n")
    bulk = collected(path, run="gpt", bulk=True)
    assert bulk == collected(path, run="gpt", bulk=False)
    assert 10 < len(bulk["errors"]) < MAX_ERRORS
    # Without --run, rows that name no run are bad, whichever way they are read (so many that
    # reading stops: what was kept after the last row listed is never written).
    no_run = collected(path, run=None, bulk=True)
    assert no_run["errors"] == collected(path, run=None, bulk=False)["errors"]
    assert "no run (give a run field, or --run)" in {why for _, why in no_run["errors"]}
    # Past MAX_ERRORS bad rows reading stops, and the same rows are listed.
    path.write_text("\n".join(interleaved(LEFT * 2)) + "\n")
    bulk = collected(path, run="gpt", bulk=True)
    assert bulk["errors"] == collected(path, run="gpt", bulk=False)["errors"]
    assert len(bulk["errors"]) == MAX_ERRORS
    path.write_text("\n".join(json.dumps(r) for r in PLAIN) + "\n" + "\n".join(LEFT[:6]) + "\n")
    bulk = collected(path, run="gpt", bulk=True)
    assert bulk == collected(path, run="gpt", bulk=False)
    # Python's json takes five of LEFT[:6] (a name twice: the last; NaN, Infinity, 1e400)
    assert bulk["count"] == 17 + 5
    assert [line for line, _ in bulk["errors"]] == [16]  # the trailing comma
    assert bulk["runs"] == [("gpt", 1), ("other", 12)]


def test_the_bulk_path_takes_plain_rows_and_leaves_the_others(tmp_path: Path) -> None:
    con = duckdb.connect(":memory:")
    con.execute("set TimeZone = 'UTC'")
    found = Collector("gpt", con, csv_strings=False)
    lines = [json.dumps(r) for r in PLAIN] + LEFT
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(lines))  # the last line without a newline
    (block,) = jsonl_blocks(path)
    left, runs = take_metrics(con, block, found)
    assert left == list(range(len(PLAIN), len(lines)))
    assert runs == {"gpt": 1, "other": 12}
    assert found.metric_count == 17
    # Names as row by row records them; times in UTC to the microsecond.
    points = con.execute(
        "select line, name, strftime(time, '%Y-%m-%dT%H:%M:%S.%f') from m_new order by all"
    ).fetchall()
    assert points[:3] == [(1, "grad_norm", "2021-10-20T10:00:00.000000"),
                          (1, "learning_rate", "2021-10-20T10:00:00.000000"),
                          (1, "loss", "2021-10-20T10:00:00.000000")]  # fmt: skip
    by_line = {line: t for line, _, t in points}
    assert by_line[7] == "2021-10-20T10:00:00.000000"  # +02:00
    assert by_line[8] == "2021-10-20T10:00:00.123456"
    assert by_line[9] == "2021-10-20T10:00:00.500000"
    assert by_line[10] == "2021-10-20T00:00:00.000000"


def test_a_line_not_utf8_goes_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    good = json.dumps(PLAIN[0]).encode()
    path.write_bytes(good + b"\n" + b'{"type": "metric", "name": "\xff"}\n' + good + b"\n")
    bulk = collected(path, run="gpt", bulk=True)
    assert bulk == collected(path, run="gpt", bulk=False)
    assert [(line, why[:10]) for line, why in bulk["errors"]] == [(2, "not UTF-8:")]
    assert bulk["count"] == 6


@pytest.fixture
def big_history(tmp_path: Path) -> tuple[Path, list[int]]:
    """Over one block of lines (8 MB): an attempt, 60,000 plain metric rows, and bad rows in
    both blocks, among them bad metric rows that look plain."""
    rows: list[str] = [
        json.dumps({"type": "attempt", "label": "1.00", "start": "2021-10-20T00:00:00Z"})
    ]
    for step in range(60_000):
        rows.append(
            json.dumps(
                {"type": "metric", "time": f"2021-10-20T{step // 3600 % 24:02d}:"
                 f"{step // 60 % 60:02d}:{step % 60:02d}Z", "step": step,
                 "metrics": {"loss": 3 - step * 1e-5, "lr": 1e-4, "grad_norm": step / 7}}
            )
        )  # fmt: skip
    bad = {
        500: '{"type": "metric", "time": "2021-10-20T01:00:00Z", "step": 1, "metrics": {"loss": "x"}}',
        20_000: '{"type": "note", "time": "2021-10-20T01:00:00Z"}',
        45_000: '{"type": "metric", "time": "2021-10-19T23:00:00Z", "name": "loss", "value": 1}',
        59_000: '{"type": "metric", "time": "2021-10-20T01:00:00Z", "value": 1, "name": "x",}',
    }  # fmt: skip
    for line, text in bad.items():
        rows[line - 1] = text
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(rows) + "\n")
    assert path.stat().st_size > 8 << 20
    return path, sorted(bad)


def test_bad_rows_of_a_big_file_are_named_by_line_in_one_pass(  # type: ignore[no-untyped-def]
    invoke, big_history: tuple[Path, list[int]], store_path: Path
) -> None:
    path, bad = big_history
    r = invoke(["import", str(path), "--run", "gpt", "--store", str(store_path)], code=1)
    assert f"{path} has 4 bad rows; nothing was imported" in r.stderr
    assert [int(s.split(":")[0]) for s in r.stderr.split("  line ")[1:]] == bad
    assert f"line {bad[0]}: loss 'x' is not a number" in r.stderr
    assert f"line {bad[1]}: no text" in r.stderr
    assert f"line {bad[2]}: no attempt of run gpt was running at 2021-10-19 23:00:00" in r.stderr
    assert f"line {bad[3]}: not JSON: " in r.stderr
    assert not store_path.exists()


def test_a_big_file_imports_every_point_once(  # type: ignore[no-untyped-def]
    invoke, big_history: tuple[Path, list[int]], store_path: Path, tmp_path: Path
) -> None:
    path, bad = big_history
    lines = path.read_text().splitlines()
    good = [line for i, line in enumerate(lines, 1) if i not in bad]
    path.write_text("\n".join(good) + "\n")
    r = invoke(["import", str(path), "--run", "gpt", "--store", str(store_path)])
    points = 3 * (len(good) - 1)
    assert f"1 attempt, 0 events, 0 notes, {points:,} metrics" in r.stderr
    out = invoke(
        ["query", "select count(*) n, count(distinct (step, name)) k, max(step) s, "
         "sum(value) v from metrics", "--store", str(store_path), "--format", "json"]
    ).stdout  # fmt: skip
    expect = sum(v for row in map(json.loads, good[1:]) for v in row["metrics"].values())
    got = json.loads(out)[0]
    assert (got["n"], got["k"], got["s"]) == (points, points, 59_999)
    # DuckDB sums in parallel, in another order: 1e-9 still sees one point lost or doubled (~1e-6)
    assert math.isclose(got["v"], expect, rel_tol=1e-9)
    again = invoke(["import", str(path), "--run", "gpt", "--store", str(store_path)])
    assert "0 attempts, 0 events, 0 notes, 0 metrics" in again.stderr
