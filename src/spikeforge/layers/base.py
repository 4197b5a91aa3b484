"""The common shape of every spike-emitting layer: a weighted current, then a LIF neuron."""

from __future__ import annotations

import torch
from torch import nn

from spikeforge.neurons.lif import LIF


class SpikingLayer(nn.Module):
    """Weights W → current I for all steps at once (Algorithm 1, low-activity paper) → LIF scan.

    Subclasses define `weight` (output unit/channel first) and `current(x)`. Options:
    `normalize_threshold` — threshold and reset scaled by ‖W_i‖² (eq. 5);
    `lateral` — reset R = W·Wᵀ·S[n−1] across the channels of a position (report §5.3.2);
    `recurrent` — a trainable channel-to-channel feedback V·S[n−1] (recurrent pool, report §5.4).
    Remaining keyword arguments configure the `LIF` neuron.
    """

    def __init__(self, out_channels: int, *, lateral: bool, normalize_threshold: bool, recurrent: bool, lif_kwargs: dict) -> None:
        super().__init__()
        if lateral and lif_kwargs.get("reset", "subtract") != "subtract":
            raise ValueError("lateral connections replace the subtractive reset: use reset='subtract' with lateral=True")
        self.lateral, self.normalize_threshold = lateral, normalize_threshold
        self.neuron = LIF(out_channels, **lif_kwargs)
        self.recurrent = nn.Parameter(torch.zeros(out_channels, out_channels)) if recurrent else None

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """Input current I `[T, B, C_out, ...]` for input `x` `[T, B, ...]`."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output spikes `[T, B, C_out, ...]`."""
        return self._run(x, keep_membrane=False)[0]

    def spikes_and_membrane(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spikes and membrane potential, both `[T, B, C_out, ...]`."""
        return self._run(x, keep_membrane=True)

    def _run(self, x: torch.Tensor, keep_membrane: bool):
        w = self.weight.flatten(1)
        norm = (w * w).sum(1) if self.normalize_threshold else None  # ‖W_i‖², eq. (5)
        gram = w @ w.t() if self.lateral else None  # W·Wᵀ, report eq. (5.3)
        # the current is this layer's own temporary: the scan may reuse its buffer for the membrane
        return self.neuron(self.current(x), norm, gram, self.recurrent, keep_membrane=keep_membrane, consume_current=True)

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]
