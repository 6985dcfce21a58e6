"""Xid lines: parsed from real kernel log lines, and read as they arrive from a file and from the
real /dev/kmsg."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from logbook.telemetry.kernel import KMSG, KernelLog, parse_xid

# Real Xid lines (ecosystem.md 1.5: NVIDIA's docs, stas00/ml-engineering, leptonai/gpud, a
# pastebin, the plexus guide), as dmesg, dmesg -T, journalctl -k and /dev/kmsg print them.
XID_LINES = [
    (
        "[ 1132.507223] NVRM: Xid (0000:03:00): 14, Channel 00000001",
        14,
        "0000:03:00",
        "Channel 00000001",
    ),
    (
        "NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping, "
        "reset gpu to activate.",
        63,
        "PCI:0000:10:1c",
        "pid=1896, Row Remapper: New row marked for remapping, reset gpu to activate.",
    ),
    (
        "[Tue Mar  4 02:11:09 2025] NVRM: Xid (PCI:0000:05:00): 79, pid='<unknown>', "
        "name=<unknown>, GPU has fallen off the bus.",
        79,
        "PCI:0000:05:00",
        "pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
    ),
    (
        "Mar 04 02:11:09 node-17 kernel: NVRM: Xid (PCI:0000:08:00): 31, Ch 0000003b, intr "
        "10000000. MMU Fault: ENGINE GRAPHICS HUBCLIENT_SCC faulted @ 0x0_04687000. Fault is of "
        "type FAULT_PDE ACCESS_TYPE_READ",
        31,
        "PCI:0000:08:00",
        "Ch 0000003b, intr 10000000. MMU Fault: ENGINE GRAPHICS HUBCLIENT_SCC faulted @ "
        "0x0_04687000. Fault is of type FAULT_PDE ACCESS_TYPE_READ",
    ),
    (
        "3,4711,91234567,-;NVRM: Xid (PCI:0000:65:00): 92, pid='N/A', High single-bit ECC error rate",
        92,
        "PCI:0000:65:00",
        "pid='N/A', High single-bit ECC error rate",
    ),
]


@pytest.mark.parametrize(("line", "xid", "device", "text"), XID_LINES)
def test_parse_xid(line: str, xid: int, device: str, text: str) -> None:
    found = parse_xid(line)
    assert found is not None
    assert (found.xid, found.device, found.text, found.line) == (xid, device, text, line)


def test_likely_cause() -> None:
    assert parse_xid(XID_LINES[3][0]).likely_cause == "application"  # type: ignore[union-attr]  # 31
    assert parse_xid(XID_LINES[2][0]).likely_cause == "hardware"  # type: ignore[union-attr]  # 79


@pytest.mark.parametrize(
    "line",
    [
        # The kernel's other GPU and memory lines carry no Xid (ecosystem.md 1.3).
        "NVRM: GPU at 0000:01:00.0 has fallen off the bus.",
        "NVRM: GPU 0000:01:00.0: RmInitAdapter failed! (0x22:0x56:884)",
        "Memory cgroup out of memory: Killed process 2990 (python3) total-vm:1061092kB",
        "",
    ],
)
def test_other_lines_are_not_xids(line: str) -> None:
    assert parse_xid(line) is None


def test_reads_only_lines_that_arrive_after_opening(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text(XID_LINES[0][0] + "\n")  # before the attempt: not ours
    reader = KernelLog(str(log))
    assert reader.new_lines() == []
    with open(log, "a") as f:
        # A /dev/kmsg record with its continuation lines, and half a line.
        f.write("4,800,4574163787,-;" + XID_LINES[2][0].split("] ", 1)[1] + "\n")
        f.write(" SUBSYSTEM=pci\n DEVICE=+pci:0000:05:00.0\n")
        f.write("6,801,4574163999,-;usb 1-1: new high-speed USB dev")
    lines = reader.new_lines()
    assert lines == [XID_LINES[2][0].split("] ", 1)[1]]
    with open(log, "a") as f:
        f.write("ice number 2\n")
    assert reader.new_lines() == ["usb 1-1: new high-speed USB device number 2"]
    assert reader.new_lines() == []
    reader.close()


def test_missing_kernel_log_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        KernelLog(str(tmp_path / "no-kmsg"))


def test_real_kmsg() -> None:
    """The real kernel log: opened at its end, it gives nothing old; as root, a line we write
    (a debug-level marker, no Xid) comes back, header stripped."""
    try:
        reader = KernelLog(KMSG)
    except OSError as e:
        pytest.skip(f"/dev/kmsg cannot be read here: {e}")
    try:
        before = reader.new_lines()
        assert all(isinstance(line, str) for line in before)
        if not os.access(KMSG, os.W_OK):
            return
        marker = f"logbook-test: marker {uuid.uuid4().hex}"
        fd = os.open(KMSG, os.O_WRONLY)
        try:
            os.write(fd, f"<7>{marker}\n".encode())
        finally:
            os.close(fd)
        assert any(line.endswith(marker) for line in reader.new_lines())
        assert all(marker not in line for line in reader.new_lines())  # read once
    finally:
        reader.close()
