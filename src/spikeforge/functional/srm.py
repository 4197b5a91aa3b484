"""Spike Response Model (SRM) neuron, eqs. (1)–(2) and §II-A, spikemax paper; 1 ms steps.

u(t) = (ε * W s_in)(t) + (ν * s)(t),  s(t) = Θ(u(t) − ϑ), with
ε(t) = t/τ_s·exp(1 − t/τ_s) (spike response) and ν(t) = −2ϑ·t/τ_r·exp(1 − t/τ_r) (refractory).

The alpha kernel sampled at integer steps is two cascaded first-order filters with
decay a = exp(−1/τ): x1[n] = a·x1[n−1] + x[n], x2[n] = a·x2[n−1] + a·x1[n−1] gives
x2 = n·aⁿ for an impulse, so ε[n] = (e/τ)·x2[n] exactly. The input part is linear and runs
through the engine's fused `leaky_integrate`; the refractory part is the recurrence
(z1, z2 driven by the output spikes), fused in `_RefractoryScan`. The spike is strict
(u > ϑ) and its surrogate acts on the normalised distance (u − ϑ)/ϑ.
"""

from __future__ import annotations

import math

import torch

from spikeforge.checks import check_time_major
from spikeforge.functional.filters import leaky_integrate
from spikeforge.functional.surrogate import check_surrogate, spike_fn, surrogate_grad

IMPLS = ("fused", "reference")


def spike_response_kernel(t: torch.Tensor, tau_s: float) -> torch.Tensor:
    """ε(t) = t/τ_s·exp(1 − t/τ_s)·Θ(t), §II-A."""
    return torch.where(t >= 0, t / tau_s * torch.exp(1 - t / tau_s), torch.zeros_like(t))


def refractory_kernel(t: torch.Tensor, tau_r: float, threshold: float) -> torch.Tensor:
    """ν(t) = −2ϑ·t/τ_r·exp(1 − t/τ_r)·Θ(t), §II-A."""
    return -2 * threshold * spike_response_kernel(t, tau_r)


def _delay_one(x: torch.Tensor) -> torch.Tensor:
    """x[n−1] along time, zero at n = 0."""
    return torch.cat([torch.zeros_like(x[:1]), x[:-1]])


def psp(current: torch.Tensor, tau_s: float, impl: str = "fused") -> torch.Tensor:
    """(ε * current)[n] over axis 0 as two cascaded first-order filters, eq. (1) input term."""
    a = math.exp(-1.0 / tau_s)
    x1 = leaky_integrate(current, a, impl=impl)
    x2 = leaky_integrate(a * _delay_one(x1), a, impl=impl)
    return (math.e / tau_s) * x2


def _refractory_filter(threshold: float, tau_r: float) -> tuple[float, float]:
    """(b, κ): the decay b = exp(−1/τ_r) of ν's two filters and the gain κ = −2ϑe/τ_r with ν[n] = κ·z2[n]."""
    return math.exp(-1.0 / tau_r), -2 * threshold * math.e / tau_r


def srm_step(current_t: torch.Tensor, filters: list[torch.Tensor] | None, tau_s: float, tau_r: float, threshold: float
             ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """One step of eqs. (1)–(2) without autograd: (spikes, membrane u, next filters) for the input W·s_in `[B, ...]`,
    `filters` = [x1, x2, z1, z2] of ε and ν after the previous step (None: at rest); `srm_scan` at that step."""
    a, (b, kappa) = math.exp(-1.0 / tau_s), _refractory_filter(threshold, tau_r)
    x1, x2, z1, z2 = filters or [torch.zeros_like(current_t) for _ in range(4)]
    x2 = a * x2 + a * x1  # x2[n] = a·x2[n−1] + a·x1[n−1]
    x1 = a * x1 + current_t
    z2 = b * z2 + b * z1
    u = (math.e / tau_s) * x2 + kappa * z2  # (ε * W s_in)[n] + (ν * s)[n]
    spikes = (u > threshold).to(current_t.dtype)
    return spikes, u, [x1, x2, b * z1 + spikes, z2]


def _refractory_reference(drive, threshold, tau_r, surrogate, scale):
    """Step-by-step autograd loop: u[n] = drive[n] + κ·z2[n], s[n] = Θ(u[n] − ϑ), κ = −2ϑe/τ_r."""
    b, kappa = _refractory_filter(threshold, tau_r)
    z1 = z2 = torch.zeros_like(drive[0])
    spikes, membrane = [], []
    for n in range(drive.shape[0]):
        z2 = b * z2 + b * z1
        u = drive[n] + kappa * z2
        s = spike_fn((u - threshold) / threshold, surrogate, scale)
        z1 = b * z1 + s
        spikes.append(s)
        membrane.append(u)
    return torch.stack(spikes), torch.stack(membrane)


class _RefractoryScan(torch.autograd.Function):
    """The reference recurrence in one call; backward runs the adjoint of (z1, z2) in reverse time."""

    @staticmethod
    def forward(ctx, drive, threshold, tau_r, surrogate, scale):  # type: ignore[override]
        b, kappa = _refractory_filter(threshold, tau_r)
        u = torch.empty_like(drive)
        s = torch.empty_like(drive)
        z1 = torch.zeros_like(drive[0])
        z2 = torch.zeros_like(drive[0])
        for n in range(drive.shape[0]):
            z2.mul_(b).add_(z1, alpha=b)
            torch.add(drive[n], z2, alpha=kappa, out=u[n])
            torch.gt(u[n], threshold, out=s[n])
            z1.mul_(b).add_(s[n])
        ctx.save_for_backward(u)
        ctx.cfg = (threshold, b, kappa, surrogate, scale)
        return s, u

    @staticmethod
    def backward(ctx, g_spikes, g_membrane):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        threshold, b, kappa, surrogate, scale = ctx.cfg
        ds_du = surrogate_grad((u - threshold) / threshold, surrogate, scale) / threshold
        g_drive = torch.empty_like(u)
        gz1 = torch.zeros_like(u[0])  # adjoint of z1[n+1], then of z1[n]
        gz2 = torch.zeros_like(u[0])
        for n in range(u.shape[0] - 1, -1, -1):
            gz1 = b * (gz1 + gz2)  # z1[n] feeds z1[n+1] and z2[n+1], both with weight b
            gu = g_membrane[n] + (g_spikes[n] + gz1) * ds_du[n]
            g_drive[n] = gu
            gz2 = kappa * gu + b * gz2  # z2[n] feeds u[n] (κ) and z2[n+1] (b)
        return g_drive, None, None, None, None


def srm_scan(
    current: torch.Tensor,
    tau_s: float,
    tau_r: float,
    threshold: float = 10.0,
    *,
    surrogate: str = "sigmoid",
    scale: float = 4.0,
    impl: str = "fused",
) -> tuple[torch.Tensor, torch.Tensor]:
    """SRM spikes and membrane potential `[T, B, ...]` for the synaptic input W·s_in `[T, B, ...]`, eqs. (1)–(2)."""
    check_time_major(current, "current", (2, 3, 4, 5, 6), "[T, B, C, ...]")
    check_surrogate(surrogate, scale)
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    for name, value in (("tau_s", tau_s), ("tau_r", tau_r), ("threshold", threshold)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0 (time constants in 1 ms steps, threshold ϑ in mV), got {value}")
    drive = psp(current, tau_s, impl=impl)
    if impl == "reference":
        return _refractory_reference(drive, float(threshold), float(tau_r), surrogate, scale)
    return _RefractoryScan.apply(drive, float(threshold), float(tau_r), surrogate, scale)
