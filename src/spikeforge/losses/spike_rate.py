"""Spike-rate loss on output spike trains: squared error between firing rate and target rate, eq. (4), spikemax paper."""

from __future__ import annotations

import torch

from spikeforge.checks import check_time_major
from spikeforge.registry import LOSSES


def check_spike_outputs(outputs: torch.Tensor, targets: torch.Tensor) -> None:
    """Raise ValueError unless `outputs` is a spike sequence [T, B, classes] and `targets` class indices [B]."""
    check_time_major(outputs, "outputs", 3, "[T, B, classes]")
    if targets.dim() != 1 or targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"targets: expected integer class indices [B], got shape {tuple(targets.shape)} dtype {targets.dtype}")
    if targets.shape[0] != outputs.shape[1]:
        raise ValueError(f"targets has {targets.shape[0]} labels but outputs [T, B, classes] has B = {outputs.shape[1]}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= outputs.shape[2]):
        raise ValueError(f"targets must lie in [0, {outputs.shape[2]}) for {outputs.shape[2]} output classes, got {targets.tolist()}")


def target_rates(targets: torch.Tensor, classes: int, true_rate: float, false_rate: float) -> torch.Tensor:
    """Desired rate r̂ per class [B, classes]: `true_rate` for the labelled class, `false_rate` elsewhere (eq. 4)."""
    for name, rate in (("true_rate", true_rate), ("false_rate", false_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be a spike rate in [0, 1] (spikes per step), got {rate}")
    rates = torch.full((targets.shape[0], classes), float(false_rate))
    rates[torch.arange(targets.shape[0]), targets.long()] = float(true_rate)
    return rates


@LOSSES.register("spike_rate")
def spike_rate(outputs: torch.Tensor, targets: torch.Tensor, true_rate: float = 0.2, false_rate: float = 0.02) -> torch.Tensor:
    """L = Σ_i {(1/T) Σ_t s_i(t) − r̂_i}², eq. (4), summed over classes and averaged over the batch.

    Its gradient is ∂L/∂s_i(t) = 2 (r_i − r̂_i) / (T·B).
    """
    check_spike_outputs(outputs, targets)
    rate = outputs.mean(dim=0)  # (1/T) ∫ s dt, eq. (4)
    desired = target_rates(targets, outputs.shape[2], true_rate, false_rate).to(outputs)
    return ((rate - desired) ** 2).sum(dim=1).mean()
