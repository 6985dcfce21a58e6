"""logbook: an open-training logbook. Wrap any training command, record every attempt to Parquet.

The library is the product; the `logbook` command is a thin layer over it. Nothing happens at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from logbook.store import Store

__version__ = "0.1.0"

__all__ = ["__version__", "open_store"]


def open_store(path: str | None = None) -> Store:
    """Open the store as the CLI finds it: `path`, else LOGBOOK_STORE, else the nearest .logbook/.

    Raises:
        StoreCorrupt: there is no store there.
        ConfigError: a logbook.toml on the way is malformed.
    """
    from logbook.config import find_store
    from logbook.store import Store

    root, source = find_store(path)
    return Store.open(root, source=source)
