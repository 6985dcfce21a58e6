"""The pump: the smallest piece in the training's data path.

`logbook run` starts it as a process of its own (`python -m logbook.pump`), beside the training:
it copies the training's stdout and stderr to where they were going (the terminal, the job's log
file) and to the raw logs, and does nothing else. The recorder (Python, pyarrow, DuckDB, threads)
can crash, be OOM-killed or be `kill -9`ed without the training losing a byte of output or dying
of a broken pipe. This package imports the standard library only.
"""
