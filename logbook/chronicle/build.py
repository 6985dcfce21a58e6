"""Build a run's chronicle: index.html (one self-contained page: inline CSS and SVG, no script,
no request leaves it), chronicle.md with its images in img/, and the data in data/.

The chronicle is built in a fresh folder beside the target and moved into place, so a failed build
leaves the last good one as it was. A folder holding anything else is refused unless --force; then
only the chronicle's own entries in it are replaced.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logbook.errors import LogbookError

if TYPE_CHECKING:
    from logbook.chronicle.data import Published
    from logbook.cost import CostSettings
    from logbook.store import Store

MARKER = ".logbook-chronicle"
ENTRIES = ("index.html", "chronicle.md", "img", "data", MARKER)


@dataclass
class Built:
    """What a build wrote."""

    folder: Path
    figures: list[str]
    data: list[Published]
    missing: dict[str, str] = field(default_factory=dict)


def build(
    store: Store,
    run: str,
    out: Path,
    *,
    anonymize: bool = False,
    force: bool = False,
    metrics: list[str] | None = None,
    settings: CostSettings | None = None,
    samples: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Built:
    """Write the chronicle of `run` into `out`.

    Args:
        store: the open store.
        run: the run's name.
        out: the folder to write (created; a previous chronicle in it is replaced).
        anonymize: replace host names, user names and home folders.
        force: write into a folder that holds other things (they are left alone).
        metrics: the metrics to plot (default: loss and the most recorded ones).
        settings: cost settings (prices, PUE, carbon intensity).
        samples: publish the telemetry samples with the data.
        progress: called with a few words before each stage.

    Returns:
        The pages, figures and data files written, and what the record lacked.

    Raises:
        NoSuchRun: no such run.
        LogbookError: `out` holds something that is not a chronicle, and no `force`.
    """
    from logbook.chronicle import collect, data, figures, render
    from logbook.chronicle.scrub import Scrubber

    say = progress or (lambda _: None)
    _check_target(out, force)
    say("reading the record")
    # Read again if a compaction merged a part away while it was being read.
    rec = store.reading(lambda: collect.gather(store, run, metrics=metrics, settings=settings))
    scrub = Scrubber(_anonymizer(rec) if anonymize else None)
    sections = scrub.walk(rec.sections)
    missing = scrub.walk(rec.missing)
    repro = store.reading(lambda: _repro(store, run, rec, scrub))
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        # The data is copied beside the figures: DuckDB's, Arrow's and the kernel's work, mostly
        # outside the GIL, against matplotlib's Python (#16: 3-4 s less on two cores). Each read
        # is again a snapshot that a compaction may merge away under it: read again then.
        with ThreadPoolExecutor(max_workers=1) as pool:  # left only once the copy has ended
            exporting = pool.submit(
                store.reading,
                lambda: data.export(store, run, work / "data", scrub, samples=samples),
            )
            say("drawing the figures")
            svgs = figures.draw(sections)
            (work / "img").mkdir()
            for name, svg in svgs.items():
                (work / "img" / f"{name}.svg").write_text(svg)
            say("copying the data")
            published = exporting.result()
        say("writing the pages")
        page = render.Page(scrub.text(run), sections, missing, svgs, repro, published, anonymize)
        (work / "index.html").write_text(render.html(page))
        (work / "chronicle.md").write_text(render.markdown(page))
        (work / MARKER).write_text(
            json.dumps({"run": run, "built_at": datetime.now(timezone.utc).isoformat()}) + "\n"
        )
        _move_into_place(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Built(out, sorted(svgs), published, missing)


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise LogbookError(f"{out} is a file, not a folder", hint="choose another --out")
    if force or not out.exists() or (out / MARKER).exists() or not any(out.iterdir()):
        return
    raise LogbookError(
        f"{out} is not empty and holds no chronicle; not writing into it",
        hint="choose an empty or new folder, or add --force to write the chronicle's files "
        "(index.html, chronicle.md, img/, data/) into it, leaving the rest",
    )


def _move_into_place(work: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ENTRIES:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        (work / name).rename(target)


def _anonymizer(rec: Any) -> Any:
    from logbook.chronicle.anonymize import Anonymizer

    names = rec.sections["identities"]
    return Anonymizer(names["hosts"], names["users"])


def _repro(store: Store, run: str, rec: Any, scrub: Any) -> dict[str, Any] | None:
    """The reproducibility card of the newest attempt, scrubbed (None without attempts)."""
    from logbook import repro

    attempts = rec.sections["attempts"]
    if not attempts:
        return None
    card = repro.recipe(store, run, attempts[-1]["label"]).as_dict()
    card["env"] = {name: scrub.named(name, value) for name, value in card["env"].items()}
    return scrub.walk(card)  # type: ignore[no-any-return]
