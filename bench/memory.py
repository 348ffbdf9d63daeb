"""A process's memory and CPU time as the kernel counts them, for the benches that measure the hub's."""
from __future__ import annotations

import os
from pathlib import Path


def vm(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure in bytes: "VmRSS" (resident now), "VmHWM" (the peak); 0 if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak(pid: int) -> None:
    """VmHWM := VmRSS (Linux >= 4.0), so the next peak is this phase's own."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
