"""A flood on two logs at once (#17): step lines on stdout and a progress bar with `loss=` on
stderr, printed faster than they are parsed. The logs are read a chunk each in turn, so the
detectors got a stretch of stdout's losses, then the same stretch of the bar's, older and higher:
false loss spikes, one a chunk."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from logbook.query import run_sql
from logbook.store import Store

STEPS = 150_000

FLOOD = textwrap.dedent(
    f"""
    import sys
    N = {STEPS}
    for s in range(1, N + 1):
        loss = 4.0 / (1 + s * 1e-3)  # falls smoothly: no spike anywhere
        sys.stderr.write(f"\\r{{100 * s // N:3d}}%|#####| {{s}}/{{N}} [00:01<00:01, 9.00it/s, loss={{loss:.4f}}]")
        sys.stdout.write(f"step {{s}}: loss {{loss:.6f}}\\n")
    sys.stderr.write("\\n")
    """
)


def test_no_false_spike_when_two_logs_flood(run_logbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "flood.py").write_text(FLOOD)
    run_logbook(
        "run", "--no-capture", "--quiet", "--", sys.executable, "flood.py", cwd=tmp_path,
        check=0, env={"LOGBOOK_TEST_NO_FINISHER": "1"},
    )  # fmt: skip
    store = Store(tmp_path / ".logbook")
    spikes = run_sql(store, "select step, message from events where kind = 'loss_spike'")
    assert spikes.to_pylist() == []
    [attempt] = run_sql(store, "select first_step from attempts").to_pylist()
    assert attempt["first_step"] == 1
