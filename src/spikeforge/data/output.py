"""The folder a `spikeforge data` command writes: new or empty, or with --force a dataset replaced whole.

The dataset is written into a temporary folder beside OUT and renamed to OUT only when complete, so a failed
or interrupted run leaves OUT as it was (and removes the folders above OUT it made), and --force never mixes old and
new files. OUT gets a marker file `.spikeforge-data`; --force replaces only folders that hold it (so it cannot delete
an unrelated folder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from spikeforge.train.atomic import first_missing, umask, write_failed

MARKER = ".spikeforge-data"


def add_arguments(parser: argparse.ArgumentParser, help: str) -> None:
    """The positional OUT and --force of every data command."""
    parser.add_argument("out", metavar="OUT", help=f"{help} (a new or empty folder)")
    parser.add_argument("--force", action="store_true", help="replace the dataset already in OUT, whole")


def check_target(out: str | os.PathLike, force: bool) -> Path:
    """`out` if a dataset may be written there, else a one-line ValueError naming the fix."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder; choose a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ValueError(f"{out} is not empty; choose a new or empty folder, or pass --force to replace the dataset in it whole")
        if not (out / MARKER).exists():
            raise ValueError(f"{out} holds files that `spikeforge data` did not write (no {MARKER}); --force replaces only such a dataset, "
                             "so choose another folder or empty this one yourself")
    return out


@contextmanager
def dataset_folder(out: str | os.PathLike, force: bool, command: str) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; when the block succeeds it becomes `out`, replacing the old dataset whole."""
    out = check_target(out, force).absolute()
    made = first_missing(out.parent)  # removed again with the temporary folder if the dataset is not finished
    done = False
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as err:
        raise write_failed(err, out.parent) from None
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it 0700
        yield tmp
        (tmp / MARKER).write_text(f"written by: spikeforge data {command}\n")
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        if out.exists():
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError:
            if old.exists():
                os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
        done = True
    except OSError as err:
        raise write_failed(err, out.parent) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if made is not None and not done:
            shutil.rmtree(made, ignore_errors=True)
