"""Offline stand-in for Speech Commands v1: its 30 words spoken by synthetic speakers, written in the real layout.

`spikeforge data speech-commands OUT` writes `OUT/<word>/<speaker>_nohash_<k>.wav` (16 kHz mono
16-bit PCM, 1 s), `validation_list.txt` and `testing_list.txt` (speaker-disjoint splits), generated
`_background_noise_/*.wav`, `speakers.csv` (speaker, engine, voice, pitch, speed, warp, split) and `clips.csv`
(each clip's SNR, its 5-dB band, background, reverb and telephone band, for accuracy by condition: `eval --group-by snr_band`).
Speakers come from every installed offline synthesiser (`speech_engines`: espeak-ng, flite,
festival, GnuSpeech, SAM, Piper, Pico; DECtalk when named in `engines`), as evenly as the engines allow; a speaker is a voice with its own pitch,
speed and (every engine but espeak-ng) a vocal-tract warp, a resampling that moves pitch and formants together. Each utterance
adds a small pitch/speed jitter and the augmentation of the real recordings: gain, time shift,
background noise at a random SNR and, with `effects="full"`, room reverberation from a simulated
impulse response and telephone band-limiting; the background set then includes babble.
`spikeforge.data.speech_commands` reads the result exactly like the real dataset.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import librosa
import numpy as np
import scipy.signal
import soundfile as sf

from spikeforge.data.output import add_arguments, dataset_folder
from spikeforge.data.speech_commands import BACKGROUND, CLIP_TABLE, KEYWORDS, SPLIT_LISTS
from spikeforge.data.speech_engines import DEFAULT_ENGINES, ENGINES, OPT_IN, SAMPLE_RATE, available_engines
from spikeforge.data.vocoder import lpc_resynthesize

WORDS_V1 = (
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy",
    "house", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "wow", "yes", "zero",
)  # fmt: skip
CLIP_SAMPLES = SAMPLE_RATE  # every clip is 1 s, like most real ones
NOISE_KINDS = ("white_noise", "pink_noise", "brown_noise", "hum_noise", "tap_noise")
EFFECTS = ("light", "full")
#: Per-speaker ranges of the speakers of every engine but espeak-ng (espeak-ng keeps the corpus's original 20–80 and 140–200).
WIDE_PITCH, WIDE_SPEED, WARP = (5, 95), (120, 220), (0.88, 1.12)
#: f0 range (Hz) of the pulse-train sources of re-synthesised speakers: a low man's to a child's
SOURCE_F0 = (80.0, 320.0)


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: a voice (`engine:name`, or an espeak-ng `accent+variant`), base pitch (0–99),
    speed (words/min), vocal-tract warp (resampling factor, 1 = none) and `source_f0`: 0 for the engine's own voice
    source, else the f0 in Hz of the pulse train its clips are re-synthesised with (`spikeforge.data.vocoder`)."""

    voice: str
    pitch: int
    speed: int
    warp: float = 1.0
    source_f0: float = 0.0

    @property
    def engine(self) -> str:
        return self.voice.split(":", 1)[0] if ":" in self.voice else "espeak-ng"

    @property
    def id(self) -> str:
        """An 8-hex-digit id, the form of real Speech Commands speaker ids."""
        key = f"{self.voice}|{self.pitch}|{self.speed}" + (f"|{self.warp:.3f}" if self.warp != 1.0 else "")
        key += f"|lpc{self.source_f0:.0f}" if self.source_f0 else ""
        return hashlib.sha1(key.encode()).hexdigest()[:8]


def make_speakers(count: int, seed: int = 0, engines: tuple[str, ...] = ("espeak-ng",),
                  warps: tuple[float, float] = WARP, resynthesized: float = 0.0) -> list[Speaker]:
    """`count` distinct speakers shared out evenly over `engines` (espeak-ng: distinct voices, pitches in [20, 80],
    speeds in [140, 200]; every other engine: its voices in turn, wider pitch and speed, a warp drawn from `warps`);
    then each speaker, with probability `resynthesized`, gets a pulse-train source of f0 log-uniform in `SOURCE_F0`
    (drawn from a generator of its own, so the other speakers are those of the same seed without it)."""
    if not 0 < warps[0] <= warps[1]:
        raise ValueError(f"--warp is LOW HIGH resampling factors with 0 < LOW ≤ HIGH, got {list(warps)}")
    if not 0 <= resynthesized <= 1:
        raise ValueError(f"--resynthesized is the fraction of speakers re-synthesised with a pulse-train source, in [0, 1], got {resynthesized}")
    shares = [count // len(engines) + (i < count % len(engines)) for i in range(len(engines))]
    if count < 3:
        raise ValueError(f"--speakers must be between 3 (one per split) and the number of voices, got {count}")
    rng = np.random.default_rng(seed)
    people: list[Speaker] = []
    for name, share in zip(engines, shares):
        voices = ENGINES[name].voices()
        if name == "espeak-ng":
            if share > len(voices):
                raise ValueError(f"--speakers must be between 3 (one per split) and {len(voices)} for espeak-ng, got {share}")
            picked = rng.choice(len(voices), size=share, replace=False)
            people += [Speaker(voices[i], int(rng.integers(20, 81)), int(rng.integers(140, 201))) for i in picked]
            continue
        ids = {s.id for s in people}
        for k in range(share):
            while True:
                s = Speaker(voices[k % len(voices)], int(rng.integers(WIDE_PITCH[0], WIDE_PITCH[1] + 1)),
                            int(rng.integers(WIDE_SPEED[0], WIDE_SPEED[1] + 1)), round(float(rng.uniform(*warps)), 3))
                if s.id not in ids:
                    break
            ids.add(s.id)
            people.append(s)
    if resynthesized:
        draw = np.random.default_rng([seed, 1])
        lo, hi = np.log(SOURCE_F0)
        people = [replace(s, source_f0=round(float(np.exp(draw.uniform(lo, hi))), 1)) if draw.uniform() < resynthesized else s for s in people]
    return people


def assign_splits(speakers: list[Speaker], val_fraction: float = 0.1, test_fraction: float = 0.1) -> dict[str, str]:
    """Speaker id → 'train' / 'val' / 'test', each split with at least one speaker, no speaker in two splits."""
    n = len(speakers)
    n_val, n_test = max(1, round(n * val_fraction)), max(1, round(n * test_fraction))
    order = sorted(speakers, key=lambda s: s.id)
    return {s.id: "val" if i < n_val else "test" if i < n_val + n_test else "train" for i, s in enumerate(order)}


def synthesize(word: str, voice: str, pitch: int, speed: int) -> np.ndarray:
    """One utterance of `word` by `voice` at 16 kHz, leading and trailing silence trimmed."""
    speaker = Speaker(voice, pitch, speed)
    return ENGINES[speaker.engine].synthesize(voice, [(word, pitch, speed)])[0]


def warp(wave: np.ndarray, factor: float) -> np.ndarray:
    """Resample by `factor` and play back at 16 kHz: pitch and formants × factor, duration ÷ factor."""
    if factor == 1.0:
        return wave
    return librosa.resample(wave, orig_sr=round(SAMPLE_RATE * factor), target_sr=SAMPLE_RATE).astype(np.float32)


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ∝ 1/f^exponent (0 white, 1 pink, 2 brown), unit peak."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return x / np.abs(x).max()


def background_noise(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One background-noise recording: white, pink, brown, mains hum, or a running-tap-like band of noise."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if kind in ("white_noise", "pink_noise", "brown_noise"):
        return _colored(rng, n, NOISE_KINDS.index(kind))
    if kind == "hum_noise":
        hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
        x = hum + 0.3 * _colored(rng, n, 1)
    elif kind == "tap_noise":
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        band = np.fft.irfft(spec * ((f > 1000) & (f < 4000)), n)
        x = band * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    else:
        raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(NOISE_KINDS)}")
    return x / np.abs(x).max()


def babble(words: list[np.ndarray], seconds: float, talkers: int, rng: np.random.Generator) -> np.ndarray:
    """Babble noise: `talkers` overlapping streams of words picked from `words`, unit peak."""
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    for _ in range(talkers):
        pos = int(rng.integers(0, SAMPLE_RATE // 2))
        while pos < n:
            w = words[rng.integers(len(words))]
            end = min(n, pos + len(w))
            out[pos:end] += w[: end - pos] * rng.uniform(0.5, 1.0)
            pos = end + int(rng.integers(0, SAMPLE_RATE // 10))
    return out / max(float(np.abs(out).max()), 1e-9)


def room_impulse(rng: np.random.Generator) -> np.ndarray:
    """A simulated room impulse response: direct path, then noise decaying to −60 dB in RT60 ∈ [0.15, 0.7] s."""
    rt60 = rng.uniform(0.15, 0.7)
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60) * rng.uniform(0.1, 0.5)
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0  # the first reflections arrive after the direct sound
    tail[0] = 1.0
    return tail


def telephone(wave: np.ndarray) -> np.ndarray:
    """Band-limited to the telephone band, 300–3400 Hz (4th-order Butterworth)."""
    sos = scipy.signal.butter(4, (300, 3400), btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return scipy.signal.sosfilt(sos, wave)


def augment(speech: np.ndarray, noises: dict[str, np.ndarray], rng: np.random.Generator, snr_db: tuple[float, float] = (10.0, 30.0),
            effects: str = "light") -> tuple[np.ndarray, dict]:
    """A 1 s clip: `speech` at a random gain and time shift, plus a random background segment at a random SNR;
    `effects="full"` first reverberates the speech in a simulated room (probability 0.3, SNR range widened to
    0–30 dB) and band-limits the clip to the telephone band (probability 0.2). Returns the clip and what was drawn
    (`snr_db` of speech to background before band-limiting, `background`, `reverb`, `telephone`)."""
    reverb = telephoned = False
    if effects == "full":
        snr_db = (0.0, snr_db[1])
        if rng.random() < 0.3:
            reverb = True
            speech = scipy.signal.fftconvolve(speech, room_impulse(rng))[: len(speech) + SAMPLE_RATE // 4]
    speech = speech[:CLIP_SAMPLES] * (rng.uniform(0.2, 0.9) / max(float(np.abs(speech).max()), 1e-9))
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float64)
    start = int(rng.integers(0, CLIP_SAMPLES - len(speech) + 1))
    clip[start : start + len(speech)] = speech
    background = list(noises)[rng.integers(len(noises))]
    noise = noises[background]
    offset = int(rng.integers(0, len(noise) - CLIP_SAMPLES + 1))
    segment = noise[offset : offset + CLIP_SAMPLES]
    snr = rng.uniform(*snr_db)
    scale = np.sqrt(np.mean(speech**2) / (np.mean(segment**2) + 1e-12) / 10 ** (snr / 10))
    clip += scale * segment
    if effects == "full" and rng.random() < 0.2:
        telephoned = True
        clip = telephone(clip)
        clip *= rng.uniform(0.2, 0.9) / max(float(np.abs(clip).max()), 1e-9)
    info = {"snr_db": float(snr), "background": background, "reverb": reverb, "telephone": telephoned}
    return np.clip(clip, -1.0, 1.0).astype(np.float32), info


def snr_band(snr_db: float, width: float = 5.0) -> str:
    """The `width`-dB band an SNR falls in, as a label: 12.3 → "10–15 dB"."""
    low = width * np.floor(snr_db / width)
    return f"{low:g}–{low + width:g} dB"


def _clip_rng(seed: int, speaker: Speaker, word: str, k: int) -> np.random.Generator:
    digest = hashlib.sha1(f"{seed}|{speaker.id}|{word}|{k}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _backgrounds(out: Path, engines: list, noise_seconds: float, effects: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Write `_background_noise_/*.wav` (the synthetic noises, and babble with full effects); returns them."""
    noises = {kind: background_noise(kind, noise_seconds, rng) for kind in NOISE_KINDS}
    (out / BACKGROUND).mkdir(parents=True, exist_ok=True)  # before the engines' scratch folders go into `out`
    if effects == "full":
        engine = engines[0]
        talkers = [engine.voices()[int(i)] for i in rng.choice(len(engine.voices()), size=min(6, len(engine.voices())), replace=False)]
        others = [w for w in WORDS_V1 if w not in KEYWORDS]  # no keyword hides in the silence class's background
        picks = [others[int(i)] for i in rng.choice(len(others), size=8, replace=False)]
        words = [w for v in talkers for w in engine.synthesize(v, [(word, 50, 175) for word in picks], scratch=out)]
        noises["babble_noise"] = babble(words, noise_seconds, 6, rng)
    for kind, wave in noises.items():
        sf.write(out / BACKGROUND / f"{kind}.wav", (0.5 * wave).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    return noises


def generate(
    out: str | Path,
    speakers: int = 100,
    per_word: int = 3,
    unknown_per_word: int = 1,
    words: tuple[str, ...] = WORDS_V1,
    noise_seconds: float = 60.0,
    seed: int = 0,
    jobs: int = 2,
    engines: list[str] | None = None,
    effects: str = "full",
    log=print,
    warps: tuple[float, float] = WARP,
    resynthesized: float = 0.0,
) -> dict[str, int]:
    """Write the dataset to `out`; returns the number of clips per split.

    Each speaker says each keyword `per_word` times and every other word `unknown_per_word` times
    (the real v1 has about twice as many clips of the core words as of the others). `engines`
    defaults to every known one; missing ones are skipped with one line to `log`. `warps` bounds the speakers'
    vocal-tract warps (every engine but espeak-ng); `resynthesized` is the fraction of speakers whose clips are
    re-synthesised through their own LPC envelope with a pulse-train source (`spikeforge.data.vocoder`).
    """
    out = Path(out)
    if noise_seconds < 1 or per_word < 1 or unknown_per_word < 0 or not words:
        raise ValueError("need noise_seconds >= 1, per_word >= 1, unknown_per_word >= 0 and at least one word")
    if effects not in EFFECTS:
        raise ValueError(f"effects must be one of {EFFECTS}, got {effects!r}")
    found, skipped = available_engines(engines)
    for line in skipped:
        log(line)
    if not found:
        raise FileNotFoundError("no speech synthesiser is installed; install one, e.g. `sudo apt-get install espeak-ng flite festival`")
    people = make_speakers(speakers, seed, tuple(e.name for e in found), warps, resynthesized)
    split_of = assign_splits(people)
    rng = np.random.default_rng(seed)
    bank = _backgrounds(out, found, noise_seconds, effects, rng)
    start_time = time.perf_counter()
    for word in words:
        (out / word).mkdir(exist_ok=True)

    def speak(s: Speaker) -> list[str]:
        clips = [(word, k) for word in words for k in range(per_word if word in KEYWORDS else unknown_per_word)]
        rngs = [_clip_rng(seed, s, word, k) for word, k in clips]
        requests = [(word, int(np.clip(s.pitch + r.integers(-6, 7), 0, 99)), int(s.speed * r.uniform(0.9, 1.1))) for (word, _), r in zip(clips, rngs)]
        waves = ENGINES[s.engine].synthesize(s.voice, requests, scratch=out)  # engines' files stay in the output folder
        written = []
        for (word, k), r, wave in zip(clips, rngs, waves):
            rel = f"{word}/{s.id}_nohash_{k}.wav"
            voiced = warp(wave, s.warp)
            if s.source_f0:
                voiced = lpc_resynthesize(voiced, s.source_f0, r)
            clip, info = augment(voiced, bank, r, effects=effects)
            sf.write(out / rel, clip, SAMPLE_RATE, subtype="PCM_16")
            written.append((rel, info))
        return written

    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    drawn: list[tuple[str, dict]] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for s, written in zip(people, pool.map(speak, people)):
            lists[split_of[s.id]] += [rel for rel, _ in written]
            drawn += written
    for split, fname in SPLIT_LISTS.items():
        (out / fname).write_text("".join(f"{rel}\n" for rel in sorted(lists[split])))
    with open(out / "speakers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["speaker", "engine", "voice", "pitch", "speed", "warp", "source_f0", "split"])
        for s in sorted(people, key=lambda s: s.id):
            w.writerow([s.id, s.engine, s.voice, s.pitch, s.speed, s.warp, s.source_f0, split_of[s.id]])
    with open(out / CLIP_TABLE, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "snr_db", "snr_band", "background", "reverb", "telephone"])
        for rel, info in sorted(drawn):
            w.writerow([rel, f"{info['snr_db']:.1f}", snr_band(info["snr_db"]), info["background"], int(info["reverb"]), int(info["telephone"])])
    clips = sum(len(v) for v in lists.values())
    per_engine = {e.name: sum(1 for s in people if s.engine == e.name) for e in found}
    log("engines: " + ", ".join(f"{n} ({c} speakers)" for n, c in per_engine.items())
        + f"; {clips / (time.perf_counter() - start_time):.1f} clips/s with {max(1, jobs)} jobs")
    return {split: len(v) for split, v in lists.items()}


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if (out / SPLIT_LISTS["val"]).exists() and not args.force:
        print(f"{out} already holds a generated dataset; pass --force to write it again")
        return 0
    words = tuple(w.strip() for w in args.words.split(",")) if args.words else WORDS_V1
    unknown = args.unknown_per_word if args.unknown_per_word is not None else max(1, args.per_word // 2)
    engines = [e.strip() for e in args.engines.split(",")] if args.engines else None
    with dataset_folder(out, args.force, "speech-commands") as tmp:
        counts = generate(tmp, args.speakers, args.per_word, unknown, words, args.noise_seconds, args.seed, args.jobs, engines, args.effects,
                          warps=tuple(args.warp), resynthesized=args.resynthesized)
    print(f"wrote {sum(counts.values())} clips to {out} (train {counts['train']}, val {counts['val']}, test {counts['test']})")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add `spikeforge data speech-commands OUT`."""
    p = sub.add_parser("speech-commands", help="synthesise Speech Commands v1 words with the installed speech engines, in the real layout")
    add_arguments(p, "folder to write")
    p.add_argument("--speakers", type=int, default=100, help="distinct synthetic speakers (default 100; 10%% val, 10%% test)")
    p.add_argument("--per-word", type=int, default=3, help="utterances of each keyword per speaker (default 3)")
    p.add_argument("--unknown-per-word", type=int, default=None, help="utterances of each other word per speaker (default: per-word // 2, at least 1)")
    p.add_argument("--words", default=None, help="comma-separated subset of the 30 words (default: all)")
    p.add_argument("--noise-seconds", type=float, default=60.0, help="length of each background-noise file (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="speakers synthesised in parallel (default 2)")
    p.add_argument("--engines", default=None, help=f"comma-separated speech engines (default: every installed one of {', '.join(DEFAULT_ENGINES)}; "
                        f"opt-in: {', '.join(OPT_IN)})")
    p.add_argument("--effects", choices=EFFECTS, default="full",
                   help="per-clip augmentation: full (reverb, telephone band, babble; default) or light (gain, shift, noise: the original corpus)")
    p.add_argument("--warp", type=float, nargs=2, default=list(WARP), metavar=("LOW", "HIGH"),
                   help=f"range of each speaker's vocal-tract warp, a resampling that scales pitch and formants (every engine but "
                        f"espeak-ng; default {WARP[0]} {WARP[1]}; children's formants are about 1.25-1.45 x an adult man's)")
    p.add_argument("--resynthesized", type=float, default=0.0, metavar="FRACTION",
                   help="fraction of speakers (of every engine) whose clips are re-synthesised through their own LPC envelope with a "
                        f"pulse-train source of f0 {SOURCE_F0[0]:.0f}-{SOURCE_F0[1]:.0f} Hz, as a formant synthesiser would voice them (default 0)")
    p.set_defaults(func=_run)
