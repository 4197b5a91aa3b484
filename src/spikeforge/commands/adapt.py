"""`spikeforge adapt RUN --data FOLDER --out DIR`: self-training of a keyword-spotting run on unlabelled clips (`spikeforge.train.adapt`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spikeforge.train.adapt import self_train


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt", help="self-training: a keyword-spotting run labels unlabelled clips, a new network trains on its surest labels too")
    p.add_argument("run_dir", type=Path, help="a trained speech_commands run folder (the teacher)")
    p.add_argument("--data", type=Path, required=True, metavar="FOLDER", help="unlabelled WAV clips (any layout; folder names are not read as labels)")
    p.add_argument("--engine", default=None, help="only the clips of this engine's speakers (FOLDER/speakers.csv), e.g. the one a loeo fold left out")
    p.add_argument("--keep", type=float, default=0.6, help="share of the unlabelled clips to train on, the most confident first (default 0.6)")
    p.add_argument("--out", type=Path, required=True, help="folder for the pseudo-labelled training folder and the new run folder")
    p.add_argument("--root", type=Path, default=None, metavar="FOLDER",
                   help="where the run's own training data lies now, if it was moved (default: the recipe's dataset.root)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir, metrics = self_train(args.run_dir, args.data, args.out, args.keep, args.engine, args.root,
                                  log=lambda line: print(line, flush=True), progress_bar=not args.no_progress)
    print(f"self-trained run: {run_dir} (own test accuracy {100 * metrics['accuracy']:.2f} %)")
    if args.engine:  # a Speech Commands folder with speakers.csv: the run can be scored on the engine's clips
        print(f"evaluate it on the engine's clips with: spikeforge eval {run_dir} --data {args.data} --engine {args.engine} --split all --protocol tf")
    return 0
