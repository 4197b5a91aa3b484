"""`spikeforge spikemax RECIPE`: train the four spike-based losses with the same seed and compare them (spikemax paper).

Loss settings come from the recipe's `method.loss_kwargs`; an option given here overrides it, one not given never does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spikeforge.train.loss_comparison import LOSS_NAMES, compare_losses


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spikemax", help="train spike_rate, spikemax, spikemax_g and spikemax_s on one recipe and compare latency and spike counts")
    p.add_argument("recipe", help="recipe name or YAML path (its method.loss is replaced by each loss in turn)")
    p.add_argument("--losses", nargs="+", default=list(LOSS_NAMES), choices=LOSS_NAMES, help="losses to compare (default: all four)")
    p.add_argument("--true-rate", type=float, help="spike_rate target for the true class (eq. 4; default: the recipe's, else 0.2)")
    p.add_argument("--false-rate", type=float, help="spike_rate target for the other classes (default: the recipe's, else 0.02)")
    p.add_argument("--window", type=int, help="spikemax count window W in steps (eq. 5; default: the recipe's, else 30)")
    p.add_argument("--eps", type=float, help="count ε added to every class by spikemax and spikemax_g (default: the recipe's, else 0.3)")
    p.add_argument("--gradient", choices=("paper", "exact"), help="spikemax family: the paper's closed-form gradients or the exact derivative")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    p.add_argument("--out", default="runs", help="folder for the run folders and the comparison (default: ./runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    given = {"true_rate": args.true_rate, "false_rate": args.false_rate, "window": args.window, "eps": args.eps, "gradient": args.gradient}
    folder, text = compare_losses(args.recipe, args.overrides, args.losses, given, Path(args.out), not args.no_progress,
                                  log=lambda line: print(line, flush=True))
    print(text)
    print(f"plots and table: {folder}")
    return 0
