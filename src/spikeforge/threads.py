"""One thread budget for the process: how many threads, and thread pools that sleep instead of spinning.

spikeforge runs on two OpenMP pools, PyTorch's (its own libgomp) and numba's for the compiled kernels
(the system libgomp). By default a libgomp worker spins for ~300 000 iterations after each parallel
region; two pools on two cores then spin against each other and against every other process, which
made a training next to one other CPU-bound process 13–30× slower instead of 2×. `configure()` —
run when `spikeforge` is imported, before it loads torch or numba — therefore sets, unless the user
set them: `OMP_WAIT_POLICY=PASSIVE` (idle workers sleep at once), `OMP_NUM_THREADS` = the budget
(both pools, and MKL, size themselves from it) and `NUMBA_NUM_THREADS` = the budget. The budget is
`OMP_NUM_THREADS` if it is a positive integer no larger than the CPUs this process may use (its
affinity mask and its cgroup CPU quota), else those CPUs, with one warning line on stderr.
A library user who imports torch before spikeforge keeps torch's wait policy; its thread count is
still lowered to the budget.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

#: Environment set for both OpenMP runtimes (read once, when each is loaded), unless already set.
POOL_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
CGROUP_V2, CGROUP_V1 = Path("/sys/fs/cgroup/cpu.max"), Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")


def cgroup_cpu_limit(v2: Path = CGROUP_V2, v1: Path = CGROUP_V1) -> float | None:
    """CPUs' worth of time the cgroup quota allows (cpu.max or cfs_quota_us / period), or None without a quota."""
    try:
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if v1.exists():
            quota = int(v1.read_text())
            period = int((v1.parent / "cpu.cfs_period_us").read_text())
            return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
    return None


def available_cpus() -> int:
    """The CPUs this process may use: its affinity mask, capped by the cgroup quota (rounded up)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


def thread_budget(requested: str | None, cpus: int) -> tuple[int, str | None]:
    """(threads, warning or None) for an `OMP_NUM_THREADS` value and the available CPUs."""
    if requested is None or requested.strip() == "":
        return cpus, None
    try:
        value = int(requested.strip())
    except ValueError:
        value = 0
    if value < 1:
        return cpus, (f"spikeforge: OMP_NUM_THREADS={requested!r} is not a positive integer; using {cpus} threads "
                      f"(the CPUs this process may use); set OMP_NUM_THREADS=N to choose")
    if value > cpus:
        return cpus, (f"spikeforge: OMP_NUM_THREADS={value} is more than the {cpus} CPUs this process may use; "
                      f"using {cpus} threads")
    return value, None


def configure(environ=os.environ, stderr=sys.stderr) -> int:
    """Set the process's thread budget and passive pools (see the module docstring); returns the budget."""
    threads, warning = thread_budget(environ.get("OMP_NUM_THREADS"), available_cpus())
    if warning:
        print(warning, file=stderr)
    for key, value in POOL_ENV.items():
        environ.setdefault(key, value)
    environ["OMP_NUM_THREADS"] = str(threads)
    if "numba" not in sys.modules:  # numba refuses a new pool size once its threads run
        environ["NUMBA_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() > threads:
        torch.set_num_threads(threads)
    return threads
