"""The tiny recipes shared by the tests: Fashion-MNIST (the files Debian installs) and generated speech folders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def tiny_recipe(tmp: Path, **overrides) -> Path:
    """Write a recipe that trains in about a second: 256 samples, 16 hidden LIF units, 4 steps."""
    recipe = {
        "name": "tiny", "seed": 3,
        "dataset": {"name": "fashion_mnist", "root": str(FMNIST), "limit": 256, "val_fraction": 0.25},
        "encoder": {"name": "direct", "steps": 4},
        "model": {"name": "demo_lif", "hidden": [16]},
        "method": {"name": "surrogate_bptt", "loss": "cross_entropy", "reg_weight": 0.05},
        "optimizer": {"name": "adam", "lr": 0.005},
        "schedule": {"name": "warmup_exp", "warmup_epochs": 0.5, "gamma": 0.9},
        "epochs": 2, "batch_size": 32, "eval_batch_size": 128, "checkpoint_every": 2,
    }
    for key, value in overrides.items():
        section, _, sub = key.partition("__")
        if sub:
            recipe[section][sub] = value
        else:
            recipe[section] = value
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def tiny_kws_recipe(path: Path, dataset: dict, name: str = "kws_tiny", channels: int = 4, epochs: int = 2, warmup_epochs: float = 0.5) -> Path:
    """Write a speech_commands recipe for a `kws_dilated` net of `channels` per layer, `epochs` of batch 8, on `dataset`'s keys."""
    recipe = {
        "name": name, "seed": 0,
        "dataset": {"name": "speech_commands", **dataset},
        "encoder": {"name": "sequence"},
        "model": {"name": "kws_dilated", "channels": [channels] * 3},
        "method": {"name": "surrogate_bptt", "loss": "cross_entropy", "reg_weight": 0.0},
        "optimizer": {"name": "radam", "lr": 1.0e-2, "weight_decay": 0.0},
        "schedule": {"name": "warmup_exp", "warmup_epochs": warmup_epochs, "gamma": 0.9},
        "epochs": epochs, "batch_size": 8, "grad_clip": 5.0, "sampler": "weighted",
    }  # fmt: skip
    path.write_text(yaml.safe_dump(recipe))
    return path


def train_run(recipe: Path, out: Path, *args: str) -> Path:
    """Train `recipe` (a path or a recipe name) into `out` with the extra CLI `args`; the run folder (the feature cache lies beside it)."""
    from spikeforge.cli import main

    assert main(["train", str(recipe), "--out", str(out), "--no-progress", *args]) == 0
    return next(p for p in out.iterdir() if p.name != "features")


def percent(text: str, label: str) -> float:
    """The number printed as `LABEL  12.34%` in a command's output."""
    return float(re.search(rf"{label}\s+([0-9.]+)%", text).group(1))


def cli_in_subprocess(args: list[str], plugin: Path | None = None, threads: int = 1, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """`spikeforge ARGS` in a fresh process on `threads` threads that first imports the module file `plugin` (e.g. one that kills it)."""
    path = os.environ.get("PYTHONPATH", "")
    if plugin is not None:
        path = f"{plugin.parent}{os.pathsep}{path}"
    code = f"import sys{', ' + plugin.stem if plugin is not None else ''}; from spikeforge.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(threads), **env},
                          capture_output=True, text=True, timeout=timeout)


def test_tiny_recipe_validates_with_defaults_filled(tmp_path):
    from spikeforge.train.config import load_recipe

    config = load_recipe(str(tiny_recipe(tmp_path)))
    assert config["model"] == {"name": "demo_lif", "hidden": [16]}
    assert config["grad_clip"] is None and config["sampler"] == "random" and config["device"] == "auto"
    assert config["optimizer"] == {"name": "adam", "lr": 0.005, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8,
                                   "sam_rho": 0.0}


def run_copy_with_dataset(run: Path, dest: Path, **dataset) -> Path:
    """A copy of the run folder `run` at `dest` whose recipe's dataset keys are updated with `dataset`."""
    shutil.copytree(run, dest)
    config = yaml.safe_load((dest / "config.yaml").read_text())
    config["dataset"].update(dataset)
    (dest / "config.yaml").write_text(yaml.safe_dump(config))
    return dest
