"""Surrogate spike functions: Heaviside forward (x > 0), a smooth derivative backward."""

from __future__ import annotations

import math
from typing import Callable

import torch

SurrogateGrad = Callable[[torch.Tensor, float], torch.Tensor]


def _sigmoid(x: torch.Tensor, a: float) -> torch.Tensor:
    """Θ′(x) ≈ a·sig(ax)·sig(−ax), eq. (8), low-activity paper; exp(−|ax|) form, no overflow."""
    e = torch.exp(-(a * x).abs())
    return a * e / (1.0 + e) ** 2


def _sigmoid_unscaled(x: torch.Tensor, a: float) -> torch.Tensor:
    """sig(ax)·sig(−ax) without the factor a (peak 1/4), as in the s2net released code."""
    return _sigmoid(x, a) / a


def _fast_sigmoid(x: torch.Tensor, a: float) -> torch.Tensor:
    """Derivative of the fast sigmoid x / (1 + a|x|): 1 / (1 + a|x|)²."""
    return 1.0 / (1.0 + a * x.abs()) ** 2


def _triangle(x: torch.Tensor, a: float) -> torch.Tensor:
    """Triangle of half-width 1/a and unit area: a·max(0, 1 − a|x|)."""
    return a * torch.clamp(1.0 - a * x.abs(), min=0.0)


def _arctan(x: torch.Tensor, a: float) -> torch.Tensor:
    """Derivative of arctan(π/2·a·x)/π + 1/2: (a/2) / (1 + (π/2·a·x)²)."""
    return (a / 2.0) / (1.0 + (math.pi / 2.0 * a * x) ** 2)


SURROGATES: dict[str, SurrogateGrad] = {
    "sigmoid": _sigmoid,
    "sigmoid_unscaled": _sigmoid_unscaled,
    "fast_sigmoid": _fast_sigmoid,
    "triangle": _triangle,
    "arctan": _arctan,
}


def surrogate_grad(x: torch.Tensor, surrogate: str, scale: float) -> torch.Tensor:
    """The surrogate derivative Θ′(x) named `surrogate` with scale a = `scale`."""
    try:
        fn = SURROGATES[surrogate]
    except KeyError:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {sorted(SURROGATES)}") from None
    return fn(x, scale)


def check_surrogate(surrogate: str, scale: float) -> None:
    """Raise ValueError for an unknown surrogate name or a non-positive scale."""
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {sorted(SURROGATES)}")
    if not scale > 0:
        raise ValueError(f"surrogate scale must be > 0, got {scale}")


class _Spike(torch.autograd.Function):
    """S = Θ(x) (strict: x > 0) forward; dS/dx = surrogate′(x) backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: str, scale: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate, ctx.scale = surrogate, scale
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * surrogate_grad(x, ctx.surrogate, ctx.scale), None, None


def spike_fn(x: torch.Tensor, surrogate: str = "sigmoid", scale: float = 10.0) -> torch.Tensor:
    """Heaviside spike Θ(x) with the named surrogate gradient (eqs. (7)–(8), low-activity paper)."""
    check_surrogate(surrogate, scale)
    return _Spike.apply(x, surrogate, scale)
