"""Turn a collated batch into the time-major spike/current sequence a model reads."""

from __future__ import annotations

import warnings
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
    """Encode batch `x` with the recipe's `encoder` section ({name, **kwargs}), in the models' dtype (float32)."""
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return to_model_dtype(encoders()[spec["name"]](x, **kwargs))


def step_shape(sample: torch.Tensor, spec: dict) -> tuple[int, ...]:
    """The network's input per sample and step for one dataset `sample` under the recipe's `encoder` section; a random
    encoder's draw leaves the generators as they were."""
    with torch.random.fork_rng(devices=[]):
        return tuple(encode(sample.unsqueeze(0), spec).shape[2:])


def to_model_dtype(x: torch.Tensor) -> torch.Tensor:
    """A floating batch in the dtype the harness builds models in (torch's default, float32), with one warning if cast."""
    dtype = torch.get_default_dtype()
    if x.is_floating_point() and x.dtype != dtype:
        warnings.warn(f"the dataset gives {x.dtype} samples; they are cast to {dtype}, the models' dtype "
                      "(have the dataset return float32 to skip this copy)", stacklevel=2)
        return x.to(dtype)
    return x
