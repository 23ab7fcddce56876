"""The resident memory of the running process, for benchmarks and the
distillation log. PyTorch's CPU tensors are not seen by `tracemalloc`, so
resident set size (RSS) is the measure that counts them."""

import sys
from functools import lru_cache
from typing import Callable, Optional


def _proc_status_mb(field: str) -> Optional[float]:
    """A memory field of /proc/self/status (Linux) in MiB, e.g. VmRSS, VmHWM."""
    try:
        with open("/proc/self/status") as fileh:
            for line in fileh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mb() -> float:
    """The current resident set size in MiB (Linux; elsewhere the peak)."""
    rss = _proc_status_mb("VmRSS")
    return rss if rss is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    """The peak resident set size in MiB. On Linux VmHWM: `ru_maxrss` would
    include the parent's peak, which a child inherits at fork across exec."""
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Kilobytes on Linux, bytes on macOS.
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 2**10


def release_free_memory() -> None:
    """Return the C heap's free pages to the operating system (glibc's
    `malloc_trim`; a no-op elsewhere). Training frees and allocates tensors
    of ever new shapes, and glibc keeps the freed memory mapped: without
    this, a long distillation's RSS grows although nothing is kept."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's `malloc_trim`, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
