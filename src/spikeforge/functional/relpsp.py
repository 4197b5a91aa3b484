"""ReL-PSP one-spike neurons: exact spike times (eqs. 2–4, hybrid paper) and STDBP gradients (its ref. [14]).

The membrane potential V_j(t) = Σ_i w_ij K(t − t_i), K(x) = max(x, 0), is piecewise linear in t with
breakpoints at the input spike times. After the earliest inputs (the causal set C) have arrived it is
t·Σ_C w − Σ_C w·t_i, so the first crossing of ϑ is t = (ϑ + Σ_C w_i t_i) / Σ_C w_i: the spike time is found
exactly, event by event, with no time grid.

Layout: one-spike tensors carry spike *times* as values, batch first (`[B, N]`, `[B, C, H, W]`); there is no
time axis because every neuron fires at most once.

Two solvers compute the same times:
- ``"reference"`` sorts every neuron's inputs, takes running sums of w and w·t and picks the first segment
  whose end value reaches ϑ (cost B·N·J element operations);
- ``"fast"`` first proves with a few matrix products that V stays below ϑ until the last input has arrived
  (upper bound P(e_{g+1}) − N(e_g) on each of `bins` time bins, P / N the potentials of the positive /
  negative weights), uses the closed form with all inputs causal there, and runs the reference solver only
  on the neurons it could not prove.
Both are tested equal; gradients likewise have a dense reference and a fast (matmul + sparse) path.

STDBP gradients, where the spike time is differentiable (spec notes):
∂t_j/∂w_ij = (t_i − t_j)/Σ_C w and ∂t_j/∂t_i = w_ij/Σ_C w for i in C (t_i < t_j), zero otherwise.
The denominator is clipped from below at `min_denominator` (default 0.1: a neuron whose causal weights sum to
less than that gets gradients at most 10·|t_i − t_j|), which bounds the exploding gradients of nearly flat
crossings. A neuron that never fires gets the layer's latest time (latest output spike or input spike of its
sample) and, as its surrogate, the same formulas with every input causal, which pushes its weights up.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Impl = Literal["fast", "reference"]
#: Elements per chunk of the row-wise solver (bounds its memory to a few tens of MB).
_CHUNK_ELEMENTS = 1 << 22


def _solve_sorted(ts: Tensor, ws: Tensor, threshold: float) -> Tensor:
    """First crossing of ϑ for P neurons whose input times `ts` [P, N] are sorted, weights `ws` [P, N] (eqs. 2–4).

    Returns the spike times [P], +inf where V never reaches ϑ.
    """
    slope = ws.cumsum(1)  # Σ_C w after each input has arrived
    offset = (ws * ts).cumsum(1)  # Σ_C w·t_i
    # V at the end of each segment [t_(k), t_(k+1)]; after the last input V → ±inf with the sign of the slope.
    v_end = torch.cat(
        [slope[:, :-1] * ts[:, 1:] - offset[:, :-1], torch.where(slope[:, -1:] > 0, torch.inf, -torch.inf)], dim=1
    )
    hit = v_end >= threshold
    fired = hit.any(dim=1)
    k = hit.to(torch.uint8).argmax(dim=1, keepdim=True)  # first segment that reaches ϑ
    slope_k, offset_k, start_k = slope.gather(1, k), offset.gather(1, k), ts.gather(1, k)
    end_k = torch.where(k + 1 < ts.shape[1], ts.gather(1, (k + 1).clamp_max(ts.shape[1] - 1)), torch.inf)
    positive = slope_k > 0
    t = torch.where(positive, (threshold + offset_k) / torch.where(positive, slope_k, 1.0), start_k)
    t = torch.minimum(torch.maximum(t, start_k), end_k).squeeze(1)
    return torch.where(fired, t, torch.inf)


def _solve_pairs(ts: Tensor, order: Tensor, weight_t: Tensor, rows: Tensor, cols: Tensor, threshold: float) -> Tensor:
    """Exact spike times of the neurons (rows[p], cols[p]): sorted input rows `ts`/`order` [R, N], weights [J, N]."""
    out = torch.empty(rows.shape[0], dtype=ts.dtype, device=ts.device)
    step = max(1, _CHUNK_ELEMENTS // max(1, ts.shape[1]))
    for start in range(0, rows.shape[0], step):
        r, c = rows[start : start + step], cols[start : start + step]
        out[start : start + step] = _solve_sorted(ts[r], weight_t[c].gather(1, order[r]), threshold)
    return out


def _solve_reference(t_in: Tensor, weight: Tensor, threshold: float) -> Tensor:
    """Exact spike times [R, J] of every neuron by running sums over its time-sorted inputs (the specification)."""
    ts, order = t_in.sort(dim=1)
    rows = torch.arange(t_in.shape[0], device=t_in.device).repeat_interleave(weight.shape[1])
    cols = torch.arange(weight.shape[1], device=t_in.device).repeat(t_in.shape[0])
    return _solve_pairs(ts, order, weight.t().contiguous(), rows, cols, threshold).view(t_in.shape[0], -1)


def _quiet_until_last_input(t_in: Tensor, weight: Tensor, threshold: float, bins: int) -> Tensor:
    """True where V provably stays below ϑ up to the row's last input time: P(e_{g+1}) − N(e_g) < ϑ on every bin."""
    lo = t_in.min(dim=1, keepdim=True).values
    hi = t_in.max(dim=1, keepdim=True).values
    frac = torch.linspace(0, 1, bins + 1, dtype=t_in.dtype, device=t_in.device)
    edges = lo + (hi - lo) * frac  # [R, G+1]
    edges[:, -1:] = hi
    elapsed = (edges.unsqueeze(2) - t_in.unsqueeze(1)).clamp_min(0)  # K(e − t_i), [R, G+1, N]
    positive = elapsed @ weight.clamp_min(0)  # P(e), nondecreasing in e
    negative = elapsed @ (-weight).clamp_min(0)  # N(e), nondecreasing in e
    bound = positive[:, 1:] - negative[:, :-1]  # ≥ V(t) for t in [e_g, e_{g+1}]
    return (bound < threshold).all(dim=1)


def _solve_fast(t_in: Tensor, weight: Tensor, threshold: float, bins: int) -> Tensor:
    """Exact spike times [R, J]: closed form where all inputs are provably causal, reference solver elsewhere."""
    total = weight.sum(dim=0)  # Σ_i w_ij
    safe_total = torch.where(total > 0, total, torch.ones_like(total))
    t = torch.empty(t_in.shape[0], weight.shape[1], dtype=t_in.dtype, device=t_in.device)
    weight_t = weight.t().contiguous()
    step = max(1, _CHUNK_ELEMENTS // ((bins + 1) * max(t_in.shape[1], weight.shape[1])))
    for start in range(0, t_in.shape[0], step):
        ti = t_in[start : start + step]
        closed = torch.where(total > 0, (threshold + ti @ weight) / safe_total, torch.inf)  # C = all inputs
        quiet = _quiet_until_last_input(ti, weight, threshold, bins)
        rows, cols = (~quiet).nonzero(as_tuple=True)
        if rows.numel():
            ts, order = ti.sort(dim=1)
            closed[rows, cols] = _solve_pairs(ts, order, weight_t, rows, cols, threshold)
        t[start : start + step] = closed
    return t


class _STDBP(torch.autograd.Function):
    """Passes solved spike times through; backward applies the STDBP gradients (ref. [14] of the hybrid paper)."""

    @staticmethod
    def forward(ctx, t_in: Tensor, weight: Tensor, t_out: Tensor, fired: Tensor, min_denominator: float, impl: str):
        ctx.save_for_backward(t_in, weight, t_out, fired)
        ctx.min_denominator = min_denominator
        ctx.impl = impl
        return t_out.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        t_in, weight, t_out, fired = ctx.saved_tensors
        fn = _stdbp_backward_reference if ctx.impl == "reference" else _stdbp_backward_fast
        grad_t_in, grad_weight = fn(t_in, weight, t_out, fired, grad, ctx.min_denominator)
        return grad_t_in, grad_weight, None, None, None, None


def _stdbp_backward_reference(t_in, weight, t_out, fired, grad, min_denominator):
    """Dense STDBP gradients with the causal mask [R, N, J] written out (the specification)."""
    causal = (t_in.unsqueeze(2) < t_out.unsqueeze(1)) | ~fired.unsqueeze(1)  # i ∈ C_j
    denominator = (causal * weight.unsqueeze(0)).sum(dim=1).clamp_min(min_denominator)
    a = grad / denominator
    grad_weight = torch.einsum("rnj,rj,rnj->nj", causal.to(t_in.dtype), a, t_in.unsqueeze(2) - t_out.unsqueeze(1))
    grad_t_in = torch.einsum("rnj,rj,nj->rn", causal.to(t_in.dtype), a, weight)
    return grad_t_in, grad_weight


def _stdbp_backward_fast(t_in, weight, t_out, fired, grad, min_denominator):
    """STDBP gradients as matrix products where every input is causal, plus a sparse correction elsewhere."""
    all_causal = ~fired | (t_out > t_in.max(dim=1, keepdim=True).values)
    rows, cols = (~all_causal).nonzero(as_tuple=True)
    t_pairs, w_pairs, out_pairs = t_in[rows], weight.t()[cols], t_out[rows, cols].unsqueeze(1)
    causal_pairs = (t_pairs < out_pairs).to(t_in.dtype)
    denominator = weight.sum(dim=0).expand_as(t_out).clone()
    denominator[rows, cols] = (causal_pairs * w_pairs).sum(dim=1)
    a = grad / denominator.clamp_min(min_denominator)
    a_full = torch.where(all_causal, a, torch.zeros_like(a))
    grad_weight = t_in.t() @ a_full - (a_full * t_out).sum(dim=0)
    grad_t_in = a_full @ weight.t()
    a_pairs = a[rows, cols].unsqueeze(1) * causal_pairs
    grad_weight.index_add_(1, cols, (a_pairs * (t_pairs - out_pairs)).t())
    grad_t_in.index_add_(0, rows, a_pairs * w_pairs)
    return grad_t_in, grad_weight


def relpsp_spike_times(
    t_in: Tensor,
    weight: Tensor,
    threshold: float = 1.0,
    min_denominator: float = 0.1,
    impl: Impl = "fast",
    bins: int = 16,
) -> tuple[Tensor, Tensor]:
    """Exact ReL-PSP spike times (eqs. 2–4, hybrid paper) with STDBP gradients.

    `t_in` [B, N] (or [B, L, N]: L neurons per sample sharing the weights, as in a convolution) holds input
    spike times, `weight` [N, J] the weights w_ij. Returns `(t_out, fired)`, both [B, J] (or [B, L, J]):
    spike times, and whether V reached ϑ; silent neurons get the sample's latest time (never NaN or inf).
    """
    if impl not in ("fast", "reference"):
        raise ValueError(f"relpsp: impl must be 'fast' or 'reference', got {impl!r}")
    if t_in.dim() not in (2, 3) or weight.dim() != 2 or t_in.shape[-1] != weight.shape[0]:
        raise ValueError(
            f"relpsp: expected input times [B, N] or [B, L, N] and weights [N, J], got {tuple(t_in.shape)} "
            f"and {tuple(weight.shape)}"
        )
    if not torch.isfinite(t_in).all():
        raise ValueError("relpsp: input spike times contain NaN or inf; every input neuron must spike once")
    if threshold <= 0 or min_denominator <= 0:
        raise ValueError(f"relpsp: threshold and min_denominator must be > 0, got {threshold} and {min_denominator}")
    batch = t_in.shape[0]
    flat = t_in.reshape(-1, t_in.shape[-1])
    with torch.no_grad():
        solve = _solve_reference if impl == "reference" else lambda t, w, th: _solve_fast(t, w, th, bins)
        t_raw = solve(flat.detach(), weight.detach(), threshold)
        fired = torch.isfinite(t_raw)
        per_sample = t_raw.view(batch, -1)
        latest_out = torch.where(fired.view(batch, -1), per_sample, -torch.inf).amax(dim=1)
        latest = torch.maximum(latest_out, t_in.detach().reshape(batch, -1).amax(dim=1))  # the layer's latest time
        rows_per_sample = flat.shape[0] // batch
        t_assigned = torch.where(fired, t_raw, latest.repeat_interleave(rows_per_sample).unsqueeze(1))
    t_out = _STDBP.apply(flat, weight, t_assigned, fired, min_denominator, impl)
    shape = (*t_in.shape[:-1], weight.shape[1])
    return t_out.view(shape), fired.view(shape)


def relpsp_conv2d(
    t_in: Tensor,
    weight: Tensor,
    stride: int = 1,
    padding: int = 0,
    pad_time: float = 1.0,
    threshold: float = 1.0,
    min_denominator: float = 0.1,
    impl: Impl = "fast",
) -> tuple[Tensor, Tensor]:
    """Convolutional ReL-PSP layer on spike times [B, C, H, W] with weights [C_out, C, k, k] (eqs. 2–4).

    Padding inserts input spikes at `pad_time`, the time that codes activation 0 at this layer's input (the ANN's
    zero padding), so weight sums and the conversion stay exact at the borders. Returns `(t_out, fired)`.
    """
    if t_in.dim() != 4 or weight.dim() != 4 or t_in.shape[1] != weight.shape[1]:
        raise ValueError(
            f"relpsp_conv2d: expected spike times [B, C, H, W] and weights [C_out, C, k, k] with matching C, "
            f"got {tuple(t_in.shape)} and {tuple(weight.shape)}"
        )
    if padding:
        t_in = F.pad(t_in, (padding,) * 4, value=pad_time)
    kh, kw = weight.shape[2:]
    h_out = (t_in.shape[2] - kh) // stride + 1
    w_out = (t_in.shape[3] - kw) // stride + 1
    patches = F.unfold(t_in, (kh, kw), stride=stride).transpose(1, 2)  # [B, L, C·k·k]
    t_out, fired = relpsp_spike_times(patches, weight.flatten(1).t(), threshold, min_denominator, impl)
    shape = (t_in.shape[0], weight.shape[0], h_out, w_out)
    return t_out.transpose(1, 2).reshape(shape), fired.transpose(1, 2).reshape(shape)


def min_pool2d(t: Tensor, kernel_size: int) -> Tensor:
    """Min-pooling on spike times [B, C, H, W]: the first spike of each window (the SNN image of max-pooling)."""
    return -F.max_pool2d(-t, kernel_size)


def force_firing(t: Tensor, latest: float) -> Tensor:
    """FF(t) = min(t, c_l): fire at the latest at the time c_l that codes activation 0 (eq. 8, hybrid paper: c_l = l + 1)."""
    return torch.clamp(t, max=float(latest))
