"""What watching --checkpoint-dir costs the wrapper (#15): CPU per look of
`supervisor/checkpoints.py`, which the progress thread does every 0.5 s, for folders of a few
and of many checkpoints, nothing being written; and per minute at that rate (the idle wrapper's
budget, issue #15, is 0.05 CPU-s a minute in all).

    python benchmarks/checkpoint_watch_bench.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from logbook.supervisor.checkpoints import Checkpoints

LOOKS_PER_MINUTE = 120  # READ_EVERY_S = 0.5 in progress.py


def folder(root: Path, folders: int, files: int) -> Path:
    out = root / f"ckpt-{folders}"
    for i in range(folders):
        d = out / f"checkpoint-{(i + 1) * 100}"
        d.mkdir(parents=True)
        for j in range(files):
            (d / f"shard-{j:05d}.safetensors").write_bytes(b"w" * 1000)
    (out / "ckpt.pt").write_bytes(b"w" * 1000)
    (out / "trainer_state.json").write_text("{}")
    return out


def cpu_per_look(path: Path, looks: int = 1200) -> float:
    """CPU seconds a look, over `looks` looks 0.5 s apart in the watch's own clock (so that its
    walks every DEEP_EVERY_S count as they would)."""
    track = Checkpoints(path)
    t = time.time()
    track.scan(t)
    start = time.process_time()
    for i in range(looks):
        track.scan(t + 0.5 * (i + 1))
    return (time.process_time() - start) / looks


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for folders, files in ((3, 10), (50, 10), (20, 1000)):
            # plus ckpt.pt and trainer_state.json beside them
            s = cpu_per_look(folder(Path(tmp), folders, files))
            print(
                f"{folders:>3} checkpoint folders of {files:>4} files: {s * 1e6:8.1f} µs CPU a look"
                f", {s * LOOKS_PER_MINUTE:.4f} CPU-s a minute"
            )


if __name__ == "__main__":
    main()
