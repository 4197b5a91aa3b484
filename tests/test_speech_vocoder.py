"""LPC re-synthesis: the envelope and level of the input kept, the source a pulse train at f0 or noise; the generator's option."""

import csv

import numpy as np
import pytest
from scipy.signal import lfilter

from spikeforge.cli import main
from spikeforge.data import speech_generate as gen
from spikeforge.data.vocoder import HOP, excitation, lpc_resynthesize

SR = 16000


def _vowel(f0: float, seconds: float = 0.5) -> np.ndarray:
    """A pulse train at f0 through two resonances (700 and 1,200 Hz, an /a/'s first formants)."""
    n = int(seconds * SR)
    x = excitation(np.ones(n // HOP), np.full(n // HOP, f0), np.random.default_rng(0))
    for f, bw in ((700.0, 80.0), (1200.0, 90.0)):
        r, theta = np.exp(-np.pi * bw / SR), 2 * np.pi * f / SR
        x = lfilter([1.0], [1.0, -2 * r * np.cos(theta), r * r], x)
    return 0.1 * x / np.abs(x).max()


def _period(x: np.ndarray) -> int:
    """The period in samples: the first autocorrelation peak between 2 and 20 ms within 80 % of the highest there."""
    ac = np.correlate(x, x, "full")[len(x) - 1:][:330]
    first = 32 + int(np.argmax(ac[32:320] >= 0.8 * ac[32:320].max()))
    return first - 10 + int(np.argmax(ac[first - 10:first + 10]))


def _envelope(x: np.ndarray) -> np.ndarray:
    """Power spectrum smoothed over 300 Hz, in dB."""
    p = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    return 10 * np.log10(np.convolve(p, np.ones(150) / 150, "same") + 1e-12)


def test_excitation_is_unit_power_pulses_at_f0_or_noise():
    pulses = excitation(np.ones(100), np.full(100, 200.0), np.random.default_rng(0))
    assert np.count_nonzero(pulses) == pytest.approx(100 * HOP * 200 / SR, abs=1)  # one pulse per period
    assert np.mean(pulses ** 2) == pytest.approx(1.0, rel=0.02)
    noise = excitation(np.zeros(100), np.full(100, 200.0), np.random.default_rng(0))
    assert np.count_nonzero(noise) == len(noise) and np.mean(noise ** 2) == pytest.approx(1.0, rel=0.1)


def test_resynthesis_keeps_the_envelope_and_the_level_and_takes_the_new_pitch():
    vowel = _vowel(110.0)
    out = lpc_resynthesize(vowel, 250.0, np.random.default_rng(1))
    assert out.shape == vowel.shape and out.dtype == np.float32
    # each hop at the input's RMS
    hops = len(vowel) // HOP
    rms_in = np.sqrt(np.mean(vowel[: hops * HOP].reshape(hops, HOP) ** 2, 1))
    rms_out = np.sqrt(np.mean(out[: hops * HOP].reshape(hops, HOP).astype(float) ** 2, 1))
    assert np.allclose(rms_out, rms_in, rtol=1e-4)
    # the pitch is the new source's (period 64 samples at 250 Hz, ±8 % drift), not the input's (145 samples)
    assert _period(vowel) == pytest.approx(SR / 110, abs=2)
    assert _period(out.astype(float)) == pytest.approx(SR / 250, rel=0.1)
    # the formants stay: the smoothed spectra agree below 4 kHz, and both peak near 700 Hz
    band = slice(int(300 * len(vowel) / SR), int(4000 * len(vowel) / SR))
    a, b = _envelope(vowel)[band], _envelope(out.astype(float))[band]
    assert np.corrcoef(a, b)[0, 1] > 0.9
    assert abs(np.argmax(b) - np.argmax(a)) * SR / len(vowel) < 150


def test_resynthesis_of_a_fricative_is_noise_and_of_silence_silence():
    hiss = np.random.default_rng(2).standard_normal(SR // 4) * 0.05  # crosses zero half the time: unvoiced
    out = lpc_resynthesize(hiss, 150.0, np.random.default_rng(3)).astype(float)
    ac = np.correlate(out, out, "full")[len(out) - 1:]
    assert ac[32:320].max() < 0.2 * ac[0]  # no period
    assert not np.any(lpc_resynthesize(np.zeros(1000), 150.0, np.random.default_rng(0)))


def test_make_speakers_resynthesizes_a_fraction_and_leaves_the_others_as_they_were():
    engines = ("espeak-ng", "flite")
    plain = gen.make_speakers(60, seed=3, engines=engines)
    mixed = gen.make_speakers(60, seed=3, engines=engines, resynthesized=0.5)
    assert gen.make_speakers(60, seed=3, engines=engines, resynthesized=0.0) == plain
    changed = [(p, m) for p, m in zip(plain, mixed) if p != m]
    assert 15 <= len(changed) <= 45
    for p, m in changed:
        assert (m.voice, m.pitch, m.speed, m.warp) == (p.voice, p.pitch, p.speed, p.warp)
        assert gen.SOURCE_F0[0] <= m.source_f0 <= gen.SOURCE_F0[1] and m.id != p.id
    with pytest.raises(ValueError, match="--resynthesized is the fraction"):
        gen.make_speakers(10, resynthesized=1.5)


def test_resynthesized_option_writes_the_sources_f0_in_the_speaker_table(tmp_path, capsys):
    out = tmp_path / "sc"
    argv = ["data", "speech-commands", str(out), "--engines", "flite", "--speakers", "3", "--words", "yes", "--per-word", "1",
            "--noise-seconds", "1", "--resynthesized", "1"]
    assert main(argv) == 0 and "wrote 3 clips" in capsys.readouterr().out
    with open(out / "speakers.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(gen.SOURCE_F0[0] <= float(r["source_f0"]) <= gen.SOURCE_F0[1] for r in rows)
