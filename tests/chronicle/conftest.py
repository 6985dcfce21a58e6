"""The recorded run the chronicle tests share (see recorded_run.py)."""

from chronicle.recorded_run import recorded  # noqa: F401  (a session fixture)
