"""glibc's allocator and freed memory: given back after evictions, kept for reuse (opt-in).

After evictions (:func:`trim_heap`): glibc keeps freed blocks in its heaps for reuse. Features
(megabytes each) and the encoder's temporaries interleave there, so after evictions the process
holds the freed megabytes too: measured on a 1,000-image stack, resident memory grew 1.2 GiB
beyond the cache budget. ``malloc_trim`` returns the free pages.

Kept for the next image on Linux CPUs (:func:`keep_freed_memory`), instead of faulted in again:

glibc gives large freed blocks back to the kernel: blocks of more than 128 KiB start out as
their own mappings, and the heap's top is trimmed once 128 KiB of it are free (both thresholds
grow with use, up to 32 and 64 MiB). Every image then faults in and zeroes, 4 KiB page by page,
the tensors it frees again: ~1 GiB per SAM2-tiny target at input 1024, about a tenth of its CPU
time (``benchmarks/allocator.py``). Blocks below 32 MiB are served from the heap from the start
and up to 1 GiB of freed heap is kept, so the next image reuses the same pages; when a run ends
(:func:`release_kept_memory`) what is kept goes back to the system. Blocks of 32 MiB and more
stay mappings, as glibc allows no larger threshold.

This tunes the whole process's ``malloc`` (glibc's ``mallopt``), and on the CPUs measured so
far it cut page faults 2.4-3x but a target's time only 1-2 %, so it is off unless
``NAPARI_SANSA_KEEP_FREED_MEMORY=1`` asks for it. Elsewhere (macOS, Windows, musl) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys

from napari_sansa import environment

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest
TRIM_THRESHOLD = 2**30
TOP_PAD = 64 * 2**20
OPT_IN = environment.KEEP_FREED_MEMORY


@functools.cache
def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        libc.mallopt  # noqa: B018
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse if the user asked for it (once per process);
    whether it does."""
    if os.environ.get(OPT_IN, "0").strip().lower() not in ("1", "true", "yes", "on"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    done = all(
        libc.mallopt(option, value) == 1
        for option, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_TOP_PAD, TOP_PAD),
        )
    )
    log.info("glibc malloc %s freed memory (up to 1 GiB) for reuse", "keeps" if done else "could not keep")
    return done


def trim_heap() -> bool:
    """Return free heap pages to the OS (after evictions); whether it could be done here."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def return_free_pages() -> None:
    """Give the free pages inside the heap back to the system now, unless freed memory is kept on
    purpose: a long run of tiles frees buffers of many sizes, and glibc keeps the holes between
    them resident, so the process would grow with the number of tiles, not with what it holds."""
    if keep_freed_memory.cache_info().currsize and keep_freed_memory():
        return
    trim_heap()


def release_kept_memory() -> None:
    """Give the memory kept for reuse (:func:`keep_freed_memory`) back to the system, after a run."""
    applied = keep_freed_memory.cache_info().currsize and keep_freed_memory()  # never applies it here
    if applied:
        _glibc().malloc_trim(0)
