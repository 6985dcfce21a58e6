"""logbook: an open-training logbook. Wrap any training command, record every attempt to Parquet.

The library is the product; the `logbook` command is a thin layer over it. Nothing happens at import.
"""

from __future__ import annotations

TYPE_CHECKING = (
    False  # not typing's: `python -m logbook.pump` imports this package, and typing costs
)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from contextlib import AbstractContextManager
    from pathlib import Path
    from typing import Any

    from logbook.api import Recorder
    from logbook.store import Store

__version__ = "0.1.0"

__all__ = [
    "Recorder",
    "__version__",
    "config",
    "data_mix",
    "event",
    "flush",
    "init",
    "log",
    "note",
    "open_store",
    "phase",
]


def open_store(path: str | None = None) -> Store:
    """Open the store as the CLI finds it: `path`, else LOGBOOK_STORE, else the nearest .logbook/.
    A remote store (`s3://bucket/prefix`) is read through this host's cache of it.

    Raises:
        StoreCorrupt: there is no store there.
        ConfigError: a logbook.toml on the way is malformed.
    """
    from logbook.store import open_any

    return open_any(path)


# The Python API: module-level calls use a default Recorder made on first use from the
# environment (joins the attempt under `logbook run`, else starts one); see logbook.api.


def init(
    run: str | None = None,
    *,
    store: str | Path | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
) -> Recorder:
    """Start recording as `run` (default: the script's name) in `store`, in `group`, with `tags`
    and settings `config`, e.g. `logbook.init(group="sweep-3", tags=["baseline"])`. Optional:
    the other calls start recording on first use."""
    from logbook.api import init as init_default

    return init_default(run, store=store, group=group, tags=tags, config=config)


def log(values: Mapping[str, Any], *, step: int | None = None) -> None:
    """Record metric values, e.g. `logbook.log({"loss": 2.31}, step=1200)`; without `step`, at the
    step after the last one logged (0 first), as `wandb.log`; nested dicts flattened with `/`."""
    from logbook.api import get_recorder

    get_recorder().log(values, step=step)


def event(
    kind: str,
    message: str | None = None,
    *,
    step: int | None = None,
    severity: str = "info",
    **data: Any,
) -> None:
    """Record an event of `kind`; keyword arguments become its JSON data."""
    from logbook.api import get_recorder

    get_recorder().event(kind, message, step=step, severity=severity, **data)


def note(text: str, *, step: int | None = None) -> None:
    """Record a note for people."""
    from logbook.api import get_recorder

    get_recorder().note(text, step=step)


def data_mix(mix: Mapping[str, float | Mapping[str, Any]], *, step: int | None = None) -> None:
    """Declare the data mix; a change from the previous declaration is a data_mix_change event."""
    from logbook.api import get_recorder

    get_recorder().data_mix(mix, step=step)


def config(values: Mapping[str, Any]) -> None:
    """Record settings as snapshot rows of kind config (nested keys joined with dots)."""
    from logbook.api import get_recorder

    get_recorder().config(values)


def phase(name: str, *, step: int | None = None) -> AbstractContextManager[None]:
    """Time a stretch that is not training as a `phase` event, e.g.
    `with logbook.phase("checkpoint_save"): save(model)`; `name` is one of checkpoint_save,
    checkpoint_restore, evaluation, compilation, data_loading. `logbook goodput` files its time
    under that phase (#19)."""
    from logbook.api import get_recorder

    return get_recorder().phase(name, step=step)


def flush() -> None:
    """Write what the default recorder has buffered now."""
    from logbook.api import get_recorder

    get_recorder().flush()


def __getattr__(name: str) -> Any:
    if name == "Recorder":
        from logbook.api import Recorder

        return Recorder
    raise AttributeError(f"module 'logbook' has no attribute {name!r}")
