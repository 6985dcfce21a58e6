"""`logbook chronicle` on a real recorded run (tests/chronicle/conftest.py): what the pages say, that
nothing planted or secret comes out, anonymization, the data and its example queries, bad input."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pytest
from helpers import logbook_cmd

from chronicle.recorded_run import HOST, SECRET, SLIPPED, USER, Recorded
from logbook.chronicle.data import EXAMPLES


def _chronicle(
    store: Path, run: str, out: Path, *args: str, code: int = 0
) -> subprocess.CompletedProcess[str]:
    """`logbook chronicle RUN --out OUT` as a real process, its exit code checked."""
    proc = subprocess.run(
        logbook_cmd("chronicle", run, "--out", str(out), "--store", str(store), *args),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def site(recorded: Recorded, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    _chronicle(recorded.store, recorded.run, out)
    return out


def _text(site: Path) -> dict[str, str]:
    """Every text file of the site, and every string value of every Parquet file in it."""
    texts = {
        str(p.relative_to(site)): p.read_text()
        for p in site.rglob("*")
        if p.is_file() and p.suffix in (".html", ".md", ".svg")
    }
    con = duckdb.connect()
    for p in site.rglob("*.parquet"):
        cols = con.sql(f"select * from read_parquet('{p}') limit 0").columns
        dump = con.execute(
            "select string_agg(cast(columns(*) as varchar), '\n') from read_parquet(?)", [str(p)]
        ).fetchone()
        texts[str(p.relative_to(site))] = "\n".join(str(v) for v in (dump or ()) if v) + str(cols)
    return texts


def test_the_pages_tell_the_run(site: Path) -> None:
    html = (site / "index.html").read_text()
    md = (site / "chronicle.md").read_text()
    for page in (html, re.sub(r"\\(.)", r"\1", md)):  # Markdown as it reads, escapes undone
        for label in ("1.00", "1.01", "1.02"):
            assert label in page
        assert "gpu_oom" in page
        assert "CUDA out of memory" in page
        assert "books" in page  # the data source added by hand
        assert "For model cards and regulators" in page
        assert "Reproducibility card" in page
        assert "Stragglers" in page and "2.00x" in page  # 1.02's node 0 (recorded_run.py)
    # lineage: 1.01 resumed from the last checkpoint before the crash at 45, losing 5 steps
    row = re.search(r"<tr><td>1\.01</td>.*?</tr>", html, re.S)
    assert row and ">40<" in row.group(0)
    assert re.search(r"<tr><td>1\.00</td>(?:(?!</tr>).)*<td class=\"n\">5</td>", html, re.S)
    # the hyperparameter change, from the config and from the command line
    assert html.count("<td>lr</td><td>0.1</td><td>0.05</td>") == 2
    # figures: inline SVG in the page, files beside the Markdown
    assert html.count("<svg") >= 5
    for name in ("timeline", "incidents", "datamix", "curve-1-loss"):
        ET.parse(site / "img" / f"{name}.svg")
        assert f"img/{name}.svg" in md
    # the journal, day by day, with the notes
    assert "checkpoints copied to" in html
    assert re.search(r"<h3>\d{4}-\d\d-\d\d</h3>", html)
    # the repro card names the commit and the recorded diff
    assert "# tuned" in html
    assert re.search(r"<code>[0-9a-f]{40}</code>", html)


def test_planted_html_and_secrets_never_come_out(site: Path) -> None:
    texts = _text(site)
    html = texts["index.html"]
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(" in html
    assert 'src="http' not in html
    md = texts["chronicle.md"]
    assert "<script" not in md.lower() and "<img" not in md.lower()
    assert "&lt;script>" in md  # no tag can open without its "<"
    for name, text in texts.items():
        assert SECRET not in text, name
        assert SLIPPED not in text, name
    # the slipped token was redacted where it was, in the page and in the data
    assert "pushed with token=***" in html
    assert "pushed with token=***" in texts["data/events.parquet"]


def test_anonymize_replaces_hosts_users_and_homes(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "anon"
    _chronicle(recorded.store, recorded.run, out, "--anonymize")
    texts = _text(out)
    for name, text in texts.items():
        assert HOST not in text, name
        assert "gpu-node-17" not in text, name
        assert f"/home/{USER}" not in text, name
        assert not re.search(rf"\b{USER}\b", text), name
    html = texts["index.html"]
    assert "checkpoints copied to /home/user-1/ckpt on host-001" in html
    assert "host-001" in texts["data/attempts.parquet"]


def test_the_data_and_its_example_queries(recorded: Recorded, site: Path) -> None:
    data = site / "data"
    con = duckdb.connect()
    # every attempt row and metric of the run is there
    store_attempts = subprocess.run(
        logbook_cmd(
            "query",
            "--store",
            str(recorded.store),
            "--format",
            "csv",
            "select count(*) from attempt_changes where run = 'gpt'",
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    assert con.execute(f"select count(*) from '{data}/attempts.parquet'").fetchone() == (
        int(store_attempts),
    )
    assert con.execute(
        f"select count(distinct label) from '{data}/attempts.parquet'"
    ).fetchone() == (3,)
    assert con.execute(
        f"select max(step) from '{data}/metrics.parquet' where name = 'loss'"
    ).fetchone() == (160,)
    readme = (data / "README.md").read_text()
    assert "## attempts (version" in readme
    con.execute(f"set file_search_path = '{data}'")
    for title, sql in EXAMPLES:
        if "samples" in sql and not list((data / "samples").glob("*.parquet")):
            continue
        rows = con.execute(sql).fetchall()
        assert rows or "gpu_index" in sql, title  # no GPU here: the samples have no GPU rows
        assert sql in readme


def test_rebuilding_and_folders_that_are_not_chronicles(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "site"
    _chronicle(recorded.store, recorded.run, out)
    first = (out / "index.html").stat().st_mtime_ns
    _chronicle(recorded.store, recorded.run, out)  # a chronicle is replaced
    assert (out / "index.html").stat().st_mtime_ns >= first
    assert not list(tmp_path.glob(".site.building-*"))
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    proc = _chronicle(recorded.store, recorded.run, other, code=1)
    assert "is not empty and holds no chronicle" in proc.stderr
    assert "--force" in proc.stderr and "Traceback" not in proc.stderr
    assert not (other / "index.html").exists()
    _chronicle(recorded.store, recorded.run, other, "--force")
    assert (other / "index.html").exists() and (other / "notes.txt").read_text() == "keep me"


def test_unknown_run_is_a_clear_error(recorded: Recorded, tmp_path: Path) -> None:
    proc = _chronicle(recorded.store, "gtp", tmp_path / "x", code=1)
    assert 'no run "gtp"' in proc.stderr and "did you mean: gpt" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bare_run_still_builds_and_says_what_is_missing(tmp_path: Path) -> None:
    """No git, no metrics, no GPU, no data mix: a command that prints nothing and fails once."""
    store = tmp_path / ".logbook"
    proc = subprocess.run(
        logbook_cmd(
            "run",
            "--store",
            str(store),
            "--run",
            "bare",
            "--",
            "python3",
            "-c",
            "import sys; sys.exit(3)",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3
    out = tmp_path / "site"
    done = _chronicle(store, "bare", out)
    html = (out / "index.html").read_text()
    assert "No metrics were recorded" in html
    assert "No data mix was declared" in html
    assert "No GPU telemetry" in html
    assert "not a git repository" in html or "no git" in html.lower()
    assert "missing: No metrics were recorded" in done.stdout


def test_a_run_with_no_attempt_builds(tmp_path: Path) -> None:
    """Notes on record and no attempt yet (as an import of notes leaves it)."""
    from logbook.record.events import event_row
    from logbook.store import Store

    store = Store.open(tmp_path / ".logbook", create=True)
    store.write(
        "events", "planned", [event_row("planned", None, "note", "booked 64 nodes", source="cli")]
    )
    out = tmp_path / "site"
    _chronicle(store.root, "planned", out)
    html = (out / "index.html").read_text()
    assert "No attempts are on record for this run." in html
    assert "booked 64 nodes" in html
    assert "No attempts, so no failures." in html


def test_markdown_tables_keep_their_columns(site: Path) -> None:
    """A `|` in a recorded value (the config key tag|v) is escaped, so no row gains a column."""
    md = (site / "chronicle.md").read_text()
    assert "tag\\|v" in md
    tables: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    for rows in (t for t in tables if t):
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) == 1, rows


def test_progress_shows_on_a_terminal_only(recorded: Recorded, tmp_path: Path) -> None:
    """The stages go to stderr when it is a terminal (a real pseudo-terminal here), not when piped."""
    import os
    import pty

    args = logbook_cmd(
        "chronicle", recorded.run, "--out", str(tmp_path / "a"), "--store", str(recorded.store)
    )
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0
    assert b"reading the record" in seen and b"writing the pages" in seen
    piped = _chronicle(recorded.store, recorded.run, tmp_path / "b")
    assert "reading the record" not in piped.stderr and piped.stderr == ""


def test_anonymized_samples_number_unnamed_hosts_in_name_order(
    recorded: Recorded, tmp_path: Path
) -> None:
    """Samples parts are rewritten in parallel: a host that only the samples name still gets the
    same stand-in every time, by name order, whichever thread meets it first."""
    import shutil
    from datetime import datetime, timezone

    from logbook.store import Store

    store = tmp_path / "store"
    shutil.copytree(recorded.store, store)
    now = datetime.now(timezone.utc)
    for gpu, host in ((1, "zz-extra-node"), (0, "aa-extra-node")):  # a part each, z first
        Store(store).write(
            "samples",
            recorded.run,
            [{"attempt_id": "x", "time": now, "scope": "gpu", "gpu_index": gpu, "host": host}],
        )
    seen = []
    for build in ("one", "two"):
        out = tmp_path / build
        _chronicle(store, recorded.run, out, "--anonymize")
        data = duckdb.sql(
            f"select distinct host from '{out}/data/samples/*.parquet' order by host"
        ).fetchall()
        seen.append([h for (h,) in data])
        assert not any("extra" in str(h) for h in seen[-1])
    assert seen[0] == seen[1]
    stand_ins = duckdb.sql(
        f"select host from '{tmp_path}/one/data/samples/*.parquet' where attempt_id = 'x' "
        "order by gpu_index"
    ).fetchall()
    aa, zz = (h for (h,) in stand_ins)
    assert re.fullmatch(r"host-\d{3}", aa) and re.fullmatch(r"host-\d{3}", zz)
    assert aa < zz  # numbered by name, not by which part was met first
