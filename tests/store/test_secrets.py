"""Secrets a training prints, or keeps in its environment and config, never reach the store's tables
or the chronicle, whichever producer wrote them: real `logbook run`s, a real Python API call in the
child, then every string of every Parquet part and journal, and every file of the chronicle, scanned.
The raw logs are the training's own output and are left as they are."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import logbook_cmd

GH = "ghp_" + "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5"
HF = "hf_" + "Zy9xW8vU7tS6rQ5pO4nM3lK2jI1hG0fE9d"
PASSWORD = "hunter2secret"
SLACK = "https://hooks.slack.com/services/T01SECRET/B02SECRET/Xk9sEcReTsLaCkHoOk42"
NOTIFY = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"
DISCORD = "https://discord.com/api/webhooks/123456789012345678/DiscordSecretToken-abc_XYZ"
API_TOKEN = "ghp_" + "ApiN0teT0kenXyZ0123456789abcdefghijk"
ARGV_HOOK = "https://discordapp.com/api/webhooks/998877665544332211/ArgvDiscordSecret-Token_q"
# What must not appear anywhere: the tokens, the password, the secret parts of the webhook URLs.
PLANTED = {
    "github token": GH,
    "hugging face token": HF,
    "password": PASSWORD,
    "slack webhook (printed)": "T01SECRET/B02SECRET/Xk9sEcReTsLaCkHoOk42",
    "slack webhook (env)": "T000/B000/XXXXXXXX",
    "discord webhook (config)": "DiscordSecretToken-abc_XYZ",
    "github token (api note)": API_TOKEN,
    "discordapp webhook (argv)": "ArgvDiscordSecret-Token_q",
}

PRINTS = f"""
import sys
print("step=1 loss=2.0", flush=True)
print("pushing with {GH} to the hub {HF}", flush=True)
print("db password={PASSWORD} connected", flush=True)
print("alerts go to {SLACK}", file=sys.stderr, flush=True)
"""

CRASH = PRINTS + textwrap.dedent(
    f"""
    import logbook
    logbook.note("deploy key {API_TOKEN} used", step=1)
    logbook.event("deploy", "pushed with {API_TOKEN}", channel="{SLACK}", api_token="{API_TOKEN}")
    logbook.flush()
    raise RuntimeError("cannot push: {GH} {HF} password={PASSWORD} {SLACK}")
    """
)

HANG = PRINTS + "import time\ntime.sleep(120)\n"
# Deaf to the hang watch's SIGTERM, so the attempt stays open (and its journal live) for the grace.
DEAF = (
    PRINTS + "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(120)\n"
)


def _run(store: Path, run: str, script: Path, *extra: str, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [*_command(store, run, extra), sys.executable, str(script), "--notify", ARGV_HOOK],
        capture_output=True,
        env=env,
        timeout=120,
        cwd=script.parent,
    )
    assert proc.returncode != 0, proc.stderr.decode()[-2000:]  # crashed or hung, as planted


def _command(store: Path, run: str, extra: tuple[str, ...]) -> list[str]:
    return logbook_cmd("run", "--store", str(store), "--run", run, *extra, "--")


def _journal_of_a_killed_wrapper(store: Path, script: Path, env: dict[str, str]) -> list[Path]:
    """Kill -9 a wrapper once its journal holds the hang event (with the lines before the hang),
    and return copies of the journals it left (the next reader of the store folds them)."""
    import shutil
    import signal
    import time

    cmd = [*_command(store, "killed", ("--hang-timeout", "1", "--grace", "60")), sys.executable]
    wrapper = subprocess.Popen(
        [*cmd, str(script)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    journals = store / "_journal" / "run=killed"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            found = [p for p in journals.glob("*.jsonl") if '"kind": "hang"' in p.read_text()]
            if found:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no hang event journaled within 60 s")
    finally:
        wrapper.kill()
        wrapper.wait()
    for line in found[0].read_text().splitlines():  # the training is not ours to leave running
        row = json.loads(line).get("row") or {}
        if row.get("pid"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(row["pid"], signal.SIGKILL)
    copies = store.parent / "journals"
    shutil.copytree(journals, copies)
    return sorted(copies.glob("*.jsonl"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """A store holding a crash and a hang, both full of secrets, the crash run's chronicle, and
    the journal a killed wrapper left."""
    tmp = tmp_path_factory.mktemp("secrets")
    store = tmp / ".logbook"
    (tmp / "crash.py").write_text(CRASH)
    (tmp / "hang.py").write_text(HANG)
    (tmp / "deaf.py").write_text(DEAF)
    config = tmp / "config.yaml"
    config.write_text(f"lr: 0.001\nalerts: {DISCORD}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBOOK_")}
    env["NOTIFY_URL"] = NOTIFY
    _run(store, "crash", tmp / "crash.py", "--config", str(config), env=env)
    _run(
        store,
        "hang",
        tmp / "hang.py",
        "--hang-timeout",
        "2",
        "--grace",
        "1",
        "--config",
        str(config),
        env=env,
    )
    out = tmp / "chronicle"
    proc = subprocess.run(
        logbook_cmd("chronicle", "crash", "--out", str(out), "--store", str(store)),
        capture_output=True,
        env=env,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return store, out, _journal_of_a_killed_wrapper(store, tmp / "deaf.py", env)


def _strings(value: Any) -> list[str]:
    """Every string inside a value read from Parquet or JSON (lists and dicts walked)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _parquet_strings(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return _strings(pq.read_table(path).to_pylist())


def _leaks(texts: dict[str, list[str]]) -> list[str]:
    return [
        f"{what} in {where}"
        for where, strings in texts.items()
        for what, secret in PLANTED.items()
        if any(secret in s for s in strings)
    ]


def _store_strings(store: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in store.rglob("*"):
        rel = path.relative_to(store)
        if not path.is_file() or rel.parts[0] == "logs":
            continue
        if path.suffix == ".parquet":
            out[str(rel)] = _parquet_strings(path)
        elif path.suffix == ".jsonl":
            out[str(rel)] = _journal_strings(path)
        else:
            out[str(rel)] = [path.read_text(errors="replace")]
    return out


def _journal_strings(path: Path) -> list[str]:
    """Every string of a journal's rows, and its raw text (a secret split by JSON escaping or
    sitting outside the rows counts too)."""
    text = path.read_text()
    return [text, *_strings([json.loads(line) for line in text.splitlines()])]


Recorded = tuple[Path, Path, list[Path]]


def test_the_training_really_printed_the_secrets(recorded: Recorded) -> None:
    # The raw logs are the training's own output, not published: they keep what it printed. This
    # also shows the runs below did plant every printed secret.
    store, _, _ = recorded
    logs = "".join(p.read_text() for p in (store / "logs").rglob("*.log"))
    assert all(s in logs for s in (GH, HF, PASSWORD, SLACK))


def test_no_planted_secret_in_any_table_or_journal(recorded: Recorded) -> None:
    store, _, journals = recorded
    texts = _store_strings(store)
    assert any(k.endswith(".parquet") for k in texts)
    assert _leaks(texts) == []
    # The live journal a killed wrapper left: its hang event holds the lines before the hang.
    assert journals
    lines = {str(p): _journal_strings(p) for p in journals}
    assert _leaks(lines) == []
    assert any("stdout: db password=*** connected" in s for v in lines.values() for s in v)


def test_no_planted_secret_in_the_chronicle(recorded: Recorded) -> None:
    _, out, _ = recorded
    texts: dict[str, list[str]] = {}
    for path in out.rglob("*"):
        if path.suffix == ".parquet":
            texts[str(path.relative_to(out))] = _parquet_strings(path)
        elif path.suffix in (".html", ".md", ".svg", ".json", ".csv", ".txt"):
            texts[str(path.relative_to(out))] = [path.read_text(errors="replace")]
    assert any(k.endswith(".html") for k in texts) and any(k.endswith(".parquet") for k in texts)
    assert _leaks(texts) == []


def _rows(store: Path, sql: str) -> list[dict[str, Any]]:
    from logbook.query import run_sql
    from logbook.store import Store

    return run_sql(Store(store), sql).to_pylist()  # type: ignore[no-any-return]


def test_the_redacted_forms_are_on_record(recorded: Recorded) -> None:
    """The secrets were stored as *** (the rest of each text kept), not dropped with their rows."""
    store, _, _ = recorded
    [crash] = _rows(store, "select * from attempts where run = 'crash'")
    assert crash["status"] == "crashed"
    for text in (crash["summary"], crash["evidence"]):
        assert "ghp_***" not in text  # the whole token goes, prefix included
        assert "***" in text and "cannot push" in text
        assert "password=***" in text and "https://hooks.slack.com/services/***" in text
    json.loads(crash["evidence"])  # still JSON after redaction

    [hung] = _rows(store, "select * from attempts where run = 'hang'")
    assert hung["status"] == "hung"
    [hang] = _rows(store, "select * from events where run = 'hang' and kind = 'hang'")
    lines = json.loads(hang["data"])["lines"]
    assert "stdout: db password=*** connected" in lines
    assert "stdout: pushing with *** to the hub ***" in lines
    assert "stderr: alerts go to https://hooks.slack.com/services/***" in lines

    notes = _rows(store, "select kind, message, data from events where source = 'api'")
    by_kind = {r["kind"]: r for r in notes}
    assert by_kind["note"]["message"] == "deploy key *** used"
    assert by_kind["deploy"]["message"] == "pushed with ***"
    assert json.loads(by_kind["deploy"]["data"]) == {
        "channel": "https://hooks.slack.com/services/***",
        "api_token": "***",
    }

    snap = {
        (r["kind"], r["name"]): r["value"]
        for r in _rows(store, "select kind, name, value from snapshots where run = 'crash'")
    }
    assert snap[("env", "NOTIFY_URL")] == "https://hooks.slack.com/services/***"
    assert json.loads(snap[("config", "alerts")]) == "https://discord.com/api/webhooks/***"
    assert crash["command"][-2:] == ["--notify", "https://discordapp.com/api/webhooks/***"]
