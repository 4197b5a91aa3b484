"""The run folder: resolved config, metrics.csv per epoch, metrics.json, a recorded sample, TensorBoard logs.

A run folder is `OUT/<name>-<YYYYmmdd-HHMMSS>[-k]`; the process training or resuming it holds `.lock`
(an flock, so the lock of a killed process is free again); a start that fails leaves no new folder behind (nor the
`OUT` folders it made for it). `OUT/features/` is the feature cache the runs of `OUT` share (speech features).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch
import yaml
from safetensors.numpy import load_file, save_file

from spikeforge.train.atomic import atomic_write, atomic_write_text, file_mode, first_missing
from spikeforge.train.checkpoint import load_state
from spikeforge.train.config import read_yaml

CONFIG, CSV, JSON, SAMPLE, TENSORBOARD, LOCK = "config.yaml", "metrics.csv", "metrics.json", "sample.safetensors", "tensorboard", ".lock"
FEATURES = "features"
T = TypeVar("T")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_STAMP = r"-(\d{8}-\d{6})(?:-(\d+))?"


class RunInUse(ValueError):
    """Another live process holds the run folder's lock."""


def check_name(name: str) -> str:
    """`name` if it is a plain folder name (so the run folder stays under --out), else a one-line ValueError."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"recipe name {name!r} is not a plain folder name (letters, digits, '.', '_', '-'; no '/' and no leading '.'); "
                         "rename it, e.g. --set name=my_run")
    return name


def new_run_dir(out: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """A fresh folder `out/<name>-<YYYYmmdd-HHMMSS>` (suffixed -2, -3, … if taken), and the outermost folder this made:
    the run folder, or an `out` folder that was not there (what a start that fails removes again)."""
    base = Path(out) / f"{check_name(name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    made = first_missing(out)
    path, k = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path, made or path
        except FileExistsError:
            k += 1
            path = base.with_name(f"{base.name}-{k}")


def feature_cache(run: Path) -> Path:
    """The feature cache a training of `run` fills: `features/` beside the run folders of its `--out` folder."""
    return Path(run).parent / FEATURES


def latest_run(out: str | os.PathLike, name: str) -> Path:
    """The run of recipe `name` (exactly) under `out` with the newest start time in its folder name that has a checkpoint."""
    pattern = re.compile(re.escape(check_name(name)) + _STAMP)
    runs = []
    for path in Path(out).glob("*"):
        match = pattern.fullmatch(path.name)
        if match and ((path / "checkpoints" / "last").exists() or any(path.glob("stages/*/checkpoints/last"))):  # staged: train/stages.py
            runs.append((match[1], int(match[2] or 1), path))
    if not runs:
        raise FileNotFoundError(f"no run of {name!r} with a checkpoint under {out}/; start one without --resume, or pass --resume RUN_DIR")
    return max(runs)[2]


def is_complete(run: Path, epochs: int) -> bool:
    """Whether `run` has trained `epochs` epochs and written metrics.json (resuming it would change nothing)."""
    return (run / JSON).exists() and load_state(run / "checkpoints" / "last")["epoch"] >= epochs


@contextmanager
def locked(run: Path) -> Iterator[None]:
    """Hold `run/.lock` exclusively while training; a lock left by a killed process is taken over; removed on exit."""
    path = run / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunInUse(f"{run} is in use by process {holder} (training or resuming it); wait until it ends or stop it, then resume") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed the file between our open and our lock: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def removed_on_failure(run: Path, new: bool) -> Iterator[None]:
    """Delete the folder `run` again if it is `new` and the block fails or is interrupted (no half-made run is left)."""
    try:
        yield
    except BaseException:
        if new:
            shutil.rmtree(run, ignore_errors=True)
        raise


def start_run(out: str | os.PathLike, name: str, config: dict, build: Callable[[Path], T]) -> tuple[Path, T]:
    """A new run folder `out/<name>-<time>`, `build(run)` (the trainer), then its config.yaml; a build that fails or is
    interrupted removes the folder again, with the `out` folders made for it."""
    run, made = new_run_dir(out, name)
    with removed_on_failure(made, new=True):
        built = build(run)
        write_config(run, config)
    return run, built


def write_config(run: Path, config: dict) -> None:
    """The resolved recipe (all defaults filled), as YAML."""
    atomic_write_text(run / CONFIG, yaml.safe_dump(config, sort_keys=False))


def read_config(run: Path) -> dict:
    """The resolved recipe saved in a run folder."""
    path = Path(run) / CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{run} is not a run folder: it has no {CONFIG}")
    return read_yaml(path)


def write_history(run: Path, history: list[dict]) -> None:
    """metrics.csv: one row per epoch (rewritten whole, atomically)."""
    if not history:
        return
    columns = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run / CSV, buf.getvalue())


def read_history(run: Path) -> list[dict]:
    """The rows of metrics.csv with numbers parsed."""
    path = Path(run) / CSV
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()} for row in csv.DictReader(f)]


def write_metrics(run: Path, metrics: dict) -> None:
    """metrics.json: the final numbers of the run."""
    atomic_write_text(run / JSON, json.dumps(metrics, indent=2) + "\n")


def read_metrics(run: Path) -> dict:
    """metrics.json of a finished run."""
    path = Path(run) / JSON
    if not path.exists():
        raise FileNotFoundError(f"{run} has no {JSON}; the run has not finished (resume it with --resume {run})")
    return json.loads(path.read_text())


def write_sample(run: Path, spikes: dict[str, torch.Tensor], outputs: torch.Tensor, label: int) -> None:
    """One test sample's spikes per layer `[T, ...]` (uint8) and output scores `[T, classes]`, for the raster and traces."""
    arrays = {f"spikes/{k}": (v.detach().cpu() != 0).to(torch.uint8).numpy() for k, v in spikes.items()}
    arrays["outputs"] = outputs.detach().cpu().float().numpy()
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}  # safetensors.numpy writes the buffer, ignoring strides
    arrays["label"] = np.array([label], dtype=np.int64)
    atomic_write(run / SAMPLE, lambda tmp: save_file(arrays, str(tmp)))


def read_sample(run: Path) -> tuple[dict[str, np.ndarray], np.ndarray, int] | None:
    """(spikes per layer, outputs, label) of the recorded sample, or None if there is none."""
    path = Path(run) / SAMPLE
    if not path.exists():
        return None
    arrays = load_file(str(path))
    spikes = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("spikes/")}
    return spikes, arrays["outputs"], int(arrays["label"][0])


class TensorBoard:
    """Scalars to `RUN/tensorboard`; on resume, events after the resumed step are dropped."""

    def __init__(self, run: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run / TENSORBOARD), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()
