"""How recognisable each engine's words are to a recogniser trained on real human speech: CMU PocketSphinx's US English
acoustic model (bundled in the `pocketsphinx` wheel) decodes every clip of a generated Speech Commands folder under a
grammar of its words (a closed choice among the folder's 30 words, or nothing), and the script prints, per engine,
the keyword accuracy (the ten commands' clips, as `spikeforge eval` counts keyword accuracy), the accuracy on all
words, the share of clips it rejected, and the accuracy per band of the clips' signal-to-noise ratio (`clips.csv`).

    pip install pocketsphinx==5.1.1
    python benchmarks/reference_asr.py ROOT [--per-clip FILE.csv]

A reference, not a competitor: a 2010s Gaussian-mixture recogniser, never adapted to these voices or this noise. What it
says is which engines sound least like the human speech it was trained on, independently of the engines a network
here was trained on.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import wave
from collections import defaultdict
from pathlib import Path

from pocketsphinx import Decoder

from spikeforge.data.speech_commands import KEYWORDS, speaker_of, speaker_table

SAMPLE_RATE = 16000


def decoder_for(words: list[str], folder: Path) -> Decoder:
    """A PocketSphinx decoder (US English acoustic model) restricted to saying one of `words` (a JSGF grammar)."""
    grammar = folder / "words.gram"
    grammar.write_text("#JSGF V1.0;\ngrammar words;\npublic <word> = " + " | ".join(words) + " ;\n")
    return Decoder(jsgf=str(grammar), logfn="/dev/null")


def heard(decoder: Decoder, path: Path) -> str:
    """The word `decoder` hears in the 16-bit 16 kHz mono clip at `path` ('' when it hears none)."""
    with wave.open(str(path)) as clip:
        if (clip.getframerate(), clip.getsampwidth(), clip.getnchannels()) != (SAMPLE_RATE, 2, 1):
            raise ValueError(f"{path}: PocketSphinx's model needs 16-bit 16 kHz mono, got {clip.getsampwidth() * 8}-bit "
                             f"{clip.getframerate()} Hz with {clip.getnchannels()} channels")
        audio = clip.readframes(clip.getnframes())
    decoder.start_utt()
    decoder.process_raw(audio, full_utt=True)
    decoder.end_utt()
    return decoder.hyp().hypstr.strip() if decoder.hyp() is not None else ""


def percent(right: int, total: int) -> str:
    return f"{100 * right / total:.1f}" if total else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a generated Speech Commands folder (speakers.csv, clips.csv)")
    parser.add_argument("--per-clip", type=Path, help="also write each clip's word, engine and what was heard to this CSV")
    args = parser.parse_args()
    table = speaker_table(args.root, "engine")
    if table is None:
        raise SystemExit(f"{args.root} has no speakers.csv with an 'engine' column; give a folder made by `spikeforge data speech-commands`")
    engine_of = table[1]
    with open(args.root / "clips.csv", newline="") as f:
        band_of = {row["file"]: row["snr_band"] for row in csv.DictReader(f)}
    words = sorted(d.name for d in args.root.iterdir() if d.is_dir() and not d.name.startswith("_"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        decoder = decoder_for(words, Path(tmp))
        for word in words:
            for path in sorted((args.root / word).glob("*.wav")):
                rows.append((f"{word}/{path.name}", engine_of[speaker_of(str(path))], word, heard(decoder, path)))
    if args.per_clip:
        with open(args.per_clip, "w", newline="") as f:
            csv.writer(f).writerows([("file", "engine", "word", "heard"), *rows])
    bands = sorted({band_of[r[0]] for r in rows}, key=lambda b: float(b.split("–")[0]))
    count: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for file, engine, word, said in rows:
        keys = ["words", "rejected", band_of[file]] + (["keywords"] if word in KEYWORDS else [])
        for key in keys:
            count[engine, key][0] += (said == "") if key == "rejected" else (said == word)
            count[engine, key][1] += 1
    print("| engine | keyword accuracy % | all words % | rejected % | " + " | ".join(bands) + " |")
    print("| --- " * (4 + len(bands)) + "|")
    for engine in sorted({r[1] for r in rows}):
        cells = [percent(*count[engine, key]) for key in ("keywords", "words", "rejected", *bands)]
        print(f"| {engine} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
