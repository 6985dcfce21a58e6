"""logbook doctor, compact."""

from __future__ import annotations

from pathlib import Path

import click

from logbook.cli.options import format_option, open_store, store_option
from logbook.cli.render import progress_on_stderr, render


@click.command()
@click.option("--dry-run", is_flag=True, help="Only list problems; move nothing.")
@store_option
@format_option
def doctor(dry_run: bool, store: Path | None, fmt: str) -> None:
    """Check every part of the store; set damaged ones aside in _quarantine/.

    Exits 1 if it found problems (listed, and quarantined unless --dry-run), 0 if none.

    \b
        logbook doctor --dry-run
    """
    import pyarrow as pa

    from logbook.settings import store_url
    from logbook.store import Store, remote
    from logbook.store import doctor as doc

    url = store_url(store)
    if url is not None:  # this host's spool of it: what dead wrappers left, folded and pushed
        spool = remote.spool_dir(url)
        if not (spool / remote.SPOOL_MARK).exists():
            click.echo(f"store: {url}; no spool of it on this host: nothing to push", err=True)
            return
        s = Store.open(spool, source=f"the spool of {url}")
    else:
        s = open_store(store)
    click.echo(f"store: {s.root} ({_whence(s.source)})", err=True)
    problems = doc.examine(s, fix=not dry_run)
    spooled = remote.spool_url(s.root)
    if spooled is not None:
        pushed = _push(s, spooled, dry_run=dry_run)
        if pushed:
            problems.append(pushed)
    if not problems:
        click.echo("no problems found", err=True)
        return
    render(
        pa.Table.from_pylist(
            [
                {"path": str(p.path), "problem": p.what, "action": p.action or "none (dry run)"}
                for p in problems
            ]
        ),
        fmt,
    )
    raise click.exceptions.Exit(1)


@click.command()
@store_option
def compact(store: Path | None) -> None:
    """Merge small parts into one per table and run, losing and duplicating nothing.

    An s3:// store is compacted in place, one folder at a time under a lease.

    \b
        logbook compact
        logbook compact --store s3://bucket/prefix
    """
    from logbook.settings import store_url

    url = store_url(store)
    with progress_on_stderr() as progress:
        if url is not None:
            from logbook.store.remote_compact import compact_remote

            result = compact_remote(url, progress=progress)
        else:
            from logbook.store.compact import compact as do_compact

            result = do_compact(open_store(store), progress=progress)
    click.echo(
        f"merged {result.parts_before} parts into {result.parts_after} in {result.folders} "
        f"folders ({result.rows} rows)"
    )
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    for s in result.skipped:
        click.echo(f"Warning: skipped {s}", err=True)


def _push(s, url: str, *, dry_run: bool):  # type: ignore[no-untyped-def]
    """Push a spool (doctor); a Problem when something was not yet uploaded, None if all was."""
    from logbook.store import remote
    from logbook.store.doctor import Problem

    ledger = remote.Ledger(s.root, url)
    up = remote.Remote(url)
    try:
        listed = up.list()
    except remote.StoreUnreachable as e:
        todo, _ = remote.pending(s.root, ledger)
        return Problem(Path("."), f"{len(todo)} file(s) may not be in {url} yet", f"none: {e}")
    try:
        todo, gone = remote.pending(s.root, ledger, listed=listed, remote=up)
    except remote.StoreUnreachable as e:
        todo, _ = remote.pending(s.root, ledger)
        return Problem(Path("."), f"{len(todo)} file(s) may not be in {url} yet", f"none: {e}")
    if not todo and not gone:
        _prune(s.root, ledger, listed, dry_run=dry_run)
        return None
    what = f"{len(todo)} file(s) not yet uploaded to {url}" + (
        f", {len(gone)} part(s) replaced here still there" if gone else ""
    )
    if dry_run:
        return Problem(Path("."), what)
    s.fold_dead_journals()
    result = remote.push(s.root, up, ledger=ledger, check=True)
    action = f"uploaded {result.uploaded}, deleted {result.deleted}"
    if result.error:
        action += f"; {len(result.pending)} left: {result.error}"
    else:  # what was up before this push (the listing's) leaves the spool
        _prune(s.root, ledger, listed, dry_run=dry_run)
    return Problem(Path("."), what, action)


def _prune(root: Path, ledger, listed, *, dry_run: bool) -> None:  # type: ignore[no-untyped-def]
    """Prune from a spool the bulk parts the store holds (store/prune.py)."""
    from logbook.store.prune import prune

    if not dry_run:
        n = prune(root, ledger, listed=listed)
        if n:
            click.echo(f"pruned {n} uploaded part(s) from the spool", err=True)


@click.command()
@click.option(
    "--to", "url", required=True, metavar="URL", help="The remote store, e.g. s3://bucket/prefix."
)
@store_option
def push(url: str, store: Path | str | None) -> None:
    """Upload a local store to a remote one, once: a file already there as it is here is not
    sent again, so pushing again (after a fault, or as the store grows) is safe.

    \b
        logbook push --to s3://ml-logbooks/archive
        logbook push --store ~/.cache/logbook/spool/... --to s3://ml-logbooks/gpt-13b
    """
    from logbook.errors import ConfigError
    from logbook.settings import find_store
    from logbook.store import Store, remote

    target = remote.check_url(url) if remote.is_url(url) else None
    if target is None:
        raise ConfigError(f"--to {url!r} is not a remote store", hint="give s3://bucket/prefix")
    root, source = find_store(store)
    s = Store.open(root, source=source)
    s.fold_dead_journals()  # what dead wrappers left goes up as parts
    result = remote.push(s.root, remote.Remote(target), check=True)
    if result.error:
        raise remote.StoreUnreachable(
            f"could not push to {target}: {result.error}",
            hint=f"{len(result.pending)} file(s) not uploaded ({result.uploaded} were); push "
            "again once that is fixed (files already there are not sent again)",
        )
    click.echo(
        f"pushed {s.root} to {target}: {result.uploaded} file(s) uploaded"
        + (f", {result.deleted} replaced part(s) deleted" if result.deleted else ""),
        err=True,
    )


def _whence(source: str) -> str:
    """Where the store came from, as a phrase: 'from --store', 'from /x/logbook.toml', but 'found
    walking up from /y' as it is (#17: it read "from found walking up")."""
    return source if source.startswith(("found ", "default")) else f"from {source}"


COMMANDS = [doctor, compact, push]
