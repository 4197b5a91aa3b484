"""Convolutional spiking layers over 1–3 spatial axes, with an optional causal kernel over time."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.checks import check_time_major
from spikeforge.functional import events
from spikeforge.functional.layout import to_channels_last, to_time_major
from spikeforge.layers.base import SpikingLayer

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _tuple(v: int | tuple[int, ...], n: int, name: str) -> tuple[int, ...]:
    t = (v,) * n if isinstance(v, int) else tuple(v)
    if len(t) != n:
        raise ValueError(f"{name} needs {n} values (one per spatial axis), got {v!r}")
    return t


def _channels_last_time_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, reach: int, stride: int,
                             padding: int, time_dilation: int, dilation: int) -> torch.Tensor:
    """Causal conv over (time, F) of x `[T, B, C, F]` as one conv2d on the channels-last `[B, C, T + reach, F]`.

    The same sums as on the `[B, C, T, F]` layout the peers use, but oneDNN runs them faster in this one:
    forward + both gradients in 0.86× the time on model A's layer 2, 0.72× on its layer 3
    (benchmarks/EVENT-COSTS.md). The input is laid out once, the time padding included.
    """
    xt = to_channels_last(x, reach)  # [B, C, T + reach, F], C innermost
    y = F.conv2d(xt, weight.contiguous(memory_format=torch.channels_last), bias, (1, stride), (0, padding),
                 (time_dilation, dilation))
    return to_time_major(y)


class SpikingConv(SpikingLayer):
    """Spiking convolution (Algorithm 1, low-activity paper; report §5.3.2): `[T, B, C_in, *S] → [T, B, C_out, *S′]`.

    The kernel spans `time_kernel` steps (dilated by `time_dilation`) and `kernel_size` over
    the spatial axes; time padding is causal, so step n sees inputs ≤ n and the output keeps T
    steps (convolution in time = synaptic delays). The convolution runs once over all steps,
    then the neuron scan. Weight: `[C_out, C_in, time_kernel, *kernel_size]`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        *,
        spatial_dims: int = 2,
        time_kernel: int = 1,
        dilation: int | tuple[int, ...] = 1,
        time_dilation: int = 1,
        stride: int | tuple[int, ...] = 1,
        padding: str | int | tuple[int, ...] = "same",
        lateral: bool = False,
        normalize_threshold: bool = True,
        recurrent: bool = False,
        bias: bool = False,
        **lif_kwargs,
    ) -> None:
        super().__init__(out_channels, lateral=lateral, normalize_threshold=normalize_threshold, recurrent=recurrent, lif_kwargs=lif_kwargs)
        if spatial_dims not in _CONV:
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
        if time_kernel < 1 or time_dilation < 1:
            raise ValueError(f"time_kernel and time_dilation must be ≥ 1, got {time_kernel}, {time_dilation}")
        self.in_channels, self.spatial_dims = in_channels, spatial_dims
        self.kernel_size = _tuple(kernel_size, spatial_dims, "kernel_size")
        self.dilation = _tuple(dilation, spatial_dims, "dilation")
        self.stride = _tuple(stride, spatial_dims, "stride")
        self.time_kernel, self.time_dilation = time_kernel, time_dilation
        if padding == "same":
            if any(s != 1 for s in self.stride):
                raise ValueError("padding='same' needs stride 1; give the padding as integers")
            self.padding = tuple(d * (k - 1) // 2 for k, d in zip(self.kernel_size, self.dilation))
            if any(k % 2 == 0 for k in self.kernel_size):
                raise ValueError(f"padding='same' needs odd spatial kernels, got {self.kernel_size}; give the padding as integers")
        elif padding == "valid":
            self.padding = (0,) * spatial_dims
        else:
            self.padding = _tuple(padding, spatial_dims, "padding")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, time_kernel, *self.kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def current(self, x: torch.Tensor) -> torch.Tensor:
        rank = 3 + self.spatial_dims
        layout = f"[T, B, {self.in_channels}, " + ", ".join(f"S{i}" for i in range(self.spatial_dims)) + "]"
        check_time_major(x, "SpikingConv input", rank, layout, self.weight.dtype)
        if x.shape[2] != self.in_channels:
            raise ValueError(f"SpikingConv input: expected {layout} with {self.in_channels} channels on axis 2, got {tuple(x.shape)}")
        steps, batch = x.shape[:2]
        if self.spatial_dims == 1 and self.stride == (1,):
            y = events.conv_time1d(x, self.weight, self.bias, time_dilation=self.time_dilation,
                                   padding=self.padding[0], dilation=self.dilation[0])
            if y is not None:  # the input was sparse enough for the event-driven path
                return y
        if self.time_kernel == 1:  # no delays: fold time into the batch
            y = _CONV[self.spatial_dims](x.flatten(0, 1), self.weight.squeeze(2), self.bias, self.stride, self.padding, self.dilation)
            return y.view(steps, batch, *y.shape[1:])
        return self._causal_time_conv(x)

    def _causal_time_conv(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution with a kernel over time, left-padded so that output step n sees inputs ≤ n."""
        reach = (self.time_kernel - 1) * self.time_dilation
        if self.spatial_dims == 1:  # channels-last [B, T, F, C]: oneDNN's fastest layout here (`_channels_last_time_conv`)
            return _channels_last_time_conv(x, self.weight, self.bias, reach, self.stride[0], self.padding[0],
                                            self.time_dilation, self.dilation[0])
        if self.spatial_dims == 2:
            xt = x.movedim(0, 2)  # [B, C, T, *S]
            xt = F.pad(xt, (0, 0) * self.spatial_dims + (reach, 0))
            y = F.conv3d(xt, self.weight, self.bias, (1, *self.stride), (0, *self.padding), (self.time_dilation, *self.dilation))
            return y.movedim(2, 0).contiguous()
        # 3 spatial axes + time has no conv4d: sum the time taps, each a conv3d on delayed input.
        steps, batch = x.shape[:2]
        padded = torch.cat([x.new_zeros(reach, *x.shape[1:]), x])
        out = None
        for k in range(self.time_kernel):
            start = k * self.time_dilation
            tap = padded[start : start + steps].flatten(0, 1)
            y = F.conv3d(tap, self.weight[:, :, k], None, self.stride, self.padding, self.dilation)
            out = y if out is None else out + y
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1, 1)
        return out.view(steps, batch, *out.shape[1:])


    def step_current(self, x_t: torch.Tensor, inputs):
        """I[n] from a ring buffer of the last (time_kernel − 1)·time_dilation + 1 inputs: only the kernel's taps are convolved."""
        reach = (self.time_kernel - 1) * self.time_dilation
        if reach == 0:
            return super().step_current(x_t, inputs)
        check_time_major(x_t.unsqueeze(0), "SpikingConv step input", 3 + self.spatial_dims, f"[B, {self.in_channels}, *S] (one step)")
        if inputs is None:  # the inputs before the stream started are zeros (causal padding)
            inputs = {"ring": x_t.new_zeros(2 * (reach + 1), *x_t.shape), "pos": 0}
        ring, pos, size = inputs["ring"], inputs["pos"], reach + 1
        if ring.shape[1:] != x_t.shape:
            raise ValueError(f"SpikingConv.step: input step of shape {tuple(x_t.shape)} differs from the earlier steps' {tuple(ring.shape[1:])}")
        # the ring is kept twice over (slots p and p + size), so the last reach + 1 inputs are always one slice;
        # tap k reads x[n − reach + k·time_dilation]. The buffer is updated in place.
        ring[pos] = x_t
        ring[pos + size] = x_t
        taps = ring[pos + 1 : pos + 1 + size : self.time_dilation]
        if self.spatial_dims < 3:
            conv = _CONV[self.spatial_dims + 1]
            y = conv(taps.movedim(0, 2), self.weight, self.bias, (1, *self.stride), (0, *self.padding), (1, *self.dilation))[:, :, 0]
        else:
            y = sum(F.conv3d(taps[k], self.weight[:, :, k], None, self.stride, self.padding, self.dilation) for k in range(self.time_kernel))
            if self.bias is not None:
                y = y + self.bias.view(1, -1, 1, 1, 1)
        return y, {"ring": ring, "pos": (pos + 1) % size}


class RecurrentPool(SpikingConv):
    """A pool of spiking neurons fed back their own spikes across channels at each position (report §5.4)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, ...], **kwargs) -> None:
        super().__init__(in_channels, out_channels, kernel_size, recurrent=True, **kwargs)
