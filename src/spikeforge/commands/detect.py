"""`spikeforge detect RUN_DIR LONG.wav` (or `-`, audio piped to stdin): keywords in a long recording or an endless live
input, the model run step by step with carried state, each keyword printed as it is detected."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from spikeforge.data.audio_features import CAUSAL
from spikeforge.data.speech_commands import CLASSES, KEYWORDS, features_of, read_wav
from spikeforge.streaming.accuracy import read_labels, score
from spikeforge.streaming.detector import DetectionRule
from spikeforge.streaming.plot import plot_stream
from spikeforge.streaming.run import KeywordSpotter, chunks_of
from spikeforge.streaming.source import pcm_chunks, pipe_hint
from spikeforge.train.loading import load_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="find keywords in a long WAV file, streaming the model step by step")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("wav", type=Path, metavar="LONG.wav",
                   help="the recording, or - for 16-bit PCM piped to stdin (raw or WAV, at the run's sample rate; endless until the "
                        "input ends or Ctrl-C), e.g. from `arecord -f S16_LE -r 16000 -c 1`")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--threshold", type=float, default=0.7, help="smoothed posterior a keyword must exceed (default 0.7)")
    p.add_argument("--average-ms", type=float, default=500.0, help="posterior smoothing window (default 500 ms)")
    p.add_argument("--suppression-ms", type=float, default=1500.0, help="no repeat of the same keyword within this time (default 1500 ms)")
    p.add_argument("--labels", type=Path, default=None, metavar="FILE",
                   help="ground truth, one 'keyword,time_ms' line per word (TF's format; `spikeforge data streaming-test` writes one): print TF's streaming accuracy")
    p.add_argument("--tolerance-ms", type=float, default=750.0, help="how far a detection may be from its word's time (default 750 ms, as TF's)")
    p.add_argument("--plot", type=Path, default=None, metavar="DIR",
                   help="write DIR/detect-<LONG>.png: posteriors over time (keeps every step's scores: on stdin, memory grows with the input)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    truth = read_labels(args.labels) if args.labels is not None else None  # a bad file fails before the model runs
    config, model, _ = load_run(args.run_dir, args.checkpoint, "speech_commands")
    features = features_of(config["dataset"])
    live = str(args.wav) == "-"
    if live:
        if sys.stdin.isatty():
            raise ValueError(f"stdin is a terminal; {pipe_hint(features.sample_rate)}")
        chunks = pcm_chunks(sys.stdin.buffer, features.sample_rate)
    else:
        chunks = chunks_of(read_wav(args.wav, features.sample_rate), features.sample_rate)  # a bad file fails before any warning about the model
    if not features.causal:
        trained = {key: getattr(features, key) for key in ("normalization", "second_front_end") if getattr(features, key)}
        for key, name in trained.items():
            if name not in CAUSAL:
                raise ValueError(f"{args.run_dir} was trained on {key}={name!r} features, which have no causal twin to stream; "
                                 f"train with dataset.{key} set to one of {sorted(CAUSAL.values())}")
        twins = {key: CAUSAL[name] for key, name in trained.items()}
        print(f"warning: {args.run_dir} was trained on whole-clip normalised features ({' and '.join(map(repr, trained.values()))}); "
              f"the stream uses their causal twin{'s' if len(twins) > 1 else ''} ({' and '.join(map(repr, twins.values()))}), on "
              "which such a model can lose most of its accuracy (docs/results/speech.md); train with "
              f"{' and '.join(f'dataset.{key}={twin}' for key, twin in twins.items())} for a model that sees the same features "
              "in training and on the stream")
        features = replace(features, **twins)
    hop = features.hop_ms
    rule = DetectionRule(features.steps, max(1, round(args.average_ms / hop)), args.threshold, round(args.suppression_ms / hop))
    spotter = KeywordSpotter(model, features, rule, CLASSES, KEYWORDS, keep=args.plot is not None)

    def show(found: list) -> None:
        for d in found:
            print(f"{d.step * hop / 1000:8.2f} s  {CLASSES[d.label]:<6} {d.score:.3f}", flush=True)

    try:
        for chunk in chunks:
            show(spotter.push(chunk))
    except KeyboardInterrupt:  # the end of a live input
        print("interrupted", file=sys.stderr)
    show(spotter.flush())
    result = spotter.result()
    print(f"{len(result.detections)} keywords in {result.audio_seconds:.1f} s of audio; {result.seconds:.2f} s to process "
          f"(real-time factor {result.real_time_factor:.3f}; in CPU time {result.cpu_real_time_factor:.3f})")
    if truth is not None:
        found = [(CLASSES[d.label], d.step * hop) for d in result.detections]
        print(f"streaming accuracy: {score(found, truth, args.tolerance_ms).line(args.tolerance_ms)}")
    if args.plot is not None:
        stem, name = ("stdin", "stdin") if live else (args.wav.stem, args.wav.name)
        png = args.plot / f"detect-{stem}.png"
        plot_stream(png, result, CLASSES, hop, args.threshold, f"{name}: {len(result.detections)} keywords")
        print(f"plot: {png}")
    return 0
