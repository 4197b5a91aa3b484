"""A keyword-spotting model over a whole recording, step by step with carried state (no window is recomputed)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spikeforge.data.audio_features import LogMelConfig
from spikeforge.streaming.detector import Detection, DetectionRule, Detector
from spikeforge.streaming.features import StreamingLogMel


@dataclass
class StreamResult:
    """Everything one streamed recording produced, one row per 10 ms step."""

    features: torch.Tensor  # [T, C, F]
    scores: torch.Tensor  # [T, classes]
    smoothed: torch.Tensor  # [T, classes]
    detections: list[Detection]
    seconds: float  # wall time spent
    audio_seconds: float
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads)

    @property
    def real_time_factor(self) -> float:
        """Processing wall time ÷ audio duration (< 1: faster than real time)."""
        return self.seconds / max(self.audio_seconds, 1e-9)

    @property
    def cpu_real_time_factor(self) -> float:
        """Processing CPU time ÷ audio duration: the real-time factor on an otherwise idle core (one thread)."""
        return self.cpu_seconds / max(self.audio_seconds, 1e-9)


@torch.no_grad()
def stream(model: nn.Module, wave: np.ndarray, features: LogMelConfig, rule: DetectionRule, classes: tuple[str, ...],
           keywords: tuple[str, ...], chunk_ms: float = 100.0) -> StreamResult:
    """Feed `wave` in chunks of `chunk_ms` as a live input would arrive; features, model and detector advance one step per frame."""
    if not (hasattr(model, "init_state") and hasattr(model, "step")):
        raise ValueError(f"{type(model).__name__} has no step interface (init_state / step); streaming needs a spiking KWS model such as kws_dilated")
    start, cpu = time.perf_counter(), time.process_time()
    model.eval()
    extractor, detector = StreamingLogMel(features), Detector(rule, classes, keywords)
    state = model.init_state(1)
    frames, scores, smoothed, found = [], [], [], []
    chunk = max(1, round(features.sample_rate * chunk_ms / 1000))
    arriving = (extractor.push(wave[i : i + chunk]) for i in range(0, len(wave), chunk))
    for block in (*arriving, extractor.flush()):
        for frame in torch.from_numpy(block):
            y, state = model.step(frame.unsqueeze(0), state)
            p, hit = detector.push(y[0])
            frames.append(frame)
            scores.append(y[0])
            smoothed.append(p)
            if hit is not None:
                found.append(hit)
    empty = torch.zeros(0)
    return StreamResult(
        torch.stack(frames) if frames else empty, torch.stack(scores) if scores else empty,
        torch.stack(smoothed) if smoothed else empty, found, time.perf_counter() - start, len(wave) / features.sample_rate,
        time.process_time() - cpu,
    )
