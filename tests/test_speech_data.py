"""Speech Commands loader on a small tree in exactly the real layout: classes, splits, silence, sampler weights, bad input."""

import numpy as np
import pytest
import soundfile as sf
import torch

from spikeforge.data.speech_commands import CLASSES, SpeechCommands, read_wav, silence_clips, split_files
from spikeforge.registry import DATASETS

SR = 16000


def write(path, wave, rate=SR):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, subtype="PCM_16")


def chirp(f0: float, n: int = 8000, rate: int = SR) -> np.ndarray:
    t = np.arange(n) / rate
    return (0.4 * np.sin(2 * np.pi * (f0 + 300 * t) * t)).astype(np.float32)


@pytest.fixture
def tree(tmp_path):
    """yes ×4, no ×4, bed ×4 (unknown) from speakers a, b (train), c (val), d (test); two noise files."""
    root = tmp_path / "sc"
    for w, f0 in (("yes", 300), ("no", 600), ("bed", 900)):
        for spk in "abcd":
            write(root / w / f"{spk}000000_nohash_0.wav", chirp(f0 + ord(spk)))
    (root / "validation_list.txt").write_text("yes/c000000_nohash_0.wav\nno/c000000_nohash_0.wav\nbed/c000000_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/d000000_nohash_0.wav\nno/d000000_nohash_0.wav\nbed/d000000_nohash_0.wav\n")
    rng = np.random.default_rng(0)
    write(root / "_background_noise_" / "white_noise.wav", 0.3 * rng.standard_normal(5 * SR).astype(np.float32))
    write(root / "_background_noise_" / "hum.wav", chirp(50, 5 * SR))
    return root


def test_twelve_classes_in_a_fixed_sorted_order():
    assert len(CLASSES) == 12 and list(CLASSES) == sorted(CLASSES)
    assert CLASSES[:2] == ("_silence_", "_unknown_") and "yes" in CLASSES and "bed" not in CLASSES


def test_splits_follow_the_lists_and_other_words_are_unknown(tree):
    train = split_files(tree, "train")
    assert len(train) == 6
    assert {p.name[0] for p, _ in train} == {"a", "b"}
    assert {p.name[0] for p, _ in split_files(tree, "val")} == {"c"}
    assert {p.name[0] for p, _ in split_files(tree, "test")} == {"d"}
    labels = {p.parent.name: y for p, y in train}
    assert labels == {"yes": CLASSES.index("yes"), "no": CLASSES.index("no"), "bed": CLASSES.index("_unknown_")}


def test_dataset_items_silence_and_sampler_weights(tree):
    ds = SpeechCommands(tree, "train", cache_dir=None)
    # 2 yes + 2 no + 2 unknown; silence defaults to the mean keyword-class size (2)
    assert len(ds) == 8 and ds.report == {"files": 6, "skipped": 0, "skipped_files": [], "silence": 2}
    x, y = ds[0]
    assert x.shape == (100, 1, 40) and isinstance(y, int)
    counts = torch.bincount(ds.targets, minlength=12)
    assert counts[CLASSES.index("_silence_")] == 2
    # class-weighted sampler: every present class gets the same total weight
    totals = torch.zeros(12, dtype=torch.float64).index_add_(0, ds.targets, ds.sample_weights)
    assert torch.allclose(totals[counts > 0], torch.ones(4, dtype=torch.float64))
    assert ds.sample_weights.shape == (8,) and ds.sample_weights.dtype == torch.float64


def test_registered_factory_with_deltas_and_cache(tree, tmp_path, monkeypatch):
    ds = DATASETS.get("speech_commands")(root=tree, split="val", deltas=True, silence=3, cache_dir=tmp_path / "cache")
    assert ds.features.shape == (6, 100, 3, 40)
    import spikeforge.data.speech_commands as sc

    monkeypatch.setattr(sc, "clip_mel", lambda *a: pytest.fail("features recomputed despite the cache"))
    again = DATASETS.get("speech_commands")(root=tree, split="val", deltas=True, silence=3, cache_dir=tmp_path / "cache")
    assert torch.equal(again.features, ds.features) and torch.equal(again.targets, ds.targets)


def test_silence_clips_come_from_the_splits_own_segment():
    noise = np.arange(1000, dtype=np.float32)
    for split, (lo, hi) in (("train", (0, 800)), ("val", (800, 900)), ("test", (900, 1000))):
        for clip in silence_clips([noise], 5, split, samples=50):
            assert len(clip) == 50
            scale = clip[1] - clip[0]  # the clips are scaled by a random gain in [0.1, 1]
            start = clip[0] / scale
            assert lo <= round(start) and round(start) + 50 <= hi


def test_stereo_44k_is_downmixed_and_resampled_with_warnings(tmp_path):
    mono = chirp(400, 44100, rate=44100)
    write(tmp_path / "s.wav", np.stack([mono, mono], axis=1), rate=44100)
    with pytest.warns(UserWarning) as rec:
        wave = read_wav(tmp_path / "s.wav")
    text = " ".join(str(w.message) for w in rec)
    assert "downmixed to mono" in text and "resampled to 16000 Hz" in text
    assert wave.ndim == 1 and abs(len(wave) - 16000) <= 1
    direct = chirp(400, 16000)
    assert np.corrcoef(wave[100:-100], direct[100:-100])[0, 1] > 0.99


def test_corrupt_empty_and_dangling_wavs_are_skipped_counted_and_warned(tree):
    (tree / "yes" / "e000000_nohash_0.wav").write_bytes(b"RIFF garbage, not a wave file")
    write(tree / "no" / "f000000_nohash_0.wav", np.zeros(0, dtype=np.float32))
    (tree / "no" / "g000000_nohash_0.wav").symlink_to(tree / "gone.wav")  # a link whose target was deleted
    with pytest.warns(UserWarning) as rec:
        ds = SpeechCommands(tree, "train", silence=0, cache_dir=None)
    assert len(ds) == 6 and ds.report["skipped"] == 3
    assert sorted(p.split("/")[-1] for p in ds.report["skipped_files"]) == ["e000000_nohash_0.wav", "f000000_nohash_0.wav", "g000000_nohash_0.wav"]
    text = " ".join(str(w.message) for w in rec)
    assert "empty WAV" in text and "not a readable WAV" in text and "no such file" in text and "3 unreadable or empty WAV files skipped" in text


def test_missing_split_list_and_unknown_root_are_one_line_errors(tree, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist; a Speech Commands root holds") as err:
        split_files(tmp_path / "nowhere", "train")
    assert "\n" not in str(err.value)
    (tree / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no testing_list.txt") as err:
        SpeechCommands(tree, "train", cache_dir=None)
    assert "\n" not in str(err.value) and "spikeforge data speech-commands" in str(err.value)
    with pytest.raises(ValueError, match="split must be"):
        split_files(tree, "validation")


def test_per_class_cap_keeps_a_random_subset(tree):
    ds = SpeechCommands(tree, "train", silence=0, per_class=1, cache_dir=None)
    assert torch.bincount(ds.targets, minlength=12).max() == 1 and len(ds) == 3
