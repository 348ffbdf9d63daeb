"""A process's memory as the kernel counts it, for the benches that measure the hub's."""
from __future__ import annotations

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
