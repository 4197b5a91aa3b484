"""A trained run folder back in memory: its resolved recipe and its model with the chosen checkpoint's weights."""

from __future__ import annotations

from pathlib import Path

import torch

from spikeforge.registry import MODELS
from spikeforge.train import checkpoint, runfolder
from spikeforge.train.config import validate
from spikeforge.train.trainer import build


def load_run(run_dir: Path, which: str = "best", dataset: str | None = None) -> tuple[dict, torch.nn.Module, int]:
    """(recipe, model in eval mode, checkpoint step); `dataset` names the dataset the command needs the run to be trained on."""
    config = validate(runfolder.read_config(run_dir))
    if dataset is not None and config["dataset"]["name"] != dataset:
        raise ValueError(f"{run_dir} was trained on {config['dataset']['name']!r}; this command needs a {dataset} run")
    model = build(MODELS, config["model"])
    step = checkpoint.load_weights(checkpoint.resolve(run_dir, which), model)
    return config, model.eval(), step
