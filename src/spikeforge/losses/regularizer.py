"""Activity regulariser on the squared spikes of each layer (§5, low-activity paper; report §5.5)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def layer_activity(spikes: torch.Tensor) -> torch.Tensor:
    """L_r(l) = 1/(2KN)·Σ_n Σ_k S_k[n]², averaged over the batch (axis 1 of `[T, B, ...]`)."""
    return 0.5 * (spikes * spikes).mean()


def regularizer_weights(layers: int, weight: float = 0.1, schedule: str = "constant") -> list[float]:
    """Per-layer weights: `constant` w (low-activity paper §8) or `linear` w·l/L (the report)."""
    if schedule == "constant":
        return [weight] * layers
    if schedule == "linear":
        return [weight * (l + 1) / layers for l in range(layers)]
    raise ValueError(f"regulariser schedule must be 'constant' or 'linear', got {schedule!r}")


def activity_regularizer(spikes: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Σ_l w_l·L_r(l) over the spiking layers (dL/dU = 2·S·sig′ is zero where no spike)."""
    if len(spikes) != len(weights):
        raise ValueError(f"one regulariser weight per spiking layer: {len(spikes)} layers, {len(weights)} weights")
    if not spikes:
        raise ValueError("activity_regularizer needs at least one spiking layer's spikes")
    return sum(w * layer_activity(s) for w, s in zip(weights, spikes))
