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
from spikeforge.layers.base import check_step_input


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

    def init_state(self, batch: int) -> dict:
        """The zero state of `batch` streams for `step`: a ring buffer of the last ⌊max delay⌋ + 2 inputs, made at the first step."""
        return {"batch": batch, "ring": None, "pos": 0}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One time step `[B, *neuron]` → (delayed output at that step, next state), as `forward` at that step."""
        check_step_input(x_t, state, "AxonalDelay")
        d = self.delay.detach()
        if bool((d < 0).any()):
            raise ValueError("delays must be ≥ 0 steps (a negative delay would read the future); call constrain_() after each step")
        k = d.floor()
        length = int(k.max()) + 2  # x[n − k] and x[n − k − 1] for every neuron
        ring, pos = state["ring"], state["pos"]
        if ring is None:  # the inputs before the stream started are zeros
            ring = x_t.new_zeros(length, *x_t.shape)
        elif ring.shape[0] < length:
            raise ValueError(f"AxonalDelay.step: a delay grew to {float(d.max()):.2f} steps since the stream started; start it again with init_state")
        ring[pos] = x_t
        frac = (self.delay - k).expand(x_t.shape[1:])
        slot = (pos - k.long().expand(x_t.shape[1:])) % ring.shape[0]
        now = ring.gather(0, slot.unsqueeze(0).expand(1, *x_t.shape))[0]  # x[n − k]
        before = ring.gather(0, ((slot - 1) % ring.shape[0]).unsqueeze(0).expand(1, *x_t.shape))[0]  # x[n − k − 1]
        return now + frac * (before - now), {"batch": state["batch"], "ring": ring, "pos": (pos + 1) % ring.shape[0]}

    @torch.no_grad()
    def constrain_(self) -> None:
        """Delays stay in [0, max_delay] steps."""
        self.delay.clamp_(0.0, self.max_delay)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.delay.shape)}, max_delay={self.max_delay}"
