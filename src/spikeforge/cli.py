"""The `spikeforge` command: sub-commands are found in `spikeforge.commands`, one module each."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from spikeforge import __version__
from spikeforge.malloc import keep_freed_memory
from spikeforge.train.atomic import WriteFailed


def build_parser() -> argparse.ArgumentParser:
    """A parser whose sub-commands come from each `spikeforge.commands.<name>.register(subparsers)`."""
    parser = argparse.ArgumentParser(prog="spikeforge", description="Train spiking neural networks.")
    parser.add_argument("--version", action="version", version=f"spikeforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    import spikeforge.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"spikeforge.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen sub-command; errors print one line and exit 2."""
    keep_freed_memory()  # no page faults on every training step's large buffers (spikeforge.malloc)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, WriteFailed) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"spikeforge {args.command}: error: {msg}", file=sys.stderr)
        return 2
