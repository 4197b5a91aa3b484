"""Keyword-spotting networks of the low-activity paper: the dilated conv SNN (Table 1), its ablations (Table 2), the CNN of §10.

Input: log-Mel features `[T, B, C_in, F]` (time-major; C_in = 1, or 3 with Δ/ΔΔ; F = 40 bands).
Output: readout scores per step `[T, B, classes]`, averaged over time (`output_reduction = "mean"`, the paper's), or, with
`time_reduction="max"`, their maximum over time; `readout_leak` makes the readout units non-firing leaky integrators
(Cramer et al. 2020) under either reduction.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.checks import check_time_major
from spikeforge.layers import Pool, Readout, SpikingConv, WordReadout
from spikeforge.layers.domain import DomainHead
from spikeforge.registry import MODELS

Pair = Sequence[int]
#: Table 1: kernels (time × frequency) and dilations (d_H, d_W); receptive fields 4×3, 16×9, 64×27.
TABLE1_KERNELS: tuple[Pair, ...] = ((4, 3), (4, 3), (4, 3))
TABLE1_DILATIONS: tuple[Pair, ...] = ((1, 1), (4, 3), (16, 9))


def receptive_fields(kernels: Sequence[Pair], dilations: Sequence[Pair]) -> list[tuple[int, int]]:
    """Receptive field (time, frequency) after each layer: r_l = r_{l−1} + (k_l − 1)·d_l."""
    out, r = [], (1, 1)
    for k, d in zip(kernels, dilations):
        r = (r[0] + (k[0] - 1) * d[0], r[1] + (k[1] - 1) * d[1])
        out.append(r)
    return out


def _check_layers(kernels: Sequence[Pair], dilations: Sequence[Pair], channels: Sequence[int], band_pools: Sequence[int]) -> None:
    if not (len(kernels) == len(dilations) == len(channels) == len(band_pools)) or not kernels:
        raise ValueError(
            "kernels, dilations, channels and band_pools need one entry per conv layer, "
            f"got {len(kernels)}, {len(dilations)}, {len(channels)}, {len(band_pools)}"
        )
    for k, d in zip(kernels, dilations):
        if len(k) != 2 or len(d) != 2:
            raise ValueError(f"kernels and dilations are (time, frequency) pairs, got {k!r} and {d!r}")


class _KWSStack(nn.Module):
    """What the spiking net and its CNN twin share: layer sizes, the readout, the input check."""

    def __init__(self, in_channels: int, bands: int, classes: int, channels: Sequence[int],
                 kernels: Sequence[Pair], dilations: Sequence[Pair], readout_pool: int = 1,
                 band_pools: Sequence[int] | None = None, time_reduction: str = "mean",
                 readout_leak: float | None = None, unknown_words: int = 0, unknown_class: int = 1) -> None:
        super().__init__()
        if time_reduction not in ("mean", "max"):
            raise ValueError(f"time_reduction is how per-step scores become logits, 'mean' or 'max', got {time_reduction!r}")
        # logits = mean over time of the scores (report §5.3.3), or their max over time: a keyword said late in the clip
        # is not outvoted by the steps before it
        self.output_reduction = time_reduction
        band_pools = [1] * len(channels) if band_pools is None else list(band_pools)
        _check_layers(kernels, dilations, channels, band_pools)
        self.in_channels, self.bands = in_channels, bands
        self.layer_sizes = list(zip([in_channels, *channels][:-1], channels, kernels, dilations))
        # after conv layer l, max over groups of band_pools[l] adjacent bands (1: none, as Table 1): deeper layers see
        # fewer, wider bands, so a feature found a little higher or lower in frequency reads the same
        self.band_pools = nn.ModuleList(nn.Identity() if p == 1 else Pool("max", p, spatial_dims=1) for p in band_pools)
        out_bands = bands
        for p in band_pools:
            if p < 1 or out_bands % p:
                raise ValueError(f"band_pools {band_pools}: {p} does not divide the {out_bands} bands into equal groups")
            out_bands //= p
        if readout_pool < 1 or out_bands % readout_pool:
            raise ValueError(f"readout_pool must divide the {out_bands} bands into equal groups, got {readout_pool}")
        # the last layer's output averaged over groups of `readout_pool` bands: the readout sees where in frequency a
        # feature is only to that resolution (1: every band, as Table 1)
        self.pool = Pool("avg", readout_pool, spatial_dims=1) if readout_pool > 1 else None
        # readout_leak β_out: y[n] = β_out·y[n−1] + W·S[n], scores that build up over a word instead of per step
        features = channels[-1] * (out_bands // readout_pool)
        if unknown_words < 0:
            raise ValueError(f"unknown_words is the number of words of the `_unknown_` class, one readout row each (0: one row), got {unknown_words}")
        self.readout = (WordReadout(features, classes, unknown_class, unknown_words, integrate=readout_leak) if unknown_words
                        else Readout(features, classes, integrate=readout_leak))

    def _read(self, h: torch.Tensor) -> torch.Tensor:
        """Readout scores `[T, B, classes]` of the last layer's output `[T, B, C, F]` (pooled over bands first)."""
        return self.readout(h if self.pool is None else self.pool(h))

    def _check_input(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        check_time_major(x, f"{name} input", 4, f"[T, B, {self.in_channels}, {self.bands}] (time, batch, feature channels, Mel bands)")
        if tuple(x.shape[2:]) != (self.in_channels, self.bands):
            raise ValueError(f"{name} input: expected [T, B, {self.in_channels}, {self.bands}], got {tuple(x.shape)}; the "
                             "model's `in_channels` and `bands` must match the features (3 channels with dataset.deltas, 2 with dataset.second_front_end, "
                             "dataset.n_mels bands)")


class KWSNet(_KWSStack):
    """Stacked causal (time) × 'same' (frequency) spiking conv layers, then a time-distributed linear readout (Fig. 1).

    Each layer: one learnable β, one learnable threshold b per channel (inits N(0.7, 0.01), N(1, 0.01)),
    threshold normalised by ‖W_i‖² (eq. 5), sigmoid surrogate a = 10 (eq. 8); NLIF (eq. 6) with `nlif`;
    lateral resets W·Wᵀ (report §5.3.2) with `lateral`. `dropout` p > 0 drops each layer's spikes with probability p
    in training (the kept ones scaled by 1/(1 − p)); not in the paper, off by default. `domain_classes` > 0 adds a
    domain classifier on the last conv layer's spike rates for domain-adversarial training (`spikeforge.layers.domain`;
    used only by the training method, never in `forward`); `phone_classes` > 0 a per-step phone readout on the same
    spikes for the auxiliary phone loss (`method.phone_ctc`; training only as well). `unknown_words` U > 0 reads the class
    `unknown_class` (`_unknown_`, index 1 of the Speech Commands classes) as U rows, one per word, its score per step their
    log-sum-exp (`spikeforge.layers.readout.WordReadout`, trained on each clip's word by `method.word_loss`).
    """

    def __init__(
        self,
        in_channels: int = 1,
        bands: int = 40,
        classes: int = 12,
        channels: Sequence[int] = (64, 64, 64),
        kernels: Sequence[Pair] = TABLE1_KERNELS,
        dilations: Sequence[Pair] = TABLE1_DILATIONS,
        readout_pool: int = 1,
        band_pools: Sequence[int] | None = None,
        dropout: float = 0.0,
        time_reduction: str = "mean",
        readout_leak: float | None = None,
        domain_classes: int = 0,
        phone_classes: int = 0,
        unknown_words: int = 0,
        unknown_class: int = 1,
        **lif_kwargs,
    ) -> None:
        super().__init__(in_channels, bands, classes, channels, kernels, dilations, readout_pool, band_pools, time_reduction, readout_leak,
                         unknown_words, unknown_class)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is the probability of dropping a spike in training, in [0, 1), got {dropout}")
        self.dropout = dropout
        self.convs = nn.ModuleList(
            SpikingConv(a, b, k[1], spatial_dims=1, time_kernel=k[0], dilation=d[1], time_dilation=d[0], padding="same", **lif_kwargs)
            for a, b, k, d in self.layer_sizes
        )
        if domain_classes < 0:
            raise ValueError(f"domain_classes is the number of domains (e.g. speech engines) to classify, 0 for none, got {domain_classes}")
        # the last conv layer sees the bands left by the pools before it; the classifier reads its time-averaged spikes
        last_bands = bands // math.prod(band_pools[:-1]) if band_pools else bands
        self.domain_head = DomainHead(channels[-1] * last_bands, domain_classes) if domain_classes else None
        if phone_classes < 0:
            raise ValueError(f"phone_classes is the number of phones plus CTC's blank (40 for CMUdict's 39), 0 for none, got {phone_classes}")
        # phone scores per step from the last conv layer's spikes, for the auxiliary phone loss (training only)
        self.phone_head = nn.Linear(channels[-1] * last_bands, phone_classes) if phone_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores `[T, B, classes]` for features `[T, B, C_in, F]`."""
        self._check_input(x)
        for conv, band_pool in zip(self.convs, self.band_pools):
            x = self._drop(band_pool(conv(x)))
        return self._read(x)

    def _drop(self, spikes: torch.Tensor) -> torch.Tensor:
        """A layer's spikes with dropout in training (`dropout` > 0); unchanged otherwise."""
        return F.dropout(spikes, self.dropout, self.training) if self.dropout else spikes

    def _step_layers(self) -> tuple[nn.Module, ...]:
        pooled = [m for conv, band_pool in zip(self.convs, self.band_pools) for m in (conv, band_pool) if not isinstance(m, nn.Identity)]
        return (*pooled, *([self.pool] if self.pool is not None else []), self.readout)

    def init_state(self, batch: int) -> list[dict]:
        """The zero state of `batch` streams: one per conv layer (and each pool), then the readout's."""
        return [layer.init_state(batch) for layer in self._step_layers()]

    def step(self, x_t: torch.Tensor, state: list[dict]) -> tuple[torch.Tensor, list[dict]]:
        """One step of features `[B, C_in, F]` → (scores `[B, classes]`, next state), equal to `forward` at that step
        in eval mode (the step path never drops spikes)."""
        self._check_input(x_t.unsqueeze(0))
        new = []
        for layer, s in zip(self._step_layers(), state):
            x_t, s = layer.step(x_t, s)
            new.append(s)
        return x_t, new


class KWSCNN(_KWSStack):
    """The non-spiking twin of §10: the same dilated conv layers with ReLU instead of LIF neurons, same readout."""

    def __init__(
        self,
        in_channels: int = 1,
        bands: int = 40,
        classes: int = 12,
        channels: Sequence[int] = (64, 64, 64),
        kernels: Sequence[Pair] = TABLE1_KERNELS,
        dilations: Sequence[Pair] = TABLE1_DILATIONS,
        readout_pool: int = 1,
        band_pools: Sequence[int] | None = None,
        time_reduction: str = "mean",
        readout_leak: float | None = None,
    ) -> None:
        super().__init__(in_channels, bands, classes, channels, kernels, dilations, readout_pool, band_pools, time_reduction, readout_leak)
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, tuple(k), dilation=tuple(d), padding=(0, d[1] * (k[1] - 1) // 2))
            for a, b, k, d in self.layer_sizes
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores `[T, B, classes]` for features `[T, B, C_in, F]`."""
        self._check_input(x)
        for conv, band_pool in zip(self.convs, self.band_pools):
            h = x.permute(1, 2, 0, 3)  # [B, C, T, F]
            h = F.relu(conv(F.pad(h, (0, 0, (conv.kernel_size[0] - 1) * conv.dilation[0], 0))))  # causal in time
            x = band_pool(h.permute(2, 0, 1, 3))
        return self._read(x)


@MODELS.register("kws_dilated")
def kws_dilated(
    in_channels: int = 1,
    bands: int = 40,
    classes: int = 12,
    channels: list[int] = (64, 64, 64),
    kernels: list = TABLE1_KERNELS,
    dilations: list = TABLE1_DILATIONS,
    readout_pool: int = 1,
    band_pools: list[int] | None = None,
    nlif: bool = False,
    lateral: bool = False,
    learn_beta: bool = True,
    learn_threshold: bool = True,
    surrogate: str = "sigmoid",
    scale: float = 10.0,
    input_scale: str = "none",
    reset: str = "subtract",
    impl: str = "fused",
    dropout: float = 0.0,
    time_reduction: str = "mean",
    readout_leak: float | None = None,
    domain_classes: int = 0,
    phone_classes: int = 0,
    unknown_words: int = 0,
    unknown_class: int = 1,
) -> KWSNet:
    """Table 1's dilated conv SNN (0.13 M parameters with the defaults); every ablation is a change of these arguments;
    `domain_classes` > 0 adds the domain classifier of domain-adversarial training, `phone_classes` > 0 the phone
    readout of the auxiliary phone loss, `unknown_words` > 0 one readout row per word of `_unknown_`."""
    return KWSNet(
        in_channels, bands, classes, list(channels), [tuple(k) for k in kernels], [tuple(d) for d in dilations], readout_pool,
        band_pools, dropout, time_reduction, readout_leak, domain_classes, phone_classes, unknown_words, unknown_class, nlif=nlif, lateral=lateral, learn_beta=learn_beta, learn_threshold=learn_threshold,
        surrogate=surrogate, scale=scale, input_scale=input_scale, reset=reset, impl=impl,
    )


#: Table 2's model variants (the regulariser variants are method settings, see `spikeforge ablate`).
ABLATIONS: dict[str, dict] = {
    "kws_no_dilation": {"dilations": ((1, 1), (1, 1), (1, 1))},  # 1-a
    "kws_large_kernels": {"kernels": ((4, 3), (13, 7), (49, 19)), "dilations": ((1, 1), (1, 1), (1, 1))},  # 1-b: same fields
    "kws_nlif": {"nlif": True},  # 3-a, 3-b
    "kws_frozen": {"learn_beta": False, "learn_threshold": False},  # §10.4
}


def _variant(name: str, overrides: dict):
    def factory(**kwargs) -> KWSNet:
        clash = sorted(set(kwargs) & set(overrides))
        if clash:
            raise ValueError(f"model {name!r} fixes {', '.join(clash)}; use model 'kws_dilated' to set them")
        return kws_dilated(**overrides, **kwargs)

    factory.__name__ = name
    factory.__doc__ = f"`kws_dilated` with {overrides} (Table 2 ablation)."
    full = inspect.signature(kws_dilated)
    factory.__signature__ = full.replace(parameters=[p for n, p in full.parameters.items() if n not in overrides])
    return MODELS.register(name)(factory)


for _name, _overrides in ABLATIONS.items():
    _variant(_name, _overrides)


@MODELS.register("kws_cnn")
def kws_cnn(
    in_channels: int = 1,
    bands: int = 40,
    classes: int = 12,
    channels: list[int] = (64, 64, 64),
    kernels: list = TABLE1_KERNELS,
    dilations: list = TABLE1_DILATIONS,
    readout_pool: int = 1,
    band_pools: list[int] | None = None,
    time_reduction: str = "mean",
    readout_leak: float | None = None,
) -> KWSCNN:
    """The non-spiking CNN of §10 (dilated convs + ReLU, time-distributed readout averaged over time)."""
    return KWSCNN(in_channels, bands, classes, list(channels), [tuple(k) for k in kernels], [tuple(d) for d in dilations],
                  readout_pool, band_pools, time_reduction, readout_leak)
