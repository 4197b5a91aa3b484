"""LPC re-synthesis: a clip's spectral envelope kept, its voice source replaced by a pulse train and noise.

The formant and articulatory synthesisers (SAM, DECtalk; GnuSpeech) excite their vocal-tract filters with a synthetic
buzz; the neural and concatenative engines sound like recorded voices. Re-synthesising a speaker of any engine through its own all-pole envelope
(Atal & Hanauer 1971) with a synthetic source gives the corpus voices whose words are the engine's and whose source is
a synthesiser's buzz, so a network cannot tell the words by the kind of source.
"""

from __future__ import annotations

import librosa
import numpy as np
from scipy.signal import lfilter

from spikeforge.data.speech_engines import SAMPLE_RATE

#: analysis window and hop in samples at `SAMPLE_RATE` (16 kHz: 25 ms, 10 ms), all-pole order (2 per kHz + 2)
FRAME, HOP, ORDER = 400, 160, 18


def envelope(frame: np.ndarray) -> np.ndarray:
    """A(z) of a windowed frame: Burg's LPC of order `ORDER`, bandwidths widened by γ^k (γ = 0.995) so every pole lies
    inside the unit circle; 1 (a flat envelope) for a silent frame or one whose fit is not stable."""
    flat = np.r_[1.0, np.zeros(ORDER)]
    if not np.any(frame):
        return flat
    a = librosa.lpc(frame, order=ORDER) * 0.995 ** np.arange(ORDER + 1)
    return a if np.all(np.isfinite(a)) and np.abs(np.roots(a)).max() < 1.0 else flat


def excitation(voicing: np.ndarray, f0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Source `[len(f0) · HOP]`: per hop, √v·pulses at f0 (unit power) + √(1 − v)·white noise (unit power)."""
    phase = np.cumsum(np.repeat(f0, HOP) / SAMPLE_RATE)
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one sample of 1 at each new period
    pulses *= np.sqrt(SAMPLE_RATE / np.repeat(f0, HOP))  # unit mean power at any f0
    v = np.repeat(voicing, HOP)
    return np.sqrt(v) * pulses + np.sqrt(1.0 - v) * rng.standard_normal(len(pulses))


def lpc_resynthesize(wave: np.ndarray, f0: float, rng: np.random.Generator) -> np.ndarray:
    """`wave` (at `SAMPLE_RATE`) through its own all-pole envelope 1/A_t(z) (order `ORDER`, one per hop), excited by a pulse train around
    `f0` Hz (a slow random drift of ±8 %) where the hop is voiced, by noise where it is not, each hop at the input's RMS.

    Voicing v_t = clip(1.5 − 5·zcr_t, 0, 1) from the zero-crossing rate (voiced speech crosses rarely, fricatives often)."""
    wave = np.asarray(wave, dtype=np.float64)
    hops = int(np.ceil(len(wave) / HOP))
    padded = np.pad(wave, (FRAME // 2, FRAME // 2 + hops * HOP - len(wave)))
    frames = librosa.util.frame(padded, frame_length=FRAME, hop_length=HOP)[:, :hops] * np.hanning(FRAME)[:, None]
    zcr = librosa.feature.zero_crossing_rate(wave, frame_length=FRAME, hop_length=HOP, center=True)[0, :hops]
    voicing = np.clip(1.5 - 5.0 * np.pad(zcr, (0, hops - len(zcr)), mode="edge"), 0.0, 1.0)
    drift = np.cumsum(rng.normal(0.0, 0.01, hops))
    source = excitation(voicing, f0 * np.exp(np.clip(drift - drift.mean(), -0.08, 0.08)), rng)
    out, state = np.zeros(hops * HOP), np.zeros(ORDER)
    target = np.pad(wave, (0, hops * HOP - len(wave))).reshape(hops, HOP)
    for t in range(hops):
        block, state = lfilter([1.0], envelope(frames[:, t]), source[t * HOP:(t + 1) * HOP], zi=state)
        rms, want = np.sqrt(np.mean(block ** 2)), np.sqrt(np.mean(target[t] ** 2))
        out[t * HOP:(t + 1) * HOP] = block * (want / rms if rms > 0 else 0.0)
    return out[: len(wave)].astype(np.float32)
