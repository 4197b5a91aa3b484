"""A trained run evaluated on another folder of the same on-disk layout: the split built from the run's own data recipe."""

from __future__ import annotations

import inspect
from pathlib import Path

from torch.utils.data import Dataset

from spikeforge.registry import DATASETS
from spikeforge.train.trainer import dataset_kwargs


def dataset_at(dataset: dict, root: Path, split: str, protocol: str | None = None, engines: list[str] | None = None,
               feature_cache: Path | None = None) -> Dataset:
    """Split `split` of the folder `root`, read with the run's `dataset` recipe section (so the features are the training ones):
    every speaker of the folder (the run's `exclude_engines` is a training choice), or those of `engines`; features
    cached in `feature_cache`, else computed."""
    factory = DATASETS.get(dataset["name"])
    accepted = inspect.signature(factory).parameters
    if "root" not in accepted:
        raise ValueError(f"dataset {dataset['name']!r} is not read from a folder; --data needs a folder-based dataset such as speech_commands")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder")
    kwargs = {k: v for k, v in dataset_kwargs(dataset, factory, feature_cache).items() if k not in ("root", "exclude_engines", "engines")}
    if protocol is not None:
        if "protocol" not in accepted:
            raise ValueError(f"dataset {dataset['name']!r} has no class-mix protocol; leave out --protocol")
        kwargs["protocol"] = protocol
    if engines is not None:
        if "engines" not in accepted:
            raise ValueError(f"dataset {dataset['name']!r} has no speaker engines; leave out --engine")
        kwargs["engines"] = engines
    return factory(root=str(root), split=split, **kwargs)
