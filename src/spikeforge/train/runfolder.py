"""The run folder: resolved config, metrics.csv per epoch, metrics.json, a recorded sample, TensorBoard logs."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.numpy import load_file, save_file

from spikeforge.train.atomic import atomic_write, atomic_write_text

CONFIG, CSV, JSON, SAMPLE, TENSORBOARD = "config.yaml", "metrics.csv", "metrics.json", "sample.safetensors", "tensorboard"


def new_run_dir(out: str | Path, name: str) -> Path:
    """A fresh folder `out/<name>-<YYYYmmdd-HHMMSS>` (suffixed -2, -3, … if taken)."""
    base = Path(out) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    path.mkdir(parents=True)
    return path


def latest_run(out: str | Path, name: str) -> Path:
    """The newest run folder of recipe `name` under `out` that has a checkpoint."""
    runs = sorted(p for p in Path(out).glob(f"{name}-*") if (p / "checkpoints" / "last").exists())
    if not runs:
        raise FileNotFoundError(f"no run of {name!r} with a checkpoint under {out}/; start one without --resume, or pass --resume RUN_DIR")
    return runs[-1]


def write_config(run: Path, config: dict) -> None:
    """The resolved recipe (all defaults filled), as YAML."""
    atomic_write_text(run / CONFIG, yaml.safe_dump(config, sort_keys=False))


def read_config(run: Path) -> dict:
    """The resolved recipe saved in a run folder."""
    path = Path(run) / CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{run} is not a run folder: it has no {CONFIG}")
    return yaml.safe_load(path.read_text())


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
