"""espeak-ng generator: speakers, speaker-disjoint splits, augmentation, and the real on-disk layout."""

import shutil

import numpy as np
import pytest
import soundfile as sf

from spikeforge.cli import main
from spikeforge.data import speech_generate as gen
from spikeforge.data.speech_commands import SpeechCommands

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")


def test_default_speakers_are_distinct_and_at_least_24():
    people = gen.make_speakers(40)
    assert len({s.voice for s in people}) == 40 and len({s.id for s in people}) == 40
    assert all(20 <= s.pitch <= 80 and 140 <= s.speed <= 200 for s in people)
    assert gen.make_speakers(40) == people  # reproducible from the seed
    with pytest.raises(ValueError, match="--speakers must be between 3"):
        gen.make_speakers(2)


def test_splits_are_speaker_disjoint_with_every_split_present():
    people = gen.make_speakers(24)
    split = gen.assign_splits(people)
    assert set(split) == {s.id for s in people}
    sizes = {k: list(split.values()).count(k) for k in ("train", "val", "test")}
    assert sizes == {"train": 20, "val": 2, "test": 2}


def test_augment_places_speech_at_the_requested_snr():
    rng = np.random.default_rng(0)
    speech = np.sin(np.linspace(0, 200 * np.pi, 8000)).astype(np.float32)
    noise = np.random.default_rng(1).standard_normal(3 * gen.CLIP_SAMPLES)
    clip = gen.augment(speech, [noise], np.random.default_rng(0), snr_db=(20.0, 20.0))
    assert clip.shape == (gen.CLIP_SAMPLES,) and clip.dtype == np.float32
    # replay the same draws to separate speech from noise
    gain = rng.uniform(0.2, 0.9)
    start = int(rng.integers(0, gen.CLIP_SAMPLES - len(speech) + 1))
    placed = np.zeros(gen.CLIP_SAMPLES)
    placed[start : start + len(speech)] = speech * gain
    residual = clip - placed
    snr = 10 * np.log10(np.mean((speech * gain) ** 2) / np.mean(residual**2))
    assert abs(snr - 20.0) < 0.1


def test_background_noise_kinds_are_unit_peak():
    rng = np.random.default_rng(0)
    for kind in gen.NOISE_KINDS:
        x = gen.background_noise(kind, 1.5, rng)
        assert x.shape == (24000,) and np.isclose(np.abs(x).max(), 1.0)
    with pytest.raises(ValueError, match="unknown noise kind"):
        gen.background_noise("rain", 1.0, rng)


def test_missing_espeak_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gen.shutil, "which", lambda name: None)
    assert main(["data", "speech-commands", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "espeak-ng is not installed" in err and "apt-get install espeak-ng" in err and err.count("\n") == 1


@needs_espeak
def test_small_dataset_in_the_real_layout_read_by_the_loader(tmp_path, capsys):
    out = tmp_path / "sc"
    argv = ["data", "speech-commands", str(out), "--speakers", "24", "--words", "yes,bed", "--per-word", "1", "--noise-seconds", "2"]
    assert main(argv) == 0
    assert "wrote 48 clips" in capsys.readouterr().out
    wavs = sorted(out.glob("*/*.wav"))
    assert {p.parent.name for p in wavs} == {"yes", "bed", "_background_noise_"}
    for p in wavs[:5] + sorted((out / "yes").glob("*.wav"))[:3]:
        info = sf.info(p)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames <= 16000 or p.parent.name == "_background_noise_"
    speakers = {name: {l.split("/")[1].split("_")[0] for l in (out / name).read_text().split()} for name in ("validation_list.txt", "testing_list.txt")}
    train = {p.name.split("_")[0] for p in (out / "yes").glob("*.wav")} - speakers["validation_list.txt"] - speakers["testing_list.txt"]
    assert len(train) == 20 and not (speakers["validation_list.txt"] & speakers["testing_list.txt"])
    ds = SpeechCommands(out, "test", cache_dir=None)
    assert len(ds) == 2 * 2 + 2 and ds.report["skipped"] == 0  # 2 speakers × 2 words + 2 silence
    assert main(argv) == 0 and "already holds a generated dataset" in capsys.readouterr().out


@needs_espeak
def test_synthesized_word_is_trimmed_16k_speech():
    wave = gen.synthesize("stop", "en-us+m3", 50, 170)
    assert 0.2 * 16000 < len(wave) < 16000 and np.abs(wave).max() > 0.05
