"""Conversion constraints of the hybrid paper: weight-sum loss (eq. 10), activation-constraint loss (eq. 11), Table 1.

Decisions the paper leaves open (spec notes): U′ is U normalised per layer over the batch and all units to
mean 0 and standard deviation 1/3, and is a fixed target (no gradient flows through the normalisation);
both losses sum over layers and units and average over the batch.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor


def weight_sums(weight: Tensor) -> Tensor:
    """Σ_i w_ij for every output unit j of a Linear [out, in] or Conv [out, in, k, k] weight."""
    return weight.flatten(1).sum(dim=1)


def weight_sum_loss(weights: Iterable[Tensor]) -> Tensor:
    """L_wsum = Σ_l Σ_j |Σ_i w_ij − 1| (eq. 10, hybrid paper)."""
    terms = [(weight_sums(w) - 1.0).abs().sum() for w in weights]
    if not terms:
        raise ValueError("weight_sum_loss: no weights given; pass the weights of the layers that become spiking")
    return torch.stack(terms).sum()


def normalised_preactivation(u: Tensor, total: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """U′: U shifted and scaled over batch and units to mean 0, std 1/3, detached (eq. 11, hybrid paper).

    `total` sums a float64 tensor over the processes of a data-parallel step, so that the mean and std are those of
    the global batch (as with one process); None: this batch alone.
    """
    u = u.detach()
    if total is None:
        return (u - u.mean()) / (3.0 * u.std().clamp_min(1e-12))
    x = u.double()
    n, s, ss = total(torch.stack([x.new_tensor(float(x.numel())), x.sum(), (x * x).sum()])).unbind()
    mean = s / n
    std = ((ss - n * mean * mean) / (n - 1)).clamp_min(0.0).sqrt()  # unbiased, as Tensor.std
    return ((x - mean) / (3.0 * std.clamp_min(1e-12))).to(u.dtype)


def activation_constraint_loss(preactivations: Iterable[Tensor], total: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """L_acti = Σ_l Σ_j |u_j − u′_j|, averaged over the batch (eq. 11, hybrid paper); each U is [B, ...];
    `total` as in `normalised_preactivation`."""
    terms = [(u - normalised_preactivation(u, total)).abs().flatten(1).sum(dim=1).mean() for u in preactivations]
    if not terms:
        raise ValueError("activation_constraint_loss: no pre-activations given")
    return torch.stack(terms).sum()


def constraint_report(weights: dict[str, Tensor], preactivations: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    """Table 1: per layer, min and max weight sum and the share of activations h = ReLU(u) below 1."""
    report: dict[str, dict[str, float]] = {}
    for name, w in weights.items():
        sums = weight_sums(w.detach())
        report[name] = {"weight_sum_min": sums.min().item(), "weight_sum_max": sums.max().item()}
    for name, u in preactivations.items():
        report.setdefault(name, {})["h_below_1"] = (u.detach() < 1.0).float().mean().item()
    return report
