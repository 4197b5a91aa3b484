"""The noisy single-step LIF neuron as a module, and conversion of a whole network to T steps.

A network is trained with every `NoisyLIF` in mode "ensemble" at T = 1 (eq. (5), noise-based
faster SNN training paper) and run at any T after `convert(model, mode=..., alpha=...)`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from spikeforge.functional.noisy_lif import MODES, NOISE_KINDS, STATS, noisy_lif_scan, residual_halfwidth, sample_unit_noise

#: Layers that act on each step alone (applied to [T·B, ...]) and containers: they convert unchanged.
STATELESS_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Flatten, nn.Dropout, nn.Identity,
    nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.DataParallel, nn.parallel.DistributedDataParallel,
)
_CONVERTIBLE: set[type[nn.Module]] = set()


def convertible(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: declare a container whose own forward only routes tensors between convertible children."""
    _CONVERTIBLE.add(cls)
    return cls


class NoisyLIF(nn.Module):
    """LIF of eqs. (1)–(3) trained single-step with membrane noise N_noise (eq. (5)), run at any T.

    `noise` is "gaussian", "uniform" or "none"; N_noise has mean `beta` and lies in
    [beta − spread, beta + spread] (default [0, 1]); without noise it is 0 (eq. (4)).
    `mode` and `alpha` are set by `convert`; input and output are `[T, B, ...]`.
    """

    def __init__(
        self,
        noise: str = "gaussian",
        beta: float = 0.5,
        spread: float = 0.5,
        lam: float = 0.5,
        threshold: float = 1.0,
        surrogate: str = "sigmoid",
        scale: float = 4.0,
        stats: str = "batch",
    ) -> None:
        super().__init__()
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
        if stats not in STATS:
            raise ValueError(f"stats must be one of {STATS}, got {stats!r}")
        if spread < 0:
            raise ValueError(f"spread (half-width of the noise range) must be >= 0, got {spread}")
        self.noise = noise
        self.beta = beta if noise != "none" else 0.0
        self.spread = spread if noise != "none" else 0.0
        self.lam, self.threshold = lam, threshold
        self.surrogate, self.scale, self.stats = surrogate, scale, stats
        self.mode, self.alpha = "ensemble", 4.0

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        unit = None
        if self.mode != "lif":
            unit = sample_unit_noise(current.shape, self.noise, dtype=current.dtype, device=current.device)
        return noisy_lif_scan(
            current, unit, mode=self.mode, beta=self.beta, spread=self.spread, alpha=self.alpha, lam=self.lam,
            threshold=self.threshold, surrogate=self.surrogate, scale=self.scale, stats=self.stats,
        )

    def extra_repr(self) -> str:
        return f"noise={self.noise}, beta={self.beta}, spread={self.spread}, mode={self.mode}, alpha={self.alpha}"


def _check_layers(model: nn.Module) -> list[NoisyLIF]:
    """Every module of `model` must be a NoisyLIF, a stateless layer or a declared container."""
    neurons = []
    for name, module in model.named_modules():
        if isinstance(module, NoisyLIF):
            neurons.append(module)
        elif not isinstance(module, STATELESS_LAYERS) and type(module) not in _CONVERTIBLE:
            raise ValueError(
                f"conversion to T steps does not know layer {name or '<model>'!r} ({type(module).__name__}); it converts "
                f"NoisyLIF neurons, stateless layers ({', '.join(sorted(t.__name__ for t in STATELESS_LAYERS))}) "
                f"and containers marked with @spikeforge.neurons.noisy.convertible"
            )
    if not neurons:
        raise ValueError(f"{type(model).__name__} has no NoisyLIF neuron to convert")
    return neurons


def convert(model: nn.Module, *, mode: str = "accumulate", alpha: float = 4.0) -> nn.Module:
    """Set every NoisyLIF of `model` to `mode` (step 2 "ensemble", step 3 "accumulate", or "lif"); returns `model`.

    T is then whatever the input has: `model(x)` with `x` `[T, B, ...]`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    neurons = _check_layers(model)
    if mode == "accumulate":
        for neuron in neurons:
            residual_halfwidth(alpha, neuron.spread)
    elif not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    for neuron in neurons:
        neuron.mode, neuron.alpha = mode, alpha
    return model


@contextlib.contextmanager
def converted(model: nn.Module, *, mode: str = "accumulate", alpha: float = 4.0) -> Iterator[nn.Module]:
    """`convert` for the duration of a `with` block, then restore every neuron's previous mode and α."""
    saved = [(n, n.mode, n.alpha) for n in _check_layers(model)]
    try:
        yield convert(model, mode=mode, alpha=alpha)
    finally:
        for neuron, mode_, alpha_ in saved:
            neuron.mode, neuron.alpha = mode_, alpha_
