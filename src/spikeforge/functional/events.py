"""Event-driven synaptic currents: I = W·S from the nonzero inputs only, exact against the dense result.

`sparse_rows(x)` turns a sparse input (spikes) into compressed rows, or says that the dense
kernels are the better choice (not on the CPU, not float, or denser than where the events pay).
`linear` and `conv_time1d` then compute the forward pass and the weight gradient from the
events (`functional.events_cpu`); the gradient to the input, gI·W, is dense whatever the
input, so it stays with BLAS / oneDNN. A linear layer with few outputs (a classifier's last
layer) has break-even densities of its own, runs on dense kernels of its own where its input is
denser, and takes its input gradient from one of them: MKL's skinny products are slow.
Backward keeps the compressed rows, not the dense input: a spike tensor costs a few bytes per
event instead of 4 per neuron-step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from spikeforge.functional import compress_cpu, events_cpu
from spikeforge.functional.layout import channels_last_copy, time_major_copy
from spikeforge.functional.lif_cpu import torch_thread_budget

#: Largest fraction of nonzero inputs for which the event path is used, per synapse kind: (where the
#: weight gradient will be computed: training, where it will not: inference). The event kernels' cost
#: grows with the density, the dense kernels' does not. Measured on one thread in two runs on a shared
#: machine (benchmarks/EVENT-COSTS.md, `benchmarks/event_costs.py`): model A's conv layers broke even at
#: 40–60 % nonzero in the forward pass and above 70 % with the weight gradient; model B's linear layer at
#: 35–50 % and 30–40 % (again after the 8-lane compression: 40–50 % and 30–40 %); a narrow layer (model B's
#: 256 → 11 output layer, against its dense kernels) at 10 % with the weight gradient and 8 % without.
BREAK_EVEN = {"conv": (0.7, 0.45), "linear": (0.35, 0.4), "narrow": (0.1, 0.07)}
#: A cap on every break-even density: 0 turns the event path off everywhere.
MAX_DENSITY = 1.0
#: A linear layer with fewer outputs than this is narrow (a classifier's last layer): its own break-even densities,
#: and dense kernels of their own where the input is denser (`_NarrowLinear`) and for its input gradient, where
#: MKL's skinny products run far below its rate (a 256 → 11 layer over 19 200 rows: forward by MKL 5 ms, its
#: gradients 3–7 ms each on one core).
LINEAR_MIN_OUTPUTS = 32
#: Inputs are compressed in this many parts of their rows (in parallel).
ROW_PARTS = 8
#: The weight gradient is summed in up to this many independent row chunks (parallel work),
#: within this much accumulator memory.
WEIGHT_GRAD_CHUNKS, ACCUMULATOR_BYTES = 8, 32 * 2**20
#: The input gradient of a convolution is computed for as many samples at once as fit in this
#: much: oneDNN's layout copies of the whole batch made model A's training peak 271 MiB, chunks
#: of 16 MiB 192 MiB, of 2–4 MiB 165 MiB (then the forward pass sets the peak), at the same speed.
DGRAD_CHUNK_BYTES = 2 * 2**20


@dataclass(frozen=True)
class Rows:
    """Compressed rows of a `[rows, width]` view of an input: the nonzero entries of row m are at indptr[m]:indptr[m+1]."""

    indptr: torch.Tensor
    indices: torch.Tensor
    values: torch.Tensor


def break_even_density(weight: torch.Tensor, kind: str) -> float:
    """The largest input density for which the event path pays in this call of a `kind` synapse: with or without the weight gradient."""
    if kind == "linear" and weight.shape[0] < LINEAR_MIN_OUTPUTS:
        kind = "narrow"
    training, inference = BREAK_EVEN[kind]
    return min(MAX_DENSITY, training if torch.is_grad_enabled() and weight.requires_grad else inference)


def sparse_rows(x: torch.Tensor, rows: int, max_density: float) -> Rows | None:
    """Compressed rows of `x` viewed `[rows, -1]` when the event path applies and pays, else None.

    One pass over x, in `ROW_PARTS` parts of the rows, each with room for `max_density` of its
    entries and two rows more; an input denser than that (or a part denser than
    its room) goes to the dense kernels.
    """
    return _compress(x, lambda flat: flat.reshape(rows, 1, -1), max_density)


def sparse_positions(x: torch.Tensor, max_density: float) -> Rows | None:
    """Compressed rows of the channels at every position of x `[T, B, C, F]`: row (t·B + b)·F + f lists the active c.

    The layout the convolution's forward pass sums over (`events_cpu.conv_forward`); read from x as it
    is (no transposed copy). Otherwise as `sparse_rows`.
    """
    return _compress(x, lambda flat: flat.reshape(-1, *flat.shape[2:]).transpose(0, 2, 1), max_density)


def _compress(x: torch.Tensor, view, max_density: float) -> Rows | None:
    """`events_cpu.compress_rows` on `view(x as NumPy)` `[M, A, K]` (rows m·A + a of K entries) if the event path applies."""
    if not (events_cpu.available and max_density > 0 and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64) and x.numel() > 0):
        return None
    grid = view(x.detach().contiguous().numpy())
    rows, width = grid.shape[0] * grid.shape[1], grid.shape[2]
    parts = min(ROW_PARTS, rows)
    capacity = int(max_density * x.numel() / parts) + 2 * width + 1  # + a row: parts differ by one; + a row: headroom
    counts = np.empty(rows, np.int64)
    indices = np.empty(parts * capacity, np.int32)
    values = np.empty(parts * capacity, grid.dtype)
    filled = np.empty(parts, np.int64)
    groups = compress_cpu.vector_groups(grid)
    flat = grid.reshape(-1) if groups else np.empty(0, grid.dtype)
    with torch_thread_budget():
        events_cpu.compress_rows(grid, flat, groups, parts, capacity, counts, indices, values, filled)
    if (filled < 0).any() or filled.sum() > max_density * x.numel():
        return None
    indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    keep = [slice(p * capacity, p * capacity + filled[p]) for p in range(parts)]
    return Rows(torch.from_numpy(indptr), torch.from_numpy(np.concatenate([indices[k] for k in keep])),
                torch.from_numpy(np.concatenate([values[k] for k in keep])))


def _weight_grad_parts(shape, dtype) -> torch.Tensor:
    """Private accumulators (the kernel fills them, in parallel) for a weight gradient of `shape`.

    Their number depends on the shape only, not on the thread count, so the summation order and
    hence the result are the same on any number of threads (runs stay reproducible).
    """
    size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    return torch.empty((max(1, min(WEIGHT_GRAD_CHUNKS, ACCUMULATOR_BYTES // size)), *shape), dtype=dtype)


def _sum_parts(parts: torch.Tensor) -> torch.Tensor:
    """Σ over the accumulators of `_weight_grad_parts`, in their order (the same bits on any thread count)."""
    out = parts.new_empty(parts.shape[1:])
    events_cpu.sum_chunks(parts.view(parts.shape[0], -1).numpy(), out.view(-1).numpy())
    return out


def _input_grad(g2: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """dS = gI·W for gI `[rows, out]`: BLAS, or `events_cpu.narrow_input_grad` for a narrow layer (fewer than LINEAR_MIN_OUTPUTS outputs)."""
    if weight.shape[0] >= LINEAR_MIN_OUTPUTS:
        return g2 @ weight
    g_x = torch.empty(g2.shape[0], weight.shape[1], dtype=g2.dtype)
    with torch_thread_budget():
        events_cpu.narrow_input_grad(g2.numpy(), weight.detach().contiguous().numpy(), g_x.numpy())
    return g_x


class _EventLinear(torch.autograd.Function):
    """I[m] = W·S[m] (+ bias) from compressed rows; backward: dS = gI·W (dense), dW = gIᵀ·S from the events."""

    @staticmethod
    def forward(ctx, x, weight, bias, indptr, indices, values):
        out = torch.empty(*x.shape[:-1], weight.shape[0], dtype=x.dtype)  # not a view: a LIF scan may overwrite it
        with torch_thread_budget():
            events_cpu.linear_forward(indptr.numpy(), indices.numpy(), values.numpy(),
                                      weight.detach().t().contiguous().view(-1).numpy(), out.view(-1).numpy())
        if bias is not None:
            out += bias.detach()
        ctx.in_shape = x.shape
        ctx.save_for_backward(weight, indptr, indices, values)
        return out

    @staticmethod
    def backward(ctx, g_out):
        weight, indptr, indices, values = ctx.saved_tensors
        g2 = g_out.reshape(-1, weight.shape[0]).contiguous()
        g_x = _input_grad(g2, weight).view(ctx.in_shape) if ctx.needs_input_grad[0] else None
        g_w = g_b = None
        if ctx.needs_input_grad[1]:
            parts = _weight_grad_parts((weight.shape[1], weight.shape[0]), g2.dtype)
            with torch_thread_budget():
                events_cpu.linear_weight_grad(indptr.numpy(), indices.numpy(), values.numpy(), g2.numpy(), parts.numpy())
                g_w = _sum_parts(parts).t()
        if ctx.needs_input_grad[2]:
            g_b = g2.sum(0)
        return g_x, g_w, g_b, None, None, None


class _NarrowLinear(torch.autograd.Function):
    """I = x·Wᵀ (+ bias) for a layer with few outputs, dense: forward by BLAS, backward on `events_cpu.narrow_*`."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        x2 = x.detach().reshape(-1, x.shape[-1]).contiguous()
        out = F.linear(x2, weight.detach(), None if bias is None else bias.detach())
        ctx.in_shape = x.shape
        ctx.save_for_backward(x2, weight)
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, g_out):
        x2, weight = ctx.saved_tensors
        g2 = g_out.reshape(-1, weight.shape[0]).contiguous()
        g_x = _input_grad(g2, weight).view(ctx.in_shape) if ctx.needs_input_grad[0] else None
        g_w = g_b = None
        if ctx.needs_input_grad[1]:
            parts = _weight_grad_parts(tuple(weight.shape), g2.dtype)
            with torch_thread_budget():
                events_cpu.narrow_weight_grad(g2.numpy(), x2.numpy(), parts.numpy())
                g_w = _sum_parts(parts)
        if ctx.needs_input_grad[2]:
            g_b = g2.sum(0)
        return g_x, g_w, g_b


def _narrow(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `linear` takes the dense narrow-layer kernels: a CPU float layer with fewer than LINEAR_MIN_OUTPUTS outputs."""
    return (events_cpu.available and weight.shape[0] < LINEAR_MIN_OUTPUTS and x.device.type == weight.device.type == "cpu"
            and x.dtype == weight.dtype and x.dtype in (torch.float32, torch.float64) and x.numel() > 0)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           check_finite: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)` for x `[..., in]`, event-driven where x is sparse enough (`sparse_rows`), else on
    the narrow-layer kernels where the layer has fewer than LINEAR_MIN_OUTPUTS outputs.

    `check_finite`, if given, is called with x, or with its compressed nonzero entries where the events are taken
    (the same NaN/Inf verdict from a few percent of the values).
    """
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    csr = sparse_rows(x, rows, break_even_density(weight, "linear")) if weight.dtype == x.dtype and rows else None
    if check_finite is not None:
        check_finite(x if csr is None else csr.values)
    if csr is not None:
        return _EventLinear.apply(x, weight, bias, csr.indptr, csr.indices, csr.values)
    if _narrow(x, weight):
        return _NarrowLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)


class _EventConvTime1d(torch.autograd.Function):
    """Causal time × 1-D convolution `[T, B, C_in, F] → [T, B, C_out, F_out]` from compressed rows (stride 1)."""

    @staticmethod
    def forward(ctx, x, weight, bias, indptr, indices, values, geometry):
        steps, batch, _, width = x.shape
        reach, time_dilation, pad, dilation = geometry
        f_out = width + 2 * pad - dilation * (weight.shape[3] - 1)
        out = torch.empty(steps, batch, weight.shape[0], f_out, dtype=x.dtype)  # not a view: a LIF scan may overwrite it
        weight_t = weight.detach().permute(2, 3, 1, 0).contiguous()  # [KT, KF, C_in, C_out]
        with torch_thread_budget():
            events_cpu.conv_forward(indptr.numpy(), indices.numpy(), values.numpy(), weight_t.view(-1).numpy(),
                                    tuple(weight.shape[2:]), weight.shape[1], batch, width, reach, time_dilation, pad,
                                    dilation, out.view(steps * batch, *out.shape[2:]).numpy())
        if bias is not None:
            out += bias.detach().view(-1, 1)
        ctx.in_shape, ctx.geometry = x.shape, geometry
        ctx.save_for_backward(weight, indptr, indices, values)
        return out

    @staticmethod
    def backward(ctx, g_out):
        weight, indptr, indices, values = ctx.saved_tensors
        steps, batch, c_in, width = ctx.in_shape
        reach, time_dilation, pad, dilation = ctx.geometry
        g_out = g_out.contiguous()
        g_x = g_w = g_b = None
        if ctx.needs_input_grad[0]:  # the transposed convolution of the dense gI, on the causally padded input
            g_x = torch.empty(ctx.in_shape, dtype=g_out.dtype)
            per_sample = c_in * (reach + steps) * width * g_out.element_size()
            chunk = max(1, DGRAD_CHUNK_BYTES // per_sample)
            weight_cl = weight.contiguous(memory_format=torch.channels_last)
            for b0 in range(0, batch, chunk):  # in batch chunks: oneDNN's layout copies stay small
                b1 = min(batch, b0 + chunk)
                g_chunk = channels_last_copy(g_out[:, b0:b1])  # as the dense path
                g_pad = torch.nn.grad.conv2d_input((b1 - b0, c_in, reach + steps, width), weight_cl, g_chunk,
                                                   padding=(0, pad), dilation=(time_dilation, dilation))
                time_major_copy(g_pad, reach, out=g_x[:, b0:b1])
        if ctx.needs_input_grad[1]:
            channel_ptr = np.empty(steps * batch * c_in + 1, np.int64)
            positions, channel_values = np.empty_like(indices.numpy()), np.empty_like(values.numpy())
            parts = _weight_grad_parts((*weight.shape[2:], c_in, weight.shape[0]), g_out.dtype)
            with torch_thread_budget():
                events_cpu.positions_to_channels(indptr.numpy(), indices.numpy(), values.numpy(), width, c_in,
                                                 channel_ptr, positions, channel_values)
                events_cpu.conv_weight_grad(channel_ptr, positions, channel_values,
                                            g_out.view(steps * batch, *g_out.shape[2:]).numpy(), batch,
                                            reach, time_dilation, pad, dilation, parts.numpy())
                g_w = _sum_parts(parts).permute(3, 2, 0, 1)
        if ctx.needs_input_grad[2]:
            g_b = g_out.sum((0, 1, 3))
        return g_x, g_w, g_b, None, None, None, None


def conv_time1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, time_dilation: int,
                padding: int, dilation: int) -> torch.Tensor | None:
    """Causal conv over (time, one spatial axis) of x `[T, B, C_in, F]` with weight `[C_out, C_in, KT, KF]`, stride 1.

    out[t, :, f] = Σ W[:, :, kt, kf]·x[t − (KT − 1)·dt + kt·dt, :, f + kf·df − padding] (Algorithm 1,
    low-activity paper). Event-driven where x is sparse enough (`break_even_density`); None where it
    is not (the caller then runs its dense convolution).
    """
    csr = sparse_positions(x, break_even_density(weight, "conv")) if weight.dtype == x.dtype else None
    if csr is None:
        return None
    reach = (weight.shape[2] - 1) * time_dilation
    return _EventConvTime1d.apply(x, weight, bias, csr.indptr, csr.indices, csr.values,
                                  (reach, time_dilation, padding, dilation))
