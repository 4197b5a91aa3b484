"""Consistency of a network's answers across augmented views of one clip (AugMix, Hendrycks et al. 2020; not in the papers)."""

from __future__ import annotations

import torch


def js_consistency(logits: torch.Tensor, views: int) -> torch.Tensor:
    """Jensen–Shannon divergence of V views: 1/V · Σ_v KL(p_v ‖ m), m = 1/V · Σ_v p_v, p_v = softmax(z_v), mean over clips.

    `logits` `[B, classes]` hold the V views of each clip in consecutive rows (B = V · clips)."""
    if views < 2 or logits.shape[0] % views:
        raise ValueError(f"the consistency loss compares {views} views of each clip; the batch has {logits.shape[0]} rows, "
                         f"not a multiple of {views} views (≥ 2)")
    p = logits.softmax(-1).view(-1, views, logits.shape[-1])
    m = p.mean(1, keepdim=True)
    return (p * (p.clamp_min(1e-12).log() - m.clamp_min(1e-12).log())).sum(-1).mean()
