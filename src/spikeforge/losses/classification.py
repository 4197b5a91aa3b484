"""Classification losses on per-step outputs `[T, B, classes]`: cross-entropy on reduced logits, MSE on one-hot targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikeforge.metrics.reduce import reduce_time
from spikeforge.registry import LOSSES


def _check(outputs: torch.Tensor, targets: torch.Tensor) -> None:
    """Shapes and dtypes only: a NaN in the outputs is divergence, which the trainer reports with its step."""
    if not isinstance(outputs, torch.Tensor) or outputs.dim() != 3 or not outputs.is_floating_point():
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        raise ValueError(f"outputs: expected floating per-step scores [T, B, classes], got {shape}")
    if targets.dim() != 1 or targets.is_floating_point():
        raise ValueError(f"targets: expected integer class indices [B], got shape {tuple(targets.shape)} dtype {targets.dtype}")
    if targets.shape[0] != outputs.shape[1]:
        raise ValueError(f"targets has {targets.shape[0]} labels but outputs [T, B, classes] has B = {outputs.shape[1]}")


@LOSSES.register("cross_entropy")
def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor, time_reduction: str = "mean", label_smoothing: float = 0.0) -> torch.Tensor:
    """CE(softmax(z), y) on logits z = reduce_time(outputs) (mean over time: report §5.3.3), averaged over the batch."""
    _check(outputs, targets)
    return F.cross_entropy(reduce_time(outputs, time_reduction), targets.long(), label_smoothing=label_smoothing)


@LOSSES.register("mse")
def mse(outputs: torch.Tensor, targets: torch.Tensor, time_reduction: str = "mean") -> torch.Tensor:
    """Mean squared error between z = reduce_time(outputs) and one-hot targets (noise paper §5), mean over batch and classes."""
    _check(outputs, targets)
    logits = reduce_time(outputs, time_reduction)
    return F.mse_loss(logits, F.one_hot(targets.long(), logits.shape[1]).to(logits.dtype))
