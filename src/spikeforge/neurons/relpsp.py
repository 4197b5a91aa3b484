"""ReL-PSP one-spike layers and the network that chains them (eqs. 2–4 and 8, hybrid paper).

Layers map input spike times to output spike times (`(t_out, fired)`); `ReLPSPNetwork` encodes intensities with
time-to-first-spike (§2.2), optionally runs an analog stem first (the C2F3 note: the first conv layer stays
analog and becomes part of the preprocessing), applies force firing (eq. 8) and counts silent neurons.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spikeforge.functional.encoders import ttfs
from spikeforge.functional.relpsp import Impl, force_firing, min_pool2d, relpsp_conv2d, relpsp_spike_times


class ReLPSPLinear(nn.Module):
    """Fully connected ReL-PSP layer (eqs. 2–4): weight [out, in]; `layer` is its index l (input layer = 0)."""

    def __init__(self, in_features: int, out_features: int, layer: int, threshold: float = 1.0,
                 min_denominator: float = 0.1, impl: Impl = "fast") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.layer, self.threshold, self.min_denominator, self.impl = layer, threshold, min_denominator, impl

    def forward(self, t: Tensor) -> tuple[Tensor, Tensor]:
        if t.dim() != 2 or t.shape[1] != self.weight.shape[1]:
            raise ValueError(f"layer {self.layer} (ReLPSPLinear): expected spike times [B, {self.weight.shape[1]}], got {tuple(t.shape)}")
        return relpsp_spike_times(t, self.weight.t(), self.threshold, self.min_denominator, self.impl)


class ReLPSPConv2d(nn.Module):
    """Convolutional ReL-PSP layer (eqs. 2–4); zero padding becomes input spikes at t = l, the time coding 0."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, layer: int, stride: int = 1,
                 padding: int = 0, threshold: float = 1.0, min_denominator: float = 0.1, impl: Impl = "fast") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.layer, self.stride, self.padding = layer, stride, padding
        self.threshold, self.min_denominator, self.impl = threshold, min_denominator, impl

    def forward(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return relpsp_conv2d(t, self.weight, self.stride, self.padding, float(self.layer), self.threshold,
                             self.min_denominator, self.impl)


class MinPool2d(nn.Module):
    """Min-pooling on spike times (the SNN image of the ANN's max-pooling, §3.1)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, t: Tensor) -> Tensor:
        return min_pool2d(t, self.kernel_size)


class ReLPSPNetwork(nn.Module):
    """One-spike SNN: intensities [B, ...] in [0, 1] → output spike times [B, classes]; the earliest spike wins.

    `analog` (optional) maps the raw input to intensities, clipped to [0, 1] before the TTFS encoding.
    `force_firing` applies FF(t) = min(t, l + 1) after every hidden spiking layer l (eq. 8).
    """

    def __init__(self, layers: list[nn.Module], force_firing: bool = True, analog: nn.Module | None = None) -> None:
        super().__init__()
        self.analog = analog
        self.layers = nn.ModuleList(layers)
        self.force_firing = force_firing
        self.output_reduction = "spike_time"

    def run(self, x: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Output spike times [B, classes] and per-layer statistics: silent (never fired) and force-fired fractions."""
        if self.analog is not None:
            x = self.analog(x).clamp(0.0, 1.0)
        t = ttfs(x)
        stats: dict[str, float] = {}
        spiking = [m for m in self.layers if isinstance(m, (ReLPSPLinear, ReLPSPConv2d))]
        last = spiking[-1] if spiking else None
        for module in self.layers:
            if isinstance(module, (ReLPSPLinear, ReLPSPConv2d)):
                t, fired = module(t)
                stats[f"silent/layer{module.layer}"] = 1.0 - fired.float().mean().item()
                if self.force_firing and module is not last:
                    bound = module.layer + 1
                    stats[f"forced/layer{module.layer}"] = (t.detach() > bound).float().mean().item()
                    t = force_firing(t, module.layer)
            else:
                t = module(t)
        return t, stats

    def forward(self, x: Tensor, stats: bool = False) -> Tensor | tuple[Tensor, dict[str, float]]:
        """Output spike times (with `stats`: and the statistics of `run`)."""
        return self.run(x) if stats else self.run(x)[0]
