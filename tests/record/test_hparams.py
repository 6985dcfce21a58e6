"""Settings per attempt, and their changes from the parent as hparam_change events (#4, part 5)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from logbook.errors import ConfigError
from logbook.query import run_sql
from logbook.record.hparams import argv_params, flatten, load_config, snapshot_rows
from logbook.store import Store


def test_argv_and_flatten() -> None:
    assert argv_params(
        [
            "train.py",
            "--lr",
            "3e-4",
            "--fp16",
            "--batch=32",
            "optim.lr=0.1",
            "+trainer.max_steps=10",
            "--name",
            "gpt",
            "--warmup",
            "-1",
        ]
    ) == {
        "lr": 0.0003,
        "fp16": True,
        "batch": 32,
        "optim.lr": 0.1,
        "trainer.max_steps": 10,
        "name": "gpt",
        "warmup": -1,
    }
    assert flatten({"optim": {"lr": 1, "betas": [0.9, 0.95]}, "seed": 0, "empty": {}}) == {
        "optim.lr": 1,
        "optim.betas": [0.9, 0.95],
        "seed": 0,
        "empty": {},
    }


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("c.yaml", "model:\n  dim: 512\n lr: 3\n", 3),
        ("c.json", '{"lr": 3,\n "dim": }', 2),
    ],
)
def test_malformed_config_names_the_file_and_line(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"{name}, line {line}"):
        load_config(path)


def test_secrets_in_configs_are_redacted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("wandb:\n  api_key: abcdef0123456789abcdef0123456789abcdef01\nlr: 0.1\n")
    rows = {
        r["name"]: r
        for r in snapshot_rows(
            path, ["train.py", "--hf-token", "hf_abcdefghijklmnopqrstuvwxyz0123"]
        )
    }
    assert (
        rows["wandb.api_key"]["status"] == "redacted"
        and "abcdef0123" not in rows["wandb.api_key"]["value"]
    )
    assert rows["lr"]["value"] == "0.1" and "hf_abc" not in json.dumps(list(rows.values()))


def test_changes_from_the_parent_are_events(run_logbook, store_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "train.yaml"
    script = tmp_path / "t.py"
    script.write_text("print('step=1')\n")
    base = [
        "run",
        "--store",
        str(store_path),
        "--run",
        "hp",
        "--no-capture",
        "--config",
        str(conf),
        "--",
    ]
    conf.write_text("optim:\n  lr: 3.0e-4\n  warmup: 100\ndata: web\n")
    run_logbook(*base, sys.executable, str(script), "--lr", "3e-4", "--batch", "32", check=0)
    conf.write_text("optim:\n  lr: 2.0e-4\n  warmup: 100\ndata: web\nseed: 1\n")
    run_logbook(*base, sys.executable, str(script), "--lr", "2e-4", "--batch", "32", check=0)
    events = run_sql(
        Store(store_path),
        "select e.message, e.data, a.label from events e join attempts a "
        "using (attempt_id) where kind = 'hparam_change' order by message",
    ).to_pylist()
    assert [(e["label"], e["message"]) for e in events] == [
        ("1.01", "lr: 0.0003 -> 0.0002"),
        ("1.01", "optim.lr: 0.0003 -> 0.0002"),
        ("1.01", "seed: null -> 1"),
    ]
    assert [json.loads(e["data"])["source"] for e in events] == ["argv", "config", "config"]
    [sha] = (
        run_sql(
            Store(store_path),
            "select count(distinct value) from snapshots where kind = 'config_file' "
            "and name = 'sha256'",
        )
        .column(0)
        .to_pylist()
    )
    assert sha == 2


def test_a_malformed_config_is_refused_before_the_command_starts(
    run_logbook, store_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "bad.toml"
    conf.write_text("lr = \n")
    marker = tmp_path / "ran"
    p = run_logbook(
        "run",
        "--store",
        str(store_path),
        "--config",
        str(conf),
        "--",
        sys.executable,
        "-c",
        f"open({str(marker)!r}, 'w')",
        check=1,
    )
    assert b"bad.toml" in p.stderr and b"Traceback" not in p.stderr and not marker.exists()
