"""Optimisers named in a recipe: Adam, RAdam (low-activity KWS paper) and SGD, and sharpness-aware gradients for any of them."""

from __future__ import annotations

from typing import Callable, Iterable

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


def sharpness_aware_gradient(params: list[torch.nn.Parameter], rho: float, loss_at: Callable[[], torch.Tensor]) -> None:
    """SAM (Foret et al. 2021, eq. 2 and its first-order gradient): each `p.grad`, holding ∇L(w), becomes ∇L(w + ε̂) with
    ε̂ = ρ·∇L(w) / ‖∇L(w)‖₂ over all `params`; `loss_at()` computes L at the shifted weights, which are then restored."""
    params = [p for p in params if p.grad is not None]
    with torch.no_grad():
        weights = [p.detach().clone() for p in params]  # restored by copy: w + ε̂ − ε̂ is not w in floating point
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        torch._foreach_add_(params, [p.grad * (rho / (norm + 1e-12)) for p in params])
    for p in params:
        p.grad = None
    loss_at().backward()
    with torch.no_grad():
        for p, w in zip(params, weights):
            p.copy_(w)
