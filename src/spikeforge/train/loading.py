"""A trained run folder back in memory for a command that needs a run of one kind of data."""

from __future__ import annotations

from pathlib import Path

import torch

from spikeforge.train.stages import trained_model


def load_run(run_dir: Path, which: str = "best", dataset: str | None = None) -> tuple[dict, torch.nn.Module, int]:
    """(recipe, model in eval mode, checkpoint step) of the run's last stage; `dataset` names the data the command needs the run to be trained on."""
    config, model, step = trained_model(run_dir, which)
    if dataset is not None and config["dataset"]["name"] != dataset:
        raise ValueError(f"{run_dir} was trained on {config['dataset']['name']!r}; this command needs a {dataset} run")
    return config, model.eval(), step
