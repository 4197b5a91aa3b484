"""Fully-connected spiking layer (report §5.3.1)."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from spikeforge.checks import check_finite, check_time_major
from spikeforge.functional import events
from spikeforge.layers.base import SpikingLayer


class SpikingLinear(SpikingLayer):
    """I[n] = W·S_in[n] (report eq. 5.2) for all n in one matmul, then LIF; `[T, B, in] → [T, B, out]`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        lateral: bool = False,
        normalize_threshold: bool = True,
        recurrent: bool = False,
        bias: bool = False,
        **lif_kwargs,
    ) -> None:
        super().__init__(out_features, lateral=lateral, normalize_threshold=normalize_threshold, recurrent=recurrent, lif_kwargs=lif_kwargs)
        self.in_features = in_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def current(self, x: torch.Tensor) -> torch.Tensor:
        name, layout = "SpikingLinear input", f"[T, B, {self.in_features}]"
        check_time_major(x, name, 3, layout, self.weight.dtype, finite=False)  # NaN/Inf: on the events, below
        if x.shape[2] != self.in_features:
            raise ValueError(f"{name}: expected {layout}, got {tuple(x.shape)}")
        finite = partial(check_finite, name=name, layout=layout, shape=x.shape)
        return events.linear(x, self.weight, self.bias, finite)  # event-driven for sparse spikes
