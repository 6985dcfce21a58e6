"""The phases in a training's output (#19): which lines open and close which phase."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from logbook.record import phases
from logbook.record.batch import split_lines
from logbook.record.keyword_lines import KeywordLines
from logbook.record.stream import MetricStream
from logbook.supervisor.checkpoints import KEYWORDS, Checkpoints

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
FIND = KeywordLines(KEYWORDS + phases.KEYWORDS)  # as supervisor/progress.py finds them


def _feed(chunks: list[bytes]) -> list[tuple[str, float, int | None]]:
    """Each chunk read one second after the one before, as the wrapper reads them
    (supervisor/progress.py); (phase, seconds, step) of each."""
    marks = phases.PhaseMarks()
    stream = MetricStream("auto")
    done: list[phases.Phase] = []
    for k, chunk in enumerate(chunks):
        found = FIND.find(chunk)
        skip = frozenset(i for i, _ in Checkpoints.marked_lines(found))
        before = stream.last_step
        fed = stream.feed(chunk, skip_step_lines=skip)
        stamp = T0 + timedelta(seconds=k)
        done += marks.feed(
            phases.marked_lines(found),
            fed.step_line.tolist(),
            stamp,
            before,
            lambda i, fed=fed, before=before: fed.step_before(i, before),
        )
    done += marks.finish(T0 + timedelta(seconds=len(chunks)))
    return [(p.phase, p.duration_s, p.step) for p in done]


def test_megatron_saves_loads_and_validation() -> None:
    # Megatron-LM's lines (megatron/training/checkpointing.py, training.py)
    got = _feed(
        [
            b"loading checkpoint from /ckpt at iteration 100\n",
            b" successfully loaded checkpoint from /ckpt [ t 0, p 0 ] at iteration 100\n",
            b" iteration      110/    1000 | lm loss: 2.3E+00 |\n",
            b"saving checkpoint at iteration     110 to /ckpt in torch format\n",
            b"\n",
            b"  successfully saved checkpoint from iteration     110 to /ckpt [ t 1/1, p 1/1 ]\n",
            b" iteration      120/    1000 | lm loss: 2.2E+00 |\n",
            b"\n",
            b" validation loss at iteration 120 | lm loss value: 2.3E+00 | lm loss PPL: 9.9E+00 |\n",
        ]
    )
    assert got == [
        ("checkpoint_restore", 1.0, None),
        ("checkpoint_save", 2.0, 110),
        ("evaluation", 2.0, 120),  # from the step line before it
    ]


def test_a_step_line_or_the_end_closes_a_phase_and_redraws_are_one() -> None:
    got = _feed(
        [
            b"step 1: loss=2.0\n",
            b"Saving model checkpoint to out/checkpoint-1\n",
            b"Configuration saved in out/checkpoint-1/config.json\n",
            b"step 2: loss=1.9\n",
            b"Validation DataLoader 0:  50%|#####     | 1/2\rValidation DataLoader 0: 100%|##| 2/2\n",
            b"Validation DataLoader 0: 100%|##########| 2/2\n",
        ]
    )
    assert got == [("checkpoint_save", 2.0, 1), ("evaluation", 2.0, 2)]


def test_a_save_read_in_one_chunk_with_the_steps_before_it_names_the_last_of_them() -> None:
    # a busy machine reads several lines at once: the save follows step 3, not the chunk's first
    got = _feed([b"step 1: loss=2.0\nstep 2: loss=1.9\nstep 3: loss=1.8\n"
                 b"Saving model checkpoint to out/checkpoint-3\n", b"step 4: loss=1.7\n"])  # fmt: skip
    assert got == [("checkpoint_save", 1.0, 3)]


def test_prose_is_no_phase() -> None:
    chunk = b"will save checkpoints every 100 steps\nValidation set: 1000 examples\n"
    assert phases.marked_lines(FIND.find(chunk)) == []


def test_the_keyword_lines_are_counted_as_the_parse_counts_lines() -> None:
    """One search of the chunk (RE2) finds the save and phase lines, each with its index as
    `split_lines` counts: `\\r`, `\\r\\n` and empty lines, and bytes that are not UTF-8."""
    chunk = (
        b"step 1\r\n\n\xff\xfe Saving model checkpoint to out/checkpoint-1\rstep 2\r"
        b"\r ***** Running Evaluation *****\nresumed from ckpt 7\n\n"
    )
    want = [(i, line) for i, line in enumerate(split_lines(chunk)) if i in (1, 3, 4)]
    assert FIND.find(chunk) == want
    assert FIND.find(b"step 3\nstep 4\n") == []
