"""SNNs from the SLAYER architecture shorthand used by the spikemax paper (§IV), with SRM neurons and axonal delays.

`34x34x2-16c5-2a-32c3-2a-64c3-512-10`: layers separated by `-`; the first gives the input
(`WxHxC` for event frames `[T, B, C, H, W]`, or `N` features `[T, B, N]`); `KcN` is an N×N
convolution with K channels ('same' padding), `Na` an N×N aggregate (sum) pooling, and a bare
number a dense layer. Every layer is followed by SRM neurons (eqs. 1–2); as in SLAYER, pooling
weights are fixed at 1.1·ϑ so that one input spike makes the pooled neuron fire. Convolution
and dense layers, except the output, have one trainable axonal delay per channel / unit
(§IV, ref. [37]). The model outputs the last layer's spikes `[T, B, classes]`; the logits are
their counts (`output_reduction = "sum"`).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.checks import check_time_major
from spikeforge.functional import events
from spikeforge.layers.base import check_step_input
from spikeforge.layers.delay import AxonalDelay
from spikeforge.neurons.srm import SRM
from spikeforge.registry import MODELS

_INPUT = re.compile(r"^(\d+)x(\d+)x(\d+)$|^(\d+)$")
_CONV, _POOL, _DENSE = re.compile(r"^(\d+)c(\d+)$"), re.compile(r"^(\d+)a$"), re.compile(r"^(\d+)$")
GRAMMAR = "WxHxC or N input, then KcN (conv), Na (pool), N (dense), separated by '-'"


def _per_step(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless module to every step of `[T, B, ...]` at once."""
    y = module(x.flatten(0, 1))
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])


class SRMLayer(nn.Module):
    """Synapse (dense / conv / fixed pooling) → SRM neurons → optional axonal delay; returns spikes `[T, B, ...]`."""

    emits_spikes = True

    def __init__(self, synapse: nn.Module, neuron: SRM, delay: AxonalDelay | None) -> None:
        super().__init__()
        self.synapse, self.neuron, self.delay = synapse, neuron, delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.synapse, nn.Linear):  # event-driven for sparse spikes
            current = events.linear(x.flatten(2), self.synapse.weight, self.synapse.bias)
        else:
            current = _per_step(self.synapse, x)
        spikes, _ = self.neuron(current)
        return spikes if self.delay is None else self.delay(spikes)

    def init_state(self, batch: int) -> dict:
        """The zero state of `batch` streams for `step`: the neurons' and the delay's."""
        return {"batch": batch, "neuron": self.neuron.init_state(batch), "delay": None if self.delay is None else self.delay.init_state(batch)}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One step of input spikes `[B, ...]` → (output spikes at that step, next state), as `forward` at that step."""
        check_step_input(x_t, state, "SRMLayer")
        with torch.no_grad():
            current = self.synapse(x_t.flatten(1) if isinstance(self.synapse, nn.Linear) else x_t)
            spikes, neuron = self.neuron.step(current, state["neuron"])
            delay = state["delay"]
            if self.delay is not None:
                spikes, delay = self.delay.step(spikes, delay)
        return spikes, {"batch": state["batch"], "neuron": neuron, "delay": delay}


class SumPool(nn.Module):
    """N×N aggregate pooling with the fixed weight 1.1·ϑ (SLAYER's pool layer)."""

    def __init__(self, size: int, weight: float) -> None:
        super().__init__()
        self.size, self.weight = size, weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * self.size**2 * F.avg_pool2d(x, self.size)

    def extra_repr(self) -> str:
        return f"{self.size}x{self.size}, weight={self.weight}"


class ShorthandSNN(nn.Module):
    """Sequential SRM network built by `parse_shorthand`; `[T, B, ...]` events → output spikes `[T, B, classes]`."""

    output_reduction = "sum"

    def __init__(self, arch: str, layers: list[SRMLayer], input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.arch, self.input_shape = arch, input_shape
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layout = "[T, B, C, H, W]" if len(self.input_shape) == 3 else "[T, B, N]"
        check_time_major(x, "x", len(self.input_shape) + 2, layout)
        if tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"{self.arch}: expected input {layout} with {layout[7:-1]} = {self.input_shape}, got shape {tuple(x.shape)}")
        for layer in self.layers:
            x = layer(x)
        return x

    def init_state(self, batch: int) -> list[dict]:
        """The zero state of `batch` streams for `step`, one per layer."""
        return [layer.init_state(batch) for layer in self.layers]

    def step(self, x_t: torch.Tensor, state: list[dict]) -> tuple[torch.Tensor, list[dict]]:
        """One step of input events `[B, ...]` → (output spikes `[B, classes]`, next state), as `forward` at that step."""
        if tuple(x_t.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.arch}: step expects one time step [B, ...] with ... = {self.input_shape}, got shape {tuple(x_t.shape)}")
        new = []
        for layer, s in zip(self.layers, state):
            x_t, s = layer.step(x_t, s)
            new.append(s)
        return x_t, new


@MODELS.register("shorthand")
def parse_shorthand(
    arch: str,
    *,
    tau_s: float = 1.0,
    tau_r: float = 1.0,
    threshold: float = 10.0,
    delays: bool = True,
    max_delay: float = 62.0,
    weight_scale: float = 10.0,
    surrogate: str = "sigmoid",
    scale: float = 4.0,
    impl: str = "fused",
) -> ShorthandSNN:
    """Build the network that `arch` describes (see the module docstring); `weight_scale` multiplies the default init."""
    tokens = arch.split("-")
    first = _INPUT.match(tokens[0])
    if first is None or len(tokens) < 2:
        raise ValueError(f"architecture {arch!r}: cannot read the input {tokens[0]!r}; expected {GRAMMAR}")
    shape: tuple[int, ...] = (int(first[3]), int(first[2]), int(first[1])) if first[1] else (int(first[4]),)
    input_shape, layers = shape, []
    for i, token in enumerate(tokens[1:], start=1):
        last = i == len(tokens) - 1
        neuron = SRM(tau_s, tau_r, threshold, surrogate=surrogate, scale=scale, impl=impl)
        if (m := _CONV.match(token)) and len(shape) == 3:
            channels, kernel = int(m[1]), int(m[2])
            synapse: nn.Module = nn.Conv2d(shape[0], channels, kernel, padding=kernel // 2, bias=False)
            shape = (channels, shape[1] + 2 * (kernel // 2) - kernel + 1, shape[2] + 2 * (kernel // 2) - kernel + 1)
            delay = AxonalDelay((channels, 1, 1), max_delay=max_delay) if delays and not last else None
        elif (m := _POOL.match(token)) and len(shape) == 3:
            size = int(m[1])
            synapse, delay = SumPool(size, 1.1 * threshold), None
            shape = (shape[0], shape[1] // size, shape[2] // size)
        elif m := _DENSE.match(token):
            units = int(m[1])
            synapse = nn.Linear(int(torch.tensor(shape).prod()), units, bias=False)
            shape = (units,)
            delay = AxonalDelay(units, max_delay=max_delay) if delays and not last else None
        else:
            where = "after a dense layer (no spatial axes left)" if len(shape) == 1 and (_CONV.match(token) or _POOL.match(token)) else ""
            raise ValueError(f"architecture {arch!r}: cannot read layer {i} {token!r} {where}; expected {GRAMMAR}".replace("  ", " "))
        if isinstance(synapse, (nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                synapse.weight.mul_(weight_scale)
        if 0 in shape:
            raise ValueError(f"architecture {arch!r}: layer {i} {token!r} leaves an empty output shape {shape}")
        layers.append(SRMLayer(synapse, neuron, delay))
    return ShorthandSNN(arch, layers, input_shape)
