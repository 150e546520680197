"""Give memory freed by evicted features back to the operating system.

glibc's allocator keeps freed blocks in its heaps for reuse. Features (megabytes each) and the
encoder's temporaries interleave there, so after evictions the process holds the freed
megabytes too: measured on a 1,000-image stack, resident memory grew 1.2 GiB beyond the cache
budget. ``malloc_trim`` returns the free pages; elsewhere than glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache


@cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None


def release_freed_memory() -> bool:
    """Return free heap pages to the OS; whether it could be done here."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
