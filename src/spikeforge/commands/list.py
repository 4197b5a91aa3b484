"""`spikeforge list`: the recipes, datasets, models, methods, losses and encoders spikeforge knows (from spikeforge.catalog: no torch)."""

from __future__ import annotations

import argparse

from spikeforge.catalog import ENCODERS
from spikeforge.registry import DATASETS, LOSSES, METHODS, MODELS
from spikeforge.train.config import list_recipes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list recipes, datasets, models, methods, losses and encoders")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sections = {
        "recipes": [f"{name}  ({path})" for name, path in list_recipes().items()],
        "datasets": DATASETS.names(),
        "models": MODELS.names(),
        "methods": METHODS.names(),
        "losses": LOSSES.names(),
        "encoders": sorted(ENCODERS),
    }
    for title, items in sections.items():
        print(f"{title}:")
        for item in items:
            print(f"  {item}")
    return 0
