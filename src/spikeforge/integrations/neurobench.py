"""A spikeforge model as a NeuroBench 2.3 model, so that NeuroBench's static and workload metrics see its layers.

NeuroBench finds connection layers by type (nn.Linear / nn.Conv) and records the inputs they
are called with; its activation hooks record each spiking layer's output; its membrane-update
metric reads the membrane before and after each step. spikeforge's weighted layers run all steps
at once, so the wrapper gives NeuroBench, for each one, an nn.Linear / nn.Conv sharing its weights
(called on the same input, folded to `[T·B, ...]`), and fills the membrane record from
`spikes_and_membrane`. Batches are laid out as the caller says (`layout`, see `integrations.layout`).
"""

from __future__ import annotations

import torch
from torch import nn

try:
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, MembraneUpdates, SynapticOperations
    from neurobench.models import NeuroBenchModel
except ModuleNotFoundError as err:
    raise ModuleNotFoundError(f"NeuroBench is not installed ({err.name}); install it with: pip install neurobench==2.3.0 torch==2.13.0 "
                              f"(or the project's [interop] extra)", name=err.name) from None

from spikeforge.integrations.layout import check_layout, predict
from spikeforge.layers import Readout, SpikingConv, SpikingLinear
from spikeforge.layers.base import SpikingLayer
from spikeforge.metrics.spikes import spiking_layers
from spikeforge.metrics.synops import weighted_layers

STATIC_METRICS = [Footprint, ParameterCount, ConnectionSparsity]
WORKLOAD_METRICS = [ClassificationAccuracy, ActivationSparsity, SynapticOperations, MembraneUpdates]
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def _twin(module: nn.Module) -> nn.Module:
    """The nn.Linear / nn.Conv that NeuroBench counts for a weighted spikeforge layer; its weight is a view, not a parameter."""
    if isinstance(module, (SpikingLinear, Readout)):
        twin, weight = nn.Linear(module.weight.shape[1], module.weight.shape[0], bias=False), module.weight.detach()
    elif isinstance(module, SpikingConv):
        if module.time_kernel > 1:
            raise ValueError(f"{type(module).__name__} with a kernel over time: NeuroBench 2.3 counts per-step convolutions only")
        twin = _CONV[module.spatial_dims](module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding, module.dilation, bias=False)
        weight = module.weight.detach().squeeze(2)
    else:
        return module  # already an nn.Linear / nn.Conv, called per step by the model itself
    del twin.weight  # the footprint counts the model's parameters once
    twin.weight = weight
    return twin


class _View(nn.Module):
    """What NeuroBench inspects: the model (footprint, parameters) and the per-step twins of its weighted layers (connection sparsity)."""

    def __init__(self, model: nn.Module, twins: list[nn.Module]) -> None:
        super().__init__()
        self.model, self.twins = model, nn.ModuleList(twins)


def _folded(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input `[T, B, ...]` as the per-step batch `[T·B, ...]` its NeuroBench twin takes."""
    return x.flatten(2).flatten(0, 1) if isinstance(module, Readout) else x.flatten(0, 1)


def _after_reset(layer: SpikingLayer, u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The membrane after the step's reset: U − R (eq. (4), low-activity paper)."""
    reset = layer.neuron.cfg.reset
    if reset == "zero":
        return u * (1 - s)
    if reset == "subtract" and not layer.lateral:
        b = layer.neuron.threshold.detach()
        if layer.normalize_threshold:
            w = layer.weight.detach().flatten(1)
            b = b * (w * w).sum(1)
        return u - s * b.reshape((-1,) + (1,) * (u.dim() - 3))
    return u  # no reset, or a lateral reset spread over the channels: counted before it


class SpikeforgeModel(NeuroBenchModel):
    """Wrap a trained spikeforge model for NeuroBench: batches laid out as `layout` ("BT..." or "TB...") → class predictions `[B]`.

    `forward(model, x_time_major)` replaces `model(x)` (e.g. the training method's `predict`).
    """

    def __init__(self, model: nn.Module, *, layout: str, forward=None) -> None:
        super().__init__()
        self.forward = forward
        check_layout(layout)  # a bad layout fails here, not in the first batch
        self.net, self.layout = model.eval(), layout
        self._weighted = [(m, _twin(m)) for _, m in weighted_layers(model)]
        self._spiking = spiking_layers(model)
        self._view = _View(model, [twin for m, twin in self._weighted if twin is not m])

    def __net__(self) -> nn.Module:
        return self._view

    def connection_layers(self) -> list[nn.Module]:
        return [proxy for _, proxy in self._weighted]

    def activation_layers(self) -> list[dict]:
        return [{"layer_name": name, "layer": m} for name, m in self._spiking]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        hooks = [m.register_forward_pre_hook(self._input_hook(proxy)) for m, proxy in self._weighted if proxy is not m]
        hooks += [m.register_forward_hook(self._membrane_hook(m)) for _, m in self._spiking if isinstance(m, SpikingLayer)]
        try:
            return predict(self.net, batch, layout=self.layout, forward=self.forward)
        finally:
            for h in hooks:
                h.remove()

    @staticmethod
    def _input_hook(proxy: nn.Module):
        """Call the layer's NeuroBench twin on the layer's input, so that NeuroBench's hook on the twin records it."""
        def hook(module, args):
            proxy(_folded(module, args[0]))
        return hook

    def _membrane_hook(self, layer: SpikingLayer):
        """Record the membrane before and after every step in the layer's NeuroBench hook (what MembraneUpdates reads)."""
        def hook(module, args, _output):
            record = next((h for h in self.activation_hooks if h.layer is module), None)
            if record is None:
                return
            s, u = module.spikes_and_membrane(args[0])
            after = _after_reset(module, u, s)
            before = torch.cat([torch.zeros_like(after[:1]), after[:-1]])
            record.pre_fire_mem_potential.extend(before)
            record.post_fire_mem_potential.extend(after)
        return hook


def run_benchmark(model: nn.Module, loader, *, layout: str, preprocessors=(), forward=None, quiet: bool = True) -> dict:
    """NeuroBench's static and workload metrics of `model` on `loader` (batches `(x, y)`, x laid out as `layout` after `preprocessors`)."""
    from neurobench.benchmarks import Benchmark

    wrapped = SpikeforgeModel(model, layout=layout, forward=forward)
    return Benchmark(wrapped, loader, list(preprocessors), [], [STATIC_METRICS, WORKLOAD_METRICS]).run(quiet=quiet)


def table(results: dict) -> str:
    """NeuroBench's results as aligned `metric  value` lines (nested results, e.g. SynapticOperations, one line per entry)."""
    rows = []
    for name, value in results.items():
        for key, v in (value.items() if isinstance(value, dict) else [("", value)]):
            rows.append((f"{name} {key}".strip(), f"{v:.6g}" if isinstance(v, float) else str(v)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def neurobench_table(model: nn.Module, method, data, encoder: dict, batch_size: int) -> str:
    """NeuroBench's table for a trained run on a spikeforge dataset: samples encoded as in training, predictions by the method."""
    from torch.utils.data import DataLoader

    from spikeforge.train.encode import encode

    loader = DataLoader(data, batch_size=batch_size)
    results = run_benchmark(model, loader, layout="TB", preprocessors=[lambda batch: (encode(batch[0], encoder), batch[1])],
                            forward=lambda m, x: method.predict(m, x))
    return table(results)
