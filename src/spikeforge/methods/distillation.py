"""Knowledge distillation from trained runs (Hinton et al. 2015; not in the papers).

The teachers see the student's own (augmented) batch, so they teach the function on the inputs the student
trains on (consistent teaching, Beyer et al. 2022). Their softened probabilities are averaged, as `spikeforge
eval RUN RUN ...` averages an ensemble: p = mean_k softmax(z_k / T), z_k a teacher's time-reduced logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.metrics.latency import output_reduction
from spikeforge.metrics.reduce import reduce_time


def distillation_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(p ‖ softmax(z / T)), mean over the batch; its gradient in z is T·(softmax(z / T) − p) / B (Hinton et al. 2015)."""
    if logits.shape != teacher_probs.shape:
        raise ValueError(f"the student gives logits {tuple(logits.shape)} but its teachers probabilities {tuple(teacher_probs.shape)}; "
                         "distil from runs trained on the same classes")
    return temperature**2 * F.kl_div(F.log_softmax(logits / temperature, -1), teacher_probs, reduction="batchmean")


class Teachers:
    """Trained run folders whose mean softened class probabilities a student learns from; loaded at first use."""

    def __init__(self, runs: list[str], temperature: float) -> None:
        if not runs:
            raise ValueError("method.distill_from lists no run folders; name the trained runs to learn from, or drop the key")
        self.runs, self.temperature = [Path(r) for r in runs], float(temperature)
        self.models: list[nn.Module] | None = None

    def _load(self, device: torch.device) -> list[nn.Module]:
        from spikeforge.train.loading import load_run  # the training package imports the methods

        models = []
        for run in self.runs:
            if not (run / "config.yaml").is_file():
                raise FileNotFoundError(f"method.distill_from: {run} is not a run folder (no config.yaml); name a folder `spikeforge train` wrote")
            models.append(load_run(run)[1].to(device).requires_grad_(False))
        return models

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """p = mean_k softmax(reduce_time(teacher_k(x)) / T), `[B, classes]`, for time-major input `x` `[T, B, ...]`."""
        if self.models is None:
            self.models = self._load(x.device)
        return torch.stack([F.softmax(reduce_time(m(x), output_reduction(m)) / self.temperature, -1) for m in self.models]).mean(0)
