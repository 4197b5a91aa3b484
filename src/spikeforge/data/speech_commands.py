"""Google Speech Commands (v1 or v2) read from its on-disk layout, as the 12-class task of the low-activity paper (§6).

Classes: the ten keywords, `_unknown_` (every other word folder) and `_silence_` (1 s clips cut from
`_background_noise_/*.wav`). Splits come from `validation_list.txt` and `testing_list.txt`; the rest
is training data. The same loader reads the data made by `spikeforge data speech-commands OUT`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from spikeforge.data.audio_features import (
    LEVEL_KEEPING, LogMelConfig, band_centres, cache_key, cached, clip_mel, features_from_mel, mel_power,
)
from spikeforge.data.augment import Augmentation, augment_features, eq_curve, equalise, mix_background
from spikeforge.data.lexicon import phone_targets
from spikeforge.registry import DATASETS

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
#: The 12 classes in one fixed (sorted) order, the same in every process.
CLASSES = tuple(sorted((*KEYWORDS, SILENCE, UNKNOWN)))
BACKGROUND = "_background_noise_"
SPEAKER_TABLE = "speakers.csv"
CLIP_TABLE = "clips.csv"  # per-clip conditions of a generated corpus (file, snr_db, snr_band, background, reverb, telephone)
SPLIT_LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}
PROTOCOLS = ("all", "tf")
#: Where silence clips of each split are cut from, as fractions of every background-noise file.
SILENCE_SEGMENTS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0), "all": (0.9, 1.0)}
#: Split names: the listed ones and `all`, every clip of the folder (for speakers a run never heard; its silence
#: clips come from the test part of the background recordings, which no training run sees).
SPLITS = ("train", "val", "test", "all")
LAYOUT = (
    "a Speech Commands root holds <word>/<id>.wav (16 kHz mono PCM), validation_list.txt, testing_list.txt "
    "and _background_noise_/*.wav; make one offline with `spikeforge data speech-commands OUT`"
)


def read_wav(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 samples of a WAV file at `sample_rate`.

    Multi-channel files are averaged to mono and other rates resampled, each with a warning.
    A missing file raises FileNotFoundError, an unreadable or empty one ValueError.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file; give the path of a WAV file")
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise ValueError(f"{path}: not a readable WAV file ({err})") from err
    if wave.shape[0] == 0:
        raise ValueError(f"{path}: empty WAV file (0 samples)")
    if wave.shape[1] > 1:
        warnings.warn(f"{path}: {wave.shape[1]} channels, downmixed to mono", stacklevel=2)
    wave = wave.mean(axis=1)
    if rate != sample_rate:
        warnings.warn(f"{path}: sampled at {rate} Hz, resampled to {sample_rate} Hz", stacklevel=2)
        wave = librosa.resample(wave, orig_sr=rate, target_sr=sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"Speech Commands root {root} does not exist; {LAYOUT}")
    for name in SPLIT_LISTS.values():
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root} has no {name}: {LAYOUT}")


def _read_list(path: Path) -> set[str]:
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def label_of(word: str) -> int:
    """Class index of a word folder: the keyword itself, else `_unknown_`."""
    return CLASSES.index(word if word in KEYWORDS else UNKNOWN)


def word_folders(root: Path) -> list[str]:
    """The word folders of a Speech Commands root, sorted (not `_background_noise_` or another `_` folder)."""
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("_"))


def word_row(word: str | None, unknown_words: list[str]) -> int:
    """The row of a `WordReadout` for a clip of `word` (None: silence): the classes but `_unknown_` in order, then
    `unknown_words` (the `_unknown_` class's words, sorted)."""
    label = CLASSES.index(SILENCE) if word is None else label_of(word)
    if CLASSES[label] == UNKNOWN:
        return len(CLASSES) - 1 + unknown_words.index(word)
    return label - (label > CLASSES.index(UNKNOWN))


def split_files(root: str | os.PathLike, split: str) -> list[tuple[Path, int]]:
    """(path, class index) of every clip of `split` ('train', 'val', 'test' or 'all'), in sorted order."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    _check_root(root)
    listed = {name: _read_list(root / fname) for name, fname in SPLIT_LISTS.items()}
    words = word_folders(root)
    if not any(w in KEYWORDS for w in words):
        raise FileNotFoundError(f"{root} has no keyword folders (yes/, no/, ...): {LAYOUT}")
    out = []
    for word in words:
        for path in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{path.name}"
            here = next((name for name, names in listed.items() if rel in names), "train")
            if split in (here, "all"):
                out.append((path, label_of(word)))
    return out


def background_files(root: str | os.PathLike) -> list[Path]:
    """The background-noise recordings silence clips are cut from."""
    files = sorted((Path(root) / BACKGROUND).glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"{Path(root) / BACKGROUND} has no .wav files (needed for the silence class): {LAYOUT}")
    return files


def silence_clips(noises: list[np.ndarray], count: int, split: str, samples: int, seed: int = 0) -> list[np.ndarray]:
    """`count` clips of `samples` cut at random from the split's own segment of each noise recording."""
    lo, hi = SILENCE_SEGMENTS[split]
    rng = np.random.default_rng([seed, list(SILENCE_SEGMENTS).index(split)])
    usable = [n[int(lo * len(n)) : int(hi * len(n))] for n in noises]
    usable = [u for u in usable if len(u) > 0]
    if count and not usable:
        raise ValueError("the background-noise files are empty; cannot cut silence clips")
    clips = []
    for _ in range(count):
        seg = usable[rng.integers(len(usable))]
        start = rng.integers(max(1, len(seg) - samples + 1))
        clips.append(seg[start : start + samples] * rng.uniform(0.1, 1.0))
    return clips


def select_engines(root: Path, files: list[tuple[Path, int]], engines: list[str] | None, exclude: list[str]) -> list[tuple[Path, int]]:
    """The clips of `files` whose speaker's engine (`root/speakers.csv`) is in `engines` (all when None) and not in `exclude`."""
    if engines is None and not exclude:
        return files
    table = speaker_table(root, "engine")
    if table is None:
        raise ValueError(f"{root} has no {SPEAKER_TABLE}; engines and exclude_engines need one with 'speaker' and 'engine' columns (the generator writes it)")
    engine_of = table[1]
    known = sorted(set(engine_of.values()))
    for key, names in (("engines", engines or []), ("exclude_engines", exclude)):
        unknown = [e for e in names if e not in known]
        if unknown:
            raise ValueError(f"{key} names {', '.join(map(repr, unknown))}, not an engine of {root / SPEAKER_TABLE} (known: {', '.join(known)})")
    kept = [(p, y) for p, y in files if engine_of.get(speaker_of(p)) not in exclude and (engines is None or engine_of.get(speaker_of(p)) in engines)]
    if files and not kept:
        raise ValueError(f"no clips of {root} are left with engines={engines} and exclude_engines={exclude}; leave at least one engine in")
    return kept


def _per_class(files: list[tuple[Path, int]], limit: int | None, seed: int) -> list[tuple[Path, int]]:
    """At most `limit` clips per class, drawn at random (so `_unknown_` keeps a mix of words), in file order."""
    if limit is None:
        return files
    seen: dict[int, int] = {}
    kept = []
    for i in np.random.default_rng(seed).permutation(len(files)):
        label = files[i][1]
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= limit:
            kept.append(int(i))
    return [files[i] for i in sorted(kept)]


def tf_protocol(files: list[tuple[Path, int]], seed: int = 0) -> tuple[list[tuple[Path, int]], int]:
    """TensorFlow's 12-class mix: every keyword clip, `_unknown_` clips drawn at random to 10 % of the keyword
    clips, and as many `_silence_` clips (returned as a count); `speech_commands/input_data.py`."""
    unknown = CLASSES.index(UNKNOWN)
    keywords = [f for f in files if f[1] != unknown]
    others = [f for f in files if f[1] == unknown]
    share = math.ceil(0.1 * len(keywords))
    picked = np.random.default_rng(seed).permutation(len(others))[:share]
    return sorted(keywords + [others[i] for i in picked]), share


def speaker_of(path: str | None) -> str:
    """The speaker id of a clip file `<speaker>_nohash_<k>.wav`; `_background_` for a silence clip (path None)."""
    return "_background_" if path is None else Path(path).name.split("_nohash_")[0]


class SpeechCommands(Dataset):
    """The 12-class task: items are (features `[T, C, F]`, class index); features are computed once, then cached.

    `sample_weights` (float64 `[N]`, one per item, ∝ 1 / class count) drive the class-weighted random
    sampler of the low-activity paper §8. `report` counts the files read and the ones skipped.
    `sources` names each item's file relative to the root (None for a silence clip).
    `protocol="tf"` reads TensorFlow's class mix (`tf_protocol`) instead of every clip.
    `engines` keeps only the speakers of those engines, `exclude_engines` drops those (`select_engines`).
    `domains` names a column of `speakers.csv` (e.g. 'engine'): items become (features, class, labels) with labels
    {"domain": the index of the clip's value among the column's sorted values (`domain_names`), −1 for silence clips}.
    `phones` adds labels["phones"]: the phones of the clip's word (`spikeforge.data.lexicon`), −1-padded, none for silence.
    `words` adds labels["word"]: the clip's row of a `WordReadout` (`word_row`), its own row for each word of `_unknown_`.
    """

    classes = CLASSES

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        features: LogMelConfig = LogMelConfig(),
        silence: int | None = None,
        per_class: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        protocol: str = "all",
        augment: Augmentation = Augmentation(),
        engines: list[str] | None = None,
        exclude_engines: list[str] = (),
        domains: str | None = None,
        phones: bool = False,
        words: bool = False,
    ) -> None:
        if augment.eq_db and features.normalization not in LEVEL_KEEPING:
            raise ValueError(f"eq_db moves the bands' levels, which normalization {features.normalization!r} scales away band by band; "
                             f"use it with normalization set to one of {LEVEL_KEEPING}, or drop eq_db")
        self.root, self.split, self.config, self.augment = Path(root), split, features, augment
        self.band_centres = band_centres(features)
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        files = _per_class(select_engines(self.root, split_files(self.root, split), engines, list(exclude_engines)), per_class, seed)
        noise_files = background_files(self.root)
        if protocol == "tf":
            files, tf_silence = tf_protocol(files, seed)
            silence = tf_silence if silence is None else silence
        if silence is None:  # as many silence clips as the average keyword class
            counts = np.bincount([y for _, y in files if CLASSES[y] in KEYWORDS], minlength=len(CLASSES))
            silence = int(round(counts[counts > 0].mean())) if counts.any() else 0
        keep_mel = augment.background_prob > 0 or augment.eq_db > 0
        extra = {"split": split, "silence": silence, "per_class": per_class, "seed": seed, **({"mel": True} if keep_mel else {})}
        key = cache_key(features, [p for p, _ in files] + noise_files, extra)
        tensors, meta = cached(
            cache_dir, key, lambda: self._compute(files, noise_files, silence, seed, keep_mel)
        )
        self.features, self.targets, self.mel = tensors["features"], tensors["targets"], tensors.get("mel")
        self.noise_mel = _noise_mel(noise_files, features) if augment.background_prob > 0 else []
        skipped = json.loads(meta.get("skipped", "[]"))
        lost = set(skipped)
        self.sources = [p.relative_to(self.root).as_posix() for p, _ in files if str(p) not in lost] + [None] * silence
        self.report = {"files": len(files), "skipped": len(skipped), "skipped_files": skipped, "silence": silence}
        if skipped:
            warnings.warn(f"{self.root} ({split}): {len(skipped)} unreadable or empty WAV files skipped", stacklevel=2)
        self.domain_names, self.domains = self._domain_labels(domains) if domains else ([], None)
        self.phones = torch.tensor([phone_targets(None if p is None else Path(p).parent.name) for p in self.sources]) if phones else None
        self.unknown_words = [w for w in word_folders(self.root) if w not in KEYWORDS]
        self.words = torch.tensor([word_row(None if p is None else Path(p).parent.name, self.unknown_words) for p in self.sources]) if words else None
        counts = torch.bincount(self.targets, minlength=len(CLASSES)).double()
        self.sample_weights = 1.0 / counts.clamp(min=1)[self.targets]

    def _compute(self, files, noise_files, silence, seed, keep_mel=False):
        feats, targets, skipped, mels = [], [], [], []
        for path, label in tqdm(files, desc=f"log-Mel {self.split}", disable=None, leave=False):
            try:
                wave = read_wav(path, self.config.sample_rate)
            except (ValueError, FileNotFoundError) as err:  # a dangling link is missing
                warnings.warn(f"skipped: {err}", stacklevel=2)
                skipped.append(str(path))
                continue
            mels.append(clip_mel(wave, self.config))
            feats.append(features_from_mel(mels[-1], self.config))
            targets.append(label)
        noises = []
        for path in noise_files:
            try:
                noises.append(read_wav(path, self.config.sample_rate))
            except (ValueError, FileNotFoundError) as err:  # a dangling link is missing
                warnings.warn(f"skipped: {err}", stacklevel=2)
                skipped.append(str(path))
        for clip in silence_clips(noises, silence, self.split, self.config.clip_samples, seed):
            mels.append(clip_mel(clip, self.config))
            feats.append(features_from_mel(mels[-1], self.config))
            targets.append(CLASSES.index(SILENCE))
        shape = (0, self.config.steps, self.config.channels, self.config.n_mels)
        x = torch.stack(feats) if feats else torch.zeros(shape)
        out = {"features": x, "targets": torch.tensor(targets, dtype=torch.int64)}
        if keep_mel:
            out["mel"] = torch.from_numpy(np.stack(mels)) if mels else torch.zeros(0, self.config.n_mels, self.config.steps)
        return out, {"skipped": json.dumps(skipped)}

    def _domain_labels(self, column: str) -> tuple[list[str], torch.Tensor]:
        """(sorted values of `column` in speakers.csv, each item's index among them; −1 for silence)."""
        table = speaker_table(self.root, column)
        if table is None:
            raise ValueError(f"dataset.domains={column!r} needs {self.root / SPEAKER_TABLE} with 'speaker' and {column!r} columns (the generator writes it)")
        names = sorted(set(table[1].values()))
        missing = sorted({speaker_of(p) for p in self.sources if p is not None} - set(table[1]))
        if missing:
            raise ValueError(f"dataset.domains: speakers {', '.join(missing[:5])} of {self.root} are not in {SPEAKER_TABLE}; add them or drop dataset.domains")
        index = {name: i for i, name in enumerate(names)}
        return names, torch.tensor([-1 if p is None else index[table[1][speaker_of(p)]] for p in self.sources], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple:
        x, aug = self.features[i], self.augment
        if aug.active:
            mel = None
            if self.noise_mel and float(torch.rand(())) < aug.background_prob:
                noise = self.noise_mel[int(torch.randint(len(self.noise_mel), ()))]
                lo, hi = aug.background_snr_db
                mel = mix_background(self.mel[i].double(), noise, lo + (hi - lo) * float(torch.rand(())))
            if aug.eq_db:
                mel = equalise(self.mel[i].double() if mel is None else mel, eq_curve(self.config.n_mels, aug.eq_db))
            if mel is not None:
                x = features_from_mel(mel.numpy(), self.config)
            x = augment_features(x, aug, self.band_centres, self._random_clip)
        label = int(self.targets[i])
        labels = {**({"domain": int(self.domains[i])} if self.domains is not None else {}),
                  **({"phones": self.phones[i]} if self.phones is not None else {}),
                  **({"word": int(self.words[i])} if self.words is not None else {})}
        return (x, label, labels) if labels else (x, label)

    def _random_clip(self) -> torch.Tensor:
        """The features of a clip of this split drawn at random (torch's global generator)."""
        return self.features[int(torch.randint(len(self.targets), ()))]


def _noise_mel(noise_files: list[Path], config: LogMelConfig) -> list[torch.Tensor]:
    """Mel power `[F, L]` of the training part of each background recording long enough for one clip."""
    lo, hi = SILENCE_SEGMENTS["train"]
    out = []
    for path in noise_files:
        try:
            wave = read_wav(path, config.sample_rate)
        except (ValueError, FileNotFoundError):
            continue  # already reported when the silence clips were cut
        mel = mel_power(wave[int(lo * len(wave)) : int(hi * len(wave))], config)
        if mel.shape[1] >= config.steps:
            out.append(torch.from_numpy(mel).double())
    return out


@DATASETS.register("speech_commands")
def speech_commands(
    root: str | os.PathLike = "data/speech_commands",
    split: str = "train",
    deltas: bool = False,
    silence: int | None = None,
    per_class: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    normalization: str = "clip",
    cepstra: int = 0,
    second_front_end: str = "",
    fmin: float = LogMelConfig.fmin,
    fmax: float = LogMelConfig.fmax,
    n_mels: int = LogMelConfig.n_mels,
    protocol: str = "all",
    background_prob: float = 0.0,
    background_snr_db: list[float] = (0.0, 20.0),
    time_shift_steps: int = 0,
    time_masks: int = 0,
    time_mask_steps: int = 10,
    freq_masks: int = 0,
    freq_mask_bands: int = 5,
    freq_warp: float | list[float] = 0.0,
    formant_warp: float = 0.0,
    time_stretch: float = 0.0,
    style_mix: float = 0.0,
    style_alpha: float = 0.3,
    eq_db: float = 0.0,
    engines: list[str] | None = None,
    exclude_engines: list[str] = (),
    domains: str | None = None,
    phones: bool = False,
    words: bool = False,
) -> SpeechCommands:
    """Speech Commands at `root` (real v1/v2 or generated), 12 classes, features `[100, 1–3, n_mels]` per clip.

    `deltas` adds the Δ/ΔΔ channels; `silence` sets the number of silence clips (default: the mean
    keyword-class size); `per_class` caps the clips read per class; features are cached under
    `cache_dir` unless `cache` is false (a training run passes `features/` beside its run folder; None: computed each time); `normalization`
    'running' gives the causal features `spikeforge detect` streams, 'cmvn' log-Mel with per-utterance mean and
    variance normalisation (see `audio_features`), with `cepstra` > 0 only its spectral envelope, 'pcen' per-channel
    energy normalisation, 'db' dB below the clip's peak with the bands' levels kept; `fmin`/`fmax` bound the `n_mels`
    Mel bands (the papers': 40 over 20–4000 Hz; up to 8000 Hz keeps the fricatives' energy; a model takes `n_mels` as
    its `bands`); `second_front_end` (another normalisation, e.g. 'clip' beside 'db') adds the same Mel power under it as one
    more channel (a model takes 2 as its `in_channels`); `protocol`
    'tf' reads TensorFlow's class mix (every keyword clip, 10 % unknown, 10 % silence) instead of every clip.
    `background_*`, `eq_db`, `style_mix`/`style_alpha`, `freq_warp`, `formant_warp`, `time_stretch`, `time_shift_steps`, `time_masks`/`time_mask_steps`, `freq_masks`/`freq_mask_bands`
    augment the training split (`spikeforge.data.augment`; all off by default). `engines` / `exclude_engines`
    keep only / leave out the speakers of those engines (from `root/speakers.csv`), e.g. to train with one engine left out.
    `domains` (a `speakers.csv` column, e.g. 'engine') labels each training clip's domain for domain-adversarial training
    (`method.domain_adversary`), `phones` with the phones of its word for the auxiliary phone loss (`method.phone_ctc`),
    `words` with its word's readout row (`method.word_loss`, with `model.unknown_words`); the validation and test splits
    stay unlabelled.
    """
    augment = Augmentation(background_prob=background_prob, background_snr_db=tuple(background_snr_db),
                           time_shift_steps=time_shift_steps, time_masks=time_masks, time_mask_steps=time_mask_steps,
                           freq_masks=freq_masks, freq_mask_bands=freq_mask_bands,
                           freq_warp=tuple(freq_warp) if isinstance(freq_warp, (list, tuple)) else freq_warp,
                           formant_warp=formant_warp, time_stretch=time_stretch, style_mix=style_mix, style_alpha=style_alpha,
                           eq_db=eq_db)
    directory = Path(cache_dir) if cache and cache_dir else None
    features = features_of({"deltas": deltas, "normalization": normalization, "cepstra": cepstra, "fmin": fmin, "fmax": fmax,
                            "n_mels": n_mels, "second_front_end": second_front_end})
    return SpeechCommands(root, split, features, silence, per_class, directory,
                          protocol=protocol, augment=augment if split == "train" else Augmentation(),
                          engines=engines, exclude_engines=exclude_engines, domains=domains if split == "train" else None,
                          phones=phones and split == "train", words=words and split == "train")


def speaker_table(root: str | os.PathLike, column: str | None = None) -> tuple[str, dict[str, str]] | None:
    """(column, speaker → value) from `root/speakers.csv` (a `speaker` column and others, e.g. `engine`, `voice`);
    None without a table. `column` defaults to `engine`, else `voice` (None when the table has neither)."""
    path = Path(root) / SPEAKER_TABLE
    rows = _table_rows(path)
    if rows is None:
        return None
    fields = list(rows[0]) if rows else []
    if column is None:
        column = next((c for c in ("engine", "voice") if c in fields), None)
        if column is None:
            return None
    if "speaker" not in fields or column not in fields:
        raise ValueError(f"{path} has columns {fields}; it needs 'speaker' and {column!r} (name one of its columns: eval's --group-by, or dataset.domains in a recipe)")
    return column, {r["speaker"]: r[column] for r in rows}


def clip_table(root: str | os.PathLike, column: str) -> dict[str, str] | None:
    """file → value of `column` from `root/clips.csv`; None without that table or column."""
    rows = _table_rows(Path(root) / CLIP_TABLE)
    if not rows or "file" not in rows[0] or column not in rows[0]:
        return None
    return {r["file"]: r[column] for r in rows}


def _table_rows(path: Path) -> list[dict[str, str]] | None:
    """The rows of the CSV table at `path` as dicts by column; None where there is no such file."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def speaker_groups(root: str | os.PathLike, sources: list[str | None], column: str | None = None) -> tuple[str, list[str]] | None:
    """(column, group of each item) from `root/speakers.csv` (`speaker_table`), or per clip from `root/clips.csv` when
    the column is one of its (e.g. `snr_band`); silence clips form the group `_background_`."""
    per_clip = clip_table(root, column) if column is not None else None
    if per_clip is not None:
        return column, [per_clip.get(s, "?") if s is not None else "_background_" for s in sources]
    table = speaker_table(root, column)
    if table is None:
        return None
    column, group = table
    return column, [group.get(speaker_of(s), "_background_" if s is None else "?") for s in sources]


def features_of(dataset: dict) -> LogMelConfig:
    """The feature settings a run's `dataset` recipe section trained with."""
    return LogMelConfig(deltas=bool(dataset.get("deltas", False)), normalization=dataset.get("normalization", "clip"),
                        cepstra=int(dataset.get("cepstra", 0)), fmin=float(dataset.get("fmin", LogMelConfig.fmin)),
                        fmax=float(dataset.get("fmax", LogMelConfig.fmax)), n_mels=int(dataset.get("n_mels", LogMelConfig.n_mels)),
                        second_front_end=str(dataset.get("second_front_end", "")))
