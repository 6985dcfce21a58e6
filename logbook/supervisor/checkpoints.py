"""Checkpoints as they land in --checkpoint-dir, and the step each one holds (#15).

Which entries are checkpoints (`is_checkpoint`): a top-level entry of the folder whose name says
so or names a step (`checkpoint-1200/`, `epoch=0-step=50.ckpt`, `last.ckpt`, `ckpt.pt`,
`global_step1200/`, `iter_0000100/`); a file only in a checkpoint format (`.pt`, `.ckpt`,
`.safetensors`, `.distcp`...), with no extension, or JSON named checkpoint or ckpt; so not a text,
table or state file (`step_times.csv`, `epoch_summary.json`, `trainer_state.json`,
`latest_checkpointed_iteration.txt`), nor an export (`final/`, `model.safetensors`), tensorboard
logs (`runs/`), hidden or temporary entries. A folder is one checkpoint: its inner files are
measured, never reported on their own. `--checkpoint-pattern` globs replace the names' rule.

Each write is reported once, when it settles: an entry whose inode, size or modification time
changed (a new name, or a file rewritten in place, as nanoGPT's `out/ckpt.pt` and Lightning's
`last.ckpt`) is followed until it stops changing. The step it holds is, first that found:
the step its name gives; the step a save line of the output names (`saved checkpoint at step
N`); `global_step` in its `trainer_state.json`; the last step logged before a step-less save
line (`saving checkpoint to out`); else the last step logged before the write started (to within
one read of the logs, READ_EVERY_S in progress.py).

Write time is from the first sign of the write (the oldest modification among its files, or when
it was first seen changed, whichever is earlier) to its last write.
"""

from __future__ import annotations

import bisect
import fnmatch
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SETTLE_S = 1.0  # a checkpoint unchanged for this long, and across two looks, is complete
DEEP_EVERY_S = 5.0  # folders with no step in their names (`last/`) are walked this often
MAX_FILES = 10_000  # files measured per checkpoint folder
HISTORY = 20_000  # (time, step) changes kept to find the step at a write's start
ANNOUNCED_WAIT_S = 10.0  # a save line the folder does not confirm in this long is reported alone

# The names' rule: a checkpoint's name says so or names a step (fnmatch, case-insensitive)...
DEFAULT_PATTERNS = ("*checkpoint*", "*ckpt*", "*step*", "iter*", "*epoch*")
# ...and a file is in a format checkpoints are saved in (or has no extension), so that with
# `--checkpoint-dir .` the training's `step_times.csv`, `epoch_summary.json` or `iterate.py` are not.
_CHECKPOINT_FORMATS = (
    ".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".distcp", ".pkl", ".pickle", ".npz", ".npy",
    ".h5", ".hdf5", ".msgpack", ".tar", ".pdparams",
)  # fmt: skip
_SAYS_CHECKPOINT = re.compile(r"checkpoint|ckpt")  # the names that may be JSON (`checkpoint.json`)
_EXTENSION = re.compile(r"\.[a-z][a-z0-9]*$")  # `.pt`, not the `.5` of `step_1.5`
# Never checkpoints under the default rule: text and state files, partial writes.
_NOT_CHECKPOINTS = (".txt", ".log", ".md", ".yaml", ".yml", ".lock", ".tmp", ".partial")

# The step in a checkpoint's name: after a word that says so, else the last number once epochs
# (`epoch=3`) and Lightning's version suffix (`last-v1`) are left out.
_NAMED_STEP = re.compile(r"(?:global_step|step|iteration|iter|checkpoint|ckpt)[=_\-]?(\d+)", re.I)
_NOT_A_STEP = re.compile(r"epoch[=_\-]?\d+|-v\d+$", re.I)
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")

# Output lines. A save: `saved checkpoint at step 100`, `Saving model checkpoint to
# out/checkpoint-100` (Transformers), `saving checkpoint to out` (nanoGPT); not `will save
# checkpoints every 100 steps`.
_SAVE = re.compile(
    rb"\b(?:saved|saving|wrote|writing|written)\b[^\n]{0,40}?(?:checkpoint|ckpt)", re.I
)
_STEP_WORD = re.compile(rb"\bstep\D{0,3}(\d+)", re.I)
_PATH_AFTER = re.compile(rb"\b(?:to|at|from|path)\s+['\"]?(?!step\b)([^\s'\"]+)", re.I)
# A resume that names the step: Transformers 4.x `Continuing training from global step 100`,
# 5.x `Resuming training from checkpoint with epoch 0 and global step 100`, `resumed from
# checkpoint at step 100`.
_RESUMED_STEP = re.compile(
    rb"(?:resum\w*|continuing training)\b[^\n]{0,80}?\bstep\D{0,3}(\d+)", re.I
)
# A resume that names what it loads: Lightning `Restoring states from the checkpoint path at
# X`, `Restored all states from the checkpoint at X`; nanoGPT `Resuming training from out`.
_RESUMED_FROM = re.compile(
    rb"(?:resum\w*|restor\w*)\b[^\n]{0,60}?\b(?:from|at)\b[^\n]{0,30}?(?<=\s)['\"]?([^\s'\"]+)['\"]?\s*$",
    re.I,
)


def is_checkpoint(
    name: str, patterns: Sequence[str] | None = None, *, folder: bool = False
) -> bool:
    """Whether an entry of the checkpoint folder, by its name, is a checkpoint.

    Args:
        name: the entry's name (not a path).
        patterns: globs that replace the default rule (`--checkpoint-pattern`); None: the default.
        folder: the entry is a folder (`checkpoint-1200/`, `global_step1200/`), not a file.
    """
    low = name.lower()
    if low.startswith(".") or low.startswith("tmp"):
        return False
    if patterns:
        return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)
    if low.endswith(_NOT_CHECKPOINTS):
        return False
    if not any(fnmatch.fnmatchcase(low, p) for p in DEFAULT_PATTERNS):
        return False
    says_so = _SAYS_CHECKPOINT.search(low) is not None
    ext = _EXTENSION.search(low)
    if folder or ext is None:  # `checkpoint-1200/`, `epoch_3/`, `ckpt`; not `epochs/`
        return says_so or any(c.isdigit() for c in low)
    return low.endswith(_CHECKPOINT_FORMATS) or (says_so and ext.group() == ".json")


def step_in_name(name: str) -> int | None:
    """checkpoint-1200, epoch=0-step=50.ckpt, global_step1200, iter_0000100, model_1200.pt -> the
    step; last.ckpt, ckpt.pt, epoch=3.ckpt, last-v1.ckpt -> None."""
    m = _NAMED_STEP.search(name)
    if m:
        return int(m.group(1))
    stem = _NOT_A_STEP.sub("", name.split(".")[0])
    m = _LAST_NUMBER.search(stem)
    return int(m.group(1)) if m else None


def _json_step(path: Path) -> int | None:
    """`step` of a small JSON checkpoint."""
    try:
        if path.stat().st_size < 1 << 20:
            value = json.loads(path.read_text()).get("step")
            return int(value) if isinstance(value, (int, float)) else None
    except (OSError, ValueError, AttributeError):
        return None
    return None


def trainer_state_step(path: Path) -> int | None:
    """`global_step` of a checkpoint folder's trainer_state.json (Transformers), if any."""
    try:
        state = path / "trainer_state.json"
        if state.stat().st_size < 16 << 20:
            value = json.loads(state.read_text()).get("global_step")
            return int(value) if isinstance(value, (int, float)) else None
    except (OSError, ValueError, AttributeError):
        return None
    return None


@dataclass
class Checkpoint:
    step: int | None
    time: datetime  # when it was complete (its last write), or when the output announced it
    path: str | None
    size: int | None = None
    files: int | None = None
    write_s: float | None = None
    seen_by: str = "folder"  # folder | output | folder+output
    # name | output | trainer_state | content | save line | written with <entry> | last step logged
    step_source: str | None = None
    identity: tuple[int, int, int] | None = None  # (inode, size, mtime ns): found again on resume


@dataclass
class _Shape:
    size: int
    files: int
    oldest: float  # modification times, seconds since the epoch
    newest: float
    inode: int
    newest_ns: int

    def identity(self) -> tuple[int, int, int]:
        return (self.inode, self.size, self.newest_ns)


@dataclass
class _Write:
    """A write seen in progress: since when, its shape at the last look, its start's estimate."""

    first_seen: float
    shape: _Shape
    start: float


class FolderWatch:
    """The checkpoint entries of one folder, with the ones there at the start known.

    Args:
        folder: the checkpoint folder.
        patterns: globs replacing the default rule of `is_checkpoint`.
    """

    def __init__(self, folder: Path, patterns: Sequence[str] | None = None) -> None:
        self.folder = folder
        self.patterns = patterns
        self._done: dict[str, _Shape] = {}  # name -> shape when last reported (or at the start)
        self._pending: dict[str, _Write] = {}
        self._judged: dict[str, bool] = {}  # name -> is_checkpoint
        self._last_look = time.time()
        self._last_deep = 0.0
        self.latest_at_start: Checkpoint | None = None
        for name, shape in self._entries(deep=True, start=True):
            self._done[name] = shape
            if (
                self.latest_at_start is None
                or shape.newest >= self.latest_at_start.time.timestamp()
            ):
                self.latest_at_start = self._checkpoint(name, shape, shape.newest)
        self._at_start = dict(self._done)

    def scan(self, now: float, *, final: bool = False) -> tuple[list[Checkpoint], bool]:
        """Writes complete since the last look (oldest first), and whether one is still going on
        (activity for the hang watch). Cheap: a stat per entry; folders are walked only every
        DEEP_EVERY_S or while written. `final`: the writer is gone, so a pending write is complete."""
        deep = final or now - self._last_deep >= DEEP_EVERY_S
        if deep:
            self._last_deep = now
        done: list[Checkpoint] = []
        entries = self._entries(deep=deep)
        present = {name for name, _ in entries}
        for name in [n for n in self._pending if n not in present]:
            # Gone before it settled: rotated away (Lightning's save_top_k) or renamed whole. It
            # was a complete write, as far as it got.
            gone = self._pending.pop(name)
            done.append(self._checkpoint(name, gone.shape, gone.start))
        for name, shape in entries:
            before = self._done.get(name)
            write = self._pending.get(name)
            if write is None:
                if before is not None and before.identity() == shape.identity():
                    continue
                # Changed since the last look: it started after that look, by its last write.
                start = max(self._last_look, min(now, shape.oldest))
                write = self._pending[name] = _Write(now, shape, start)
            settled = (
                write.shape == shape and now - shape.newest >= SETTLE_S and write.first_seen < now
            )
            if settled or final:
                del self._pending[name]
                self._done[name] = shape
                done.append(self._checkpoint(name, shape, write.start))
            else:
                write.shape = shape
        self._last_look = now
        return sorted(done, key=lambda c: c.time), bool(self._pending)

    def named_pending(self) -> bool:
        """Whether a write whose name gives its step is still going on."""
        return any(step_in_name(name) is not None for name in self._pending)

    def at_start(self, name: str) -> Checkpoint | None:
        """The checkpoint named `name` as it was at the start, if it was there."""
        shape = self._at_start.get(name)
        return self._checkpoint(name, shape, shape.newest) if shape is not None else None

    def _checkpoint(self, name: str, shape: _Shape, start: float) -> Checkpoint:
        path = self.folder / name
        step, source = step_in_name(name), "name"
        if step is None and os.path.isdir(path):
            step, source = trainer_state_step(path), "trainer_state"
        elif step is None and name.endswith(".json"):
            step, source = _json_step(path), "content"
        return Checkpoint(
            step=step,
            time=datetime.fromtimestamp(shape.newest, timezone.utc),
            path=str(path),
            size=shape.size,
            files=shape.files,
            write_s=round(max(0.0, shape.newest - min(start, shape.newest)), 3),
            step_source=source if step is not None else None,
            identity=shape.identity(),
        )

    def _entries(self, *, deep: bool, start: bool = False) -> list[tuple[str, _Shape]]:
        """The checkpoint entries and their shapes. A look costs a stat per entry: names are
        judged once, and a folder seen before is walked only when `deep` or written."""
        out = []
        try:
            with os.scandir(self.folder) as entries:
                for e in entries:
                    ok = self._judged.get(e.name)
                    if ok is None:
                        folder = e.is_dir(follow_symlinks=False)
                        ok = is_checkpoint(e.name, self.patterns, folder=folder)
                        self._judged[e.name] = ok
                    if not ok:
                        continue
                    # A folder named with its step is written once: not walked again once done.
                    again = deep and step_in_name(e.name) is None
                    known = None if again or e.name in self._pending else self._done.get(e.name)
                    # At the start (before the command is launched) a folder named with its step
                    # is not walked: a store of many large checkpoints would delay the launch.
                    shape = _measure(
                        e, known, walk=not (start and step_in_name(e.name) is not None)
                    )
                    if shape is not None:
                        out.append((e.name, shape))
        except OSError:
            return out
        return sorted(out, key=lambda x: x[1].newest)


def _measure(
    entry: os.DirEntry[str], known: _Shape | None = None, *, walk: bool = True
) -> _Shape | None:
    """The entry's shape; a folder is walked unless `known` is its shape and its own inode and
    mtime have not moved (an entry added or removed inside moves them), or not `walk` (then its
    own stat stands for it)."""
    try:
        if entry.is_symlink():  # Lightning's save_last="link": a link is not a write
            return None
        st = entry.stat(follow_symlinks=False)
        if not entry.is_dir(follow_symlinks=False):
            return _Shape(st.st_size, 1, st.st_mtime, st.st_mtime, st.st_ino, st.st_mtime_ns)
        if known is not None and known.inode == st.st_ino and known.newest_ns >= st.st_mtime_ns:
            return known
        if not walk:
            return _Shape(0, 0, st.st_mtime, st.st_mtime, st.st_ino, st.st_mtime_ns)
        path = entry.path
        # The folder's own mtime moves when an entry is added: activity, but not its start.
        size, files, oldest, newest, newest_ns = 0, 0, float("inf"), st.st_mtime, st.st_mtime_ns
        for folder, _dirs, names in os.walk(path):
            for name in names:
                try:
                    fst = os.stat(os.path.join(folder, name))
                except OSError:  # removed while we looked (a rotating save)
                    continue
                size, files = size + fst.st_size, files + 1
                oldest = min(oldest, fst.st_mtime)
                if fst.st_mtime_ns > newest_ns:
                    newest, newest_ns = fst.st_mtime, fst.st_mtime_ns
                if files >= MAX_FILES:
                    break
            if files >= MAX_FILES:
                break
        return _Shape(size, files, min(oldest, newest), newest, st.st_ino, newest_ns)
    except OSError:
        return None


class CheckpointMemory:
    """The steps of the checkpoint writes seen so far in a run, by path and identity (inode,
    size, mtime): how a relaunch knows the step held by a file whose name has none (`ckpt.pt`,
    `last.ckpt`) when it loads it again unchanged.

    Args:
        load: gives the checkpoint events already on record (dicts with `step` and `data`, the
            event's JSON); called once, when first needed, from the thread that asks.
    """

    def __init__(self, load: Callable[[], Iterable[dict[str, Any]]] | None = None) -> None:
        self._load = load
        self._steps: dict[tuple[str, tuple[int, int, int]], int] = {}

    def remember(self, ckpt: Checkpoint) -> None:
        if ckpt.path is not None and ckpt.identity is not None and ckpt.step is not None:
            self._steps[(ckpt.path, ckpt.identity)] = ckpt.step

    def recall(self, path: str, identity: tuple[int, int, int] | None) -> int | None:
        if identity is None:
            return None
        if self._load is not None:
            load, self._load = self._load, None
            try:
                for row in load():
                    data = json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
                    key = (data["path"], (data["inode"], data["size_bytes"], data["mtime_ns"]))
                    if row["step"] is not None and None not in key[1]:
                        self._steps.setdefault(key, int(row["step"]))  # type: ignore[arg-type]
            except Exception:  # an old store's events lack identities: nothing to recall
                pass
        return self._steps.get((path, identity))


@dataclass
class _Announced:
    step: int | None
    source: str  # output (the line names the step) | save line (the last step before it)
    at: float  # time.time() when read
    mono: float
    path: str | None


class Checkpoints:
    """The checkpoints of one attempt: save and resume lines of the output, writes in the folder,
    and the step at each moment, which progress.py passes on as it reads the logs.

    Args:
        folder: --checkpoint-dir, if given.
        on_checkpoint: called once per checkpoint, in the thread that found it; never raises.
        patterns: --checkpoint-pattern globs (None: the default rule, `is_checkpoint`).
        memory: the steps of checkpoints written by earlier attempts (a relaunch's resume).
        logs: the raw logs, whose modification times date the lines read from them.
    """

    def __init__(
        self,
        folder: Path | None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        patterns: Sequence[str] | None = None,
        memory: CheckpointMemory | None = None,
        logs: Sequence[Path] = (),
    ) -> None:
        self.folder = folder
        self._logs = list(logs) if folder is not None else []
        self._watch = FolderWatch(folder, patterns) if folder is not None else None
        self._on_checkpoint = on_checkpoint
        self.memory = memory if memory is not None else CheckpointMemory()
        self.latest: Checkpoint | None = None  # the newest on record (highest step)
        self.activity = time.monotonic()  # monotonic time of the last save seen or in progress
        self._times: list[float] = []  # when each step in _steps was first read
        self._steps: list[int] = []
        self._announced: list[_Announced] = []
        self._reported: set[int] = set()  # steps with a checkpoint on record
        self._resume_step: tuple[int, str] | None = None  # named by a resume line
        self._resume_path: str | None = None  # what a resume line says it loads
        self._resolved: dict[str | None, tuple[int | None, str | None]] = {}
        self._named: list[Checkpoint] = []  # the last writes whose names gave their step
        self._held: list[Checkpoint] = []  # step-less writes waiting for a named one to settle

    # --- fed by progress.py, in log order ---------------------------------------------------

    def written_by(self, read_at: float) -> float:
        """When the lines just read were printed at the latest: the logs' last modification,
        which is often well before the read (a save right after a step line, then silence)."""
        newest = 0.0
        for log in self._logs:
            try:
                newest = max(newest, os.stat(log).st_mtime)
            except OSError:
                continue
        return min(read_at, newest) if newest else read_at

    def saw_step(self, at: float, step: int) -> None:
        """The logs reached `step` at `at` (seconds since the epoch, when it was read)."""
        if not self._steps or self._steps[-1] != step:
            self._times.append(at)
            self._steps.append(step)
            if len(self._steps) > HISTORY:
                del self._times[: HISTORY // 2], self._steps[: HISTORY // 2]

    @staticmethod
    def marked_lines(found: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        """The save and resume lines among `found`, the (index, line) of a chunk's lines that
        hold one of KEYWORDS (`logbook.record.keyword_lines`, one search shared with the phase
        lines, #19)."""
        return [
            (i, line) for i, line in found if any(k in line for k in KEYWORDS) and _is_marked(line)
        ]

    def saw_line(self, line: bytes, at: float, last_step: int | None) -> bool:
        """Whether `line` is a save or resume line (then not progress); `last_step`: the last
        step the logs named before it. Never raises."""
        if not any(k in line for k in KEYWORDS):
            return False
        try:
            return self._resume_line(line) or self._save_line(line, at, last_step)
        except Exception:  # a bug here must never touch the training
            return False

    def _resume_line(self, line: bytes) -> bool:
        if (m := _RESUMED_STEP.search(line)) is not None:
            if self._resume_step is None:
                self._resume_step = (int(m.group(1)), "output: " + _text(line))
            return True
        if (m := _RESUMED_FROM.search(line)) is not None and not _SAVE.search(line):
            if self._resume_path is None:
                self._resume_path = m.group(1).decode(errors="replace").rstrip(".,;:")
            return True
        return False

    def _save_line(self, line: bytes, at: float, last_step: int | None) -> bool:
        if not _SAVE.search(line):
            return False
        path = m.group(1).decode(errors="replace") if (m := _PATH_AFTER.search(line)) else None
        named = _STEP_WORD.search(line)
        step = int(named.group(1)) if named else step_in_name(Path(path).name) if path else None
        source = "output" if step is not None else "save line"
        if step is None:
            step = last_step
        if step is None and self._watch is None:
            return True  # a save before any step, and no folder to find it in: nothing to say
        self.activity = time.monotonic()
        ckpt = _Announced(step, source, at, self.activity, path)
        if self._watch is None:
            self._report(Checkpoint(step, _utc(at), path, seen_by="output", step_source=source))
        elif step is None or step not in self._reported:
            self._announced.append(ckpt)
        return True

    # --- the folder -------------------------------------------------------------------------

    def scan(self, now: float | None = None, *, final: bool = False) -> None:
        """Look at the folder; report the writes complete, and save lines the folder did not
        confirm in ANNOUNCED_WAIT_S (or at all, when `final`). Never raises."""
        try:
            self._scan(time.time() if now is None else now, final)
        except Exception:  # a bug here must never touch the training
            pass

    def _scan(self, now: float, final: bool) -> None:
        if self._watch is None:
            return
        done, busy = self._watch.scan(now, final=final)
        if busy:  # a long save with no output is not a hang
            self.activity = time.monotonic()
        done, self._held = self._held + done, []
        if not final and self._watch.named_pending():  # last.ckpt settled before its sibling
            self._held = [c for c in done if c.step is None]
            done = [c for c in done if c.step is not None]
        for ckpt in done:
            self._step_of(ckpt, now, done + self._named)
        late = time.monotonic() - ANNOUNCED_WAIT_S
        for a in list(self._announced):
            if final or a.mono < late:
                self._announced.remove(a)
                self._report(
                    Checkpoint(a.step, _utc(a.at), a.path, seen_by="output", step_source=a.source)
                )
        for ckpt in done:
            self._report(ckpt)
            if ckpt.step_source == "name":
                self._named = [*self._named[-7:], ckpt]

    def _step_of(self, ckpt: Checkpoint, now: float, named: list[Checkpoint]) -> None:
        """The step a write holds (`named`: writes around it whose names gave theirs), and the
        save line that announced it (then used up)."""
        written_at = ckpt.time.timestamp()
        start = written_at - (ckpt.write_s or 0.0)
        if ckpt.step is None:  # written with a named one, as Lightning's last.ckpt: its step
            for other in reversed(named):  # by their last writes: a rewrite it merged with wins
                if (
                    other.step_source == "name"
                    and abs(other.time.timestamp() - written_at) <= SETTLE_S
                ):
                    ckpt.step = other.step
                    ckpt.step_source = f"written with {Path(other.path or '').name}"
                    break
        match = None
        for a in self._announced:
            if ckpt.step is not None:
                if a.step == ckpt.step:
                    match = a
            elif start - 2 * SETTLE_S <= a.at <= now:
                match = a  # the latest save line read about when the write started
        if match is not None:
            self._announced.remove(match)
            ckpt.seen_by = "folder+output"
            if ckpt.step is None and match.step is not None:
                ckpt.step, ckpt.step_source = match.step, match.source
        if ckpt.step is None:
            i = bisect.bisect_right(self._times, start)
            if i:
                ckpt.step, ckpt.step_source = self._steps[i - 1], "last step logged"

    def _report(self, ckpt: Checkpoint) -> None:
        """One event per write in the folder (Lightning's two files of a save are two writes,
        each with its write time); a save line alone only when no write showed its step."""
        if ckpt.step is not None:
            self.memory.remember(ckpt)
            if ckpt.seen_by == "output" and ckpt.step in self._reported:
                return
            self._reported.add(ckpt.step)
        latest = self.latest
        if latest is None or latest.step is None or (ckpt.step or 0) >= latest.step:
            self.latest = ckpt
        self.activity = time.monotonic()
        if self._on_checkpoint is not None:
            self._on_checkpoint(ckpt)

    # --- the resume ---------------------------------------------------------------------------

    def resume(self, first_step: int | None) -> tuple[int | None, str | None]:
        """The step this attempt resumed from and what gave it, or (None, None).

        In order: a resume line naming the step; the checkpoint a resume line names (its name,
        trainer_state.json, or the step recorded when it was written); else the newest checkpoint
        in the folder at the start, unless the first step logged is before it (the training did
        not load it). The first step logged is the last resort, kept for the query's side
        (`query/lost_work.py`), which knows whether the attempt is a relaunch."""
        if self._resume_step is not None:
            return self._resume_step
        key = self._resume_path
        if key not in self._resolved:
            self._resolved[key] = self._loaded(key)
        step, source = self._resolved[key]
        if step is not None and key is None and first_step is not None and first_step < step:
            return None, None
        return step, source

    def _loaded(self, named: str | None) -> tuple[int | None, str | None]:
        """The step of the checkpoint a resume line names (None: the newest in the folder)."""
        watch = self._watch
        target = watch.latest_at_start if watch is not None else None
        if named is not None:
            name = Path(named.rstrip("/")).name
            if watch is None or name != watch.folder.name:  # not the folder: one entry
                target = watch.at_start(name) if watch is not None else None
                if target is None:
                    step = step_in_name(name)
                    return (step, f"checkpoint name: {name}") if step is not None else (None, None)
        if target is None or target.path is None:
            return None, None
        name = Path(target.path).name
        if target.step is not None:
            how = {"name": "checkpoint name", "trainer_state": "trainer_state.json"}
            return target.step, f"{how.get(target.step_source or '', 'checkpoint')}: {name}"
        step = self.memory.recall(target.path, target.identity)
        return (step, f"checkpoint record: {name}") if step is not None else (None, None)


def _text(line: bytes, limit: int = 120) -> str:
    text = line.decode(errors="replace").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, timezone.utc)


# What every save or resume line holds (a cheap test before the regular expressions).
KEYWORDS = (b"heckpoint", b"ckpt", b"esum", b"estor", b"ontinuing")


def _is_marked(line: bytes) -> bool:
    """Whether `Checkpoints.saw_line` takes `line` for a save or resume line."""
    try:
        return bool(_RESUMED_STEP.search(line) or _RESUMED_FROM.search(line) or _SAVE.search(line))
    except Exception:
        return False
