"""Per-layer spike recording from any model, through forward hooks on its spiking layers."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def spiking_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every `SpikingLayer` in `model`, in registration order."""
    from spikeforge.layers.base import SpikingLayer

    return [(name, m) for name, m in model.named_modules() if isinstance(m, SpikingLayer) or getattr(m, "emits_spikes", False)]


class SpikeRecorder:
    """Context manager: `rec.spikes[name]` is each spiking layer's output `[T, B, ...]` of the last forward.

    The tensors keep their graph (the activity regulariser needs it); `rates()` gives the mean
    firing rate of each layer as floats. Modules outside `SpikingLayer` can opt in with an
    attribute `emits_spikes = True`. Hooks are removed on exit.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.spikes: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._handles: list = []

    def __enter__(self) -> "SpikeRecorder":
        for name, module in spiking_layers(self.model):
            self._handles.append(module.register_forward_hook(self._hook(name or type(module).__name__)))
        return self

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            self.spikes[name] = output

        return hook

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def rates(self) -> dict[str, float]:
        """Mean spikes per neuron per step, per layer."""
        return {name: float(s.detach().float().mean()) for name, s in self.spikes.items()}
