"""Keep freed large blocks in glibc's heap, so that training steps do not page-fault on every buffer.

With glibc's defaults a freed block of tens of MiB goes back to the OS once the free top of the
heap passes the trim threshold, and the next step's buffer of that size comes back as fresh pages:
model B of the benchmarks takes about 10 000 page faults per training step that way (its step takes
≈ 85 ms instead of 69; benchmarks/RESULTS.md). The `spikeforge` command calls `keep_freed_memory()` for its
own process; a script that uses the library can call it too, or set glibc's environment variables
`MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824`. The price: memory freed after
the peak stays with the process until it exits.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 2**30) -> bool:
    """Blocks up to `mmap_threshold` come from the heap and freed ones stay there up to `trim_threshold`.

    Returns whether glibc took both settings; does nothing (False) off Linux/glibc or when the
    user set glibc's variables for this process.
    """
    if not sys.platform.startswith("linux") or any(name in os.environ for name in ENV):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
