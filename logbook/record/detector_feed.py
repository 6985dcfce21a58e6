"""Points reach the detectors (`record/detectors.py`) a chunk at a time (#15).

A Python call per point cannot keep up with a flood of a million points a second, so a chunk is
sifted with pyarrow first:

- every NaN and Inf goes to the detectors, whatever its name: the numerical event is exact, at
  its step;
- of the finite points, only the names some detector looks at (losses, grad norm, loss scale,
  rates, Megatron's count of NaN iterations) go on, all of them while a chunk holds at most EVERY_POINT such points; beyond that (a
  flood) an evenly spaced sample of EVERY_POINT of them, in order. Spikes and throughput drops are
  judged against rolling medians, which a sample keeps; a one-point spike inside a flood may be
  missed.
- a name printed in two logs (a bar's `loss=` on stderr beside the step lines on stdout) is judged
  on the log it came from first (#17). The logs are read a chunk each in turn, so the detectors
  would otherwise see a stretch of one log's losses, then the same stretch of the other's: under a
  flood the older, higher losses of the second looked like spikes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from logbook.record.detectors import Detectors, Finding

EVERY_POINT = 2000  # watched finite points per chunk passed one by one; more are sampled


def observe_points(detectors: Detectors, points: pa.Table, log: str | None = None) -> list[Finding]:
    """Feed a chunk's points (`step`, `name`, `value`) to the detectors; what they found.
    `log`: the raw log the chunk is from (None: one source, as the Python API)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not points.num_rows:
        return []
    names, values = points["name"], points["value"]
    finite = pc.fill_null(pc.is_finite(values), True).to_numpy(zero_copy_only=False)
    watched = [
        n
        for n in pc.unique(names).to_pylist()
        if n is not None
        and detectors.looks_at_finite(n)
        and (log is None or detectors.log_of.setdefault(n, log) == log)
    ]
    if watched:
        looked = pc.is_in(names, pa.array(watched, pa.string())).to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(looked & finite)
    else:
        rows = np.zeros(0, np.int64)
    if len(rows) > EVERY_POINT:
        rows = rows[np.linspace(0, len(rows) - 1, EVERY_POINT).astype(np.int64)]
    rows = np.union1d(rows, np.flatnonzero(~finite))
    picked = points.take(pa.array(rows, pa.int64())).to_pydict()
    found: list[Finding] = []
    for step, name, value in zip(picked["step"], picked["name"], picked["value"], strict=True):
        found.extend(detectors.observe_point(name, step, value))
    return found
