"""`--store` is not checked for readability by the option parser: a store logbook cannot read
must not stop `logbook run` before the training starts (it runs unrecorded and says so), as the
same folder through LOGBOOK_STORE never did. As root every folder is readable, so this checks the
option itself; the run with an unwritable store is tested in tests/supervisor/test_run.py."""

from __future__ import annotations

import click

from logbook.cli.commands_run import run


def test_the_store_option_does_not_refuse_an_unreadable_folder() -> None:
    (store,) = [p for p in run.params if p.name == "store"]
    assert isinstance(store.type, click.Path)
    assert store.type.readable is False and store.type.exists is False
