"""`spikeforge loeo RECIPE --data ROOT --out DIR`: leave-one-engine-out training and evaluation of a speech recipe (`spikeforge.train.loeo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spikeforge.train.config import load_recipe
from spikeforge.train.loeo import TABLE, leave_one_engine_out, loeo_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("loeo", help="leave-one-engine-out: train a speech recipe without each engine's speakers, evaluate on them, print the table")
    p.add_argument("recipe", help="a speech_commands recipe name or YAML path, e.g. kws_robust")
    p.add_argument("--data", type=Path, required=True, metavar="ROOT", help="a GSC-layout folder with speakers.csv (speaker, engine)")
    p.add_argument("--out", type=Path, required=True, help="folder for the run folders, the feature cache and loeo.md")
    p.add_argument("--engines", default=None, help="comma-separated engines to leave out in turn (default: every engine of ROOT)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key for every fold")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_recipe(args.recipe, args.overrides)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()] if args.engines else None
    rows = leave_one_engine_out(config, args.data, args.out, engines, log=lambda line: print(line, flush=True))
    print(loeo_table(rows), end="")
    print(f"table: {args.out / TABLE}")
    return 0
