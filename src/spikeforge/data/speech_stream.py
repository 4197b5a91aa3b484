"""A long labelled recording for streaming keyword spotting, made from the clips of a Speech Commands folder.

After TensorFlow's `generate_streaming_test_wav.py`: one clip per slot, slots a word gap apart (drawn in
[½, 1½] × gap), a background recording of the folder looped under the whole signal at a fixed volume;
80 % of the slots a keyword, 10 % another word, 10 % nothing. The labels file is in TF's format, one line
`keyword,time_ms` per keyword clip, with two differences: the time is the end of the clip (TF writes its
start), the earliest a causal detector has heard the whole word, and other words are played but not
labelled (TF labels them `_unknown_`), so a detection there is a false positive.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from spikeforge.data.output import add_arguments, dataset_folder
from spikeforge.data.speech_commands import (
    CLASSES, SPLITS, UNKNOWN, background_files, read_wav, select_engines, split_files,
)
from spikeforge.data.speech_engines import SAMPLE_RATE

WAV, LABELS = "streaming_test.wav", "streaming_test_labels.txt"
#: Shares of the slots (TF's defaults): keyword, other word, silence.
SLOT_SHARES = (0.8, 0.1, 0.1)


def streaming_test(root: str | Path, seconds: float, split: str = "test", engines: list[str] | None = None, gap_ms: float = 2000.0,
                   background_volume: float = 0.1, seed: int = 0) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """(samples of a `seconds`-long recording, [(keyword, end of its clip in ms)]) from the clips of `split`."""
    if seconds <= 0 or gap_ms < 0 or background_volume < 0:
        raise ValueError(f"need seconds > 0, gap_ms ≥ 0 and background_volume ≥ 0, got {seconds}, {gap_ms}, {background_volume}")
    root = Path(root)
    files = select_engines(root, split_files(root, split), engines, [])
    unknown = CLASSES.index(UNKNOWN)
    pools = ([p for p, y in files if y != unknown], [p for p, y in files if y == unknown])
    if not pools[0]:
        raise ValueError(f"{root} has no keyword clips in split {split!r}" + (f" of engines {engines}" if engines else ""))
    rng = np.random.default_rng(seed)
    total = int(seconds * SAMPLE_RATE)
    backgrounds = background_files(root)
    noise = read_wav(backgrounds[rng.integers(len(backgrounds))], SAMPLE_RATE)
    wave = background_volume * np.resize(noise, total)  # the recording looped to the length
    labels = []
    at = int(rng.uniform(0.5, 1.5) * gap_ms * SAMPLE_RATE / 1000)
    while True:
        slot = rng.choice(3, p=SLOT_SHARES)
        path = pools[slot][rng.integers(len(pools[slot]))] if slot < 2 and pools[slot] else None
        clip = read_wav(path, SAMPLE_RATE) if path is not None else np.zeros(SAMPLE_RATE, np.float32)
        if at + len(clip) > total:
            break
        wave[at : at + len(clip)] += clip
        if slot == 0:
            labels.append((path.parent.name, round((at + len(clip)) * 1000 / SAMPLE_RATE)))
        at += len(clip) + int(rng.uniform(0.5, 1.5) * gap_ms * SAMPLE_RATE / 1000)
    return np.clip(wave, -1.0, 1.0).astype(np.float32), labels


def write_labels(path: Path, labels: list[tuple[str, int]]) -> None:
    """TF's ground-truth file: one `label,time_ms` line per keyword."""
    path.write_text("".join(f"{word},{ms}\n" for word, ms in labels))


def _run(args: argparse.Namespace) -> int:
    engines = [e.strip() for e in args.engine] if args.engine else None
    wave, labels = streaming_test(args.root, args.seconds, args.split, engines, args.gap_ms, args.background_volume, args.seed)
    with dataset_folder(args.out, args.force, "streaming-test") as tmp:
        sf.write(tmp / WAV, wave, SAMPLE_RATE, subtype="PCM_16")
        write_labels(tmp / LABELS, labels)
    out = Path(args.out)
    print(f"wrote {out / WAV} ({args.seconds:.0f} s, {len(labels)} keywords) and {out / LABELS}; "
          f"score a run with: spikeforge detect RUN {out / WAV} --labels {out / LABELS}")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add `spikeforge data streaming-test ROOT OUT`."""
    p = sub.add_parser("streaming-test", help="a long labelled recording from a Speech Commands folder's clips, for `spikeforge detect --labels`")
    p.add_argument("root", metavar="ROOT", help="a Speech Commands folder (real or generated)")
    add_arguments(p, "folder to write streaming_test.wav and streaming_test_labels.txt into")
    p.add_argument("--split", choices=SPLITS, default="test", help="the clips to draw from (default test)")
    p.add_argument("--engine", action="append", default=None, metavar="NAME",
                   help="only the speakers of this engine (speakers.csv; repeatable), e.g. the one a run left out")
    p.add_argument("--seconds", type=float, default=600.0, help="length of the recording (default 600, as TF's)")
    p.add_argument("--gap-ms", type=float, default=2000.0, help="mean gap between clips (default 2000 ms, as TF's)")
    p.add_argument("--background-volume", type=float, default=0.1, help="gain of the looped background recording (default 0.1, as TF's)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)
