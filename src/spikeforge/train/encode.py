"""Turn a collated batch into the time-major spike/current sequence a model reads."""

from __future__ import annotations

from typing import Callable

import torch


def sequence(x: torch.Tensor) -> torch.Tensor:
    """Samples that already are sequences: batch [B, T, ...] becomes time-major [T, B, ...]."""
    if x.dim() < 2:
        raise ValueError(f"encoder 'sequence' needs samples shaped [T, ...], got a batch of shape {tuple(x.shape)}; use encoder 'direct' or 'rate' for static samples")
    return x.transpose(0, 1).contiguous()


def encoders() -> dict[str, Callable[..., torch.Tensor]]:
    """Encoder name → function of a batch-major batch `x` (plus recipe keyword arguments) returning [T, B, ...]."""
    from spikeforge.functional import encoders as enc

    return {"sequence": sequence, "direct": enc.direct, "rate": enc.rate, "ttfs": enc.ttfs, "ttfs_raster": enc.ttfs_raster}


def encode(x: torch.Tensor, spec: dict) -> torch.Tensor:
    """Encode batch `x` with the recipe's `encoder` section ({name, **kwargs})."""
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return encoders()[spec["name"]](x, **kwargs)
