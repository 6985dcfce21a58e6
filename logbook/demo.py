"""The demo: a small real training through a scripted story under the real `logbook run`: a
crash, a hang, a loss spike, a stop by hand, a note, a relaunch with new settings; then its
chronicle. About a minute, no GPU, no network.

Each step runs the CLI as a subprocess (`python -m logbook ...`), so the supervisor, its signals
and its restarts are the real ones. The demo only reads their output to tell the story, sends the
Ctrl-C, and checks the store after each step: a step that did not do what it should is an error
that names it.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logbook.errors import LogbookError
from logbook.exitcodes import ExitCode

RUN = "demo"
MARKER = ".logbook-demo"  # says the folder is a demo's, to be replaced by the next one
STEPS, CRASH_AT, HANG_AT, SPIKE_AT, STOP_AT = 450, 130, 230, 310, 340
LR, NEW_LR = 0.5, 0.2
MIX = {"web": 0.6, "code": 0.25, "books": 0.15}
NEW_MIX = {"web": 0.45, "code": 0.4, "books": 0.15}
TIMEOUT_S = 180.0  # one step of the story; it takes under 30 s
QUIET_S = 1.0  # a silence this long is worth a word (the hang watch waits 3 s)
_STEP = re.compile(r"step=(\d+) ")

RUN_ARGS = [
    "run", "--run", RUN, "--restarts", "5", "--backoff", "1s", "--hang-timeout", "3s",
    "--checkpoint-dir", "ckpt", "--config", "cfg.yaml", "--data-mix", "mix.yaml", "--",
    "python", "train.py", "--config", "cfg.yaml", "--data-mix", "mix.yaml",
    "--crash-at", str(CRASH_AT), "--hang-at", str(HANG_AT), "--spike-at", str(SPIKE_AT),
]  # fmt: skip
TOML = """\
# Made by `logbook demo`. logbook finds this file walking up from where it runs, as git finds
# .git: it names the store, and keeps a logbook.toml in a folder above out of the demo.
[store]
path = "../.logbook"
"""
CONFIG = """\
# The training's settings: train.py reads them, and a flag on its command line wins.
lr: {lr}
batch: 64
steps: {steps}
ckpt_every: 50
log_every: 5
step_delay: 0.05   # seconds per step, so that the story takes about a minute
"""


def _quiet(_: str) -> None:
    pass


@dataclass
class DemoResult:
    """What `run_demo` made."""

    folder: Path
    store: Path
    run: str
    chronicle: Path  # the folder; its page is `index`
    wall_s: float

    @property
    def index(self) -> Path:
        return self.chronicle / "index.html"


def run_demo(out: Path, *, say: Callable[[str], None] = _quiet) -> DemoResult:
    """Run the demo into `out`: `.logbook/` (the store), `work/` (the training's folder) and
    `chronicle/`.

    Args:
        out: a new or empty folder, or one an earlier demo made (what it made is replaced).
        say: called with each line of the story as it happens.

    Returns:
        Where things are, and how long it took.

    Raises:
        LogbookError: `out` holds other things, or a step of the story went wrong.
    """
    began = time.monotonic()
    folder = out.expanduser().absolute()
    _prepare(folder)
    work, store = folder / "work", folder / ".logbook"
    _write_work(work)
    say(
        "logbook demo: a small real training (logistic regression in pure Python, no GPU) is run\n"
        "under `logbook run` through what happens to long trainings: a crash, a hang, a loss\n"
        "spike, a stop by hand, a note, a relaunch with new settings. Then it is published.\n"
        f"\nInto {folder}: .logbook/ (the store), work/ (train.py, cfg.yaml, mix.yaml, ckpt/),\n"
        "chronicle/. Each command below runs in work/.\n"
    )
    spike = _launch(work, store, say)
    _note(work, store, spike, say)
    _relaunch(work, store, say)
    chronicle = _publish(work, folder / "chronicle", say)
    return DemoResult(
        folder=folder,
        store=store,
        run=RUN,
        chronicle=chronicle,
        wall_s=time.monotonic() - began,
    )


def _launch(work: Path, store: Path, say: Callable[[str], None]) -> int:
    """Step 1: a crash, a hang, a loss spike, then Ctrl-C. Returns the spike's step."""
    say(
        f"1/4 Launch. train.py is set to crash at step {CRASH_AT}, hang at step {HANG_AT} and take\n"
        f"    a bad batch at step {SPIKE_AT}; logbook may relaunch it 5 times, and calls 3 s with\n"
        f"    no output a hang, less once it has learned the training's pace. At step {STOP_AT} we\n"
        f"    stop it by hand (Ctrl-C).\n{_shown(RUN_ARGS)}"
    )
    step = "step 1 (the launch)"
    _logbook(RUN_ARGS, work, step, _Narrator(say, stop_at=STOP_AT))
    attempts, events = _record(store)
    ends = [(a["status"], a["crash_class"]) for a in attempts]
    kinds = [e["kind"] for e in events]
    _expect(
        step,
        ends == [("crashed", "python_exception"), ("hung", None), ("interrupted", None)],
        "the attempts should have ended crashed (python_exception), hung, interrupted; "
        f"they ended {_ends(attempts)}",
    )
    _expect(step, kinds.count("restart") == 2, "logbook should have restarted it twice")
    _expect(step, "hang" in kinds, "no hang was recorded")
    _expect(step, "loss_spike" in kinds, f"the loss spike at step {SPIKE_AT} was not detected")
    say("    logbook recorded:")
    _tell(say, attempts, events)
    return int(next(e for e in events if e["kind"] == "loss_spike")["step"])


def _note(work: Path, store: Path, spike: int, say: Callable[[str], None]) -> None:
    """Step 2: a note at the spike."""
    text = f"Lowering the LR after the spike at step {spike}; more code data"
    args = ["note", RUN, text, "--step", str(spike)]
    say(f"\n2/4 A note for the record (it shows in the chronicle's timeline).\n{_shown(args)}")
    _logbook(args, work, "step 2 (the note)", _Narrator(say, training=False))
    noted = any(e["kind"] == "note" for e in _record(store)[1])
    _expect("step 2 (the note)", noted, "the note was not recorded")


def _relaunch(work: Path, store: Path, say: Callable[[str], None]) -> None:
    """Step 3: the same command by hand, with a lower lr and another data mix."""
    (work / "cfg.yaml").write_text(CONFIG.format(lr=NEW_LR, steps=STEPS))
    (work / "mix.yaml").write_text(_mix_yaml(NEW_MIX))
    say(
        f"\n3/4 Relaunch by hand with a lower learning rate (cfg.yaml: lr {LR} -> {NEW_LR}) and\n"
        f"    more code data (mix.yaml: code {MIX['code']} -> {NEW_MIX['code']}, web {MIX['web']} "
        f"-> {NEW_MIX['web']}): the same command,\n    a new attempt in the same lineage.\n"
        f"{_shown(RUN_ARGS)}"
    )
    step = "step 3 (the relaunch)"
    _logbook(RUN_ARGS, work, step, _Narrator(say))
    attempts, events = _record(store)
    last = attempts[-1]
    own = [e for e in events if e["attempt_id"] == last["attempt_id"]]
    kinds = [e["kind"] for e in own]
    _expect(
        step,
        len(attempts) == 4 and last["status"] == "completed",
        f"the relaunch should have completed; the attempts ended {_ends(attempts)}",
    )
    _expect(step, last["last_step"] == STEPS, f"it should have reached step {STEPS}")
    _expect(step, "hparam_change" in kinds, "the change of lr was not recorded")
    _expect(step, "data_mix_change" in kinds, "the change of the data mix was not recorded")
    say("    logbook recorded:")
    _tell(say, [last], own)


def _publish(work: Path, chronicle: Path, say: Callable[[str], None]) -> Path:
    """Step 4: the chronicle."""
    args = ["chronicle", RUN, "--out", "../chronicle"]
    say(
        "\n4/4 The chronicle: a page that opens from disk, the same as Markdown, and the data.\n"
        f"{_shown(args)}"
    )
    _logbook(args, work, "step 4 (the chronicle)", _Narrator(say, training=False))
    _expect("step 4 (the chronicle)", (chronicle / "index.html").is_file(), "no index.html")
    return chronicle


def trainer_source() -> Path:
    """examples/train.py: in a wheel it is logbook/_examples/train.py (pyproject's force-include,
    as schemas/ is), in a source checkout it is beside the package."""
    here = Path(__file__).resolve().parent
    for path in (here / "_examples" / "train.py", here.parent / "examples" / "train.py"):
        if path.is_file():
            return path
    raise LogbookError(
        "the demo's training (examples/train.py) is not installed with logbook",
        hint="reinstall training-logbook",
    )


def _prepare(folder: Path) -> None:
    """Make `folder` ready: new, empty, or an earlier demo's (its parts are replaced)."""
    if folder.exists() and not folder.is_dir():
        raise LogbookError(f"{folder} is a file", hint="give --out a folder")
    if folder.is_dir():
        others = sorted(p.name for p in folder.iterdir())
        if others and not (folder / MARKER).is_file():
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise LogbookError(
                f"{folder} holds other things ({shown}); the demo writes only into a new or "
                "empty folder, or one an earlier demo made",
                hint="choose another --out",
            )
        for name in (".logbook", "work", "chronicle"):
            shutil.rmtree(folder / name, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(
        "Made by `logbook demo`: running it again with this --out replaces .logbook/, work/ "
        "and chronicle/ here.\n"
    )


def _write_work(work: Path) -> None:
    work.mkdir()
    shutil.copyfile(trainer_source(), work / "train.py")
    (work / "logbook.toml").write_text(TOML)
    (work / "cfg.yaml").write_text(CONFIG.format(lr=LR, steps=STEPS))
    (work / "mix.yaml").write_text(_mix_yaml(MIX))


def _shown(args: list[str], width: int = 96) -> str:
    """A command as typed, wrapped with backslashes: a flag stays with its value, and the
    training's command after `--` starts a line."""
    units: list[str] = []
    for word in map(shlex.quote, args):
        pair = units and units[-1].startswith("-") and " " not in units[-1] and units[-1] != "--"
        units.append(f"{units.pop()} {word}" if pair and not word.startswith("-") else word)
    lines, line = [], "    $ logbook"
    for unit in units:
        if len(line) + len(unit) + 3 > width:
            lines.append(line + " \\")
            line = "       "
        line += " " + unit
        if unit == "--":
            lines.append(line + " \\")
            line = "       "
    return "\n".join([*lines, line])


def _mix_yaml(mix: dict[str, float]) -> str:
    lines = "".join(f"{name}: {weight}\n" for name, weight in mix.items())
    return f"# The data mix: source -> weight. train.py draws its examples from them.\n{lines}"


class _Narrator:
    """Reads a command's output as it comes: passes on the telling lines, notes a silence, and
    sends the Ctrl-C once the training reaches `stop_at`."""

    def __init__(
        self, say: Callable[[str], None], *, training: bool = True, stop_at: int | None = None
    ) -> None:
        self.say = say
        self.training = training  # else every line is passed on
        self.stop_at = stop_at
        self.step: int | None = None
        self.launches = 0
        self.silent = self.was_silent = False
        self.stopped = False  # whether we sent the Ctrl-C

    def line(self, text: str, proc: subprocess.Popen[bytes]) -> None:
        if text.startswith("logbook: "):  # logbook run's own account: the training was silent
            self.say(f"    | {text}")
            return
        self.was_silent, self.silent = self.silent, False
        if not self.training:
            self.say(f"    | {text}")
            return
        if m := _STEP.match(text):
            self.step = int(m[1])
            if self.step % 50 == 0 or SPIKE_AT <= self.step <= SPIKE_AT + 10:
                self.say(f"    | {text}")
            if self.stop_at is not None and self.step >= self.stop_at:
                self.stop_at, self.stopped = None, True
                self.say(f"    ^C at step {self.step}: SIGINT to `logbook run`, as Ctrl-C would")
                proc.send_signal(signal.SIGINT)
            return
        if not text.strip() or text.startswith((" ", "\t", "Traceback")):
            return  # a traceback's frames; its last line says what happened
        if text.startswith("data mix:"):  # the first line of each launch
            self.launches += 1
            if self.launches > 1:
                why = "logbook's hang watch stopped it, and " if self.was_silent else "logbook "
                self.say(f"    -- {why}relaunched it (restart {self.launches - 1})")
        self.say(f"    | {text}")

    def quiet(self, seconds: float) -> None:
        if not self.silent and seconds >= QUIET_S and self.step is not None:
            self.silent = True
            self.say(f"    | ... no output for {QUIET_S:g} s after step {self.step}: it is stuck")


def _logbook(args: list[str], cwd: Path, step: str, narrator: _Narrator) -> int:
    """`python -m logbook ARGS` in `cwd`, its output (both streams) read line by line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBOOK_")}
    argv = [sys.executable if a == "python" else a for a in args]  # the trainer runs as we do
    proc = subprocess.Popen(
        [sys.executable, "-m", "logbook", *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    fd, pending = proc.stdout.fileno(), b""
    deadline = heard = time.monotonic()
    deadline += TIMEOUT_S
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                raise LogbookError(
                    f"the demo's {step} did not finish within {TIMEOUT_S:.0f} s",
                    hint=f"its record so far is in {cwd.parent}",
                )
            if not select.select([fd], [], [], 0.25)[0]:
                narrator.quiet(now - heard)
                continue
            chunk = os.read(fd, 65536)
            heard = now
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            if not chunk and pending:
                lines.append(pending)
            for raw in lines:
                narrator.line(raw.decode("utf-8", "replace").rstrip("\r"), proc)
            if not chunk:
                break
        code = proc.wait()
        if code in (ExitCode.SIGNAL_BASE + signal.SIGINT, -signal.SIGINT) and not narrator.stopped:
            raise LogbookError(f"the demo was interrupted in its {step}", hint="run it again")
        return code
    except KeyboardInterrupt:
        _end(proc, patience_s=10)  # the Ctrl-C reached `logbook run` too: it is stopping
        raise
    finally:
        proc.stdout.close()
        _end(proc, patience_s=0)


def _end(proc: subprocess.Popen[bytes], patience_s: float) -> None:
    """Let `logbook run` end; after `patience_s`, ask it to (it passes SIGTERM on), then kill it."""
    try:
        proc.wait(timeout=patience_s)
        return
    except subprocess.TimeoutExpired:
        proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _record(store_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run's attempts and events, oldest first."""
    from logbook.query import run_sql
    from logbook.store import Store

    store = Store.open(store_path)
    attempts = run_sql(
        store, "select * from attempts where run = ? order by start_time", [RUN]
    ).to_pylist()
    events = run_sql(store, "select * from events where run = ? order by time", [RUN]).to_pylist()
    return attempts, events


def _expect(step: str, ok: bool, why: str) -> None:
    if not ok:
        raise LogbookError(
            f"the demo's {step} went wrong: {why}", hint="please report it, with the output above"
        )


def _ends(attempts: list[dict[str, Any]]) -> str:
    return ", ".join(map(_end_of, attempts)) or "not at all"


def _end_of(a: dict[str, Any]) -> str:
    """crashed (gpu_oom), or the status alone."""
    return f"{a['status']} ({a['crash_class']})" if a["crash_class"] else str(a["status"])


_TOLD = ("crash", "restart", "hang", "loss_spike", "grad_norm_explosion", "interrupted",
         "hparam_change", "data_mix_change")  # fmt: skip


def _tell(
    say: Callable[[str], None], attempts: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    """The attempts and their telling events, as `logbook show` and `logbook events` put them."""
    for a in attempts:
        end = _end_of(a)
        steps = f"steps {a['first_step']}-{a['last_step']}" if a["first_step"] is not None else ""
        say(f"      attempt {a['label']}  {end:<26} {steps:<15} {a['summary'] or ''}")
    labels = {a["attempt_id"]: a["label"] for a in attempts}
    for e in events:
        if e["kind"] in _TOLD:
            at = f" at step {e['step']}" if e["step"] is not None else ""
            text = e["message"].removeprefix(f"{e['kind']}: ")
            say(f"      {labels.get(e['attempt_id'], '?')} {e['kind']}{at}: {text}")
