"""Offline stand-in for Speech Commands v1: its 30 words spoken by espeak-ng speakers, written in the real layout.

`spikeforge data speech-commands OUT` writes `OUT/<word>/<speaker>_nohash_<k>.wav` (16 kHz mono
16-bit PCM, 1 s), `validation_list.txt` and `testing_list.txt` (speaker-disjoint splits), generated
`_background_noise_/*.wav`, and `speakers.csv`. A speaker is an espeak-ng voice (accent + variant)
with its own pitch and speed; each utterance adds a small pitch/speed jitter and light augmentation
(gain, time shift, additive background noise at a random SNR). `spikeforge.data.speech_commands`
reads the result exactly like the real dataset.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from spikeforge.data.output import add_arguments, dataset_folder
from spikeforge.data.speech_commands import BACKGROUND, KEYWORDS, SPLIT_LISTS

WORDS_V1 = (
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy",
    "house", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "wow", "yes", "zero",
)  # fmt: skip
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Andy", "Annie", "Alicia", "adam", "aunty", "belinda", "benjamin", "caleb", "david", "ed",
    "edward", "grandma", "grandpa", "john", "linda", "max", "norbert", "paul", "quincy", "rob",
    "robert", "shelby", "steph", "travis", "victor", "zac",
)  # fmt: skip
SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # every clip is 1 s, like most real ones
NOISE_KINDS = ("white_noise", "pink_noise", "brown_noise", "hum_noise", "tap_noise")
INSTALL_HINT = "install it with `sudo apt-get install espeak-ng` (Debian/Ubuntu), `brew install espeak-ng` (macOS) or `dnf install espeak-ng`"


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an espeak-ng voice with its own base pitch (0–99) and speed (words/min)."""

    voice: str
    pitch: int
    speed: int

    @property
    def id(self) -> str:
        """An 8-hex-digit id, the form of real Speech Commands speaker ids."""
        return hashlib.sha1(f"{self.voice}|{self.pitch}|{self.speed}".encode()).hexdigest()[:8]


def make_speakers(count: int, seed: int = 0) -> list[Speaker]:
    """`count` speakers with distinct voices (accent × variant), pitches in [20, 80] and speeds in [140, 200]."""
    voices = [f"{a}+{v}" for a in ACCENTS for v in VARIANTS]
    if not 3 <= count <= len(voices):
        raise ValueError(f"--speakers must be between 3 (one per split) and {len(voices)}, got {count}")
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(voices), size=count, replace=False)
    return [Speaker(voices[i], int(rng.integers(20, 81)), int(rng.integers(140, 201))) for i in picked]


def assign_splits(speakers: list[Speaker], val_fraction: float = 0.1, test_fraction: float = 0.1) -> dict[str, str]:
    """Speaker id → 'train' / 'val' / 'test', each split with at least one speaker, no speaker in two splits."""
    n = len(speakers)
    n_val, n_test = max(1, round(n * val_fraction)), max(1, round(n * test_fraction))
    order = sorted(speakers, key=lambda s: s.id)
    return {s.id: "val" if i < n_val else "test" if i < n_val + n_test else "train" for i, s in enumerate(order)}


def find_espeak() -> str:
    """Path of the espeak-ng executable, or FileNotFoundError saying how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError(f"espeak-ng is not installed (needed to synthesise speech); {INSTALL_HINT}")
    return exe


def synthesize(word: str, voice: str, pitch: int, speed: int, espeak: str = "espeak-ng") -> np.ndarray:
    """One utterance of `word` at 16 kHz, leading and trailing silence trimmed."""
    cmd = [espeak, "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", word]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    wave, rate = sf.read(io.BytesIO(out), dtype="float32")
    wave = librosa.resample(wave, orig_sr=rate, target_sr=SAMPLE_RATE)
    loud = np.flatnonzero(np.abs(wave) > 0.02 * np.abs(wave).max())
    return wave[loud[0] : loud[-1] + 1] if len(loud) else wave


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


def augment(speech: np.ndarray, noises: list[np.ndarray], rng: np.random.Generator, snr_db: tuple[float, float] = (10.0, 30.0)) -> np.ndarray:
    """A 1 s clip: `speech` at a random gain and time shift, plus a random background segment at a random SNR."""
    speech = speech[:CLIP_SAMPLES] * (rng.uniform(0.2, 0.9) / max(float(np.abs(speech).max()), 1e-9))
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float64)
    start = int(rng.integers(0, CLIP_SAMPLES - len(speech) + 1))
    clip[start : start + len(speech)] = speech
    noise = noises[rng.integers(len(noises))]
    offset = int(rng.integers(0, len(noise) - CLIP_SAMPLES + 1))
    segment = noise[offset : offset + CLIP_SAMPLES]
    snr = rng.uniform(*snr_db)
    scale = np.sqrt(np.mean(speech**2) / (np.mean(segment**2) + 1e-12) / 10 ** (snr / 10))
    clip += scale * segment
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def _clip_rng(seed: int, speaker: Speaker, word: str, k: int) -> np.random.Generator:
    digest = hashlib.sha1(f"{seed}|{speaker.id}|{word}|{k}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def generate(
    out: str | Path,
    speakers: int = 100,
    per_word: int = 3,
    unknown_per_word: int = 1,
    words: tuple[str, ...] = WORDS_V1,
    noise_seconds: float = 60.0,
    seed: int = 0,
    jobs: int = 2,
) -> dict[str, int]:
    """Write the dataset to `out`; returns the number of clips per split.

    Each speaker says each keyword `per_word` times and every other word `unknown_per_word` times
    (the real v1 has about twice as many clips of the core words as of the others).
    """
    out = Path(out)
    if noise_seconds < 1 or per_word < 1 or unknown_per_word < 0 or not words:
        raise ValueError("need noise_seconds >= 1, per_word >= 1, unknown_per_word >= 0 and at least one word")
    espeak = find_espeak()
    people = make_speakers(speakers, seed)
    split_of = assign_splits(people)
    rng = np.random.default_rng(seed)
    noises = {kind: background_noise(kind, noise_seconds, rng) for kind in NOISE_KINDS}
    (out / BACKGROUND).mkdir(parents=True, exist_ok=True)
    for kind, wave in noises.items():
        sf.write(out / BACKGROUND / f"{kind}.wav", (0.5 * wave).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    bank = list(noises.values())
    tasks = [
        (word, s, k)
        for word in words
        for s in people
        for k in range(per_word if word in KEYWORDS else unknown_per_word)
    ]

    def make(task: tuple[str, Speaker, int]) -> str:
        word, s, k = task
        r = _clip_rng(seed, s, word, k)
        pitch = int(np.clip(s.pitch + r.integers(-6, 7), 0, 99))
        speed = int(s.speed * r.uniform(0.9, 1.1))
        clip = augment(synthesize(word, s.voice, pitch, speed, espeak), bank, r)
        rel = f"{word}/{s.id}_nohash_{k}.wav"
        sf.write(out / rel, clip, SAMPLE_RATE, subtype="PCM_16")
        return rel

    for word in words:
        (out / word).mkdir(exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        written = list(pool.map(make, tasks))
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for rel, (_, s, _) in zip(written, tasks):
        lists[split_of[s.id]].append(rel)
    for split, fname in SPLIT_LISTS.items():
        (out / fname).write_text("".join(f"{rel}\n" for rel in sorted(lists[split])))
    with open(out / "speakers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["speaker", "voice", "pitch", "speed", "split"])
        for s in sorted(people, key=lambda s: s.id):
            w.writerow([s.id, s.voice, s.pitch, s.speed, split_of[s.id]])
    return {split: len(v) for split, v in lists.items()}


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if (out / SPLIT_LISTS["val"]).exists() and not args.force:
        print(f"{out} already holds a generated dataset; pass --force to write it again")
        return 0
    words = tuple(w.strip() for w in args.words.split(",")) if args.words else WORDS_V1
    unknown = args.unknown_per_word if args.unknown_per_word is not None else max(1, args.per_word // 2)
    with dataset_folder(out, args.force, "speech-commands") as tmp:
        counts = generate(tmp, args.speakers, args.per_word, unknown, words, args.noise_seconds, args.seed, args.jobs)
    print(f"wrote {sum(counts.values())} clips to {out} (train {counts['train']}, val {counts['val']}, test {counts['test']})")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add `spikeforge data speech-commands OUT`."""
    p = sub.add_parser("speech-commands", help="synthesise Speech Commands v1 words with espeak-ng, in the real layout")
    add_arguments(p, "folder to write")
    p.add_argument("--speakers", type=int, default=100, help="distinct synthetic speakers (default 100; 10%% val, 10%% test)")
    p.add_argument("--per-word", type=int, default=3, help="utterances of each keyword per speaker (default 3)")
    p.add_argument("--unknown-per-word", type=int, default=None, help="utterances of each other word per speaker (default: per-word // 2, at least 1)")
    p.add_argument("--words", default=None, help="comma-separated subset of the 30 words (default: all)")
    p.add_argument("--noise-seconds", type=float, default=60.0, help="length of each background-noise file (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="parallel espeak-ng processes (default 2)")
    p.set_defaults(func=_run)
