"""The chronicle of a long hand-kept history (#16), imported with a real `logbook import` and built
with a real `logbook chronicle`: small numbers keep their digits, nothing says "None", each attempt's
end is one journal entry, rows of one time keep their file order, the decisions lead the journal,
and the Markdown tables line up."""

from __future__ import annotations

import json
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest
from helpers import logbook_cmd

RUN = "llm"
# Attempts that end (crashed, hung, preempted, completed), lr changes of a few 1e-5, a data-mix
# change, notes, and rows that share one time in an order that is neither by step nor by name.
HISTORY = [
    {
        "type": "attempt",
        "label": "1.00",
        "start": "2022-03-01T09:00:00Z",
        "end": "2022-03-01T20:00:00Z",
        "status": "crashed",
        "class": "communication",
        "reason": "NCCL timeout",
        "last_checkpoint_step": 900,
    },  # fmt: skip
    {
        "type": "note",
        "time": "2022-03-01T09:00:00Z",
        "step": 30,
        "text": "zulu: launch on 128 nodes",
    },  # fmt: skip
    {
        "type": "event",
        "time": "2022-03-01T09:00:00Z",
        "kind": "hardware_fault",
        "step": 10,
        "message": "alpha: node-3 had a bad link",
    },  # fmt: skip
    {
        "type": "event",
        "time": "2022-03-01T09:00:00Z",
        "kind": "cluster_change",
        "message": "mike: moved to partition B",
    },  # fmt: skip
    {
        "type": "event",
        "time": "2022-03-01T09:00:00Z",
        "kind": "note",
        "step": 20,
        "message": "bravo: same second, later in the file",
    },  # fmt: skip
    {
        "type": "metric",
        "time": "2022-03-01T12:00:00Z",
        "step": 500,
        "metrics": {"loss": 4.1, "lr": 4.45e-05},
    },  # fmt: skip
    {
        "type": "metric",
        "time": "2022-03-01T19:00:00Z",
        "step": 1000,
        "metrics": {"loss": 3.9, "lr": 4.45e-05},
    },  # fmt: skip
    {
        "type": "attempt",
        "label": "1.01",
        "start": "2022-03-01T21:00:00Z",
        "end": "2022-03-02T10:00:00Z",
        "status": "hung",
        "reason": "no output for 2 h",
        "resumed_from": 900,
        "last_checkpoint_step": 1500,
    },  # fmt: skip
    {
        "type": "event",
        "time": "2022-03-01T21:00:00Z",
        "kind": "hparam_change",
        "attempt": "1.01",
        "step": 900,
        "message": "lr: 4.45e-05 -> 4e-05",
        "key": "lr",
        "old": 4.45e-05,
        "new": 4e-05,
    },  # fmt: skip
    {
        "type": "event",
        "time": "2022-03-01T21:00:00Z",
        "kind": "hparam_change",
        "attempt": "1.01",
        "step": 900,
        "key": "warmup",
        "old": None,
        "new": 2000,
    },  # fmt: skip
    {
        "type": "event",
        "time": "2022-03-01T21:00:00Z",
        "kind": "data_mix_change",
        "attempt": "1.01",
        "step": 900,
        "message": "dropped the reddit shard",
    },  # fmt: skip
    {
        "type": "metric",
        "time": "2022-03-02T06:00:00Z",
        "step": 1600,
        "metrics": {"loss": 3.7, "lr": 4e-05},
    },  # fmt: skip
    {
        "type": "attempt",
        "label": "1.02",
        "start": "2022-03-02T11:00:00Z",
        "end": "2022-03-03T08:00:00Z",
        "status": "crashed",
        "class": "numerical",
        "reason": "loss NaN",
        "resumed_from": 1500,
        "last_checkpoint_step": 2500,
    },  # fmt: skip
    {
        "type": "metric",
        "time": "2022-03-02T20:00:00Z",
        "step": 2600,
        "metrics": {"loss": 3.5},
    },  # fmt: skip
    {
        "type": "event",
        "time": "2022-03-03T08:00:00Z",
        "kind": "crash",
        "attempt": "1.02",
        "step": 2700,
        "message": "loss became NaN at step 2700",
    },  # fmt: skip
    {
        "type": "attempt",
        "label": "1.03",
        "start": "2022-03-03T09:00:00Z",
        "end": "2022-03-03T19:00:00Z",
        "status": "preempted",
        "reason": "maintenance",
        "resumed_from": 2500,
        "last_checkpoint_step": 3000,
    },  # fmt: skip
    {
        "type": "event",
        "time": "2022-03-03T09:00:00Z",
        "kind": "software_change",
        "attempt": "1.03",
        "message": "upgraded to megatron 2.1",
    },  # fmt: skip
    {
        "type": "event",
        "time": "2022-03-03T09:00:00Z",
        "kind": "optimizer_change",
        "attempt": "1.03",
        "message": "Adam beta2 0.95 -> 0.98",
    },  # fmt: skip
    {
        "type": "metric",
        "time": "2022-03-03T15:00:00Z",
        "step": 3100,
        "metrics": {"loss": 3.3},
    },  # fmt: skip
    {
        "type": "attempt",
        "label": "2.00",
        "start": "2022-03-04T11:00:00Z",
        "end": "2022-03-05T10:00:00Z",
        "status": "completed",
        "resumed_from": 3000,
    },  # fmt: skip
    {
        "type": "metric",
        "time": "2022-03-05T09:00:00Z",
        "step": 4100,
        "metrics": {"loss": 3.1},
    },  # fmt: skip
]
SAME_SECOND = ("zulu:", "alpha:", "mike:", "bravo:")  # their file order at 09:00:00
DECISIONS = ("moved to partition B", "4.45e-05", "dropped the reddit shard", "megatron 2.1", "beta2")  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("history")
    path = root / "history.jsonl"
    path.write_text("".join(json.dumps({**row, "run": RUN}) + "\n" for row in HISTORY))
    store, out = root / "store", root / "site"
    for args in (("import", str(path)), ("chronicle", RUN, "--out", str(out))):
        proc = subprocess.run(
            logbook_cmd(*args, "--store", str(store)), capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
    return out


def _md(site: Path) -> str:
    """chronicle.md as it reads: Markdown escapes undone."""
    return re.sub(r"\\(.)", r"\1", (site / "chronicle.md").read_text()).replace("&gt;", ">")


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_small_numbers_keep_their_digits(site: Path) -> None:
    html = (site / "index.html").read_text()
    assert "<td>lr</td><td>4.45e-05</td><td>4e-05</td>" in html
    row = next(line for line in _md(site).splitlines() if re.match(r"\|[^|]+\| 1\.01 +\| lr ", line))  # fmt: skip
    assert re.search(r"\| 4\.45e-05 +\| 4e-05 +\|", row), row
    assert "0.00 " not in _section(_md(site), "## Hyperparameter", "## Compute")


def test_nothing_says_none(site: Path) -> None:
    for page in (
        "index.html",
        "chronicle.md",
        *(f"img/{p.name}" for p in (site / "img").iterdir()),
    ):
        assert not re.search(r"\bNone\b", (site / page).read_text()), page
    # a setting that was not set before reads so, in both pages
    assert "<td>warmup</td><td>not set</td><td>2000</td>" in (site / "index.html").read_text()


def test_each_end_is_one_journal_entry(site: Path) -> None:
    journal = _section(_md(site), "## Journal", "## The data")
    bullets = [line for line in journal.splitlines() if line.startswith("- ")]
    for label in ("1.00", "1.01", "1.02", "1.03"):
        ends = [
            b for b in bullets
            if re.search(rf"· {label} · .*(· (crash|hang|hang_stopped|preempted):|attempt {label} (crashed|hung|preempted))", b)
        ]  # fmt: skip
        assert len(ends) == 1, ends
    # what the file said about the crash of 1.02 is in its one entry
    (end,) = [b for b in bullets if "· 1.02 ·" in b and "crashed" in b]
    assert "loss NaN" in end and "loss became NaN at step 2700" in end
    assert not [b for b in bullets if "completed: completed" in b]


def test_a_hung_attempt_is_hung_everywhere(site: Path) -> None:
    """One word for the class of an attempt the hang watch stopped (#16), as incidents and goodput."""
    md, html = _md(site), (site / "index.html").read_text()
    for page in (md, html):
        assert not re.search(r"\bhang\b", page.replace("hang_stopped", ""))
        assert "hung (hung)" not in page
    assert "| hung " in _section(md, "## Incidents", "## Training curves")


def test_rows_of_one_time_keep_their_file_order(site: Path) -> None:
    for page in (_md(site), (site / "index.html").read_text()):
        journal = page[page.index('id="journal"' if "<html" in page else "## Journal") :]
        at = [journal.index(word) for word in SAME_SECOND]
        assert at == sorted(at), at


def test_the_decisions_lead_the_journal(site: Path) -> None:
    md = _md(site)
    decisions = _section(md, "## Decisions", "## Journal")
    at = [decisions.index(d) for d in DECISIONS]
    assert at == sorted(at), at
    for routine in ("NCCL timeout", "bad link", "launch on 128 nodes"):
        assert routine not in decisions
    html = (site / "index.html").read_text()
    assert html.index('id="decisions"') < html.index('id="journal"')
    assert "megatron 2.1" in _section(html, 'id="decisions"', 'id="journal"')


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_markdown_tables_line_up(site: Path) -> None:
    raw = (site / "chronicle.md").read_text()
    tables: list[list[str]] = [[]]
    for line in raw.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    assert len([t for t in tables if t]) >= 6
    for rows in (t for t in tables if t):
        pipes = {
            tuple(_width(row[: m.start()]) for m in re.finditer(r"(?<!\\)\|", row)) for row in rows
        }
        assert len(pipes) == 1, rows
