"""Settings, each from one of four places resolved here: flag, environment, logbook.toml, default."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logbook.errors import ConfigError

CONFIG_NAME = "logbook.toml"
STORE_DIR = ".logbook"
# The tables logbook reads; another (a typo like [detector]) is ignored, with a warning once.
TABLES = ("store", "run", "hooks", "crash", "detectors", "cost", "compute")
_warned: set[tuple[str, str]] = set()


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a logbook.toml.

    Raises:
        ConfigError: the file is not valid TOML or cannot be read.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}", hint="fix the file or remove it") from e
    _warn_unknown_tables(path, doc)
    return doc


def _warn_unknown_tables(path: Path, doc: Mapping[str, Any]) -> None:
    import difflib
    import logging

    for name in doc:
        if name in TABLES or (str(path), name) in _warned:
            continue
        _warned.add((str(path), name))
        close = difflib.get_close_matches(name, TABLES, n=1)
        hint = f"did you mean [{close[0]}]?" if close else f"logbook reads: {', '.join(TABLES)}"
        logging.getLogger("logbook").warning(
            f"{path}: [{name}] is not a logbook table, ignored ({hint})"
        )


def find_store(
    flag: str | os.PathLike[str] | None = None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Path, str]:
    """Where the store is, and where that answer came from.

    Order: `--store`, then `LOGBOOK_STORE`, then walking up from `cwd` the nearest `.logbook/`
    or `logbook.toml` with `[store] path`, the way git finds `.git`; else `./.logbook`.

    Raises:
        ConfigError: a logbook.toml on the way is malformed.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    url = store_url(flag, env=env)
    if url is not None:
        raise ConfigError(
            f"{url} is a remote store, and this command works on a local one",
            hint="give a folder to --store (see logbook push and logbook run for remote stores)",
        )
    if flag:
        return Path(flag).expanduser().absolute(), "--store"
    if env.get("LOGBOOK_STORE"):
        return Path(env["LOGBOOK_STORE"]).expanduser().absolute(), "LOGBOOK_STORE"
    for d in (cwd, *cwd.parents):
        toml = d / CONFIG_NAME
        if toml.is_file():
            path = (load_toml(toml).get("store") or {}).get("path")
            if path is not None:
                if not isinstance(path, str):
                    raise ConfigError(f"{toml}: [store] path must be a string, not {path!r}")
                return (d / Path(path).expanduser()).absolute(), str(toml)
        if (d / STORE_DIR).is_dir():
            return d / STORE_DIR, f"found walking up from {cwd}"
    return (cwd / STORE_DIR).absolute(), "default (./.logbook)"


def store_url(
    flag: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> str | None:
    """The remote store (`s3://bucket/prefix`, #18) that `--store` or else LOGBOOK_STORE names,
    checked; None when they name a folder or nothing (then see `find_store`).

    Raises:
        ConfigError: a URL logbook cannot use.
    """
    from logbook.store.remote import check_url, is_url

    env = os.environ if env is None else env
    value = flag if flag else env.get("LOGBOOK_STORE")
    if value is None or not is_url(str(value)):
        return None
    return check_url(str(value))


def find_config(cwd: Path | None = None) -> tuple[Path | None, dict[str, Any]]:
    """The nearest logbook.toml walking up from `cwd`, parsed; (None, {}) when there is none.

    Raises:
        ConfigError: it is malformed.
    """
    cwd = Path.cwd() if cwd is None else cwd
    for d in (cwd, *cwd.parents):
        toml = d / CONFIG_NAME
        if toml.is_file():
            return toml, load_toml(toml)
    return None, {}


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | float | int, *, what: str = "duration") -> float:
    """'90' or '90s' -> 90.0, '30m' -> 1800.0, '1h30m' -> 5400.0.

    Raises:
        ConfigError: not a duration.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for m in _DURATION_PART.finditer(s):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNIT_S[(m.group(2) or "s").lower()]
            pos = m.end()
        if not s or pos != len(s):
            raise ConfigError(
                f"{what}: {text!r} is not a duration", hint="write e.g. 90, 90s, 30m, 1h30m"
            )
    if seconds < 0:
        raise ConfigError(f"{what}: {text!r} is negative")
    return seconds
