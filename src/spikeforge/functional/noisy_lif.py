"""Noise-based single-step LIF and its conversion to T steps (noise-based faster SNN training paper).

The neuron (eqs. (1)–(3)), with hard reset to V_reset = 0 and V_th = 1 by default:

    H(t) = λ·V(t−1) + I(t)          I(t) = Σ_i w_i·S_i(t)                       eq. (1)
    S(t) = Θ(H(t) − V_th)                                                      eq. (2)
    V(t) = H(t)·(1 − S(t))                                                     eq. (3)

Training runs one step with noise in place of the missing λ·V(t−1) (eq. (5)):
H = N_noise + I, N_noise of mean β in [β − r, β + r] (r = `spread`, default [0, 1]).
Running a trained single-step layer for T steps has three modes:

- ``"ensemble"`` (step 2): every step is eq. (5) with fresh noise; the output is the mean over steps.
- ``"accumulate"`` (step 3, eqs. (6)–(9)): N_noise = N(λ·V(t−1)) + N′, with
  A = λ·V(t−1), Â = (A − μ)/σ, N(λ·V(t−1)) = Â / (α·max|Â|) + β ∈ (β − 1/α, β + 1/α),
  and residual noise N′ of mean 0 in [−(r − 1/α), r − 1/α], so that the sum keeps
  N_noise's mean β and range [β − r, β + r]. α = 1/r leaves no N′ (§3.3, α = 2); α = ∞
  makes the potential term the constant β, i.e. step 2.
- ``"lif"``: the plain LIF of eqs. (1)–(3) (the direct T-step network of §3.2).

Noise enters as an explicit input: `unit_noise` `[T, B, ...]` holds zero-mean draws in
[−1, 1] (see `sample_unit_noise`), scaled here by r (step 2) or r − 1/α (step 3).
"""

from __future__ import annotations

import math

import torch

from spikeforge.functional.lif import lif_scan
from spikeforge.functional.surrogate import check_surrogate, spike_fn

NOISE_KINDS = ("gaussian", "uniform", "none")
MODES = ("ensemble", "accumulate", "lif")
STATS = ("batch", "sample")
#: The Gaussian unit noise has σ = 1/3 and is clipped at ±1 (three standard deviations).
GAUSSIAN_SIGMAS = 3.0


def check_steps(steps: int) -> int:
    """Return `steps` if it is an integer T ≥ 1, else raise ValueError."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"the number of time steps T must be an integer >= 1, got {steps!r}")
    return steps


def residual_halfwidth(alpha: float, spread: float) -> float:
    """Half-width r − 1/α of the residual noise N′ (eq. (6)); raises for α ≤ 0 or α < 1/r."""
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (eq. (9) divides by α·max|Â|), got {alpha}; the paper's default is 4")
    rest = spread - 1.0 / alpha
    if rest < -1e-12:
        raise ValueError(
            f"alpha = {alpha} puts N(λ·V(t−1)) in (β − {1 / alpha:g}, β + {1 / alpha:g}), wider than the training "
            f"noise range β ± {spread:g}; use alpha >= 1/spread = {1 / spread if spread > 0 else math.inf:g} "
            f"(a model trained without noise converts with mode 'ensemble' or 'lif')"
        )
    return max(rest, 0.0)


def sample_unit_noise(
    shape: torch.Size | tuple[int, ...],
    kind: str,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor | None:
    """Zero-mean noise in [−1, 1]: Gaussian (σ = 1/3, clipped at ±1) or uniform; None for kind "none"."""
    if kind == "gaussian":
        z = torch.randn(shape, dtype=dtype, device=device, generator=generator) / GAUSSIAN_SIGMAS
        return z.clamp_(-1.0, 1.0)
    if kind == "uniform":
        return torch.rand(shape, dtype=dtype, device=device, generator=generator).mul_(2.0).sub_(1.0)
    if kind == "none":
        return None
    raise ValueError(f"noise must be one of {NOISE_KINDS}, got {kind!r}")


def normalised_potential(a: torch.Tensor, alpha: float, beta: float, stats: str = "batch") -> torch.Tensor:
    """N(λ·V(t−1)) = Â/(α·max|Â|) + β with Â = (A − μ)/σ, eqs. (7)–(9), statistics per layer.

    `a` is A = λ·V(t−1) of one step, `[B, ...]`. `stats="batch"` takes μ and max|Â| over the
    batch and all units (the default), `"sample"` over the units of each sample. σ cancels:
    Â/max|Â| = (A − μ)/max|A − μ|, so it is not computed. A constant A (e.g. V(0) = 0) and
    α = ∞ give the constant β.
    """
    if stats not in STATS:
        raise ValueError(f"stats must be one of {STATS}, got {stats!r}")
    if math.isinf(alpha):
        return torch.full_like(a, beta)
    dims = tuple(range(a.dim())) if stats == "batch" else tuple(range(1, a.dim()))
    dev = a - a.mean(dim=dims, keepdim=True)  # σ·Â, eq. (8)
    peak = torch.linalg.vector_norm(dev, ord=math.inf, dim=dims, keepdim=True)  # σ·max|Â|
    scale = (peak > 0) / (alpha * peak.clamp_min(torch.finfo(a.dtype).tiny))
    return torch.addcmul(a.new_tensor(beta), dev, scale)  # eq. (9)


def lif_step(current: torch.Tensor, v: torch.Tensor, lam: float, threshold: float, surrogate: str, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of eqs. (1)–(3): H = λ·V + I, S = Θ(H − V_th), V′ = H·(1 − S). Returns (S, V′)."""
    h = lam * v + current  # eq. (1)
    s = spike_fn(h - threshold, surrogate, scale)  # eq. (2)
    return s, h * (1.0 - s)  # eq. (3), V_reset = 0


def _plus_noise(current: torch.Tensor, unit: torch.Tensor | None, mean: float, halfwidth: float) -> torch.Tensor:
    """I + mean + halfwidth·u: the input plus N_noise of eq. (5) (or plus N′ + mean, eq. (6)), u the unit noise."""
    h = current if unit is None or halfwidth == 0.0 else torch.add(current, unit, alpha=halfwidth)
    return h if mean == 0.0 else h + mean


def _check_noise(current: torch.Tensor, unit_noise: torch.Tensor | None) -> None:
    if unit_noise is not None and unit_noise.shape != current.shape:
        raise ValueError(f"unit_noise must have the shape of current {tuple(current.shape)}, got {tuple(unit_noise.shape)}")


def noisy_lif_scan(
    current: torch.Tensor,
    unit_noise: torch.Tensor | None,
    *,
    mode: str = "ensemble",
    beta: float = 0.5,
    spread: float = 0.5,
    alpha: float = 4.0,
    lam: float = 0.5,
    threshold: float = 1.0,
    surrogate: str = "sigmoid",
    scale: float = 4.0,
    stats: str = "batch",
    impl: str = "fused",
) -> torch.Tensor:
    """Spikes `[T, B, ...]` of one noisy LIF layer driven by `current` `[T, B, ...]` in `mode`.

    `unit_noise` (same shape, values in [−1, 1], or None for no noise) is scaled to
    N_noise ∈ [β − r, β + r] (eq. (5)). `impl="reference"` is the plain step loop;
    `"fused"` runs "ensemble" over all steps at once and "lif" with the fused `lif_scan`
    ("accumulate" normalises with statistics of each step, so it is the step loop).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if impl not in ("fused", "reference"):
        raise ValueError(f"impl must be 'fused' or 'reference', got {impl!r}")
    if current.dim() < 3:
        raise ValueError(f"current must be time-major [T, B, C, ...], got shape {tuple(current.shape)}")
    check_steps(current.shape[0])
    check_surrogate(surrogate, scale)
    _check_noise(current, unit_noise)
    if spread < 0:
        raise ValueError(f"spread (half-width of the noise range) must be >= 0, got {spread}")
    if mode == "ensemble":
        return _ensemble(current, unit_noise, beta, spread, threshold, surrogate, scale, impl)
    if mode == "accumulate":
        rest = residual_halfwidth(alpha, spread)
        return _accumulate(current, unit_noise, alpha, beta, rest, lam, threshold, surrogate, scale, stats)
    return _lif(current, lam, threshold, surrogate, scale, impl)


def _ensemble(current, unit_noise, beta, spread, threshold, surrogate, scale, impl):
    """Step 2: H(t) = N_noise(t) + I(t) at every step, independently (eq. (5))."""
    if impl == "fused":
        return spike_fn(_plus_noise(current, unit_noise, beta, spread) - threshold, surrogate, scale)
    steps = []
    for t in range(current.shape[0]):
        u = None if unit_noise is None else unit_noise[t]
        steps.append(spike_fn(_plus_noise(current[t], u, beta, spread) - threshold, surrogate, scale))
    return torch.stack(steps)


def _accumulate(current, unit_noise, alpha, beta, rest, lam, threshold, surrogate, scale, stats):
    """Step 3: H(t) = N(λ·V(t−1)) + N′(t) + I(t), V(t) = H(t)·(1 − S(t)) (eqs. (3), (6)–(9))."""
    v = torch.zeros_like(current[0])
    steps = []
    for t in range(current.shape[0]):
        u = None if unit_noise is None else unit_noise[t]
        h = _plus_noise(current[t], u, 0.0, rest) + normalised_potential(lam * v, alpha, beta, stats)  # eqs. (6), (7)
        s = spike_fn(h - threshold, surrogate, scale)
        v = h * (1.0 - s)  # eq. (3)
        steps.append(s)
    return torch.stack(steps)


def _lif(current, lam, threshold, surrogate, scale, impl):
    """The LIF of eqs. (1)–(3); "fused" is `lif_scan` with a hard reset to zero."""
    if impl == "fused":
        thresholds = current.new_full((current.shape[2],), threshold)
        spikes, _ = lif_scan(current, lam, thresholds, reset="zero", surrogate=surrogate, scale=scale)
        return spikes
    v = torch.zeros_like(current[0])
    steps = []
    for t in range(current.shape[0]):
        s, v = lif_step(current[t], v, lam, threshold, surrogate, scale)
        steps.append(s)
    return torch.stack(steps)
