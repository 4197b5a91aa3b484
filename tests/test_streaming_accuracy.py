"""The streaming test recording (`spikeforge data streaming-test`) and TF's streaming accuracy (`streaming.accuracy`)."""

import numpy as np
import pytest
import soundfile as sf

from spikeforge.cli import main
from spikeforge.data.speech_stream import LABELS, SAMPLE_RATE, WAV, streaming_test
from spikeforge.streaming.accuracy import read_labels, score

SR = SAMPLE_RATE


def test_score_counts_as_tf_does():
    truth = [("yes", 1000.0), ("no", 4000.0), ("up", 7000.0), ("go", 10000.0)]
    found = [
        ("yes", 1200.0),  # correct: yes within ±750 ms
        ("yes", 1600.0),  # the same word again: wrong (already matched)
        ("off", 4700.0),  # another label on `no`: wrong
        ("up", 8000.0),  # 1000 ms late: no word in reach, false positive
        ("go", 9300.0),  # 700 ms early: correct
        ("on", 13000.0),  # nothing there: false positive
    ]
    stats = score(found, truth, tolerance_ms=750.0)
    assert (stats.words, stats.matched, stats.correct, stats.wrong, stats.false_positives) == (4, 3, 2, 2, 2)
    assert stats.line(750.0) == "75.0% matched, 50.0% correct, 50.0% wrong, 50.0% false positive (4 keywords, ±750 ms)"
    assert score(found, truth, tolerance_ms=1000.0).false_positives == 1  # `up` at 8000 reaches 7000 now


def test_labels_file_round_trip_and_bad_line(tmp_path):
    good = tmp_path / "labels.txt"
    good.write_text("no, 4000.000000\nyes,1000.5\n\n")  # TF writes "label, %f"
    assert read_labels(good) == [("yes", 1000.5), ("no", 4000.0)]
    bad = tmp_path / "bad.txt"
    bad.write_text("yes,1000\nyes 2000\n")
    with pytest.raises(ValueError, match=r"line 2: 'yes 2000' is not 'label,time_ms'"):
        read_labels(bad)


@pytest.fixture
def tone_root(tmp_path):
    """A GSC folder whose keyword clips are 1 s tones (yes 440 Hz, no 660 Hz), `bed` a 0.5 s tone, background silence."""
    root = tmp_path / "sc"
    t = np.arange(SR) / SR
    for word, freq, length in (("yes", 440, SR), ("no", 660, SR), ("bed", 300, SR // 2)):
        (root / word).mkdir(parents=True)
        for spk in range(3):
            sf.write(root / word / f"{spk:08x}_nohash_0.wav", (0.5 * np.sin(2 * np.pi * freq * t[:length])).astype(np.float32), SR)
    (root / "validation_list.txt").write_text("")
    (root / "testing_list.txt").write_text("".join(f"{w}/00000002_nohash_0.wav\n" for w in ("yes", "no", "bed")))
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "hum.wav", (0.2 * np.sin(2 * np.pi * 50 * np.arange(3 * SR) / SR)).astype(np.float32), SR)
    return root


def test_streaming_test_places_labelled_keywords_where_their_clips_end(tone_root):
    wave, labels = streaming_test(tone_root, seconds=120, split="test", gap_ms=1000, background_volume=0.1, seed=3)
    assert wave.shape == (120 * SR,) and wave.dtype == np.float32
    assert len(labels) > 20 and {w for w, _ in labels} == {"yes", "no"}  # `bed` is played, never labelled
    hum = 0.1 * 0.2 / np.sqrt(2)
    rms = lambda a, b: float(np.sqrt(np.mean(wave[a:b] ** 2)))  # noqa: E731
    for word, ms in labels:
        end = round(ms * SR / 1000)
        assert rms(end - SR, end) > 0.3  # the tone fills the second before the label ...
        assert rms(end, end + SR // 4) < 2 * hum  # ... and the gap after it holds only the background
        freq = np.argmax(np.abs(np.fft.rfft(wave[end - SR : end])))  # 1 Hz bins over one second
        assert freq == {"yes": 440, "no": 660}[word]
    gaps = np.diff([ms for _, ms in labels])
    assert gaps.min() >= 1000 + 500 - 1  # a clip and at least half the gap between keywords
    with pytest.raises(ValueError, match="no keyword clips"):
        streaming_test(tone_root, seconds=10, split="val")


def test_streaming_test_command_writes_only_into_out(tone_root, tmp_path, capsys):
    out = tmp_path / "stream"
    assert main(["data", "streaming-test", str(tone_root), str(out), "--seconds", "30", "--gap-ms", "500"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([".spikeforge-data", WAV, LABELS])
    wave, rate = sf.read(out / WAV)
    assert rate == SR and len(wave) == 30 * SR
    labels = read_labels(out / LABELS)
    assert labels and all(w in ("yes", "no") for w, _ in labels)
    assert f"{len(labels)} keywords" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sc", "stream"]  # nothing beside OUT
