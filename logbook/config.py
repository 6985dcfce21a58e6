"""Settings, each from one of four places resolved here: flag, environment, logbook.toml, default."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logbook.errors import ConfigError

CONFIG_NAME = "logbook.toml"
STORE_DIR = ".logbook"


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
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}", hint="fix the file or remove it") from e


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
