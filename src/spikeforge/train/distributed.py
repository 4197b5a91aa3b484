"""Data-parallel training under `torchrun`: process group, DDP wrapper, sums across ranks, a sync check."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    """This process's rank, the number of processes and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device
    joined: bool = False  # whether `setup` joined the process group here (then `teardown` leaves it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> Context:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA; a group already joined is reused."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but no CUDA device is available; use device=auto or cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
    joined = not dist.is_initialized()
    if joined:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local}" if use_cuda else "cpu"), joined)


def teardown(ctx: Context, finished: bool = True) -> None:
    """Leave the process group if `setup` joined it for `ctx` (the stages of a recipe share one); after a normal finish,
    wait for every rank first."""
    if ctx.joined and dist.is_initialized():
        if finished:
            dist.barrier()  # a rank that leaves while another still talks to it aborts gloo's worker threads at exit
        dist.destroy_process_group()


class DDP(DistributedDataParallel):
    """DistributedDataParallel that also exposes the wrapped model's attributes (e.g. `output_reduction`)."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: nn.Module, ctx: Context) -> nn.Module:
    """The model wrapped in DDP when there are several processes (gradients averaged across ranks)."""
    if ctx.world_size == 1:
        return model
    return DDP(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP wrapper."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def from_main(value, ctx: Context):
    """Rank 0's `value` (any picklable object) on every rank; `value` itself for one process."""
    if ctx.world_size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_group(values: torch.Tensor) -> torch.Tensor:
    """`values` summed element-wise over every rank of the process group, in place (inside a DDP training step)."""
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def sum_across(values: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Element-wise sum of a float64 tensor over all ranks (identity for one process)."""
    if ctx.world_size > 1:
        values = values.to(ctx.device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values.cpu()


def broadcast_buffers(model: nn.Module, ctx: Context) -> None:
    """Rank 0's buffers (e.g. BatchNorm running statistics, updated by each rank on its own share of the batch) on every rank."""
    if ctx.world_size == 1:
        return
    for buffer in unwrap(model).buffers():
        dist.broadcast(buffer.data, src=0)


def check_in_sync(model: nn.Module, ctx: Context) -> None:
    """Raise RuntimeError if any rank's parameters differ from rank 0's (sum and sum of squares, float64)."""
    if ctx.world_size == 1:
        return
    with torch.no_grad():
        params = [p.detach().double() for p in unwrap(model).parameters()]
        local = torch.stack([sum(p.sum() for p in params), sum((p * p).sum() for p in params)]).to(ctx.device)
    gathered = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, local)
    for rank, other in enumerate(gathered[1:], start=1):
        if not torch.allclose(other, gathered[0], rtol=1e-9, atol=0.0):
            raise RuntimeError(f"rank {rank}'s parameters differ from rank 0's ({other.tolist()} vs {gathered[0].tolist()}); the ranks are out of sync")


def parameters_hash(model: nn.Module) -> str:
    """SHA-256 of the model's state (every parameter and buffer, bit for bit, in state_dict order)."""
    digest = hashlib.sha256()
    for name, value in unwrap(model).state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def rank_hashes(model: nn.Module, ctx: Context) -> list[str]:
    """`parameters_hash` of every rank, in rank order (one entry for one process)."""
    digest = parameters_hash(model)
    if ctx.world_size == 1:
        return [digest]
    local = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=ctx.device)
    gathered = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, local)
    return [bytes(g.cpu().tolist()).hex() for g in gathered]
