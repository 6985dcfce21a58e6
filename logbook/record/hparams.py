"""Hyperparameters of an attempt, from its config file and its command line, and how they changed
from the parent attempt: `--lr 3e-4` on 11.03 and `--lr 2e-4` on 11.04 is an hparam_change."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from logbook.errors import ConfigError

MAX_CONFIG_BYTES = 16 << 20


def load_config(path: Path, *, what: str = "--config") -> dict[str, Any]:
    """A YAML, JSON or TOML file (by its suffix) as a dict; `what` names it in errors.

    Raises:
        ConfigError: missing, unreadable, too large, malformed (naming the line), or not a mapping.
    """
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{what} {path} is larger than {MAX_CONFIG_BYTES >> 20} MB")
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from e
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            doc = json.loads(text)
        elif suffix == ".toml":
            from logbook.settings import load_toml

            return load_toml(path)
        else:  # .yaml, .yml and anything else: YAML is a superset of JSON
            import yaml

            doc = yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} {path}, line {e.lineno}: {e.msg}") from e
    except Exception as e:  # yaml.YAMLError; imported lazily
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what} {path}{where}: {getattr(e, 'problem', None) or e}") from e
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{what} {path} must hold a mapping of settings, not a {type(doc).__name__}"
        )
    return doc


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 3e-4}} -> {'optim.lr': 3e-4}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def argv_params(argv: Sequence[str]) -> dict[str, Any]:
    """Settings on a command line: `--lr 3e-4`, `--lr=3e-4`, `--fp16` (true), Hydra's `optim.lr=3e-4`."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and len(arg) > 2:
            key, sep, value = arg[2:].partition("=")
            if sep:
                out[key] = _value(value)
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                out[key] = _value(argv[i + 1])
                i += 1
            else:
                out[key] = True
        elif "=" in arg and not arg.startswith("-"):
            key, _, value = arg.partition("=")
            key = key.lstrip("+~")  # Hydra's add and delete prefixes
            if key.replace(".", "").replace("_", "").replace("-", "").isalnum():
                out[key] = _value(value)
        i += 1
    return out


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def snapshot_rows(config_path: Path | None, argv: Sequence[str]) -> list[dict[str, Any]]:
    """Rows for the snapshots table: kind `config` (flattened file) and kind `arg` (command line),
    values as JSON, secrets redacted by name; plus the file's path and SHA-256 (kind `config_file`).

    Raises:
        ConfigError: the config file is malformed.
    """
    from logbook.record.redact import redact_command, redact_value

    rows: list[dict[str, Any]] = []
    if config_path is not None:
        doc = load_config(config_path)
        rows.append(_row("config_file", "path", str(config_path)))
        rows.append(
            _row("config_file", "sha256", hashlib.sha256(config_path.read_bytes()).hexdigest())
        )
        for key, value in flatten(doc).items():
            shown, why = redact_value(key, json.dumps(value, default=str))
            rows.append(_row("config", key, shown, why))
    for key, value in argv_params(redact_command(list(argv))).items():
        shown, why = redact_value(key, json.dumps(value, default=str))
        rows.append(_row("arg", key, shown, why))
    return rows


def printed_rows(settings: Mapping[str, float]) -> list[dict[str, Any]]:
    """Rows for the snapshots table, kind `printed`: values the command printed before its first
    step that never recurred (a config echo such as `learning_rate = 1e6`, #15), settings of the
    attempt rather than metrics."""
    from logbook.record.redact import redact_value

    rows = []
    for key, value in sorted(settings.items()):
        shown, why = redact_value(key, json.dumps(value))
        rows.append(_row("printed", key, shown, why))
    return rows


def _row(kind: str, name: str, value: str, why: str | None = None) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": name,
        "value": value,
        "status": "redacted" if why else "ok",
        "detail": why,
    }


def changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[dict[str, Any]]:
    """Keys whose JSON value differs between two snapshots ({key: value}), as (key, old, new)."""
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out.append({"key": key, "old": _loads(old.get(key)), "new": _loads(new.get(key))})
    return out


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
