"""Readout: a time-distributed linear map of the last spiking layer (report §5.3.3)."""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.checks import check_finite, check_time_major
from spikeforge.functional import events
from spikeforge.functional.filters import leaky_integrate
from spikeforge.layers.base import check_step_input


class Readout(nn.Module):
    """y[n] = W·S[n] (+ offset) per step, `[T, B, ...] → [T, B, classes]`; the model reduces over time.

    `normalized=True` divides class c by ‖W_c‖² + ε and adds a trainable per-class offset (the
    s2net released code). `integrate=β_out` makes the readout non-firing leaky integrators
    y[n] = β_out·y[n−1] + W·S[n] (Neftci et al.), to be reduced by the max over time.
    """

    def __init__(self, in_features: int, classes: int, *, normalized: bool = False, integrate: float | None = None, eps: float = 1e-8) -> None:
        super().__init__()
        if integrate is not None and not 0.0 <= integrate <= 1.0:
            raise ValueError(f"integrate (the readout leak β_out) must be in [0, 1], got {integrate}")
        self.in_features, self.classes = in_features, classes
        self.normalized, self.integrate, self.eps = normalized, integrate, eps
        self.weight = nn.Parameter(torch.empty(classes, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name, layout = "Readout input", f"[T, B, {self.in_features}] (or [T, B, C, *S] flattening to it)"
        check_time_major(x, name, tuple(range(3, 7)), layout, self.weight.dtype, finite=False)  # NaN/Inf: in _scores
        y = self._scores(x.flatten(2), x.shape, check=partial(check_finite, name=name, layout=layout, shape=x.shape))
        if self.integrate is not None:
            y = leaky_integrate(y, self.integrate)
        return y

    def _scores(self, x: torch.Tensor, shape: torch.Size, event_driven: bool = True, check=None) -> torch.Tensor:
        """W·S (÷ (‖W_c‖² + ε) when normalized) + offset for flattened spikes `[..., in_features]`; `check` as `check_finite` in `events.linear`."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Readout input: expected {self.in_features} features per step after flattening, got {x.shape[-1]} from shape {tuple(shape)}")
        # event-driven for sparse spike sequences
        y = events.linear(x, self.weight, None, check) if event_driven else F.linear(x, self.weight)
        if self.normalized:
            y = y / ((self.weight * self.weight).sum(1) + self.eps)
        return y + self.bias

    def init_state(self, batch: int) -> dict:
        """The zero state of `batch` streams for `step` (the integrator's y[n−1] when `integrate`)."""
        return {"batch": batch, "scores": None}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One time step: spikes `[B, ...]` → (scores `[B, classes]`, next state), as `forward` at that step."""
        check_step_input(x_t, state, "Readout")
        y = self._scores(x_t.flatten(1), (None, *x_t.shape), event_driven=False)  # one step: too few rows for events
        if self.integrate is not None and state["scores"] is not None:
            y = self.integrate * state["scores"] + y  # y[n] = β_out·y[n−1] + W·S[n]
        return y, {"batch": state["batch"], "scores": y}


class WordReadout(Readout):
    """A readout whose class `group` is a mixture of `words` rows: its score per step is log Σ_w exp(y_w[n]).

    Rows: the other classes in order, then the group's words (`classes − 1 + words` rows); `words(x)` gives them all,
    `forward` the class scores. For `_unknown_` of Speech Commands, one row per word of that class (not in the papers:
    a linear score per step cannot cover twenty different words, a log-sum-exp of twenty can). `method.word_loss` trains
    the rows on each clip's word (`dataset.words`).
    """

    def __init__(self, in_features: int, classes: int, group: int, words: int, **kwargs) -> None:
        if not 0 <= group < classes or words < 1:
            raise ValueError(f"WordReadout: group must be a class index in [0, {classes}) and words ≥ 1, got group={group}, words={words}")
        super().__init__(in_features, classes - 1 + words, **kwargs)
        self.classes, self.group, self.n_words = classes, group, words

    def words(self, x: torch.Tensor) -> torch.Tensor:
        """Every row's score per step `[T, B, classes − 1 + words]`."""
        return super().forward(x)

    def collapse(self, rows: torch.Tensor) -> torch.Tensor:
        """Class scores `[..., classes]` of row scores `[..., classes − 1 + words]`: the group's = log Σ exp of its words'."""
        k = self.classes - 1
        return torch.cat([rows[..., : self.group], rows[..., k:].logsumexp(-1, keepdim=True), rows[..., self.group : k]], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.collapse(self.words(x))

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One step, as `forward` at that step (the state keeps the rows' scores for the integrator)."""
        rows, state = super().step(x_t, state)
        return self.collapse(rows), state
