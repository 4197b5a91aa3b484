"""Input encoders: static batch-major inputs `[B, ...]` or signals `[T, B, D]` to time-major spikes or currents.

- `direct`: the analog input as a current, repeated over T steps.
- `rate`: values in [0, 1] as per-step spike probabilities (Bernoulli) or Poisson rates.
- `ttfs`: time-to-first-spike t⁰ = 1 − I (§2.2, hybrid paper); `ttfs_raster` puts it on a T-step grid.
- `send_on_delta`: event-based sampling with ON/OFF integrate-and-fire neurons and its
  multi-dimensional form (§4.2–4.4, s2net report); `send_on_delta_decode` reconstructs the signal.
"""

from __future__ import annotations

from typing import Literal

import torch

from spikeforge.checks import check_time_major


def _check_static(x: torch.Tensor, name: str) -> None:
    """Raise ValueError unless `x` is a finite floating batch-major tensor `[B, ...]` of rank ≥ 2."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor laid out as [B, ...], got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(
            f"{name}: expected a batch-major static input [B, ...] (rank >= 2), got shape {tuple(x.shape)} "
            f"(rank {x.dim()}); a single sample needs x.unsqueeze(0)"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating tensor [B, ...], got dtype {x.dtype}; use x.float()")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: input [B, ...] of shape {tuple(x.shape)} contains NaN or Inf")


def _check_unit_range(x: torch.Tensor, name: str) -> None:
    """Raise ValueError unless every value of `x` lies in [0, 1]."""
    lo, hi = float(x.detach().min()), float(x.detach().max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name}: values must lie in [0, 1], got range [{lo:g}, {hi:g}]; "
            "normalise first, e.g. (x - x.min()) / (x.max() - x.min())"
        )


def _check_steps(steps: int, name: str) -> None:
    """Raise ValueError unless `steps` is a positive int."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{name}: steps must be a positive int, got {steps!r}")


def direct(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Direct encoding: the analog input `[B, ...]` as a constant current `[T, B, ...]` (a broadcast view)."""
    _check_static(x, "direct")
    _check_steps(steps, "direct")
    return x.unsqueeze(0).expand(steps, *x.shape)


def rate(
    x: torch.Tensor,
    steps: int,
    generator: torch.Generator | None = None,
    kind: Literal["bernoulli", "poisson"] = "bernoulli",
) -> torch.Tensor:
    """Rate encoding of x ∈ [0, 1]: `[T, B, ...]` spikes with mean x per step.

    "bernoulli": one binary spike per step with probability x (variance x(1 − x)).
    "poisson": the spike count per step of a Poisson process of rate x per step (variance x),
    so a step can carry more than one spike.
    """
    _check_static(x, "rate")
    _check_steps(steps, "rate")
    _check_unit_range(x, "rate")
    p = x.detach().unsqueeze(0).expand(steps, *x.shape)
    if kind == "bernoulli":
        return torch.bernoulli(p, generator=generator)
    if kind == "poisson":
        return torch.poisson(p.contiguous(), generator=generator)
    raise ValueError(f"rate: kind must be 'bernoulli' or 'poisson', got {kind!r}")


def ttfs(x: torch.Tensor) -> torch.Tensor:
    """Time-to-first-spike t⁰ = 1 − I for I ∈ [0, 1] (§2.2, hybrid paper): spike times `[B, ...]` in [0, 1]."""
    _check_static(x, "ttfs")
    _check_unit_range(x, "ttfs")
    return 1.0 - x


def ttfs_raster(x: torch.Tensor, steps: int) -> torch.Tensor:
    """One spike per input `[T, B, ...]` at step round(t⁰·(T − 1)), t⁰ = 1 − I (§2.2, hybrid paper)."""
    _check_steps(steps, "ttfs_raster")
    t = ttfs(x)
    index = torch.round(t.detach() * (steps - 1)).long()
    grid = torch.arange(steps, device=x.device).view(steps, *([1] * x.dim()))
    return (grid == index.unsqueeze(0)).to(x.dtype)


def on_off_directions(dim: int, delta: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Directions `[2·dim, dim]` of per-dimension send-on-delta: ON rows +Δ·e_d, then OFF rows −Δ·e_d (§4.3)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"on_off_directions: dim must be a positive int, got {dim!r}")
    if not delta > 0:
        raise ValueError(f"on_off_directions: delta must be > 0, got {delta!r}")
    eye = torch.eye(dim, dtype=dtype) * delta
    return torch.cat([eye, -eye], dim=0)


def _check_directions(directions: torch.Tensor, dim: int, name: str) -> None:
    """Raise ValueError unless `directions` is a finite floating `[n, D]` matrix of non-zero rows."""
    if not isinstance(directions, torch.Tensor) or directions.dim() != 2 or directions.shape[1] != dim:
        shape = tuple(directions.shape) if isinstance(directions, torch.Tensor) else type(directions).__name__
        raise ValueError(f"{name}: directions must be a tensor [n, D] with D = {dim}, got {shape}")
    if not directions.is_floating_point() or not torch.isfinite(directions).all():
        raise ValueError(f"{name}: directions must be finite floats, got dtype {directions.dtype}")
    if (directions.pow(2).sum(1) == 0).any():
        raise ValueError(f"{name}: every direction needs a non-zero norm (its threshold is ‖w_i‖²)")


def send_on_delta(signal: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Multi-dimensional send-on-delta (§4.4, s2net report): signal `[T, B, D]` → spike counts `[T, B, n]`.

    Neuron i has preferred direction w_i (row i of `directions` `[n, D]`), potential
    U_i = ⟨w_i, x − x_ref⟩ (IF neuron driven by ⟨w_i, ẋ⟩), threshold ‖w_i‖² and lateral weights
    −⟨w_j, w_i⟩, so a spike of neuron i moves the reference of every neuron by w_i. The
    reference starts at zero. Within a step, neurons fire one at a time (the one furthest
    above threshold, U_i/‖w_i‖² largest) until none is at or above threshold; each spike
    shrinks ‖x − x_ref‖² by at least ‖w_i‖², so this ends. Afterwards ⟨w_i, x − x_ref⟩ < ‖w_i‖²
    for every i. With `on_off_directions(D, Δ)` this is per-dimension send-on-delta with
    ON/OFF neurons (eqs. 4.1–4.3): |x_d − x_ref,d| < Δ after every step.
    """
    check_time_major(signal, "send_on_delta", 3, "[T, B, D]")
    _check_directions(directions, signal.shape[2], "send_on_delta")
    w = directions.to(signal.dtype)
    thresholds = w.pow(2).sum(1)  # ‖w_i‖², §4.4
    reference = signal.new_zeros(signal.shape[1:])
    counts = signal.new_zeros(*signal.shape[:2], w.shape[0])
    for n in range(signal.shape[0]):
        while True:
            level = (signal[n] - reference) @ w.T / thresholds  # U_i / ‖w_i‖²
            best, i = level.max(dim=1)
            fire = best >= 1.0
            if not fire.any():
                break
            rows = fire.nonzero(as_tuple=True)[0]
            counts[n, rows, i[rows]] += 1.0
            reference[rows] += w[i[rows]]  # lateral reset −⟨w_j, w_i⟩: the reference moves by w_i
    return counts


def send_on_delta_decode(spikes: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Reconstruction x̂[n] = Σ_{m ≤ n} Σ_i S_i[m]·w_i from send-on-delta spikes `[T, B, n]` → `[T, B, D]` (§4.4)."""
    check_time_major(spikes, "send_on_delta_decode", 3, "[T, B, n]")
    if not isinstance(directions, torch.Tensor) or directions.dim() != 2 or directions.shape[0] != spikes.shape[2]:
        shape = tuple(directions.shape) if isinstance(directions, torch.Tensor) else type(directions).__name__
        raise ValueError(
            f"send_on_delta_decode: directions must be [n, D] with n = {spikes.shape[2]} (one row per neuron), got {shape}"
        )
    return torch.cumsum(spikes, dim=0) @ directions.to(spikes.dtype)
