#!/usr/bin/env bash
# The demo: a real training wrapped by logbook crashes twice, is relaunched from its checkpoint each
# time, finishes, and is reported (lineage, incidents, goodput), then published as a chronicle. Run from anywhere; it records into ./.logbook (or --store /
# LOGBOOK_STORE) and checkpoints into ./demo-ckpt.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
rm -rf demo-ckpt
echo "== logbook run --restarts 3: the training crashes at step 180 in its first two launches"
logbook run --run demo --restarts 3 --backoff 1s --checkpoint-dir demo-ckpt -- \
    python3 "$here/train.py" --ckpt-dir demo-ckpt --crash-at 180 --crash-times 2 --step-delay 0.002
echo "== exit code $?; the record:"
logbook show demo
logbook incidents demo
echo "== where the time went:"
logbook goodput demo
echo "== the chronicle: a page that opens from disk, the same as Markdown, and the data"
logbook chronicle demo --out demo-chronicle
echo "Open demo-chronicle/index.html in a browser."
