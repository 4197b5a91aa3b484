"""Keep freed large blocks in glibc's heap, so that training steps do not page-fault on every buffer.

With glibc's defaults a freed block of tens of MiB goes back to the OS once the free top of the
heap passes the trim threshold, and the next step's buffer of that size comes back as fresh pages:
model B of the benchmarks takes about 21 000 page faults per training step that way (on a host where
they are dear, its step takes 0.26 s instead of 0.19; benchmarks/RESULTS-model-B-avx2.md). So the first time
spikeforge's CPU kernels run in a process (`functional.lif_cpu.torch_thread_budget`), and when the
`spikeforge` command starts, `keep_freed_memory_once()` tells glibc to keep them, as PyTorch's CUDA
allocator keeps freed GPU memory. The price: memory freed after the peak stays with the process until
it exits. `SPIKEFORGE_KEEP_FREED_MEMORY=0` leaves glibc's defaults, and glibc's own variables
(`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`), when set, win.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
OPT_OUT = "SPIKEFORGE_KEEP_FREED_MEMORY"
_kept: bool | None = None  # what keep_freed_memory_once decided in this process


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


def keep_freed_memory_once() -> bool:
    """`keep_freed_memory()` on the first call in this process (unless SPIKEFORGE_KEEP_FREED_MEMORY=0); later calls return its answer."""
    global _kept
    if _kept is None:
        _kept = os.environ.get(OPT_OUT, "1") != "0" and keep_freed_memory()
    return _kept
