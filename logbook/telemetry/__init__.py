"""Telemetry of a running attempt: the command's process tree, the host and the GPUs, sampled by
a background thread of the wrapper into the samples table; ECC error rises and Xid lines in the
kernel log become hardware_fault events.

    sampler.py  the thread: readings, batching, events
    gpus.py     NVML or nvidia-smi readings
    kernel.py   Xid lines from /dev/kmsg
"""

from logbook.telemetry.sampler import MIN_EVERY_S, Sampler, check_every, start_sampler

__all__ = ["MIN_EVERY_S", "Sampler", "check_every", "start_sampler"]
