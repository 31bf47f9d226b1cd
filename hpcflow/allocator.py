"""Keep freed heap memory in the process (glibc malloc), so a loop's same-sized temporaries reuse their pages.

By default glibc serves blocks above a moving threshold (at most 32 MB) with fresh mmap pages and returns the
top of the heap to the kernel once more than twice that is free, so each training step of a large batch
page-faults and zero-fills its MB-sized activations anew (a 4096-row step of the 3x64 network: 30 ms instead of
18 ms; BENCHMARKS.md). Fixed thresholds keep blocks up to MMAP_THRESHOLD on the heap and freed memory up to
TRIM_THRESHOLD in the process; the peak resident size stays that of the memory in use at the peak, up to the
heap's fragmentation.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

#: blocks up to this size come from the heap (a 65536-row chunk of 64 float64 activations is 32 MiB)
MMAP_THRESHOLD = 64 * 2**20
#: free memory at the top of the heap kept before it is returned to the kernel
TRIM_THRESHOLD = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)
#: the user's own malloc settings take precedence over ours
USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")


@functools.lru_cache(maxsize=1)
def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process (once); False where that does not apply (not
    Linux/glibc, or the environment already sets malloc tunables or preloads another allocator)."""
    if not sys.platform.startswith("linux") or any(os.environ.get(k) for k in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has mallopt as a stub, no such call)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
