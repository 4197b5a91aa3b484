"""Outside data carries no axis names: entry points that take it are told its layout, "BT..." (batch first) or "TB..." (time first)."""

from __future__ import annotations

import torch

from spikeforge.metrics.reduce import reduce_time

LAYOUTS = ("BT", "TB")


def check_layout(layout: str) -> str:
    """`layout` if it starts with "BT" or "TB" (e.g. "BTCHW"), else a one-line ValueError."""
    if not isinstance(layout, str) or layout[:2] not in LAYOUTS:
        raise ValueError(f"layout must say where batch (B) and time (T) are: 'BT...' (batch first, as NeuroBench and tonic loaders give) "
                         f"or 'TB...' (time first, spikeforge's own), got {layout!r}")
    return layout


def time_major(x: torch.Tensor, layout: str) -> torch.Tensor:
    """`x` as spikeforge's time-major `[T, B, ...]`, from the stated `layout`."""
    check_layout(layout)
    if len(layout) > 2 and len(layout) != x.dim():
        raise ValueError(f"layout {layout!r} names {len(layout)} axes, but the input has shape {tuple(x.shape)}")
    return x.transpose(0, 1) if layout.startswith("BT") else x


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, *, layout: str, forward=None) -> torch.Tensor:
    """Class predictions `[B]` of `model` for input `x` laid out as `layout`, scores `[T, B, classes]` reduced by the model's `output_reduction`.

    `forward(model, x)` replaces `model(x)` (e.g. a method's `predict`).
    """
    x = time_major(x, layout)
    scores = model(x) if forward is None else forward(model, x)
    return reduce_time(scores, getattr(model, "output_reduction", "mean")).argmax(-1)
