"""Two gloo ranks in forked processes, for tests of the collective code paths without torchrun."""

from __future__ import annotations

from typing import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run_two_ranks(fn: Callable, store: str, *args) -> dict:
    """Run fn(rank, *args, out) on ranks 0 and 1 of one process group; return what they put in out."""
    with mp.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_rank, args=(fn, store, args, out), nprocs=2, start_method="fork")
        return dict(out)


def _rank(rank: int, fn: Callable, store: str, args: tuple, out: dict) -> None:
    """One rank. A forked child cannot use the parent's OpenMP pool (its first parallel region would wait
    forever for threads that were not forked), so every rank computes on one intra-op thread."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        fn(rank, *args, out)
    finally:
        dist.destroy_process_group()
