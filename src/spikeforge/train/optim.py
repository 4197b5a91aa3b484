"""Optimisers named in a recipe: Adam, RAdam (low-activity KWS paper) and SGD."""

from __future__ import annotations

from typing import Iterable

import torch


def build_optimizer(params: Iterable[torch.nn.Parameter], spec: dict) -> torch.optim.Optimizer:
    """The optimiser of the recipe's `optimizer` section (validated by `train.config`)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters; check the model section of the recipe")
    name = spec["name"]
    if name in ("adam", "radam"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.RAdam
        return cls(params, lr=spec["lr"], betas=tuple(spec["betas"]), eps=spec["eps"], weight_decay=spec["weight_decay"])
    if name == "sgd":
        return torch.optim.SGD(params, lr=spec["lr"], momentum=spec["momentum"], nesterov=spec["nesterov"], weight_decay=spec["weight_decay"])
    raise ValueError(f"unknown optimizer {name!r}; use adam, radam or sgd")
