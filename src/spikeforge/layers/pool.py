"""Pooling applied at every time step, and flattening that keeps the time and batch axes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.layers.base import StepByForward

_POOLS = {
    "avg": {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d},
    "max": {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d},
}


class Pool(StepByForward, nn.Module):
    """Average, max or min pooling over the spatial axes of `[T, B, C, *S]`, step by step.

    Min pooling (the hybrid paper: max-pooling of activations becomes min-pooling of spike
    times) is −maxpool(−x).
    """

    def __init__(self, kind: str, kernel_size: int | tuple[int, ...], *, spatial_dims: int = 2, stride: int | tuple[int, ...] | None = None) -> None:
        super().__init__()
        if kind not in ("avg", "max", "min"):
            raise ValueError(f"pool kind must be 'avg', 'max' or 'min', got {kind!r}")
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
        self.kind, self.kernel_size, self.spatial_dims = kind, kernel_size, spatial_dims
        self.stride = kernel_size if stride is None else stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 + self.spatial_dims:
            raise ValueError(f"Pool({self.kind}) expects [T, B, C] + {self.spatial_dims} spatial axes, got shape {tuple(x.shape)}")
        steps, batch = x.shape[:2]
        flat = x.flatten(0, 1)
        if self.kind == "min":
            y = -_POOLS["max"][self.spatial_dims](-flat, self.kernel_size, self.stride)
        else:
            y = _POOLS[self.kind][self.spatial_dims](flat, self.kernel_size, self.stride)
        return y.view(steps, batch, *y.shape[1:])

    def extra_repr(self) -> str:
        return f"{self.kind}, kernel_size={self.kernel_size}, stride={self.stride}"


class Flatten(StepByForward, nn.Module):
    """`[T, B, ...] → [T, B, features]`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)
