"""`spikeforge data ...`: dataset preparation and generation, one sub-command per data module.

Every module of `spikeforge.data` that defines `register_cli(subparsers)` adds its command here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="prepare or generate datasets in their real on-disk formats")
    data_sub = parser.add_subparsers(dest="data_command", required=True, metavar="DATASET")
    import spikeforge.data as data

    for info in sorted(pkgutil.iter_modules(data.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"spikeforge.data.{info.name}")
        if hasattr(module, "register_cli"):
            module.register_cli(data_sub)
