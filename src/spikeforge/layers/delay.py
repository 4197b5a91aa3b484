"""Trainable axonal delays per neuron (Sun et al. 2022, ref. [37] of the spikemax paper), as a fractional shift in time.

A neuron with delay d = k + f (k integer, 0 ≤ f < 1) outputs
y[n] = (1 − f)·x[n − k] + f·x[n − k − 1]: an integer shift by k steps, linearly interpolated
towards k + 1, so ∂y[n]/∂d = x[n − k − 1] − x[n − k] and the delay trains by gradient descent.
Steps before the signal starts read zeros (causal).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.checks import check_time_major


def fractional_shift(x: torch.Tensor, delay: torch.Tensor) -> torch.Tensor:
    """Delay each neuron of `x` `[T, B, *neuron]` by `delay` steps (≥ 0, broadcastable to `neuron`), linearly interpolated."""
    check_time_major(x, "x", (3, 4, 5, 6), "[T, B, C, ...]")
    if delay.dim() > x.dim() - 2:
        raise ValueError(f"delay of shape {tuple(delay.shape)} has more axes than the neuron axes {tuple(x.shape[2:])} of x")
    if bool((delay < 0).any()):
        raise ValueError("delays must be ≥ 0 steps (a negative delay would read the future); call constrain_() after each step")
    d = delay.reshape((1, 1) + (1,) * (x.dim() - 2 - delay.dim()) + tuple(delay.shape))
    k = d.detach().floor()
    frac = d - k  # carries ∂/∂d
    pad = int(k.max()) + 1
    padded = F.pad(x, (0, 0) * (x.dim() - 1) + (pad, 0))
    steps = torch.arange(x.shape[0], device=x.device).view((-1,) + (1,) * (x.dim() - 1))
    index = (steps - k.long() + pad).expand(x.shape)
    now = padded.gather(0, index)  # x[n − k]
    before = padded.gather(0, index - 1)  # x[n − k − 1]
    return now + frac * (before - now)


class AxonalDelay(nn.Module):
    """One trainable delay (in steps) per neuron of `shape` (e.g. `(C,)`, or `(C, 1, 1)` for one per conv channel)."""

    def __init__(self, shape: int | tuple[int, ...], *, init: float = 0.0, max_delay: float | None = None) -> None:
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if init < 0 or (max_delay is not None and not 0 <= init <= max_delay):
            raise ValueError(f"init delay {init} must lie in [0, max_delay = {max_delay}] steps")
        self.max_delay = max_delay
        self.delay = nn.Parameter(torch.full(shape, float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x` `[T, B, *neuron]` delayed per neuron."""
        return fractional_shift(x, self.delay)

    @torch.no_grad()
    def constrain_(self) -> None:
        """Delays stay in [0, max_delay] steps."""
        self.delay.clamp_(0.0, self.max_delay)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.delay.shape)}, max_delay={self.max_delay}"
