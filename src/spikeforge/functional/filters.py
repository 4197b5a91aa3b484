"""First-order leaky integration y[n] = α·y[n−1] + x[n] over time, fused and reference.

Used for the synaptic current (τ_syn: current-based LIF), the integrating readout, and,
cascaded twice, the alpha / SRM spike-response kernel.
"""

from __future__ import annotations

import torch


def leaky_integrate_reference(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """y[n] = α·y[n−1] + x[n], y[−1] = 0, as a plain autograd loop over the first axis."""
    out, y = [], torch.zeros_like(x[0])
    for n in range(x.shape[0]):
        y = alpha * y + x[n]
        out.append(y)
    return torch.stack(out)


class _LeakyIntegrate(torch.autograd.Function):
    """Forward y[n] = α·y[n−1] + x[n]; backward gx[n] = gy[n] + α·gx[n+1], dα = Σ gx[n]·y[n−1]."""

    @staticmethod
    def forward(ctx, x, alpha):
        y = torch.empty_like(x)
        y[0] = x[0]
        a = alpha.item()
        for n in range(1, x.shape[0]):
            torch.add(x[n], y[n - 1], alpha=a, out=y[n])
        ctx.save_for_backward(alpha, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        alpha, y = ctx.saved_tensors
        gx = gy.clone()
        a = alpha.item()
        for n in range(gx.shape[0] - 2, -1, -1):
            gx[n].add_(gx[n + 1], alpha=a)
        g_alpha = None
        if ctx.needs_input_grad[1]:
            g_alpha = (gx[1:] * y[:-1]).sum().reshape(alpha.shape)
        return gx, g_alpha


def leaky_integrate(x: torch.Tensor, alpha: torch.Tensor | float, impl: str = "fused") -> torch.Tensor:
    """y[n] = α·y[n−1] + x[n] along axis 0 of a time-major tensor `[T, ...]` (α scalar)."""
    if impl == "reference":
        return leaky_integrate_reference(x, alpha)
    if impl != "fused":
        raise ValueError(f"impl must be 'fused' or 'reference', got {impl!r}")
    if not torch.is_tensor(alpha):
        alpha = x.new_tensor(float(alpha))
    if alpha.dim() != 0:
        raise ValueError(f"alpha must be a scalar, got shape {tuple(alpha.shape)}")
    return _LeakyIntegrate.apply(x, alpha)
