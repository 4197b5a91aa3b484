"""Streaming keyword detection: causal features equal the whole-signal ones, the stepped model equals its forward,
the TF-style rule, and `spikeforge detect` finding the words of a long recording, or of audio piped in live, with a
model trained here."""

import contextlib
import io
import select
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from test_harness_tiny import run_copy_with_dataset, tiny_kws_recipe

from spikeforge.cli import main
from spikeforge.data.audio_features import (
    LogMelConfig,
    log_mel,
    mel_power,
    running_normalize,
    running_peak_db,
    spectral_envelope,
)
from spikeforge.data.speech_commands import CLASSES, KEYWORDS, features_of, read_wav
from spikeforge.models.kws import kws_dilated
from spikeforge.streaming.accuracy import read_labels, score
from spikeforge.streaming.detector import DetectionRule, Detector
from spikeforge.streaming.features import StreamingLogMel
from spikeforge.streaming.run import KeywordSpotter, chunks_of
from spikeforge.streaming.source import pcm_chunks
from spikeforge.train.loading import load_run

SR = 16000
RUNNING = LogMelConfig(normalization="running")
CAUSAL_FEATURES = {"running": running_normalize, "running_db": running_peak_db}  # each causal normalisation, whole-signal


def _word(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A 0.4–0.6 s 'word': an up-chirp (yes), a down-chirp (no), or a two-tone warble (bed, an unknown word)."""
    n = int(rng.uniform(0.4, 0.6) * SR)
    t = np.arange(n) / SR
    jitter = rng.uniform(0.9, 1.1)
    if kind == "yes":
        phase = 2 * np.pi * jitter * (400 * t + 600 * t**2)
    elif kind == "no":
        phase = 2 * np.pi * jitter * (2500 * t - 1000 * t**2)
    else:
        phase = 2 * np.pi * jitter * (1200 * t + 40 * np.sin(2 * np.pi * 8 * t))
    return (rng.uniform(0.3, 0.8) * np.sin(phase) * np.hanning(n)).astype(np.float32)


def _clip(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One second: the word at a random place over faint noise."""
    clip = 0.01 * rng.standard_normal(SR).astype(np.float32)
    w = _word(kind, rng)
    start = int(rng.integers(0, SR - len(w)))
    clip[start : start + len(w)] += w
    return clip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A GSC-layout folder of tone words (yes / no / bed from 10 'speakers') and a tiny kws_dilated run trained on it."""
    base = tmp_path_factory.mktemp("detect")
    root = base / "sc"
    rng = np.random.default_rng(0)
    for word in ("yes", "no", "bed"):
        (root / word).mkdir(parents=True)
        for spk in range(10):
            for k in range(4):
                sf.write(root / word / f"{spk:08x}_nohash_{k}.wav", _clip(word, rng), SR, subtype="PCM_16")
    (root / "validation_list.txt").write_text("".join(f"{w}/00000008_nohash_{k}.wav\n" for w in ("yes", "no", "bed") for k in range(4)))
    (root / "testing_list.txt").write_text("".join(f"{w}/00000009_nohash_{k}.wav\n" for w in ("yes", "no", "bed") for k in range(4)))
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white_noise.wav", (0.01 * rng.standard_normal(20 * SR)).astype(np.float32), SR)
    dataset = {"root": str(root), "cache": False, "normalization": "running"}
    tiny_kws_recipe(base / "tiny.yaml", dataset, name="detect_tiny", channels=8, epochs=12, warmup_epochs=0.2)
    assert main(["train", str(base / "tiny.yaml"), "--out", str(base / "runs"), "--no-progress"]) == 0
    return next((base / "runs").iterdir())


@pytest.mark.parametrize("normalization, cepstra", [("running", 0), ("running_db", 0), ("running_db", 13)])
def test_streamed_features_equal_the_whole_signal_ones_in_any_chunking(normalization, cepstra):
    config = LogMelConfig(normalization=normalization, cepstra=cepstra)
    envelope = (lambda db: spectral_envelope(db, cepstra)) if cepstra else (lambda feat: feat)
    normalize = lambda mel, steps: envelope(CAUSAL_FEATURES[normalization](mel, steps))
    rng = np.random.default_rng(1)
    n = 3 * SR + 77
    wave = (rng.standard_normal(n) * np.repeat(rng.uniform(0, 1, 41), 1201)[:n]).astype(np.float32)
    wave[: SR // 2] = 0  # digital silence first: frames with nothing heard yet
    whole = normalize(mel_power(wave, config), config.steps)
    extractor, parts, i = StreamingLogMel(config), [], 0
    while i < n:
        k = int(rng.integers(1, 3000))
        parts.append(extractor.push(wave[i : i + k]))
        i += k
    parts.append(extractor.flush())
    streamed = np.concatenate(parts)[:, 0].T
    assert streamed.shape == whole.shape == (40, 1 + n // 160)
    np.testing.assert_allclose(streamed, whole, atol=1e-4, rtol=1e-4)
    # a training clip's running features are the first second of a stream that starts with it
    np.testing.assert_allclose(log_mel(wave[:SR], config)[:, 0].numpy().T, normalize(mel_power(wave[:SR], config), 100)[:, :100],
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("first, second", [("running_db", "running"), ("running", "running_db")])
def test_streamed_second_front_end_equals_each_causal_normalisation_as_its_own_channel(first, second):
    config = LogMelConfig(normalization=first, second_front_end=second, cepstra=13 if first == "running_db" else 0)
    rng = np.random.default_rng(2)
    n = 2 * SR + 31
    wave = (rng.standard_normal(n) * np.repeat(rng.uniform(0, 1, 21), 1601)[:n]).astype(np.float32)
    extractor, parts = StreamingLogMel(config), []
    for i in range(0, n, 1234):
        parts.append(extractor.push(wave[i : i + 1234]))
    streamed = np.concatenate([*parts, extractor.flush()])
    mel = mel_power(wave, config)
    first_channel = CAUSAL_FEATURES[first](mel, config.steps)
    if config.cepstra:
        first_channel = spectral_envelope(first_channel, config.cepstra)  # the envelope is the first front end's alone
    assert streamed.shape == (1 + n // 160, 2, 40)
    np.testing.assert_allclose(streamed[:, 0].T, first_channel, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(streamed[:, 1].T, CAUSAL_FEATURES[second](mel, config.steps), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("normalization", ["clip", "db", "cmvn", "pcen"])
def test_streamed_features_refuse_a_whole_clip_normalisation_naming_the_causal_ones(normalization):
    with pytest.raises(ValueError, match=f"normalization='{normalization}'.*cannot be streamed.*'running'.*'running_db'"):
        StreamingLogMel(LogMelConfig(normalization=normalization))


def test_running_peak_db_is_db_below_the_last_frames_peak_with_the_bands_levels_kept():
    # two bands, window 2: each frame's reference is the largest power of it and the frame before (0 before the signal)
    mel = np.array([[0.0, 1.0, 0.01, 100.0, 1e-12],
                    [0.0, 0.1, 0.001, 10.0, 1.0]])
    # references 0, 1, 1, 100, 100; dB below them, floored at −80, mapped by (dB + 40) / 20; nothing heard yet: the floor
    expected = np.array([[-2.0, 2.0, 1.0, 2.0, -2.0],
                         [-2.0, 1.5, 0.5, 1.5, 1.0]])
    np.testing.assert_allclose(running_peak_db(mel, 2), expected, atol=1e-6)
    later = mel.copy()
    later[:, 3:] *= 1e4
    np.testing.assert_array_equal(running_peak_db(later, 2)[:, :3], running_peak_db(mel, 2)[:, :3])  # causal


def test_running_normalisation_is_causal_and_matches_its_definition():
    rng = np.random.default_rng(2)
    mel = rng.uniform(0, 1, (3, 30)) ** 3
    out = running_normalize(mel, 10)
    n = 17
    window = np.concatenate([np.zeros(0), mel[:, n - 9 : n + 1].max(0)])
    compressed = [np.log1p(mel[:, k] / mel[:, max(0, k - 9) : k + 1].max()) for k in range(n - 9, n + 1)]
    expected = compressed[-1] / np.stack(compressed).std(0)
    np.testing.assert_allclose(out[:, n], expected, rtol=1e-5)
    later = mel.copy()
    later[:, n + 1 :] *= 50
    np.testing.assert_array_equal(running_normalize(later, 10)[:, : n + 1], out[:, : n + 1])
    assert window.shape == (10,)


def test_detector_follows_tf_rule():
    rule = DetectionRule(clip_steps=1, average_steps=2, threshold=0.6, suppression_steps=7)
    classes = ("_silence_", "yes", "no")
    det = Detector(rule, classes, ("yes", "no"))
    big = 6.0
    trace = ["_silence_"] * 3 + ["yes"] * 4 + ["_silence_"] * 2 + ["yes"] * 2 + ["_silence_"] * 5 + ["yes"] * 2 + ["no"] * 3
    hits = []
    for n, label in enumerate(trace):
        s = torch.zeros(3)
        s[classes.index(label)] = big
        _, hit = det.push(s)
        if hit is not None:
            hits.append((hit.step, classes[hit.label]))
    # yes at step 4 (2-step mean > 0.6 first there); the next yes (step 10) is within the 7-step suppression; step 17 is not;
    # no differs from the last detection and is reported at once when its smoothed posterior tops the threshold.
    assert hits == [(4, "yes"), (17, "yes"), (19, "no")]


def test_stepped_model_equals_its_forward_on_the_streamed_features():
    torch.manual_seed(0)
    model = kws_dilated(channels=[6, 6, 6])
    with torch.no_grad():
        for conv in model.convs:
            conv.neuron.threshold.fill_(0.3)
    rng = np.random.default_rng(3)
    wave = np.concatenate([_clip("yes", rng), _clip("no", rng), 0.01 * rng.standard_normal(SR // 2).astype(np.float32)])
    spotter = KeywordSpotter(model, RUNNING, DetectionRule(), CLASSES, KEYWORDS, keep=True)
    for chunk in chunks_of(wave, SR, chunk_ms=37):
        spotter.push(chunk)
    spotter.flush()
    result = spotter.result()
    assert result.features.shape == (1 + len(wave) // 160, 1, 40)
    with torch.no_grad():
        whole = model(result.features.unsqueeze(1))[:, 0]
        assert float(model.convs[2](model.convs[1](model.convs[0](result.features.unsqueeze(1)))).mean()) > 0
    torch.testing.assert_close(result.scores, whole, rtol=1e-5, atol=1e-5)


def _long_recording(seed: int = 7) -> tuple[np.ndarray, list[float], list[str]]:
    """1 s of faint noise, then five words (two of them unknown-word warbles), each followed by 2 s of noise:
    (samples, each word's onset in seconds, the words)."""
    rng = np.random.default_rng(seed)
    quiet = lambda s: (0.01 * rng.standard_normal(int(s * SR))).astype(np.float32)  # noqa: E731
    script = ["yes", "no", "bed", "no", "yes"]
    pieces, onsets = [quiet(1.0)], []
    for word in script:
        w = _word(word, rng)
        onsets.append(sum(map(len, pieces)) / SR)
        pieces += [w + quiet(len(w) / SR), quiet(2.0)]
    return np.concatenate(pieces), onsets, script


def _detections(out: str) -> list[str]:
    """The detection lines ("time s  keyword  posterior") of `spikeforge detect`'s output."""
    return [line for line in out.splitlines() if " s  " in line and line.split()[2] in KEYWORDS]


def test_detect_finds_the_keywords_of_a_long_recording(run_dir, tmp_path, capsys):
    wave, onsets, script = _long_recording()
    long = tmp_path / "long.wav"
    sf.write(long, wave, SR, subtype="PCM_16")
    assert main(["detect", str(run_dir), str(long), "--threshold", "0.5", "--plot", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    found = [(float(line.split()[0]), line.split()[2]) for line in _detections(out)]
    expected = [(t, w) for t, w in zip(onsets, script) if w in KEYWORDS]
    assert [w for _, w in found] == [w for _, w in expected], out
    for (t, _), (onset, _) in zip(found, expected):
        assert onset <= t <= onset + 1.5, out  # decided after the word starts and within 1.5 s
    rtf = float(out.split("real-time factor ")[1].split(";")[0])
    assert 0 < rtf < 5 and "in CPU time" in out
    assert (tmp_path / "plots" / "detect-long.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_detect_scores_a_streaming_test_recording_as_tf(run_dir, tmp_path, capsys):
    root = run_dir.parent.parent / "sc"
    out = tmp_path / "stream"
    assert main(["data", "streaming-test", str(root), str(out), "--split", "test", "--seconds", "60", "--background-volume", "1"]) == 0
    truth = read_labels(out / "streaming_test_labels.txt")
    capsys.readouterr()
    assert main(["detect", str(run_dir), str(out / "streaming_test.wav"), "--threshold", "0.5",
                 "--labels", str(out / "streaming_test_labels.txt")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    found = [(line.split()[2], 1000 * float(line.split()[0])) for line in _detections(out)]
    stats = score(found, truth)
    summary = next(line for line in lines if line.startswith("streaming accuracy: "))
    assert summary == f"streaming accuracy: {stats.line(750.0)}"
    print(summary)
    assert stats.words == len(truth) >= 10 and stats.correct >= 0.8 * stats.words and stats.false_positives <= 1, summary


def _run_on_features(run_dir, tmp_path, **dataset) -> tuple:
    """A copy of `run_dir` whose recipe names other feature settings, and 2 s of faint noise to stream through it."""
    run = run_copy_with_dataset(run_dir, tmp_path / run_dir.name, **dataset)
    long = tmp_path / "long.wav"
    sf.write(long, 0.01 * np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32), SR, subtype="PCM_16")
    return run, long


@pytest.mark.parametrize("trained_on, streamed_as", [("clip", "running"), ("db", "running_db"), ("cmvn", None)])
def test_detect_streams_a_whole_clip_normalisation_as_its_causal_twin_and_refuses_one_without(run_dir, tmp_path, capsys, trained_on, streamed_as):
    run, long = _run_on_features(run_dir, tmp_path, normalization=trained_on)
    code = main(["detect", str(run), str(long)])
    out, err = capsys.readouterr()
    if streamed_as is None:
        assert code == 2 and "no causal twin" in err and "'running'" in err and "'running_db'" in err, err
    else:
        assert code == 0 and f"their causal twin ({streamed_as!r})" in out and f"dataset.normalization={streamed_as} " in out, out


def test_detect_names_a_missing_recording_before_warning_about_the_model(run_dir, tmp_path, capsys):
    run, long = _run_on_features(run_dir, tmp_path, normalization="clip")
    assert main(["detect", str(run), str(tmp_path / "typo.wav")]) == 2
    out, err = capsys.readouterr()
    assert "typo.wav: no such file" in err and "causal twin" not in out + err, (out, err)


def test_detect_streams_a_db_envelope_model_with_the_same_cepstra(run_dir, tmp_path, capsys, monkeypatch):
    import spikeforge.streaming.run as streaming_run

    run, long = _run_on_features(run_dir, tmp_path, normalization="db", cepstra=13)
    streamed = []

    class Recording(StreamingLogMel):
        def __init__(self, features):
            streamed.append(features)
            super().__init__(features)

    monkeypatch.setattr(streaming_run, "StreamingLogMel", Recording)
    assert main(["detect", str(run), str(long)]) == 0, capsys.readouterr()
    assert [(f.normalization, f.cepstra) for f in streamed] == [("running_db", 13)]


def test_detect_streams_both_front_ends_of_a_two_channel_model_as_their_causal_twins(run_dir, tmp_path, capsys):
    base = tmp_path / "pair"
    dataset = {"root": str(run_dir.parent.parent / "sc"), "cache": False, "normalization": "db", "second_front_end": "clip"}
    recipe = yaml.safe_load(tiny_kws_recipe(tmp_path / "pair.yaml", dataset, name="pair_tiny", epochs=1).read_text())
    recipe["model"]["in_channels"] = 2
    (tmp_path / "pair.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(tmp_path / "pair.yaml"), "--out", str(base), "--no-progress"]) == 0
    run = next(p for p in base.iterdir() if p.name.startswith("pair_tiny"))
    long = tmp_path / "long.wav"
    sf.write(long, 0.01 * np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32), SR, subtype="PCM_16")
    capsys.readouterr()
    assert main(["detect", str(run), str(long)]) == 0
    out = capsys.readouterr().out
    assert "their causal twins ('running_db' and 'running')" in out, out
    assert "dataset.normalization=running_db and dataset.second_front_end=running " in out, out
    run_cmvn, _ = _run_on_features(run, tmp_path / "cmvn", second_front_end="cmvn")
    assert main(["detect", str(run_cmvn), str(long)]) == 2
    assert "second_front_end='cmvn' features, which have no causal twin" in capsys.readouterr().err


class _Trickle(io.RawIOBase):
    """A pipe that delivers its bytes `piece` at a time, as a recorder's writes may arrive."""

    def __init__(self, data: bytes, piece: int) -> None:
        self.data, self.piece, self.at = data, piece, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        part = self.data[self.at : self.at + min(n if n >= 0 else len(self.data), self.piece)]
        self.at += len(part)
        return part


def _wav_bytes(wave: np.ndarray, rate: int = SR, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize("form", ["raw", "wav", "wav with a LIST chunk", "stereo wav"])
def test_piped_pcm_equals_the_wav_file_read_whole_in_any_pieces(tmp_path, form):
    rng = np.random.default_rng(4)
    wave = np.clip(0.3 * rng.standard_normal((int(1.234 * SR), 2 if form == "stereo wav" else 1)), -1, 1).astype(np.float32)
    (tmp_path / "clip.wav").write_bytes(_wav_bytes(wave))
    if form == "stereo wav":
        with pytest.warns(UserWarning, match="2 channels, downmixed"):
            expected = read_wav(tmp_path / "clip.wav")
    else:
        expected = read_wav(tmp_path / "clip.wav")
    data = _wav_bytes(wave)
    if form == "raw":
        data = data[data.index(b"data") + 8 :]
    elif form == "wav with a LIST chunk":  # an odd-sized chunk before the samples, padded to an even size
        at = data.index(b"data")
        data = data[:at] + b"LIST" + (3).to_bytes(4, "little") + b"abc\0" + data[at:]
    for piece in (1, 3, 4096):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if form == "stereo wav" else "error")
            chunks = list(pcm_chunks(_Trickle(data, piece), SR, chunk_ms=100))
        assert [len(c) for c in chunks[:-1]] == [1600] * (len(chunks) - 1) and 0 < len(chunks[-1]) <= 1600
        np.testing.assert_array_equal(np.concatenate(chunks), expected)


@pytest.mark.parametrize("data, problem", [
    (_wav_bytes(np.zeros(800, np.float32), rate=44100), "WAV sampled at 44100 Hz, where the run's features need 16000 Hz"),
    (_wav_bytes(np.zeros(800, np.float32), subtype="FLOAT"), "WAV samples of 32 bits"),
    (_wav_bytes(np.zeros(800, np.float32), subtype="PCM_U8"), "WAV samples of 8 bits"),
    (_wav_bytes(np.zeros(800, np.float32))[:40], "a WAV header without a data chunk"),
    (b"", "no audio arrived"),
])
def test_piped_pcm_refuses_what_it_cannot_read_and_says_how_to_pipe_it(data, problem):
    with pytest.raises(ValueError, match=problem) as err:
        list(pcm_chunks(io.BytesIO(data), SR))
    assert "arecord -f S16_LE -r 16000 -c 1" in str(err.value) and str(err.value).startswith("stdin: ")


@pytest.fixture(scope="module")
def recorded(run_dir, tmp_path_factory):
    """`_long_recording()` as a 16-bit WAV file, the first word's onset (s), and the detection lines `detect` prints for the file."""
    wave, onsets, _ = _long_recording()
    long = tmp_path_factory.mktemp("recorded") / "long.wav"
    sf.write(long, wave, SR, subtype="PCM_16")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["detect", str(run_dir), str(long), "--threshold", "0.5"]) == 0
    from_file = _detections(printed.getvalue())
    assert len(from_file) == 4
    return long, onsets[0], from_file


def test_detect_on_stdin_finds_what_the_file_gives_in_constant_memory(run_dir, recorded, capsys, monkeypatch):
    long, _, from_file = recorded
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(long.read_bytes())))
    assert main(["detect", str(run_dir), "-", "--threshold", "0.5"]) == 0
    assert _detections(capsys.readouterr().out) == from_file
    # the spotter without history: the same keywords, and nothing that grows with the signal (a minute more of it)
    config, model, _ = load_run(run_dir, "best", "speech_commands")
    listen = lambda: KeywordSpotter(model, features_of(config["dataset"]), DetectionRule(threshold=0.5), CLASSES, KEYWORDS)  # noqa: E731
    spotter, samples = listen(), read_wav(long)
    found = [d for chunk in chunks_of(samples, SR) for d in spotter.push(chunk)] + spotter.flush()
    assert [f"{d.step / 100:8.2f} s  {CLASSES[d.label]:<6} {d.score:.3f}" for d in found] == from_file
    spotter, quiet = listen(), 0.01 * np.random.default_rng(1).standard_normal(SR // 10).astype(np.float32)
    for chunk in (*chunks_of(samples, SR), *[quiet] * 600):
        spotter.push(chunk)
    result = spotter.result()
    assert result.features.numel() == result.scores.numel() == result.smoothed.numel() == 0
    assert result.audio_seconds == pytest.approx(len(samples) / SR + 60)
    assert len(spotter.extractor.buffer) < 400 + 1600 and spotter.detector.step > 6000


def test_detect_prints_each_keyword_of_a_live_pipe_while_the_audio_still_flows(run_dir, recorded):
    long, onset, from_file = recorded
    data = long.read_bytes()
    raw = data[data.index(b"data") + 8 :]  # the file's samples, without its header
    first = int((onset + 2.5) * SR) * 2  # the first word and 2 s after it, in bytes
    proc = subprocess.Popen([sys.executable, "-m", "spikeforge", "detect", str(run_dir), "-", "--threshold", "0.5"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
    try:
        proc.stdin.write(raw[:first])
        proc.stdin.flush()
        line, deadline = b"", time.monotonic() + 120
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 1.0)[0]:
                line += proc.stdout.read1(1)
        assert proc.poll() is None, proc.stderr.read().decode()  # still listening: the rest has not been sent
        assert line.decode().rstrip("\n") == from_file[0]  # printed before the input ended
        out, err = proc.communicate(raw[first:], timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()
    assert _detections(line.decode() + out.decode()) == from_file


def test_detect_refuses_a_terminal_as_its_input_and_says_what_to_pipe(run_dir, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    assert main(["detect", str(run_dir), "-"]) == 2
    assert "stdin is a terminal; pipe 16-bit mono PCM at 16000 Hz" in capsys.readouterr().err
