"""SRM neuron module: holds τ_s, τ_r and ϑ, calls `functional.srm.srm_scan` (§II-A, spikemax paper)."""

from __future__ import annotations

import torch
from torch import nn

from spikeforge.functional.srm import IMPLS, srm_scan, srm_step
from spikeforge.layers.base import check_step_input


class SRM(nn.Module):
    """Spike Response Model neuron with alpha spike response ε and refractory kernel ν, eqs. (1)–(2).

    No trainable parameters; the paper uses ϑ = 10 and 1 ms steps, τ_s = τ_r = 1 (NMNIST)
    or 5 (DVS Gesture, N-TIDIGITS18).
    """

    def __init__(
        self,
        tau_s: float = 1.0,
        tau_r: float = 1.0,
        threshold: float = 10.0,
        *,
        surrogate: str = "sigmoid",
        scale: float = 4.0,
        impl: str = "fused",
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.tau_s, self.tau_r, self.threshold = float(tau_s), float(tau_r), float(threshold)
        self.surrogate, self.scale, self.impl = surrogate, float(scale), impl

    def forward(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(spikes, membrane) `[T, B, ...]` for the synaptic input `[T, B, ...]`."""
        return srm_scan(
            current, self.tau_s, self.tau_r, self.threshold, surrogate=self.surrogate, scale=self.scale, impl=self.impl
        )

    def init_state(self, batch: int) -> dict:
        """The zero state of `batch` streams for `step` (its filters are made at the first step, when the shape is known)."""
        return {"batch": batch, "filters": None}

    @torch.no_grad()
    def step(self, current_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One step of synaptic input `[B, ...]` → (spikes, next state), as `forward` at that step; the state holds the
        membrane u and the two cascaded filters of ε and of ν (`functional.srm.srm_step`)."""
        check_step_input(current_t, state, "SRM")
        spikes, u, filters = srm_step(current_t, state["filters"], self.tau_s, self.tau_r, self.threshold)
        return spikes, {"batch": state["batch"], "filters": filters, "membrane": u}

    def extra_repr(self) -> str:
        return f"tau_s={self.tau_s}, tau_r={self.tau_r}, threshold={self.threshold}, surrogate={self.surrogate}({self.scale})"
