"""`spikeforge train RECIPE [--set key=value ...] [--resume [RUN_DIR]] [--out DIR]`."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from spikeforge.train import runfolder
from spikeforge.train.config import RecipeError, apply_overrides, load_recipe, validate
from spikeforge.train.report import summary_table
from spikeforge.train.stages import Pipeline, is_complete, trainer_for
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
    """(config, run folder, run folder to resume) for the command line."""
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
    return config, run, run


def _start(args: argparse.Namespace, config: dict, run_dir: Path | None, resume: Path | None, made: Path | None) -> Trainer | Pipeline | None:
    """Build the trainer (loading the checkpoint), then write config.yaml; None after a Ctrl-C, leaving nothing behind
    (`made`: the outermost folder this start created, the new run folder or an `--out` folder that was not there)."""
    try:
        with runfolder.removed_on_failure(made or run_dir, new=resume is None) if run_dir is not None else contextlib.nullcontext():
            trainer = trainer_for(config, run_dir, resume=resume, progress_bar=not args.no_progress)  # the stages' Pipeline for a staged recipe
            if run_dir is not None:
                runfolder.write_config(run_dir, config)  # after the checkpoint loaded: a failed resume changes nothing
                print(f"run folder: {run_dir}", flush=True)
            return trainer
    except KeyboardInterrupt:
        print(f"spikeforge train: interrupted before training started; {'nothing was changed' if resume is not None else 'no run folder was made'}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    config, run_dir, resume = _resolve(args)
    is_main = int(os.environ.get("RANK", "0")) == 0
    made = None
    if is_main and run_dir is None:
        run_dir, made = runfolder.new_run_dir(args.out, config["name"])
    with runfolder.locked(run_dir) if is_main else contextlib.nullcontext():
        if resume is not None and is_complete(run_dir, config):
            if "stages" in config:  # a finished stage is never trained again
                print(f"{run_dir} is complete (every stage finished); nothing changed. To train a stage longer, start a new run: "
                      f"spikeforge train {args.recipe} --set stages.<stage>.epochs=N")
            else:
                print(f"{run_dir} is complete ({config['epochs']} epochs); nothing changed. To train it longer: "
                      f"spikeforge train {args.recipe} --resume {run_dir} --set epochs=N (N > {config['epochs']})")
            return 0
        trainer = _start(args, config, run_dir if is_main else None, resume, made)
        if trainer is None:
            return 130
        try:
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
