"""The common shape of every spike-emitting layer: a weighted current, then a LIF neuron.

Every layer also runs step by step on an endless signal: `state = layer.init_state(batch)`, then
`y_t, state = layer.step(x_t, state)` per step, equal to `layer(x)[t]` on the whole sequence.
"""

from __future__ import annotations

import torch
from torch import nn

from spikeforge.neurons.lif import LIF


class SpikingLayer(nn.Module):
    """Weights W → current I for all steps at once (Algorithm 1, low-activity paper) → LIF scan.

    Subclasses define `weight` (output unit/channel first) and `current(x)`. Options:
    `normalize_threshold` — threshold and reset scaled by ‖W_i‖² (eq. 5);
    `lateral` — reset R = W·Wᵀ·S[n−1] across the channels of a position (report §5.3.2);
    `recurrent` — a trainable channel-to-channel feedback V·S[n−1] (recurrent pool, report §5.4).
    Remaining keyword arguments configure the `LIF` neuron.
    """

    def __init__(self, out_channels: int, *, lateral: bool, normalize_threshold: bool, recurrent: bool, lif_kwargs: dict) -> None:
        super().__init__()
        if lateral and lif_kwargs.get("reset", "subtract") != "subtract":
            raise ValueError("lateral connections replace the subtractive reset: use reset='subtract' with lateral=True")
        self.lateral, self.normalize_threshold = lateral, normalize_threshold
        self.neuron = LIF(out_channels, **lif_kwargs)
        self.recurrent = nn.Parameter(torch.zeros(out_channels, out_channels)) if recurrent else None

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """Input current I `[T, B, C_out, ...]` for input `x` `[T, B, ...]`."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output spikes `[T, B, C_out, ...]`."""
        return self._run(x, keep_membrane=False)[0]

    def spikes_and_membrane(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spikes and membrane potential, both `[T, B, C_out, ...]`."""
        return self._run(x, keep_membrane=True)

    def _run(self, x: torch.Tensor, keep_membrane: bool):
        # the current is this layer's own temporary: the scan may reuse its buffer for the membrane
        return self.neuron(self.current(x), *self._norm_gram(), self.recurrent, keep_membrane=keep_membrane, consume_current=True)

    def _norm_gram(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """‖W_i‖² per unit (eq. 5) and W·Wᵀ (report eq. 5.3), where the layer uses them."""
        w = self.weight.flatten(1)
        return (w * w).sum(1) if self.normalize_threshold else None, w @ w.t() if self.lateral else None

    def init_state(self, batch: int) -> dict:
        """The zero state of `batch` streams for `step` (its tensors are made at the first step, when the input shape is known)."""
        return {"batch": batch, "neuron": None, "inputs": None}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One time step: input `[B, ...]` → (spikes `[B, C_out, ...]`, next state); the same spikes as `forward` at that step.

        The state is detached from autograd: the step interface is for inference on streams.
        """
        check_step_input(x_t, state, type(self).__name__)
        current, inputs = self.step_current(x_t, state["inputs"])
        spikes, neuron = self.neuron.step(current, state["neuron"], *self._norm_gram(), self.recurrent)
        return spikes, {"batch": state["batch"], "neuron": neuron, "inputs": inputs}

    def step_current(self, x_t: torch.Tensor, inputs):
        """(I[n] `[B, C_out, ...]`, what later steps need of the past inputs) for one input step; layers without memory of inputs keep None."""
        return self.current(x_t.unsqueeze(0))[0], inputs

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]


def check_step_input(x_t: torch.Tensor, state: dict, name: str) -> None:
    """Raise ValueError unless `x_t` is one step `[B, ...]` of the `batch` streams `state` was made for."""
    if not isinstance(state, dict) or "batch" not in state:
        raise ValueError(f"{name}.step: state must come from {name}.init_state(batch) or the previous step, got {type(state).__name__}")
    if not isinstance(x_t, torch.Tensor) or x_t.dim() < 1 or x_t.shape[0] != state["batch"]:
        shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
        raise ValueError(f"{name}.step: expected one time step [B, ...] with B = {state['batch']} (the batch of init_state), got {shape}; "
                         "pass x[t], not the whole sequence")


class StepByForward:
    """For layers without memory across steps: `step` is `forward` on a one-step sequence."""

    def init_state(self, batch: int) -> dict:
        """The (empty) state of `batch` streams."""
        return {"batch": batch}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One time step `[B, ...]` → the layer's output at that step, state unchanged."""
        check_step_input(x_t, state, type(self).__name__)
        return self(x_t.unsqueeze(0))[0], state
