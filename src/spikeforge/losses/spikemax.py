"""Spike-based negative log-likelihood losses: spikemax (eqs. 5, 6, 8, 11), spikemax_g (eqs. 7, 12), spikemax_s (eqs. 13, 14), spikemax paper.

Counts get a count ε added to every class before normalising, so a silent true class gives a
finite loss (p_y = ε / Σ(c + ε)) and the gradients' 1/c stays bounded. The paper asks for an
"infinitesimal" count; the default ε = 0.3 is a measured choice: with the closed-form
gradients, ε = 0.01 lets the W/ε push on silent windows dominate and every output fires
(docs/results/spikemax.md).

`gradient="paper"` (default) back-propagates the paper's closed forms, eqs. (11), (12), (14),
as SLAYER injects them. `gradient="exact"` back-propagates the exact derivative of the loss
value instead: the same as eq. (14) for spikemax_s, T times smaller than eq. (12) for
spikemax_g, and for spikemax the window sum (1/T) Σ_{t'=t}^{t+W−1} (p_i(t') − ŷ_i)/c_i(t'),
which eq. (11) approximates by W (p_i(t) − ŷ_i)/c_i(t) without the 1/T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikeforge.losses.spike_rate import check_spike_outputs
from spikeforge.registry import LOSSES

GRADIENTS = ("paper", "exact")


def window_counts(spikes: torch.Tensor, window: int) -> torch.Tensor:
    """c_i(t) = Σ_{τ=t−W+1}^{t} s_i(τ) over [T, B, classes], eq. (5); the first W−1 steps count from t = 0."""
    if not 1 <= window <= spikes.shape[0]:
        raise ValueError(
            f"spike count window W = {window} must lie in [1, T] for a sequence of T = {spikes.shape[0]} steps; "
            f"use a smaller window or spikemax_g for the whole sequence"
        )
    total = spikes.cumsum(dim=0)
    return total - F.pad(total, (0, 0, 0, 0, window, 0))[: spikes.shape[0]]


def count_probability(counts: torch.Tensor, eps: float) -> torch.Tensor:
    """p_i = (c_i + ε) / Σ_k (c_k + ε) over the last axis, eqs. (6) and (7) with the ε count."""
    if not eps > 0:
        raise ValueError(f"eps (the count added to every class) must be > 0, got {eps}")
    padded = counts + eps
    return padded / padded.sum(dim=-1, keepdim=True)


class _ClosedFormGradient(torch.autograd.Function):
    """Returns a precomputed loss value; backward hands back the precomputed ∂L/∂s (the paper's closed form)."""

    @staticmethod
    def forward(ctx, spikes: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(grad)
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None, None


def _check_gradient(gradient: str) -> None:
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS} (the paper's closed form or the exact derivative), got {gradient!r}")


def _one_hot(targets: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.one_hot(targets.long(), like.shape[-1]).to(like)


@LOSSES.register("spikemax")
def spikemax(outputs: torch.Tensor, targets: torch.Tensor, window: int = 30, eps: float = 0.3, gradient: str = "paper") -> torch.Tensor:
    """L = (1/T) Σ_t −log p_y(t) with running probabilities over a sliding count window W, eqs. (5), (6), (8); batch mean.

    Paper gradient, eq. (11): ∂L/∂s_i(t) = (p_i(t) − ŷ_i) / ((c_i(t) + ε)/W), divided by B for the batch mean.
    """
    check_spike_outputs(outputs, targets)
    _check_gradient(gradient)
    counts = window_counts(outputs, window)
    prob = count_probability(counts, eps)
    y = _one_hot(targets, outputs)
    if gradient == "exact":
        return -(y * prob.log()).sum(dim=2).mean()  # eq. (8)
    with torch.no_grad():
        value = -(y * prob.log()).sum(dim=2).mean()
        grad = (prob - y) / ((counts + eps) / window) / outputs.shape[1]  # eq. (11)
    return _ClosedFormGradient.apply(outputs, value, grad)


@LOSSES.register("spikemax_g")
def spikemax_g(outputs: torch.Tensor, targets: torch.Tensor, eps: float = 0.3, gradient: str = "paper") -> torch.Tensor:
    """L = −log p_y with global count probabilities p_i = c_i / Σ c, eqs. (7), (12); batch mean.

    Paper gradient, eq. (12): ∂L/∂s_i(t) = (p_i − ŷ_i) / ((c_i + ε)/T), divided by B for the batch mean.
    """
    check_spike_outputs(outputs, targets)
    _check_gradient(gradient)
    counts = outputs.sum(dim=0)  # c_i = ∫_0^T s_i dt, eq. (7)
    prob = count_probability(counts, eps)
    y = _one_hot(targets, counts)
    if gradient == "exact":
        return -(y * prob.log()).sum(dim=1).mean()  # eq. (12)
    with torch.no_grad():
        value = -(y * prob.log()).sum(dim=1).mean()
        grad = (prob - y) / ((counts + eps) / outputs.shape[0]) / outputs.shape[1]  # eq. (12)
    return _ClosedFormGradient.apply(outputs, value, grad.expand_as(outputs))


@LOSSES.register("spikemax_s")
def spikemax_s(outputs: torch.Tensor, targets: torch.Tensor, gradient: str = "paper") -> torch.Tensor:
    """L = −log softmax(c)_y of the spike counts c_i = Σ_t s_i(t), eqs. (13), (14); batch mean.

    Its gradient is eq. (14), ∂L/∂s_i(t) = p^s_i − ŷ_i (divided by B), in both gradient modes.
    """
    check_spike_outputs(outputs, targets)
    _check_gradient(gradient)
    return F.cross_entropy(outputs.sum(dim=0), targets.long())  # eqs. (13)-(14)
