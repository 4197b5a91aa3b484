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


def activity_regularizer(spikes: Sequence[torch.Tensor], weights: Sequence[float], budget: float | None = None) -> torch.Tensor:
    """Σ_l w_l·L_r(l) over the spiking layers (dL/dU = 2·S·sig′ is zero where no spike); with a spike budget ρ*,
    Σ_l w_l·max(0, L_r(l) − ρ*/2): for binary spikes L_r(l) = ρ_l/2, so a layer firing at a rate ρ_l ≤ ρ* on the batch
    costs nothing and one above it is pushed down as without the budget (not in the papers)."""
    if len(spikes) != len(weights):
        raise ValueError(f"one regulariser weight per spiking layer: {len(spikes)} layers, {len(weights)} weights")
    if not spikes:
        raise ValueError("activity_regularizer needs at least one spiking layer's spikes")
    if budget is None:
        budget = 0.0  # L_r(l) ≥ 0, so max(0, L_r(l) − 0) is the paper's term
    if not 0 <= budget < 1:
        raise ValueError(f"the spike budget is a rate per layer in [0, 1) (0.07: 7 % of the neurons each step), got {budget}")
    return sum(w * torch.clamp(layer_activity(s) - budget / 2, min=0) for w, s in zip(weights, spikes))
