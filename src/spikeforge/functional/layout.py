"""Layout changes between the spiking layers' time-major `[T, B, C, F]` and oneDNN's channels-last `[B, C, T, F]`.

oneDNN runs the causal time convolutions fastest on channels-last tensors (memory `[B, T, F, C]`),
and the neuron scans read time-major ones; a change between the two swaps the two inner axes of
every (b, t). PyTorch's strided `copy_` does that element by element; the compiled kernel below
took 7–9 ms against PyTorch's 13–20 ms for model A's `[32, 100, 64, 40]` (one thread), and 20–40 ms
less per conv layer in the input gradient, whose batch chunks PyTorch copied slowest (3–6 % of a
model A train step). The autograd functions send the gradients back through the same kernel. Plain
copies: the values are bit for bit those of `permute(...).contiguous()`.
"""

from __future__ import annotations

import torch

from spikeforge.functional.lif_cpu import torch_thread_budget

try:
    from numba import njit, prange
except ImportError:  # pragma: no cover - numba comes with librosa; PyTorch's copy is the fallback
    njit = None

if njit is not None:

    @njit(parallel=True, cache=True)
    def _swap_inner_axes(src, dst):
        """dst[i, j, m, k] = src[i, j, k, m] for 4-D arrays of any strides."""
        n0, n1, n2, n3 = src.shape
        for ij in prange(n0 * n1):
            i = ij // n1
            j = ij - i * n1
            for k in range(n2):
                for m in range(n3):
                    dst[i, j, m, k] = src[i, j, k, m]


def swap_inner_axes(src: torch.Tensor, dst: torch.Tensor) -> None:
    """dst[i, j, m, k] = src[i, j, k, m] for 4-D tensors of any strides (dst must not overlap src)."""
    if njit is not None and src.device.type == dst.device.type == "cpu" and src.dtype == dst.dtype in (torch.float32, torch.float64):
        with torch_thread_budget():
            _swap_inner_axes(src.detach().numpy(), dst.detach().numpy())
    else:
        dst.copy_(src.transpose(2, 3))


def channels_last_copy(x: torch.Tensor, reach: int = 0) -> torch.Tensor:
    """x `[T, B, C, F]` → `[B, C, reach + T, F]` in channels-last memory, `reach` zero steps in front (no autograd)."""
    steps, batch, channels, width = x.shape
    out = x.new_empty(batch, reach + steps, width, channels)  # memory of a channels-last [B, C, reach + T, F]
    out[:, :reach] = 0
    swap_inner_axes(x.transpose(0, 1), out[:, reach:])
    return out.permute(0, 3, 1, 2)


def time_major_copy(y: torch.Tensor, reach: int = 0, out: torch.Tensor | None = None) -> torch.Tensor:
    """y `[B, C, reach + T, F]` (any memory format) without its first `reach` steps → `[T, B, C, F]`, written into
    `out` when given (no autograd)."""
    batch, channels, padded, width = y.shape
    if out is None:
        out = y.new_empty(padded - reach, batch, channels, width)
    swap_inner_axes(y.permute(0, 2, 3, 1)[:, reach:], out.transpose(0, 1))
    return out


class _ToChannelsLast(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, reach):
        ctx.reach = reach
        return channels_last_copy(x, reach)

    @staticmethod
    def backward(ctx, g):
        return time_major_copy(g, ctx.reach), None


class _ToTimeMajor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y):
        return time_major_copy(y)

    @staticmethod
    def backward(ctx, g):
        return channels_last_copy(g)


def to_channels_last(x: torch.Tensor, reach: int = 0) -> torch.Tensor:
    """x `[T, B, C, F]` → `[B, C, reach + T, F]` in channels-last memory, `reach` zero steps in front (causal padding)."""
    return _ToChannelsLast.apply(x, reach)


def to_time_major(y: torch.Tensor) -> torch.Tensor:
    """y `[B, C, T, F]` (any memory format) → contiguous `[T, B, C, F]`."""
    return _ToTimeMajor.apply(y)
