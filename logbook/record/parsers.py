"""Output lines -> metrics: what `--metrics auto|none|regex:PATTERN` finds in a training's output.

`LineParser.parse` turns one line into a `Parsed` (the step, if the line names one, and the other
numbers under canonical names), or None for a line that carries no metric. It never raises (a
parser bug must not touch the training) and looks at no more than the first 4 KiB of a line.

What `auto` reads:

- JSON objects (`{"loss": 1.2, "step": 3}`); nested objects are flattened with `/`
  (`{"train": {"loss": 1}}` -> `train/loss`); lists, strings and booleans are skipped.
- Python dict reprs as the Hugging Face Trainer prints them (`{'loss': 0.69, 'epoch': 0.5}`):
  the quoted `'name': number` pairs, without nesting.
- `key=value` and `key: value` pairs, several per line, separated by spaces, commas, `;`, tabs or
  `|`; a whole `|`-separated field may have a name of several words (Megatron's
  `| lm loss: 2.3E+00 |`).
- `key value` pairs (fairseq's `| loss 2.345 | lr 0.0005 |`, nanoGPT's `iter 100: loss 2.3456`)
  when each is a whole field and the line also names a step, epoch, loss, learning rate or grad
  norm, so that prose (`Found 3, expected 4`) stays out; a two-word name only for a loss
  (nanoGPT's `step 150: train loss 2.7689, val loss 2.5118`).
- a step in words that opens a field before its metrics (`step 1: loss=1.99`, `[step 3] loss:
  1.2`, `step 1 loss 1.99`, `Epoch 1, step 20: loss=0.5`); with no metric after it, nothing.
- a name with its unit in brackets before `:` (DeepSpeed's `iter time (s): 0.5` -> `iter_time_s`).
- Python dict reprs whose values are quoted numbers, as Transformers 5 prints them
  (`{'loss': '5.199', 'grad_norm': 'nan'}`); non-numeric strings are skipped. The Trainer names
  no step in them: its step is its bar's counter, and without a bar (`disable_tqdm`) it prints
  none at all, so the step stays unknown (null) rather than guessed from `epoch`. Tensors and numpy
  scalars as `print` shows them (`tensor(1.2345, grad_fn=<...>)`, `np.float64(0.5)`) are numbers.
- Progress bars (see `_parse_bar`): tqdm's (`Epoch 1:  40%|████ | 20/50 [00:01<00:01, 15.00it/s,
  v_num=0, train_loss=0.693]`) and Lightning's Rich bar (`Epoch 1/4 ━━━━ 20/50 0:00:01 • 0:00:02
  15.00it/s train_loss: 0.693`): the metrics of the postfix, the rate (`iters_per_s`), the epoch,
  and the bar's counter as `Parsed.counter`. A bar that names its epoch (`Epoch E`, taken as
  counted from 0 as Lightning counts) and its total gives the global batch index `E * total + n`
  (Lightning's `global_step` when it steps once per batch); a bar at 0 of a named epoch gives none
  (Lightning draws it before it renames the bar). Only bars that look like the training's give a
  counter: an empty description or one that starts with epoch/train/step/iter, or metrics on the
  bar, and a rate in it/s or s/it; a bar drawn below another (tqdm's nested bars, which move the
  cursor back up at their end: Transformers' and Lightning's evaluation bars) gives none.
- DeepSpeed's timer lines (`time (ms) | fwd: 12.34 | step: 5.67`): every value is a time
  (`fwd_ms`, `step_ms`), never a step; Megatron's `memory (MB) | allocated: ...` likewise
  (`allocated_mb`). Validation lines of Megatron-LM (`validation loss at
  iteration 100 | lm loss value: 2.3E+00 | lm loss PPL: 9.9E+00 |`) and torchtitan
  (`validate step: 10  loss: 2.3`) give `validation/...` names, so that they never mix with the
  training loss.

Before that, a line loses what is not its content: ANSI escape sequences (colours, Rich's cursor
controls; the raw log keeps them and the parser strips them, so that every reader of the raw log
agrees) and the prefixes launchers and loggers put before it: `[rank0]:`, `[rank: 0]`, `[Rank 0]`,
`[default0]:`, srun's `0: `, mpirun's `[1,0]<stdout>:`, `[titan]`, NeMo's `[NeMo I ...]`, and
leading `[2024-05-01 12:00:00]`, `[INFO]`, `[logging.py:96:log_dist]` blocks.

Not metrics: ids, versions, ranks, ports, exit codes, signals (Lightning's `Received SIGTERM:
15`), the logger's version `v_num`, and `file.py:12` locations. nanoGPT's `mfu -100.00%` (printed
before it has measured) is dropped: an mfu is never negative.

Numbers: ints, floats, exponents, `1,234` (thousands), `nan`, `inf`, `-inf` in any case (also
as Lightning's tqdm bar pads them, `nan.0`); a number
too large for a double (`1e400`) becomes +/-inf, as Python's `float` and `json` make it, so that a
blow-up still reaches the NaN/inf detectors. Units after a number:

- `%` is dropped and the value kept as printed (`mfu: 12.3%` -> `mfu` = 12.3);
- `k K M G T B` scale the number (`3.2k` -> 3200, `1.5M` -> 1.5e6, `7B` -> 7e9);
- times, sizes and rates keep the printed value and move the unit into the name
  (`time 45.6ms` -> `time_ms` = 45.6, `memory: 12.3GiB` -> `memory_gib`,
  `throughput: 120 samples/s` -> `throughput_samples_per_s`), so that a trainer switching from
  `ms` to `s` starts a second series rather than mixing scales in one.

Names go through `canonical_name`: lower case, `/s` and "per second" -> `_per_s`, other runs of
punctuation or spaces -> `_`, then `ALIASES`.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
from dataclasses import dataclass
from typing import Any

from logbook.errors import ConfigError

MAX_LINE = 4096  # bytes (or characters) of a line looked at: bounds the work on a runaway line
_MAX_STEP = 2**63 - 1  # steps land in an int64 column
_MAX_DEPTH = 8  # nesting flattened in a JSON line

# Canonical names, keyed by names already normalised (see `canonical_name`), so that `lm loss`,
# `lm_loss` and `LM-Loss` all meet here.
ALIASES: dict[str, str] = {
    # the step
    "iter": "step",
    "iteration": "step",
    "global_step": "step",
    "update": "step",
    "num_updates": "step",  # fairseq
    "it": "step",
    "steps": "step",
    "trainer/global_step": "step",
    # the learning rate
    "lr": "learning_rate",
    # gradient norm
    "gnorm": "grad_norm",
    "gradient_norm": "grad_norm",
    "grad_norm": "grad_norm",
    # Megatron's "lm loss" is its training loss; other trainers' train_loss/eval_loss stay as named,
    # since a trainer that prints both must not have them merged.
    "lm_loss": "loss",
    # throughput
    "tok_per_s": "tokens_per_s",
    "tokens_per_sec": "tokens_per_s",
    "tps": "tokens_per_s",  # torchtitan
    "sample_per_s": "samples_per_s",
    "it_per_s": "iters_per_s",  # tqdm
    "iter_per_s": "iters_per_s",
    # DeepSpeed's ThroughputTimer (`RunningAvgSamplesPerSec=...`, `MemAllocated=6.01GB`)
    "runningavgsamplespersec": "avg_samples_per_s",
    "currsamplespersec": "samples_per_s",
    "memallocated": "mem_allocated",
    "maxmemallocated": "max_mem_allocated",
    # mixed precision
    "scale": "loss_scale",
    "lossscale": "loss_scale",
}

# Names that look like a key=value but never are a metric (ids, versions, host:port, `file.py:12`).
_NOT_METRIC = re.compile(
    r"(?:^|_)(?:version|pid|port|host|localhost|addr|id|line|lineno|seed|sha|commit|hash"
    r"|exitcode|exit_code|returncode|return_code|errno|signum|signal)$"
    r"|(?:error|exception|warning)$"
    r"|^(?:rank|local_rank|global_rank|node_rank|world_rank|v_num)$"  # who, not how far (#15)
    r"|(?:^|_)sig(?:hup|int|quit|ill|trap|abrt|bus|fpe|kill|usr1|segv|usr2|pipe|alrm|term|chld|cont"
    r"|stop|tstp|xcpu)$"
    r"|\.(?:py|pyx|c|cc|cpp|cu|h|hpp|so|js|go|rs|java|sh|log|txt|json|yaml|yml|toml)$"  # file:line
)
# A line's field names one of these for `key value` fields to count (see module docstring).
_ANCHORS = frozenset({"step", "epoch", "loss", "learning_rate", "grad_norm"})

_NUM = (
    r"[-+]?(?:\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
    r"|[-+]?(?i:nan|inf(?:inity)?)(?:\.0*)?"  # Lightning's bar pads them: `nan.0`
)
# A unit that may follow after one space (`120 samples/s`), then one that must touch the number.
_UNIT = (
    r"(?:\ ?(?P<lu>[A-Za-z]+/s(?:ec)?|s/[A-Za-z]+|[kKMGT]i?B|ns|us|ms|sec|min)"
    r"|(?P<su>%|[kKMGTB]|s|h))?"
)
# A value: a number (in brackets for DeepSpeed's one-group `lr=[0.0001]`) and its unit.
_VALUE = rf"(?P<lb>\[)?(?P<num>{_NUM})(?(lb)\]){_UNIT}"
_END = r"(?=[\s,|;)\]}(]|$)"
_NAME = r"[A-Za-z_][\w.\-/]*"
# Two words and a unit in brackets before `:` in a line without fields (DeepSpeed's `iter time
# (s): 0.5`, where nothing else tells where the name starts): written as one name first.
_UNIT_KEY = re.compile(r"(?<![\w./\-])([A-Za-z_]\w*) ([A-Za-z_]\w*) \(([A-Za-z%]+)\)(?=\s*:)")

# `name=value` or `name: value` inside a field; the name starts a word (not `--lr=`, not a path).
_PAIR = re.compile(
    rf"""(?<![\w./\-?&])["']?(?P<key>{_NAME})["']?\s*(?P<sep>[=:])\s*{_VALUE}{_END}"""
)
# After a `name: value`, what must come for it to be a pair and not prose (`Error: 3 workers died`).
_AFTER_COLON = re.compile(rf"""\s*(?:$|[,|;)\]}}(]|["']?{_NAME}["']?\s*[:=])""")
# A whole field `name words (unit): value`, the name of up to 6 words (Megatron).
_FIELD = re.compile(
    rf"\s*(?P<key>{_NAME}(?:\ +(?:{_NAME}|\([A-Za-z%/]+\))){{0,5}})\s*[=:]\s*{_VALUE}\s*"
)
# A whole field `name value` or `name 120/ 5000` (fairseq, nanoGPT, Megatron's iteration); two
# words only for a loss (nanoGPT's `train loss 2.7689`).
_SPACED = re.compile(rf"\s*(?P<key>{_NAME}(?:\ [Ll][Oo][Ss][Ss])?)\s+{_VALUE}(?:\s*/\s*\d+)?\s*")
# A step that opens a field before its metrics, in words: `step 1: loss=1.99`, `[step 3] loss: 1.2`,
# `step 1 loss 1.99`, `Epoch 1, step 20: loss=0.5` (the pairs after it would otherwise hide it).
_LEAD_STEP = re.compile(
    r"\s*\[?\s*(?P<key>step|iter|iteration)\s+(?P<num>\d+)(?P<lu>(?!))?(?P<su>(?!))?\s*\]?\s*:?\s+",
    re.IGNORECASE,
)
_LEAD_START = frozenset("sSiI[ ")
# A whole field that is a rate alone (tqdm's `4.20it/s`).
_RATE = re.compile(r"\s*(?P<num>\d+(?:\.\d*)?)(?P<lu>[A-Za-z]+/s|s/[A-Za-z]+)(?P<su>(?!))?\]?\s*")
# Fields: split on | ; tabs, on commas that are not thousands separators, and on a `/` between a
# number and a `name=` (DeepSpeed's `epoch=0/micro_step=10/global_step=10`).
_FIELDS = re.compile(r"[|;\t]|,(?!\d{3}(?!\d))|/(?<=\d/)(?=[A-Za-z_]\w*=)")
_COLON_SPACE = re.compile(r":\s+")
# JSON or Python dict repr: `"name": number` / `'name': number` / `'name': 'number'`.
_QUOTED = re.compile(
    rf"""["'](?P<key>[^"'\n]{{1,200}})["']\s*:\s*(?P<q>["']?){_VALUE}(?P=q)(?=\s*[,}}])"""
)
# tqdm: `desc: 50%|█████     | 5/10 [00:01<00:01, 4.20it/s, postfix]` (the percentage is absent
# when the total is unknown: `Training: |   | 0/? [00:00<?, ?it/s]`).
_TQDM = re.compile(
    r"(?P<desc>.*?)(?:\d{1,3}%)?\|[^|]*\|\s*(?P<n>[\d.]+[kMGTP]?)/(?P<total>[\d.]+[kMGTP]?|\?)\s*"
    r"\[[^,\]]*(?:,\s*(?P<rate>[^,\]]*))?(?:,\s*(?P<post>.*?))?\]\s*$"
)
# Lightning's Rich bar: `Epoch 1/4 ━━━━╺━━ 20/50 0:00:01 • 0:00:02 15.00it/s train_loss: 0.693`.
_RICH_TIME = r"(?:\d+\ days?,\ )?\d+:\d\d:\d\d|-:--:--"
_RICH = re.compile(
    rf"(?P<desc>[^━╸╺]*?)\s*[━╸╺]+\s+(?P<n>\d+)/(?P<total>\d+|--)\s+(?:{_RICH_TIME})\s+•\s+"
    rf"(?:{_RICH_TIME})\s+(?P<rate>\d+(?:\.\d+)?it/s)\s*(?P<post>.*?)\s*$"
)
# A bar's description that names its epoch: `Epoch 3`, `Epoch 3/9`, `epoch 3:`.
_EPOCH = re.compile(r"\s*epoch\s*[:=]?\s*(?P<e>\d+)(?:\s*/\s*\d+)?\s*:?\s*", re.IGNORECASE)
# A description of the training's own bar.
_TRAINING_BAR = re.compile(r"\s*(?:epoch|train|training|step|steps|iter|iters|iteration)\b", re.I)
_IT_RATE = re.compile(r"(?:\?|\d+(?:\.\d*)?)(?:it/s|s/it)$")
# Escape sequences: CSI (colours, cursor moves, erase), OSC (titles, links), and the two-byte ones.
_ANSI = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()][0-9A-Za-z]|[@-Z\\-_])"
)
# A tqdm bar drawn below another ends by moving the cursor back up (`\x1b[A`).
_CURSOR_UP_AT_END = re.compile(r"\x1b\[\d*A\s*$")
# What launchers and loggers put before a line (see the module docstring), repeated.
_PREFIX = re.compile(
    r"(?:\s*(?:\[(?:[Rr]ank\s*:?\s*\d+|default\d+|titan|INFO|WARNING|ERROR|DEBUG|CRITICAL"
    r"|[\w.\-]+\.py:\d+(?::\w+)?|NeMo\ [DIWEC]\ [^\]]*|\d{4}-\d\d-\d\d[\ T][\d:.,]+)\]:?"
    r"|\[\d+,\d+\]<std(?:out|err)>:|\d{1,5}:(?=\s)))+\s*"
)
_PREFIX_START = frozenset("[ 0123456789")
# `print` of a tensor or a numpy scalar: `tensor(1.2345, grad_fn=<MulBackward0>)`, `np.float64(0.5)`.
_WRAPPED_NUMBER = re.compile(
    rf"\b(?:tensor|np\.(?:float|int|uint)\d*|numpy\.(?:float|int|uint)\d*)"
    rf"\(\s*\[?\s*({_NUM})\s*\]?\s*(?:,[^()]*)?\)"
)
# A unit for the whole line: DeepSpeed's (and old Megatron's) timers, `time (ms) | fwd: 12.34 |
# step: 5.67`, and Megatron's `memory (MB) | allocated: 10770.4 | max allocated: 15754.9`.
_UNIT_HEADER = re.compile(r"\b(?:time|memory) \((?P<unit>ms|s|[KMG]i?B)\)\s*\|(?P<rest>.*)$")
# Megatron-LM's `validation loss at iteration 100 | lm loss value: ... |` (or `test loss at ...`).
_MEGATRON_EVAL = re.compile(
    r"\s*(?P<split>validation|test) loss at (?:iteration (?P<step>\d+)\b)?[^|]*\|(?P<rest>.*)$"
)
# torchtitan's `validate step: 10  loss: 2.3456  memory: ...`.
_TITAN_EVAL = re.compile(r"\bvalidate step:")
# What every form has somewhere: a name (perhaps closed by `)`, `]`, a quote) then `=` or `:` then a number
# (not `12:00`), or a `name number` field after `|`, `,` or `:`. One scan rejects most prose.
_MAYBE = re.compile(
    r"""(?<![\w./\-])[A-Za-z_][\w./\-]*[)\]"'%]?\s*[=:]\s*[\["']?[-+]?(?:\.?\d|(?i:nan|inf))"""
    r"|(?:^|[|,:])\s*[A-Za-z_][\w./\-]*\s+[-+]?\.?\d"
)
_URL = re.compile(r"\w+://\S*")
_SCALE = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "B": 1e9}
_SEPARATORS = re.compile(r"[^a-z0-9_./]+")
_BRACKETS = re.compile(r"\(([^()]*)\)")


@dataclass(frozen=True)
class Parsed:
    """The metrics of one output line.

    Attributes:
        step: the step the line names (after aliasing), if any.
        values: the other numeric metrics under canonical names; nan and inf kept.
        counter: a progress bar's counter (the step where the line names none), if any.
    """

    step: int | None
    values: dict[str, float]
    counter: int | None = None


@functools.lru_cache(maxsize=8192)  # a training prints the same few names on every line
def canonical_name(name: str) -> str:
    """The name a metric is recorded under.

    Lower case (trainers print `Loss`, `loss` and `LOSS` for one thing); a rate's `/s`, `/sec`,
    `per second` or `_per_sec` becomes `_per_s`; runs of other characters than letters, digits,
    `_`, `.` and `/` become one `_` (`elapsed time per iteration (ms)` ->
    `elapsed_time_per_iteration_ms`); `/` and `.` stay, as they namespace (`train/loss`); then
    `ALIASES` (`lr` -> `learning_rate`, `iteration` -> `step`).

    Args:
        name: the name as printed.

    Returns:
        The canonical name; "" for a name with no letters or digits.
    """
    n = name.strip().strip("\"'").lower()
    if "(" in n:  # a unit in brackets is a ratio, not a namespace: `(TFLOP/s/GPU)`
        n = _BRACKETS.sub(lambda m: " " + m.group(1).replace("/", " per ") + " ", n)
    n = re.sub(r"\s*(?:/\s*sec(?:ond)?|/\s*s|[\s_]+per[\s_]+sec(?:ond)?)$", "_per_s", n)
    n = _SEPARATORS.sub("_", n).strip("_")
    return ALIASES.get(n, n)


def _number(text: str) -> float | None:
    """The float of a number as `_NUM` matched it; +/-inf for one beyond a double."""
    try:
        return float(text)  # float() itself gives inf for 1e400
    except ValueError:
        try:
            return float(text.replace(",", ""))  # 1,234
        except ValueError:
            try:
                return float(text.partition(".")[0])  # nan.0
            except ValueError:
                return None


class LineParser:
    """Finds metrics in output lines.

    Args:
        mode: "auto" (the formats in the module docstring), "none" (no metrics), or
            "regex:PATTERN", whose named groups are the metrics (a group named `step`, or an alias of
            it, is the step) and which is searched anywhere in the line.

    Raises:
        ConfigError: an unknown mode, or a regex that does not compile or has no named groups.
    """

    def __init__(self, mode: str = "auto") -> None:
        self.mode = mode
        self._regex: re.Pattern[str] | None = None
        if mode.startswith("regex:"):
            pattern = mode[len("regex:") :]
            try:
                self._regex = re.compile(pattern)
            except (re.error, RecursionError, OverflowError) as e:
                raise ConfigError(
                    f"bad --metrics regex {pattern!r}: {e}",
                    hint="use Python re syntax, e.g. regex:loss=(?P<loss>\\S+)",
                ) from None
            if not self._regex.groupindex:
                raise ConfigError(
                    f"--metrics regex {pattern!r} has no named groups",
                    hint="name each metric's group, e.g. regex:step (?P<step>\\d+) loss (?P<loss>\\S+)",
                )
        elif mode not in ("auto", "none"):
            raise ConfigError(
                f"unknown --metrics mode {mode!r}", hint="use auto, none or regex:PATTERN"
            )

    def parse(self, line: bytes | str) -> Parsed | None:
        """The metrics on one line, or None when it carries none. Never raises.

        Args:
            line: one line of output, with or without its newline; bytes are decoded as UTF-8
                with errors replaced. Only the first `MAX_LINE` bytes are read.

        Returns:
            A `Parsed` with a step, a counter or at least one value, or None.
        """
        if self.mode == "none":
            return None
        try:
            if isinstance(line, bytes):
                line = line[:MAX_LINE].decode("utf-8", "replace")
            else:
                line = line[:MAX_LINE]
            if "\r" in line:  # a progress bar redrawn in place: its last drawing
                line = line.rstrip("\r\n").rsplit("\r", 1)[-1]
            nested = False
            if "\x1b" in line:  # colours and cursor controls are not content (#15)
                nested = _CURSOR_UP_AT_END.search(line) is not None
                line = _ANSI.sub("", line)
            if self._regex is not None:
                return self._parse_regex(line)
            return self._parse_auto(line, nested)
        except Exception:  # a parser bug must never reach the training
            return None

    # --- regex mode ---------------------------------------------------------------------------

    def _parse_regex(self, line: str) -> Parsed | None:
        assert self._regex is not None
        m = self._regex.search(line)
        if m is None:
            return None
        pairs = []
        for key, text in m.groupdict().items():
            if text is None:
                continue
            v = _VALUE_ONLY.fullmatch(text.strip())
            if v is not None:
                pairs.append((key, v))
        return _collect(pairs)

    # --- auto mode ----------------------------------------------------------------------------

    def _parse_auto(self, line: str, nested: bool = False) -> Parsed | None:
        if line[:1] in _PREFIX_START:
            m = _PREFIX.match(line)
            if m is not None:
                line = line[m.end() :]
        # Progress bars first: a bare one has no `name: value` for the rejection below to find.
        if "|" in line and "<" in line:
            bar = _TQDM.match(line)
            if bar is not None:
                return _parse_bar(bar, nested)
        elif "━" in line:
            bar = _RICH.match(line)
            if bar is not None:
                return _parse_bar(bar, nested)
        if "(" in line and ("tensor(" in line or "np." in line or "numpy." in line):
            line = _WRAPPED_NUMBER.sub(r"\1", line)
        # Cheap rejection next (non-metric lines must cost little).
        if _MAYBE.search(line) is None:
            return None
        if line.lstrip().startswith(("Traceback", 'File "')):
            return None
        if "{" in line:
            found = _parse_dict(line)
            if found is not None:
                return found
        if "://" in line:
            line = _URL.sub(" ", line)
        if "time (" in line or "memory (" in line:
            header = _UNIT_HEADER.search(line)
            if header is not None:
                return _parse_with_unit(header.group("rest"), header.group("unit").lower())
        if " loss at " in line:
            evaluation = _MEGATRON_EVAL.match(line)
            if evaluation is not None:
                return _parse_megatron_eval(evaluation)
        if "validate step" in line and _TITAN_EVAL.search(line) is not None:
            return _prefixed(_parse_fields(line), "validation/")
        return _parse_fields(line)


_VALUE_ONLY = re.compile(_VALUE)


def _parse_fields(line: str, extra: list[tuple[str, re.Match[str]]] | None = None) -> Parsed | None:
    """`key=value`, `key: value` and `key value` pairs, field by field."""
    # (field index, name, match): the first step named in the line wins, whichever form it has
    pairs: list[tuple[int, str, re.Match[str]]] = []
    spaced: list[tuple[int, str, re.Match[str]]] = [(-1, k, m) for k, m in extra or ()]
    if "):" in line and "|" not in line:
        line = _UNIT_KEY.sub(r"\1_\2_\3", line)
    fields = (
        _FIELDS.split(line)
        if ("|" in line or "," in line or ";" in line or "\t" in line)
        else [line]
    )
    lead = None
    for i, field in enumerate(fields):
        if not field or field.isspace():
            continue
        if field[0] in _LEAD_START and lead is None:
            m = _LEAD_STEP.match(field)
            if m is not None and m.end() < len(field):
                lead = (i, m.group("key"), m)
                field = field[m.end() :]
        m = _FIELD.fullmatch(field)
        if m is not None:
            pairs.append((i, m.group("key"), m))
            continue
        found = False
        for m in _PAIR.finditer(field):
            if m.group("sep") == ":" and not _AFTER_COLON.match(field, m.end()):
                continue
            pairs.append((i, m.group("key"), m))
            found = True
        if found:
            continue
        for part in _COLON_SPACE.split(field):
            m = _SPACED.fullmatch(part)
            if m is not None:
                spaced.append((i, m.group("key"), m))
    if lead is not None:
        if not pairs and not spaced:
            return None  # `Step 3 of the setup: done`: prose, no metric after the step
        pairs.insert(0, lead)  # the first step named wins
        if spaced and not pairs[1:]:
            pairs += spaced  # `step 1 loss 1.99`: the step names the line as a training's
            spaced = []
    if spaced and len(pairs) + len(spaced) >= 2:
        names = {canonical_name(k) for _, k, _ in pairs + spaced}
        if names & _ANCHORS or any(n.endswith("loss") for n in names):
            interleaved = bool(pairs) and spaced[0][0] < pairs[-1][0]
            pairs += spaced
            if interleaved:
                pairs.sort(key=_FIRST)
    return _collect([(k, m) for _, k, m in pairs])


_FIRST = operator.itemgetter(0)


def _parse_bar(m: re.Match[str], nested: bool) -> Parsed | None:
    """A tqdm or Rich progress bar: its metrics, rate, epoch and counter (module docstring)."""
    desc = m.group("desc").strip()
    post = m.group("post")
    values: dict[str, float] = {}
    epoch = None
    e = _EPOCH.match(desc)
    if e is not None:
        epoch = int(e.group("e"))
        desc = desc[e.end() :]
    found = [
        p
        for p in (_parse_fields(desc) if desc else None, _parse_fields(post) if post else None)
        if p
    ]
    for p in found:
        values.update({k: v for k, v in p.values.items() if k not in values})
    step = next((p.step for p in found if p.step is not None), None)
    rate_text = (m.group("rate") or "").strip()
    training = bool(values) or (
        (not desc or e is not None or _TRAINING_BAR.match(desc) is not None)
        and _IT_RATE.match(rate_text) is not None
    )
    if not training:
        return None
    counter = None
    if not nested:
        # The rate and the epoch are this bar's: a nested bar's are an evaluation's.
        rate = _RATE.fullmatch(rate_text)
        if rate is not None:
            more = _collect([(rate.group("lu"), rate)])
            if more is not None and any(more.values.values()):  # Rich's 0.00it/s: not measured
                values = {**more.values, **values}
        counter = _counter(m.group("n"), m.group("total"), epoch)
        if epoch is not None and (counter is not None or m.group("n") != "0"):
            values = {"epoch": float(epoch), **values}  # at 0 the epoch may be the last one's
    if step is None and counter is None and not values:
        return None
    return Parsed(step, values, counter)


def _counter(n_text: str, total_text: str, epoch: int | None) -> int | None:
    """A bar's counter as a step: `n`, or `epoch * total + n` when the bar names its epoch."""
    if not n_text.isdigit():
        return None  # `1.2k/5.0k`: scaled, not exact
    n = int(n_text)
    if epoch is None:
        return n
    if n == 0 or not total_text.isdigit():
        return None  # at 0 the epoch may still be the last one's; an unknown total: unknown
    return epoch * int(total_text) + n


def _parse_with_unit(rest: str, unit: str) -> Parsed | None:
    """`fwd: 12.34 | step: 5.67` of a `time (ms) |` line: every value in the unit, none a step."""
    values: dict[str, float] = {}
    for field in rest.split("|"):
        m = _FIELD.fullmatch(field)
        if m is None:
            continue
        name = canonical_name(m.group("key"))
        v = _number(m.group("num"))
        if name and v is not None:
            values.setdefault(f"{name}_{unit}", v)
    return Parsed(None, values) if values else None


def _parse_megatron_eval(m: re.Match[str]) -> Parsed | None:
    """Megatron-LM's evaluation line: `<key> value: x | <key> PPL: y |` under `validation/`."""
    rest = re.sub(r"\s+value(?=\s*:)", "", m.group("rest"))  # `lm loss value:` is `lm loss`
    parsed = _prefixed(_parse_fields(rest), m.group("split") + "/")
    step = m.group("step")
    if step is None or int(step) > _MAX_STEP:
        return parsed
    return Parsed(int(step), parsed.values if parsed else {})


def _prefixed(parsed: Parsed | None, prefix: str) -> Parsed | None:
    """The same metrics under `prefix` (an evaluation's, kept apart from the training's)."""
    if parsed is None:
        return None
    return Parsed(parsed.step, {prefix + k: v for k, v in parsed.values.items()}, parsed.counter)


def _parse_dict(line: str) -> Parsed | None:
    """A dict, and the step or epoch a text before it names (Accelerate's examples print
    `epoch 0: {'accuracy': 0.68}`)."""
    found = _parse_braces(line)
    if found is None or line.startswith("{"):
        return found
    lead = _LEAD.match(line)
    if lead is None:
        return found
    n = int(lead.group("n"))
    if canonical_name(lead.group("key")) == "epoch":
        return Parsed(found.step, {"epoch": float(n), **found.values}, found.counter)
    return found if found.step is not None or n > _MAX_STEP else Parsed(n, found.values)


# `epoch 3:` / `step 100 -` before a dict.
_LEAD = re.compile(r"\s*(?P<key>epoch|step|iter|iteration)\s*[:=]?\s*(?P<n>\d+)\b\W*\{", re.I)


def _parse_braces(line: str) -> Parsed | None:
    """A JSON object, else the quoted pairs of a Python dict repr, from the first `{` on."""
    start, end = line.find("{"), line.rfind("}")
    if end > start:
        try:
            obj = json.loads(line[start : end + 1])
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            values: dict[str, float] = {}
            _flatten(obj, "", values, 0)
            step = next((v for k, v in obj.items() if canonical_name(k) == "step"), None)
            if type(step) is int and 0 <= step <= _MAX_STEP:  # exact, as float loses past 2**53
                values.pop("step", None)
                return Parsed(step, values)
            return _split_step(values)
    pairs = [(m.group("key"), m) for m in _QUOTED.finditer(line, start)]
    return _collect(pairs) if pairs else None


def _flatten(obj: dict[str, Any], prefix: str, out: dict[str, float], depth: int) -> None:
    """Numbers of a JSON object under `a/b` names; booleans, strings and lists skipped."""
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if depth < _MAX_DEPTH:
                _flatten(value, name + "/", out, depth + 1)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                f = float(value)
            except OverflowError:  # an int beyond a double, like 1e400 written out
                f = math.inf if value > 0 else -math.inf
            canon = canonical_name(name)
            if canon and canon not in out and not _NOT_METRIC.search(canon):
                out[canon] = f


def _collect(pairs: list[tuple[str, re.Match[str]]]) -> Parsed | None:
    """Named value matches -> canonical names, scaled numbers, units in names; the step apart."""
    values: dict[str, float] = {}
    step = None
    for key, m in pairs:
        num, long_unit, short_unit = m.group("num", "lu", "su")
        name = _metric_name(key, long_unit, short_unit)
        if name is None or name in values or (name == "step" and step is not None):
            continue
        if name == "step" and step is None and num.isdigit() and short_unit is None:
            if int(num) <= _MAX_STEP:  # as an int: a float loses steps past 2**53
                step = int(num)
                continue
        v = _number(num)
        # nanoGPT's -100.00% before it has measured; by its sign, so that -0 goes too (a rule on
        # the value itself would make lines that differ in digits parse differently).
        if v is None or (name == "mfu" and math.copysign(1.0, v) < 0):
            continue
        values[name] = v * _SCALE[short_unit] if short_unit in _SCALE else v
    return _split_step(values, step)


_names: dict[tuple[str, str | None, str | None], str | None] = {}


def _metric_name(key: str, long_unit: str | None, short_unit: str | None) -> str | None:
    """The name a value is recorded under, its unit added; None for a name that is no metric.

    Cached: a training prints the same few names on every line, and this is most of the work on
    a `key=value` line otherwise. The cache is emptied if a training prints very many names.
    """
    cache_key = (key, long_unit, short_unit)
    name = _names.get(cache_key, "")
    if name != "":
        return name
    if key == long_unit:  # a rate alone: its unit is its name (tqdm's 4.2it/s)
        name = canonical_name(key)
    else:
        name = canonical_name(key)
        unit = long_unit or (short_unit if short_unit in ("s", "h") else None)
        if unit:
            suffix = canonical_name(unit)
            name = name if name.endswith(suffix) else f"{name}_{suffix}"
    result = name if name and not _NOT_METRIC.search(name) else None
    if len(_names) >= 10_000:
        _names.clear()
    _names[cache_key] = result
    return result


def _split_step(values: dict[str, float], step: int | None = None) -> Parsed | None:
    """Take `step` out of the values when it is a whole number that fits an int64."""
    s = values.get("step") if step is None else None
    if s is not None and math.isfinite(s) and s == int(s) and 0 <= s <= _MAX_STEP:
        step = int(values.pop("step"))
    if step is None and not values:
        return None
    return Parsed(step, values)
