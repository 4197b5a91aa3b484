"""The `spikeforge` command: a static table of sub-commands; only the chosen one's module is imported.

`spikeforge --help` and `--version` import no sub-command (and so no torch); `spikeforge NAME …`
imports `spikeforge.commands.<module>` for NAME alone. Each module defines `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from spikeforge import __version__
from spikeforge.malloc import keep_freed_memory_once
from spikeforge.train.atomic import WriteFailed

#: name → (module in spikeforge.commands, the help line its `register` gives; a test keeps them equal)
COMMANDS = {
    "adapt": ("adapt", "self-training: a keyword-spotting run labels unlabelled clips, a new network trains on its surest labels too"),
    "ablate": ("speech", "train the Table 2 ablations of a keyword-spotting recipe and write a markdown table"),
    "data": ("data", "prepare or generate datasets in their real on-disk formats"),
    "detect": ("detect", "find keywords in a long WAV file, streaming the model step by step"),
    "eval": ("eval", "evaluate a run's checkpoint on the test (or validation) split, of its own data or of --data ROOT"),
    "export": ("export", "export a run's trained model (NIR graph)"),
    "hybrid": ("hybrid", "conversion table of hybrid runs (constrained ANN → one-spike SNN → STDBP), e.g. both arms"),
    "list": ("list", "list recipes, datasets, models, methods, losses and encoders"),
    "loeo": ("loeo", "leave-one-engine-out: train a speech recipe without each engine's speakers, evaluate on them, print the table"),
    "noise": ("noise", "noise-based single-step training: accuracy versus T of trained runs"),
    "predict": ("speech", "classify a WAV file with a trained keyword-spotting run; plot the per-step scores"),
    "report": ("report", "regenerate a run folder's plots and print its summary"),
    "spikemax": ("spikemax", "train spike_rate, spikemax, spikemax_g and spikemax_s on one recipe and compare latency and spike counts"),
    "train": ("train", "train a recipe (a name in recipes/ or a YAML path); torchrun for several processes"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with `command`'s module registered and a help-only entry for every other sub-command."""
    parser = argparse.ArgumentParser(prog="spikeforge", description="Train spiking neural networks.")
    parser.add_argument("--version", action="version", version=f"spikeforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    module = COMMANDS[command][0] if command in COMMANDS else None
    for name, (owner, help_line) in COMMANDS.items():
        if owner != module:
            sub.add_parser(name, help=help_line, add_help=False)
    if module is not None:
        importlib.import_module(f"spikeforge.commands.{module}").register(sub)
    return parser


def entry() -> NoReturn:
    """The `spikeforge` program: `main` on the command line; a rank of a `torchrun` job skips Python's shutdown.

    DDP leaves references to the process group in C++ that outlive `destroy_process_group`, so a rank
    frees the group while the interpreter shuts down, when gloo's worker threads can no longer take
    the GIL, and aborts ("terminate called without an active exception", pytorch/pytorch#179291)
    after its work is done and written. Every file of a run is closed by then, so a rank (WORLD_SIZE > 1)
    flushes its output and leaves with `os._exit`.
    """
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


@contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Warnings raised from spikeforge's own code print as `spikeforge COMMAND: warning: MESSAGE`, without Python's
    source line; those of other libraries keep Python's format (their origin is worth seeing)."""
    package = Path(__file__).parent
    python_format = warnings.formatwarning

    def formatted(message, category, filename, lineno, line=None):
        if Path(filename).is_relative_to(package):
            return f"spikeforge {command}: warning: {message}\n"
        return python_format(message, category, filename, lineno, line)

    warnings.formatwarning = formatted
    try:
        yield
    finally:
        warnings.formatwarning = python_format


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen sub-command; errors print one line and exit 2."""
    argv = sys.argv[1:] if argv is None else argv
    keep_freed_memory_once()  # no page faults on every training step's large buffers (spikeforge.malloc)
    command = next((a for a in argv if not a.startswith("-")), None)  # top-level options take no value
    args = build_parser(command).parse_args(argv)
    try:
        with one_line_warnings(args.command):
            return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, WriteFailed) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"spikeforge {args.command}: error: {msg}", file=sys.stderr)
        return 2
