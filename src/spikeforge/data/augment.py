"""Training-time augmentation of keyword-spotting clips: background mixing, equalisation, band statistics mixing, frequency warp, tempo, time shift, SpecAugment masks.

Each is a recipe key of the `speech_commands` dataset, off by default (the paper-faithful recipes)
and on in `kws_robust`. Applied to the training split only, drawn from torch's global generator
(seeded and checkpointed by the trainer), in this order:

1. background mixing (probability `background_prob`): a random `_background_noise_` segment (from
   the training part of each recording) added in the Mel-power domain at an SNR drawn uniformly from
   `background_snr_db` (ratio of summed Mel powers), then compressed and scaled as the clip's
   features (power adds for uncorrelated signals, so this equals mixing the waves in expectation);
   equalisation (`eq_db`): the clip's (or mixture's) Mel power times a smooth random gain curve of at most
   ±`eq_db` dB, g(k) = `eq_db`/3 · Σ_{j=1..3} a_j cos(π j (k + ½)/F) over the F bands, each a_j uniform in [−1, 1]
   (a tilt, one bump, two bumps), as a microphone, loudspeaker or synthesiser with another frequency response
   would colour it; it moves the bands' levels, so it acts only on the features that keep them (`db`, `running_db`);
2. band statistics mixing (probability `style_mix`; MixStyle, Zhou et al. 2021, on the input bands): each
   band's mean and standard deviation over time are replaced by a mix, weight λ ~ Beta(`style_alpha`,
   `style_alpha`), of the clip's own and those of another training clip drawn at random, so the
   long-term spectral envelope and band dynamics of one voice come with the words of another;
3. vocal-tract length perturbation (VTLP, Jaitly & Hinton 2013): the spectrum scaled in frequency by a
   factor drawn uniformly from [1 − `freq_warp`, 1 + `freq_warp`], or from [low, high] when `freq_warp` is a
   pair (e.g. [0.9, 1.45] to reach children's formants, about 1.25–1.45 × an adult man's) (band k takes the features at
   frequency f_k / factor, f_k its Mel band's centre, interpolated between bands), as a voice with a
   shorter or longer vocal tract would say it;
   formant warping (`formant_warp`): a piecewise-linear warp of the frequency axis whose knots at the typical
   first three formants (500, 1,500, 2,500 Hz) each move by their own factor drawn uniformly from
   [1 − `formant_warp`, 1 + `formant_warp`] (0 Hz and the top band fixed), so a vowel's formants move relative
   to each other, as when another voice or synthesiser realises the vowel differently (one factor for all of
   them is VTLP);
4. tempo perturbation: the clip played slower or faster by a factor drawn uniformly from [1 − `time_stretch`,
   1 + `time_stretch`] about its middle step (features interpolated linearly between steps, steps beyond the
   clip zero), as a faster or slower speaker would say it at the same pitch (speed perturbation without its
   pitch change, Ko et al. 2015);
5. time shift by a whole number of steps drawn from [−`time_shift_steps`, `time_shift_steps`],
   the vacated steps zero (silence);
6. SpecAugment (Park et al. 2019): `time_masks` masks of 0…`time_mask_steps` steps and
   `freq_masks` masks of 0…`freq_mask_bands` Mel bands, set to zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Augmentation:
    """The augmentation recipe keys; all zero = no augmentation (`active` False)."""

    background_prob: float = 0.0
    background_snr_db: tuple[float, float] = (0.0, 20.0)
    time_shift_steps: int = 0
    time_masks: int = 0
    time_mask_steps: int = 10
    freq_masks: int = 0
    freq_mask_bands: int = 5
    freq_warp: float | tuple[float, float] = 0.0
    time_stretch: float = 0.0
    style_mix: float = 0.0
    style_alpha: float = 0.3
    formant_warp: float = 0.0
    eq_db: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.background_prob <= 1.0:
            raise ValueError(f"background_prob is a probability in [0, 1], got {self.background_prob}")
        lo, hi = self.background_snr_db
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"background_snr_db must be [low, high] dB with low ≤ high, got {list(self.background_snr_db)}")
        if not 0.0 <= self.style_mix <= 1.0:
            raise ValueError(f"style_mix is a probability in [0, 1], got {self.style_mix}")
        if not self.style_alpha > 0:
            raise ValueError(f"style_alpha is the Beta distribution's parameter, > 0, got {self.style_alpha}")
        if isinstance(self.freq_warp, (tuple, list)):
            if len(self.freq_warp) != 2 or not 0.0 < self.freq_warp[0] <= self.freq_warp[1]:
                raise ValueError(f"freq_warp as a range is [low, high] scale factors with 0 < low ≤ high, got {list(self.freq_warp)}")
        elif not 0.0 <= self.freq_warp < 1.0:
            raise ValueError(f"freq_warp is the largest relative frequency scaling, in [0, 1), or a range [low, high], got {self.freq_warp}")
        if not 0.0 <= self.formant_warp < 0.25:
            raise ValueError(f"formant_warp is the largest relative move of a formant knot, in [0, 0.25) (wider would fold "
                             f"the frequency axis), got {self.formant_warp}")
        if not 0.0 <= self.eq_db <= 40.0:
            raise ValueError(f"eq_db is the largest gain of the random equalisation in dB, in [0, 40], got {self.eq_db}")
        if not 0.0 <= self.time_stretch < 1.0:
            raise ValueError(f"time_stretch is the largest relative change of duration, in [0, 1), got {self.time_stretch}")
        for name in ("time_shift_steps", "time_masks", "time_mask_steps", "freq_masks", "freq_mask_bands"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")

    @property
    def warp_range(self) -> tuple[float, float]:
        """The (low, high) bounds of the VTLP factor: `freq_warp` as given, or (1 − w, 1 + w) for a number w."""
        if isinstance(self.freq_warp, (tuple, list)):
            return float(self.freq_warp[0]), float(self.freq_warp[1])
        return 1.0 - self.freq_warp, 1.0 + self.freq_warp

    @property
    def active(self) -> bool:
        return (self.background_prob > 0 or self.eq_db > 0 or self.style_mix > 0 or self.warp_range != (1.0, 1.0) or self.formant_warp > 0 or self.time_stretch > 0
                or self.time_shift_steps > 0 or self.time_masks > 0 or self.freq_masks > 0)


def _uniform_int(high: int) -> int:
    """An integer drawn uniformly from 0…high."""
    return int(torch.randint(high + 1, ()))


def mix_background(mel: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """Clip Mel power `[F, T]` plus a random `[F, T]` window of `noise` `[F, L ≥ T]` scaled to `snr_db` (summed powers)."""
    steps = mel.shape[1]
    start = _uniform_int(noise.shape[1] - steps)
    segment = noise[:, start : start + steps]
    scale = mel.sum() / segment.sum().clamp(min=1e-20) / 10 ** (snr_db / 10)
    return mel + scale * segment


def eq_curve(bands: int, largest_db: float) -> torch.Tensor:
    """A random gain curve (dB) over `bands` Mel bands: `largest_db`/3 · Σ_{j=1..3} a_j cos(π j (k + ½)/bands), a_j ~ U(−1, 1)."""
    k = (torch.arange(bands, dtype=torch.float64) + 0.5) / bands
    a = 2 * torch.rand(3, dtype=torch.float64) - 1
    return largest_db / 3 * sum(a[j] * torch.cos(math.pi * (j + 1) * k) for j in range(3))


def equalise(mel: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """Mel power `[F, T]` with band k scaled by 10^(gain_db[k]/10)."""
    return mel * (10 ** (gain_db / 10)).unsqueeze(1)


def shift_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """`x` `[T, ...]` moved later by `steps` (earlier if negative); vacated steps are zero."""
    out = torch.zeros_like(x)
    if steps >= 0:
        out[steps:] = x[: x.shape[0] - steps]
    else:
        out[:steps] = x[-steps:]
    return out


def mask(x: torch.Tensor, axis: int, count: int, width: int) -> torch.Tensor:
    """`count` bands of 0…`width` consecutive entries along `axis` of `x` set to zero (SpecAugment)."""
    x = x.clone()
    size = x.shape[axis]
    for _ in range(count):
        w = min(_uniform_int(width), size)
        start = _uniform_int(size - w)
        x.narrow(axis, start, w).zero_()
    return x


def mix_band_statistics(x: torch.Tensor, other: torch.Tensor, weight: float, eps: float = 1e-6) -> torch.Tensor:
    """x `[T, C, F]` with each band's mean μ and standard deviation σ over time set to weight·(μ, σ) of x + (1 − weight)·those of `other`.

    x̂ = (x − μ_x) / σ_x · (w·σ_x + (1 − w)·σ_o) + w·μ_x + (1 − w)·μ_o (MixStyle, Zhou et al. 2021, eq. (2)–(3)), σ with `eps` added.
    """
    mu_x, mu_o = x.mean(0), other.mean(0)
    sd_x, sd_o = (x.var(0, unbiased=False) + eps).sqrt(), (other.var(0, unbiased=False) + eps).sqrt()
    return (x - mu_x) / sd_x * (weight * sd_x + (1 - weight) * sd_o) + weight * mu_x + (1 - weight) * mu_o


#: Knots of `formant_warp` (Hz): typical first, second and third formants of adult speech.
FORMANT_KNOTS = (500.0, 1500.0, 2500.0)


def warp_bands(x: torch.Tensor, factor: float, centres: torch.Tensor) -> torch.Tensor:
    """Features `[..., F]` of the spectrum scaled in frequency by `factor`: band k reads frequency `centres[k] / factor`
    (Hz, one per band, increasing), linearly interpolated between bands; beyond the first or last band, that band."""
    return read_bands(x, centres / factor, centres)


def warp_formants(x: torch.Tensor, factors: tuple[float, ...], centres: torch.Tensor) -> torch.Tensor:
    """Features `[..., F]` of the spectrum under the piecewise-linear warp g with g(0) = 0, g(k_j) = factors[j]·k_j at the
    `FORMANT_KNOTS` k_j and g fixed at the top band's centre: band k reads frequency g⁻¹(centres[k])."""
    knots = np.array([0.0, *FORMANT_KNOTS, float(centres[-1])])
    moved = np.array([0.0, *(f * k for f, k in zip(factors, FORMANT_KNOTS)), float(centres[-1])])
    if np.any(np.diff(moved) <= 0):
        raise ValueError(f"formant factors {factors} fold the frequency axis (knots {FORMANT_KNOTS} Hz no longer increase)")
    return read_bands(x, torch.from_numpy(np.interp(centres.numpy(), moved, knots)), centres)


def read_bands(x: torch.Tensor, freqs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Features `[..., F]` whose band k holds x at frequency `freqs[k]` (Hz), linearly interpolated between the bands'
    `centres` (Hz, increasing); beyond the first or last band, that band."""
    pos = torch.from_numpy(np.interp(freqs.numpy(), centres.numpy(), np.arange(len(centres)))).to(x.dtype)
    lo = pos.floor().long().clamp(max=len(centres) - 2)
    w = pos - lo
    return x[..., lo] * (1 - w) + x[..., lo + 1] * w


def stretch_time(x: torch.Tensor, factor: float) -> torch.Tensor:
    """`x` `[T, ...]` lasting `factor` times as long about its middle step c = (T − 1)/2: step n reads x at
    c + (n − c)/factor, linearly interpolated; steps that read beyond the clip are zero."""
    steps = x.shape[0]
    centre = (steps - 1) / 2
    pos = centre + (torch.arange(steps, dtype=torch.float64) - centre) / factor
    inside = (pos >= 0) & (pos <= steps - 1)
    lo = pos.floor().long().clamp(0, max(steps - 2, 0))
    w = (pos - lo).clamp(0, 1).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    y = x[lo] * (1 - w) + x[(lo + 1).clamp(max=steps - 1)] * w
    return y * inside.to(x.dtype).view_as(w)


def augment_features(x: torch.Tensor, aug: Augmentation, centres: torch.Tensor | None = None,
                     partner: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
    """Steps 2–6 on features `[T, C, F]`; `centres` (Hz, one per Mel band) are needed for the frequency warp, `partner()`
    (another clip's features, drawn at random) for the band statistics mixing."""
    if aug.style_mix and float(torch.rand(())) < aug.style_mix:
        if partner is None:
            raise ValueError("style_mix needs the features of other clips to mix with")
        weight = float(torch.distributions.Beta(aug.style_alpha, aug.style_alpha).sample())
        x = mix_band_statistics(x, partner(), weight)
    low, high = aug.warp_range
    if (low, high) != (1.0, 1.0):
        if centres is None:
            raise ValueError("freq_warp needs the Mel band centre frequencies")
        x = warp_bands(x, low + (high - low) * float(torch.rand(())), centres)
    if aug.formant_warp:
        if centres is None:
            raise ValueError("formant_warp needs the Mel band centre frequencies")
        x = warp_formants(x, tuple(1 + aug.formant_warp * (2 * torch.rand(len(FORMANT_KNOTS), dtype=torch.float64) - 1)), centres)
    if aug.time_stretch:
        x = stretch_time(x, 1 + aug.time_stretch * (2 * float(torch.rand(())) - 1))
    if aug.time_shift_steps:
        x = shift_time(x, _uniform_int(2 * aug.time_shift_steps) - aug.time_shift_steps)
    if aug.time_masks:
        x = mask(x, 0, aug.time_masks, aug.time_mask_steps)
    if aug.freq_masks:
        x = mask(x, 2, aug.freq_masks, aug.freq_mask_bands)
    return x
