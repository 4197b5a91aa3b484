"""Log-Mel features of speech clips (report §6.1.1, low-activity paper §6) and their on-disk cache.

Per clip: 40 log-Mel bands between 20 and 4000 Hz, 30 ms window, 10 ms hop (= one simulation
step), so 100 steps × 40 bands for a 1 s clip; each band rescaled to unit variance across time;
optionally the Δ and ΔΔ spectrograms as two more channels. Output is time-major `[T, C, F]`.

`normalization="clip"` (the papers) compresses by the clip's largest Mel power and rescales by the
clip's band deviations; `"running"` is its causal twin for streaming: frame n is compressed by
the largest Mel power of the last `steps` frames and rescaled by the band deviations of those
frames (frames before the signal count as zeros), so a clip's features equal a stream's.
`cepstra=k` (with "cmvn", "db" or "running_db") keeps only the spectral envelope: each frame's dB spectrum is cut to its
first k cepstral coefficients (DCT-II over the bands, as MFCCs) and transformed back to the bands,
which removes the harmonics of the voice's pitch and the fine detail a synthesiser's source leaves.
`"pcen"` is per-channel energy normalisation (Wang et al. 2017, the front end of robust keyword spotting):
each band divided by a causal running mean of itself, then root-compressed, so a band's level and a
voice's spectral tilt are normalised away while onsets (bursts, fricatives) stand out.
`"db"` is the one that keeps the bands' levels: dB below the clip's peak, no band rescaled, so the shape of the
spectrum across the bands (where the formants lie, how strong each is) reaches the network; `"running_db"` is its
causal twin, dB below the peak of the last `steps` frames.
`second_front_end` adds one more channel: the same Mel power under a second normalisation (e.g. `"db"` with `"clip"`:
the bands' levels and the papers' per-band scaling side by side, for one network to read both).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import scipy.fft
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file


NORMALIZATIONS = ("clip", "running", "cmvn", "pcen", "db", "running_db")
DB_SPECTRA = ("cmvn", "db", "running_db")  # the normalisations whose frames are dB spectra, which `cepstra` can smooth
LEVEL_KEEPING = ("db", "running_db")  # the normalisations that scale no band on its own: the bands' levels reach the network
CAUSAL = {"clip": "running", "db": "running_db"}  # each whole-clip normalisation's twin over the last `steps` frames


@dataclass(frozen=True)
class LogMelConfig:
    """Feature settings; the defaults are the papers' (report §6.1.1)."""

    sample_rate: int = 16000
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float = 4000.0
    window_ms: float = 30.0
    hop_ms: float = 10.0
    steps: int = 100
    deltas: bool = False
    normalization: str = "clip"
    cepstra: int = 0
    second_front_end: str = ""

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if not 0 <= self.cepstra <= self.n_mels:
            raise ValueError(f"cepstra is the number of cepstral coefficients kept, 0 (off) to n_mels={self.n_mels}, got {self.cepstra}")
        if self.cepstra and self.normalization not in DB_SPECTRA:
            raise ValueError(f"cepstra smooths dB spectra; use it with normalization set to one of {DB_SPECTRA} "
                             f"(got normalization={self.normalization!r})")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"the Mel bands need 0 ≤ fmin < fmax ≤ {self.sample_rate / 2:g} Hz (half the sample rate), "
                             f"got fmin={self.fmin:g}, fmax={self.fmax:g}")
        if self.second_front_end:
            if self.second_front_end not in NORMALIZATIONS or self.second_front_end == self.normalization:
                raise ValueError(f"second_front_end is a second normalisation read as one more channel, one of {NORMALIZATIONS} "
                                 f"other than normalization={self.normalization!r}; got {self.second_front_end!r}")
            if self.deltas:
                raise ValueError("deltas and second_front_end each add channels to one front end's; use one of them")
            if (self.normalization in CAUSAL.values()) != (self.second_front_end in CAUSAL.values()):
                raise ValueError(f"normalization={self.normalization!r} and second_front_end={self.second_front_end!r}: either both "
                                 f"are causal ({sorted(CAUSAL.values())}) or neither, so a clip's features equal a stream's or neither does")
        if self.causal and self.deltas:
            raise ValueError(f"Δ/ΔΔ features look ahead in time; use deltas=false with normalization={self.normalization!r}")

    @property
    def causal(self) -> bool:
        """Whether each frame's features depend only on it and the frames before it (a stream can compute them)."""
        return self.normalization in CAUSAL.values()

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.window_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def clip_samples(self) -> int:
        """Samples in one clip: `steps` hops (1 s with the defaults)."""
        return self.steps * self.hop_length

    @property
    def channels(self) -> int:
        return (3 if self.deltas else 1) + bool(self.second_front_end)

    @property
    def second(self) -> LogMelConfig:
        """The settings of the second front end's channel: its normalisation, nothing else added."""
        return replace(self, normalization=self.second_front_end, second_front_end="", cepstra=0)


def fit_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """Zero-pad (or crop) `wave` symmetrically to `samples`, keeping it centred as in the authors' code."""
    if len(wave) >= samples:
        start = (len(wave) - samples) // 2
        return wave[start : start + samples]
    before = (samples - len(wave)) // 2
    return np.pad(wave, (before, samples - len(wave) - before))


def rescale_bands(feat: np.ndarray) -> np.ndarray:
    """Divide each band (row of `[F, T]`) by its standard deviation across time (report §6.1.1); constant bands are left as they are."""
    std = feat.std(axis=1, keepdims=True)
    return feat / np.where(std > 0, std, 1.0)


def clip_mel(wave: np.ndarray, config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """Mel power `[F, steps]` of a mono clip centred in `config.clip_samples` and peak-normalised."""
    wave = fit_length(np.asarray(wave, dtype=np.float32), config.clip_samples)
    peak = float(np.abs(wave).max())
    if peak > 0:
        wave = wave / peak
    return mel_power(wave, config)[:, : config.steps]


def compress(mel: np.ndarray) -> np.ndarray:
    """Mel power S `[F, T]` compressed as log(1 + S / max S) (the authors' released code; gain-invariant and ≥ 0)."""
    top = float(mel.max())
    return np.log1p(mel / top) if top > 0 else mel


def log_mel_spectrogram(wave: np.ndarray, config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """Compressed Mel spectrogram `[F, T]` of a mono clip (`clip_mel`, then `compress`)."""
    return compress(clip_mel(wave, config))


def mel_power(wave: np.ndarray, config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """Mel power `[F, 1 + len // hop]` of a whole signal; frame n is centred on sample n·hop (zeros beyond the ends)."""
    return librosa.feature.melspectrogram(
        y=np.asarray(wave, dtype=np.float32),
        sr=config.sample_rate,
        n_fft=config.win_length,
        win_length=config.win_length,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        pad_mode="constant",
    )


def db_below_peak(mel: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    """Mel power `[F, T]` in dB relative to its peak, floored `top_db` below it."""
    return librosa.power_to_db(mel, ref=float(mel.max()) or 1.0, amin=1e-20, top_db=top_db)


def centred_db(mel: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    """Mel power `[F, T]` as dB below its peak (at most `top_db` below), each band minus its mean across time
    (with `rescale_bands` after it: cepstral mean and variance normalisation in the log-Mel domain)."""
    db = db_below_peak(mel, top_db)
    return db - db.mean(axis=1, keepdims=True)


def db_to_unit_range(db: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    """dB in [−top_db, 0] mapped linearly onto [−2, 2]: (dB + top_db/2) / (top_db/4)."""
    return (db + top_db / 2) / (top_db / 4)


def peak_db(mel: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    """Mel power `[F, T]` as dB below the clip's peak on [−2, 2] (`frame_db` with every frame's reference the peak;
    a clip of digital silence is all floor). No band is rescaled, so the bands' levels relative to each other are kept."""
    return frame_db(mel, np.full(mel.shape[1], mel.max()), top_db)


def frame_db(mel: np.ndarray, ref: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    """Mel power `[F, T]` in dB below `ref` (`[T]`, each frame's reference power), floored `top_db` down, on [−2, 2];
    a frame whose reference is 0 (nothing heard yet) is all floor."""
    db = 10 * np.log10(np.maximum(mel, 1e-20) / np.where(ref > 0, ref, 1.0))
    return db_to_unit_range(np.where(ref > 0, np.clip(db, -top_db, 0.0), -top_db), top_db)


def running_peak(mel: np.ndarray, window: int) -> np.ndarray:
    """The largest Mel power `[T]` of the last `window` frames up to each frame (zeros before the signal)."""
    pad = np.pad(mel.max(0), (window - 1, 0))
    return np.lib.stride_tricks.sliding_window_view(pad, window).max(-1)


def running_peak_db(mel: np.ndarray, window: int, top_db: float = 80.0) -> np.ndarray:
    """The causal twin of `peak_db`: Mel power `[F, T]` in dB below the peak of the last `window` frames (`frame_db`)."""
    mel = mel.astype(np.float64)
    return frame_db(mel, running_peak(mel, window), top_db).astype(np.float32)


def pcen(mel: np.ndarray, config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """Per-channel energy normalisation of Mel power `[F, T]` (Wang et al. 2017, eq. (1); librosa's defaults):
    PCEN(t, f) = (E / (ε + M)^α + δ)^r − δ^r, with E the band's magnitude on the int32 scale (√S · 2³¹),
    M(t) = (1 − s) M(t − 1) + s E(t) over a 0.4 s time constant, α = 0.98, δ = 2, r = 0.5, ε = 10⁻⁶."""
    return librosa.pcen(np.sqrt(mel) * 2.0**31, sr=config.sample_rate, hop_length=config.hop_length)


def spectral_envelope(feat: np.ndarray, cepstra: int) -> np.ndarray:
    """dB features `[F, T]` with only the first `cepstra` coefficients of each frame's DCT-II over the bands kept (cepstral liftering)."""
    coeffs = scipy.fft.dct(feat, type=2, norm="ortho", axis=0)
    coeffs[cepstra:] = 0
    return scipy.fft.idct(coeffs, type=2, norm="ortho", axis=0)


def band_centres(config: LogMelConfig = LogMelConfig()) -> torch.Tensor:
    """Centre frequency (Hz) of each Mel band of `config` (float64 `[F]`), the peaks of librosa's triangular filters."""
    return torch.from_numpy(librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=config.fmax)[1:-1])


def running_normalize(mel: np.ndarray, window: int) -> np.ndarray:
    """The causal normalisation of Mel power `[F, T]`: log(1 + S / max S over the last `window` frames),
    each band divided by its deviation over the last `window` frames (zeros before the signal)."""
    mel = mel.astype(np.float64)
    ref = running_peak(mel, window)
    compressed = np.log1p(mel / np.where(ref > 0, ref, 1.0))
    past = np.lib.stride_tricks.sliding_window_view(np.pad(compressed, ((0, 0), (window - 1, 0))), window, axis=1)
    std = past.std(-1)
    return (compressed / np.where(std > 0, std, 1.0)).astype(np.float32)


def log_mel(wave: np.ndarray, config: LogMelConfig = LogMelConfig()) -> torch.Tensor:
    """Features `[T, C, F]` of a mono clip: the log-Mel spectrogram (plus Δ, ΔΔ when `config.deltas`),
    each channel's bands rescaled to unit variance across time (report §6.1.1); with a causal normalisation
    (`"running"`, `"running_db"`) the clip's frames as a stream that starts with it."""
    return features_from_mel(clip_mel(wave, config), config)


def features_from_mel(mel: np.ndarray, config: LogMelConfig = LogMelConfig()) -> torch.Tensor:
    """Features `[T, C, F]` from a clip's Mel power `[F, T]` (`clip_mel`): compression and band scaling as `config` says,
    then the second front end's channel (`config.second_front_end`)."""
    first = _front_end(mel, config)
    return torch.cat([first, _front_end(mel, config.second)], dim=1) if config.second_front_end else first


def _front_end(mel: np.ndarray, config: LogMelConfig) -> torch.Tensor:
    """Features `[T, C, F]` of one normalisation (`config.normalization`; Δ/ΔΔ and `cepstra` as `config` says)."""
    if config.normalization == "running":
        return torch.from_numpy(np.ascontiguousarray(running_normalize(mel, config.steps).T[:, None]))
    if config.normalization == "running_db":
        feat = running_peak_db(mel, config.steps)
    elif config.normalization == "cmvn":
        feat = centred_db(mel)
    elif config.normalization == "pcen":
        feat = pcen(mel, config)
    elif config.normalization == "db":
        feat = peak_db(mel)
    else:
        feat = compress(mel)
    if config.cepstra:
        feat = spectral_envelope(feat, config.cepstra)
    channels = [feat]
    if config.deltas:
        channels += [librosa.feature.delta(feat, order=1), librosa.feature.delta(feat, order=2)]
    if config.normalization not in LEVEL_KEEPING:
        channels = [rescale_bands(c) for c in channels]
    stacked = np.stack(channels)  # [C, F, T]
    return torch.from_numpy(np.ascontiguousarray(stacked.transpose(2, 0, 1), dtype=np.float32))


def cache_key(config: LogMelConfig, files: list[Path], extra: dict) -> str:
    """A digest of the feature settings, the files (path, size, mtime) and `extra`: any change gives a new key."""
    h = hashlib.sha256(json.dumps({"config": asdict(config), "extra": extra}, sort_keys=True).encode())
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:  # a dangling link: the loader skips and reports it
            h.update(f"{f}|missing\n".encode())
            continue
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def cached(
    cache_dir: Path | None, key: str, compute: Callable[[], tuple[dict[str, torch.Tensor], dict[str, str]]]
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata from `cache_dir/key.safetensors`, computed (and written) only when absent.

    `cache_dir=None` computes every time. Writes go through a temporary file, so a crash leaves no partial cache;
    a cache file that cannot be read (damaged on disk) is rebuilt with one warning.
    """
    if cache_dir is None:
        return compute()
    path = Path(cache_dir) / f"{key}.safetensors"
    if path.exists():
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
            return load_file(str(path)), meta
        except (SafetensorError, OSError) as err:
            warnings.warn(f"feature cache {path} is unreadable ({err}); rebuilding it", stacklevel=2)
    tensors, meta = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return tensors, meta
