"""`spikeforge predict RUN_DIR FILE.wav` and `spikeforge ablate RECIPE`: keyword spotting (low-activity paper).

`predict` classifies one WAV file with a trained run and plots the per-step scores (Fig. 2c).
`ablate` trains the Table 2 variants of a recipe and writes a markdown table like Table 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spikeforge.data.speech_commands import CLASSES, features_of, read_wav
from spikeforge.streaming.clip import classify_clip, plot_trace
from spikeforge.train.ablation import VARIANTS, ablate as train_ablations
from spikeforge.train.loading import load_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify a WAV file with a trained keyword-spotting run; plot the per-step scores")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("wav", type=Path, metavar="FILE.wav")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--png", type=Path, default=None, help="score-trace plot (default: RUN_DIR/predict-<FILE>.png)")
    p.set_defaults(func=predict)

    a = sub.add_parser("ablate", help="train the Table 2 ablations of a keyword-spotting recipe and write a markdown table")
    a.add_argument("recipe", help="recipe name or YAML path (its model must be kws_dilated)")
    a.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key for every variant")
    a.add_argument("--out", type=Path, default=Path("runs"), help="folder for the run folders and the table (default ./runs)")
    a.add_argument("--table", type=Path, default=None, help="markdown table to write (default OUT/ablation.md)")
    a.set_defaults(func=ablate)


def predict(args: argparse.Namespace) -> int:
    config, model, _ = load_run(args.run_dir, args.checkpoint, "speech_commands")
    features = features_of(config["dataset"])
    clip = classify_clip(model, read_wav(args.wav, features.sample_rate), features)
    name, probability = CLASSES[clip.label], float(clip.probabilities[clip.label])
    png = args.png or args.run_dir / f"predict-{args.wav.stem}.png"
    plot_trace(png, clip.features, clip.scores, CLASSES, f"{args.wav.name}: {name} ({100 * probability:.1f}%)", features.hop_ms)
    print(f"{args.wav}: {name} (probability {probability:.3f})")
    print(f"score trace: {png}")
    return 0


def ablate(args: argparse.Namespace) -> int:
    table = args.table or args.out / "ablation.md"
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    train_ablations(args.recipe, args.overrides, variants, args.out, table, log=lambda line: print(line, flush=True))
    print(f"table: {table}")
    return 0
