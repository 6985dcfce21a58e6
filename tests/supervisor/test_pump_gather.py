"""The pump gathers a child's line-by-line writes instead of waking once a line (#15)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from logbook.pump.copy import Pump

LINES = 20_000
CHILD = f"""import sys
for i in range({LINES}):
    sys.stdout.write(f"step={{i}} loss={{i % 97 / 10}}\\n")
    sys.stdout.flush()
"""


def _drain(fd: int, out: list[bytes]) -> None:
    while chunk := os.read(fd, 1 << 16):
        out.append(chunk)
    os.close(fd)


def test_a_child_flushing_every_line_wakes_the_pump_far_less_than_once_a_line(
    tmp_path: Path,
) -> None:
    src_r, src_w = os.pipe()
    dest_r, dest_w = os.pipe()
    log = tmp_path / "stdout.log"
    moves: list[int] = []
    errors: list[str] = []
    pump = Pump(
        src_r, dest_w, log, name="stdout", warn=errors.append, on_output=lambda: moves.append(1)
    )
    got: list[bytes] = []
    drain = threading.Thread(target=_drain, args=(dest_r, got))
    drain.start()
    pump.start()
    child = subprocess.run([sys.executable, "-c", CHILD], stdout=src_w, check=True)
    os.close(src_w)
    pump.join(timeout=60)
    os.close(dest_w)
    drain.join(timeout=60)

    assert child.returncode == 0 and not errors
    expected = "".join(f"step={i} loss={i % 97 / 10}\n" for i in range(LINES)).encode()
    assert b"".join(got) == expected  # every byte, in order, passed on
    assert log.read_bytes() == expected  # and logged
    # Unwrapped, the reader wakes about once a line; gathering for 2 ms lets a burst pile up.
    assert len(moves) < LINES / 20, f"{len(moves)} wake-ups for {LINES} lines"
