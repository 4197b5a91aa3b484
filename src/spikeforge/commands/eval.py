"""`spikeforge eval RUN_DIR`: evaluate a run's checkpoint on a split and print the summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from spikeforge.registry import METHODS, MODELS
from spikeforge.train import checkpoint, runfolder
from spikeforge.train.config import validate
from spikeforge.train.distributed import setup
from spikeforge.train.evaluate import evaluate
from spikeforge.train.trainer import build, build_datasets


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run's checkpoint on the test (or validation) split")
    p.add_argument("run_dir", type=Path, help="a run folder (runs/NAME-TIMESTAMP)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = validate(runfolder.read_config(args.run_dir))
    ctx = setup(config["device"])
    _, val, test = build_datasets(config["dataset"], config["seed"])
    model = build(MODELS, config["model"]).to(ctx.device)
    step = checkpoint.load_weights(checkpoint.resolve(args.run_dir, args.checkpoint), model)
    result = evaluate(model, build(METHODS, config["method"]), test if args.split == "test" else val, config["encoder"], config["eval_batch_size"], ctx, detailed=True)
    print(f"{args.run_dir} ({args.checkpoint} checkpoint, step {step}) on the {args.split} split, {result.samples} samples")
    print(f"accuracy {100 * result.accuracy:.2f}%  loss {result.loss:.4f}  synaptic ops/sample {sum(result.synops.values()):.4g}")
    for name, rate in result.spike_rates.items():
        print(f"  spike rate {name}: {100 * rate:.2f}%")
    return 0
