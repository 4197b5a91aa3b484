"""Transition `one_spike_conversion` (hybrid paper §2.2): the trained ANN of stage 1 → the one-spike ReL-PSP SNN of stage 2.

θ_s = θ_a, ϑ = 1, max-pooling → min-pooling, ReLU → force firing (eq. 8) or nothing; the output threshold ϑ_out is a
number or "auto" (calibrated on the first `calibration_samples` training inputs, `calibrate_output_threshold`).
`windows: calibrated` also sets the analog stem's input window c_0 and the hidden thresholds ϑ_l from the same
samples (`calibrate_windows`), so activations above 1 are coded instead of clipped (not in the paper, which keeps
c_0 = ϑ_l = 1 and relies on the activation constraint). What is decided is recorded, so a resumed run rebuilds the
same SNN. The report holds what Tables 1–4 show right after conversion: the
constraint report (Table 1, one test batch), the ANN's test accuracy, and the SNN's with and without force firing and
with the paper's ϑ_out = 1.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from spikeforge.losses.conversion import constraint_report
from spikeforge.methods.base import Method, StageData, Transition
from spikeforge.methods.hybrid_temporal import (HybridANN, STDBP, ann_forward, calibrate_output_threshold, calibrate_windows,
                                                 convert_to_snn, static_frame, weighted_layers)
from spikeforge.registry import TRANSITIONS
from spikeforge.train.encode import encode


@torch.no_grad()
def accuracy(model: nn.Module, method: Method, dataset: Dataset, encoder: dict, batch_size: int) -> float:
    """Share of samples whose highest score (logit, or earliest output spike) is the label."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        scores = method.predict(model, encode(x, encoder))[-1]
        correct += int((scores.argmax(dim=1) == y).sum())
        total += y.numel()
    model.train(was_training)
    return correct / max(total, 1)


def _frames(dataset: Dataset, samples: int, encoder: dict) -> torch.Tensor:
    """The first `samples` inputs of `dataset` as one static batch [B, ...]."""
    x, _ = next(iter(DataLoader(Subset(dataset, range(min(samples, len(dataset)))), batch_size=samples)))
    return static_frame(encode(x, encoder))


class OneSpikeConversion(Transition):
    """ANN → one-spike SNN (`convert_to_snn`), ϑ_out fixed or calibrated."""

    def __init__(self, force_firing: bool, analog_layers: int, min_denominator: float, output_threshold: float | str,
                 calibration_samples: int, windows: str) -> None:
        self.force_firing, self.analog_layers, self.min_denominator = force_firing, analog_layers, min_denominator
        self.output_threshold, self.calibration_samples, self.windows = output_threshold, calibration_samples, windows

    def _convert(self, ann: nn.Module, force_firing: bool, output_threshold: float | None, decided: dict | None = None) -> nn.Module:
        """The SNN with ϑ_out and, where `decided` has them, the calibrated windows (else the paper's c_0 = ϑ_l = 1)."""
        decided = decided or {}
        return convert_to_snn(ann, force_firing, self.analog_layers, min_denominator=self.min_denominator, output_threshold=output_threshold,
                              hidden_thresholds=decided.get("hidden_thresholds"), input_window=decided.get("input_window", 1.0))

    def decide(self, model: nn.Module, data: StageData) -> dict:
        needs_data = self.output_threshold == "auto" or self.windows == "calibrated"
        x = _frames(data.train, self.calibration_samples, data.encoder) if needs_data else None
        decided: dict = {}
        if self.windows == "calibrated":
            decided["input_window"], decided["hidden_thresholds"] = calibrate_windows(model, x, self.analog_layers)
        theta = self.output_threshold
        decided["output_threshold"] = float(theta) if theta != "auto" else calibrate_output_threshold(model, self._convert(model, self.force_firing, None, decided), x)
        return decided

    def apply(self, model: nn.Module, decided: dict) -> nn.Module:
        return self._convert(model, self.force_firing, decided["output_threshold"], decided)

    def report(self, before: nn.Module, after: nn.Module, decided: dict, data: StageData) -> dict:
        theta, stdbp = decided["output_threshold"], STDBP()
        x = _frames(data.test, data.batch_size, data.encoder)
        with torch.no_grad():
            _, pre = ann_forward(before, x)
        table1 = constraint_report({n: m.weight for n, m in weighted_layers(before)}, dict(pre))

        def acc(model: nn.Module, method: Method) -> float:
            return accuracy(model, method, data.test, data.encoder, data.batch_size)

        out = {"ann_acc": acc(before, HybridANN(0.0, 0.0, self.analog_layers)), "output_threshold": theta, "table1": table1,
               "init_acc_ff1_theta1": acc(self._convert(before, True, 1.0), stdbp)}  # the paper's ϑ = 1 everywhere
        for ff in (True, False):
            snn = self._convert(before, ff, theta, decided)
            out[f"init_acc_ff{int(ff)}"] = acc(snn, stdbp)
            with torch.no_grad():
                out[f"init_stats_ff{int(ff)}"] = snn.run(x)[1]
        return out

    def render(self, run: Path) -> str:
        from spikeforge.metrics.conversion import conversion_table

        return conversion_table([run])


@TRANSITIONS.register("one_spike_conversion")
def one_spike_conversion(force_firing: bool = True, analog_layers: int = 0, min_denominator: float = 0.1,
                         output_threshold: float | str = "auto", calibration_samples: int = 2000,
                         windows: str = "paper") -> OneSpikeConversion:
    """ANN → one-spike ReL-PSP SNN (§2.2, hybrid paper); `output_threshold` a number > 0 or "auto" (calibrated);
    `windows` "paper" (c_0 = ϑ_l = 1) or "calibrated" (`calibrate_windows`)."""
    if windows not in ("paper", "calibrated"):
        raise ValueError(f"one_spike_conversion: windows must be 'paper' or 'calibrated', got {windows!r}")
    if output_threshold != "auto" and (isinstance(output_threshold, (bool, str)) or not output_threshold > 0):
        raise ValueError(f"one_spike_conversion: output_threshold must be a number > 0 or 'auto', got {output_threshold!r}")
    if calibration_samples < 1 or min_denominator <= 0 or analog_layers < 0:
        raise ValueError("one_spike_conversion: calibration_samples >= 1, min_denominator > 0 and analog_layers >= 0 are needed, "
                         f"got {calibration_samples}, {min_denominator}, {analog_layers}")
    return OneSpikeConversion(force_firing, analog_layers, min_denominator, output_threshold, calibration_samples, windows)
