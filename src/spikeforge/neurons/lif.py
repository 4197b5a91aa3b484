"""LIF / NLIF neuron module: holds β (one per layer) and b (one per channel), calls `lif_scan`."""

from __future__ import annotations

import math

import torch
from torch import nn

from spikeforge.functional.filters import leaky_integrate
from spikeforge.functional.lif import LIFConfig, lif_scan

Init = float | tuple[float, float]


def _init_tensor(init: Init, shape: tuple[int, ...]) -> torch.Tensor:
    """A value, or samples of N(mean, std) for `init = (mean, std)`."""
    if isinstance(init, (int, float)):
        return torch.full(shape, float(init))
    mean, std = init
    return torch.randn(shape) * std + mean


class LIF(nn.Module):
    """LIF neuron of eqs. (4)–(5), low-activity paper; NLIF (eq. 6) with `nlif=True` (β = 1).

    β is one scalar per layer, init N(0.7, 0.01); b one threshold per channel, init N(1, 0.01);
    `constrain_()` clamps β to [0, 1] and b to [0, ∞) (call it after every optimiser step).
    `tau_syn` adds a synaptic current filter I_syn[n] = exp(−1/τ_syn)·I_syn[n−1] + I[n]
    (current-based LIF; with equal time constants the alpha/SRM kernel).
    """

    def __init__(
        self,
        channels: int,
        *,
        beta_init: Init = (0.7, 0.01),
        threshold_init: Init = (1.0, 0.01),
        learn_beta: bool = True,
        learn_threshold: bool = True,
        nlif: bool = False,
        reset: str = "subtract",
        input_scale: str = "none",
        surrogate: str = "sigmoid",
        scale: float = 10.0,
        tau_syn: float | None = None,
        impl: str = "fused",
    ) -> None:
        super().__init__()
        self.cfg = LIFConfig(reset=reset, input_scale=input_scale, surrogate=surrogate, scale=scale)
        if nlif and input_scale != "none":
            raise ValueError("NLIF (eq. 6) is U = U − R + I: it needs input_scale='none' ((1 − β) = 0 would zero the input)")
        if impl not in ("fused", "reference"):
            raise ValueError(f"impl must be 'fused' or 'reference', got {impl!r}")
        if tau_syn is not None and not tau_syn > 0:
            raise ValueError(f"tau_syn must be > 0 (in steps), got {tau_syn}")
        self.channels, self.nlif, self.impl = channels, nlif, impl
        beta = torch.tensor(1.0) if nlif else _init_tensor(beta_init, ())
        if learn_beta and not nlif:
            self.beta = nn.Parameter(beta)
        else:
            self.register_buffer("beta", beta)
        threshold = _init_tensor(threshold_init, (channels,))
        if learn_threshold:
            self.threshold = nn.Parameter(threshold)
        else:
            self.register_buffer("threshold", threshold)
        self.syn_decay = None if tau_syn is None else math.exp(-1.0 / tau_syn)

    def forward(
        self,
        current: torch.Tensor,
        norm: torch.Tensor | None = None,
        gram: torch.Tensor | None = None,
        recurrent: torch.Tensor | None = None,
        initial: tuple[torch.Tensor, torch.Tensor] | None = None,
        keep_membrane: bool = True,
        consume_current: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(spikes, membrane) `[T, B, C, ...]` for the input current `[T, B, C, ...]`; membrane None unless kept.

        `consume_current`: the caller owns `current`; the scan may overwrite it (see `lif_scan`).
        """
        if self.syn_decay is not None:  # the filter keeps its output for backward: not to be overwritten
            current = leaky_integrate(current, self.syn_decay, impl=self.impl)
            consume_current = False
        c = self.cfg
        return lif_scan(
            current, self.beta, self.threshold, norm, gram, recurrent,
            reset=c.reset, input_scale=c.input_scale, surrogate=c.surrogate, scale=c.scale, eps=c.eps,
            initial=initial, impl=self.impl, keep_membrane=keep_membrane, consume_current=consume_current,
        )

    def step(
        self,
        current: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
        norm: torch.Tensor | None = None,
        gram: torch.Tensor | None = None,
        recurrent: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One step of `forward`: current `[B, C, ...]` and state (U[n−1], S[n−1], I_syn[n−1]) (None: zeros) → (S[n], new state)."""
        if state is None:
            zeros = torch.zeros_like(current)
            state = (zeros, zeros, zeros)
        membrane, spikes, syn = state
        if self.syn_decay is not None:  # I_syn[n] = exp(−1/τ_syn)·I_syn[n−1] + I[n]
            current = syn = self.syn_decay * syn + current
        c = self.cfg
        s, u = lif_scan(
            current.unsqueeze(0), self.beta, self.threshold, norm, gram, recurrent,
            reset=c.reset, input_scale=c.input_scale, surrogate=c.surrogate, scale=c.scale, eps=c.eps,
            initial=(membrane, spikes), impl="reference",  # one step: the plain equations are the fastest path
        )
        return s[0], (u[0], s[0], syn)

    @torch.no_grad()
    def constrain_(self) -> None:
        """β ∈ [0, 1], b ≥ 0 (low-activity paper §8)."""
        self.beta.clamp_(0.0, 1.0)
        self.threshold.clamp_(min=0.0)

    def extra_repr(self) -> str:
        kind = "NLIF" if self.nlif else "LIF"
        return f"{self.channels}, {kind}, reset={self.cfg.reset}, input_scale={self.cfg.input_scale}, surrogate={self.cfg.surrogate}({self.cfg.scale})"
