"""From per-step output scores `[T, B, classes]` to logits."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "max", "sum")


def _check(seq: torch.Tensor, mode: str) -> None:
    if mode not in REDUCTIONS:
        raise ValueError(f"output reduction must be one of {REDUCTIONS}, got {mode!r}")
    if seq.dim() != 3:
        raise ValueError(f"expected per-step outputs [T, B, classes], got shape {tuple(seq.shape)}")


def reduce_time(seq: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Logits `[B, classes]`: mean over time (report §5.3.3), max over time, or sum (spike counts)."""
    _check(seq, mode)
    if mode == "mean":
        return seq.mean(0)
    if mode == "max":
        return seq.max(0).values
    return seq.sum(0)


def cumulative_logits(seq: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """`[T, B, classes]`: entry t is the logits when only the first t + 1 steps are seen."""
    _check(seq, mode)
    if mode == "max":
        return seq.cummax(0).values
    total = seq.cumsum(0)
    if mode == "sum":
        return total
    steps = torch.arange(1, seq.shape[0] + 1, dtype=seq.dtype, device=seq.device).view(-1, 1, 1)
    return total / steps
