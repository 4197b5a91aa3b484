"""`spikeforge train RECIPE [--set key=value ...] [--resume [RUN_DIR]] [--out DIR]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from spikeforge.train import runfolder
from spikeforge.train.config import RecipeError, apply_overrides, load_recipe, validate
from spikeforge.train.report import summary_table
from spikeforge.train.trainer import Trainer, TrainingDiverged, TrainingInterrupted


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a recipe (a name in recipes/ or a YAML path); torchrun for several processes")
    p.add_argument("recipe", help="recipe name (recipes/NAME.yaml) or path to a YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key, e.g. --set optimizer.lr=1e-3 (repeatable)")
    p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN_DIR", help="continue from the last checkpoint of RUN_DIR (default: the newest run of this recipe)")
    p.add_argument("--out", default="runs", help="folder for new run folders (default: ./runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _resolve(args: argparse.Namespace) -> tuple[dict, Path | None, Path | None]:
    """(config, run folder, checkpoint to resume from) for the command line."""
    if args.resume is None:
        return load_recipe(args.recipe, args.overrides), None, None
    if args.resume == "latest":
        run = runfolder.latest_run(args.out, load_recipe(args.recipe)["name"])
    else:
        run = Path(args.resume)
    try:
        config = validate(apply_overrides(runfolder.read_config(run), args.overrides))
    except RecipeError as err:
        raise RecipeError(f"{run}/{runfolder.CONFIG}: {err}") from None
    return config, run, run / "checkpoints" / "last"


def run(args: argparse.Namespace) -> int:
    config, run_dir, resume = _resolve(args)
    is_main = int(os.environ.get("RANK", "0")) == 0
    if is_main:
        run_dir = run_dir or runfolder.new_run_dir(args.out, config["name"])
        runfolder.write_config(run_dir, config)
        print(f"run folder: {run_dir}", flush=True)
    try:
        trainer = Trainer(config, run_dir if is_main else None, resume=resume, progress_bar=not args.no_progress)
        metrics = trainer.fit()
    except TrainingDiverged as err:
        print(f"spikeforge train: error: {err}", file=sys.stderr)
        return 1
    except TrainingInterrupted as err:
        if is_main:
            print(f"spikeforge train: {err}", file=sys.stderr)
        return 130
    if is_main:
        print(summary_table(metrics))
        print(f"run folder: {run_dir}  (plots: *.png; regenerate with: spikeforge report {run_dir})")
    return 0
