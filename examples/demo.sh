#!/usr/bin/env bash
# The demo: a real training wrapped by logbook; it crashes, is resumed from its checkpoint, and is reported.
# Run from anywhere; it records into ./.logbook (or --store/LOGBOOK_STORE) and checkpoints into ./demo-ckpt.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
rm -rf demo-ckpt
echo "== attempt 1: crashes at step 180 (its last checkpoint is step 150)"
logbook run --run demo -- python3 "$here/train.py" --ckpt-dir demo-ckpt --crash-at 180 --step-delay 0.002
echo "== exit code $? passed through; attempt 2 resumes from the checkpoint"
logbook run --run demo -- python3 "$here/train.py" --ckpt-dir demo-ckpt --step-delay 0.002
echo "== the record"
logbook show demo
logbook query "select label, status, exit_code, round(duration_s, 2) as seconds from attempts where run = 'demo' order by start_time"
