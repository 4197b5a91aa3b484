"""Learning-rate schedules as pure functions of the step, so a resumed run needs no scheduler state."""

from __future__ import annotations

import math

import torch


def learning_rate(spec: dict, base_lr: float, step: int, steps_per_epoch: int) -> float:
    """The learning rate of optimiser step `step` (0-based) for the recipe's `schedule` section."""
    name = spec["name"]
    if name == "constant":
        return base_lr
    if name == "warmup_exp":
        return base_lr * warmup_exp_factor(step, steps_per_epoch, spec["warmup_epochs"], spec["gamma"])
    if name == "cosine_restarts":
        return cosine_restarts(step / steps_per_epoch, base_lr, spec["t0"], spec["t_mult"], spec["eta_min"])
    raise ValueError(f"unknown schedule {name!r}; use constant, warmup_exp or cosine_restarts")


def warmup_exp_factor(step: int, steps_per_epoch: int, warmup_epochs: float, gamma: float) -> float:
    """Linear warm-up over `warmup_epochs`, then ×gamma per completed epoch (low-activity KWS paper, sec. 8)."""
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return gamma ** ((step - warmup_steps) // steps_per_epoch)


def cosine_restarts(epoch: float, base_lr: float, t0: float, t_mult: int, eta_min: float) -> float:
    """SGDR: eta_min + (base_lr − eta_min)(1 + cos(π T_cur/T_i))/2, period T_i = t0·t_mult^i (Loshchilov & Hutter, eq. 5)."""
    if t_mult == 1:
        t_cur, t_i = epoch % t0, t0
    else:
        n = int(math.log(epoch / t0 * (t_mult - 1) + 1, t_mult))
        t_cur = epoch - t0 * (t_mult**n - 1) / (t_mult - 1)
        t_i = t0 * t_mult**n
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = lr
