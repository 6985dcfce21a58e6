"""The Python API (#4): real processes under `logbook run` and on their own."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from helpers import logbook_cmd

from logbook.api import Recorder
from logbook.query import run_sql
from logbook.store import Store

_WRAPPER_VARS = ("LOGBOOK_STORE", "LOGBOOK_RUN", "LOGBOOK_ATTEMPT", "LOGBOOK_ATTEMPT_ID")
_RANK_VARS = ("RANK", "SLURM_PROCID", "LOCAL_RANK")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*_WRAPPER_VARS, *_RANK_VARS):
        monkeypatch.delenv(var, raising=False)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*_WRAPPER_VARS, *_RANK_VARS)}
    env.update(extra)
    return env


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def _sql(root: Path, sql: str) -> list[dict[str, object]]:
    return run_sql(Store(root), sql).to_pylist()


TRAIN = """
    import logbook
    logbook.config({"optim": {"lr": 3e-4}, "batch": 8})
    logbook.data_mix({"web": 0.6, "code": 0.4}, step=0)
    for i in range(100):
        logbook.log({"loss": 1.0 / (i + 1), "lr": 3e-4}, step=i)
    logbook.note("halfway there", step=50)
    logbook.event("checkpoint", "saved", step=99, path="ckpt/99")
"""


def test_under_logbook_run_joins_the_wrappers_attempt(tmp_path: Path) -> None:
    store = tmp_path / "store"
    script = _script(tmp_path, "train", TRAIN)
    cmd = logbook_cmd("run", "--store", str(store), "--run", "gpt", "--", sys.executable, script)
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    attempts = _sql(store, "select attempt_id, label, status from attempts where run = 'gpt'")
    assert len(attempts) == 1 and attempts[0]["status"] == "completed"
    got = _sql(
        store,
        "select a.label, count(*) as n, max(m.step) as last from metrics m "
        "join attempts a using (attempt_id) where m.source = 'api' and m.name = 'loss' "
        "group by 1",
    )
    assert got == [{"label": attempts[0]["label"], "n": 100, "last": 99}]
    kinds = _sql(
        store,
        "select kind, message, step from events where source = 'api' order by kind",
    )
    assert {"kind": "note", "message": "halfway there", "step": 50} in kinds
    assert {"kind": "checkpoint", "message": "saved", "step": 99} in kinds
    assert all(
        r["attempt_id"] == attempts[0]["attempt_id"]
        for r in _sql(store, "select attempt_id from events where source = 'api'")
    )
    config = _sql(
        store, "select name, value from snapshots where kind = 'api_config' order by name"
    )
    assert {"name": "optim.lr", "value": "0.0003"} in config


def test_standalone_starts_attempts_in_lineage_and_crashes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    script = _script(tmp_path, "train", TRAIN)
    env = _env(LOGBOOK_STORE=str(store))
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, script], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    bad = _script(
        tmp_path,
        "train2",
        'import logbook\nlogbook.log({"loss": 1.0}, step=0)\n'
        'raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (boom)")\n',
    )
    done = subprocess.run(
        [sys.executable, bad], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "boom" in done.stderr
    rows = _sql(
        store,
        "select run, label, parent_label, status from attempts order by run, label",
    )
    assert rows == [
        {"run": "train", "label": "1.00", "parent_label": None, "status": "completed"},
        {"run": "train", "label": "1.01", "parent_label": "1.00", "status": "completed"},
        {"run": "train2", "label": "1.00", "parent_label": None, "status": "crashed"},
    ]
    per_attempt = _sql(
        store,
        "select a.label, count(*) as n from metrics m join attempts a using (attempt_id) "
        "where a.run = 'train' and m.name = 'loss' group by 1 order by 1",
    )
    assert per_attempt == [{"label": "1.00", "n": 100}, {"label": "1.01", "n": 100}]
    assert _sql(store, "select count(*) as n from metrics where run = 'train2'") == [{"n": 1}]
    [crashed] = _sql(store, "select crash_class, summary from attempts where status = 'crashed'")
    [event] = _sql(store, "select kind, message, data from events where run = 'train2'")
    assert crashed["crash_class"] == "gpu_oom" and "out of memory" in crashed["summary"]
    assert event["kind"] == "crash" and '"class": "gpu_oom"' in event["data"]


def test_rank_one_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    rec = Recorder(tmp_path / "store", "r")
    rec.log({"loss": 1.0}, step=1)
    rec.note("x")
    rec.close()
    assert not (tmp_path / "store").exists()
    monkeypatch.setenv("SLURM_PROCID", "0")  # RANK is found first
    assert not Recorder(tmp_path / "store", "r").active
    everywhere = Recorder(tmp_path / "store", "r", all_ranks=True)
    assert everywhere.active
    everywhere.close()


def test_threads_lose_nothing(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "store", "r")

    def work(k: int) -> None:
        for i in range(5000):
            rec.log({f"t{k}": float(i), "shared": float(k)}, step=i)
            if i % 1000 == 0:
                rec.flush()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    rows = _sql(
        tmp_path / "store",
        "select name, count(*) as n, count(distinct step) as d from metrics group by 1 order by 1",
    )
    assert {"name": "shared", "n": 40_000, "d": 5000} in rows
    for k in range(8):
        assert {"name": f"t{k}", "n": 5000, "d": 5000} in rows


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_parent_and_child_each_log_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    script = _script(
        tmp_path,
        "forker",
        """
        import os, logbook
        logbook.log({"before": 1.0}, step=0)   # unflushed at the fork: the parent writes it
        pid = os.fork()
        who = "child" if pid == 0 else "parent"
        for i in range(10):
            logbook.log({who: float(i)}, step=i)
        if pid == 0:
            logbook.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        """,
    )
    done = subprocess.run(
        [sys.executable, script],
        env=_env(LOGBOOK_STORE=str(store)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = _sql(store, "select name, count(*) as n from metrics group by 1 order by 1")
    assert rows == [
        {"name": "before", "n": 1},
        {"name": "child", "n": 10},
        {"name": "parent", "n": 10},
    ]
    assert _sql(store, "select count(distinct attempt_id) as n from metrics") == [{"n": 1}]
    assert _sql(store, "select status from attempts") == [{"status": "completed"}]


def test_non_numbers_skipped_nan_kept(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "store", "r")
    rec.log({"loss": float("nan"), "inf": float("inf"), "word": "abc", "none": None}, step=1)  # type: ignore[dict-item]
    rec.log({"loss": 2, "flag": True}, step=2)
    rec.close()
    assert rec.skipped == 2
    rows = _sql(tmp_path / "store", "select name, step, value from metrics order by name, step")
    assert [(r["name"], r["step"]) for r in rows] == [
        ("flag", 2),
        ("inf", 1),
        ("loss", 1),
        ("loss", 2),
    ]
    assert rows[1]["value"] == float("inf") and rows[2]["value"] != rows[2]["value"]
    warn = _sql(tmp_path / "store", "select data from events where kind = 'logbook_warning'")
    assert warn == [{"data": '{"skipped": 2}'}]


def test_data_mix_change_and_config(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "store", "r")
    rec.data_mix({"web": 0.6, "code": 0.4}, step=0)
    rec.data_mix({"web": 0.6, "code": 0.4}, step=10)  # the same: no change
    rec.data_mix({"web": 0.5, "code": 0.3, "books": {"weight": 0.2, "path": "b/"}}, step=20)
    rec.config({"optim": {"lr": 3e-4, "betas": [0.9, 0.95]}, "wandb_api_key": "s3cret"})
    rec.close()
    events = _sql(tmp_path / "store", "select kind, step, data from events order by time")
    assert [(e["kind"], e["step"]) for e in events] == [
        ("data_mix", 0),
        ("data_mix", 10),
        ("data_mix", 20),
        ("data_mix_change", 20),
    ]
    assert '"changed": ["books", "code", "web"]' in str(events[-1]["data"])
    snaps = _sql(
        tmp_path / "store", "select kind, name, value, status from snapshots order by name"
    )
    assert snaps[0] == {
        "kind": "api_config",
        "name": "optim.betas",
        "value": "[0.9, 0.95]",
        "status": "ok",
    }
    assert snaps[1]["name"] == "optim.lr"
    assert snaps[2]["name"] == "wandb_api_key" and snaps[2]["status"] == "redacted"
    assert "s3cret" not in str(snaps)


def test_store_failure_warns_once_and_training_goes_on(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a store")
    rec = Recorder(blocker, "r")
    for i in range(3):
        rec.log({"loss": 1.0}, step=i)
    rec.close()
    err = capfd.readouterr().err
    assert err.count("logbook: warning:") == 1


def test_import_logbook_is_light() -> None:
    code = (
        "import sys, logbook; logbook.Recorder; "
        "print([m for m in ('pyarrow', 'duckdb') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_standalone_command_line_is_redacted(tmp_path: Path) -> None:
    store = tmp_path / "store"
    script = _script(tmp_path, "sa", "import logbook\nlogbook.log({'loss': 1.0}, step=1)\n")
    token = "ghp_" + "a1B2" * 9
    subprocess.run(
        [sys.executable, str(script), "--token", token, "--lr", "3e-4"],
        env=_env(LOGBOOK_STORE=str(store)),
        check=True,
        timeout=60,
    )
    [row] = run_sql(Store(store), "select command from attempts").to_pylist()
    assert row["command"][1:] == ["--token", "***", "--lr", "3e-4"]
    assert token not in str(list(store.rglob("*")))
    for part in store.rglob("*.parquet"):
        assert token.encode() not in part.read_bytes()


def test_the_detectors_watch_logged_metrics(tmp_path: Path) -> None:
    rng = random.Random(1)
    rec = Recorder(tmp_path / "store", "det")
    for step in range(300):  # a noisy but healthy loss, a planted spike at 200, a NaN at 250
        loss = 2.0 * math.exp(-step / 300) + rng.gauss(0, 0.02)
        loss = 9.0 if step == 200 else float("nan") if step == 250 else loss
        rec.log({"loss": loss, "other": rng.random()}, step=step)
    rec.close()
    found = _sql(
        tmp_path / "store",
        "select kind, step, source from events where source = 'detector' order by step",
    )
    assert found == [
        {"kind": "loss_spike", "step": 200, "source": "detector"},
        {"kind": "nan", "step": 250, "source": "detector"},
    ]
    rec = Recorder(tmp_path / "store", "quiet", detect=False)
    rec.log({"loss": float("nan")}, step=1)
    rec.close()
    assert _sql(
        tmp_path / "store",
        "select count(*) as n from events where run = 'quiet' and source = 'detector'",
    ) == [{"n": 0}]


def test_config_works_after_other_calls_in_a_fresh_process(tmp_path: Path) -> None:
    # #17: a submodule named `config` replaced the function once anything imported it.
    script = _script(
        tmp_path,
        "order",
        """
        import logbook
        logbook.log({"loss": 2.0}, step=1)
        logbook.open_store()
        logbook.note("before the settings", step=1)
        logbook.config({"optim": {"lr": 3e-4}})
        """,
    )
    env = _env(LOGBOOK_STORE=str(tmp_path / "store"))
    done = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = _sql(tmp_path / "store", "select name, value from snapshots where kind = 'api_config'")
    assert rows == [{"name": "optim.lr", "value": "0.0003"}]


def test_no_submodule_shadows_a_public_function() -> None:
    import logbook

    package = Path(logbook.__file__).parent
    submodules = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if (p / "__init__.py").is_file()
    }
    assert submodules.isdisjoint(logbook.__all__), submodules & set(logbook.__all__)


def test_log_without_a_step_takes_the_next_one_as_wandb_does(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "store", "steps")
    rec.log({"loss": 4.0})  # the first is step 0
    rec.log({"loss": 3.0})
    rec.log({"loss": 2.0}, step=10)
    rec.log({"loss": 1.0})  # the one after the last logged
    rec.close()
    rows = _sql(tmp_path / "store", "select step, value from metrics order by time, step")
    assert rows == [
        {"step": 0, "value": 4.0},
        {"step": 1, "value": 3.0},
        {"step": 10, "value": 2.0},
        {"step": 11, "value": 1.0},
    ]


def test_nested_dicts_are_flattened_and_lr_is_the_learning_rate(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "store", "nested")
    for step in (1, 2):  # twice: the second call takes the cached path
        rec.log({"train": {"loss": 1.5, "acc": {"top1": 0.5}}, "lr": 3e-4}, step=step)
    rec.close()
    rows = _sql(
        tmp_path / "store",
        "select name, list(step order by step) as steps, min(value) as value from metrics "
        "group by name order by name",
    )
    assert rows == [
        {"name": "learning_rate", "steps": [1, 2], "value": 3e-4},
        {"name": "train/acc/top1", "steps": [1, 2], "value": 0.5},
        {"name": "train/loss", "steps": [1, 2], "value": 1.5},
    ]


def test_tags_and_group_are_snapshot_rows(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "tagged",
        """
        import logbook
        logbook.init(group="sweep-3", tags=["baseline", "bf16"], config={"lr": 3e-4})
        logbook.log({"loss": 1.0})
        """,
    )
    env = _env(LOGBOOK_STORE=str(tmp_path / "store"))
    done = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = _sql(
        tmp_path / "store",
        "select s.kind, s.value from snapshots s join attempts a using (attempt_id) "
        "where a.run = 'tagged' and s.kind in ('tag', 'group', 'api_config') order by 1, 2",
    )
    assert rows == [
        {"kind": "api_config", "value": "0.0003"},
        {"kind": "group", "value": "sweep-3"},
        {"kind": "tag", "value": "baseline"},
        {"kind": "tag", "value": "bf16"},
    ]


@pytest.mark.parametrize(
    ("ending", "status", "exit_code"),
    [
        ("sys.exit(3)", "crashed", 3),
        ("sys.exit('bad input')", "crashed", 1),
        ("sys.exit(0)", "completed", 0),
        ("raise ValueError('no data')", "crashed", 1),
        ("pass", "completed", 0),
    ],
)
def test_a_standalone_script_is_recorded_with_its_exit_status(
    tmp_path: Path, ending: str, status: str, exit_code: int
) -> None:
    script = _script(
        tmp_path, "ends", f"import sys, logbook\nlogbook.log({{'loss': 1.0}})\n{ending}\n"
    )
    env = _env(LOGBOOK_STORE=str(tmp_path / "store"))
    done = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True)
    assert done.returncode == exit_code, done.stderr
    [row] = _sql(tmp_path / "store", "select status, exit_code, summary from attempts")
    assert (row["status"], row["exit_code"]) == (status, exit_code)
    if ending.startswith("sys.exit(3"):
        assert row["summary"] == "exited with code 3"


PRINTS_WHAT_IT_LOGS = {
    # key=value lines with a step: the parser has the step, and rounds the loss to 4 decimals
    "stepped": """
        import logbook
        for step in range(1, 6):
            loss = 3.0 / (step + 0.123456)
            logbook.log({"loss": loss, "lr": 3e-4}, step=step)
            print(f"step={step} loss={loss:.4f} lr=3e-4 tokens_per_s=1000", flush=True)
    """,
    # dicts of strings with no step, as the Transformers Trainer prints what it logs
    "unstepped": """
        import logbook
        for step in range(1, 6):
            loss = 3.0 / (step + 0.123456)
            logbook.log({"loss": loss, "learning_rate": 3e-4}, step=step)
            print({"loss": f"{loss:.4g}", "learning_rate": "0.0003", "tokens_per_s": "1000"})
    """,
}


@pytest.mark.parametrize("style", sorted(PRINTS_WHAT_IT_LOGS))
def test_printing_what_the_api_logs_records_it_once(tmp_path: Path, style: str) -> None:
    # #17: the API's point wins over the same value parsed from the output; what only the
    # output printed (tokens_per_s) is still parsed.
    script = _script(tmp_path, "echo", PRINTS_WHAT_IT_LOGS[style])
    store = tmp_path / "store"
    done = subprocess.run(
        logbook_cmd("run", "--store", str(store), "--run", "echo", "--", sys.executable, script),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "could not record" not in done.stderr  # a short script's points were dropped at exit
    rows = _sql(
        store,
        "select name, source, count(*) as n, list(step order by step) as steps from metrics "
        "where name <> 'tokens_per_s' group by all order by name",
    )
    assert rows == [
        {"name": "learning_rate", "source": "api", "n": 5, "steps": [1, 2, 3, 4, 5]},
        {"name": "loss", "source": "api", "n": 5, "steps": [1, 2, 3, 4, 5]},
    ]
    assert _sql(
        store, "select source, count(*) as n from metrics where name = 'tokens_per_s' group by 1"
    ) == [{"source": "parser", "n": 5}]
    # every point stays in the store: all_metrics holds the parsed copies too
    parsed = _sql(
        store, "select count(*) as n from all_metrics where source = 'parser' and name = 'loss'"
    )
    assert parsed == [{"n": 5}]
