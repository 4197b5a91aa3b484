"""The contract between the trainer and a training method."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset


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
    """How a model is trained. Subclasses implement `step`; `set_progress`, `predict` and `after_step` have defaults.

    `x` is time-major `[T, B, ...]` (already encoded), `y` the class labels `[B]`. A method with `views` = V > 1 gets every
    training clip V times in a row, each drawn through the dataset's random augmentation on its own.
    """

    views = 1

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        """Forward pass and loss for one training batch."""
        raise NotImplementedError

    def set_progress(self, epochs: float) -> None:
        """Told before every training step how many epochs have passed (fractional; a resumed run continues it)."""

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


@dataclass
class StageData:
    """What a transition between two stages may look at: the splits, the recipe's encoder and evaluation batch size."""

    train: Dataset
    val: Dataset
    test: Dataset
    encoder: dict
    batch_size: int


class Transition:
    """Between two stages of a recipe: maps the trained model of one stage to the starting model of the next.

    `decide` picks the data-dependent values once (they are recorded in the run folder, so a resumed run rebuilds
    the same model from them without data); `apply` builds the new model from the old one and those values.
    """

    def decide(self, model: nn.Module, data: StageData) -> dict:
        """Values chosen on data (JSON-serialisable), e.g. a calibrated threshold."""
        return {}

    def apply(self, model: nn.Module, decided: dict) -> nn.Module:
        """The next stage's model; `model` is left unchanged."""
        raise NotImplementedError

    def report(self, before: nn.Module, after: nn.Module, decided: dict, data: StageData) -> dict:
        """Numbers about the transition for the run folder (JSON-serialisable)."""
        return {}

    def render(self, run: Path) -> str:
        """Markdown about this transition in finished run folder `run` (empty: nothing to show)."""
        return ""
