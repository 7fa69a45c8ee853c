"""Peak resident memory of a process, as the memory figures of the benchmarks and tests read it.

VmHWM (/proc/PID/status) is the high-water mark of the process's own address space. getrusage's ru_maxrss is
not: a child that was forked from a large process and exec'd reports the parent's resident size at the fork
(Linux folds the old address space's peak into the process's maxrss at exec), so a benchmark started from a
test run that had grown to 1.6 GB read 1.6 GB before it allocated anything.
"""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM of a live process (default: this one), in MiB; OSError when it cannot be read."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no VmHWM for pid {pid}")

