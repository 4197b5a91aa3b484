"""Accuracy versus inference time: the accuracy when only the first t steps of the outputs are seen."""

from __future__ import annotations

import torch
from torch import nn

from spikeforge.metrics.reduce import cumulative_logits


def output_reduction(model: nn.Module) -> str:
    """The model's `output_reduction` (how [T, B, classes] becomes logits), also through a DDP wrapper."""
    inner = getattr(model, "module", model)
    reduction = getattr(inner, "output_reduction", None)
    if reduction is None:
        raise ValueError(f"{type(inner).__name__} has no `output_reduction` attribute ('mean', 'max' or 'sum'); every classification model needs one")
    return reduction


def correct_vs_time(outputs: torch.Tensor, targets: torch.Tensor, reduction: str) -> torch.Tensor:
    """Number of correct predictions `[T]` after 1..T steps, for per-step outputs `[T, B, classes]`."""
    logits = cumulative_logits(outputs, reduction)
    return (logits.argmax(-1) == targets.view(1, -1)).sum(1)
