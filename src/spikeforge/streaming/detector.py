"""Keyword detections from per-step scores, with the rule of TensorFlow's streaming KWS (`RecognizeCommands`).

Per step n: the posterior p[n] = softmax of the mean score over the last `clip_steps` steps (the
training reduction of a 1 s clip); the smoothed posterior is the mean of p over the last
`average_steps` steps; a keyword is detected when it is the top class of the smoothed posterior,
above `threshold`, and either differs from the last detection or comes more than `suppression_steps`
after it (the suppression / refractory period). Silence and unknown are never reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DetectionRule:
    """TF's streaming defaults (test_streaming_accuracy.py): 500 ms averaging, threshold 0.7, 1500 ms suppression."""

    clip_steps: int = 100
    average_steps: int = 50
    threshold: float = 0.7
    suppression_steps: int = 150

    def __post_init__(self) -> None:
        if self.clip_steps < 1 or self.average_steps < 1 or self.suppression_steps < 0:
            raise ValueError(f"clip and averaging windows need ≥ 1 step and suppression ≥ 0, got {self}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"the detection threshold is a probability in (0, 1), got {self.threshold}")


@dataclass(frozen=True)
class Detection:
    """One detected keyword: the step it was decided at, its class index and smoothed posterior."""

    step: int
    label: int
    score: float


class Detector:
    """Feed one step of scores `[classes]` at a time; `push` returns the smoothed posterior and a Detection or None."""

    def __init__(self, rule: DetectionRule, classes: tuple[str, ...], keywords: tuple[str, ...]) -> None:
        self.rule, self.classes = rule, classes
        self.keyword = torch.tensor([c in keywords for c in classes])
        self.scores = torch.zeros(rule.clip_steps, len(classes), dtype=torch.float64)
        self.posteriors = torch.zeros(rule.average_steps, len(classes), dtype=torch.float64)
        self.step = 0
        self.last: Detection | None = None

    def push(self, scores: torch.Tensor) -> tuple[torch.Tensor, Detection | None]:
        """Scores of step n → (smoothed posterior `[classes]`, the keyword detected at n or None)."""
        r, n = self.rule, self.step
        self.scores[n % r.clip_steps] = scores.detach().double()
        posterior = (self.scores.sum(0) / min(n + 1, r.clip_steps)).softmax(0)
        self.posteriors[n % r.average_steps] = posterior
        smoothed = self.posteriors.sum(0) / min(n + 1, r.average_steps)
        self.step += 1
        top = int(smoothed.argmax())
        if not self.keyword[top] or float(smoothed[top]) <= r.threshold:
            return smoothed, None
        last = self.last
        if last is not None and last.label == top and n - last.step <= r.suppression_steps:
            return smoothed, None
        self.last = Detection(n, top, float(smoothed[top]))
        return smoothed, self.last
