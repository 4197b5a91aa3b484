"""One keyword-spotting clip classified whole: its log-Mel features, the per-step class scores, and their picture (Fig. 2 a, c)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spikeforge.data.audio_features import LogMelConfig, log_mel
from spikeforge.metrics.reduce import reduce_time


@dataclass
class ClipScores:
    """What a model made of one clip."""

    features: torch.Tensor  # [T, C, F]
    scores: torch.Tensor  # [T, classes], per step
    probabilities: torch.Tensor  # [classes], softmax of the scores reduced over time as the model was trained

    @property
    def label(self) -> int:
        return int(self.probabilities.argmax())


def score_trace(model: nn.Module, wave: np.ndarray, features: LogMelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(features `[T, C, F]`, per-step scores `[T, classes]`) of one clip."""
    x = log_mel(wave, features)
    with torch.no_grad():
        scores = model(x.unsqueeze(1))[:, 0]
    return x, scores


def classify_clip(model: nn.Module, wave: np.ndarray, features: LogMelConfig) -> ClipScores:
    """The clip's features, per-step scores and class probabilities (the model's own time reduction, then softmax)."""
    x, scores = score_trace(model, wave, features)
    return ClipScores(x, scores, reduce_time(scores.unsqueeze(1), model.output_reduction)[0].softmax(-1))


def plot_trace(path: Path, x: torch.Tensor, scores: torch.Tensor, classes: tuple[str, ...], title: str, hop_ms: float) -> None:
    """Two panels like Fig. 2 (a, c): the log-Mel input, and the class scores over time (the winner drawn thicker)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_ms = torch.arange(scores.shape[0]) * hop_ms
    fig, (ax_in, ax_out) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax_in.imshow(x[:, 0].T.numpy(), origin="lower", aspect="auto", extent=(0, float(t_ms[-1] + hop_ms), 0, x.shape[2]))
    ax_in.set_ylabel("Mel band")
    ax_in.set_title(title)
    top = int(scores.mean(0).argmax())
    for c, name in enumerate(classes):  # matplotlib hides legend labels that start with "_"
        ax_out.plot(t_ms.numpy(), scores[:, c].numpy(), label=name.strip("_"), linewidth=2.5 if c == top else 1.0)
    ax_out.set_xlabel("time (ms)")
    ax_out.set_ylabel("readout score")
    ax_out.legend(ncol=4, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
