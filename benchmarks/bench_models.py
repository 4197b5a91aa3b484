"""The two benchmark models, built the same way for spikeforge, its peers and the no-dynamics floor.

Model A (the low-activity paper's keyword-spotting net, Table 1): input `[T=100, B=32, 1, 40]`,
three spiking conv layers of 64 channels, kernel 4 (time) × 3 (frequency), dilations (1, 1),
(4, 3), (16, 9), causal in time and "same" in frequency, a time-distributed linear readout
averaged over time, cross-entropy over 12 classes.

Model B: dense LIF 64-256-256-11, `T=300, B=64`, 5 % random input spikes, cross-entropy on the
output spike counts.

Every implementation runs the same dynamics: U[n] = β·(U[n−1] − ϑ·S[n−1]) + I[n],
S[n] = Θ(U[n] − ϑ), β = 0.7, ϑ = 1, sigmoid surrogate of scale 10 (fast sigmoid for Norse,
which has no sigmoid), except where a library cannot express it (noted per peer below).
β and ϑ are constants, as in the peers' neurons; `spikeforge-learned` is spikeforge's default
layer instead, which also learns β (per layer) and ϑ (per channel).
The peers have no dilated causal convolution over time, so their conv layers are the same
torch `Conv2d` over (time, frequency) with left padding in time, followed by the peer's LIF
in its multi-step mode (or its cell in a Python loop where it has no multi-step mode).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

BETA = 0.7
THRESHOLD = 1.0
SCALE = 10.0

CONV_DILATIONS = ((1, 1), (4, 3), (16, 9))  # (time, frequency), Table 1, low-activity paper
TIME_KERNEL, FREQ_KERNEL = 4, 3
CHANNELS = 64
CLASSES_A = 12
DENSE_SIZES = (64, 256, 256, 11)

# Weight gains on the default (Kaiming-uniform) init of the spiking layers, so that every layer fires
# at 5–6 % of neuron-steps on the benchmark inputs, the activity of a trained KWS net (2.6–6.1 %,
# low-activity paper §9); with the plain init the deeper layers stay silent.
GAINS = {"A": (1.0, 4.0, 5.0), "B": (4.0, 3.5, 4.0)}

Neuron = Callable[[], nn.Module]  # a factory for a module mapping currents [T, B, ...] to spikes [T, B, ...]


# --- peers' LIF in multi-step form: [T, B, ...] currents → [T, B, ...] spikes -------------------------


class SnnTorchLIF(nn.Module):
    """snnTorch `Leaky` stepped in a Python loop (its documented usage); subtract reset.

    snnTorch subtracts the reset after the leak (U = βU + I − ϑS[n−1]) where the others
    subtract before it (U = β(U − ϑS[n−1]) + I); the cost is the same.
    """

    def __init__(self) -> None:
        super().__init__()
        import snntorch
        from snntorch import surrogate

        self.lif = snntorch.Leaky(beta=BETA, threshold=THRESHOLD, spike_grad=surrogate.sigmoid(slope=SCALE), reset_mechanism="subtract")

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        mem = self.lif.init_leaky()
        spikes = []
        for step in current:
            spk, mem = self.lif(step, mem)
            spikes.append(spk)
        return torch.stack(spikes)


class SpikingJellyLIF(nn.Module):
    """SpikingJelly `LIFNode` in multi-step mode (`step_mode="m"`, its CPU/torch implementation).

    decay_input=False, τ = 1/(1 − β), v_reset=None (soft reset): H = βV + X, V = H − ϑS — the same
    model as spikeforge's subtract reset.
    """

    def __init__(self) -> None:
        super().__init__()
        from spikingjelly.activation_based import functional, neuron, surrogate

        self.lif = neuron.LIFNode(
            tau=1.0 / (1.0 - BETA), decay_input=False, v_threshold=THRESHOLD, v_reset=None,
            surrogate_function=surrogate.Sigmoid(alpha=SCALE), step_mode="m",
        )
        self._reset = functional.reset_net

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        self._reset(self.lif)
        return self.lif(current)


class NorseLIF(nn.Module):
    """Norse `LIFBoxCell` (LIF without a synaptic current) stepped in a Python loop; subtract reset.

    Norse integrates dv = dt/τ·(I − v), so β = 1 − dt/τ and the input is scaled by (1 − β);
    the input is multiplied by 1/(1 − β) to give the same dynamics. Surrogate: SuperSpike
    (fast sigmoid), Norse has no sigmoid.
    """

    def __init__(self) -> None:
        super().__init__()
        from norse.torch import LIFBoxCell, LIFBoxParameters
        from norse.torch.functional.reset import reset_subtract

        dt = 1e-3
        params = LIFBoxParameters(
            tau_mem_inv=torch.as_tensor((1.0 - BETA) / dt), v_th=torch.as_tensor(THRESHOLD),
            method="super", alpha=torch.as_tensor(SCALE), reset_method=reset_subtract,
        )
        self.cell = LIFBoxCell(params, dt=dt)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        current = current * (1.0 / (1.0 - BETA))
        state = None
        spikes = []
        for step in current:
            spk, state = self.cell(step, state)
            spikes.append(spk)
        return torch.stack(spikes)


PEERS: dict[str, Neuron] = {"snntorch": SnnTorchLIF, "spikingjelly": SpikingJellyLIF, "norse": NorseLIF}


# --- model A --------------------------------------------------------------------------------------------


class TorchConvKWS(nn.Module):
    """Model A from torch `Conv2d` over [B, C, T, F] and a peer's LIF (or no neuron: the floor)."""

    def __init__(self, neuron: Neuron | None, freq: int = 40) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(1 if i == 0 else CHANNELS, CHANNELS, (TIME_KERNEL, FREQ_KERNEL), dilation=d, padding=(0, d[1]), bias=False)
            for i, d in enumerate(CONV_DILATIONS)
        )
        self.neurons = None if neuron is None else nn.ModuleList(neuron() for _ in CONV_DILATIONS)
        self.readout = nn.Linear(CHANNELS * freq, CLASSES_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `[B, classes]` (readout averaged over time) for input `[T, B, 1, F]`."""
        h = x.permute(1, 2, 0, 3)  # [B, C, T, F]
        for i, conv in enumerate(self.convs):
            reach = (TIME_KERNEL - 1) * conv.dilation[0]
            h = conv(F.pad(h, (0, 0, reach, 0)))  # causal in time
            if self.neurons is not None:
                spikes = self.neurons[i](h.permute(2, 0, 1, 3).contiguous())  # [T, B, C, F]
                h = spikes.permute(1, 2, 0, 3)
        seq = h.permute(2, 0, 1, 3).flatten(2)  # [T, B, C·F]
        return self.readout(seq).mean(0)


def _spikeforge_lif(variant: str) -> dict:
    """LIF arguments of spikeforge's layers for `variant` "fused", "reference" (β, ϑ fixed) or "learned" (fused, β, ϑ learnt)."""
    learned = variant == "learned"
    return dict(beta_init=BETA, threshold_init=THRESHOLD, surrogate="sigmoid", scale=SCALE, impl="fused" if learned else variant,
                learn_beta=learned, learn_threshold=learned)


class SpikeforgeKWS(nn.Module):
    """Model A from spikeforge's `SpikingConv` (time kernel, causal) and `Readout`."""

    def __init__(self, impl: str, freq: int = 40) -> None:
        super().__init__()
        from spikeforge.layers import Readout, SpikingConv

        lif = _spikeforge_lif(impl)
        self.convs = nn.Sequential(*(
            SpikingConv(1 if i == 0 else CHANNELS, CHANNELS, FREQ_KERNEL, spatial_dims=1, time_kernel=TIME_KERNEL,
                        dilation=d[1], time_dilation=d[0], normalize_threshold=False, **lif)
            for i, d in enumerate(CONV_DILATIONS)
        ))
        self.readout = Readout(CHANNELS * freq, CLASSES_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.convs(x)).mean(0)


# --- model B --------------------------------------------------------------------------------------------


class TorchDense(nn.Module):
    """Model B from torch `Linear` and a peer's LIF (or no neuron: the floor, logits = Σ_t outputs)."""

    def __init__(self, neuron: Neuron | None) -> None:
        super().__init__()
        pairs = zip(DENSE_SIZES[:-1], DENSE_SIZES[1:])
        self.linears = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in pairs)
        self.neurons = None if neuron is None else nn.ModuleList(neuron() for _ in self.linears)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `[B, classes]` = output spike counts for input spikes `[T, B, 64]`."""
        h = x
        for i, linear in enumerate(self.linears):
            h = linear(h)
            if self.neurons is not None:
                h = self.neurons[i](h)
        return h.sum(0)


class SpikeforgeDense(nn.Module):
    """Model B from spikeforge's `SpikingLinear` layers."""

    def __init__(self, impl: str) -> None:
        super().__init__()
        from spikeforge.layers import SpikingLinear

        lif = _spikeforge_lif(impl)
        pairs = zip(DENSE_SIZES[:-1], DENSE_SIZES[1:])
        self.layers = nn.Sequential(*(SpikingLinear(a, b, normalize_threshold=False, **lif) for a, b in pairs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).sum(0)


# --- registry of implementations -------------------------------------------------------------------------

IMPLEMENTATIONS = ("floor", "spikeforge-fused", "spikeforge-learned", "spikeforge-reference", "snntorch", "spikingjelly", "norse")


def _build(model: str, impl: str, freq: int) -> nn.Module:
    if model == "A":
        if impl.startswith("spikeforge-"):
            return SpikeforgeKWS(impl.split("-", 1)[1], freq)
        return TorchConvKWS(None if impl == "floor" else PEERS[impl], freq)
    if model == "B":
        if impl.startswith("spikeforge-"):
            return SpikeforgeDense(impl.split("-", 1)[1])
        return TorchDense(None if impl == "floor" else PEERS[impl])
    raise ValueError(f"unknown model {model!r}; choose 'A' or 'B'")


def weighted_layers(net: nn.Module) -> list[nn.Module]:
    """The convolution / linear layers that feed the neurons, in order."""
    for name in ("convs", "layers", "linears"):
        if hasattr(net, name):
            return list(getattr(net, name))
    raise ValueError(f"{type(net).__name__} has no weighted layers")


def build(model: str, impl: str, freq: int = 40, gains: tuple[float, ...] | None = None) -> nn.Module:
    """The benchmark model `model` ("A" or "B") for implementation `impl` (one of IMPLEMENTATIONS), weights scaled by
    `gains` (one per spiking layer; default GAINS)."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {impl!r}; choose from {IMPLEMENTATIONS}")
    net = _build(model, impl, freq)
    with torch.no_grad():
        for layer, gain in zip(weighted_layers(net), gains or GAINS[model]):
            layer.weight.mul_(gain)
    return net


def spiking_modules(net: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are the spikes of each spiking layer (none for the floor)."""
    if isinstance(net, (TorchConvKWS, TorchDense)):
        return [] if net.neurons is None else list(net.neurons)
    return weighted_layers(net)


def layer_rates(net: nn.Module, x: torch.Tensor) -> list[float]:
    """Fraction of neuron-steps with a spike in each spiking layer of `net` on input `x` (one forward, no gradient)."""
    rates: list[float] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: rates.append(float(out.float().mean()))) for m in spiking_modules(net)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return rates


def calibrate_gains(model: str, x: torch.Tensor, rate: float, iterations: int = 20) -> tuple[float, ...]:
    """Gains on the default init (as in `build`) that make each spiking layer fire at `rate` of its neuron-steps on `x`.

    Layer by layer (each on the previous calibrated layer's spikes), a bisection on log(gain);
    the spike rate grows with the gain, so it converges to the nearest achievable rate.
    """
    torch.manual_seed(0)
    layers = weighted_layers(build(model, "spikeforge-fused", gains=(1.0,) * len(GAINS[model])))
    gains, h = [], x
    with torch.no_grad():
        for layer in layers:
            w0 = layer.weight.detach().clone()
            lo, hi = -5.0, 8.0  # log gain
            for _ in range(iterations):
                mid = (lo + hi) / 2
                layer.weight.copy_(w0 * math.exp(mid))
                if float(layer(h).mean()) < rate:
                    lo = mid
                else:
                    hi = mid
            gains.append(math.exp((lo + hi) / 2))
            layer.weight.copy_(w0 * gains[-1])
            h = layer(h)
    return tuple(gains)


def make_batch(model: str, steps: int, batch: int, generator: torch.Generator, freq: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, labels): log-mel-like N(0, 1) features `[T, B, 1, F]` (A) or 5 % Bernoulli spikes `[T, B, 64]` (B)."""
    if model == "A":
        x = torch.randn(steps, batch, 1, freq, generator=generator)
        return x, torch.randint(0, CLASSES_A, (batch,), generator=generator)
    x = (torch.rand(steps, batch, DENSE_SIZES[0], generator=generator) < 0.05).float()
    return x, torch.randint(0, DENSE_SIZES[-1], (batch,), generator=generator)
