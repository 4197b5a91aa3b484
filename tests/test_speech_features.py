"""Log-Mel features (report §6.1.1): shape, band rescaling, time and frequency alignment, cache."""

import librosa
import numpy as np
import pytest
import torch

from spikeforge.data.audio_features import LogMelConfig, cache_key, cached, fit_length, log_mel, log_mel_spectrogram, rescale_bands

SR = 16000


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_config_matches_the_papers_settings():
    c = LogMelConfig()
    assert (c.win_length, c.hop_length, c.clip_samples, c.n_mels, c.fmin, c.fmax) == (480, 160, 16000, 40, 20.0, 4000.0)


def test_fit_length_centres_pad_and_crop():
    assert fit_length(np.array([1.0, 2.0]), 5).tolist() == [0.0, 1.0, 2.0, 0.0, 0.0]
    assert fit_length(np.arange(6.0), 3).tolist() == [1.0, 2.0, 3.0]


def test_rescale_bands_divides_each_band_by_its_std_over_time():
    feat = np.array([[0.0, 4.0], [1.0, 1.0]])  # band 0: std 2; band 1: constant, kept
    assert rescale_bands(feat).tolist() == [[0.0, 2.0], [1.0, 1.0]]


def test_shape_is_time_major_with_optional_deltas():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(12000).astype(np.float32)
    assert log_mel(wave).shape == (100, 1, 40)
    x = log_mel(wave, LogMelConfig(deltas=True))
    assert x.shape == (100, 3, 40) and x.dtype == torch.float32


def test_every_band_has_unit_variance_across_time():
    rng = np.random.default_rng(1)
    wave = rng.standard_normal(SR).astype(np.float32) * np.linspace(0.1, 1, SR, dtype=np.float32)
    x = log_mel(wave, LogMelConfig(deltas=True))
    std = x.double().std(dim=0, unbiased=False)  # [C, F]
    assert torch.allclose(std, torch.ones_like(std), atol=1e-4)


def test_gain_invariant():
    wave = tone(700) + 0.01 * np.random.default_rng(2).standard_normal(SR).astype(np.float32)
    assert torch.allclose(log_mel(wave), log_mel(0.05 * wave), atol=1e-4)


def test_tone_lands_in_the_band_whose_centre_is_nearest():
    centres = librosa.mel_frequencies(42, fmin=20, fmax=4000)[1:-1]
    for freq in (300.0, 1000.0, 2500.0):
        spec = log_mel_spectrogram(tone(freq))
        assert spec.shape == (40, 100) and spec.min() >= 0 and np.isclose(spec.max(), np.log(2), atol=0.05)
        assert int(spec.mean(axis=1).argmax()) == int(np.abs(centres - freq).argmin())


def test_energy_above_fmax_is_ignored():
    spec = log_mel_spectrogram(tone(6000) + 1e-3 * tone(1000))
    assert int(spec.mean(axis=1).argmax()) == int(np.abs(librosa.mel_frequencies(42, fmin=20, fmax=4000)[1:-1] - 1000).argmin())


def test_recipe_fmax_takes_the_bands_to_8khz_for_training_and_evaluation_alike():
    from spikeforge.data.speech_commands import features_of

    config = features_of({"fmax": 8000})  # what training, `eval` and `detect` build from a run's dataset section
    assert (config.fmin, config.fmax) == (20.0, 8000.0) and features_of({}).fmax == 4000.0
    centres = librosa.mel_frequencies(42, fmin=20, fmax=8000)[1:-1]
    spec = log_mel_spectrogram(tone(6000) + 1e-3 * tone(1000), config)
    assert int(spec.mean(axis=1).argmax()) == int(np.abs(centres - 6000).argmin())  # the tone above 4 kHz is now seen
    with pytest.raises(ValueError, match="fmax ≤ 8000 Hz"):
        features_of({"fmax": 11025})


def test_recipe_n_mels_sets_the_number_of_bands_for_training_and_evaluation_alike():
    from spikeforge.data.speech_commands import features_of

    config = features_of({"n_mels": 64, "fmax": 8000})
    assert config.n_mels == 64 and features_of({}).n_mels == 40
    spec = log_mel_spectrogram(tone(6000) + 1e-3 * tone(1000), config)
    assert spec.shape[0] == 64
    centres = librosa.mel_frequencies(66, fmin=20, fmax=8000)[1:-1]
    assert int(spec.mean(axis=1).argmax()) == int(np.abs(centres - 6000).argmin())


def test_a_click_shows_at_its_10ms_step():
    wave = np.zeros(SR, dtype=np.float32)
    wave[5000] = 1.0  # 312.5 ms → step 31 (frames centred on n·10 ms)
    raw = log_mel(wave)[:, 0].sum(dim=1)
    assert int(raw.argmax()) == 31


def test_cache_computes_once_then_reads(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"features": torch.arange(6.0).reshape(2, 3)}, {"note": "x"}

    f = tmp_path / "a.wav"
    f.write_bytes(b"1")
    key = cache_key(LogMelConfig(), [f], {"split": "train"})
    a, meta_a = cached(tmp_path / "c", key, compute)
    b, meta_b = cached(tmp_path / "c", key, compute)
    assert calls == [1] and torch.equal(a["features"], b["features"]) and meta_b == {"note": "x"}
    assert key != cache_key(LogMelConfig(deltas=True), [f], {"split": "train"})
    f.write_bytes(b"22")
    assert key != cache_key(LogMelConfig(), [f], {"split": "train"})


def test_cmvn_is_zero_mean_unit_variance_log_mel_that_a_fixed_gain_per_band_does_not_change():
    from spikeforge.data.audio_features import band_centres, centred_db, clip_mel, features_from_mel

    cmvn = LogMelConfig(normalization="cmvn")
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal(SR) * np.linspace(0.1, 1.0, SR)).astype(np.float32)
    mel = clip_mel(wave, cmvn).astype(np.float64)
    x = features_from_mel(mel, cmvn)[:, 0].double()  # [T, F]
    torch.testing.assert_close(x.mean(0), torch.zeros(40, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(0, unbiased=False), torch.ones(40, dtype=torch.float64), atol=1e-5, rtol=0)
    db = 10 * np.log10(mel / mel.max())  # no bin of this noise is 80 dB below the peak: the floor is not reached
    assert db.min() > -80
    expected = (db - db.mean(1, keepdims=True)) / db.std(1, keepdims=True)
    torch.testing.assert_close(x, torch.from_numpy(expected.T), atol=1e-5, rtol=0)
    coloured = mel * np.exp(rng.uniform(-3, 3, size=(40, 1)))  # a microphone / telephone filter: a gain per band
    torch.testing.assert_close(features_from_mel(coloured, cmvn), features_from_mel(mel, cmvn), atol=1e-4, rtol=0)
    assert not torch.allclose(log_mel(wave), features_from_mel(coloured, LogMelConfig()), atol=1e-2)  # the papers' features change
    floor = centred_db(np.array([[1.0, 1e-12, 1e-12, 1e-12]]))
    assert floor[0].tolist() == pytest.approx([60.0, -20.0, -20.0, -20.0])  # −120 dB floored to −80 dB, then centred
    assert band_centres(cmvn).shape == (40,)


def test_db_features_are_decibels_below_the_peak_with_the_bands_levels_kept():
    from spikeforge.data.audio_features import features_from_mel, peak_db, running_peak_db

    config = LogMelConfig(normalization="db")
    mel = np.array([[1.0, 0.01], [1e-12, 0.1]])  # [F, T]: 0, −20, −120 (floored to −80) and −10 dB below the peak
    expected = [[2.0, -2.0], [1.0, 1.5]]  # (dB + 40) / 20, time-major
    np.testing.assert_allclose(peak_db(mel).T, expected, atol=1e-9)
    np.testing.assert_array_equal(peak_db(np.zeros((2, 3))), np.full((2, 3), -2.0))  # digital silence: the floor
    np.testing.assert_allclose(running_peak_db(mel, 2), peak_db(mel), atol=1e-6)  # peak in frame 0: the causal twin agrees
    x = features_from_mel(mel, config)
    assert x.shape == (2, 1, 2) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 0], torch.tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(features_from_mel(mel * 7.0, config), x)  # a gain on every band: the same
    # band 1 ten times stronger (the peak stays 1): its bin above the floor 10 dB / 20 = 0.5 higher, band 0 unchanged
    tilted = features_from_mel(mel * np.array([[1.0], [10.0]]), config)[:, 0]
    torch.testing.assert_close(tilted, torch.tensor([[2.0, -2.0], [1.0, 2.0]]))


def test_pcen_is_the_per_channel_energy_normalisation_of_wang_et_al_by_hand():
    from spikeforge.data.audio_features import features_from_mel, pcen

    config = LogMelConfig(normalization="pcen")
    rng = np.random.default_rng(1)
    mel = rng.uniform(0.0, 2.0, size=(3, 50)) ** 4  # Mel power [F, T]
    mel[:, :10] = 0.0  # silence before the word
    t_frames = 0.4 * 16000 / 160  # 0.4 s time constant in 10 ms frames
    s = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
    energy = np.sqrt(mel) * 2.0**31
    smooth, expected = np.ones(3), np.empty_like(mel)  # M starts at 1 on the int32 scale: silence
    for t in range(mel.shape[1]):
        smooth = (1 - s) * smooth + s * energy[:, t]  # M(t) = (1 − s) M(t − 1) + s E(t)
        expected[:, t] = (energy[:, t] / (1e-6 + smooth) ** 0.98 + 2) ** 0.5 - 2**0.5  # eq. (1), Wang et al. 2017
    np.testing.assert_allclose(pcen(mel, config), expected, rtol=1e-5, atol=1e-6)
    x = features_from_mel(mel, config)[:, 0].double().numpy()  # [T, F], each band at unit deviation over time
    np.testing.assert_allclose(x, (expected / expected.std(1, keepdims=True)).T, rtol=1e-4, atol=1e-5)
    louder = mel.copy()
    louder[0, 30:] *= 100  # one band 20 dB louder from frame 30 on: the gain control brings it back down
    y = pcen(louder, config)
    assert y[0, 31] > 3 * expected[0, 31] and y[0, -1] < 1.5 * expected[0, -1]


def test_spectral_envelope_keeps_the_first_cepstra_and_removes_the_pitch_ripple():
    from spikeforge.data.audio_features import spectral_envelope

    bands = np.arange(40)
    basis = lambda k: np.cos(np.pi * k * (2 * bands + 1) / 80)  # DCT-II basis vector k over 40 bands
    envelope = 20 * basis(1) - 8 * basis(3) + 5  # a formant-like smooth shape (dB)
    ripple = 6 * basis(30)  # harmonics of a voice's pitch: fast alternation across the bands
    feat = np.stack([envelope + ripple, 2 * envelope - ripple], axis=1)  # [F, T] with two frames
    out = spectral_envelope(feat, 12)
    np.testing.assert_allclose(out, np.stack([envelope, 2 * envelope], axis=1), atol=1e-9)
    np.testing.assert_allclose(spectral_envelope(feat, 40), feat, atol=1e-9)  # every coefficient kept: unchanged
    np.testing.assert_allclose(spectral_envelope(feat, 1), np.full_like(feat, feat.mean(0)), atol=1e-9)  # c0: the mean level


@pytest.mark.parametrize("normalization", ["cmvn", "db", "running_db"])
def test_cepstra_feature_option_smooths_db_spectra_and_is_checked(normalization):
    from spikeforge.data.audio_features import clip_mel, features_from_mel, spectral_envelope

    wave = tone(220) + tone(440) + tone(660)  # harmonics 220 Hz apart: peaks and valleys across the Mel bands
    mel = clip_mel(wave)
    plain = features_from_mel(mel, LogMelConfig(normalization=normalization))[:, 0].numpy()
    smooth = features_from_mel(mel, LogMelConfig(normalization=normalization, cepstra=8))[:, 0].numpy()
    assert smooth.shape == plain.shape == (100, 40)
    roughness = lambda x: np.abs(np.diff(x, n=2, axis=1)).mean()  # second difference across the bands
    assert roughness(smooth) < 0.5 * roughness(plain)
    if normalization != "cmvn":  # the dB front ends rescale no band: the envelope of their own frames, levels kept
        np.testing.assert_allclose(smooth, spectral_envelope(plain.T, 8).T, atol=1e-5)
    with pytest.raises(ValueError, match="one of \\('cmvn', 'db', 'running_db'\\).*normalization='clip'"):
        LogMelConfig(cepstra=8)
    with pytest.raises(ValueError, match="0 \\(off\\) to n_mels=40"):
        LogMelConfig(normalization="cmvn", cepstra=41)


def test_second_front_end_is_the_same_mel_power_under_the_other_normalisation_as_one_more_channel():
    from spikeforge.data.audio_features import clip_mel, features_from_mel, peak_db

    wave = tone(220) * np.linspace(0, 1, 16000, dtype=np.float32) + tone(1500)
    mel = clip_mel(wave)
    pair = LogMelConfig(normalization="db", second_front_end="clip")
    x = features_from_mel(mel, pair)
    assert pair.channels == 2 and x.shape == (100, 2, 40)
    np.testing.assert_allclose(x[:, 0].numpy().T, peak_db(mel), atol=1e-6)  # the bands' levels, no band rescaled
    np.testing.assert_allclose(x[:, 1].numpy().T, rescale_bands(np.log1p(mel / mel.max())), atol=1e-5)  # the papers' scaling
    enveloped = features_from_mel(mel, LogMelConfig(normalization="db", second_front_end="clip", cepstra=8))
    np.testing.assert_array_equal(enveloped[:, 1], x[:, 1])  # cepstra smooths the first front end alone
    assert not torch.equal(enveloped[:, 0], x[:, 0])
    for bad, message in [({"second_front_end": "clip"}, "other than normalization='clip'"),
                         ({"second_front_end": "mfcc"}, "one of \\('clip'"),
                         ({"normalization": "db", "second_front_end": "clip", "deltas": True}, "use one of them"),
                         ({"normalization": "running_db", "second_front_end": "clip"}, "either both are causal")]:
        with pytest.raises(ValueError, match=message):
            LogMelConfig(**bad)

