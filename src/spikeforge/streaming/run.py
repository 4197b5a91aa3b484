"""A keyword-spotting model listening to a signal step by step with carried state (no window is recomputed): the
samples of an endless input pushed as they arrive, or a whole recording fed in chunks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spikeforge.data.audio_features import LogMelConfig
from spikeforge.streaming.detector import Detection, DetectionRule, Detector
from spikeforge.streaming.features import StreamingLogMel


@dataclass
class StreamResult:
    """What a streamed signal produced: its detections, the time spent, and (when kept) one row per 10 ms step."""

    features: torch.Tensor  # [T, C, F]; empty when the history was not kept
    scores: torch.Tensor  # [T, classes]; empty when not kept
    smoothed: torch.Tensor  # [T, classes]; empty when not kept
    detections: list[Detection]
    seconds: float  # wall time spent processing (not waiting for input)
    audio_seconds: float
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads) spent processing

    @property
    def real_time_factor(self) -> float:
        """Processing wall time ÷ audio duration (< 1: faster than real time)."""
        return self.seconds / max(self.audio_seconds, 1e-9)

    @property
    def cpu_real_time_factor(self) -> float:
        """Processing CPU time ÷ audio duration: the real-time factor on an otherwise idle core (one thread)."""
        return self.cpu_seconds / max(self.audio_seconds, 1e-9)


class KeywordSpotter:
    """Push samples of a signal as they arrive; each push returns the keywords its finished frames completed.

    Features, model and detector advance one step per finished 10 ms frame, each holding a fixed-size state, so an
    endless signal runs in constant memory unless `keep` asks for the per-step history (for a plot).
    """

    def __init__(self, model: nn.Module, features: LogMelConfig, rule: DetectionRule, classes: tuple[str, ...],
                 keywords: tuple[str, ...], keep: bool = False) -> None:
        if not (hasattr(model, "init_state") and hasattr(model, "step")):
            raise ValueError(f"{type(model).__name__} has no step interface (init_state / step); streaming needs a spiking KWS model such as kws_dilated")
        model.eval()
        self.model, self.sample_rate, self.keep = model, features.sample_rate, keep
        self.extractor, self.detector = StreamingLogMel(features), Detector(rule, classes, keywords)
        self.state = model.init_state(1)
        self.frames: list[torch.Tensor] = []
        self.scores: list[torch.Tensor] = []
        self.smoothed: list[torch.Tensor] = []
        self.detections: list[Detection] = []
        self.samples, self.seconds, self.cpu_seconds = 0, 0.0, 0.0

    def push(self, samples: np.ndarray) -> list[Detection]:
        """Append mono samples (at the features' sample rate); the keywords detected on the frames they finished."""
        self.samples += len(samples)
        return self._advance(self.extractor.push, samples)

    def flush(self) -> list[Detection]:
        """End the signal (as if zeros followed, like the whole-signal features); the keywords of its last frames."""
        return self._advance(self.extractor.flush)

    def result(self) -> StreamResult:
        """Detections, processing times and (with `keep`) the per-step history so far."""
        stacked = [torch.stack(rows) if rows else torch.zeros(0) for rows in (self.frames, self.scores, self.smoothed)]
        return StreamResult(*stacked, list(self.detections), self.seconds, self.samples / self.sample_rate, self.cpu_seconds)

    @torch.no_grad()
    def _advance(self, frames_of, *args) -> list[Detection]:
        start, cpu = time.perf_counter(), time.process_time()
        found = []
        for frame in torch.from_numpy(frames_of(*args)):
            y, self.state = self.model.step(frame.unsqueeze(0), self.state)
            p, hit = self.detector.push(y[0])
            if self.keep:
                self.frames.append(frame)
                self.scores.append(y[0])
                self.smoothed.append(p)
            if hit is not None:
                found.append(hit)
        self.detections += found
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu
        return found


def chunks_of(wave: np.ndarray, sample_rate: int, chunk_ms: float = 100.0) -> Iterator[np.ndarray]:
    """A whole recording in chunks of `chunk_ms`, as a live input would arrive."""
    chunk = max(1, round(sample_rate * chunk_ms / 1000))
    return (wave[i : i + chunk] for i in range(0, len(wave), chunk))
