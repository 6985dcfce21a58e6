"""Reading the end of raw logs: cut, decoded, prefixes stripped for matching, originals kept."""

from __future__ import annotations

from pathlib import Path

from logbook.forensics.logtail import rank_tag, read_tail, read_tails


def test_a_cut_file_loses_its_first_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_bytes(b"".join(b"line %06d\n" % i for i in range(10_000)) + b"last, no newline")
    tail = read_tail(log, max_bytes=1005)  # 16 + 82 * 12 + 5: inside "line 009917"
    assert tail.lines[-1] == "last, no newline"
    assert tail.lines[0] == "line 009918"
    assert len(tail.lines) == 83
    assert read_tail(log, max_bytes=1000).lines[0] == "line 009918"  # a cut on a line's start


def test_a_short_file_is_read_whole(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_text("first\nsecond\n")
    assert read_tail(log).lines == ["first", "second"]


def test_prefixes_and_colours_go_for_matching_only(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    lines = [
        "[rank3]:[E321 02:07:08.408 ProcessGroupNCCL.cpp:607] [Rank 3] Watchdog caught",
        "[rank0]: Traceback (most recent call last):",
        '[default1]:  File "train.py", line 3, in <module>',
        "12: srun labelled",
        "\x1b[31mRuntimeError: red\x1b[0m",
        "plain 7: not a prefix",
    ]
    log.write_text("\n".join(lines) + "\n")
    tail = read_tail(log)
    assert tail.lines == lines
    assert tail.text.split("\n") == [
        "[E321 02:07:08.408 ProcessGroupNCCL.cpp:607] [Rank 3] Watchdog caught",
        "Traceback (most recent call last):",
        ' File "train.py", line 3, in <module>',
        "srun labelled",
        "RuntimeError: red",
        "plain 7: not a prefix",
    ]
    assert [tail.line_of(tail.text.index(s)) for s in ("Traceback", "srun", "plain")] == [1, 3, 5]
    assert tail.stripped(4) == "RuntimeError: red"


def test_undecodable_bytes_and_carriage_returns(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes(b"10%|#   |\r50%|####|\r\xff\xfe binary\nok\n")
    assert read_tail(log).lines == ["10%|#   |", "50%|####|", "\ufffd\ufffd binary", "ok"]


def test_read_tails_puts_stderr_first_and_skips_missing(tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_text("out\n")
    (tmp_path / "stderr.log").write_text("err\n")
    tails = read_tails([tmp_path / "stdout.log", tmp_path / "stderr.log", tmp_path / "gone.log"])
    assert [t.path.name for t in tails] == ["stderr.log", "stdout.log"]


def test_rank_tag() -> None:
    assert rank_tag("[rank7]: torch.distributed.DistBackendError: x") == ("rank", 7)
    assert rank_tag("[default3]:Traceback") == ("local", 3)
    assert rank_tag("0: srun") == ("task", 0)
    assert rank_tag("Traceback") is None
