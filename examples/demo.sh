#!/usr/bin/env bash
# The README's first command: `logbook demo` runs examples/train.py under `logbook run` through a
# crash, a hang, a loss spike, a stop by hand, a note and a relaunch with new settings, then builds
# the chronicle (./logbook-demo/chronicle/index.html). Arguments are passed on: --out DIR.
exec logbook demo "$@"
