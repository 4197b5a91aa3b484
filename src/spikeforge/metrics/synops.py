"""Synaptic operations: every non-zero input event of a weighted layer costs one operation per outgoing synapse."""

from __future__ import annotations

import math

import torch
from torch import nn


def fan_out(module: nn.Module) -> float:
    """Synapses leaving one input element: out·kernel taps / stride (weight `[out, in, *kernel]`), ignoring borders."""
    w = module._parameters["weight"]
    stride = getattr(module, "stride", 1)
    stride = math.prod(stride) if isinstance(stride, (tuple, list)) else int(stride)
    return w.numel() / w.shape[1] / stride


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own a weight matrix or kernel (dense, conv, readout layers)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m._parameters.get("weight"), torch.Tensor) and m._parameters["weight"].dim() >= 2]


class SynOpsCounter:
    """Context manager counting Σ_layers (non-zero inputs × fan-out); `per_sample()` divides by the samples seen.

    Inputs of the first layer are analog when the encoder is `direct`; their non-zeros count as
    multiply-accumulates, those of later layers (binary spikes) as accumulates.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.ops: dict[str, float] = {}
        self.samples = 0
        self._handles: list = []

    def __enter__(self) -> "SynOpsCounter":
        for name, module in weighted_layers(self.model):
            self._handles.append(module.register_forward_pre_hook(self._hook(name, fan_out(module))))
        return self

    def _hook(self, name: str, fan: float):
        def hook(_module, inputs):
            x = inputs[0]
            self.ops[name] = self.ops.get(name, 0.0) + float(torch.count_nonzero(x.detach())) * fan

        return hook

    def add_samples(self, n: int) -> None:
        """Record that a forward pass covered `n` more samples."""
        self.samples += n

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def per_sample(self) -> dict[str, float]:
        """Synaptic operations per sample, per layer."""
        return {k: v / max(self.samples, 1) for k, v in self.ops.items()}
