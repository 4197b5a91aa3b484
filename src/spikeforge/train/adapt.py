"""Self-training on unlabelled clips (pseudo-labelling; Scudder 1965, Lee 2013): a trained keyword-spotting run labels
clips it never heard, the share it is surest of joins its training data under those labels, and the run's recipe trains
a new network from scratch on the whole.

The new training folder (`OUT/pseudo-labelled-…/`) is made of links: every clip the run trained, validated and tested on,
at its own place and split, none of the unlabelled clips among them; the chosen unlabelled clips under the folder of their
pseudo-label (`unknown/` for `_unknown_`; a clip labelled `_silence_` is left out), all in the training split. Beside it,
`pseudo_labels.csv` lists every unlabelled clip with its label, probability and whether it was kept.
"""

from __future__ import annotations

import copy
import csv
import io
import os
import shutil
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from spikeforge.data.speech_commands import (
    BACKGROUND, CLASSES, SILENCE, SPEAKER_TABLE, SPLIT_LISTS, UNKNOWN, background_files, features_of, read_wav, select_engines,
    speaker_of, speaker_table, split_files,
)
from spikeforge.streaming.clip import classify_clip
from spikeforge.train import runfolder
from spikeforge.train.atomic import atomic_write_text
from spikeforge.train.config import validate
from spikeforge.train.loading import load_run
from spikeforge.train.stages import trainer_for

LABELS = "pseudo_labels.csv"


@dataclass(frozen=True)
class PseudoLabel:
    """One unlabelled clip as the run read it."""

    path: Path
    label: int  # class index
    probability: float


def unlabelled_clips(folder: Path, engine: str | None = None) -> list[Path]:
    """Every WAV file under `folder` but its background recordings, sorted; with `engine`, only the clips of that
    engine's speakers (`folder/speakers.csv`). Folder names are not read as labels."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {folder}: no such folder; give the folder of the unlabelled WAV clips")
    clips = sorted(p for p in folder.rglob("*.wav") if BACKGROUND not in p.relative_to(folder).parts)
    if engine is not None:
        table = speaker_table(folder, "engine")
        if table is None:
            raise FileNotFoundError(f"--engine {engine}: {folder} has no {SPEAKER_TABLE} naming each speaker's engine")
        if engine not in set(table[1].values()):
            raise ValueError(f"--engine {engine}: not an engine of {folder / SPEAKER_TABLE} (known: {', '.join(sorted(set(table[1].values())))})")
        clips = [p for p in clips if table[1].get(speaker_of(str(p))) == engine]
    if not clips:
        raise FileNotFoundError(f"{folder} holds no WAV clips{f' of engine {engine}' if engine else ''} to adapt to")
    return clips


def pseudo_labels(model, config: dict, clips: list[Path], progress_bar: bool = False) -> list[PseudoLabel]:
    """Each clip's most probable class under `model` and its probability, features as the run was trained with; an
    unreadable clip is skipped with a warning (as the dataset loader does)."""
    features = features_of(config["dataset"])
    out = []
    for path in tqdm(clips, desc="pseudo-labels", disable=not progress_bar, leave=False):
        try:
            wave = read_wav(path, features.sample_rate)
        except (ValueError, FileNotFoundError) as err:
            warnings.warn(f"skipped: {err}", stacklevel=2)
            continue
        scores = classify_clip(model, wave, features)
        out.append(PseudoLabel(path, scores.label, float(scores.probabilities[scores.label])))
    if not out:
        raise ValueError(f"none of the {len(clips)} WAV clips could be read; see the warnings above")
    return out


def most_confident(labels: list[PseudoLabel], keep: float) -> list[PseudoLabel]:
    """The `keep` share of `labels` with the highest probabilities (ties: file order), those labelled `_silence_` dropped."""
    _check_keep(keep)
    ranked = sorted(range(len(labels)), key=lambda i: -labels[i].probability)[: round(keep * len(labels))]
    return [labels[i] for i in sorted(ranked) if CLASSES[labels[i].label] != SILENCE]


def _check_keep(keep: float) -> None:
    if not 0 < keep <= 1:
        raise ValueError(f"--keep must be in (0, 1], the share of the unlabelled clips to train on; got {keep}")


def _identity(path: Path) -> tuple[int, int]:
    """The file a path names, through symbolic and hard links alike (device, inode)."""
    st = path.stat()
    return st.st_dev, st.st_ino


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src.resolve(), dst)


def pseudo_labelled_folder(dataset: dict, chosen: list[PseudoLabel], unlabelled: list[Path], out: Path) -> tuple[Path, Counter]:
    """A new folder `out/pseudo-labelled-…` of links: the run's own clips (`dataset`'s root and engines) but the unlabelled
    ones, its background recordings, split lists and speaker table, and the `chosen` clips under their pseudo-labels'
    folders. Returns (the folder, the count of chosen clips per class name)."""
    root = Path(dataset["root"])
    excluded = {_identity(p) for p in unlabelled}
    selected = {p: _identity(p) for p, _ in select_engines(root, split_files(root, "all"), dataset.get("engines"),
                                                            list(dataset.get("exclude_engines", []))) if p.exists()}  # a dangling link is skipped, as the loader skips it
    if not selected:
        raise FileNotFoundError(f"none of the run's own clips under {root} can be read (a self-trained run's links dangle once the corpus "
                                "they point to has moved); give the folder where the run's training data lies now with --root")
    own = [p for p, file in selected.items() if file not in excluded]
    earlier = {_identity(Path(r["file"])) for r in _read_labels(root / LABELS)}  # a self-trained run's own pseudo-labels
    relabelled = len((set(selected.values()) & excluded) - earlier)
    if relabelled:
        warnings.warn(f"{relabelled} of the unlabelled clips are clips the run learnt from with their labels ({root}); they are used "
                      "with their pseudo-labels instead of their own (to adapt to other voices, point --data or --engine at those alone)", stacklevel=2)
    linked = {p.relative_to(root).as_posix() for p in own}
    lists = {name: [line for line in (root / name).read_text().splitlines() if line.strip() in linked]
             for name in SPLIT_LISTS.values() if (root / name).is_file()}
    for name, lines in lists.items():
        if not lines:
            raise ValueError(f"every clip of {root / name} is among the unlabelled clips, so the new network would have none to be "
                             "validated and tested on; point --data (or --engine) at clips the run did not learn from")
    out.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="pseudo-labelled-", dir=out))
    for path in own:
        _link(path, dest / path.relative_to(root))
    for path in background_files(root):
        _link(path, dest / BACKGROUND / path.name)
    for name, lines in lists.items():
        atomic_write_text(dest / name, "".join(f"{line}\n" for line in lines))
    if (root / SPEAKER_TABLE).is_file():
        shutil.copyfile(root / SPEAKER_TABLE, dest / SPEAKER_TABLE)
    taken: Counter = Counter()
    for clip in chosen:
        name = CLASSES[clip.label]
        speaker = speaker_of(str(clip.path)) if "_nohash_" in clip.path.name else "adapted"
        _link(clip.path, dest / ("unknown" if name == UNKNOWN else name) / f"{speaker}_nohash_a{taken[speaker]}.wav")
        taken[speaker] += 1
    return dest, Counter(CLASSES[c.label] for c in chosen)


def _read_labels(path: Path) -> list[dict]:
    """The rows of a `pseudo_labels.csv` whose clips still exist (none when there is no such file)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if Path(r["file"]).exists()]


def write_labels(path: Path, labels: list[PseudoLabel], chosen: list[PseudoLabel]) -> None:
    """`pseudo_labels.csv`: file, label, probability, kept (1/0) of every unlabelled clip."""
    kept = {c.path for c in chosen}
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(
        [["file", "label", "probability", "kept"]] + [[str(x.path), CLASSES[x.label], f"{x.probability:.4f}", int(x.path in kept)] for x in labels])
    atomic_write_text(path, text.getvalue())


def self_train(run: Path, folder: Path, out: Path, keep: float = 0.6, engine: str | None = None, root: Path | None = None,
               log: Callable[[str], None] = print, progress_bar: bool = False) -> tuple[Path, dict]:
    """Pseudo-label the clips of `folder` (of `engine`) with `run`, build the training folder under `out` from them and the
    run's own clips (in its recipe's root, or `root` where they lie now), and train the run's recipe on it from scratch.
    Returns (the new run folder, its final metrics)."""
    _check_keep(keep)
    recipe = runfolder.read_config(run)
    if "stages" in recipe:
        raise ValueError(f"{run} is a staged run; self-training retrains one recipe, so give it a single-stage speech run")
    if recipe.get("dataset", {}).get("words"):
        raise ValueError(f"{run} trains a readout row per word of `_unknown_` (dataset.words); a pseudo-label names the class, "
                         "not the word, so its recipe cannot train on them: self-train a run without model.unknown_words")
    config, model, _ = load_run(run, "best", "speech_commands")
    dataset = {**config["dataset"], "root": str(root if root is not None else config["dataset"]["root"])}
    if not Path(dataset["root"]).is_dir():
        raise FileNotFoundError(f"the run's own clips are not at {dataset['root']}: self-training trains on them too; "
                                f"give the folder where {run}'s training data lies now with --root")
    clips = unlabelled_clips(folder, engine)
    labels = pseudo_labels(model, config, clips, progress_bar)
    chosen = most_confident(labels, keep)
    dest, counts = pseudo_labelled_folder(dataset, chosen, clips, out)
    write_labels(dest / LABELS, labels, chosen)
    log(f"pseudo-labelled {len(chosen)} of {len(clips)} clips into {dest}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    student = copy.deepcopy(config)
    student["dataset"].update(root=str(dest), exclude_engines=[], engines=None)
    student["name"] = f"{config['name'].removesuffix('-self-trained')}-self-trained"  # a second round keeps the name
    student = validate(student)
    run_dir, trainer = runfolder.start_run(out, student["name"], student, lambda r: trainer_for(student, r, log=log, progress_bar=progress_bar))
    log(f"run folder: {run_dir}")
    return run_dir, trainer.fit()
