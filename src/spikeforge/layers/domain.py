"""Domain-adversarial training's parts (Ganin et al. 2016, not in the papers): a gradient reversal and a domain classifier.

The classifier learns to tell the domain (e.g. the speech engine) of a clip from a spiking layer's spike rates; the
reversal passes its gradient back to the network with its sign flipped, so the layers below learn features that do not
tell the domains apart. Used by `surrogate_bptt`'s `domain_adversary` (spikeforge.methods.surrogate_bptt).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _GradReverse(torch.autograd.Function):
    """R_λ(x) = x forward, dR/dx = −λ·I backward (Ganin et al. 2016, eq. 13)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float) -> torch.Tensor:
    """x unchanged; the gradient flowing back through it multiplied by −λ."""
    return _GradReverse.apply(x, lam)


class DomainHead(nn.Module):
    """Domain scores `[B, domains]` of per-clip features `[B, features]`: Linear → ReLU → Linear (training only)."""

    def __init__(self, features: int, domains: int, hidden: int = 64) -> None:
        super().__init__()
        if domains < 2:
            raise ValueError(f"a domain classifier needs at least 2 domains, got domain_classes={domains}")
        self.domains = domains
        self.hidden = nn.Linear(features, hidden)
        self.out = nn.Linear(hidden, domains)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(z)))
