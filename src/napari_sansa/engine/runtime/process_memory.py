"""The process's memory, the same on Linux, macOS and Windows.

``resource`` (peak resident size) exists on POSIX only; Windows reports its peak working set
through the process's own counters, which psutil reads. Total memory comes from psutil everywhere.
"""

from __future__ import annotations

import sys

import psutil


def peak_resident_bytes() -> int:
    """The most memory this process has held resident so far, in bytes."""
    try:
        import resource  # POSIX only
    except ImportError:  # Windows: its peak working set (elsewhere the resident size now)
        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    scale = 1 if sys.platform == "darwin" else 1024  # macOS counts bytes, Linux kibibytes
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)


def total_memory_bytes() -> int:
    """The machine's physical memory, in bytes."""
    return int(psutil.virtual_memory().total)
