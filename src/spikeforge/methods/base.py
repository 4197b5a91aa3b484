"""The contract between the trainer and a training method."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class StepOutput:
    """What a method returns for one batch: the loss to minimise, logits [B, classes], and named extras.

    `spike_rates` maps layer names to their mean firing rate in this batch (floats, detached).
    """

    loss: torch.Tensor
    logits: torch.Tensor
    spike_rates: dict[str, float] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)


class Method:
    """How a model is trained. Subclasses implement `step`; `predict` and `after_step` have defaults.

    `x` is time-major `[T, B, ...]` (already encoded), `y` the class labels `[B]`.
    """

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        """Forward pass and loss for one training batch."""
        raise NotImplementedError

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Per-step scores [T, B, classes] used for accuracy and accuracy versus inference time."""
        return model(x)

    def after_step(self, model: nn.Module) -> None:
        """Parameter constraints after every optimiser step: each module's `constrain_()` if it has one."""
        with torch.no_grad():
            for module in model.modules():
                constrain = getattr(module, "constrain_", None)
                if constrain is not None:
                    constrain()
