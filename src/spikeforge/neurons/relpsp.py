"""ReL-PSP one-spike layers and the network that chains them (eqs. 2–4 and 8, hybrid paper).

Layers map input spike times to output spike times (`(t_out, fired)`); `ReLPSPNetwork` encodes intensities with
time-to-first-spike (§2.2), optionally runs an analog stem first (the C2F3 note: the first conv layer stays
analog and becomes part of the preprocessing), applies force firing (eq. 8) and counts silent neurons.

Time windows. Layer l's input codes activation x as t = c_{l−1} − x (`zero_time` = c_{l−1}; c_0 = 1, the TTFS
window's end). With Σ_i w_ij = 1 and every input arrived before the neuron fires (the full contribution property),
eq. (6) gives t_j = ϑ_l + Σ_i w_ij t_i = (c_{l−1} + ϑ_l) − u_j, so layer l codes its own activations against
c_l = c_{l−1} + ϑ_l, and the property holds for every u_j ≤ ϑ_l. The paper takes ϑ_l = 1 (c_l = l + 1, windows
[l, l + 1]); a larger ϑ_l widens layer l's window to fit larger activations (`set_thresholds`). Likewise an
analog stem's outputs are coded over an input window [0, c_0] (t⁰ = c_0 − I), c_0 = 1 in the paper, so that
intensities above 1 need not be clipped.
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
        self.zero_time = float(layer)  # c_{l−1}: the input time that codes activation 0

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
        self.zero_time = float(layer)  # c_{l−1}: the input time that codes activation 0 (and the padding's time)

    def forward(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return relpsp_conv2d(t, self.weight, self.stride, self.padding, self.zero_time, self.threshold,
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

    `analog` (optional) maps the raw input to intensities, clipped to [0, c_0] before the TTFS encoding (c_0 = 1 unless
    `set_thresholds` widened it).
    `force_firing` applies FF(t) = min(t, c_l) after every hidden spiking layer l (eq. 8; c_l = l + 1 with ϑ = 1).
    """

    def __init__(self, layers: list[nn.Module], force_firing: bool = True, analog: nn.Module | None = None) -> None:
        super().__init__()
        self.analog = analog
        self.layers = nn.ModuleList(layers)
        self.force_firing = force_firing
        self.input_window = 1.0  # c_0
        self.output_reduction = "spike_time"

    def run(self, x: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Output spike times [B, classes] and per-layer statistics: silent (never fired) and force-fired fractions."""
        if self.analog is not None:
            t = self.input_window - self.analog(x).clamp(0.0, self.input_window)  # TTFS over [0, c_0] (§2.2: c_0 = 1)
        else:
            t = ttfs(x)
        stats: dict[str, float] = {}
        spiking = self.spiking_layers()
        last = spiking[-1] if spiking else None
        for module in self.layers:
            if isinstance(module, (ReLPSPLinear, ReLPSPConv2d)):
                t, fired = module(t)
                stats[f"silent/layer{module.layer}"] = 1.0 - fired.float().mean().item()
                if self.force_firing and module is not last:
                    latest = module.zero_time + module.threshold  # c_l
                    stats[f"forced/layer{module.layer}"] = (t.detach() > latest).float().mean().item()
                    t = force_firing(t, latest)
            else:
                t = module(t)
        return t, stats

    def spiking_layers(self) -> list[nn.Module]:
        """The ReL-PSP layers, in order."""
        return [m for m in self.layers if isinstance(m, (ReLPSPLinear, ReLPSPConv2d))]

    def set_thresholds(self, thresholds: list[float], input_window: float = 1.0) -> None:
        """ϑ_l of every spiking layer and the analog stem's input window c_0, and the windows that follow: c_l = c_{l−1} + ϑ_l."""
        layers = self.spiking_layers()
        if len(thresholds) != len(layers) or min(thresholds) <= 0:
            raise ValueError(f"set_thresholds: need {len(layers)} thresholds > 0 (one per spiking layer), got {list(thresholds)}")
        if input_window != 1.0 and (self.analog is None or not input_window > 0):
            raise ValueError(f"set_thresholds: an input window other than 1 needs an analog stem and must be > 0, got {input_window}")
        self.input_window = zero_time = float(input_window)
        for module, theta in zip(layers, thresholds):
            module.zero_time, module.threshold = zero_time, float(theta)
            zero_time += float(theta)

    def forward(self, x: Tensor, stats: bool = False) -> Tensor | tuple[Tensor, dict[str, float]]:
        """Output spike times (with `stats`: and the statistics of `run`)."""
        return self.run(x) if stats else self.run(x)[0]
